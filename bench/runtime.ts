/**
 * `npm run bench -- [--json] [--duration 20] [--latency-rate 10000] [--sensors 2000] [--workers 2]`
 *
 * Measures on this machine, in one run, against a private nats-server and a fresh PostgreSQL database:
 * - baseline: raw JetStream publish rate of the load generator into a bare R1 file stream (median of 3);
 * - e2e: readings through the real worker processes (environment profile) with outputs projected into
 *   PostgreSQL, closed loop (the generator keeps published - processed under a bound, so the consumer lag stays
 *   flat), rate = readings processed per second over `duration` s after a warm-up;
 * - latency: at a fixed rate, reading publish -> its alert output visible on OUT (p50/p95/p99);
 * - memory: heap per active `environment` actor with 100,000 actors (child process with --expose-gc).
 * Prints a table, then one JSON line last.
 */
import { spawn, execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import pg from 'pg'
import { compileConfig } from '../actors/config.js'
import { provision } from '../actors/provision.js'
import { partitionOf, tlmSubject } from '../actors/subjects.js'
import type { Output } from '../actors/types.js'
import { connectTo, startNats } from '../test/helpers/nats.js'
import { createTestDb } from '../test/helpers/pg.js'
import { EnvReadings, median, percentile, RawPublisher } from './load.js'

const args = process.argv.slice(2)
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const JSON_ONLY = args.includes('--json')
const DURATION_S = arg('duration', 20)
const LAT_RATE = arg('latency-rate', 10_000)
const SENSORS = arg('sensors', 2_000)
const WORKERS = arg('workers', 2)
const P = arg('partitions', 16)
const ACTORS = arg('actors', 100_000)
/** Diagnostics: leave the projector out (the e2e figure then excludes PostgreSQL). */
const NO_PROJECTOR = args.includes('--no-projector')
const root = join(import.meta.dirname, '..', '..')
const say = (s: string): void => {
  process.stderr.write(`${s}\n`)
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function baseline(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc)
  const rates: number[] = []
  for (let rep = 0; rep < 3; rep++) {
    await jsm.streams.add({ name: 'BASE', subjects: ['base.>'], storage: StorageType.File, retention: RetentionPolicy.Limits, num_replicas: 1 })
    const pub = new RawPublisher(nc)
    const gen = new EnvReadings(SENSORS)
    const n = 150_000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) {
      const r = gen.next()
      await pub.publish(`base.${partitionOf('sensor', r.id, P)}.sensor.${r.id}`, r.data)
    }
    await pub.drain()
    rates.push(n / ((performance.now() - t0) / 1000))
    pub.close()
    await jsm.streams.delete('BASE')
  }
  return median(rates)
}

function spawnProc(script: string, env: Record<string, string>): ReturnType<typeof spawn> {
  // PITWALL_BENCH_NODE_ARGS: extra node flags for the services (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const nodeArgs = (process.env.PITWALL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)
  return spawn(process.execPath, [...nodeArgs, join(root, 'dist', script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', process.env.PITWALL_BENCH_LOGS ? 'inherit' : 'ignore'] })
}

async function main(): Promise<void> {
  const srv = await startNats()
  const db = await createTestDb()
  const nc = await connectTo(srv.url)
  const procs: Array<ReturnType<typeof spawn>> = []
  try {
    say(`nats ${srv.url}, postgres ${db.name}, ${SENSORS} sensors, ${WORKERS} workers, P=${P}`)
    const base = await baseline(nc)
    say(`baseline raw JetStream publish: ${Math.round(base)} msg/s`)

    const cfg = compileConfig({ natsUrl: srv.url, partitions: P })
    await provision(nc, await jetstreamManager(nc), cfg)
    const env = { PITWALL_NATS_URL: srv.url, PITWALL_PARTITIONS: String(P), PITWALL_PG_URL: db.url }
    for (let i = 0; i < WORKERS; i++) procs.push(spawnProc('actors/bin/worker.js', { ...env, PITWALL_WORKER_ID: `bench-w${i}` }))
    if (!NO_PROJECTOR) procs.push(spawnProc('actors/bin/projector.js', env))
    const processed = new Map<string, number>()
    nc.subscribe('pw.a.hb.*', { callback: (_e, m) => {
      const hb = m.json<{ worker: string; processed: number }>()
      processed.set(hb.worker, hb.processed)
    } })
    const total = (): number => [...processed.values()].reduce((a, b) => a + b, 0)
    // Wait until the workers own every partition.
    for (let i = 0; i < 100 && processed.size < WORKERS; i++) await sleep(100)
    await sleep(3000)

    // e2e, closed loop: published - processed stays under LAG_BOUND.
    const LAG_BOUND = 40_000
    const pub = new RawPublisher(nc, 4_000)
    const gen = new EnvReadings(SENSORS)
    let stop = false
    const producing = (async () => {
      while (!stop) {
        if (pub.acked - total() > LAG_BOUND) {
          await sleep(5)
          continue
        }
        for (let i = 0; i < 500; i++) {
          const r = gen.next()
          await pub.publish(tlmSubject('a', partitionOf('sensor', r.id, P), 'sensor', r.id), r.data)
        }
      }
    })()
    await sleep(5_000)
    const p0 = total()
    const lag0 = pub.acked - p0
    const t0 = performance.now()
    await sleep(DURATION_S * 1000)
    const p1 = total()
    const lag1 = pub.acked - p1
    const e2eRate = (p1 - p0) / ((performance.now() - t0) / 1000)
    stop = true
    await producing
    await pub.drain()
    for (let i = 0; i < 600 && total() < pub.acked; i++) await sleep(100)
    say(`e2e: ${Math.round(e2eRate)} readings/s (lag ${lag0} -> ${lag1}), processed ${total()} of ${pub.acked} acked`)
    pub.close()

    // latency at a fixed rate: battery alternates low/high so alerts open and close continually.
    const lat: number[] = []
    const lpub = new RawPublisher(nc, 4_000)
    lpub.recordSeqs = true
    const lgen = new EnvReadings(SENSORS, { base: 1_800_000_000_000, alertEvery: 5 })
    const sub = nc.subscribe('out.a.>', { callback: (_e, m) => {
      const o = m.json<Output>()
      if (o.type !== 'alert') return
      const t = lpub.seqSentAt.get(o.seq)
      if (t !== undefined) lat.push(performance.now() - t)
    } })
    const perTick = LAT_RATE / 100
    const lt0 = performance.now()
    let lsent = 0
    while (performance.now() - lt0 < DURATION_S * 1000) {
      for (let i = 0; i < perTick; i++) {
        const r = lgen.next()
        await lpub.publish(tlmSubject('a', partitionOf('sensor', r.id, P), 'sensor', r.id), r.data)
        lsent++
      }
      const ahead = (lsent / LAT_RATE) * 1000 - (performance.now() - lt0)
      if (ahead > 0) await sleep(ahead)
    }
    const achieved = lsent / ((performance.now() - lt0) / 1000)
    await lpub.drain()
    await sleep(2000)
    sub.unsubscribe()
    lpub.close()
    lat.sort((a, b) => a - b)
    const latency = { p50: +percentile(lat, 50).toFixed(2), p95: +percentile(lat, 95).toFixed(2), p99: +percentile(lat, 99).toFixed(2) }
    say(`latency at ${Math.round(achieved)}/s over ${lat.length} alerts: p50 ${latency.p50} ms, p95 ${latency.p95} ms, p99 ${latency.p99} ms`)

    // Projection check: rows landed in PostgreSQL.
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    await sleep(2000)
    const rows = await client.query<{ w: string; a: string }>('SELECT (SELECT count(*) FROM window_aggregates) AS w, (SELECT count(*) FROM alerts) AS a')
    await client.end()
    say(`postgres: ${rows.rows[0]?.w} window rows, ${rows.rows[0]?.a} alerts`)

    const mem = JSON.parse(execFileSync(process.execPath, ['--expose-gc', join(root, 'dist', 'bench', 'memory.js'), String(ACTORS)]).toString().trim().split('\n').pop() as string) as { bytes_per_active_actor: number; active_actors: number }
    say(`memory: ${mem.bytes_per_active_actor} bytes per active environment actor (${mem.active_actors} actors)`)

    const result = {
      baseline: { jetstream_publish_per_s: Math.round(base) },
      e2e: {
        readings_per_s: Math.round(e2eRate), ratio_to_baseline: +(e2eRate / base).toFixed(3),
        latency_ms: latency, rate_for_latency_per_s: Math.round(achieved),
      },
      memory: mem,
    }
    if (!JSON_ONLY) {
      console.log('\n| measure | value |\n|---|---|')
      console.log(`| raw JetStream publish (baseline) | ${result.baseline.jetstream_publish_per_s} msg/s |`)
      console.log(`| e2e readings/s (${WORKERS} workers, projector, PostgreSQL) | ${result.e2e.readings_per_s} (${result.e2e.ratio_to_baseline} of baseline) |`)
      console.log(`| latency publish -> alert at ${result.e2e.rate_for_latency_per_s}/s | p50 ${latency.p50} ms, p95 ${latency.p95} ms, p99 ${latency.p99} ms |`)
      console.log(`| heap per active actor (environment) | ${mem.bytes_per_active_actor} B (${mem.active_actors} actors) |\n`)
    }
    console.log(JSON.stringify(result))
  } finally {
    for (const p of procs) p.kill('SIGTERM')
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))))
    await nc.close()
    await db.drop()
    await srv.stop()
  }
}

await main()
