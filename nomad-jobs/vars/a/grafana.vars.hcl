# site a, job pitwall-grafana
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region     = "dc-a"
datacenter = "dc-a"
site       = "a"
