/**
 * `npm start`: both local sites on this machine (docs/sites.md). For each site: its nats-server (or a 3-node
 * cluster with PITWALL_CLUSTERED=1) from the rendered configs, its PostgreSQL database, two workers, the
 * projector (its own and the peer's outputs), the gateway and the site controller: the same commands and
 * environment the Nomad jobs use. A simulator feeds both sites (each reading routed to the site that owns its
 * partition), Prometheus scrapes everything when installed, and the launcher prints where to look and how to
 * fail over. Ctrl-C drains everything.
 *
 * Settings: PITWALL_* (docs/configuration.md; PITWALL_DEPLOYMENT names the deployment, default `default`); PITWALL_PG_BASE (default postgres://postgres@127.0.0.1:5432),
 * PITWALL_LOCAL_DIR (JetStream stores and the state file lab.json, default .pitwall-local/<single|clustered>),
 * PITWALL_SIM_SENSORS / PITWALL_SIM_CARS, PITWALL_LAB_DB_PREFIX (databases <prefix>a and <prefix>b, default
 * pitwall_), PITWALL_LAB_PORTS (`fixed`, the documented ports, or `free`: every port
 * asked from the OS, for a second lab or a test beside others).
 */
import { jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import pg from 'pg'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import {
  compileConfig,
  ConfigError,
  connectNats,
  partitionOf,
  PitwallError,
  provision,
  ranges,
  SiteRouter,
  tlmSubject,
  type RuntimeConfig,
} from '../actors/mod.js'
import {
  renderPrometheusConfig,
  startPrometheus,
  findBinary,
  LOCAL_PROMETHEUS_PORT,
  type RunningPrometheus,
} from '../monitoring/prometheus.js'
import { LabError } from '../sites/errors.js'
import { LabSupervisor, type LabSitePlan } from '../sites/lab.js'
import {
  controllerSpec,
  gatewaySpec,
  GATEWAY_PORT,
  metricsPort,
  PROJECTOR_METRICS_PORT,
  projectorSpec,
  ROOT,
  type ServiceSpec,
  topologySiteEnv,
  workerSpec,
} from '../sites/local.js'
import { localTopology, type PortKind } from '../sites/local-topology.js'
import { LocalSites, waitForLink } from '../sites/servers.js'
import { Simulator } from '../simulators/simulator.js'
import { clientUrls, deploymentOf, peerOf, siteOf } from '../sites/topology.js'

const WORKERS_PER_SITE = 2
const CONTROLLER_PORT = 9481

/** Every port of the lab: the documented fixed ones, or (PITWALL_LAB_PORTS=free) ports the OS hands out. */
interface LabPorts {
  nats: (site: string, index: number, kind: PortKind) => number
  /** By site index. */
  gateway: number[]
  controller: number[]
  projector: number[]
  /** By worker index (site i has workers i*WORKERS_PER_SITE...). */
  worker: number[]
  prometheus: number
}

/** `n` distinct ports free now: all listened on at once, so the OS hands out no port twice. */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer())
  const ports = await Promise.all(
    servers.map(
      (srv) =>
        new Promise<number>((res, rej) => {
          srv.once('error', rej)
          srv.listen(0, '127.0.0.1', () => res((srv.address() as { port: number }).port))
        }),
    ),
  )
  await Promise.all(servers.map((srv) => new Promise((res) => srv.close(res))))
  return ports
}

async function labPorts(mode: string | undefined, members: number): Promise<LabPorts> {
  const sites = 2
  const workers = sites * WORKERS_PER_SITE
  if (mode === undefined || mode === '' || mode === 'fixed') {
    return {
      nats: (site, i, kind) =>
        (({ a: { client: 4301, cluster: 6301, leafnode: 7301 }, b: { client: 4401, cluster: 6401, leafnode: 7401 } })[
          site
        ]?.[kind] ?? 0) + i,
      gateway: [GATEWAY_PORT, GATEWAY_PORT + 1],
      controller: [CONTROLLER_PORT, CONTROLLER_PORT + 1],
      projector: [PROJECTOR_METRICS_PORT, PROJECTOR_METRICS_PORT + 1],
      worker: Array.from({ length: workers }, (_, k) => metricsPort(k)),
      prometheus: LOCAL_PROMETHEUS_PORT,
    }
  }
  if (mode !== 'free') throw new ConfigError('PITWALL_LAB_PORTS', `must be fixed or free, got ${JSON.stringify(mode)}`)
  const kinds: PortKind[] = ['client', 'cluster', 'leafnode']
  const free = await freePorts(sites * members * kinds.length + sites * 3 + workers + 1)
  const take = (n: number): number[] => free.splice(0, n)
  const nats = new Map<string, number>()
  for (const site of ['a', 'b'])
    for (let i = 0; i < members; i++) for (const kind of kinds) nats.set(`${site}/${i}/${kind}`, take(1)[0] as number)
  return {
    nats: (site, i, kind) => nats.get(`${site}/${i}/${kind}`) ?? 0,
    gateway: take(sites),
    controller: take(sites),
    projector: take(sites),
    worker: take(workers),
    prometheus: take(1)[0] as number,
  }
}

/** PITWALL_LAB_DB_PREFIX: a database name prefix (the names are quoted nowhere else). */
function labDbPrefix(raw: string): string {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(raw))
    throw new ConfigError('PITWALL_LAB_DB_PREFIX', `must match [a-z_][a-z0-9_]{0,40}, got ${JSON.stringify(raw)}`)
  return raw
}

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

interface SitePlan extends LabSitePlan {
  cfg: RuntimeConfig
  gatewayPort: number
  controllerPort: number
  metricsPorts: number[]
  projectorPort: number
}

async function main(): Promise<void> {
  const clustered = process.env.PITWALL_CLUSTERED === '1'
  const partitions = Number(process.env.PITWALL_PARTITIONS ?? 16)
  const ports = await labPorts(process.env.PITWALL_LAB_PORTS, clustered ? 3 : 1)
  const topo = localTopology({
    clustered,
    partitions,
    port: ports.nats,
    ...(process.env.PITWALL_PG_BASE ? { pgBase: process.env.PITWALL_PG_BASE } : {}),
    ...(process.env.PITWALL_LAB_DB_PREFIX ? { pgPrefix: labDbPrefix(process.env.PITWALL_LAB_DB_PREFIX) } : {}),
    ...(process.env.PITWALL_DEPLOYMENT ? { deployment: process.env.PITWALL_DEPLOYMENT } : {}),
  })
  const defaultDir = join(ROOT, '.pitwall-local', clustered ? 'clustered' : 'single')
  const dir = process.env.PITWALL_LOCAL_DIR ?? defaultDir
  const sites = new LocalSites(topo, dir)
  // Ctrl-C reaches every process of the terminal's group: the servers must outlive the workers' drain.
  sites.detached = true
  process.on('exit', () => sites.killNow())
  process.stdout.write(
    `starting nats-servers of sites a and b (${clustered ? '3-node cluster each' : 'one server each'}; stores in ${dir})...\n`,
  )
  await sites.start()
  // The site definition the `pitwall site` commands of the drill read (--topology <file> --site <s>).
  const topoFile = join(dir, 'sites.json')
  await writeFile(topoFile, `${JSON.stringify(topo, null, 2)}\n`)
  // Secrets for this run only: nothing is stored in the repository; the tokens the drill's commands need are in
  // lab.json (mode 0600), the admin API key is printed for the console.
  const adminKey = randomBytes(24).toString('hex')
  const auth = {
    jwtSecret: randomBytes(32).toString('hex'),
    apiKeys: `local-admin:admin:sha256:${createHash('sha256').update(adminKey).digest('hex')}`,
  }
  // The site controllers accept failover/failback only with this token (the gateways relay the console's commands
  // with it); nobody else on loopback can move partitions. Kept in lab.json (mode 0600), never printed.
  const controllerToken = randomBytes(24).toString('hex')
  const conns: NatsConnection[] = []
  const plans: SitePlan[] = []
  // Recorded with both sites' streams, buckets and databases.
  const deployment = deploymentOf(topo)
  for (const [i, def] of topo.sites.entries()) {
    const peer = peerOf(topo, def.name)
    const env = topologySiteEnv(topo, def.name, deployment)
    const cfg = compileConfig({
      deployment,
      site: def.name,
      natsUrl: clientUrls(def),
      partitions: topo.partitions,
      domain: def.domain,
      peer: { site: peer.name, domain: peer.domain },
      homePartitions: def.homePartitions,
    })
    await ensureDatabase(def.pgUrl)
    const nc = await connectNats(cfg.natsUrl, `pitwall-launcher-${def.name}`)
    conns.push(nc)
    await provision(nc, await jetstreamManager(nc), cfg)
    plans.push(
      sitePlan({
        def: { name: def.name, pgUrl: def.pgUrl },
        i,
        env,
        cfg,
        auth,
        controllerToken,
        ports,
        siteNames: topo.sites.map((d) => d.name),
      }),
    )
  }
  const [a, b] = plans as [SitePlan, SitePlan]
  const waitLinks = async (): Promise<void> => {
    await waitForLink(conns[1] as NatsConnection, siteOf(topo, 'a').domain, 60_000)
    await waitForLink(conns[0] as NatsConnection, siteOf(topo, 'b').domain, 60_000)
  }
  process.stdout.write('waiting for the leafnode link between the sites...\n')
  await waitLinks()

  const verbose = process.env.PITWALL_DEBUG !== undefined
  const onLog = (name: string, line: string): void => {
    if (
      verbose ||
      /"level":"(warn|error)"/.test(line) ||
      /partition acquired|started|failover:|peer-map gate open/.test(line)
    )
      process.stderr.write(`[${name}] ${line}\n`)
  }
  const lab = new LabSupervisor({
    servers: sites,
    plans,
    token: randomBytes(24).toString('hex'),
    waitLinks,
    onLog,
    say: (line) => process.stderr.write(`${line}\n`),
    base: {
      mode: clustered ? 'clustered' : 'single',
      dir,
      topology: topoFile,
      deployment,
      partitions: topo.partitions,
      prometheus: null,
      controllerToken,
    },
  })
  await lab.start()
  let prometheus: RunningPrometheus | null = null
  if (findBinary('prometheus')) {
    const targets = (ps: number[]): string[] => ps.map((p) => `127.0.0.1:${p}`)
    prometheus = await startPrometheus({
      port: ports.prometheus,
      dataDir: join(dir, 'prometheus'),
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
  await lab.setPrometheus(prometheus?.url ?? null)
  const sensors = Number(process.env.PITWALL_SIM_SENSORS ?? 200)
  const cars = Number(process.env.PITWALL_SIM_CARS ?? 4)
  let shuttingDown = false
  const routers: SiteRouter[] = []
  const shutdown = async (): Promise<void> => {
    if (shuttingDown) return
    shuttingDown = true
    process.stdout.write('\nstopping: simulator, then workers drain and release their partitions...\n')
    for (const r of routers) r.stop()
    await lab.stop()
    await prometheus?.stop()
    for (const nc of conns) await nc.drain().catch(() => undefined)
    await sites.stopAll()
    process.exit(process.exitCode ?? 0)
  }
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())

  const lines = [
    '',
    `operator console  http://127.0.0.1:${a.gatewayPort}/console/   (site b: http://127.0.0.1:${b.gatewayPort}/console/)`,
    `                  sign in with the admin API key ${adminKey}`,
    '',
    `pitwall: two sites (a, b), ${topo.partitions} partitions (a home of ${ranges(a.cfg.homePartitions)}, b of ${ranges(b.cfg.homePartitions)}), ${WORKERS_PER_SITE} workers, projector, gateway and controller per site; simulator: ${sensors} sensors at 1 Hz, ${cars} race cars at 10 Hz`,
    '',
  ]
  for (const p of plans) {
    lines.push(
      `site ${p.name}`,
      `  NATS          ${p.cfg.natsUrl}   (JetStream domain ${p.cfg.domain}; streams TLM, OUT, KV pw_state; mirrors of ${p.cfg.peer?.site ?? ''}: TLM_${p.cfg.peer?.site ?? ''}, OUT_${p.cfg.peer?.site ?? ''}, STATE_${p.cfg.peer?.site ?? ''})`,
      `  PostgreSQL    ${p.pgUrl}   psql ${p.pgUrl} -c 'SELECT entity, type, severity, state FROM alerts ORDER BY updated_at DESC LIMIT 10'`,
      `  gateway       ${p.gatewayUrl}   (docs: /docs, metrics: /metrics)`,
      `  controller    ${p.controllerUrl}`,
      `  metrics       ${[...p.metricsPorts, p.projectorPort].map((x) => `http://127.0.0.1:${x}/metrics`).join('   ')}`,
      '',
    )
  }
  lines.push(
    `admin API key for this run: ${adminKey}`,
    `  curl -H 'X-API-Key: ${adminKey}' ${a.gatewayUrl}/v1/entities/sensor/env-0001/state`,
    `  curl -H 'X-API-Key: ${adminKey}' '${b.gatewayUrl}/v1/alerts?state=open'`,
    ...(prometheus
      ? [`Prometheus     ${prometheus.url}`]
      : ['Prometheus     not installed (Debian: apt-get install prometheus); skipped']),
    `lab state      ${join(dir, 'lab.json')} (pids, ports; 'pitwall state', 'pitwall partitions' and 'pitwall lab' read it)`,
    '',
    ...drill({ a, b, topoFile, labFlag: dir === defaultDir ? '' : ` --lab ${dir}`, deployment }),
    '  stop           Ctrl-C (workers drain and release their partitions)',
    '',
    '',
  )
  process.stdout.write(lines.join('\n'))

  // The simulator feeds both sites: each reading to the site that owns its partition now.
  for (const [i, p] of plans.entries()) {
    const r = new SiteRouter(conns[i] as NatsConnection, p.cfg)
    await r.start()
    routers.push(r)
  }
  await feed(
    conns,
    routers,
    topo.partitions,
    sensors,
    cars,
    (site) => lab.isUp(site),
    () => shuttingDown,
  )
}

/** A site's services with this run's ports and secrets: the same specs at start and at restore-site. */
function sitePlan(o: {
  def: { name: string; pgUrl: string }
  i: number
  env: Record<string, string>
  cfg: RuntimeConfig
  auth: { jwtSecret: string; apiKeys: string }
  controllerToken: string
  ports: LabPorts
  siteNames: string[]
}): SitePlan {
  const { def, i, env, ports } = o
  const workerIdx = Array.from({ length: WORKERS_PER_SITE }, (_, k) => i * WORKERS_PER_SITE + k)
  const gatewayPort = ports.gateway[i] as number
  const controllerPort = ports.controller[i] as number
  const projectorPort = ports.projector[i] as number
  const metricsPorts = workerIdx.map((k) => ports.worker[k] as number)
  const controllerUrl = (k: number): string => `http://127.0.0.1:${ports.controller[k] as number}`
  const gw = gatewaySpec(env, o.auth)
  const proj = projectorSpec(env)
  const services: ServiceSpec[] = [
    { ...proj, name: `${def.name}/projector`, env: { ...proj.env, PITWALL_METRICS_PORT: String(projectorPort) } },
    ...workerIdx.map((k, j) => {
      const w = workerSpec(env, k)
      return { ...w, name: `${def.name}/worker-${k}`, env: { ...w.env, PITWALL_METRICS_PORT: String(metricsPorts[j]) } }
    }),
    {
      ...gw,
      name: `${def.name}/gateway`,
      env: {
        ...gw.env,
        PITWALL_GATEWAY_PORT: String(gatewayPort),
        // The console's Sites view reads both controllers through the gateway.
        PITWALL_GATEWAY_SITE_STATUS_URLS: o.siteNames.map((d, k) => `${d}=${controllerUrl(k)}/status`).join(','),
        // ... and relays the console's failover/failback to them with the controllers' command token.
        PITWALL_GATEWAY_SITE_COMMAND_TOKEN: o.controllerToken,
      },
    },
    (() => {
      const c = controllerSpec(env, controllerPort, `${controllerUrl(1 - i)}/healthz`)
      return {
        ...c,
        name: `${def.name}/controller`,
        env: { ...c.env, PITWALL_CONTROLLER_COMMAND_TOKEN: o.controllerToken },
      }
    })(),
  ]
  const urls: Record<string, string> = {
    [`${def.name}/projector`]: `http://127.0.0.1:${projectorPort}/metrics`,
    [`${def.name}/gateway`]: `http://127.0.0.1:${gatewayPort}`,
    [`${def.name}/controller`]: `${controllerUrl(i)}/status`,
    ...Object.fromEntries(
      workerIdx.map((k, j) => [`${def.name}/worker-${k}`, `http://127.0.0.1:${metricsPorts[j]}/metrics`]),
    ),
  }
  return {
    name: def.name,
    cfg: o.cfg,
    natsUrl: o.cfg.natsUrl,
    pgUrl: def.pgUrl,
    gatewayPort,
    controllerPort,
    projectorPort,
    metricsPorts,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    controllerUrl: `${controllerUrl(i)}/status`,
    services,
    urls,
  }
}

/**
 * The failover drill, one numbered `$` command per step and, under it, what to look for. test/integration/lab-drill.test.ts
 * runs these lines in order (a line `repeat until '<text>'` means: run again until the output holds the text).
 */
function drill(o: { a: SitePlan; b: SitePlan; topoFile: string; labFlag: string; deployment: string }): string[] {
  const pitwall = 'node dist/cmd/pitwall.js'
  const site = (p: SitePlan, sub: string, extra = ''): string =>
    `${pitwall} site ${sub} --topology ${o.topoFile} --site ${p.name}${o.deployment === 'default' ? '' : ` --deployment ${o.deployment}`}${extra}`
  const lab = (sub: string): string => `${pitwall} lab ${sub}${o.labFlag}`
  const { a, b } = o
  const steps: Array<[string, string]> = [
    [lab('status'), `both sites UP; a owns ${ranges(a.cfg.homePartitions)}, b owns ${ranges(b.cfg.homePartitions)}`],
    [lab(`kill-site ${a.name}`), `lose site a: kill -9 of its services and nats-server; site b keeps running`],
    [
      site(b, 'status'),
      `repeat until 'role: SURVIVOR' (b's controller fails over about 5 s after it lost a; 'link DOWN' before)`,
    ],
    [
      lab('status'),
      `site a DOWN, site b UP and owning every partition; readings keep reaching b's PostgreSQL (${b.pgUrl})`,
    ],
    [
      lab(`restore-site ${a.name}`),
      "a's nats-server, the link, then its workers (they take nothing b owns: the peer-map gate), projector, gateway, controller",
    ],
    [site(a, 'status'), `repeat until 'role: DEGRADED' (link UP; b still holds a's home partitions)`],
    [
      site(a, 'failback'),
      `hand a's partitions back (controlled; about 10 s): 'all ${a.cfg.homePartitions.length} partitions processing again'`,
    ],
    [lab('status'), `both sites UP; a owns ${ranges(a.cfg.homePartitions)} again, b ${ranges(b.cfg.homePartitions)}`],
  ]
  return [
    `failover drill (run each step from ${ROOT}; docs/sites.md, "The drill on the local lab"):`,
    ...steps.flatMap(([cmd, what], k) => [`  ${k + 1}. $ ${cmd}`, `       ${what}`]),
    `  by hand         ${site(b, 'failover')}   (operator failover, without waiting for the controller)`,
    '  procedure      docs/sites.md, "Procedure: failover, restart, failback"',
  ]
}

/**
 * Real-time feed: items of the seeded simulator at their delivery time, published to their owner site. A device
 * near a site that is down reaches the other one; a reading whose owner site is down is not sent (counted).
 */
async function feed(
  conns: NatsConnection[],
  routers: SiteRouter[],
  P: number,
  sensors: number,
  cars: number,
  isUp: (site: string) => boolean,
  stop: () => boolean,
): Promise<void> {
  const sim = new Simulator({
    seed: 1,
    sensors,
    cars,
    sensorHz: 1,
    carHz: 10,
    site: 'a',
    partitions: P,
    anomalies: true,
    startTs: Date.now(),
  })
  const js = conns.map((nc) => jetstream(nc))
  const names = ['a', 'b']
  const siteIdx = (s: string): number => (s === 'a' ? 0 : 1)
  const started = Date.now()
  let sent = 0
  let unsent = 0
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
    // Route with the router of the site the device is near (even entities at a, odd at b), or the other if down.
    const near = isUp(names[sent % 2] as string) ? sent % 2 : 1 - (sent % 2)
    const owner = (routers[near] as SiteRouter).siteFor(p)
    sent++
    if (!isUp(owner)) {
      unsent++
      continue
    }
    pending.push(
      (js[siteIdx(owner)] ?? js[0])!
        .publish(tlmSubject(owner, p, kind, id), JSON.stringify(item.reading), { timeout: 5_000 })
        .catch(() => undefined),
    )
    if (Date.now() - last > 10_000) {
      last = Date.now()
      process.stdout.write(
        `simulator: ${sent - unsent} readings sent (${Math.round((sent - unsent) / ((Date.now() - started) / 1000))}/s)${unsent > 0 ? `, ${unsent} not sent: their owner site was down` : ''}\n`,
      )
    }
  }
}

main().catch((err: unknown) => {
  const code = err instanceof PitwallError || err instanceof LabError ? err.code : 'PW_START_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
