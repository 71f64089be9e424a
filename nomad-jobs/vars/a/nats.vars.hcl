# site a, job pitwall-nats
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region          = "dc-a"
datacenter      = "dc-a"
site            = "a"
domain          = "a"
count           = 1
client_port     = 4301
cluster_port    = 6301
leafnode_port   = 7301
peer_datacenter = ""
mapping_from    = "tlm.a.*.*"
mapping_to      = "tlm.a.{{partition(16,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
