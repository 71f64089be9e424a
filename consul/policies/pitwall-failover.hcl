# ACL policy of the failover controller: read the health of both sites' services (peer by ?dc=), hold its lock
# (a session + KV acquire under pitwall/failover/), and execute the gateway prepared query.
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
query "pitwall-gateway" {
  policy = "read"
}
