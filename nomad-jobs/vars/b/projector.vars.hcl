# site b, job pitwall-projector
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region          = "dc-b"
datacenter      = "dc-b"
site            = "b"
deployment      = "default"
partitions      = 16
pg_user         = "postgres"
pg_database     = "pitwall_b"
domain          = "b"
peer_site       = "a"
peer_domain     = "a"
home_partitions = "8,9,10,11,12,13,14,15"
