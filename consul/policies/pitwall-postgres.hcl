# ACL policy of the PostgreSQL host's registration (consul/services/pitwall-postgres.hcl).
service "pitwall-postgres" {
  policy = "write"
}
node_prefix "" {
  policy = "read"
}
