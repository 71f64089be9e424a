/**
 * Crash test: a deterministic trace of 200,000 readings over 1,000 sensors (out of order, some late, some
 * duplicated) through 3 worker processes; a random worker is killed with SIGKILL at random moments (>= 10
 * times) and restarted. At the end every output equals an independent reference computation over the stream:
 * nothing lost, nothing double-counted, no two different versions of one output.
 */
import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../actors/config.js'
import { provision } from '../actors/provision.js'
import { connectTo, startNats } from './helpers/nats.js'
import { distPath, feed, kill, sleep, spawnWorker, type WorkerProc } from './helpers/cluster.js'
import { makeTrace, readOutputs, readStream, referenceSum, rng } from './helpers/trace.js'

const N = Number(process.env.PITWALL_CRASH_READINGS ?? 200_000)
const ENTITIES = 1_000
const P = 16

t.test('kill -9 workers at random moments: results equal the reference', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const env = {
    PITWALL_NATS_URL: srv.url, PITWALL_PARTITIONS: String(P), PITWALL_HEARTBEAT_MS: '200', PITWALL_LEASE_TTL_MS: '1500',
    PITWALL_CHECKPOINT_INTERVAL_MS: '300', PITWALL_MAX_IN_FLIGHT: '4000',
  }
  const jsm = await jetstreamManager(nc)
  await provision(nc, jsm, compileConfig({ natsUrl: srv.url, partitions: P }))
  const script = distPath('test/fixtures/worker-main.js')
  let gen = 0
  const workers: WorkerProc[] = [0, 1, 2].map((i) => spawnWorker(script, `w${i}-g${gen++}`, env))
  t.teardown(async () => { for (const w of workers) await kill(w, 'SIGKILL') })

  const trace = makeTrace(42, N, ENTITIES)
  let done = false
  const feeding = feed(nc, 'a', P, trace, 5_000).then((n) => { done = true; return n })
  const r = rng(99)
  let kills = 0
  while (!done || kills < 10) {
    await sleep(1500 + r() * 3000)
    const i = Math.floor(r() * workers.length)
    await kill(workers[i] as WorkerProc, 'SIGKILL')
    kills++
    await sleep(r() * 800)
    workers[i] = spawnWorker(script, `w${i}-g${gen++}`, env)
  }
  const sent = await feeding
  t.equal(sent, trace.length, 'whole trace published')
  t.ok(kills >= 10, `${kills} kills`)

  const ref = referenceSum(await readStream(jsm, 'TLM'), 10_000, 5_000)
  // Wait until every reference output is in OUT (or give up after 120 s and report the difference).
  let res = await readOutputs(nc, 'OUT')
  for (let i = 0; i < 120; i++) {
    const have = [...ref.windows.keys()].filter((k) => res.accepted.has(k)).length
    if (have === ref.windows.size && [...ref.late].every((k) => res.accepted.has(k))) break
    await sleep(1000)
    res = await readOutputs(nc, 'OUT')
  }
  const windows = [...res.accepted.values()].filter((o) => o.type === 'window')
  let wrong = 0
  let missing = 0
  for (const [id, w] of ref.windows) {
    const o = res.accepted.get(id)
    if (!o) { missing++; continue }
    const b = o.body as unknown as { fields: { v: { count: number; sum: number } } }
    if (b.fields.v.count !== w.count || b.fields.v.sum !== w.sum) wrong++
  }
  t.equal(missing, 0, 'no window lost')
  t.equal(wrong, 0, 'no window double-counted or short')
  t.equal(windows.length, ref.windows.size, 'no window that the reference does not have')
  const late = [...res.accepted.values()].filter((o) => o.type === 'late')
  t.equal(late.length, ref.late.size, 'late readings equal the reference')
  t.equal(res.conflicts, 0, 'no output id with two different bodies')
  t.comment(`readings=${trace.length} windows=${ref.windows.size} late=${ref.late.size} kills=${kills} staleRejected=${res.stale}`)
})
