# pitwall projector: one per site; consumes the site's OUT (and the peer's mirror) into the site's PostgreSQL.
# Runs the command the local launcher runs (sites/local.ts projectorSpec: node dist/cmd/projector.js) with
# the same PITWALL_* variables; NATS and PostgreSQL come from Consul.
#   nomad job run -var-file=nomad-jobs/vars/a/projector.vars.hcl nomad-jobs/projector.hcl

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
  description = "Name of the peer site (PITWALL_PEER_SITE): its streams are mirrored here, it takes over on loss"
}

variable "peer_domain" {
  type        = string
  description = "JetStream domain of the peer site (PITWALL_PEER_DOMAIN), reached as $JS.<domain>.API over the leafnode link"
}

variable "home_partitions" {
  type        = string
  description = "Comma-separated partitions whose home is this site (PITWALL_HOME_PARTITIONS; sites/ homePartitions)"
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

job "pitwall-projector" {
  region      = var.region
  datacenters = [var.datacenter]
  type        = "service"

  meta {
    site = var.site
  }

  update {
    max_parallel      = 1
    canary            = 1
    auto_promote      = true
    auto_revert       = true
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "5m"
    health_check      = "checks"
  }

  group "projector" {
    count = 1

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "metrics" {}
    }

    service {
      name     = "pitwall-projector"
      port     = "metrics"
      tags     = ["site-${var.site}", "metrics"]
      provider = "consul"

      check {
        name     = "metrics"
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "projector" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        command = var.node_bin
        args    = ["${var.pitwall_root}/dist/cmd/projector.js"]
      }

      env {
        PITWALL_DEPLOYMENT      = var.deployment
        PITWALL_SITE            = var.site
        PITWALL_PARTITIONS      = var.partitions
        PITWALL_DOMAIN          = var.domain
        PITWALL_PEER_SITE       = var.peer_site
        PITWALL_PEER_DOMAIN     = var.peer_domain
        PITWALL_HOME_PARTITIONS = var.home_partitions
        PITWALL_METRICS_PORT    = "${NOMAD_PORT_metrics}"
        PITWALL_METRICS_HOST    = "${NOMAD_IP_metrics}"
      }

      template {
        data        = <<-EOT
        PITWALL_NATS_URL={{ range $i, $s := service "pitwall-nats" }}{{ if $i }},{{ end }}nats://{{ $s.Address }}:{{ $s.Port }}{{ end }}
        {{ with service "pitwall-postgres" }}{{ with index . 0 }}PITWALL_PG_URL=postgres://${var.pg_user}@{{ .Address }}:{{ .Port }}/${var.pg_database}{{ end }}{{ end }}
        EOT
        destination = "secrets/pitwall.env"
        env         = true
        change_mode = "restart"
        splay       = "10s"
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }
}
