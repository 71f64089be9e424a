# Consul server agent of site b (datacenter dc-b), federated over the WAN with dc-a. dc-a is the primary
# datacenter (ACL authority). Addresses come from the host (GetInterfaceIP / retry_join lists from the inventory
# in ansible/roles/consul); this file is the reference the role's template follows.
datacenter         = "dc-b"
primary_datacenter = "dc-a"
data_dir           = "/var/lib/consul"
server             = true
bootstrap_expect   = 3
client_addr        = "127.0.0.1"
bind_addr          = "{{ GetPrivateInterfaces | attr \"address\" }}"

# LAN: the other servers of this site; WAN: the servers of the peer site (federation).
retry_join     = ["consul-b-1", "consul-b-2", "consul-b-3"]
retry_join_wan = ["consul-a-1", "consul-a-2", "consul-a-3"]

ports {
  http     = 8500
  dns      = 8600
  serf_lan = 8301
  serf_wan = 8302
  server   = 8300
}

acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
  down_policy              = "extend-cache"
}

performance {
  raft_multiplier = 1
}

telemetry {
  prometheus_retention_time = "60s"
  disable_hostname          = true
}
