# site b, job pitwall-grafana
# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.
region     = "dc-b"
datacenter = "dc-b"
site       = "b"
