/**
 * Crash test: a deterministic trace of 100,000 readings over 1,000 sensors (out of order, some late, some
 * duplicated) through 3 worker processes and a projector process into PostgreSQL; a random worker (and every
 * fourth time the projector) is killed with SIGKILL at random moments (>= 10 times) and restarted. At the end
 * the PostgreSQL tables equal an independent reference computation over the stream: nothing lost, nothing
 * double-counted; and OUT never holds two different versions of one output.
 */
import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { provision } from '../../actors/provision.js'
import pg from 'pg'
import { connectTo, startNats } from '../helpers/nats.js'
import { createTestDb } from '../helpers/pg.js'
import { distPath, feed, kill, sleep, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { makeTrace, readOutputs, readStream, referenceSum, rng } from '../helpers/trace.js'

const N = Number(process.env.PITWALL_CRASH_READINGS ?? 100_000)
const ENTITIES = 1_000
const P = 16

t.test('kill -9 workers at random moments: results equal the reference', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const env = {
    PITWALL_NATS_URL: srv.url,
    PITWALL_PARTITIONS: String(P),
    PITWALL_HEARTBEAT_MS: '200',
    PITWALL_LEASE_TTL_MS: '1500',
    PITWALL_CHECKPOINT_INTERVAL_MS: '300',
    PITWALL_MAX_IN_FLIGHT: '4000',
  }
  const db = await createTestDb()
  t.teardown(() => db.drop())
  const jsm = await jetstreamManager(nc)
  await provision(nc, jsm, compileConfig({ natsUrl: srv.url, partitions: P }))
  const script = distPath('test/fixtures/worker-main.js')
  let gen = 0
  const workers: WorkerProc[] = [0, 1, 2].map((i) => spawnWorker(script, `w${i}-g${gen++}`, env))
  const projectorScript = distPath('cmd/projector.js')
  const penv = { ...env, PITWALL_PG_URL: db.url }
  let projector = spawnWorker(projectorScript, 'projector', penv)
  t.teardown(async () => {
    for (const w of workers) await kill(w, 'SIGKILL')
    await kill(projector, 'SIGKILL')
  })

  const trace = makeTrace(42, N, ENTITIES)
  let done = false
  const feeding = feed(nc, 'a', P, trace, 5_000).then((n) => {
    done = true
    return n
  })
  const r = rng(99)
  let kills = 0
  while (!done || kills < 10) {
    await sleep(1500 + r() * 3000)
    kills++
    if (kills % 4 === 0) {
      await kill(projector, 'SIGKILL')
      await sleep(r() * 800)
      projector = spawnWorker(projectorScript, 'projector', penv)
      continue
    }
    const i = Math.floor(r() * workers.length)
    await kill(workers[i] as WorkerProc, 'SIGKILL')
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
    if (!o) {
      missing++
      continue
    }
    const b = o.body as unknown as { fields: { v: { count: number; sum: number } } }
    if (b.fields.v.count !== w.count || b.fields.v.sum !== w.sum) wrong++
  }
  t.equal(missing, 0, 'no window lost')
  t.equal(wrong, 0, 'no window double-counted or short')
  t.equal(windows.length, ref.windows.size, 'no window that the reference does not have')
  const late = [...res.accepted.values()].filter((o) => o.type === 'late')
  t.equal(late.length, ref.late.size, 'late readings equal the reference')
  t.equal(res.conflicts, 0, 'no output id with two different bodies')

  // PostgreSQL, written by the projector that was killed too, equals the reference.
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(() => client.end())
  type Row = { entity: string; start: string; count: number; sum: number }
  let rows: Row[] = []
  for (let i = 0; i < 120; i++) {
    rows = (
      await client.query<Row>(`SELECT entity, (extract(epoch FROM window_start) * 1000)::bigint::text AS start,
      (fields->'v'->>'count')::int AS count, (fields->'v'->>'sum')::float8 AS sum FROM window_aggregates WHERE window_name = 'sum'`)
    ).rows
    if (rows.length >= ref.windows.size) break
    await sleep(1000)
  }
  let pgWrong = 0
  for (const row of rows) {
    const w = ref.windows.get(`sensor:${row.entity}:window:w:${row.start}`)
    if (!w || w.count !== row.count || w.sum !== row.sum) pgWrong++
  }
  t.equal(rows.length, ref.windows.size, 'PostgreSQL has every window, once')
  t.equal(pgWrong, 0, 'every PostgreSQL window equals the reference')
  const lateRows = (await client.query<{ output_id: string }>('SELECT output_id FROM late_readings')).rows
  t.same(
    lateRows.map((x) => x.output_id).sort(),
    [...ref.late].sort(),
    'late readings in PostgreSQL equal the reference',
  )
  t.comment(
    `readings=${trace.length} windows=${ref.windows.size} late=${ref.late.size} kills=${kills} staleRejected=${res.stale}`,
  )
})
