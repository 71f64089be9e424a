/**
 * The local deployment: the same processes, commands and environment variables the Nomad jobs run, started
 * as child processes on one machine. One description of each service, used by `npm start` and by tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { RUNTIME_DEFAULTS } from '../actors/mod.js'
import { clientUrls, peerOf, siteOf, type Topology } from './topology.js'

export const ROOT = join(import.meta.dirname, '..', '..')

/** A service of a site: the command line and environment (the Nomad job's task uses the same). */
export interface ServiceSpec {
  name: string
  /** Script under dist/, run with the current node. */
  script: string
  env: Record<string, string>
}

export function siteEnv(site: {
  deployment?: string
  site: string
  natsUrl: string
  partitions: number
  pgUrl: string
  domain?: string
  peer?: { site: string; domain: string }
  homePartitions?: readonly number[]
}): Record<string, string> {
  return {
    // The deployment's name (actors/deployment.ts): every process of both sites carries the same one.
    PITWALL_DEPLOYMENT: site.deployment ?? RUNTIME_DEFAULTS.deployment,
    PITWALL_SITE: site.site,
    PITWALL_NATS_URL: site.natsUrl,
    PITWALL_PARTITIONS: String(site.partitions),
    PITWALL_PG_URL: site.pgUrl,
    // Two sites (docs/sites.md): the peer and this site's home partitions.
    ...(site.domain ? { PITWALL_DOMAIN: site.domain } : {}),
    ...(site.peer ? { PITWALL_PEER_SITE: site.peer.site, PITWALL_PEER_DOMAIN: site.peer.domain } : {}),
    ...(site.homePartitions ? { PITWALL_HOME_PARTITIONS: site.homePartitions.join(',') } : {}),
  }
}

/**
 * The environment of site `name`'s services in a two-site topology: its servers, partitions, database, domain, the
 * peer and its home partitions. The local lab (cmd/lab.ts) runs its processes with it; the Ansible role and the
 * Nomad jobs render the same variables (their tests compare against this).
 */
export function topologySiteEnv(topo: Topology, name: string, deployment?: string): Record<string, string> {
  const def = siteOf(topo, name)
  const peer = peerOf(topo, name)
  return siteEnv({
    ...(deployment === undefined ? {} : { deployment }),
    site: def.name,
    natsUrl: clientUrls(def),
    partitions: topo.partitions,
    pgUrl: def.pgUrl,
    domain: def.domain,
    peer: { site: peer.name, domain: peer.domain },
    homePartitions: def.homePartitions,
  })
}

/** The site controller (two sites): failover detection, /status, /metrics on `port`. */
export function controllerSpec(env: Record<string, string>, port: number, peerHealthUrl?: string): ServiceSpec {
  return {
    name: 'controller',
    script: 'cmd/controller.js',
    env: {
      ...env,
      PITWALL_CONTROLLER_PORT: String(port),
      ...(peerHealthUrl ? { PITWALL_PEER_HEALTH_URL: peerHealthUrl } : {}),
    },
  }
}

export function workerSpec(env: Record<string, string>, index: number): ServiceSpec {
  return {
    name: `worker-${index}`,
    script: 'cmd/worker.js',
    env: {
      ...env,
      PITWALL_WORKER_ID: `${env.PITWALL_SITE}-worker-${index}`,
      PITWALL_METRICS_PORT: String(metricsPort(index)),
    },
  }
}

export const PROJECTOR_METRICS_PORT = 9474
export const GATEWAY_PORT = 8080

/** The gateway with auth on: the caller supplies the secrets (generated per run by the local launcher). */
export function gatewaySpec(env: Record<string, string>, auth: { jwtSecret: string; apiKeys: string }): ServiceSpec {
  return {
    name: 'gateway',
    script: 'cmd/gateway.js',
    env: {
      ...env,
      PITWALL_GATEWAY_PORT: String(GATEWAY_PORT),
      PITWALL_GATEWAY_JWT_SECRET: auth.jwtSecret,
      PITWALL_GATEWAY_API_KEYS: auth.apiKeys,
      PITWALL_GATEWAY_DATABASE_URL: env.PITWALL_PG_URL ?? '',
    },
  }
}

/** Metrics port of local worker `index` (9464, 9465, ...). */
export function metricsPort(index: number): number {
  return 9464 + index
}

export function projectorSpec(env: Record<string, string>): ServiceSpec {
  return {
    name: 'projector',
    script: 'cmd/projector.js',
    env: { ...env, PITWALL_METRICS_PORT: String(PROJECTOR_METRICS_PORT) },
  }
}

export interface Running {
  spec: ServiceSpec
  proc: ChildProcess
}

/** Starts a service; its log lines (JSON on stderr) go to `onLog`. */
export function startService(spec: ServiceSpec, onLog: (name: string, line: string) => void): Running {
  const proc = spawn(process.execPath, [join(ROOT, 'dist', spec.script)], {
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let buf = ''
  proc.stderr?.on('data', (d: Buffer) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      onLog(spec.name, buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  return { spec, proc }
}

/** SIGTERM (graceful drain) and wait for the exit. */
export async function stopService(r: Running): Promise<void> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return
  const exited = new Promise((res) => r.proc.once('exit', res))
  r.proc.kill('SIGTERM')
  await exited
}
