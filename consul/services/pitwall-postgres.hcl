# PostgreSQL of a site, registered with the local Consul agent on the database host (ansible role postgresql
# installs this with the host's address and port). Workers, projectors and gateways find it as pitwall-postgres.
service {
  name = "pitwall-postgres"
  id   = "pitwall-postgres"
  port = 5432
  tags = ["primary"]

  check {
    id       = "pitwall-postgres-tcp"
    name     = "PostgreSQL accepts connections"
    tcp      = "127.0.0.1:5432"
    interval = "10s"
    timeout  = "2s"
  }

  check {
    id       = "pitwall-postgres-ready"
    name     = "pg_isready"
    args     = ["/usr/bin/pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]
    interval = "15s"
    timeout  = "5s"
  }
}
