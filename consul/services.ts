/**
 * Consul service names of a pitwall site: registered by the Nomad jobs (nomad-jobs/*.hcl service blocks) and the
 * Ansible roles (PostgreSQL), looked up by the discovery adapter. One list, so a rename cannot miss a side.
 */
export const SERVICES = {
  /** nats-server client port. */
  nats: 'pitwall-nats',
  /** nats-server route port (cluster members of one site). */
  natsCluster: 'pitwall-nats-cluster',
  /** nats-server leafnode port (the peer site dials it). */
  natsLeaf: 'pitwall-nats-leaf',
  worker: 'pitwall-worker',
  projector: 'pitwall-projector',
  gateway: 'pitwall-gateway',
  /** The site controller (failover): /healthz, /status, /metrics; the peer controller probes its /healthz. */
  controller: 'pitwall-site',
  postgres: 'pitwall-postgres',
  prometheus: 'prometheus',
  grafana: 'grafana',
} as const
export type ServiceName = (typeof SERVICES)[keyof typeof SERVICES]

/** Name of the prepared query that resolves the nearest healthy gateway (fails over to the peer datacenter). */
export const GATEWAY_QUERY = 'pitwall-gateway'

/** KV prefix of the failover controller's lock and state. */
export const FAILOVER_KV_PREFIX = 'pitwall/failover/'
