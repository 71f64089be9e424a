/**
 * Prepared queries of a site's Consul datacenter (created in each datacenter by ensurePreparedQueries):
 * `pitwall-gateway` resolves passing gateways of the local site, nearest to the asking agent first, and when the
 * local site has none fails over to the peer site's datacenter. Clients and load balancers use it by DNS
 * (`pitwall-gateway.query.consul`) or HTTP (`/v1/query/pitwall-gateway/execute`).
 */
import { peerOf, siteOf, type Topology } from '../sites/topology.js'
import { GATEWAY_QUERY, SERVICES } from './services.js'

/** A prepared query definition in the shape of Consul's POST /v1/query body. */
export interface PreparedQueryDef {
  Name: string
  Service: {
    Service: string
    OnlyPassing: boolean
    Near: string
    Tags: string[]
    Failover: { NearestN: number; Datacenters: string[] }
  }
  DNS: { TTL: string }
}

/** The prepared queries of `site`'s datacenter. */
export function preparedQueries(topo: Topology, site: string): PreparedQueryDef[] {
  siteOf(topo, site)
  const peer = peerOf(topo, site)
  return [
    {
      Name: GATEWAY_QUERY,
      Service: {
        Service: SERVICES.gateway,
        OnlyPassing: true,
        Near: '_agent',
        Tags: [],
        Failover: { NearestN: 0, Datacenters: [peer.consulDatacenter] },
      },
      // Short TTL: a failover must reach DNS clients within seconds.
      DNS: { TTL: '5s' },
    },
  ]
}
