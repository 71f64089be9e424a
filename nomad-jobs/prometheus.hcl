# Prometheus of one site: scrapes every pitwall service registered in Consul (consul_sd_configs, the same jobs
# as monitoring/prometheus-consul.yml) and evaluates the alert rules of monitoring/rules/.
#   nomad job run -var-file=nomad-jobs/vars/a/prometheus.vars.hcl nomad-jobs/prometheus.hcl

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
  description = "Site name (external label site=<site>)"
}

variable "port" {
  type        = number
  default     = 9090
  description = "HTTP port of Prometheus (static: Grafana finds it through Consul, operators by address)"
}

variable "pitwall_root" {
  type        = string
  default     = "/opt/pitwall"
  description = "Install directory of the pitwall build (monitoring/rules/ is read from there)"
}

variable "prometheus_bin" {
  type        = string
  default     = "/usr/bin/prometheus"
  description = "Prometheus binary on the clients"
}

variable "retention" {
  type        = string
  default     = "15d"
  description = "TSDB retention"
}

job "pitwall-prometheus" {
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
    healthy_deadline  = "3m"
    progress_deadline = "5m"
    health_check      = "checks"
  }

  group "prometheus" {
    count = 1

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    network {
      port "http" {
        static = var.port
      }
    }

    service {
      name     = "prometheus"
      port     = "http"
      tags     = ["site-${var.site}"]
      provider = "consul"

      check {
        name     = "healthy"
        type     = "http"
        path     = "/-/healthy"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "prometheus" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        command = var.prometheus_bin
        args = [
          "--config.file=${NOMAD_TASK_DIR}/prometheus.yml",
          "--storage.tsdb.path=${NOMAD_ALLOC_DIR}/data/tsdb",
          "--storage.tsdb.retention.time=${var.retention}",
          "--web.listen-address=${NOMAD_ADDR_http}",
          "--web.enable-lifecycle",
        ]
      }

      template {
        data        = <<-EOT
        global:
          scrape_interval: 15s
          evaluation_interval: 15s
          external_labels:
            site: ${var.site}
        rule_files:
          - ${var.pitwall_root}/monitoring/rules/pitwall.rules.yml
        scrape_configs:
        {{- range $job := parseJSON `["pitwall-worker","pitwall-projector","pitwall-gateway","pitwall-site"]` }}
          - job_name: {{ $job }}
            consul_sd_configs:
              - server: '{{ env "attr.unique.network.ip-address" }}:8500'
                services: ['{{ $job }}']
            relabel_configs:
              - source_labels: [__meta_consul_dc]
                target_label: consul_dc
              - source_labels: [__meta_consul_node]
                target_label: node
        {{- end }}
        EOT
        destination = "local/prometheus.yml"
        change_mode = "signal"
        change_signal = "SIGHUP"
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}
