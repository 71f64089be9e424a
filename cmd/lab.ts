/**
 * `npm start`: both local sites on this machine (docs/sites.md). For each site: its nats-server (or a 3-node
 * cluster with PITWALL_CLUSTERED=1) from the rendered configs, its PostgreSQL database, two workers, the
 * projector (its own and the peer's outputs), the gateway and the site controller: the same commands and
 * environment the Nomad jobs use. A simulator feeds both sites (each reading routed to the site that owns its
 * partition), Prometheus scrapes everything when installed, and the launcher prints where to look and how to
 * fail over. Ctrl-C drains everything.
 *
 * Settings: PITWALL_* (docs/configuration.md; PITWALL_DEPLOYMENT names the deployment, default `default`); PITWALL_PG_BASE (default postgres://postgres@127.0.0.1:5432),
 * PITWALL_LOCAL_DIR (JetStream stores, default .pitwall-local/), PITWALL_SIM_SENSORS / PITWALL_SIM_CARS.
 */
import { jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import pg from 'pg'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  compileConfig, connectNats, partitionOf, PitwallError, provision, SiteRouter, tlmSubject, type RuntimeConfig,
} from '../actors/mod.js'
import { renderPrometheusConfig, startPrometheus, findBinary, LOCAL_PROMETHEUS_PORT, type RunningPrometheus } from '../monitoring/prometheus.js'
import {
  controllerSpec, gatewaySpec, GATEWAY_PORT, metricsPort, PROJECTOR_METRICS_PORT, projectorSpec, ROOT, type Running,
  type ServiceSpec, siteEnv, startService, stopService, workerSpec,
} from '../sites/local.js'
import { localTopology } from '../sites/local-topology.js'
import { LocalSites, waitForLink } from '../sites/servers.js'
import { Simulator } from '../simulators/simulator.js'
import { clientUrls, deploymentOf, peerOf, siteOf } from '../sites/topology.js'

const WORKERS_PER_SITE = 2
const CONTROLLER_PORT = 9481

async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url)
  const name = u.pathname.slice(1)
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const c = new pg.Client({ connectionString: admin.toString() })
  await c.connect()
  try {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (r.rowCount === 0) await c.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`)
  } finally {
    await c.end()
  }
}

interface SitePlan {
  name: string
  cfg: RuntimeConfig
  pgUrl: string
  gatewayPort: number
  controllerPort: number
  metricsPorts: number[]
  projectorPort: number
  services: ServiceSpec[]
}

async function main(): Promise<void> {
  const clustered = process.env.PITWALL_CLUSTERED === '1'
  const partitions = Number(process.env.PITWALL_PARTITIONS ?? 16)
  const topo = localTopology({
    clustered, partitions, ...(process.env.PITWALL_PG_BASE ? { pgBase: process.env.PITWALL_PG_BASE } : {}),
    ...(process.env.PITWALL_DEPLOYMENT ? { deployment: process.env.PITWALL_DEPLOYMENT } : {}),
  })
  const dir = process.env.PITWALL_LOCAL_DIR ?? join(ROOT, '.pitwall-local', clustered ? 'clustered' : 'single')
  const sites = new LocalSites(topo, dir)
  // Ctrl-C reaches every process of the terminal's group: the servers must outlive the workers' drain.
  sites.detached = true
  process.on('exit', () => sites.killNow())
  process.stdout.write(`starting nats-servers of sites a and b (${clustered ? '3-node cluster each' : 'one server each'}; stores in ${dir})...\n`)
  await sites.start()
  // The site definition the `pitwall site` commands of the drill read (--topology <file> --site <s>).
  const topoFile = join(dir, 'sites.json')
  await writeFile(topoFile, `${JSON.stringify(topo, null, 2)}\n`)
  // Secrets for this run only: nothing is stored in the repository or on disk.
  const adminKey = randomBytes(24).toString('hex')
  const auth = {
    jwtSecret: randomBytes(32).toString('hex'),
    apiKeys: `local-admin:admin:sha256:${createHash('sha256').update(adminKey).digest('hex')}`,
  }
  const conns: NatsConnection[] = []
  const plans: SitePlan[] = []
  // Recorded with both sites' streams, buckets and databases.
  const deployment = deploymentOf(topo)
  for (const [i, def] of topo.sites.entries()) {
    const peer = peerOf(topo, def.name)
    const env = siteEnv({
      deployment, site: def.name, natsUrl: clientUrls(def), partitions: topo.partitions, pgUrl: def.pgUrl, domain: def.domain,
      peer: { site: peer.name, domain: peer.domain }, homePartitions: def.homePartitions,
    })
    const cfg = compileConfig({
      deployment, site: def.name, natsUrl: clientUrls(def), partitions: topo.partitions, domain: def.domain,
      peer: { site: peer.name, domain: peer.domain }, homePartitions: def.homePartitions,
    })
    await ensureDatabase(def.pgUrl)
    const nc = await connectNats(cfg.natsUrl, `pitwall-launcher-${def.name}`)
    conns.push(nc)
    await provision(nc, await jetstreamManager(nc), cfg)
    const workerIdx = Array.from({ length: WORKERS_PER_SITE }, (_, k) => i * WORKERS_PER_SITE + k)
    const gatewayPort = GATEWAY_PORT + i
    const controllerPort = CONTROLLER_PORT + i
    const projectorPort = PROJECTOR_METRICS_PORT + i
    const peerControllerPort = CONTROLLER_PORT + (1 - i)
    const gw = gatewaySpec(env, auth)
    const proj = projectorSpec(env)
    plans.push({
      name: def.name, cfg, pgUrl: def.pgUrl, gatewayPort, controllerPort, projectorPort,
      metricsPorts: workerIdx.map(metricsPort),
      services: [
        { ...proj, name: `${def.name}/projector`, env: { ...proj.env, PITWALL_METRICS_PORT: String(projectorPort) } },
        ...workerIdx.map((k) => ({ ...workerSpec(env, k), name: `${def.name}/worker-${k}` })),
        {
          ...gw, name: `${def.name}/gateway`,
          env: {
            ...gw.env, PITWALL_GATEWAY_PORT: String(gatewayPort),
            // The console's Sites view reads both controllers through the gateway.
            PITWALL_GATEWAY_SITE_STATUS_URLS: topo.sites.map((d, k) => `${d.name}=http://127.0.0.1:${CONTROLLER_PORT + k}/status`).join(','),
          },
        },
        { ...controllerSpec(env, controllerPort, `http://127.0.0.1:${peerControllerPort}/healthz`), name: `${def.name}/controller` },
      ],
    })
  }
  const [a, b] = plans as [SitePlan, SitePlan]
  process.stdout.write('waiting for the leafnode link between the sites...\n')
  await waitForLink(conns[1] as NatsConnection, siteOf(topo, 'a').domain)
  await waitForLink(conns[0] as NatsConnection, siteOf(topo, 'b').domain)

  const verbose = process.env.PITWALL_DEBUG !== undefined
  const onLog = (name: string, line: string): void => {
    if (verbose || /"level":"(warn|error)"/.test(line) || /partition acquired|started|failover:/.test(line)) process.stderr.write(`[${name}] ${line}\n`)
  }
  const services: Running[] = plans.flatMap((p) => p.services).map((s) => startService(s, onLog))
  let prometheus: RunningPrometheus | null = null
  if (findBinary('prometheus')) {
    const targets = (ports: number[]): string[] => ports.map((p) => `127.0.0.1:${p}`)
    prometheus = await startPrometheus({
      port: LOCAL_PROMETHEUS_PORT, dataDir: join(dir, 'prometheus'),
      configText: renderPrometheusConfig({
        scrapeIntervalS: 5,
        jobs: [
          { job: 'pitwall-worker', targets: targets(plans.flatMap((p) => p.metricsPorts)) },
          { job: 'pitwall-projector', targets: targets(plans.map((p) => p.projectorPort)) },
          { job: 'pitwall-gateway', targets: targets(plans.map((p) => p.gatewayPort)) },
          { job: 'pitwall-site', targets: targets(plans.map((p) => p.controllerPort)) },
        ],
      }),
    }).catch((err: unknown) => {
      process.stderr.write(`prometheus did not start (${String(err)}); going on without it\n`)
      return null
    })
  }
  const sensors = Number(process.env.PITWALL_SIM_SENSORS ?? 200)
  const cars = Number(process.env.PITWALL_SIM_CARS ?? 4)
  let shuttingDown = false
  const routers: SiteRouter[] = []
  const shutdown = async (): Promise<void> => {
    if (shuttingDown) return
    shuttingDown = true
    process.stdout.write('\nstopping: simulator, then workers drain and release their partitions...\n')
    for (const r of routers) r.stop()
    await Promise.all(services.map(stopService))
    await prometheus?.stop()
    for (const nc of conns) await nc.drain().catch(() => undefined)
    await sites.stopAll()
    process.exit(process.exitCode ?? 0)
  }
  for (const r of services) {
    r.proc.once('exit', (code, signal) => {
      if (shuttingDown) return
      process.stderr.write(`\n${r.spec.name} exited (code ${code ?? '-'}, signal ${signal ?? '-'}); see its log above. Stopping.\n`)
      process.exitCode = 1
      void shutdown()
    })
  }
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())

  const siteCmd = (p: SitePlan, sub: string): string =>
    `node dist/cmd/pitwall.js site ${sub} --topology ${topoFile} --site ${p.name}${p.cfg.deployment === 'default' ? '' : ` --deployment ${p.cfg.deployment}`}`
  const lines = [
    '',
    `operator console  http://127.0.0.1:${a.gatewayPort}/console/   (site b: http://127.0.0.1:${b.gatewayPort}/console/)`,
    `                  sign in with the admin API key ${adminKey}`,
    '',
    `pitwall: two sites (a, b), ${topo.partitions} partitions (a home of ${a.cfg.homePartitions[0]}-${a.cfg.homePartitions.at(-1)}, b of ${b.cfg.homePartitions[0]}-${b.cfg.homePartitions.at(-1)}), ${WORKERS_PER_SITE} workers, projector, gateway and controller per site; simulator: ${sensors} sensors at 1 Hz, ${cars} race cars at 10 Hz`,
    '',
  ]
  for (const p of plans) {
    lines.push(
      `site ${p.name}`,
      `  NATS          ${p.cfg.natsUrl}   (JetStream domain ${p.cfg.domain}; streams TLM, OUT, KV pw_state; mirrors of ${p.cfg.peer?.site ?? ''}: TLM_${p.cfg.peer?.site ?? ''}, OUT_${p.cfg.peer?.site ?? ''}, STATE_${p.cfg.peer?.site ?? ''})`,
      `  PostgreSQL    ${p.pgUrl}   psql ${p.pgUrl} -c 'SELECT entity, type, severity, state FROM alerts ORDER BY updated_at DESC LIMIT 10'`,
      `  gateway       http://127.0.0.1:${p.gatewayPort}   (docs: /docs, metrics: /metrics)`,
      `  controller    http://127.0.0.1:${p.controllerPort}/status`,
      `  metrics       ${[...p.metricsPorts, p.projectorPort].map((x) => `http://127.0.0.1:${x}/metrics`).join('   ')}`,
      '',
    )
  }
  lines.push(
    `admin API key for this run: ${adminKey}`,
    `  curl -H 'X-API-Key: ${adminKey}' http://127.0.0.1:${a.gatewayPort}/v1/entities/sensor/env-0001/state`,
    `  curl -H 'X-API-Key: ${adminKey}' 'http://127.0.0.1:${b.gatewayPort}/v1/alerts?state=open'`,
    ...(prometheus ? [`Prometheus     ${prometheus.url}`] : ['Prometheus     not installed (Debian: apt-get install prometheus); skipped']),
    '',
    'failover drill:',
    `  site status    ${siteCmd(b, 'status')}`,
    `  lose site a    kill -9 the a/* processes and a's nats-server (pgrep -f ${join(dir, 'a')}); b's controller fails over after 5 s`,
    `  or by hand     ${siteCmd(b, 'failover')}`,
    `  failback       (a running again, link UP in '${siteCmd(a, 'status')}') ${siteCmd(a, 'failback')}`,
    '  procedure      docs/sites.md, "Procedure: failover, restart, failback"',
    '  stop           Ctrl-C (workers drain and release their partitions)',
    '', '',
  )
  process.stdout.write(lines.join('\n'))

  // The simulator feeds both sites: each reading to the site that owns its partition now.
  for (const [i, p] of plans.entries()) {
    const r = new SiteRouter(conns[i] as NatsConnection, p.cfg)
    await r.start()
    routers.push(r)
  }
  await feed(conns, routers, topo.partitions, sensors, cars, () => shuttingDown)
}

/** Real-time feed: items of the seeded simulator at their delivery time, published to their owner site. */
async function feed(conns: NatsConnection[], routers: SiteRouter[], P: number, sensors: number, cars: number, stop: () => boolean): Promise<void> {
  const sim = new Simulator({ seed: 1, sensors, cars, sensorHz: 1, carHz: 10, site: 'a', partitions: P, anomalies: true, startTs: Date.now() })
  const js = conns.map((nc) => jetstream(nc))
  const siteIdx = (s: string): number => (s === 'a' ? 0 : 1)
  const started = Date.now()
  let sent = 0
  let last = Date.now()
  let pending: Array<Promise<PubAck | undefined>> = []
  while (!stop()) {
    const item = sim.next()
    const wait = item.at - Date.now()
    if (wait > 0) {
      await Promise.all(pending)
      pending = []
      await new Promise((r) => setTimeout(r, wait))
    }
    const { kind, id } = item
    const p = partitionOf(kind, id, P)
    // Route with the router of the site the device is near (even entities at a, odd at b).
    const near = sent % 2
    const owner = (routers[near] as SiteRouter).siteFor(p)
    pending.push((js[siteIdx(owner)] ?? js[0])!.publish(tlmSubject(owner, p, kind, id), JSON.stringify(item.reading), { timeout: 5_000 }).catch(() => undefined))
    sent++
    if (Date.now() - last > 10_000) {
      last = Date.now()
      process.stdout.write(`simulator: ${sent} readings sent (${Math.round(sent / ((Date.now() - started) / 1000))}/s)\n`)
    }
  }
}

main().catch((err: unknown) => {
  const code = err instanceof PitwallError ? err.code : 'PW_START_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
