# pitwall gateway: HTTP ingest, queries and live state of one site. Runs the command the local launcher runs
# (sites/local.ts gatewaySpec: node dist/cmd/gateway.js) with the same variables. Secrets (JWT secret, API key
# hashes) come from the Nomad variable nomad/jobs/pitwall-gateway; NATS and PostgreSQL from Consul. The service
# is what the Consul prepared query pitwall-gateway resolves (nearest healthy site, failover to the peer).
#   nomad var put nomad/jobs/pitwall-gateway jwt_secret=... api_keys=...
#   nomad job run -var-file=nomad-jobs/vars/a/gateway.vars.hcl nomad-jobs/gateway.hcl

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

variable "count" {
  type        = number
  default     = 2
  description = "Gateway instances of the site"
}

variable "port" {
  type        = number
  default     = 8080
  description = "HTTP port of the gateway (static: load balancers and the prepared query point at it)"
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

job "pitwall-gateway" {
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

  group "gateway" {
    count = var.count

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

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
      name     = "pitwall-gateway"
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

    task "gateway" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        command = var.node_bin
        args    = ["${var.pitwall_root}/dist/cmd/gateway.js"]
      }

      env {
        PITWALL_DEPLOYMENT      = var.deployment
        PITWALL_SITE            = var.site
        PITWALL_PARTITIONS      = var.partitions
        PITWALL_DOMAIN          = var.domain
        PITWALL_PEER_SITE       = var.peer_site
        PITWALL_PEER_DOMAIN     = var.peer_domain
        PITWALL_HOME_PARTITIONS = var.home_partitions
        PITWALL_GATEWAY_PORT    = "${NOMAD_PORT_http}"
      }

      template {
        data        = <<-EOT
        PITWALL_NATS_URL={{ range $i, $s := service "pitwall-nats" }}{{ if $i }},{{ end }}nats://{{ $s.Address }}:{{ $s.Port }}{{ end }}
        {{ with service "pitwall-postgres" }}{{ with index . 0 }}PITWALL_PG_URL=postgres://${var.pg_user}@{{ .Address }}:{{ .Port }}/${var.pg_database}
        PITWALL_GATEWAY_DATABASE_URL=postgres://${var.pg_user}@{{ .Address }}:{{ .Port }}/${var.pg_database}{{ end }}{{ end }}
        EOT
        destination = "secrets/pitwall.env"
        env         = true
        change_mode = "restart"
        splay       = "10s"
      }

      template {
        data        = <<-EOT
        {{ with nomadVar "nomad/jobs/pitwall-gateway" }}PITWALL_GATEWAY_JWT_SECRET={{ .jwt_secret }}
        PITWALL_GATEWAY_API_KEYS={{ .api_keys }}{{ end }}
        EOT
        destination = "secrets/auth.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }
}
