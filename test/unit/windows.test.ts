/**
 * Event-time windows against a naive reference: the reference keeps every accepted reading per window and
 * recomputes each aggregate from that list, with lateness computed from the documented definition.
 */
import t from 'tap'
import fc from 'fast-check'
import { EventWindows, SessionWindows, compileWindows, type WindowSpec } from '../../actors/windows/mod.js'
import { SnapshotError } from '../../actors/errors.js'
import type { FieldAggregate, FieldValue, WindowBody } from '../../actors/types.js'

const FIELDS = ['a', 'b', 'c'] as const
const COUNTS = ['alerts', 'failures'] as const

interface Rd {
  ts: number
  fields: Record<string, FieldValue>
  counts: Record<string, number>
  arrival: number
}

/** Naive aggregate of one field over the readings of a window, in arrival order. */
function naiveField(rs: Rd[], f: string): FieldAggregate | undefined {
  const xs = rs.filter((r) => typeof r.fields[f] === 'number' && Number.isFinite(r.fields[f]))
  if (xs.length === 0) return undefined
  const v = (r: Rd): number => r.fields[f] as number
  let sum = 0
  for (const r of xs) sum += v(r)
  const mean = sum / xs.length
  let ss = 0
  for (const r of xs) ss += (v(r) - mean) ** 2
  const variance = ss / xs.length
  let first = xs[0] as Rd,
    last = xs[0] as Rd
  for (const r of xs) {
    if (r.ts < first.ts || (r.ts === first.ts && r.arrival < first.arrival)) first = r
    if (r.ts > last.ts || (r.ts === last.ts && r.arrival > last.arrival)) last = r
  }
  return {
    count: xs.length,
    sum,
    min: Math.min(...xs.map(v)),
    max: Math.max(...xs.map(v)),
    mean,
    variance,
    stddev: Math.sqrt(variance),
    first: v(first),
    last: v(last),
  }
}

function naiveBody(name: string, start: number, end: number, rs: Rd[], idleClosed: boolean): WindowBody {
  const fields: Record<string, FieldAggregate> = {}
  for (const f of FIELDS) {
    const a = naiveField(rs, f)
    if (a) fields[f] = a
  }
  const counts: Record<string, number> = { readings: rs.length }
  for (const c of COUNTS) counts[c] = rs.reduce((s, r) => s + (r.counts[c] ?? 0), 0)
  return { window: name, start, end, fields, counts, idleClosed }
}

/** The reference: per definition, the list of readings of each open window, keyed by start. */
class RefWindows {
  readonly h: number[]
  readonly open: Array<Map<number, Rd[]>>
  constructor(readonly specs: WindowSpec[]) {
    this.h = specs.map(() => -Infinity)
    this.open = specs.map(() => new Map())
  }
  add(r: Rd): number {
    let late = 0
    this.specs.forEach((s, i) => {
      const slide = s.slideMs ?? s.sizeMs
      let added = false
      // Every start k*slide with start <= ts < start + size.
      for (let start = Math.floor(r.ts / slide) * slide; start + s.sizeMs > r.ts; start -= slide) {
        if (start + s.sizeMs <= (this.h[i] as number)) continue
        const m = this.open[i] as Map<number, Rd[]>
        m.set(start, [...(m.get(start) ?? []), r])
        added = true
      }
      if (!added) late |= 1 << i
    })
    return late
  }
  private close(pred: (end: number) => boolean, idle: boolean): WindowBody[] {
    const out: Array<WindowBody & { i: number }> = []
    this.specs.forEach((s, i) => {
      const m = this.open[i] as Map<number, Rd[]>
      for (const [start, rs] of [...m]) {
        const end = start + s.sizeMs
        if (!pred(end)) continue
        out.push({ ...naiveBody(s.name, start, end, rs, idle), i })
        m.delete(start)
        if (idle && end > (this.h[i] as number)) this.h[i] = end
      }
    })
    out.sort((a, b) => a.end - b.end || a.start - b.start || a.i - b.i)
    return out.map(({ i: _i, ...w }) => w)
  }
  advance(wm: number): WindowBody[] {
    const out = this.close((end) => end <= wm, false)
    this.h.forEach((h, i) => {
      if (wm > h) this.h[i] = wm
    })
    return out
  }
  flushAll(): WindowBody[] {
    return this.close(() => true, true)
  }
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b))
}

/** Compares window lists: counters, count/sum/min/max/first/last exactly, mean/variance/stddev within 1e-9. */
function sameWindows(got: WindowBody[], want: WindowBody[]): string | undefined {
  if (got.length !== want.length)
    return `${got.length} windows, want ${want.length}: ${JSON.stringify(got.map((w) => [w.window, w.start]))} vs ${JSON.stringify(want.map((w) => [w.window, w.start]))}`
  for (let i = 0; i < got.length; i++) {
    const g = got[i] as WindowBody,
      w = want[i] as WindowBody
    const id = `${w.window}:${w.start}`
    if (g.window !== w.window || g.start !== w.start || g.end !== w.end || g.idleClosed !== w.idleClosed)
      return `window ${i}: ${g.window}:${g.start} vs ${id}`
    if (JSON.stringify(g.counts) !== JSON.stringify(w.counts))
      return `${id} counts ${JSON.stringify(g.counts)} vs ${JSON.stringify(w.counts)}`
    if (Object.keys(g.fields).join() !== Object.keys(w.fields).join())
      return `${id} fields ${Object.keys(g.fields).join()} vs ${Object.keys(w.fields).join()}`
    for (const [f, wa] of Object.entries(w.fields)) {
      const ga = g.fields[f] as FieldAggregate
      for (const k of ['count', 'sum', 'min', 'max', 'first', 'last'] as const) {
        if (ga[k] !== wa[k]) return `${id}.${f}.${k} ${ga[k]} vs ${wa[k]}`
      }
      for (const k of ['mean', 'variance', 'stddev'] as const) {
        if (!close(ga[k], wa[k])) return `${id}.${f}.${k} ${ga[k]} vs ${wa[k]}`
      }
    }
  }
  return undefined
}

// ---- generators -------------------------------------------------------------------------------------------

type Op =
  | { r: { step: number; back: number; fields: Record<string, FieldValue>; counts: Record<string, number> } }
  | { flush: true }

const fieldValue = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: -1000, max: 1000 }) },
  { weight: 1, arbitrary: fc.constantFrom<FieldValue>(NaN, Infinity, -Infinity, 'x', true) },
)
const fieldsArb = fc.record({ a: fieldValue, b: fieldValue, c: fieldValue }, { requiredKeys: [] })
const readingOp = fc.record({
  step: fc.integer({ min: 0, max: 20_000 }),
  // Mostly small disorder, sometimes far behind (late), sometimes exactly on a boundary offset.
  back: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 5_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 200_000 }) },
  ),
  fields: fieldsArb,
  counts: fc.record({ alerts: fc.integer({ min: 0, max: 2 }), failures: fc.integer({ min: 0, max: 1 }) }),
})
const opsArb = fc.array(
  fc.oneof(
    { weight: 30, arbitrary: readingOp.map((r): Op => ({ r })) },
    { weight: 1, arbitrary: fc.constant<Op>({ flush: true }) },
  ),
  { maxLength: 150, size: 'max' },
)
const specsArb = fc.oneof(
  fc.constant<WindowSpec[]>([
    { name: 'tumbling_1m', sizeMs: 60_000 },
    { name: 'sliding_5m_1m', sizeMs: 300_000, slideMs: 60_000 },
  ]),
  fc
    .array(fc.record({ slide: fc.constantFrom(1000, 2000, 5000, 10_000), k: fc.integer({ min: 1, max: 5 }) }), {
      minLength: 1,
      maxLength: 3,
    })
    .map((xs) => xs.map((x, i): WindowSpec => ({ name: `w${i}`, sizeMs: x.slide * x.k, slideMs: x.slide }))),
)
const baseArb = fc.constantFrom(0, -123_456, 1_700_000_000_000)
const latenessArb = fc.constantFrom(0, 3_000, 30_000)

interface RunResult {
  outputs: WindowBody[][]
  late: number[]
}

/** Drives an operator like the profile does: advance to the watermark (max ts - lateness), then add. */
function drive(
  ops: Op[],
  base: number,
  lateness: number,
  step: (kind: 'advance' | 'add' | 'flush', r?: Rd, wm?: number) => WindowBody[] | number,
): RunResult {
  let clock = base
  let maxTs = -Infinity
  const outputs: WindowBody[][] = []
  const late: number[] = []
  ops.forEach((op, arrival) => {
    if ('flush' in op) {
      outputs.push(step('flush') as WindowBody[])
      return
    }
    clock += op.r.step
    const r: Rd = { ts: clock - op.r.back, fields: op.r.fields, counts: op.r.counts, arrival }
    maxTs = Math.max(maxTs, r.ts)
    outputs.push(step('advance', undefined, maxTs - lateness) as WindowBody[])
    late.push(step('add', r) as number)
  })
  return { outputs, late }
}

void t.test('tumbling and sliding windows equal the naive reference (out of order, late, flushes)', async (t) => {
  const stats = { readings: 0, late: 0, partial: 0, windows: 0 }
  fc.assert(
    fc.property(specsArb, baseArb, latenessArb, opsArb, (specs, base, lateness, ops) => {
      const w = new EventWindows({ windows: specs, fields: FIELDS, counts: COUNTS })
      const ref = new RefWindows(specs)
      const got = drive(ops, base, lateness, (k, r, wm) =>
        k === 'advance'
          ? w.advance(wm as number)
          : k === 'flush'
            ? w.flushAll()
            : w.add((r as Rd).ts, (r as Rd).fields, (r as Rd).counts),
      )
      const want = drive(ops, base, lateness, (k, r, wm) =>
        k === 'advance' ? ref.advance(wm as number) : k === 'flush' ? ref.flushAll() : ref.add(r as Rd),
      )
      if (got.late.join() !== want.late.join()) throw new Error(`late masks ${got.late.join()} vs ${want.late.join()}`)
      stats.late += got.late.filter((m) => m !== 0).length
      stats.partial += got.late.filter((m) => m !== 0 && m !== (1 << specs.length) - 1).length
      stats.windows += got.outputs.reduce((n, o) => n + o.length, 0)
      stats.readings += got.late.length
      for (let i = 0; i < got.outputs.length; i++) {
        const diff = sameWindows(got.outputs[i] as WindowBody[], want.outputs[i] as WindowBody[])
        if (diff) throw new Error(`step ${i}: ${diff}`)
      }
      // What is still open matches too, and closedThrough is what the definition says.
      const diff = sameWindows(w.flushAll(), ref.flushAll())
      if (diff) throw new Error(`final flush: ${diff}`)
      specs.forEach((_s, i) => {
        if (w.closedThrough(i) !== ref.h[i]) throw new Error(`closedThrough ${i}`)
      })
      if (w.paneCount !== 0) throw new Error('panes left after flushAll')
    }),
    { numRuns: 400 },
  )
  t.comment(
    `400 runs: ${stats.readings} readings, ${stats.late} late (${stats.partial} for some definitions only), ${stats.windows} windows`,
  )
  t.ok(
    stats.late > 100 && stats.partial > 10 && stats.windows > 1000,
    'the generator exercises late readings and closes windows',
  )
})

void t.test('non-integer values: mean/variance/stddev within 1e-9 of the two-pass reference', async (t) => {
  const dbl = fc.double({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true })
  const ops = fc.array(
    fc
      .record({
        step: fc.integer({ min: 0, max: 3000 }),
        back: fc.integer({ min: 0, max: 2000 }),
        fields: fc.record({ a: dbl, b: dbl.map((x) => 1e6 + x / 1e3) }),
        counts: fc.constant({}),
      })
      .map((r): Op => ({ r })),
    { maxLength: 200, size: 'max' },
  )
  fc.assert(
    fc.property(ops, (ops) => {
      const specs = [
        { name: 't', sizeMs: 10_000 },
        { name: 's', sizeMs: 30_000, slideMs: 5_000 },
      ]
      const w = new EventWindows({ windows: specs, fields: FIELDS, counts: COUNTS })
      const ref = new RefWindows(specs)
      const got = drive(ops, 0, 1000, (k, r, wm) =>
        k === 'advance'
          ? w.advance(wm as number)
          : k === 'flush'
            ? w.flushAll()
            : w.add((r as Rd).ts, (r as Rd).fields),
      )
      const want = drive(ops, 0, 1000, (k, r, wm) =>
        k === 'advance'
          ? ref.advance(wm as number)
          : k === 'flush'
            ? ref.flushAll()
            : ref.add({ ...(r as Rd), counts: {} }),
      )
      for (let i = 0; i < got.outputs.length; i++) {
        const g = (got.outputs[i] as WindowBody[]).flatMap((x) => Object.entries(x.fields))
        const wt = (want.outputs[i] as WindowBody[]).flatMap((x) => Object.entries(x.fields))
        g.forEach(([f, a], j) => {
          const b = (wt[j] as [string, FieldAggregate])[1]
          if (a.count !== b.count || a.min !== b.min || a.max !== b.max || a.first !== b.first || a.last !== b.last)
            throw new Error(`${f} exact fields`)
          for (const k of ['sum', 'mean', 'variance', 'stddev'] as const) {
            // Variance is compared relative to the squared scale of the data (catastrophic cancellation in
            // the reference itself is of that order).
            const scale =
              k === 'variance' ? Math.max(Math.abs(b.variance), b.mean ** 2 * 1e-6, 1) : Math.max(Math.abs(b[k]), 1)
            if (Math.abs(a[k] - b[k]) > 1e-9 * scale) throw new Error(`${f}.${k} ${a[k]} vs ${b[k]}`)
          }
        })
      }
    }),
    { numRuns: 200 },
  )
  t.pass('200 random runs')
})

void t.test('snapshot at a random point, restore, continue: same outputs as without the snapshot', async (t) => {
  fc.assert(
    fc.property(specsArb, baseArb, latenessArb, opsArb, fc.nat(), (specs, base, lateness, ops, cut) => {
      const opts = { windows: specs, fields: FIELDS, counts: COUNTS }
      const layout = compileWindows(opts)
      const plain = new EventWindows(layout)
      let snap = new EventWindows(layout)
      const at = ops.length === 0 ? 0 : cut % ops.length
      let i = 0
      const run =
        (w: () => EventWindows) =>
        (k: string, r?: Rd, wm?: number): WindowBody[] | number =>
          k === 'advance'
            ? w().advance(wm as number)
            : k === 'flush'
              ? w().flushAll()
              : w().add((r as Rd).ts, (r as Rd).fields, (r as Rd).counts)
      const want = drive(
        ops,
        base,
        lateness,
        run(() => plain),
      )
      const got = drive(ops, base, lateness, (k, r, wm) => {
        if (k !== 'add' && i++ === at) snap = EventWindows.fromJSON(layout, JSON.parse(JSON.stringify(snap)))
        return run(() => snap)(k, r, wm)
      })
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error('outputs differ after restore')
      if (JSON.stringify(snap.flushAll()) !== JSON.stringify(plain.flushAll())) throw new Error('final state differs')
    }),
    { numRuns: 300 },
  )
  t.pass('300 random runs')
})

// Mostly complete readings (every field a number) and zero counters: panes are held compact and shed the last
// values of older panes; sometimes a field is missing or a counter is set, which widens a pane again.
const completeFields = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      a: fc.integer({ min: -50, max: 50 }),
      b: fc.integer({ min: -50, max: 50 }),
      c: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fieldsArb },
)
const completeOp = fc.record({
  step: fc.integer({ min: 0, max: 15_000 }),
  back: fc.oneof(
    { weight: 8, arbitrary: fc.constant(0) },
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 5_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 200_000 }) },
  ),
  fields: completeFields as fc.Arbitrary<Record<string, FieldValue>>,
  counts: fc.oneof(
    { weight: 10, arbitrary: fc.constant({ alerts: 0, failures: 0 }) },
    {
      weight: 1,
      arbitrary: fc.record({ alerts: fc.integer({ min: 0, max: 2 }), failures: fc.integer({ min: 0, max: 1 }) }),
    },
  ),
})
const completeOpsArb = fc.array(
  fc.oneof(
    { weight: 60, arbitrary: completeOp.map((r): Op => ({ r })) },
    { weight: 1, arbitrary: fc.constant<Op>({ flush: true }) },
  ),
  { maxLength: 200, size: 'max' },
)

void t.test('compact panes (mostly complete readings) equal the naive reference, across a snapshot', async (t) => {
  fc.assert(
    fc.property(specsArb, baseArb, latenessArb, completeOpsArb, fc.nat(), (specs, base, lateness, ops, cut) => {
      const layout = compileWindows({ windows: specs, fields: FIELDS, counts: COUNTS })
      let w = new EventWindows(layout)
      const ref = new RefWindows(specs)
      const at = ops.length === 0 ? 0 : cut % ops.length
      let i = 0
      const got = drive(ops, base, lateness, (k, r, wm) => {
        if (k !== 'add' && i++ === at) w = EventWindows.fromJSON(layout, JSON.parse(JSON.stringify(w)))
        if (k === 'add') {
          // Open windows (live queries) match the reference's open windows flushed from a copy.
          const m = w.add((r as Rd).ts, (r as Rd).fields, (r as Rd).counts)
          const copy = EventWindows.fromJSON(layout, JSON.parse(JSON.stringify(w)))
          const open = w.openWindows().map((b) => ({ ...b, idleClosed: true }))
          const diff = sameWindows(open, copy.flushAll())
          if (diff) throw new Error(`open windows: ${diff}`)
          return m
        }
        return k === 'advance' ? w.advance(wm as number) : w.flushAll()
      })
      const want = drive(ops, base, lateness, (k, r, wm) =>
        k === 'advance' ? ref.advance(wm as number) : k === 'flush' ? ref.flushAll() : ref.add(r as Rd),
      )
      if (got.late.join() !== want.late.join()) throw new Error(`late masks ${got.late.join()} vs ${want.late.join()}`)
      for (let j = 0; j < got.outputs.length; j++) {
        const diff = sameWindows(got.outputs[j] as WindowBody[], want.outputs[j] as WindowBody[])
        if (diff) throw new Error(`step ${j}: ${diff}`)
      }
      const diff = sameWindows(w.flushAll(), ref.flushAll())
      if (diff) throw new Error(`final flush: ${diff}`)
    }),
    { numRuns: 300 },
  )
  t.pass('300 random runs')
})

void t.test('exact boundaries', async (t) => {
  const w = new EventWindows({
    windows: [
      { name: 't', sizeMs: 60_000 },
      { name: 's', sizeMs: 300_000, slideMs: 60_000 },
    ],
    fields: ['v'],
  })
  t.equal(w.add(59_999, { v: 1 }), 0)
  t.equal(w.add(60_000, { v: 2 }), 0)
  t.same(w.advance(59_999), [], 'watermark below the end closes nothing')
  const closed = w.advance(60_000)
  t.same(
    closed.map((x) => [x.window, x.start, x.end]),
    [
      ['s', -240_000, 60_000],
      ['t', 0, 60_000],
    ],
    'watermark == end closes; ordered by (end, start)',
  )
  t.same(closed[1]?.fields.v, { count: 1, sum: 1, min: 1, max: 1, mean: 1, variance: 0, stddev: 0, first: 1, last: 1 })
  t.equal(
    w.add(59_000, { v: 5 }),
    0b01,
    'late for the tumbling window only: its sliding windows ending after 60 s are open',
  )
  t.equal(w.closedThrough('t'), 60_000)
  const all = w.flushAll()
  t.same(
    all.map((x) => [x.window, x.start, x.end, x.counts.readings, x.idleClosed]),
    [
      ['s', -180_000, 120_000, 3, true],
      ['t', 60_000, 120_000, 1, true],
      ['s', -120_000, 180_000, 3, true],
      ['s', -60_000, 240_000, 3, true],
      ['s', 0, 300_000, 3, true],
      ['s', 60_000, 360_000, 1, true],
    ],
  )
  t.equal(w.closedThrough('s'), 360_000, 'flush moves the horizon to the last flushed end')
  t.equal(w.add(100_000, { v: 1 }), 0b11, 'every window of the reading was flushed: late for both')
  t.equal(w.add(70_000, { v: 1 }), 0b11, 'flushed windows stay closed although the watermark is behind them')
  t.equal(w.add(130_000, { v: 1 }), 0, 'a later tumbling window, and the sliding windows ending after 360 s, are open')
})

void t.test('first/last by event time, ties by arrival; non-finite values skipped per field', async (t) => {
  const w = new EventWindows({ windows: [{ name: 't', sizeMs: 1000 }], fields: ['v', 'u'] })
  w.add(500, { v: 1, u: NaN })
  w.add(100, { v: 2, u: 7 })
  w.add(100, { v: 3, u: 'hot' })
  w.add(900, { v: 4 })
  w.add(900, { v: 5, u: Infinity })
  const [x] = w.advance(1000)
  t.same(x?.fields.v, {
    count: 5,
    sum: 15,
    min: 1,
    max: 5,
    mean: 3,
    variance: 2,
    stddev: Math.SQRT2,
    first: 2,
    last: 5,
  })
  t.same(x?.fields.u, { count: 1, sum: 7, min: 7, max: 7, mean: 7, variance: 0, stddev: 0, first: 7, last: 7 })
  t.equal(x?.counts.readings, 5)
})

void t.test('memory: panes are shared by definitions and dropped when closed', async (t) => {
  const w = new EventWindows({
    windows: [
      { name: 't', sizeMs: 60_000 },
      { name: 's', sizeMs: 300_000, slideMs: 60_000 },
    ],
    fields: ['a', 'b'],
  })
  for (let ts = 0; ts < 3_600_000; ts += 10_000) {
    w.advance(ts - 30_000)
    w.add(ts, { a: 1, b: 2 })
  }
  t.ok(w.paneCount <= 6, `5-minute sliding + 30 s lateness keeps <= 6 one-minute panes (has ${w.paneCount})`)
})

void t.test('snapshot: compact, fields remapped by name, other definitions rejected', async (t) => {
  const w = new EventWindows({ windows: [{ name: 't', sizeMs: 60_000 }], fields: ['a', 'b'], counts: ['alerts'] })
  w.add(1_700_000_000_123, { a: 1, b: 2 }, { alerts: 1 })
  w.add(1_700_000_000_456, { a: 3 })
  const json = JSON.parse(JSON.stringify(w))
  t.notMatch(JSON.stringify(json.p.slice(3)), /1700000000123/, 'event times stored as offsets from the pane start')
  const r = EventWindows.fromJSON(
    { windows: [{ name: 't', sizeMs: 60_000 }], fields: ['b', 'z'], counts: ['failures', 'alerts'] },
    json,
  )
  const [x] = r.flushAll()
  t.same(Object.keys(x?.fields ?? {}), ['b'])
  t.same(x?.counts, { readings: 2, failures: 0, alerts: 1 })
  t.throws(
    () => EventWindows.fromJSON({ windows: [{ name: 't', sizeMs: 30_000 }], fields: ['a'] }, json),
    SnapshotError,
  )
  t.throws(
    () => EventWindows.fromJSON({ windows: [{ name: 't', sizeMs: 60_000 }], fields: ['a'] }, { ...json, p: [1, 2] }),
    SnapshotError,
  )
  t.throws(
    () => EventWindows.fromJSON({ windows: [{ name: 't', sizeMs: 60_000 }], fields: ['a'] }, null),
    SnapshotError,
  )
})

void t.test('configuration is validated', async (t) => {
  t.throws(() => compileWindows({ windows: [{ name: 's', sizeMs: 300_000, slideMs: 70_000 }], fields: [] }), {
    code: 'PW_CONFIG_INVALID',
  })
  t.throws(() => compileWindows({ windows: [], fields: [] }), { code: 'PW_CONFIG_INVALID' })
  t.throws(
    () =>
      compileWindows({
        windows: [
          { name: 'x', sizeMs: 1 },
          { name: 'x', sizeMs: 2 },
        ],
        fields: [],
      }),
    { code: 'PW_CONFIG_INVALID' },
  )
  t.throws(() => compileWindows({ windows: [{ name: 'x', sizeMs: 1 }], fields: ['a'], counts: ['readings'] }), {
    code: 'PW_CONFIG_INVALID',
  })
})

// ---- sessions -------------------------------------------------------------------------------------------

/** Naive sessions: open readings in a list; sessions are the chains of open readings with gaps < G. */
class RefSessions {
  h = -Infinity
  rs: Rd[] = []
  constructor(readonly gap: number) {}
  private sessions(): Rd[][] {
    const sorted = [...this.rs].sort((a, b) => a.ts - b.ts || a.arrival - b.arrival)
    const out: Rd[][] = []
    for (const r of sorted) {
      const cur = out[out.length - 1]
      const lastTs = cur ? Math.max(...cur.map((x) => x.ts)) : -Infinity
      if (cur && r.ts - lastTs < this.gap) cur.push(r)
      else out.push([r])
    }
    return out
  }
  add(r: Rd): boolean {
    if (!this.rs.some((x) => Math.abs(x.ts - r.ts) < this.gap) && r.ts + this.gap <= this.h) return true
    this.rs.push(r)
    return false
  }
  private close(pred: (end: number) => boolean, idle: boolean): WindowBody[] {
    const out: WindowBody[] = []
    for (const s of this.sessions()) {
      const start = Math.min(...s.map((x) => x.ts)),
        end = Math.max(...s.map((x) => x.ts)) + this.gap
      if (!pred(end)) continue
      out.push(
        naiveBody(
          'sess',
          start,
          end,
          [...s].sort((a, b) => a.arrival - b.arrival),
          idle,
        ),
      )
      this.rs = this.rs.filter((x) => !s.includes(x))
      if (idle && end > this.h) this.h = end
    }
    return out.sort((a, b) => a.end - b.end || a.start - b.start)
  }
  advance(wm: number): WindowBody[] {
    if (!(wm > this.h)) return []
    this.h = wm
    return this.close((e) => e <= wm, false)
  }
  flushAll(): WindowBody[] {
    return this.close(() => true, true)
  }
}

void t.test('session windows equal the naive reference, and survive a snapshot', async (t) => {
  fc.assert(
    fc.property(fc.constantFrom(1000, 5000, 20_000), latenessArb, opsArb, fc.nat(), (gap, lateness, ops, cut) => {
      const opts = { name: 'sess', gapMs: gap, fields: FIELDS, counts: COUNTS }
      let w = new SessionWindows(opts)
      const ref = new RefSessions(gap)
      const at = ops.length === 0 ? 0 : cut % ops.length
      let i = 0
      const got = drive(ops, 1_700_000_000_000, lateness, (k, r, wm) => {
        if (k !== 'add' && i++ === at) w = SessionWindows.fromJSON(opts, JSON.parse(JSON.stringify(w)))
        return k === 'advance'
          ? w.advance(wm as number)
          : k === 'flush'
            ? w.flushAll()
            : w.add((r as Rd).ts, (r as Rd).fields, (r as Rd).counts)
              ? 1
              : 0
      })
      const want = drive(ops, 1_700_000_000_000, lateness, (k, r, wm) =>
        k === 'advance' ? ref.advance(wm as number) : k === 'flush' ? ref.flushAll() : ref.add(r as Rd) ? 1 : 0,
      )
      if (got.late.join() !== want.late.join()) throw new Error(`late ${got.late.join()} vs ${want.late.join()}`)
      for (let j = 0; j < got.outputs.length; j++) {
        const diff = sameWindows(got.outputs[j] as WindowBody[], want.outputs[j] as WindowBody[])
        if (diff) throw new Error(`step ${j}: ${diff}`)
      }
      const diff = sameWindows(w.flushAll(), ref.flushAll())
      if (diff) throw new Error(`final: ${diff}`)
    }),
    { numRuns: 300 },
  )
  t.pass('300 random runs')
})
