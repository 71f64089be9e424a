# ACL policy of the gateway job: register its own service, read the NATS servers and PostgreSQL of the site.
service "pitwall-gateway" {
  policy = "write"
}
service "pitwall-nats" {
  policy = "read"
}
service "pitwall-postgres" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
