# The site controller, registered with the local Consul agent when it runs under systemd (ansible role pitwall
# renders the same as JSON with the host's address; the Nomad job registers it itself). The peer site's
# controller finds it here (pitwall-site@<dc>) and probes /healthz; Prometheus scrapes /metrics (tag metrics).
service {
  name = "pitwall-site"
  id   = "pitwall-site-a"
  port = 9481
  tags = ["site-a", "http", "metrics"]

  check {
    id       = "pitwall-site-healthz"
    name     = "controller /healthz"
    http     = "http://127.0.0.1:9481/healthz"
    interval = "5s"
    timeout  = "2s"
  }
}
