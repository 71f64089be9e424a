# ACL policy of the site controller job (nomad-jobs/controller.hcl; the pitwall role's systemd unit): register its
# own service pitwall-site, read the NATS servers and PostgreSQL of its site, the peer controller's address and
# the health of the peer's services (both datacenters: the peer by ?dc=), and hold the failover lock (a session
# + KV acquire under pitwall/failover/, the same rules as pitwall-failover).
service "pitwall-site" {
  policy = "write"
}
service_prefix "pitwall-" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
session_prefix "" {
  policy = "write"
}
key_prefix "pitwall/failover/" {
  policy = "write"
}
