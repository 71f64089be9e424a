# Grafana of one site: dashboards from monitoring/, the site's Prometheus as data source (found in Consul).
# Admin password from the Nomad variable nomad/jobs/pitwall-grafana (admin_password).
#   nomad job run -var-file=nomad-jobs/vars/a/grafana.vars.hcl nomad-jobs/grafana.hcl

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
  description = "Site name (tag site-<site> on its Consul service)"
}

variable "port" {
  type        = number
  default     = 3000
  description = "HTTP port of Grafana"
}

variable "pitwall_root" {
  type        = string
  default     = "/opt/pitwall"
  description = "Install directory of the pitwall build (dashboards are read from monitoring/)"
}

variable "grafana_home" {
  type        = string
  default     = "/usr/share/grafana"
  description = "Grafana home path on the clients"
}

job "pitwall-grafana" {
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

  group "grafana" {
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
      name     = "grafana"
      port     = "http"
      tags     = ["site-${var.site}"]
      provider = "consul"

      check {
        name     = "health"
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "grafana" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      config {
        command = "${var.grafana_home}/bin/grafana"
        args    = ["server", "--homepath", var.grafana_home, "--config", "${NOMAD_SECRETS_DIR}/grafana.ini"]
      }

      template {
        data        = <<-EOT
        [server]
        http_addr = {{ env "NOMAD_IP_http" }}
        http_port = ${var.port}
        [paths]
        data = {{ env "NOMAD_ALLOC_DIR" }}/data/grafana
        provisioning = {{ env "NOMAD_TASK_DIR" }}/provisioning
        [security]
        {{ with nomadVar "nomad/jobs/pitwall-grafana" }}admin_password = {{ .admin_password }}{{ end }}
        EOT
        destination = "secrets/grafana.ini"
        change_mode = "restart"
      }

      template {
        data        = <<-EOT
        apiVersion: 1
        datasources:
        {{- range service "prometheus" }}
          - name: Prometheus
            type: prometheus
            access: proxy
            url: http://{{ .Address }}:{{ .Port }}
            isDefault: true
        {{- end }}
        EOT
        destination = "local/provisioning/datasources/prometheus.yml"
        change_mode = "restart"
      }

      template {
        data        = <<-EOT
        apiVersion: 1
        providers:
          - name: pitwall
            type: file
            options:
              path: ${var.pitwall_root}/monitoring/dashboards
        EOT
        destination = "local/provisioning/dashboards/pitwall.yml"
        change_mode = "restart"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
