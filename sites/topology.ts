/**
 * Site definitions (issue 4): two sites, each its own NATS cluster and JetStream domain, joined by one leafnode
 * link. `validateTopology` rejects every contradiction with a ConfigError naming the item. docs/sites.md
 * describes the fields; sites/render.ts turns a definition into nats-server configs.
 */
import { ConfigError, DEPLOYMENT_PATTERN, RUNTIME_DEFAULTS, SITE_PATTERN } from '../actors/mod.js'

/** One nats-server of a site's cluster. */
export interface NatsMember {
  /** server_name; unique across both sites. */
  name: string
  host: string
  clientPort: number
  /** Route port; used only when the site has more than one member. */
  clusterPort: number
  /** Leafnode listen port of this member. */
  leafnodePort: number
  /** Optional MQTT listener (needs JetStream, which every member has). */
  mqttPort?: number
  /** Optional websocket listener (plain, no TLS: loopback / behind a TLS terminator). */
  websocketPort?: number
}

export interface SiteDef {
  /** Site name: the subject token (`tlm.<name>...`); matches SITE_PATTERN. */
  name: string
  /** JetStream domain of the site's cluster (the peer reaches it as `$JS.<domain>.API`). */
  domain: string
  members: NatsMember[]
  /**
   * Leafnode remote URLs this site dials: `nats-leaf://host:leafnodePort` of the peer's members. Exactly one site
   * dials (non-empty list); the other only listens (empty list).
   */
  leafnodeRemotes: string[]
  pgUrl: string
  consulDatacenter: string
  nomadDatacenter: string
  /** Partitions whose home is this site; both sites' lists partition 0..P-1. */
  homePartitions: number[]
}

export interface Topology {
  /** The deployment both sites belong to (PITWALL_DEPLOYMENT, actors/deployment.ts); default `default`. */
  deployment?: string
  /** Number of partitions P (the `{{partition(P,1,2)}}` mapping and the runtime's PITWALL_PARTITIONS). */
  partitions: number
  sites: SiteDef[]
}

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const DC_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535
}

/** Parses `nats-leaf://host:port` (also nats:// and tls:// schemes); undefined if malformed. */
export function parseLeafUrl(u: string): { host: string; port: number } | undefined {
  let url: URL
  try {
    url = new URL(u)
  } catch {
    return undefined
  }
  if (!['nats-leaf:', 'nats:', 'tls:'].includes(url.protocol)) return undefined
  const port = Number(url.port)
  if (!isPort(port) || url.hostname === '') return undefined
  return { host: url.hostname, port }
}

/** The deployment's name (PITWALL_DEPLOYMENT of every service of both sites). */
export function deploymentOf(topo: Topology): string {
  return topo.deployment ?? RUNTIME_DEFAULTS.deployment
}

/** The peer of `site` (the other of the two sites). */
export function peerOf(topo: Topology, site: string): SiteDef {
  const peer = topo.sites.find((s) => s.name !== site)
  if (!peer) throw new ConfigError('sites', `no peer for site '${site}'`)
  return peer
}

/** Checks a definition; throws a ConfigError naming the first offending item. Returns the definition. */
export function validateTopology(def: Topology): Topology {
  if (def.deployment !== undefined && !DEPLOYMENT_PATTERN.test(def.deployment)) {
    throw new ConfigError('deployment', `must match ${DEPLOYMENT_PATTERN}, got ${JSON.stringify(def.deployment)}`)
  }
  const P = def.partitions
  if (!Number.isInteger(P) || P < 1 || P > 4096)
    throw new ConfigError('partitions', `must be an integer 1..4096, got ${String(P)}`)
  if (!Array.isArray(def.sites) || def.sites.length !== 2)
    throw new ConfigError(
      'sites',
      `exactly two sites are required, got ${Array.isArray(def.sites) ? def.sites.length : 'none'}`,
    )
  const siteNames = new Set<string>()
  const domains = new Set<string>()
  const serverNames = new Set<string>()
  const ports = new Map<string, string>()
  const claim = (host: string, port: unknown, item: string): void => {
    if (!isPort(port)) throw new ConfigError(item, `must be a port 1..65535, got ${JSON.stringify(port)}`)
    const key = `${host}:${port}`
    const prev = ports.get(key)
    if (prev) throw new ConfigError(item, `port ${key} is already used by ${prev}`)
    ports.set(key, item)
  }
  for (const s of def.sites) {
    const at = `sites.${String(s.name)}`
    if (typeof s.name !== 'string' || !SITE_PATTERN.test(s.name))
      throw new ConfigError(`${at}.name`, `must match ${SITE_PATTERN}, got ${JSON.stringify(s.name)}`)
    if (siteNames.has(s.name)) throw new ConfigError(`${at}.name`, `duplicate site '${s.name}'`)
    siteNames.add(s.name)
    if (typeof s.domain !== 'string' || !NAME_PATTERN.test(s.domain))
      throw new ConfigError(`${at}.domain`, `must match ${NAME_PATTERN}, got ${JSON.stringify(s.domain)}`)
    if (domains.has(s.domain)) throw new ConfigError(`${at}.domain`, `duplicate JetStream domain '${s.domain}'`)
    domains.add(s.domain)
    if (typeof s.pgUrl !== 'string' || !/^postgres(ql)?:\/\//.test(s.pgUrl))
      throw new ConfigError(`${at}.pgUrl`, `must be a postgres:// URL, got ${JSON.stringify(s.pgUrl)}`)
    if (typeof s.consulDatacenter !== 'string' || !DC_PATTERN.test(s.consulDatacenter))
      throw new ConfigError(
        `${at}.consulDatacenter`,
        `must match ${DC_PATTERN}, got ${JSON.stringify(s.consulDatacenter)}`,
      )
    if (typeof s.nomadDatacenter !== 'string' || !DC_PATTERN.test(s.nomadDatacenter))
      throw new ConfigError(
        `${at}.nomadDatacenter`,
        `must match ${DC_PATTERN}, got ${JSON.stringify(s.nomadDatacenter)}`,
      )
    if (!Array.isArray(s.members) || s.members.length < 1)
      throw new ConfigError(`${at}.members`, 'at least one nats-server is required')
    if (s.members.length === 2)
      throw new ConfigError(`${at}.members`, 'a JetStream cluster needs 1 or >= 3 members (2 cannot keep a quorum)')
    s.members.forEach((m, i) => {
      const mat = `${at}.members[${i}]`
      if (typeof m.name !== 'string' || !NAME_PATTERN.test(m.name))
        throw new ConfigError(`${mat}.name`, `must match ${NAME_PATTERN}, got ${JSON.stringify(m.name)}`)
      if (serverNames.has(m.name)) throw new ConfigError(`${mat}.name`, `duplicate server name '${m.name}'`)
      serverNames.add(m.name)
      if (typeof m.host !== 'string' || m.host === '' || /[\s"/:]/.test(m.host))
        throw new ConfigError(`${mat}.host`, `must be a host name or IPv4 address, got ${JSON.stringify(m.host)}`)
      claim(m.host, m.clientPort, `${mat}.clientPort`)
      if (s.members.length > 1) claim(m.host, m.clusterPort, `${mat}.clusterPort`)
      claim(m.host, m.leafnodePort, `${mat}.leafnodePort`)
      if (m.mqttPort !== undefined) claim(m.host, m.mqttPort, `${mat}.mqttPort`)
      if (m.websocketPort !== undefined) claim(m.host, m.websocketPort, `${mat}.websocketPort`)
    })
  }
  // The leafnode link: exactly one site dials, and only the peer's leafnode listeners.
  const dialers = def.sites.filter((s) => s.leafnodeRemotes.length > 0)
  if (dialers.length !== 1) {
    throw new ConfigError(
      'sites.*.leafnodeRemotes',
      `exactly one site must dial its peer (non-empty leafnodeRemotes), got ${dialers.length}`,
    )
  }
  for (const s of def.sites) {
    const peer = peerOf(def, s.name)
    s.leafnodeRemotes.forEach((u, i) => {
      const item = `sites.${s.name}.leafnodeRemotes[${i}]`
      const p = parseLeafUrl(u)
      if (!p) throw new ConfigError(item, `must be nats-leaf://host:port, got ${JSON.stringify(u)}`)
      const own = s.members.find((m) => m.host === p.host && m.leafnodePort === p.port)
      if (own) throw new ConfigError(item, `${u} is this site's own leafnode listener (${own.name}), not the peer's`)
      if (!peer.members.some((m) => m.host === p.host && m.leafnodePort === p.port)) {
        throw new ConfigError(item, `${u} is not a leafnode listener of peer site '${peer.name}' (unknown peer)`)
      }
    })
  }
  // Home partitions: disjoint, together exactly 0..P-1.
  const home = new Map<number, string>()
  for (const s of def.sites) {
    if (!Array.isArray(s.homePartitions))
      throw new ConfigError(`sites.${s.name}.homePartitions`, 'must be a list of partitions')
    for (const p of s.homePartitions) {
      const item = `sites.${s.name}.homePartitions`
      if (!Number.isInteger(p) || p < 0 || p >= P)
        throw new ConfigError(item, `partition ${String(p)} is outside 0..${P - 1}`)
      const prev = home.get(p)
      if (prev !== undefined)
        throw new ConfigError(
          item,
          `partition ${p} is already the home of site '${prev}'${prev === s.name ? ' (listed twice)' : ''}`,
        )
      home.set(p, s.name)
    }
  }
  const missing: number[] = []
  for (let p = 0; p < P; p++) if (!home.has(p)) missing.push(p)
  if (missing.length > 0)
    throw new ConfigError(
      'sites.*.homePartitions',
      `partitions ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''} have no home site`,
    )
  return def
}

/** The site named `name`; ConfigError if unknown. */
export function siteOf(topo: Topology, name: string): SiteDef {
  const s = topo.sites.find((x) => x.name === name)
  if (!s) throw new ConfigError('site', `unknown site '${name}' (known: ${topo.sites.map((x) => x.name).join(', ')})`)
  return s
}

/** Client URLs of a site's servers, for PITWALL_NATS_URL. */
export function clientUrls(site: SiteDef): string {
  return site.members.map((m) => `nats://${m.host}:${m.clientPort}`).join(',')
}
