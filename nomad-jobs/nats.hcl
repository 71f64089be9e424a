# pitwall NATS: the site's nats-server cluster (JetStream domain = site, leafnode link to the peer site). The
# config is rendered by Nomad from Consul: cluster routes from the other members of this site
# (pitwall-nats-cluster), the leafnode remote from the peer datacenter's pitwall-nats-leaf (only on the site that
# dials). It has the same content as sites/render.ts renders for the local sites. Changes reload the server
# (SIGHUP) instead of restarting it.
#   nomad job run -var-file=nomad-jobs/vars/a/nats.vars.hcl nomad-jobs/nats.hcl

variable "region" {
  type        = string
  description = "Nomad region of the site (one region per site)"
}

variable "datacenter" {
  type        = string
  description = "Nomad datacenter of the site (sites/ nomadDatacenter)"
}

variable "site" {
  type        = string
  description = "Site name; also the cluster name pitwall-<site>"
}

variable "domain" {
  type        = string
  description = "JetStream domain of the site (sites/ domain)"
}

variable "count" {
  type        = number
  description = "nats-servers of the site: 1 or >= 3 (2 cannot keep a JetStream quorum)"
}

variable "client_port" {
  type        = number
  default     = 4222
  description = "Client port (static: workers, gateways and devices connect to it)"
}

variable "cluster_port" {
  type        = number
  default     = 6222
  description = "Route port between the members of the site"
}

variable "leafnode_port" {
  type        = number
  default     = 7422
  description = "Leafnode listen port (the peer site dials it)"
}

variable "monitor_port" {
  type        = number
  default     = 8222
  description = "HTTP monitoring port (/healthz is the Consul check)"
}

variable "peer_datacenter" {
  type        = string
  default     = ""
  description = "Consul datacenter of the peer site when this site dials the leafnode link; empty: only listen"
}

variable "mapping_from" {
  type        = string
  description = "Device subject of the site (tlm.<site>.*.*), from actors mappingFor"
}

variable "mapping_to" {
  type        = string
  description = "Partitioned subject the server maps it to (tlm.<site>.{{partition(P,1,2)}}...)"
}

variable "store_dir" {
  type        = string
  default     = "/var/lib/nats"
  description = "JetStream store root on the client nodes; this site's store is <store_dir>/<site>"
}

variable "nats_bin" {
  type        = string
  default     = "/usr/sbin/nats-server"
  description = "nats-server binary on the clients"
}

job "pitwall-nats" {
  region      = var.region
  datacenters = [var.datacenter]
  type        = "service"

  meta {
    site = var.site
  }

  # One server at a time; the canary is an extra member on a spare node (distinct_hosts), promoted when healthy.
  update {
    max_parallel      = 1
    canary            = 1
    auto_promote      = true
    auto_revert       = true
    min_healthy_time  = "20s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    health_check      = "checks"
  }

  group "nats" {
    count = var.count

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    restart {
      attempts = 5
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    network {
      port "client" {
        static = var.client_port
      }
      port "cluster" {
        static = var.cluster_port
      }
      port "leafnode" {
        static = var.leafnode_port
      }
      port "monitor" {
        static = var.monitor_port
      }
    }

    service {
      name     = "pitwall-nats"
      port     = "client"
      tags     = ["site-${var.site}", "domain-${var.domain}"]
      provider = "consul"

      check {
        name     = "healthz"
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "pitwall-nats-cluster"
      port     = "cluster"
      tags     = ["site-${var.site}"]
      provider = "consul"

      check {
        name     = "route-port"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "pitwall-nats-leaf"
      port     = "leafnode"
      tags     = ["site-${var.site}", "domain-${var.domain}"]
      provider = "consul"

      check {
        name     = "leafnode-port"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "nats" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "60s"

      config {
        command = var.nats_bin
        args    = ["-c", "${NOMAD_TASK_DIR}/nats.conf"]
      }

      # [[ ]] delimiters: the partition mapping itself contains {{ }}. A list bracket is never written next to an
      # action ("[ [[", not "[[["): the template lexer would take the first two brackets as the delimiter.
      template {
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = <<-EOT
        # pitwall site ${var.site}, server ${var.site}-[[ env "node.unique.name" ]] (rendered by Nomad from nomad-jobs/nats.hcl)
        server_name: "${var.site}-[[ env "node.unique.name" ]]"
        listen: "[[ env "NOMAD_IP_client" ]]:${var.client_port}"
        http: "[[ env "NOMAD_IP_monitor" ]]:${var.monitor_port}"

        jetstream {
          store_dir: "${var.store_dir}/${var.site}"
          domain: "${var.domain}"
        }
        [[ if gt ${var.count} 1 ]]
        cluster {
          name: "pitwall-${var.site}"
          listen: "[[ env "NOMAD_IP_cluster" ]]:${var.cluster_port}"
          routes: [ [[ range $i, $s := service "pitwall-nats-cluster|any" ]][[ if $i ]], [[ end ]]"nats-route://[[ $s.Address ]]:[[ $s.Port ]]"[[ end ]] ]
        }
        [[ end ]]
        leafnodes {
          listen: "[[ env "NOMAD_IP_leafnode" ]]:${var.leafnode_port}"
        [[- if ne "${var.peer_datacenter}" "" ]][[ with service "pitwall-nats-leaf@${var.peer_datacenter}" ]]
          remotes: [ { urls: [ [[ range $i, $s := . ]][[ if $i ]], [[ end ]]"nats-leaf://[[ $s.Address ]]:[[ $s.Port ]]"[[ end ]] ] } ]
        [[- end ]][[ end ]]
        }

        # devices publish tlm.<site>.<kind>.<id>; the server adds the partition token (actors mappingFor)
        mappings {
          "${var.mapping_from}": "${var.mapping_to}"
        }
        EOT
        destination     = "local/nats.conf"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
