/**
 * Renders the nats-server config of every server of a site (docs/sites.md, "Rendered configs").
 *
 * All clients, the leafnode link and the mappings live in the global account `$G` (no `accounts` block on
 * either side, the leafnode remote carries no credentials, so it binds `$G` to `$G`). JetStream domains keep the
 * two sites' JetStream APIs apart over the link (`$JS.<domain>.API`); the site-qualified subjects keep streams
 * from capturing the same message twice. The site listed with `leafnodeRemotes` (by default `b`) dials.
 */
import { join } from 'node:path'
import { mappingFor } from '../actors/mod.js'
import { type NatsMember, type SiteDef, siteOf, type Topology, validateTopology } from './topology.js'

export interface RenderedConfig {
  site: string
  server: string
  /** File name to write it under: `<server>.conf`. */
  file: string
  text: string
  /** JetStream store dir written into the config. */
  storeDir: string
}

export interface RenderOptions {
  /** Root of the JetStream store dirs: each server gets `<storeRoot>/<site>/<server>`. */
  storeRoot: string
}

const q = (s: string): string => JSON.stringify(s)

function renderMember(topo: Topology, site: SiteDef, m: NatsMember, opts: RenderOptions): RenderedConfig {
  const storeDir = join(opts.storeRoot, site.name, m.name)
  const map = mappingFor(site.name, topo.partitions)
  const lines: string[] = [
    `# pitwall site ${site.name}, server ${m.name} (rendered by sites/render.ts; do not edit)`,
    `server_name: ${q(m.name)}`,
    `listen: ${q(`${m.host}:${m.clientPort}`)}`,
    '',
    'jetstream {',
    `  store_dir: ${q(storeDir)}`,
    `  domain: ${q(site.domain)}`,
    '}',
  ]
  if (site.members.length > 1) {
    const routes = site.members.filter((o) => o !== m).map((o) => q(`nats-route://${o.host}:${o.clusterPort}`))
    lines.push(
      '',
      'cluster {',
      `  name: ${q(`pitwall-${site.name}`)}`,
      `  listen: ${q(`${m.host}:${m.clusterPort}`)}`,
      `  routes: [${routes.join(', ')}]`,
      '}',
    )
  }
  lines.push('', 'leafnodes {', `  listen: ${q(`${m.host}:${m.leafnodePort}`)}`)
  if (site.leafnodeRemotes.length > 0) {
    lines.push(`  remotes: [ { urls: [${site.leafnodeRemotes.map(q).join(', ')}] } ]`)
  }
  lines.push('}')
  lines.push(
    '',
    '# devices publish tlm.<site>.<kind>.<id>; the server adds the partition token (actors mappingFor)',
    'mappings {',
    `  ${q(map.from)}: ${q(map.to)}`,
    '}',
  )
  if (m.mqttPort !== undefined) lines.push('', 'mqtt {', `  listen: ${q(`${m.host}:${m.mqttPort}`)}`, '}')
  if (m.websocketPort !== undefined)
    lines.push('', 'websocket {', `  listen: ${q(`${m.host}:${m.websocketPort}`)}`, '  no_tls: true', '}')
  return { site: site.name, server: m.name, file: `${m.name}.conf`, text: lines.join('\n') + '\n', storeDir }
}

/** Configs of every server of `siteName` (validates the topology first). */
export function renderSite(topo: Topology, siteName: string, opts: RenderOptions): RenderedConfig[] {
  validateTopology(topo)
  const site = siteOf(topo, siteName)
  return site.members.map((m) => renderMember(topo, site, m, opts))
}

/** Configs of every server of every site. */
export function renderTopology(topo: Topology, opts: RenderOptions): RenderedConfig[] {
  validateTopology(topo)
  return topo.sites.flatMap((s) => s.members.map((m) => renderMember(topo, s, m, opts)))
}
