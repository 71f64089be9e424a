/**
 * Runs the nats-servers of a topology on this machine from their rendered configs (sites/render.ts): used by
 * the local launcher (`npm start`), the failover tests and `npm run bench:failover`. Each server keeps its
 * store dir across a kill and restart, like a datacenter coming back.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
export { peerReachable } from '../actors/mod.js'
import { renderTopology, type RenderedConfig } from './render.js'
import { clientUrls, siteOf, type Topology } from './topology.js'

export interface RunningServer {
  config: RenderedConfig
  proc: ChildProcess
  log(): string
}

export class LocalSites {
  readonly topo: Topology
  private readonly dir: string
  private readonly bin: string
  private readonly configs: RenderedConfig[]
  private readonly running = new Map<string, RunningServer>()
  /**
   * Start servers in their own process group, so a terminal's Ctrl-C (sent to the whole foreground group) does
   * not stop them before the workers have drained (`npm start`); the owner stops them (stopAll, or killNow on exit).
   */
  detached = false

  /**
   * `dir` holds the config files and, under `js/`, the JetStream stores. `dialVia` replaces the leafnode remote
   * URLs a dialing site's servers use (e.g. a proxy a split test can cut), after the topology was validated.
   */
  constructor(topo: Topology, dir: string, bin = process.env.NATS_SERVER_BIN ?? 'nats-server', dialVia?: string) {
    this.topo = topo
    this.dir = dir
    this.bin = bin
    // The listening site advertises the same address: a remote otherwise learns the real leafnode URL from the
    // listener's INFO and reconnects around the proxy.
    const via = dialVia === undefined ? undefined : new URL(dialVia).host
    this.configs = renderTopology(topo, { storeRoot: join(dir, 'js') }).map((c) =>
      via === undefined
        ? c
        : {
            ...c,
            text: c.text.includes('remotes:')
              ? c.text.replace(
                  /remotes: \[ \{ urls: \[[^\]]*\] \} \]/,
                  `remotes: [ { urls: [${JSON.stringify(dialVia)}] } ]`,
                )
              : c.text.replace(/leafnodes \{\n/, `leafnodes {\n  advertise: ${JSON.stringify(via)}\n`),
          },
    )
  }

  /** Client URLs of a site (comma-separated, as PITWALL_NATS_URL takes them). */
  natsUrl(site: string): string {
    return clientUrls(siteOf(this.topo, site))
  }

  /** Starts every server of `site` (or of both sites) and waits until each accepts clients. */
  async start(site?: string): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    // A server still running is left alone (restoring a site starts only what is missing).
    const alive = (c: RenderedConfig): boolean => {
      const r = this.running.get(c.server)
      return r !== undefined && r.proc.exitCode === null && r.proc.signalCode === null
    }
    for (const c of this.configs.filter((x) => (site === undefined || x.site === site) && !alive(x))) {
      const file = join(this.dir, c.file)
      await writeFile(file, c.text)
      const proc = spawn(this.bin, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'], detached: this.detached })
      let log = ''
      proc.stderr?.on('data', (d: Buffer) => {
        log = (log + d.toString()).slice(-20_000)
      })
      this.running.set(c.server, { config: c, proc, log: () => log })
    }
    for (const s of this.topo.sites.filter((x) => site === undefined || x.name === site)) {
      for (const m of s.members) await waitForClients(`nats://${m.host}:${m.clientPort}`, this.running.get(m.name))
    }
  }

  /** kill -9 of every server still running, synchronously (for a process 'exit' handler). */
  killNow(): void {
    for (const r of this.running.values())
      if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL')
  }

  /** kill -9 of every server of a site (its store dir stays). */
  async kill(site: string): Promise<void> {
    await Promise.all(
      [...this.running.values()]
        .filter((r) => r.config.site === site)
        .map(async (r) => {
          this.running.delete(r.config.server)
          if (r.proc.exitCode !== null || r.proc.signalCode !== null) return
          const exited = new Promise((res) => r.proc.once('exit', res))
          r.proc.kill('SIGKILL')
          await exited
        }),
    )
  }

  async stopAll(): Promise<void> {
    for (const s of this.topo.sites) await this.kill(s.name)
  }

  /** The servers of a site (running or not) with their client URLs. */
  configsOf(site: string): Array<{ server: string; url: string }> {
    return siteOf(this.topo, site).members.map((m) => ({ server: m.name, url: `nats://${m.host}:${m.clientPort}` }))
  }

  /** Server processes still running (a test asserts none died unexpectedly). */
  servers(): RunningServer[] {
    return [...this.running.values()]
  }
}

async function waitForClients(url: string, r: RunningServer | undefined, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 })
      await nc.close()
      return
    } catch (err) {
      if (r?.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`nats-server ${r?.config.server ?? url} did not start: ${r?.log() ?? ''}`, { cause: err })
      }
      await new Promise((res) => setTimeout(res, 50))
    }
  }
}

/** Waits until `nc` (connected to one site) reaches the peer's JetStream API over the leafnode link. */
export async function waitForLink(nc: NatsConnection, peerDomain: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const jsm = await jetstreamManager(nc, { domain: peerDomain, timeout: 1_000 })
      if ((await jsm.getAccountInfo()).domain === peerDomain) return
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`no leafnode link to domain ${peerDomain} after ${timeoutMs} ms`, { cause: err })
    }
    await new Promise((res) => setTimeout(res, 100))
  }
}
