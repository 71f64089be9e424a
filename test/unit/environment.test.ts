/**
 * The sensor/environment profile through the real ActorCell (test/helpers/harness.ts): window aggregates
 * against a naive reference, late readings, idle flush and staleness, alerts, snapshot/restore, and the heap
 * cost of an active actor.
 */
import t from 'tap'
import fc from 'fast-check'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ActorCell } from '../../actors/cell.js'
import { ENVIRONMENT_DEFAULTS, environment } from '../../actors/kinds/sensor/environment.js'
import type { AlertBody, FieldValue, LateBody, Reading, WindowBody } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'sensor', id: 's1' } as const
const T0 = 1_700_000_040_000 // a minute boundary
const C = ENVIRONMENT_DEFAULTS

const of = <T extends EmittedOutput['type']>(outs: EmittedOutput[], type: T): EmittedOutput[] =>
  outs.filter((o) => o.type === type)
const windows = (outs: EmittedOutput[]): WindowBody[] => of(outs, 'window').map((o) => o.body as WindowBody)
const alerts = (outs: EmittedOutput[]): AlertBody[] => of(outs, 'alert').map((o) => o.body as AlertBody)

// ---- naive reference of the window outputs ---------------------------------------------------------------

interface RefWindow {
  name: string
  start: number
  end: number
  rs: Reading[]
}

/** Recomputes window outputs and late readings from the documented semantics, reading by reading. */
function reference(readings: Reading[]): {
  windows: Array<{ key: string; ts: number; body: Omit<WindowBody, 'fields'> & { means: Record<string, number> } }>
  late: number[]
} {
  const defs = C.windows.map((w) => ({
    name: w.name,
    size: w.sizeMs,
    slide: w.slideMs ?? w.sizeMs,
    h: -Infinity,
    open: new Map<number, RefWindow>(),
  }))
  const out: ReturnType<typeof reference>['windows'] = []
  const late: number[] = []
  let maxTs = -Infinity
  readings.forEach((r, i) => {
    maxTs = Math.max(maxTs, r.ts)
    const wm = maxTs - C.allowedLatenessMs
    const closed: RefWindow[] = []
    for (const d of defs) {
      for (const [start, w] of [...d.open])
        if (w.end <= wm) {
          closed.push(w)
          d.open.delete(start)
        }
      d.h = Math.max(d.h, wm)
    }
    closed.sort((a, b) => a.end - b.end || a.start - b.start || (a.name < b.name ? 1 : -1))
    for (const w of closed) {
      const means: Record<string, number> = {}
      for (const f of C.windowFields) {
        const xs = w.rs.map((x) => x.fields[f]).filter((x): x is number => typeof x === 'number')
        if (xs.length > 0) means[f] = xs.reduce((a, b) => a + b, 0) / xs.length
      }
      const status = (s: string): number => w.rs.filter((x) => x.fields.status === s).length
      out.push({
        key: `${w.name}:${w.start}`,
        ts: w.end,
        body: {
          window: w.name,
          start: w.start,
          end: w.end,
          idleClosed: false,
          means,
          counts: { readings: w.rs.length, failures: status('failure'), warnings: status('warning') },
        },
      })
    }
    let isLate = false
    for (const d of defs) {
      let added = false
      for (let start = Math.floor(r.ts / d.slide) * d.slide; start + d.size > r.ts; start -= d.slide) {
        if (start + d.size <= d.h) continue
        const w = d.open.get(start) ?? { name: d.name, start, end: start + d.size, rs: [] }
        w.rs.push(r)
        d.open.set(start, w)
        added = true
      }
      if (!added) isLate = true
    }
    if (isLate) late.push(i + 1)
  })
  return { windows: out, late }
}

const num = (lo: number, hi: number): fc.Arbitrary<number> =>
  fc.integer({ min: lo * 10, max: hi * 10 }).map((x) => x / 10)
const readingArb = fc.record({
  step: fc.integer({ min: 0, max: 20_000 }),
  back: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 10_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 180_000 }) },
  ),
  fields: fc.record(
    {
      temperature: num(10, 50),
      humidity: num(0, 100),
      co2: fc.integer({ min: 300, max: 2500 }),
      pressure: num(950, 1050),
      battery: fc.integer({ min: 0, max: 100 }),
      status: fc.constantFrom('ok', 'ok', 'ok', 'warning', 'failure'),
    },
    { requiredKeys: ['temperature'] },
  ),
})
function toReadings(xs: Array<{ step: number; back: number; fields: Record<string, FieldValue> }>): Reading[] {
  let clock = T0
  return xs.map((x) => {
    clock += x.step
    return { ts: clock - x.back, fields: x.fields }
  })
}

void t.test('window outputs equal the naive reference; late readings are emitted and counted', async (t) => {
  let lateSeen = 0,
    windowsSeen = 0
  fc.assert(
    fc.property(fc.array(readingArb, { maxLength: 150, size: 'max' }), (xs) => {
      const readings = toReadings(xs)
      // Processing time follows event time closely, so the idle timer never fires here.
      const run = runActor(
        environment,
        entity,
        readings.map((reading) => ({ reading })),
        { procStepMs: 10_000 },
      )
      const ref = reference(readings)
      const got = of(run.outputs, 'window').map((o) => {
        const b = o.body as WindowBody
        const means = Object.fromEntries(Object.entries(b.fields).map(([f, a]) => [f, a.mean]))
        const { alerts: _a, ...counts } = b.counts
        return {
          key: o.id.split(':').slice(3).join(':'),
          ts: o.ts,
          body: { window: b.window, start: b.start, end: b.end, idleClosed: b.idleClosed, means, counts },
        }
      })
      if (got.length !== ref.windows.length) throw new Error(`${got.length} windows, want ${ref.windows.length}`)
      got.forEach((g, i) => {
        const w = ref.windows[i] as (typeof ref.windows)[number]
        if (g.key !== w.key || g.ts !== w.ts || JSON.stringify(g.body.counts) !== JSON.stringify(w.body.counts)) {
          throw new Error(`window ${i}: ${JSON.stringify(g)} vs ${JSON.stringify(w)}`)
        }
        if (Object.keys(g.body.means).join() !== Object.keys(w.body.means).join()) throw new Error(`window ${i} fields`)
        for (const [f, m] of Object.entries(w.body.means)) {
          if (Math.abs((g.body.means[f] as number) - m) > 1e-9 * Math.max(1, Math.abs(m)))
            throw new Error(`${g.key} mean ${f}`)
        }
      })
      const late = of(run.outputs, 'late')
      if (late.map((o) => (o.body as LateBody).readingSeq).join() !== ref.late.join())
        throw new Error('late readings differ')
      if (late.some((o) => o.id !== `sensor:s1:late:late:${(o.body as LateBody).readingSeq}`))
        throw new Error('late output ids')
      const view = run.cell.query() as { lateCount: number }
      if (view.lateCount !== ref.late.length) throw new Error(`lateCount ${view.lateCount}, want ${ref.late.length}`)
      lateSeen += ref.late.length
      windowsSeen += got.length
    }),
    { numRuns: 150 },
  )
  t.comment(`${windowsSeen} windows and ${lateSeen} late readings compared`)
  t.ok(lateSeen > 50 && windowsSeen > 1000, 'the generator produces late readings and closed windows')
})

void t.test('late reading: output body, count, live view unchanged', async (t) => {
  const msgs: HarnessMessage[] = [
    { reading: { ts: T0 + 100_000, fields: { temperature: 20 } } },
    { reading: { ts: T0 + 10_000, fields: { temperature: 99, status: 'failure' } } },
  ]
  const run = runActor(environment, entity, msgs)
  const late = of(run.outputs, 'late')
  t.equal(late.length, 1)
  t.same(late[0]?.body, {
    readingTs: T0 + 10_000,
    watermark: T0 + 70_000,
    readingSeq: 2,
    fields: { temperature: 99, status: 'failure' },
  })
  t.equal(late[0]?.ts, T0 + 10_000)
  const view = run.cell.query() as {
    lateCount: number
    last: Record<string, FieldValue>
    lastTs: number
    alerts: unknown[]
  }
  t.equal(view.lateCount, 1)
  t.same(view.last, { temperature: 20 }, 'the live view keeps the newest reading')
  t.equal(view.lastTs, T0 + 100_000)
  t.same(view.alerts, [], 'an out-of-order failure status does not open an alert')
})

void t.test('idle timeout flushes windows and opens a stale alert that the next reading closes', async (t) => {
  const p0 = 5_000_000
  const msgs: HarnessMessage[] = [
    { reading: { ts: T0 + 1_000, fields: { temperature: 20 } }, procTime: p0 },
    { reading: { ts: T0 + 61_000, fields: { temperature: 22 } }, procTime: p0 + 60_000 },
    { tick: true, procTime: p0 + 60_000 + 119_999 },
    { tick: true, procTime: p0 + 60_000 + 120_000 },
    { tick: true, procTime: p0 + 60_000 + 300_000 },
    { reading: { ts: T0 + 70_000, fields: { temperature: 30 } }, procTime: p0 + 600_000 },
    { reading: { ts: T0 + 125_000, fields: { temperature: 31 } }, procTime: p0 + 601_000 },
  ]
  const run = runActor(environment, entity, msgs)
  const seqOf = (o: EmittedOutput): number => o.seq
  const flushed = of(run.outputs, 'window').filter((o) => seqOf(o) === 4)
  t.same(
    flushed.map((o) => [
      (o.body as WindowBody).window,
      ((o.body as WindowBody).start - T0) / 1000,
      (o.body as WindowBody).idleClosed,
    ]),
    [
      ['sliding_5m_1m', -240, true],
      ['tumbling_1m', 0, true],
      ['sliding_5m_1m', -180, true],
      ['tumbling_1m', 60, true],
      ['sliding_5m_1m', -120, true],
      ['sliding_5m_1m', -60, true],
      ['sliding_5m_1m', 0, true],
      ['sliding_5m_1m', 60, true],
    ],
    'every open window flushed, ordered by (end, start)',
  )
  t.ok(
    flushed.every((o) => o.ts === (o.body as WindowBody).end),
    'ts = window end',
  )
  t.equal(of(run.outputs, 'window').filter((o) => seqOf(o) === 3).length, 0, 'nothing before the deadline')
  t.equal(of(run.outputs, 'window').filter((o) => seqOf(o) === 5).length, 0, 'the timer fires once')
  const stale = of(run.outputs, 'alert').filter((o) => (o.body as AlertBody).type === 'stale')
  t.same(
    stale.map((o) => [(o.body as AlertBody).state, o.seq, (o.body as AlertBody).start, (o.body as AlertBody).end]),
    [
      ['open', 4, T0 + 61_000, undefined],
      ['close', 6, T0 + 61_000, T0 + 70_000],
    ],
  )
  t.equal(stale[0]?.id, `sensor:s1:alert:sensor:s1:stale:${T0 + 61_000}:open:4`)
  t.equal((stale[0]?.body as AlertBody).severity, 'info')
  // After the flush the tumbling minute of T0+70 s is closed: that reading is late. T0+125 s opens a new minute.
  t.same(
    of(run.outputs, 'late').map((o) => o.seq),
    [6],
  )
  const view = run.cell.query() as { windows: WindowBody[] }
  t.same(
    view.windows.filter((w) => w.window === 'tumbling_1m').map((w) => w.start),
    [T0 + 120_000],
  )
  t.ok(
    view.windows.filter((w) => w.window === 'sliding_5m_1m').every((w) => w.end > T0 + 360_000),
    'flushed sliding windows stay closed',
  )
})

void t.test('alerts open, update and close with deterministic ids; windows count them', async (t) => {
  const temps = [20, 41, 41, 41, 41, 41, 41, 41, 45, 39.5, 39, 38, 38, 38, 38, 38, 38, 38, 38, 38]
  const msgs: HarnessMessage[] = temps.map((temperature, i) => ({
    reading: { ts: T0 + i * 10_000, fields: { temperature } },
  }))
  const extra: Array<[number, Record<string, FieldValue>]> = [
    [200, { battery: 14 }],
    [210, { battery: 16 }],
    [220, { battery: 17, status: 'failure' }],
    [230, { status: 'warning' }],
    [240, { status: 'ok', co2: 1600 }],
    [300, { co2: 1600 }],
    [360, { co2: 1601 }],
    [370, { co2: 1400 }],
  ]
  for (const [s, fields] of extra) msgs.push({ reading: { ts: T0 + s * 1000, fields } })
  msgs.push({ reading: { ts: T0 + 1_000_000, fields: {} } })
  const run = runActor(environment, entity, msgs)
  const got = of(run.outputs, 'alert').map((o) => {
    const b = o.body as AlertBody
    return [
      b.type,
      b.state,
      (b.start - T0) / 1000,
      b.end === undefined ? null : (b.end - T0) / 1000,
      b.value,
      o.seq,
      b.severity,
    ]
  })
  t.same(got, [
    // Hot from t=10 s; held for 60 s at t=70 s.
    ['temperature_high', 'open', 10, null, 41, 8, 'warning'],
    // 39.5 is inside the 1 °C hysteresis band; 39 clears. The 45 peak came < 60 s after the open: no update.
    ['temperature_high', 'close', 10, 100, 39, 11, 'warning'],
    ['battery_low', 'open', 200, null, 14, 21, 'info'],
    ['battery_low', 'close', 200, 220, 17, 23, 'info'],
    ['device_failure', 'open', 220, null, 1, 23, 'critical'],
    ['device_failure', 'close', 220, 240, 0, 25, 'critical'],
    ['co2_high', 'open', 240, null, 1601, 27, 'warning'],
    ['co2_high', 'close', 240, 370, 1400, 28, 'warning'],
  ])
  const open = of(run.outputs, 'alert')[0] as EmittedOutput
  t.equal((open.body as AlertBody).alertId, `sensor:s1:temperature_high:${T0 + 10_000}`)
  t.equal(open.id, `sensor:s1:alert:sensor:s1:temperature_high:${T0 + 10_000}:open:8`)
  t.equal((of(run.outputs, 'alert')[1]?.body as AlertBody).details?.peak, 45)
  const tumbling = windows(run.outputs).filter((w) => w.window === 'tumbling_1m')
  const count = (start: number, k: string): number | undefined =>
    tumbling.find((w) => w.start === T0 + start * 1000)?.counts[k]
  t.equal(count(60, 'alerts'), 1, 'temperature_high opened at t=70 s')
  t.equal(count(180, 'alerts'), 2, 'battery_low at t=200 s, device_failure at t=220 s')
  t.equal(count(180, 'failures'), 1)
  t.equal(count(180, 'warnings'), 1)
  t.equal(count(360, 'alerts'), 1, 'co2_high at t=360 s (hot since 240 s, held 120 s)')
  t.equal(
    tumbling.reduce((n, w) => n + (w.counts.alerts ?? 0), 0),
    4,
  )

  // With updates: a peak growing by >= 2 °C, at most one update per 60 s.
  const up = [41, 41, 41, 41, 41, 41, 41, 44, 47, 49, 50, 52, 53, 54, 39]
  const run2 = runActor(
    environment,
    entity,
    up.map((temperature, i) => ({ reading: { ts: T0 + i * 10_000, fields: { temperature } } })),
  )
  t.same(
    alerts(run2.outputs).map((a) => [a.state, (a.start - T0) / 1000, a.value, a.details?.peak]),
    [
      // Opens at 60 s; 44..52 grow the peak but come < 60 s after the open; 53 at 120 s updates; 54 is +1 only.
      ['open', 0, 41, 41],
      ['update', 0, 53, 53],
      ['close', 0, 39, 54],
    ],
  )
})

void t.test('snapshot/restore at random points gives the same outputs and live view', async (t) => {
  const msgArb = fc.oneof(
    { weight: 10, arbitrary: readingArb.map((r) => ({ r })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 300_000 }).map((gap) => ({ gap })) },
  )
  fc.assert(
    fc.property(fc.array(msgArb, { maxLength: 120, size: 'max' }), fc.array(fc.nat(), { maxLength: 4 }), (xs, cuts) => {
      let clock = T0,
        proc = 9_000_000
      const msgs: HarnessMessage[] = xs.map((x) => {
        if ('gap' in x) {
          proc += x.gap
          return { tick: true, procTime: proc }
        }
        clock += x.r.step
        proc += 1000
        return { reading: { ts: clock - x.r.back, fields: x.r.fields }, procTime: proc }
      })
      // Then a reading far later and a tick: every open window closes, so everything the state holds that any
      // output can use shows. (Snapshots are not compared byte for byte: a pane whose `last` no open window can
      // use any more is kept without it (noLast, actors/windows/); restored, it holds last = first, and a late
      // reading with the same event time then sets a `last` that no output reads. Found by this test, seed
      // 1992853746.)
      const later = clock + 3_600_000
      msgs.push(
        {
          reading: { ts: later, fields: { temperature: 20, humidity: 40, co2: 500, battery: 90 } },
          procTime: proc + 1000,
        },
        { tick: true, procTime: proc + 7_200_000 },
      )
      const plain = runActor(environment, entity, msgs)
      const cut = runActor(environment, entity, msgs, { snapshotBefore: cuts.map((c) => c % Math.max(1, msgs.length)) })
      if (JSON.stringify(cut.outputs) !== JSON.stringify(plain.outputs)) throw new Error('outputs differ after restore')
      if (JSON.stringify(cut.cell.query()) !== JSON.stringify(plain.cell.query())) throw new Error('live view differs')
    }),
    { numRuns: 150 },
  )
  t.pass('150 random runs')
})

void t.test('snapshot codec: compact, versioned, remaps by name, rejects garbage', async (t) => {
  const run = runActor(environment, entity, [
    {
      reading: {
        ts: T0 + 5_000,
        fields: { temperature: 21.5, humidity: 40, co2: 600, pressure: 1013, battery: 90, status: 'ok' },
        loc: { lat: 48.1, lon: 11.5 },
      },
    },
    { reading: { ts: T0 + 15_000, fields: { temperature: 22, battery: 10 } } },
  ])
  const snap = JSON.parse(JSON.stringify(run.cell.snapshot(7))) as ReturnType<ActorCell['snapshot']>
  t.equal(snap.v, 1)
  const size = JSON.stringify(snap.state).length
  t.comment(`snapshot state: ${size} bytes of JSON`)
  t.ok(size < 1500, 'compact')
  // A configuration that drops humidity and the co2 alert keeps everything else.
  const cfg = {
    ...C,
    fields: C.fields.filter((f) => f !== 'humidity'),
    windowFields: C.windowFields.filter((f) => f !== 'humidity'),
    alerts: C.alerts.filter((a) => a.type !== 'co2_high'),
  }
  const cell = new ActorCell(environment, cfg, entity, snap)
  const view = cell.query() as {
    last: Record<string, FieldValue>
    alerts: Array<{ type: string }>
    loc: unknown
    windows: WindowBody[]
  }
  t.same(view.last, { temperature: 22, co2: 600, pressure: 1013, battery: 10, status: 'ok' })
  t.same(
    view.alerts.map((a) => a.type),
    ['battery_low'],
  )
  t.same(view.loc, { lat: 48.1, lon: 11.5 })
  t.same(Object.keys(view.windows[0]?.fields ?? {}), ['temperature', 'co2', 'battery'])
  // A snapshot written when pressure was still aggregated in windows restores; its pressure aggregates are dropped.
  const old = runActor(
    environment,
    entity,
    [{ reading: { ts: T0 + 5_000, fields: { temperature: 21, pressure: 1013 } } }],
    { config: { ...C, windowFields: C.fields } },
  )
  const restored = new ActorCell(
    environment,
    C,
    entity,
    JSON.parse(JSON.stringify(old.cell.snapshot(1))) as ReturnType<ActorCell['snapshot']>,
  )
  const rv = restored.query() as { last: Record<string, FieldValue>; windows: WindowBody[] }
  t.same(rv.last, { temperature: 21, pressure: 1013 })
  t.same(
    rv.windows.map((w) => Object.keys(w.fields)),
    [['temperature'], ['temperature'], ['temperature'], ['temperature'], ['temperature'], ['temperature']],
  )
  t.throws(() => new ActorCell(environment, C, entity, { ...snap, v: 2 }), { code: 'PW_SNAPSHOT_VERSION' })
  t.throws(() => new ActorCell(environment, C, entity, { ...snap, state: { ...(snap.state as object), d: 'x' } }), {
    code: 'PW_SNAPSHOT_CORRUPT',
  })
  t.throws(() => environment.codec.decode(null, 1), { code: 'PW_SNAPSHOT_CORRUPT' })
  t.throws(
    () => runActor(environment, entity, [], { config: { ...C, alerts: [{ ...C.alerts[0]!, field: 'nope' }] } }),
    { code: 'PW_CONFIG_INVALID' },
  )
})

/** global.gc, or one obtained at run time when node was not started with --expose-gc. */
function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) return g
  try {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  } catch {
    // Not available in this runtime: measure without collecting (noisier, still asserted).
    return undefined
  }
}

function heapPerActor(n: number, readingsEach: number, stepMs: number, gc: (() => void) | undefined): number {
  const noop = (): void => undefined
  const settle = (): number => {
    for (let i = 0; i < 3; i++) gc?.()
    return process.memoryUsage().heapUsed
  }
  const before = settle()
  const cells = new Map<string, ActorCell>()
  for (let i = 0; i < n; i++) {
    const id = `env-${i}`
    const cell = new ActorCell(environment, C, { kind: 'sensor', id })
    for (let k = 0; k < readingsEach; k++) {
      const ts = T0 + i + k * stepMs
      cell.applyReading(
        k + 1,
        ts + 200,
        {
          ts,
          fields: {
            temperature: 21 + (k % 5) / 10,
            humidity: 40 + (i % 7),
            co2: 500 + k,
            pressure: 1013.2,
            battery: 80,
            status: 'ok',
          },
        },
        noop,
      )
    }
    cells.set(`sensor.${id}`, cell)
  }
  const after = settle()
  if (cells.size !== n) throw new RangeError('cells lost')
  return (after - before) / n
}

void t.test('heap per active environment actor (measurement)', async (t) => {
  const gc = getGc()
  t.comment(gc ? 'with gc()' : 'without gc: heapUsed deltas include garbage')
  const few = heapPerActor(20_000, 3, 1000, gc)
  t.comment(`20,000 actors, 3 readings each: ${Math.round(few)} bytes/actor`)
  t.ok(few < 2048, `< 2048 bytes per actor (${Math.round(few)})`)
  // Steady state: a reading every 10 s for 10 minutes fills the 5-minute sliding window (5-6 one-minute panes).
  const steady = heapPerActor(5_000, 60, 10_000, gc)
  t.comment(
    `5,000 actors, 10 minutes of readings every 10 s: ${Math.round(steady)} bytes/actor (4 windowed fields in 6 panes)`,
  )
})
