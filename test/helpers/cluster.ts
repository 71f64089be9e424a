/**
 * Worker processes for the crash, rebalance and fencing tests: spawns compiled workers (dist/) against a
 * test nats-server, kills them (SIGKILL / SIGTERM / SIGSTOP), and feeds a trace at a fixed rate.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, sep } from 'node:path'
import { jetstream } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { provision } from '../../actors/provision.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import { connectTo, startNats } from './nats.js'
import type { TraceItem } from './trace.js'

const root = join(import.meta.dirname, '..', '..')

export function distPath(rel: string): string {
  // Tests run from source (tap + tsx) but spawn compiled processes; `npm test` builds first.
  // (When this helper itself runs compiled, from dist/test/helpers, root is already dist/.)
  const p = root.endsWith(`${sep}dist`) ? join(root, rel) : join(root, 'dist', rel)
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm run build\` first`)
  return p
}

export interface WorkerProc {
  id: string
  proc: ChildProcess
  last?: { owned: number[]; stats: Record<string, number> }
  exited: Promise<number | null>
}

export function spawnWorker(script: string, id: string, env: Record<string, string>): WorkerProc {
  const proc = spawn(process.execPath, [script], {
    env: { ...process.env, ...env, PITWALL_WORKER_ID: id },
    stdio: ['ignore', 'pipe', process.env.PITWALL_TEST_LOGS ? 'inherit' : 'ignore'],
  })
  const w: WorkerProc = { id, proc, exited: new Promise((r) => proc.once('exit', (code) => r(code))) }
  let buf = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        w.last = JSON.parse(line) as WorkerProc['last']
      } catch {
        // Not a status line (the worker logs JSON to stderr; stdout carries status only).
      }
    }
  })
  return w
}

export async function kill(w: WorkerProc, signal: NodeJS.Signals): Promise<void> {
  if (w.proc.exitCode !== null || w.proc.signalCode !== null) return
  w.proc.kill(signal)
  if (signal === 'SIGKILL' || signal === 'SIGTERM') await w.exited
}

/** Publishes the trace at about `ratePerS`, with the rid as message id (duplicates dedup in JetStream). */
export async function feed(
  nc: NatsConnection,
  site: string,
  partitions: number,
  trace: TraceItem[],
  ratePerS: number,
  stop: () => boolean = () => false,
): Promise<number> {
  const js = jetstream(nc)
  const batch = Math.max(1, Math.round(ratePerS / 20))
  const started = Date.now()
  let sent = 0
  for (let i = 0; i < trace.length && !stop(); i += batch) {
    const chunk = trace.slice(i, i + batch)
    await Promise.all(
      chunk.map((r) =>
        js.publish(
          tlmSubject(site, partitionOf(r.kind, r.id, partitions), r.kind, r.id),
          JSON.stringify({ ts: r.ts, fields: { v: r.v }, profile: 'testsum' }),
          { msgID: r.rid, timeout: 30_000 },
        ),
      ),
    )
    sent += chunk.length
    const ahead = (sent / ratePerS) * 1000 - (Date.now() - started)
    if (ahead > 0) await new Promise((r) => setTimeout(r, ahead))
  }
  return sent
}

/**
 * The production-profile crash tests' cluster: a private nats-server with the site's streams provisioned, a
 * connection to it, and 3 worker processes of test/fixtures/worker-prod-main (the production worker body and
 * profiles; heartbeat 200 ms, lease 1.5 s, checkpoints every 300 ms). `respawn(i)` starts worker i's next
 * generation (for killLoop). Everything is stopped at `t`'s teardown.
 */
export async function startProdWorkers(
  t: { teardown(fn: () => unknown): void },
  site: string,
  partitions: number,
): Promise<{ nc: NatsConnection; workers: WorkerProc[]; respawn: (i: number) => WorkerProc }> {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const env = {
    PITWALL_NATS_URL: srv.url,
    PITWALL_SITE: site,
    PITWALL_PARTITIONS: String(partitions),
    PITWALL_HEARTBEAT_MS: '200',
    PITWALL_LEASE_TTL_MS: '1500',
    PITWALL_CHECKPOINT_INTERVAL_MS: '300',
    PITWALL_MAX_IN_FLIGHT: '4000',
  }
  await provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, site, partitions }))
  const script = distPath('test/fixtures/worker-prod-main.js')
  let gen = 0
  const respawn = (i: number): WorkerProc => spawnWorker(script, `w${i}-g${gen++}`, env)
  const workers: WorkerProc[] = [0, 1, 2].map(respawn)
  t.teardown(async () => {
    for (const w of workers) await kill(w, 'SIGKILL')
  })
  return { nc, workers, respawn }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Chaos for the crash tests: until `done()` and at least `minKills` kills, every 1.5-4.5 s a random worker of
 * `workers` is killed with -9 and, 0-0.8 s later, replaced by `respawn(i)`. Returns the number of kills.
 */
export async function killLoop(
  workers: WorkerProc[],
  respawn: (i: number) => WorkerProc,
  r: () => number,
  done: () => boolean,
  minKills = 6,
): Promise<number> {
  let kills = 0
  while (!done() || kills < minKills) {
    await sleep(1500 + r() * 3000)
    const i = Math.floor(r() * workers.length)
    await kill(workers[i] as WorkerProc, 'SIGKILL')
    kills++
    await sleep(r() * 800)
    workers[i] = respawn(i)
  }
  return kills
}
