# ACL policy of Grafana: register itself and find Prometheus.
service "grafana" {
  policy = "write"
}
service "prometheus" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
