# pitwall site controller: one per site (docs/sites.md "Failover"). Runs the command the local launcher runs
# (sites/local.ts controllerSpec: node dist/cmd/controller.js) with the same variables. It probes the peer
# site every 500 ms: its JetStream API over the leafnode link, the peer controller's /healthz (address from the
# peer datacenter's Consul catalog) and, with PITWALL_DISCOVERY=consul, Consul health of the peer's NATS servers;
# when all of them have failed for failover_after_ms it takes over the peer's partitions. NATS and PostgreSQL of
# the site come from Consul; the Consul ACL token from the Nomad variable nomad/jobs/pitwall-controller.
#   nomad var put nomad/jobs/pitwall-controller consul_token=...
#   nomad job run -var-file=nomad-jobs/vars/a/controller.vars.hcl nomad-jobs/controller.hcl

variable "region" {
  type        = string
  description = "Nomad region of the site (one region per site)"
}

variable "datacenter" {
  type        = string
  description = "Nomad datacenter of the site (sites/ nomadDatacenter)"
}

variable "deployment" {
  type        = string
  default     = "default"
  description = "Name of the deployment (PITWALL_DEPLOYMENT), recorded with its streams, buckets and database; the same at both sites"
}

variable "site" {
  type        = string
  description = "Site name, the subject token tlm.<site>... (PITWALL_SITE)"
}

variable "partitions" {
  type        = number
  description = "Partitions P of the deployment (PITWALL_PARTITIONS); fixed per deployment"
}

variable "pg_user" {
  type        = string
  description = "PostgreSQL user of the site's database"
}

variable "pg_database" {
  type        = string
  description = "PostgreSQL database of the site (its address comes from Consul service pitwall-postgres)"
}

variable "domain" {
  type        = string
  description = "JetStream domain of the site (PITWALL_DOMAIN; sites/ domain)"
}

variable "peer_site" {
  type        = string
  description = "Name of the peer site (PITWALL_PEER_SITE): the site this controller watches and takes over"
}

variable "peer_domain" {
  type        = string
  description = "JetStream domain of the peer site (PITWALL_PEER_DOMAIN), probed as $JS.<domain>.API over the leafnode link"
}

variable "home_partitions" {
  type        = string
  description = "Comma-separated partitions whose home is this site (PITWALL_HOME_PARTITIONS; sites/ homePartitions)"
}

variable "consul_datacenter" {
  type        = string
  description = "Consul datacenter of this site (PITWALL_CONSUL_DATACENTER)"
}

variable "peer_datacenter" {
  type        = string
  description = "Consul datacenter of the peer site: its controller's address and its NATS health are read there"
}

variable "failover_after_ms" {
  type        = number
  default     = 5000
  description = "Peer down (link, /healthz and Consul health) this long -> automatic failover; 0 = operator only"
}

variable "consul_addr" {
  type        = string
  default     = "http://127.0.0.1:8500"
  description = "HTTP address of the Consul agent on the client (CONSUL_HTTP_ADDR) for the peer health queries"
}

variable "port" {
  type        = number
  default     = 9481
  description = "HTTP port of the controller (/healthz, /status, /metrics); static: the peer site probes it"
}

variable "pitwall_root" {
  type        = string
  default     = "/opt/pitwall"
  description = "Install directory of the pitwall build on the clients (ansible role pitwall)"
}

variable "node_bin" {
  type        = string
  default     = "/usr/bin/node"
  description = "Node.js 20 binary on the clients"
}

job "pitwall-controller" {
  region      = var.region
  datacenters = [var.datacenter]
  type        = "service"

  meta {
    site = var.site
  }

  # One controller per site: no canary (two controllers of one site could both fail over), the new version
  # replaces the old one; auto_revert brings the last stable version back when the new one never passes.
  update {
    max_parallel      = 1
    canary            = 0
    auto_revert       = true
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "5m"
    health_check      = "checks"
  }

  group "controller" {
    count = 1

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "http" {
        static = var.port
      }
    }

    service {
      name     = "pitwall-site"
      port     = "http"
      tags     = ["site-${var.site}", "http", "metrics"]
      provider = "consul"

      check {
        name     = "healthz"
        type     = "http"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "controller" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "15s"

      config {
        command = var.node_bin
        args    = ["${var.pitwall_root}/dist/cmd/controller.js"]
      }

      env {
        PITWALL_DEPLOYMENT             = var.deployment
        PITWALL_SITE                   = var.site
        PITWALL_PARTITIONS             = var.partitions
        PITWALL_DOMAIN                 = var.domain
        PITWALL_PEER_SITE              = var.peer_site
        PITWALL_PEER_DOMAIN            = var.peer_domain
        PITWALL_HOME_PARTITIONS        = var.home_partitions
        PITWALL_CONTROLLER_PORT        = "${NOMAD_PORT_http}"
        PITWALL_METRICS_HOST           = "${NOMAD_IP_http}"
        PITWALL_FAILOVER_AFTER_MS      = var.failover_after_ms
        PITWALL_DISCOVERY              = "consul"
        CONSUL_HTTP_ADDR               = var.consul_addr
        PITWALL_CONSUL_DATACENTER      = var.consul_datacenter
        PITWALL_PEER_CONSUL_DATACENTER = var.peer_datacenter
      }

      # NATS servers of this site and its PostgreSQL, from Consul; re-rendered (and the controller restarted)
      # when they change. The peer controller's health address comes from the peer datacenter's catalog with
      # "|any": a failing peer does not change the rendered text (no restart of this controller while it is
      # counting the peer's downtime); only a moved peer controller does. While the peer datacenter cannot be
      # asked, the last rendered address stays.
      template {
        data        = <<-EOT
        PITWALL_NATS_URL={{ range $i, $s := service "pitwall-nats" }}{{ if $i }},{{ end }}nats://{{ $s.Address }}:{{ $s.Port }}{{ end }}
        {{ with service "pitwall-postgres" }}{{ with index . 0 }}PITWALL_PG_URL=postgres://${var.pg_user}@{{ .Address }}:{{ .Port }}/${var.pg_database}{{ end }}{{ end }}
        {{ with service "pitwall-site@${var.peer_datacenter}|any" }}{{ with index . 0 }}PITWALL_PEER_HEALTH_URL=http://{{ .Address }}:{{ .Port }}/healthz{{ end }}{{ end }}
        EOT
        destination = "secrets/pitwall.env"
        env         = true
        change_mode = "restart"
        splay       = "5s"
      }

      template {
        data        = <<-EOT
        {{ with nomadVar "nomad/jobs/pitwall-controller" }}CONSUL_HTTP_TOKEN={{ .consul_token }}{{ end }}
        EOT
        destination = "secrets/consul.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
