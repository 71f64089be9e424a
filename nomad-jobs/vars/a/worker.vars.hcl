# site a, job pitwall-worker
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region      = "dc-a"
datacenter  = "dc-a"
site        = "a"
partitions  = 16
pg_user     = "postgres"
pg_database = "pitwall_a"
