/**
 * The Nomad job files of a site and their per-site variables. One HCL file per service (nomad-jobs/<job>.hcl),
 * run once per site with the var file rendered here from the `sites/` topology (checked in under
 * nomad-jobs/vars/<site>/<job>.vars.hcl; test/unit/nomad-jobs.test.ts fails when they drift).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { mappingFor } from '../actors/mod.js'
import { deploymentOf, peerOf, siteOf, type SiteDef, type Topology, validateTopology } from '../sites/topology.js'

/**
 * The jobs of a site, in deploy order (NATS first: everything else finds it through Consul; the site controller
 * after the workers, which provision the streams and the state bucket it reads).
 */
export const JOBS = ['nats', 'worker', 'projector', 'gateway', 'controller', 'prometheus', 'grafana'] as const
export type JobName = (typeof JOBS)[number]

/** Nomad job ID of each file (the `job "<id>"` label). */
export const JOB_IDS: Record<JobName, string> = {
  nats: 'pitwall-nats',
  worker: 'pitwall-worker',
  projector: 'pitwall-projector',
  gateway: 'pitwall-gateway',
  controller: 'pitwall-controller',
  prometheus: 'pitwall-prometheus',
  grafana: 'pitwall-grafana',
}

/**
 * Variables a Nomad task sets beyond the local launcher's spec, and why: inside an allocation the metrics endpoint
 * must listen on the allocation's address (the local default 127.0.0.1 is unreachable for the Consul check). The
 * site controller also gets its failover delay as a job variable (the launcher relies on the same default, 5 s)
 * and Consul discovery: PITWALL_DISCOVERY=consul makes it ask Consul whether the peer datacenter's NATS servers
 * still pass (consul/discovery.ts `peerHealthyFromEnv`), besides the leafnode link and the peer's /healthz.
 */
export const NOMAD_ONLY_ENV: Record<string, readonly string[]> = {
  worker: ['PITWALL_METRICS_HOST'],
  projector: ['PITWALL_METRICS_HOST'],
  gateway: [],
  controller: [
    'PITWALL_METRICS_HOST',
    'PITWALL_FAILOVER_AFTER_MS',
    'PITWALL_DISCOVERY',
    'CONSUL_HTTP_ADDR',
    'CONSUL_HTTP_TOKEN',
    'PITWALL_CONSUL_DATACENTER',
    'PITWALL_PEER_CONSUL_DATACENTER',
  ],
}

/** HTTP port of the site controller (/healthz, /status, /metrics): static, the peer site probes it. */
export const CONTROLLER_PORT = 9481

/** Default of PITWALL_FAILOVER_AFTER_MS (cmd/controller.ts): the controller job's `failover_after_ms`. */
export const FAILOVER_AFTER_MS = 5_000

/**
 * Upper bound of a worker's graceful drain (SIGTERM: final checkpoint of every owned partition, then release).
 * Each partition's checkpoint waits for its pending output acks (JetStream publish timeout 5 s by default), then a
 * KV CAS; partitions drain in parallel. The worker job's kill_timeout must be at least this (tested), so Nomad
 * never SIGKILLs a draining worker; a killed worker's partitions would wait for the lease TTL instead.
 */
export const WORKER_DRAIN_BUDGET_S = 30

/** Directory of the HCL files (the source tree also when running from dist/). */
export const JOBS_DIR: string = existsSync(join(import.meta.dirname, 'worker.hcl'))
  ? import.meta.dirname
  : join(import.meta.dirname, '..', '..', 'nomad-jobs')

export function jobFile(job: JobName): string {
  return join(JOBS_DIR, `${job}.hcl`)
}

export function varsFile(site: string, job: JobName): string {
  return join(JOBS_DIR, 'vars', site, `${job}.vars.hcl`)
}

export async function readJobHcl(job: JobName): Promise<string> {
  return await readFile(jobFile(job), 'utf8')
}

export type VarValue = string | number | boolean

/** User and database of a site's `postgres://user[:pw]@host:port/db` URL (the address comes from Consul). */
function pgParts(site: SiteDef): { pg_user: string; pg_database: string } {
  const u = new URL(site.pgUrl)
  return {
    pg_user: decodeURIComponent(u.username) || 'postgres',
    pg_database: u.pathname.replace(/^\//, '') || 'postgres',
  }
}

/**
 * The two-site variables of the application jobs (docs/sites.md): what `siteEnv` of sites/local.ts emits with a
 * peer: PITWALL_DOMAIN, PITWALL_PEER_SITE, PITWALL_PEER_DOMAIN, PITWALL_HOME_PARTITIONS (comma-separated).
 */
function twoSite(
  topo: Topology,
  site: SiteDef,
): { domain: string; peer_site: string; peer_domain: string; home_partitions: string } {
  const peer = peerOf(topo, site.name)
  return {
    domain: site.domain,
    peer_site: peer.name,
    peer_domain: peer.domain,
    home_partitions: site.homePartitions.join(','),
  }
}

/** The variables of `job` for site `siteName` (one Nomad region and datacenter per site). */
export function siteVars(topo: Topology, siteName: string, job: JobName): Record<string, VarValue> {
  validateTopology(topo)
  const site = siteOf(topo, siteName)
  const common = { region: site.nomadDatacenter, datacenter: site.nomadDatacenter, site: site.name }
  switch (job) {
    case 'nats': {
      const first = site.members[0]
      if (!first) throw new Error('unreachable: validated site without members')
      const map = mappingFor(site.name, topo.partitions)
      return {
        ...common,
        domain: site.domain,
        count: site.members.length,
        client_port: first.clientPort,
        cluster_port: first.clusterPort,
        leafnode_port: first.leafnodePort,
        peer_datacenter: site.leafnodeRemotes.length > 0 ? peerOf(topo, site.name).consulDatacenter : '',
        mapping_from: map.from,
        mapping_to: map.to,
      }
    }
    case 'worker':
    case 'projector':
    case 'gateway':
      return {
        ...common,
        deployment: deploymentOf(topo),
        partitions: topo.partitions,
        ...pgParts(site),
        ...twoSite(topo, site),
      }
    case 'controller':
      return {
        ...common,
        deployment: deploymentOf(topo),
        partitions: topo.partitions,
        ...pgParts(site),
        ...twoSite(topo, site),
        consul_datacenter: site.consulDatacenter,
        peer_datacenter: peerOf(topo, site.name).consulDatacenter,
      }
    case 'prometheus':
    case 'grafana':
      return common
  }
}

/** A var file (HCL attribute syntax) for `vars`. */
export function renderVarFile(vars: Record<string, VarValue>, header: string): string {
  const lines = [`# ${header}`, '# Rendered from sites/ by nomad-jobs/jobs.ts (renderSiteVarFiles); do not edit.']
  const width = Math.max(...Object.keys(vars).map((k) => k.length))
  for (const [k, v] of Object.entries(vars))
    lines.push(`${k.padEnd(width)} = ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
  return lines.join('\n') + '\n'
}

/** Every var file of every site: path relative to nomad-jobs/ -> text. */
export function renderSiteVarFiles(topo: Topology): Map<string, string> {
  const out = new Map<string, string>()
  for (const s of topo.sites) {
    for (const job of JOBS) {
      out.set(
        join('vars', s.name, `${job}.vars.hcl`),
        renderVarFile(siteVars(topo, s.name, job), `site ${s.name}, job ${JOB_IDS[job]}`),
      )
    }
  }
  return out
}
