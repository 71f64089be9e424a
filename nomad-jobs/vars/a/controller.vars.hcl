# site a, job pitwall-controller
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region            = "dc-a"
datacenter        = "dc-a"
site              = "a"
deployment        = "default"
partitions        = 16
pg_user           = "postgres"
pg_database       = "pitwall_a"
domain            = "a"
peer_site         = "b"
peer_domain       = "b"
home_partitions   = "0,1,2,3,4,5,6,7"
consul_datacenter = "dc-a"
peer_datacenter   = "dc-b"
