# site b, job pitwall-nats
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region          = "dc-b"
datacenter      = "dc-b"
site            = "b"
domain          = "b"
count           = 1
client_port     = 4401
cluster_port    = 6401
leafnode_port   = 7401
peer_datacenter = "dc-a"
mapping_from    = "tlm.b.*.*"
mapping_to      = "tlm.b.{{partition(16,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
