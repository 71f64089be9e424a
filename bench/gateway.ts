/**
 * Gateway benchmark: `node dist/bench/gateway.js [--json] [--duration 10]` (build first). On loopback, a private
 * nats-server and the real gateway process (`dist/cmd/gateway.js`, auth off, rate limit out of the way) are
 * driven by autocannon from this process:
 *   baseline  raw JetStream publish of the same readings into TLM (bench/load.ts RawPublisher), same run
 *   ingest    POST /v1/readings with 500 readings per request, as fast as 8 connections go; every 2xx means
 *             JetStream acknowledged all 500 -> readings/s
 *   single    POST /v1/readings with one reading at a fixed 1,000 requests/s, open loop: request i is due at
 *             t0 + i ms and its latency runs from that due time to the end of the reply, so a stalled gateway
 *             is charged for every request it delays (no coordinated omission) -> achieved rate, p50/p99.
 *             (autocannon's rate mode is not used for this: it sends each connection's quota for the second in
 *             one burst at the start of the second, and back-fills every sample above 1 ms with synthetic ones,
 *             which measures a 1,000-request burst, not a steady 1,000/s.)
 * Prints a table on stderr, then one JSON line on stdout:
 *   {"ingest":{"readings_per_s":N,"batch":500},"single":{"req_per_s":N,"latency_ms":{"p50":..,"p99":..}},...}
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../actors/config.js'
import { provision } from '../actors/provision.js'
import { partitionOf, tlmSubject } from '../actors/subjects.js'
import { connectTo, freePort, startNats } from '../test/helpers/nats.js'
import { median, percentile, RawPublisher } from './load.js'

const args = process.argv.slice(2)
const JSON_ONLY = args.includes('--json')
const argNum = (name: string, def: number): number => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : def
}
const DURATION_S = argNum('--duration', 10)
const BATCH = 500
const SINGLE_RATE = 1_000
const P = 16
const SENSORS = 2_000
const root = join(import.meta.dirname, '..', '..')
const say = (s: string): void => {
  process.stderr.write(`${s}\n`)
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** `n` environment readings of distinct sensors, as /v1/readings items. */
function items(n: number, offset = 0): Array<Record<string, unknown>> {
  const ts = Date.now()
  return Array.from({ length: n }, (_, i) => ({
    kind: 'sensor',
    id: `s${(offset + i) % SENSORS}`,
    ts: ts + i,
    profile: 'environment',
    fields: { temperature: 21 + (i % 7) / 10, humidity: 40 + (i % 11), co2: 420 + (i % 50), battery: 90 },
  }))
}

async function waitHttp(url: string, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`gateway exited with ${proc.exitCode}`)
    try {
      if ((await fetch(url)).ok) return
    } catch {
      /* not up yet */
    }
    await sleep(50)
  }
  throw new Error(`gateway did not answer ${url}`)
}

/** Result of an open-loop run: latencies in ms from each request's due time, and the failures. */
interface Paced {
  latencies: number[]
  non2xx: number
  errors: number
  seconds: number
}

/**
 * Sends `rate` POSTs per second for `seconds`, evenly spaced, over a keep-alive pool of `sockets` connections.
 * A request's latency counts from when it was due, not when a socket was free, so queueing in the client or the
 * server shows up in the figure.
 */
async function paced(url: string, body: string, rate: number, seconds: number, sockets = 64): Promise<Paced> {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets })
  const u = new URL(url)
  const total = Math.round(rate * seconds)
  const out: Paced = { latencies: [], non2xx: 0, errors: 0, seconds }
  const one = (due: number): Promise<void> =>
    new Promise((resolve) => {
      const req = request(
        {
          agent,
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume()
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) out.latencies.push(performance.now() - due)
            else out.non2xx++
            resolve()
          })
        },
      )
      req.on('error', () => {
        out.errors++
        resolve()
      })
      req.end(body)
    })
  const inflight: Array<Promise<void>> = []
  const t0 = performance.now() + 5
  let sent = 0
  while (sent < total) {
    const now = performance.now()
    while (sent < total && t0 + (sent * 1000) / rate <= now) {
      inflight.push(one(t0 + (sent * 1000) / rate))
      sent++
    }
    await new Promise((r) => setImmediate(r))
    if (performance.now() - now < 0.2) await sleep(0)
  }
  await Promise.all(inflight)
  agent.destroy()
  out.seconds = (performance.now() - t0) / 1000
  return out
}

async function main(): Promise<void> {
  const srv = await startNats()
  const nc = await connectTo(srv.url)
  let gw: ChildProcess | undefined
  try {
    const cfg = compileConfig({ natsUrl: srv.url, partitions: P })
    const jsm = await jetstreamManager(nc)
    await provision(nc, jsm, cfg)

    // baseline: the same readings, published straight to TLM (2,000 in flight), median of 3 x 50,000
    const rates: number[] = []
    for (let rep = 0; rep < 3; rep++) {
      const pub = new RawPublisher(nc)
      const batch = items(SENSORS)
      const n = 50_000
      const t0 = performance.now()
      for (let i = 0; i < n; i++) {
        const it = batch[i % SENSORS] as { id: string }
        await pub.publish(tlmSubject('a', partitionOf('sensor', it.id, P), 'sensor', it.id), JSON.stringify(it))
      }
      await pub.drain()
      rates.push(n / ((performance.now() - t0) / 1000))
      pub.close()
    }
    const baseline = median(rates)
    say(`baseline raw JetStream publish: ${Math.round(baseline)} msg/s`)
    await jsm.streams.purge(cfg.streams.tlm)

    const port = await freePort()
    gw = spawn(process.execPath, [join(root, 'dist', 'cmd', 'gateway.js')], {
      env: {
        ...process.env,
        PITWALL_NATS_URL: srv.url,
        PITWALL_PARTITIONS: String(P),
        PITWALL_GATEWAY_AUTH: 'off',
        PITWALL_GATEWAY_HOST: '127.0.0.1',
        PITWALL_GATEWAY_PORT: String(port),
        PITWALL_GATEWAY_RATE_LIMIT_MAX: '10000000',
      },
      stdio: ['ignore', 'ignore', process.env.PITWALL_BENCH_LOGS ? 'inherit' : 'ignore'],
    })
    const base = `http://127.0.0.1:${port}`
    await waitHttp(`${base}/healthz`, gw)
    const headers = { 'content-type': 'application/json' }

    // warm-up, then batched ingest
    await autocannon({
      url: `${base}/v1/readings`,
      method: 'POST',
      headers,
      body: JSON.stringify(items(BATCH)),
      connections: 4,
      duration: 2,
    })
    await jsm.streams.purge(cfg.streams.tlm)
    const ing = await autocannon({
      url: `${base}/v1/readings`,
      method: 'POST',
      headers,
      body: JSON.stringify(items(BATCH, 7)),
      connections: 8,
      duration: DURATION_S,
    })
    const ok = ing['2xx']
    const readingsPerS = (ok * BATCH) / ing.duration
    const stored = (await jsm.streams.info(cfg.streams.tlm)).state.messages
    say(
      `ingest: ${ok} requests of ${BATCH} -> ${Math.round(readingsPerS)} readings/s; non-2xx ${ing.non2xx}, errors ${ing.errors}, timeouts ${ing.timeouts}; TLM holds ${stored} (>= ${ok * BATCH})`,
    )
    if (stored < ok * BATCH) throw new Error(`acknowledged readings missing from TLM: ${stored} < ${ok * BATCH}`)

    // single readings at a fixed rate, into an empty stream as the ingest phase started with
    await jsm.streams.purge(cfg.streams.tlm)
    await sleep(1_000)
    const one = await paced(`${base}/v1/readings`, JSON.stringify(items(1, 3)), SINGLE_RATE, DURATION_S)
    const lat = [...one.latencies].sort((a, b) => a - b)
    const r2 = (x: number): number => Math.round(x * 100) / 100
    const single = {
      req_per_s: Math.round(lat.length / one.seconds),
      latency_ms: { p50: r2(percentile(lat, 50)), p99: r2(percentile(lat, 99)) },
    }
    say(
      `single: ${single.req_per_s} req/s at a target of ${SINGLE_RATE}/s (open loop); latency p50 ${single.latency_ms.p50} ms, p99 ${single.latency_ms.p99} ms, max ${r2(lat.at(-1) ?? NaN)} ms; non-2xx ${one.non2xx}, errors ${one.errors}`,
    )

    const result = {
      ingest: { readings_per_s: Math.round(readingsPerS), batch: BATCH },
      single,
      baseline_msgs_per_s: Math.round(baseline),
      ratio_to_baseline: Math.round((readingsPerS / baseline) * 100) / 100,
    }
    if (!JSON_ONLY) {
      say('')
      say('| measure | value |')
      say('|---|---|')
      say(`| baseline raw JetStream publish | ${result.baseline_msgs_per_s} msg/s |`)
      say(
        `| batched ingest (${BATCH}/request, acked) | ${result.ingest.readings_per_s} readings/s (${result.ratio_to_baseline} of baseline) |`,
      )
      say(
        `| single POSTs at ${SINGLE_RATE}/s | ${single.req_per_s} req/s, p50 ${single.latency_ms.p50} ms, p99 ${single.latency_ms.p99} ms |`,
      )
    }
    console.log(JSON.stringify(result))
  } finally {
    if (gw && gw.exitCode === null) {
      const exited = new Promise((r) => gw?.once('exit', r))
      gw.kill('SIGTERM')
      await Promise.race([exited, sleep(5_000)])
      if (gw.exitCode === null) gw.kill('SIGKILL')
    }
    await nc.close()
    await srv.stop()
  }
}

main().catch((err: unknown) => {
  say(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exit(1)
})
