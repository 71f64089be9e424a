import t from 'tap'
import { deepStrictEqual } from 'node:assert/strict'
import fc from 'fast-check'
import pg from 'pg'
import {
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream'
import { nanos, type NatsConnection } from '@nats-io/transport-node'
import type { Output, PositionBody } from '../../actors/types.js'
import { outStreamSubjects, outSubject } from '../../actors/subjects.js'
import { ConfigError, RuntimeErrorCodes, StreamConfigError, UnreachableError } from '../../actors/errors.js'
import { migrate, MIGRATIONS, Projector, TABLES, writeRawReadings, type ProjectorOptions } from '../../projector/mod.js'
import { connectTo, startNats, type NatsServer } from '../helpers/nats.js'
import { adminUrl, createTestDb, type TestDb } from '../helpers/pg.js'
import {
  alertOut,
  dump,
  fence,
  lapOut,
  lateOut,
  output,
  recommendationOut,
  scoreOut,
  SITE,
  subjectOf,
  T0,
  windowOut,
} from '../projector-fixtures.js'

let srv: NatsServer
let nc: NatsConnection
let jsm: JetStreamManager
let js: JetStreamClient

t.before(async () => {
  srv = await startNats()
  nc = await connectTo(srv.url)
  jsm = await jetstreamManager(nc)
  js = jetstream(nc)
})
t.teardown(async () => {
  await nc.close()
  await srv.stop()
})

interface Ctx {
  db: TestDb
  pool: pg.Pool
  /** Starts a projector on this test's database; stopped at teardown. */
  projector(opts?: Partial<ProjectorOptions>): Promise<Projector>
}

/** A fresh database and an empty OUT stream (recreated) for one test. */
async function fresh(tt: { teardown(fn: () => Promise<void>): void }): Promise<Ctx> {
  await jsm.streams.delete('OUT').catch(() => false) // absent on the first test
  await jsm.streams.add({
    name: 'OUT',
    subjects: outStreamSubjects(SITE),
    storage: StorageType.File,
    duplicate_window: nanos(120_000),
  })
  const db = await createTestDb()
  const pool = new pg.Pool({ connectionString: db.url, max: 4 })
  const idleErrors: Error[] = []
  pool.on('error', (err) => idleErrors.push(err)) // idle clients killed on purpose by the outage test
  const running: Projector[] = []
  tt.teardown(async () => {
    for (const p of running) await p.stop()
    await pool.end()
    await db.drop()
  })
  return {
    db,
    pool,
    async projector(opts = {}) {
      const p = new Projector({ nc, pool, site: SITE, batchMs: 5, ...opts })
      running.push(p)
      await p.start()
      return p
    },
  }
}

async function publish(outputs: readonly Output[]): Promise<void> {
  for (let i = 0; i < outputs.length; i += 500) {
    await Promise.all(outputs.slice(i, i + 500).map((o) => js.publish(subjectOf(o), JSON.stringify(o))))
  }
}

async function rows(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> {
  return (await pool.query(sql, params)).rows as Array<Record<string, unknown>>
}

void t.test('migrations are idempotent, concurrent-safe and refuse edited history', async (t) => {
  const db = await createTestDb()
  const a = new pg.Pool({ connectionString: db.url })
  const b = new pg.Pool({ connectionString: db.url })
  t.teardown(async () => {
    await a.end()
    await b.end()
    await db.drop()
  })
  const [r1, r2] = await Promise.all([migrate(a), migrate(b)])
  const versions = MIGRATIONS.map((m) => m.version)
  t.same(
    [...r1.applied, ...r2.applied].sort((x, y) => x - y),
    versions,
    'applied exactly once between two concurrent callers',
  )
  t.equal(Math.max(r1.current, r2.current), versions.at(-1))
  t.same((await migrate(a)).applied, [], 'nothing left the second time')
  const recorded = await rows(a, `SELECT version, name FROM ${TABLES.migrations}`)
  t.same(
    recorded,
    MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
  )
  const edited = MIGRATIONS.map((m) => ({ ...m, sql: `${m.sql}\n-- edited` }))
  await t.rejects(migrate(a, edited), ConfigError)
  const next = (versions.at(-1) ?? 0) + 1
  const extra = [...MIGRATIONS, { version: next, name: 'extra', sql: 'CREATE TABLE pw_extra (x int)' }]
  t.same(
    (await Promise.all([migrate(a, extra), migrate(b, extra)])).flatMap((r) => r.applied),
    [next],
  )
})

void t.test('start fails with coded errors: database unreachable, stream missing', async (t) => {
  const p = new Projector({ nc, pgUrl: 'postgres://postgres@127.0.0.1:1/nope', site: SITE })
  const err = await p.start().then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof UnreachableError, 'UnreachableError')
  t.match(err, { code: RuntimeErrorCodes.PG_UNREACHABLE, setting: 'pg.url (PITWALL_PG_URL)', retryable: true })
  await p.stop()
  t.throws(() => new Projector({ nc, site: SITE }), ConfigError)
  t.throws(() => new Projector({ nc, pgUrl: 'postgres://x', site: SITE, batchSize: 0 }), ConfigError)
  const ctx = await fresh(t)
  await jsm.streams.delete('OUT')
  const missing = await ctx.projector().then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(missing instanceof StreamConfigError, 'StreamConfigError')
  t.match(missing, { code: RuntimeErrorCodes.STREAM_MISSING })
})

void t.test('each output type lands in its table', async (t) => {
  const ctx = await fresh(t)
  const start = T0
  await publish([
    fence(0, 1),
    windowOut('s1', start, { seq: 10, mean: 21.25 }),
    alertOut('s1', start, 'open', { seq: 11, value: 31 }),
    scoreOut('car1', { seq: 12, value: 64.5 }),
    recommendationOut('car1', { seq: 13 }),
    lapOut('car1', 7, { seq: 14 }),
    lateOut('s1', start - 300_000, { seq: 15 }),
  ])
  const p = await ctx.projector()
  await p.caughtUp()
  t.match(p.stats(), { applied: 7, rejectedStale: 0, rejectedMalformed: 0, lastSeq: 7 })

  const [w] = await rows(ctx.pool, `SELECT * FROM ${TABLES.windows}`)
  t.match(w, {
    kind: 'sensor',
    entity: 's1',
    window_name: 'tumbling_1m',
    profile: 'environment',
    idle_closed: false,
    output_id: `sensor:s1:window:tumbling_1m:${start}`,
    seq: '10',
    site: 'a',
    partition: 0,
    token: '1',
    counts: { alerts: 0, failures: 0 },
    fields: { temperature: { mean: 21.25 } },
  })
  t.equal((w?.window_start as Date).getTime(), start, 'timestamps are exact to the millisecond')
  t.equal((w?.window_end as Date).getTime(), start + 60_000)

  const [a] = await rows(ctx.pool, `SELECT * FROM ${TABLES.alerts}`)
  t.match(a, {
    alert_id: `sensor:s1:temp_high:${start}`,
    state: 'open',
    last_event: 'open',
    severity: 'warning',
    value: 31,
    threshold: 30,
    peak_value: 31,
    ended_at: null,
    last_seq: '11',
    details: { feature: 'temperature' },
  })
  t.equal((await rows(ctx.pool, `SELECT 1 FROM ${TABLES.alertEvents}`)).length, 1)

  t.match(await rows(ctx.pool, `SELECT * FROM ${TABLES.scoresLatest}`), [
    { kind: 'vehicle', entity: 'car1', name: 'pit', value: 64.5, factors: { wear: 32.25, speed: 1 } },
  ])
  t.equal((await rows(ctx.pool, `SELECT 1 FROM ${TABLES.scoreHistory}`)).length, 1)
  t.match(await rows(ctx.pool, `SELECT * FROM ${TABLES.recommendations}`), [
    { action: 'pit_now', score: 74.5, reason: 'score above 70', output_id: 'vehicle:car1:rec:pit_now:13' },
  ])
  t.match(await rows(ctx.pool, `SELECT * FROM ${TABLES.laps}`), [
    { entity: 'car1', lap: 7, lap_time_ms: '89500', max_speed: 318, samples: 1790 },
  ])
  const [late] = await rows(ctx.pool, `SELECT * FROM ${TABLES.late}`)
  t.match(late, { entity: 's1', reading_seq: '15', fields: { temperature: 21.5 } })
  t.equal((late?.reading_ts as Date).getTime(), start - 300_000)
  t.match(await rows(ctx.pool, `SELECT * FROM ${TABLES.fences}`), [
    { site: 'a', partition: 0, token: '1', owner: 'w1' },
  ])
  t.match(await rows(ctx.pool, `SELECT * FROM ${TABLES.cursors}`), [
    { site: 'a', stream: 'OUT', durable: 'projector', last_seq: '7', applied: '7' },
  ])
})

void t.test('replaying the same outputs leaves identical tables', async (t) => {
  const ctx = await fresh(t)
  const outs: Output[] = [fence(0, 1)]
  for (let i = 0; i < 20; i++) {
    outs.push(windowOut(`s${i % 4}`, T0 + i * 60_000, { seq: 100 + i, mean: i }))
    outs.push(scoreOut(`car${i % 3}`, { seq: 100 + i, value: i * 3 }))
  }
  outs.push(
    alertOut('s1', T0, 'open', { seq: 101, value: 31 }),
    alertOut('s1', T0, 'close', { seq: 130, value: 28, end: T0 + 9_000 }),
  )
  outs.push(lapOut('car1', 1, { seq: 120 }), lateOut('s2', T0, { seq: 121 }), recommendationOut('car2', { seq: 122 }))
  await publish(outs)
  const p = await ctx.projector()
  await p.caughtUp()
  const once = await dump(ctx.pool)
  t.equal(once[TABLES.windows]?.length, 20)

  await publish(outs)
  await p.caughtUp()
  t.same(await dump(ctx.pool), once, 'same outputs published again')

  // A second projector (new durable) replays the whole stream over the same tables.
  const p2 = await ctx.projector({ durable: 'replay' })
  await p2.caughtUp()
  t.same(await dump(ctx.pool), once, 'whole stream replayed')
})

void t.test('alert updates and closes are never overwritten by older events', async (t) => {
  const ctx = await fresh(t)
  const open = alertOut('s1', T0, 'open', { seq: 10, value: 31 })
  const update = alertOut('s1', T0, 'update', { seq: 20, value: 35 })
  const close = alertOut('s1', T0, 'close', { seq: 30, value: 29, end: T0 + 5_000 })
  await publish([open, update, close])
  const p = await ctx.projector({ batchSize: 1 })
  await p.caughtUp()
  // Older events delivered again after the close (e.g. a replay by a new owner), one batch each and together.
  await publish([update])
  await p.caughtUp()
  await publish([open, update])
  await p.caughtUp()
  const [a] = await rows(ctx.pool, `SELECT * FROM ${TABLES.alerts}`)
  t.match(a, { state: 'closed', last_event: 'close', last_seq: '30', value: 29, peak_value: 35 })
  t.equal((a?.ended_at as Date).getTime(), T0 + 5_000)
  t.same(
    (await rows(ctx.pool, `SELECT event FROM ${TABLES.alertEvents} ORDER BY seq`)).map((r) => r.event),
    ['open', 'update', 'close'],
  )

  // Same input seq: the close outranks an update regardless of arrival order.
  const u2 = alertOut('s2', T0, 'update', { seq: 50, value: 33 })
  const c2 = alertOut('s2', T0, 'close', { seq: 50, value: 33, end: T0 + 1 })
  await publish([c2, u2])
  await p.caughtUp()
  t.match(await rows(ctx.pool, `SELECT state FROM ${TABLES.alerts} WHERE entity = 's2'`), [{ state: 'closed' }])
})

void t.test('stale outputs are fenced, counted, and the fence survives a restart', async (t) => {
  const ctx = await fresh(t)
  await publish([
    fence(0, 1),
    windowOut('s1', T0, { seq: 1, token: 1 }),
    fence(0, 2),
    windowOut('s2', T0, { seq: 2, token: 1 }), // the old owner, still writing: stale
    windowOut('s3', T0, { seq: 3, token: 2 }),
    windowOut('s4', T0, { seq: 3, token: 1, partition: 5 }), // another partition: not fenced
    fence(0, 1), // a stale fence does not lower the bar
  ])
  const logged: string[] = []
  const log = (level: string, m: string): void => {
    if (level === 'debug') logged.push(m)
  }
  const p = await ctx.projector({ log })
  await p.caughtUp()
  t.match(p.stats(), { applied: 5, rejectedStale: 2 })
  t.ok(logged.includes('stale output rejected'), 'logged at debug')
  t.same(
    (await rows(ctx.pool, `SELECT entity FROM ${TABLES.windows} ORDER BY entity`)).map((r) => r.entity),
    ['s1', 's3', 's4'],
  )
  t.match(await rows(ctx.pool, `SELECT token, owner FROM ${TABLES.fences}`), [{ token: '2', owner: 'w2' }])
  await p.stop()

  const p2 = await ctx.projector()
  await publish([windowOut('s5', T0, { seq: 4, token: 1 }), windowOut('s6', T0, { seq: 5, token: 2 })])
  await p2.caughtUp()
  t.match(p2.stats(), { applied: 1, rejectedStale: 1 })
  t.same(
    (await rows(ctx.pool, `SELECT entity FROM ${TABLES.windows} ORDER BY entity`)).map((r) => r.entity),
    ['s1', 's3', 's4', 's6'],
  )
  t.match(await rows(ctx.pool, `SELECT applied, rejected_stale FROM ${TABLES.cursors}`), [
    { applied: '6', rejected_stale: '3' },
  ])
})

void t.test('a batch with many outputs for the same key keeps the newest', async (t) => {
  const ctx = await fresh(t)
  const outs: Output[] = []
  for (let i = 1; i <= 2_000; i++) {
    outs.push(windowOut('s1', T0, { seq: i, mean: i }))
    outs.push(scoreOut('car1', { seq: i, value: i % 100 }))
    outs.push(lapOut('car1', 3, { seq: i, maxSpeed: 300 + (i % 17) }))
  }
  // An older version arriving last must not win.
  outs.push(windowOut('s1', T0, { seq: 5, mean: -1 }))
  await publish(outs)
  const p = await ctx.projector({ batchSize: 500 })
  await p.caughtUp()
  t.ok(p.stats().batches <= 30, `written in few transactions (${p.stats().batches})`)
  t.match(await rows(ctx.pool, `SELECT seq, fields FROM ${TABLES.windows}`), [
    { seq: '2000', fields: { temperature: { mean: 2000 } } },
  ])
  t.match(await rows(ctx.pool, `SELECT seq, value FROM ${TABLES.scoresLatest}`), [{ seq: '2000', value: 0 }])
  t.equal((await rows(ctx.pool, `SELECT 1 FROM ${TABLES.scoreHistory}`)).length, 2_000)
  t.match(await rows(ctx.pool, `SELECT seq, max_speed FROM ${TABLES.laps}`), [
    { seq: '2000', max_speed: 300 + (2000 % 17) },
  ])
})

void t.test('malformed and refused messages are set aside; their neighbours are written', async (t) => {
  const ctx = await fresh(t)
  await publish([windowOut('s1', T0, { seq: 1 })])
  await js.publish(outSubject(SITE, 0, 'sensor', 's2'), 'not json')
  await js.publish(
    outSubject(SITE, 0, 'sensor', 's3'),
    JSON.stringify({ ...windowOut('s3', T0, { seq: 3 }), token: 'x' }),
  )
  // Valid JSON that PostgreSQL's json parser refuses (a lone surrogate): found by writing one by one.
  const poison = windowOut('s4', T0, { seq: 4 })
  poison.body.counts = { '\ud800': 1 }
  await js.publish(outSubject(SITE, 0, 'sensor', 's4'), JSON.stringify(poison))
  await publish([windowOut('s5', T0, { seq: 5 })])
  const logged: string[] = []
  const note = (_level: string, m: string): void => {
    logged.push(m)
  }
  const p = await ctx.projector({ log: note })
  await p.caughtUp()
  t.match(p.stats(), { applied: 2, rejectedMalformed: 3 })
  t.ok(logged.includes('database refused a message; set aside in projector_rejects'), 'the refusal is logged')
  t.same(
    (await rows(ctx.pool, `SELECT entity FROM ${TABLES.windows} ORDER BY entity`)).map((r) => r.entity),
    ['s1', 's5'],
  )
  const rejects = await rows(ctx.pool, `SELECT stream_seq, reason FROM ${TABLES.rejects} ORDER BY stream_seq`)
  t.same(
    rejects.map((r) => r.stream_seq),
    ['2', '3', '4'],
  )
  t.match(rejects[1], { reason: /token/ })
  t.match(rejects[2], { reason: /refused by PostgreSQL/ })
})

void t.test('restart mid-stream resumes at the committed cursor', async (t) => {
  const ctx = await fresh(t)
  const outs: Output[] = []
  for (let i = 1; i <= 3_000; i++) outs.push(scoreOut(`car${i % 50}`, { seq: i, value: i }))
  await publish(outs)
  const p = await ctx.projector({ batchSize: 100 })
  await p.waitForSeq(500)
  await p.stop()
  const p2 = await ctx.projector({ batchSize: 100 })
  await p2.caughtUp()
  t.equal((await rows(ctx.pool, `SELECT 1 FROM ${TABLES.scoreHistory}`)).length, 3_000, 'nothing lost')
  t.equal(p.stats().applied + p2.stats().applied, 3_000, 'nothing applied twice')
  t.equal(p2.stats().lastSeq, 3_000)
})

void t.test('a database outage is retried without loss', async (t) => {
  const ctx = await fresh(t)
  const warned: string[] = []
  const log = (level: string, m: string): void => {
    if (level === 'warn') warned.push(m)
  }
  const p = await ctx.projector({ log, batchSize: 50, retryMinMs: 10, retryMaxMs: 50 })
  const outs = Array.from({ length: 3_000 }, (_, i) => scoreOut(`car${i % 10}`, { seq: i + 1, value: i }))
  // Kill every session of the test database (the projector's clients included) again and again while it writes.
  const admin = new pg.Client({ connectionString: adminUrl() })
  await admin.connect()
  t.teardown(() => admin.end())
  let killing = true
  const killer = (async () => {
    while (killing) {
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [ctx.db.name],
      )
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  await publish(outs)
  await new Promise((r) => setTimeout(r, 300))
  killing = false
  await killer
  await p.caughtUp()
  t.equal((await rows(ctx.pool, `SELECT 1 FROM ${TABLES.scoreHistory}`)).length, 3_000, 'nothing lost')
  t.equal(p.stats().applied, 3_000, 'nothing applied twice')
  t.equal(p.stats().failed, undefined)
  t.ok(warned.includes('batch write failed; retrying'), 'writes failed and were retried')
})

void t.test('writeRawReadings inserts once', async (t) => {
  const ctx = await fresh(t)
  await migrate(ctx.pool)
  const raw = Array.from({ length: 1_200 }, (_, i) => ({
    kind: 'sensor',
    entity: `s${i % 7}`,
    seq: i + 1,
    ts: T0 + i,
    fields: { temperature: 20 + i / 10, status: 'ok' },
    ...(i % 2 ? { loc: { lat: 45.1, lon: 7.6 } } : {}),
  }))
  t.equal(await writeRawReadings(ctx.pool, raw, 500), 1_200)
  t.equal(await writeRawReadings(ctx.pool, raw.slice(100, 300)), 0, 'duplicates skipped')
  const [r] = await rows(ctx.pool, `SELECT * FROM ${TABLES.raw} WHERE seq = 2`)
  t.match(r, { entity: 's1', lat: 45.1, fields: { status: 'ok' } })
  t.equal((r?.ts as Date).getTime(), T0 + 1)
})

/** A road `position` output about the reading at TLM sequence `readingSeq`, emitted while handling input `seq`. */
function positionOut(
  entity: string,
  readingSeq: number,
  e: { seq: number; token?: number; ts?: number; lat?: number; reason?: PositionBody['reason'] },
): Output<'position'> {
  const body: PositionBody = {
    lat: e.lat ?? 45.75,
    lon: 4.83,
    speed: e.reason === 'trip_end' ? null : 42,
    heading: e.reason === 'trip_end' ? null : 90,
    reason: e.reason ?? 'sample',
    readingSeq,
  }
  return output('position', entity, `vehicle:${entity}:position:pos:${readingSeq}`, body, {
    seq: e.seq,
    kind: 'vehicle',
    profile: 'road',
    ts: e.ts ?? T0 + readingSeq * 1000,
    ...(e.token !== undefined ? { token: e.token } : {}),
  })
}

void t.test(
  'positions go to raw_readings once per reading: redeliveries, replays, stale owners, bad ones set aside',
  async (t) => {
    const ctx = await fresh(t)
    const outs: Output[] = [fence(0, 1)]
    for (let i = 1; i <= 30; i++) outs.push(positionOut('V1', i, { seq: i }))
    // A trip end about reading 30, emitted while handling reading 31: same reading, same row.
    outs.push(positionOut('V1', 30, { seq: 31, reason: 'trip_end' }))
    await publish(outs)
    const p = await ctx.projector()
    await p.caughtUp()
    // The same outputs again (a replay by a restarted worker publishes new stream messages), and a newer owner's copy.
    await publish(outs.slice(1, 11))
    await publish([
      fence(0, 2),
      positionOut('V1', 5, { seq: 5, token: 2, lat: 45.9 }),
      positionOut('V1', 40, { seq: 40, token: 2 }),
    ])
    // A stale owner's output after the fence, and a position out of range.
    await publish([positionOut('V1', 41, { seq: 41, token: 1 }), positionOut('V1', 42, { seq: 42, token: 2, lat: 95 })])
    await p.caughtUp()
    const got = await rows(
      ctx.pool,
      `SELECT seq, ts, lat, lon, profile, fields FROM ${TABLES.raw} WHERE kind = 'vehicle' AND entity = 'V1' ORDER BY seq`,
    )
    t.same(
      got.map((r) => Number(r.seq)),
      [...Array.from({ length: 30 }, (_, i) => i + 1), 40],
      'one row per reading; stale and malformed ones absent',
    )
    t.match(got[0], { lat: 45.75, lon: 4.83, profile: 'road', fields: { reason: 'sample', speed: 42, heading: 90 } })
    t.equal((got[0]?.ts as Date).getTime(), T0 + 1000, 'event time of the fix')
    t.same(got[29]?.fields, { reason: 'sample', speed: 42, heading: 90 }, 'the first copy of reading 30 stays')
    t.equal(got[4]?.lat, 45.75, 'a later copy does not rewrite the fix')
    t.match(p.stats(), { rejectedStale: 1, rejectedMalformed: 1 })
    const rejected = await rows(ctx.pool, `SELECT reason FROM ${TABLES.rejects}`)
    t.match(rejected, [{ reason: /lat\/lon: out of range/ }])
    // Readings imported with writeRawReadings share the key: no duplicate either way.
    t.equal(
      await writeRawReadings(ctx.pool, [
        { kind: 'vehicle', entity: 'V1', seq: 3, ts: T0 + 3000, fields: { speed: 42 }, loc: { lat: 45.75, lon: 4.83 } },
      ]),
      0,
    )
  },
)

void t.test('randomized duplicate deliveries give the reference tables', async (t) => {
  const ctx = await fresh(t)
  const ref = await createTestDb()
  const refPool = new pg.Pool({ connectionString: ref.url, max: 2 })
  t.teardown(async () => {
    await refPool.end()
    await ref.drop()
  })
  await migrate(ctx.pool)
  await migrate(refPool)

  // A history of outputs with unique (key, seq) versions, as actors produce them.
  const history = fc
    .record({
      windows: fc.array(
        fc.record({
          e: fc.integer({ min: 0, max: 3 }),
          w: fc.integer({ min: 0, max: 3 }),
          mean: fc.integer({ min: -50, max: 50 }),
        }),
        { maxLength: 25 },
      ),
      alerts: fc.array(
        fc.record({
          e: fc.integer({ min: 0, max: 2 }),
          values: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 5 }),
          closed: fc.boolean(),
        }),
        { maxLength: 5 },
      ),
      scores: fc.array(fc.record({ e: fc.integer({ min: 0, max: 2 }), v: fc.integer({ min: 0, max: 100 }) }), {
        maxLength: 20,
      }),
      laps: fc.array(fc.record({ lap: fc.integer({ min: 1, max: 3 }), v: fc.integer({ min: 250, max: 330 }) }), {
        maxLength: 10,
      }),
    })
    .map((h) => {
      let seq = 0
      const outs: Output[] = []
      for (const w of h.windows) outs.push(windowOut(`s${w.e}`, T0 + w.w * 60_000, { seq: ++seq, mean: w.mean }))
      h.alerts.forEach((a, i) => {
        const opened = T0 + i
        a.values.forEach((v, j) => {
          const state = j === 0 ? 'open' : a.closed && j === a.values.length - 1 ? 'close' : 'update'
          outs.push(
            alertOut(`s${a.e}`, opened, state, {
              seq: ++seq,
              value: v,
              ...(state === 'close' ? { end: opened + 1_000 } : {}),
            }),
          )
        })
      })
      for (const s of h.scores) outs.push(scoreOut(`car${s.e}`, { seq: ++seq, value: s.v }))
      for (const l of h.laps) outs.push(lapOut('car1', l.lap, { seq: ++seq, maxSpeed: l.v }))
      return outs
    })
  const run = fc.tuple(history, fc.array(fc.nat(), { maxLength: 60 }), fc.integer({ min: 1, max: 40 }), fc.boolean())

  const projection = async (
    pool: pg.Pool,
    outs: Output[],
    batchSize: number,
    restart: boolean,
  ): Promise<Record<string, unknown[]>> => {
    await pool.query(
      `TRUNCATE ${Object.values(TABLES)
        .filter((n) => n !== TABLES.migrations)
        .join(', ')}`,
    )
    await jsm.streams.purge('OUT')
    for (const c of await jsm.consumers.list('OUT').next()) await jsm.consumers.delete('OUT', c.name)
    const msgs = [fence(0, 1), ...outs]
    await publish(msgs)
    const opts = { nc, pool, site: SITE, batchSize, batchMs: 2, maxAckPending: Math.max(100, 2 * batchSize) }
    let p = new Projector(opts)
    try {
      await p.start()
      if (restart) {
        const info = await jsm.streams.info('OUT')
        await p.waitForSeq(info.state.first_seq + Math.floor(msgs.length / 2))
        await p.stop()
        p = new Projector(opts)
        await p.start()
      }
      await p.caughtUp()
    } finally {
      await p.stop()
    }
    return await dump(pool)
  }

  await fc.assert(
    fc.asyncProperty(run, async ([outs, picks, batchSize, restart]) => {
      // Deliveries: every output at least once, some again, in a shuffled order.
      const deliveries = [...outs, ...picks.filter(() => outs.length > 0).map((i) => outs[i % outs.length] as Output)]
      for (let i = deliveries.length - 1; i > 0; i--) {
        const j = (picks[i % Math.max(1, picks.length)] ?? i) % (i + 1)
        ;[deliveries[i], deliveries[j]] = [deliveries[j] as Output, deliveries[i] as Output]
      }
      const expected = await projection(refPool, outs, 500, false)
      const actual = await projection(ctx.pool, deliveries, batchSize, restart)
      deepStrictEqual(actual, expected)
    }),
    { numRuns: 25 },
  )
  t.pass('projection independent of duplicates, order and batch size')
})
