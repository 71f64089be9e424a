# ACL policy of the NATS job: register the three NATS services; read the route members of this site and the
# leafnode listeners of the peer site (the dialing site's template reads pitwall-nats-leaf in the peer datacenter).
service "pitwall-nats" {
  policy = "write"
}
service "pitwall-nats-cluster" {
  policy = "write"
}
service "pitwall-nats-leaf" {
  policy = "write"
}
node_prefix "" {
  policy = "read"
}
