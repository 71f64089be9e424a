# ACL policy of Prometheus: register itself; consul_sd_configs reads the catalog (services and nodes), nothing else.
service "prometheus" {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
