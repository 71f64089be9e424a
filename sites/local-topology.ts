/**
 * The embedded default topology: sites `a` and `b` on 127.0.0.1, one nats-server each (or a 3-node cluster per
 * site with `clustered`). Site `b` dials site `a`'s leafnode listeners (docs/sites.md, "Who dials").
 *
 * Default ports (clustered members add 1 and 2): a client 4301, route 6301, leafnode 7301;
 * b client 4401, route 6401, leafnode 7401. Tests pass `port` to use free ports instead.
 */
import { type NatsMember, type SiteDef, type Topology, validateTopology } from './topology.js'

export type PortKind = 'client' | 'cluster' | 'leafnode'

export interface LocalTopologyOptions {
  /** A 3-node cluster per site instead of one server. */
  clustered?: boolean
  /** Partitions P (default 16); a is home of the first half, b of the rest. */
  partitions?: number
  /** Port of member `index` of `site` for `kind`; default: the fixed ports above. */
  port?: (site: string, index: number, kind: PortKind) => number
  /** PostgreSQL base URL without database; each site gets database `pitwall_<site>`. */
  pgBase?: string
  /** Database name prefix: site s gets `<prefix><s>` (default `pitwall_`). */
  pgPrefix?: string
  /** The deployment's name (PITWALL_DEPLOYMENT); default `default`. */
  deployment?: string
}

const BASE: Record<string, Record<PortKind, number>> = {
  a: { client: 4301, cluster: 6301, leafnode: 7301 },
  b: { client: 4401, cluster: 6401, leafnode: 7401 },
}

export function localTopology(opts: LocalTopologyOptions = {}): Topology {
  const P = opts.partitions ?? 16
  const n = opts.clustered ? 3 : 1
  const port = opts.port ?? ((site: string, i: number, kind: PortKind) => (BASE[site]?.[kind] ?? 0) + i)
  const pgBase = opts.pgBase ?? 'postgres://postgres@127.0.0.1:5432'
  const half = Math.ceil(P / 2)
  const site = (name: string, home: number[]): SiteDef => {
    const members: NatsMember[] = []
    for (let i = 0; i < n; i++) {
      members.push({
        name: n === 1 ? `${name}` : `${name}-${i + 1}`,
        host: '127.0.0.1',
        clientPort: port(name, i, 'client'),
        clusterPort: port(name, i, 'cluster'),
        leafnodePort: port(name, i, 'leafnode'),
      })
    }
    return {
      name,
      domain: name,
      members,
      leafnodeRemotes: [],
      pgUrl: `${pgBase}/${opts.pgPrefix ?? 'pitwall_'}${name}`,
      consulDatacenter: `dc-${name}`,
      nomadDatacenter: `dc-${name}`,
      homePartitions: home,
    }
  }
  const a = site(
    'a',
    Array.from({ length: half }, (_, i) => i),
  )
  const b = site(
    'b',
    Array.from({ length: P - half }, (_, i) => half + i),
  )
  b.leafnodeRemotes = a.members.map((m) => `nats-leaf://${m.host}:${m.leafnodePort}`)
  return validateTopology({ ...(opts.deployment ? { deployment: opts.deployment } : {}), partitions: P, sites: [a, b] })
}

/** The named local variants (every one is rendered and checked with `nats-server -t` in test/integration/sites.test.ts). */
export const LOCAL_TOPOLOGIES: Record<string, () => Topology> = {
  single: () => localTopology(),
  clustered: () => localTopology({ clustered: true }),
}
