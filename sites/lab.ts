/**
 * The local lab's supervisor (`npm start`, cmd/lab.ts): it runs each site's nats-servers and services, keeps the
 * state file (sites/lab-state.ts) true, and serves the launcher's control endpoint that `pitwall lab kill-site`
 * and `restore-site` use (sites/lab-cli.ts). A site killed on purpose, or a process that dies on its own, never
 * stops the other site: the lab is for watching a site go and come back (docs/sites.md, "The drill on the local
 * lab"). Only Ctrl-C (or SIGTERM) stops everything.
 *
 * Restoring a site follows the restart procedure of docs/sites.md ("Restarting a site"): its nats-servers
 * first, then the leafnode link in both directions, then its workers, projector, gateway and controller. The
 * workers pass the peer-map gate by themselves (they take nothing the peer owns); failback stays the
 * operator's command.
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  LAB_STATE_VERSION,
  type LabProcess,
  type LabSite,
  type LabState,
  removeLabState,
  writeLabState,
} from './lab-state.js'
import { type Running, type ServiceSpec, startService, stopService } from './local.js'
import type { LocalSites } from './servers.js'

export interface LabSitePlan {
  name: string
  natsUrl: string
  pgUrl: string
  gatewayUrl: string
  controllerUrl: string
  /** Its services in start order (projector, workers, gateway, controller). */
  services: ServiceSpec[]
  /** Where each service listens (by service name), for the state file. */
  urls: Record<string, string>
}

export interface LabOptions {
  servers: LocalSites
  plans: LabSitePlan[]
  /** The state file's fixed part (everything but sites and times). */
  base: Omit<LabState, 'sites' | 'updatedAt' | 'startedAt' | 'control' | 'version' | 'pid'>
  token: string
  /** Waits until each site reaches the other's JetStream over the leafnode link. */
  waitLinks: () => Promise<void>
  onLog: (name: string, line: string) => void
  /** Lines for the operator (the launcher's terminal). */
  say: (line: string) => void
}

type Op = 'killing' | 'restoring'

export class LabSupervisor {
  private readonly o: LabOptions
  private readonly running = new Map<string, Running>()
  private readonly exits = new Map<string, { status: 'killed' | 'exited'; exit: string }>()
  private readonly busy = new Map<string, Op>()
  private readonly startedAt = new Date().toISOString()
  private server: Server | undefined
  private controlUrl = ''
  private writing: Promise<void> = Promise.resolve()
  private stopping = false

  constructor(o: LabOptions) {
    this.o = o
  }

  /** Starts the control endpoint and every site's services (their nats-servers already run). */
  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((res) => this.server?.listen(0, '127.0.0.1', res))
    this.controlUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    for (const p of this.o.plans) this.startServices(p)
    this.watchServers()
    await this.saveState()
  }

  /** Records Prometheus's URL once it runs (it starts after the services it scrapes). */
  async setPrometheus(url: string | null): Promise<void> {
    this.o.base.prometheus = url
    await this.saveState()
  }

  /** True while every process of the site runs (the simulator sends only to such sites). */
  isUp(site: string): boolean {
    return this.siteState(site) === 'up'
  }

  /** kill -9 of every process of `site` (services, then its nats-servers); the other site keeps running. */
  async killSite(site: string, say: (line: string) => void): Promise<void> {
    await this.exclusive(site, 'killing', async () => {
      const plan = this.plan(site)
      for (const s of plan.services) {
        const r = this.running.get(s.name)
        if (r === undefined) continue
        this.running.delete(s.name)
        this.exits.set(s.name, { status: 'killed', exit: 'SIGKILL (pitwall lab kill-site)' })
        if (r.proc.exitCode === null && r.proc.signalCode === null) {
          const exited = new Promise((res) => r.proc.once('exit', res))
          r.proc.kill('SIGKILL')
          await exited
        }
        say(`killed ${s.name} (pid ${r.proc.pid ?? '?'}) with SIGKILL`)
      }
      const servers = this.o.servers.servers().filter((x) => x.config.site === site)
      for (const x of servers)
        this.exits.set(serverName(x.config.server), { status: 'killed', exit: 'SIGKILL (pitwall lab kill-site)' })
      await this.o.servers.kill(site)
      for (const x of servers)
        say(`killed nats-server ${x.config.server} (pid ${x.proc.pid ?? '?'}) with SIGKILL; its store stays`)
    })
  }

  /** Starts what of `site` is not running: nats-servers, the link, then its services (docs/sites.md). */
  async restoreSite(site: string, say: (line: string) => void): Promise<void> {
    await this.exclusive(site, 'restoring', async () => {
      const plan = this.plan(site)
      say(`starting the nats-servers of ${site} (stores kept)`)
      await this.o.servers.start(site)
      this.watchServers()
      await this.saveState()
      say('waiting for the leafnode link in both directions...')
      await this.o.waitLinks()
      say(
        `link up; starting ${site}'s services: its workers take no partition before they hold the peer's map (the peer-map gate)`,
      )
      const started = this.startServices(plan)
      for (const s of started) say(`started ${s.spec.name} (pid ${s.proc.pid ?? '?'})`)
    })
  }

  /** Ctrl-C: services drain (SIGTERM), then the servers stop; the state file goes. */
  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all([...this.running.values()].map(stopService))
    this.server?.close()
    await this.writing
    await removeLabState(this.o.base.dir)
  }

  private plan(site: string): LabSitePlan {
    const p = this.o.plans.find((x) => x.name === site)
    if (!p) throw new Error(`no site ${JSON.stringify(site)} (sites: ${this.o.plans.map((x) => x.name).join(', ')})`)
    return p
  }

  private async exclusive(site: string, op: Op, run: () => Promise<void>): Promise<void> {
    this.plan(site)
    const other = this.busy.get(site)
    if (other) throw new Error(`site ${site} is ${other} already`)
    this.busy.set(site, op)
    await this.saveState()
    try {
      await run()
    } finally {
      this.busy.delete(site)
      await this.saveState()
    }
  }

  private startServices(plan: LabSitePlan): Running[] {
    const started: Running[] = []
    for (const spec of plan.services) {
      const r = this.running.get(spec.name)
      if (r && r.proc.exitCode === null && r.proc.signalCode === null) continue
      const run = startService(spec, this.o.onLog)
      this.running.set(spec.name, run)
      this.exits.delete(spec.name)
      run.proc.once('exit', (code, signal) => this.onExit(run, code, signal))
      started.push(run)
    }
    void this.saveState()
    return started
  }

  /** A process that died on its own: said once, recorded; the lab goes on. */
  private onExit(run: Running, code: number | null, signal: string | null): void {
    if (this.stopping || this.running.get(run.spec.name) !== run) return
    this.running.delete(run.spec.name)
    const exit = `code ${code ?? '-'}, signal ${signal ?? '-'}`
    this.exits.set(run.spec.name, { status: 'exited', exit })
    const site = run.spec.name.split('/')[0] ?? '?'
    this.o.say(
      `${run.spec.name} exited (${exit}); see its log above. The lab keeps running: 'pitwall lab status' shows what runs, ` +
        `'pitwall lab restore-site ${site}' starts what is missing of site ${site}`,
    )
    void this.saveState()
  }

  private readonly watched = new WeakSet<object>()
  private watchServers(): void {
    for (const x of this.o.servers.servers()) {
      if (this.watched.has(x.proc)) continue
      this.watched.add(x.proc)
      this.exits.delete(serverName(x.config.server))
      x.proc.once('exit', (code, signal) => {
        const name = serverName(x.config.server)
        if (this.stopping || this.exits.get(name)?.status === 'killed') return
        const exit = `code ${code ?? '-'}, signal ${signal ?? '-'}`
        this.exits.set(name, { status: 'exited', exit })
        this.o.say(
          `${name} exited (${exit}); the lab keeps running ('pitwall lab restore-site ${x.config.site}' starts it again)`,
        )
        void this.saveState()
      })
    }
  }

  private processes(site: string): LabProcess[] {
    const plan = this.plan(site)
    const servers = this.o.servers.servers().filter((x) => x.config.site === site)
    const out: LabProcess[] = []
    for (const c of this.o.servers.configsOf(site)) {
      const name = serverName(c.server)
      const x = servers.find(
        (y) => y.config.server === c.server && y.proc.exitCode === null && y.proc.signalCode === null,
      )
      out.push(procEntry(name, x?.proc.pid ?? null, this.exits.get(name), c.url))
    }
    for (const s of plan.services) {
      const r = this.running.get(s.name)
      out.push(procEntry(s.name, r?.proc.pid ?? null, this.exits.get(s.name), plan.urls[s.name]))
    }
    return out
  }

  private siteState(site: string): LabSite['state'] {
    const op = this.busy.get(site)
    if (op) return op
    const ps = this.processes(site)
    const up = ps.filter((p) => p.status === 'running').length
    return up === ps.length ? 'up' : up === 0 ? 'down' : 'partial'
  }

  /** The state file as it is now (writes are serialised: the last one wins). */
  snapshot(): LabState {
    const sites: Record<string, LabSite> = {}
    for (const p of this.o.plans) {
      sites[p.name] = {
        state: this.siteState(p.name),
        natsUrl: p.natsUrl,
        pgUrl: p.pgUrl,
        gatewayUrl: p.gatewayUrl,
        controllerUrl: p.controllerUrl,
        processes: this.processes(p.name),
      }
    }
    return {
      ...this.o.base,
      version: LAB_STATE_VERSION,
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      control: { url: this.controlUrl, token: this.o.token },
      sites,
    }
  }

  private async saveState(): Promise<void> {
    if (this.stopping) return
    this.writing = this.writing
      .then(() => (this.stopping ? undefined : writeLabState(this.o.base.dir, this.snapshot())))
      .catch((err: unknown) => {
        this.o.say(`cannot write the lab state file: ${String(err)}`)
      })
    await this.writing
  }

  /** POST /sites/<s>/kill | /sites/<s>/restore, GET /state; answers in lines, the last `done` or `failed: ...`. */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!authorized(req, this.o.token)) {
      res
        .writeHead(401, { 'content-type': 'text/plain' })
        .end('failed: PW_LAB_COMMAND_FAILED: wrong or missing control token\n')
      return
    }
    const m = /^\/sites\/([a-z][a-z0-9-]*)\/(kill|restore)$/.exec(req.url ?? '')
    if (req.method === 'GET' && req.url === '/state') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.snapshot()))
      return
    }
    if (req.method !== 'POST' || !m) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('failed: PW_LAB_COMMAND_FAILED: unknown control request\n')
      return
    }
    const [, site, what] = m as unknown as [string, string, 'kill' | 'restore']
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
    const say = (line: string): void => {
      res.write(`${line}\n`)
      this.o.say(`[lab ${what}-site ${site}] ${line}`)
    }
    try {
      if (what === 'kill') await this.killSite(site, say)
      else await this.restoreSite(site, say)
      res.end('done\n')
    } catch (err) {
      res.end(`failed: PW_LAB_COMMAND_FAILED: ${err instanceof Error ? err.message : String(err)}\n`)
    }
  }
}

const serverName = (server: string): string => `nats-server ${server}`

function procEntry(
  name: string,
  pid: number | null,
  ended: { status: 'killed' | 'exited'; exit: string } | undefined,
  url: string | undefined,
): LabProcess {
  const base: LabProcess =
    pid !== null
      ? { name, pid, status: 'running' }
      : { name, pid: null, status: ended?.status ?? 'exited', ...(ended ? { exit: ended.exit } : {}) }
  return url === undefined ? base : { ...base, url }
}

function authorized(req: IncomingMessage, token: string): boolean {
  const given = Buffer.from(String(req.headers.authorization ?? ''))
  const want = Buffer.from(`Bearer ${token}`)
  return given.length === want.length && timingSafeEqual(given, want)
}
