/**
 * Detectors against naive references that recompute each decision from the full history of accepted samples
 * (scanning back for the current hot / clear run instead of keeping a state machine), on random sequences
 * with out-of-order samples; plus exact boundary cases and JSON round trips mid-sequence.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  Flatline,
  RangeCheck,
  RateOfChange,
  Staleness,
  ThresholdForDuration,
  type DetectorEvent,
  type FlatlineOptions,
  type RangeOptions,
  type RateOptions,
  type SampleDetector,
  type ThresholdOptions,
} from '../../actors/detectors.js'
import { SnapshotError } from '../../actors/errors.js'

type Sample = [ts: number, value: number]
type Trace = Array<DetectorEvent | undefined>

/** Samples with mostly increasing time, some repeats and some going back (ignored by the detectors). */
function samplesArb(values: fc.Arbitrary<number>): fc.Arbitrary<Sample[]> {
  const dt = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(500, 1000, 1000, 1000, 1500, 2000) },
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: -3000, max: -1 }) },
  )
  return fc.array(fc.tuple(dt, values), { maxLength: 120, size: 'max' }).map((xs) => {
    let ts = 1_000_000
    return xs.map(([d, v]): Sample => [(ts += d), v])
  })
}

/** Feeds samples; at index `cut` the detector is replaced by its JSON round trip. */
function run<D extends SampleDetector>(
  make: () => D,
  restore: (data: unknown) => D,
  samples: Sample[],
  cut = -1,
): { trace: Trace; det: D } {
  let det = make()
  const trace = samples.map(([ts, v], i) => {
    if (i === cut) det = restore(JSON.parse(JSON.stringify(det.toJSON())))
    return det.update(ts, v)
  })
  return { trace, det }
}

/** Accepted samples (arrival order, ts not older than the last accepted) with their indexes. */
function accepted(samples: Sample[]): { acc: Array<{ i: number; ts: number; v: number }>; ignored: number } {
  const acc: Array<{ i: number; ts: number; v: number }> = []
  let last = -Infinity,
    ignored = 0
  samples.forEach(([ts, v], i) => {
    if (ts < last || !Number.isFinite(v)) {
      ignored++
      return
    }
    last = ts
    acc.push({ i, ts, v })
  })
  return { acc, ignored }
}

// ---- ThresholdForDuration -------------------------------------------------------------------------------

function refThreshold(o: ThresholdOptions, samples: Sample[]): Trace {
  const out: Trace = samples.map(() => undefined)
  const up = o.above !== undefined
  const thr = (up ? o.above : o.below) as number
  const h = o.hysteresis ?? 0
  const hot = (x: number): boolean => (up ? x > thr : x < thr)
  const clear = (x: number): boolean => (up ? x <= thr - h : x >= thr + h)
  const ext = (xs: number[]): number => (up ? Math.max(...xs) : Math.min(...xs))
  const { acc } = accepted(samples)
  let open = false,
    runStart = 0,
    openIdx = 0,
    reported = 0,
    emitTs = 0
  acc.forEach(({ i, ts, v }, n) => {
    if (!open) {
      if (!hot(v)) return
      let j = n
      while (j > 0 && hot((acc[j - 1] as { v: number }).v)) j--
      if (ts - (acc[j] as { ts: number }).ts < o.durationMs) return
      open = true
      runStart = j
      openIdx = n
      reported = ext(acc.slice(j, n + 1).map((x) => x.v))
      emitTs = ts
      out[i] = { state: 'open', start: (acc[j] as { ts: number }).ts, value: v, peak: reported, threshold: thr }
      return
    }
    const start = (acc[runStart] as { ts: number }).ts
    const peak = ext(acc.slice(runStart, n + 1).map((x) => x.v))
    if (clear(v)) {
      let k = n
      while (k - 1 > openIdx && clear((acc[k - 1] as { v: number }).v)) k--
      if (ts - (acc[k] as { ts: number }).ts >= (o.clearMs ?? 0)) {
        open = false
        out[i] = { state: 'close', start, end: ts, value: v, peak, threshold: thr }
        return
      }
    }
    if (o.updateDelta === undefined) return
    const grown = up ? peak - reported : reported - peak
    if (grown > 0 && grown >= o.updateDelta && ts - emitTs >= (o.updateIntervalMs ?? 0)) {
      reported = peak
      emitTs = ts
      out[i] = { state: 'update', start, value: v, peak, threshold: thr }
    }
  })
  return out
}

const thresholdOptsArb: fc.Arbitrary<ThresholdOptions> = fc
  .record({
    dir: fc.boolean(),
    durationMs: fc.constantFrom(0, 1000, 2000, 5000),
    hysteresis: fc.option(fc.constantFrom(0, 1, 2.5), { nil: undefined }),
    clearMs: fc.option(fc.constantFrom(0, 1000, 3000), { nil: undefined }),
    updateDelta: fc.option(fc.constantFrom(0, 1, 3), { nil: undefined }),
    updateIntervalMs: fc.option(fc.constantFrom(0, 2000), { nil: undefined }),
  })
  .map(({ dir, ...o }) => {
    const r: ThresholdOptions = dir ? { above: 40, durationMs: o.durationMs } : { below: 40, durationMs: o.durationMs }
    if (o.hysteresis !== undefined) r.hysteresis = o.hysteresis
    if (o.clearMs !== undefined) r.clearMs = o.clearMs
    if (o.updateDelta !== undefined) r.updateDelta = o.updateDelta
    if (o.updateIntervalMs !== undefined) r.updateIntervalMs = o.updateIntervalMs
    return r
  })
// Values around the threshold and its hysteresis band, integers and halves (exact boundary hits are common).
const nearThreshold = fc.integer({ min: 70, max: 92 }).map((x) => x / 2)

void t.test(
  'ThresholdForDuration equals the naive reference; JSON round trip mid-sequence changes nothing',
  async (t) => {
    let events = 0
    const kinds = new Set<string>()
    fc.assert(
      fc.property(thresholdOptsArb, samplesArb(nearThreshold), fc.nat(), (o, samples, cut) => {
        const want = refThreshold(o, samples)
        const plain = run(
          () => new ThresholdForDuration(o),
          (d) => ThresholdForDuration.fromJSON(o, d),
          samples,
        )
        if (JSON.stringify(plain.trace) !== JSON.stringify(want)) {
          throw new Error(`trace differs\n got ${JSON.stringify(plain.trace)}\nwant ${JSON.stringify(want)}`)
        }
        const cutRun = run(
          () => new ThresholdForDuration(o),
          (d) => ThresholdForDuration.fromJSON(o, d),
          samples,
          samples.length ? cut % samples.length : -1,
        )
        if (JSON.stringify(cutRun.trace) !== JSON.stringify(want))
          throw new Error('trace differs after a JSON round trip')
        if (plain.det.ignored !== accepted(samples).ignored) throw new Error('ignored count')
        // Events come as open (update)* close, never two opens in a row.
        let open = false
        for (const e of plain.trace) {
          if (!e) continue
          events++
          kinds.add(e.state)
          if ((e.state === 'open') === open) throw new Error(`${e.state} while ${open ? 'open' : 'closed'}`)
          open = e.state !== 'close'
        }
        if (plain.det.active !== open) throw new Error('active')
      }),
      { numRuns: 1000 },
    )
    t.comment(`${events} events (${[...kinds].join(', ')})`)
    t.same([...kinds].sort(), ['close', 'open', 'update'], 'open, update and close all exercised')
  },
)

void t.test('ThresholdForDuration exact boundaries', async (t) => {
  const o = { above: 950, durationMs: 2000, hysteresis: 50 }
  const feed = (d: ThresholdForDuration, xs: Sample[]): Array<string | undefined> =>
    xs.map(([ts, v]) => d.update(ts, v)?.state)
  // 1 Hz, duration 2 s: hot at t=0,1,2 opens at the sample t=2 with start 0.
  let d = new ThresholdForDuration(o)
  t.same(
    feed(d, [
      [0, 951],
      [1000, 960],
      [2000, 955],
    ]),
    [undefined, undefined, 'open'],
  )
  t.same(d.start, 0)
  t.equal(d.peak, 960)
  // A cold sample before 2 s resets the pending start.
  d = new ThresholdForDuration(o)
  t.same(
    feed(d, [
      [0, 951],
      [1000, 950],
      [2000, 951],
      [3000, 951],
      [4000, 951],
    ]),
    [undefined, undefined, undefined, undefined, 'open'],
  )
  t.equal(d.start, 2000)
  // Hysteresis: 901 stays open (band), 900 closes; exactly at the threshold is not hot.
  t.same(
    feed(d, [
      [5000, 950],
      [6000, 901],
      [7000, 900],
      [8000, 950],
    ]),
    [undefined, undefined, 'close', undefined],
  )
  // clearMs: the clear condition must hold 1 s; a band sample restarts it.
  d = new ThresholdForDuration({ ...o, durationMs: 0, clearMs: 1000 })
  t.same(
    feed(d, [
      [0, 960],
      [1000, 800],
      [1500, 920],
      [2000, 800],
      [2999, 800],
      [3000, 800],
    ]),
    ['open', undefined, undefined, undefined, undefined, 'close'],
  )
  // below, and the event's fields.
  d = new ThresholdForDuration({ below: 15, durationMs: 0, hysteresis: 2 })
  t.same(d.update(10, 14), { state: 'open', start: 10, value: 14, peak: 14, threshold: 15 })
  t.equal(d.update(20, 12), undefined)
  t.equal(d.update(30, 16.9), undefined)
  t.same(d.update(40, 17), { state: 'close', start: 10, end: 40, value: 17, peak: 12, threshold: 15 })
  // Out-of-order and non-finite samples are ignored and counted; equal time is accepted.
  t.equal(d.update(39, 1), undefined)
  t.equal(d.update(40, NaN), undefined)
  t.equal(d.update(40, 1)?.state, 'open')
  t.equal(d.ignored, 2)
})

void t.test('ThresholdForDuration options are validated', async (t) => {
  t.throws(() => new ThresholdForDuration({ durationMs: 0 }), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => new ThresholdForDuration({ above: 1, below: 0, durationMs: 0 }), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => new ThresholdForDuration({ above: 1, durationMs: -1 }), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => new ThresholdForDuration({ above: 1, durationMs: 0, hysteresis: NaN }), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => ThresholdForDuration.fromJSON({ above: 1, durationMs: 0 }, [1, 2]), SnapshotError)
  t.throws(
    () => ThresholdForDuration.fromJSON({ above: 1, durationMs: 0 }, [0, null, null, null, null, null, null, 'x']),
    SnapshotError,
  )
})

void t.test('detectors sharing one slot array behave like standalone ones', async (t) => {
  fc.assert(
    fc.property(samplesArb(nearThreshold), samplesArb(nearThreshold), (a, b) => {
      const oa = { above: 41, durationMs: 1000, updateDelta: 1 },
        ob = { min: 38, max: 42 }
      const buf = [...ThresholdForDuration.blank(), ...RangeCheck.blank()]
      const shared = [
        ...a.map(([ts, v]) => new ThresholdForDuration(oa, buf, 0).update(ts, v)),
        ...b.map(([ts, v]) => new RangeCheck(ob, buf, ThresholdForDuration.SLOTS).update(ts, v)),
      ]
      const sa = new ThresholdForDuration(oa),
        sb = new RangeCheck(ob)
      const alone = [...a.map(([ts, v]) => sa.update(ts, v)), ...b.map(([ts, v]) => sb.update(ts, v))]
      if (JSON.stringify(shared) !== JSON.stringify(alone)) throw new Error('views differ from standalone detectors')
    }),
    { numRuns: 200 },
  )
  t.throws(() => new RangeCheck({ min: 0, max: 1 }, [0, 0], 0), { code: 'PW_CONFIG_INVALID' })
})

// ---- RangeCheck ------------------------------------------------------------------------------------------

function refRange(o: RangeOptions, samples: Sample[]): Trace {
  const out: Trace = samples.map(() => undefined)
  const outside = (x: number): boolean => x < o.min || x > o.max
  const dist = (x: number): number => (x < o.min ? o.min - x : x - o.max)
  const { acc } = accepted(samples)
  let openIdx = -1
  acc.forEach(({ i, ts, v }, n) => {
    if (openIdx < 0) {
      if (outside(v)) {
        openIdx = n
        out[i] = { state: 'open', start: ts, value: v, peak: v, threshold: v < o.min ? o.min : o.max }
      }
      return
    }
    if (outside(v)) return
    const run = acc.slice(openIdx, n)
    let peak = run[0] as { v: number }
    for (const x of run) if (dist(x.v) > dist(peak.v)) peak = x
    const first = acc[openIdx] as { ts: number; v: number }
    out[i] = {
      state: 'close',
      start: first.ts,
      end: ts,
      value: v,
      peak: peak.v,
      threshold: first.v < o.min ? o.min : o.max,
    }
    openIdx = -1
  })
  return out
}

void t.test('RangeCheck equals the naive reference and round-trips', async (t) => {
  fc.assert(
    fc.property(samplesArb(fc.integer({ min: 30, max: 50 })), fc.nat(), (samples, cut) => {
      const o = { min: 36, max: 44 }
      const want = refRange(o, samples)
      const got = run(
        () => new RangeCheck(o),
        (d) => RangeCheck.fromJSON(o, d),
        samples,
        samples.length ? cut % samples.length : -1,
      )
      if (JSON.stringify(got.trace) !== JSON.stringify(want))
        throw new Error(`trace differs\n got ${JSON.stringify(got.trace)}\nwant ${JSON.stringify(want)}`)
    }),
    { numRuns: 500 },
  )
  const d = new RangeCheck({ min: 0, max: 10 })
  t.equal(d.update(0, 10), undefined, 'the bounds are in range')
  t.same(d.update(1, 11), { state: 'open', start: 1, value: 11, peak: 11, threshold: 10 })
  t.equal(d.update(2, -5), undefined)
  t.same(
    d.update(3, 0),
    { state: 'close', start: 1, end: 3, value: 0, peak: -5, threshold: 10 },
    'peak = farthest outside',
  )
  t.throws(() => new RangeCheck({ min: 2, max: 1 }), { code: 'PW_CONFIG_INVALID' })
})

// ---- RateOfChange ----------------------------------------------------------------------------------------

function refRate(o: RateOptions, samples: Sample[]): Trace {
  const out: Trace = samples.map(() => undefined)
  const { acc } = accepted(samples)
  let open = false,
    start = 0,
    peak = 0
  acc.forEach(({ i, ts, v }, n) => {
    const prev = acc[n - 1]
    if (!prev || prev.ts === ts) return
    const rate = (v - prev.v) / ((ts - prev.ts) / 1000)
    const hot = Math.abs(rate) > o.maxPerSecond
    if (!open) {
      if (hot) {
        open = true
        start = ts
        peak = rate
        out[i] = { state: 'open', start, value: rate, peak, threshold: o.maxPerSecond }
      }
      return
    }
    if (Math.abs(rate) > Math.abs(peak)) peak = rate
    if (!hot) {
      open = false
      out[i] = { state: 'close', start, end: ts, value: rate, peak, threshold: o.maxPerSecond }
    }
  })
  return out
}

void t.test('RateOfChange equals the naive reference and round-trips', async (t) => {
  fc.assert(
    fc.property(
      samplesArb(fc.integer({ min: 0, max: 20 })),
      fc.constantFrom(1, 4, 8),
      fc.nat(),
      (samples, max, cut) => {
        const o = { maxPerSecond: max }
        const want = refRate(o, samples)
        const got = run(
          () => new RateOfChange(o),
          (d) => RateOfChange.fromJSON(o, d),
          samples,
          samples.length ? cut % samples.length : -1,
        )
        if (JSON.stringify(got.trace) !== JSON.stringify(want))
          throw new Error(`trace differs\n got ${JSON.stringify(got.trace)}\nwant ${JSON.stringify(want)}`)
      },
    ),
    { numRuns: 500 },
  )
  const d = new RateOfChange({ maxPerSecond: 2 })
  t.equal(d.update(0, 0), undefined)
  t.equal(d.update(1000, 2), undefined, 'exactly the limit is fine')
  t.same(d.update(1500, 4), { state: 'open', start: 1500, value: 4, peak: 4, threshold: 2 })
  t.same(d.update(2500, 3), { state: 'close', start: 1500, end: 2500, value: -1, peak: 4, threshold: 2 })
})

// ---- Flatline --------------------------------------------------------------------------------------------

function refFlatline(o: FlatlineOptions, samples: Sample[]): Trace {
  const out: Trace = samples.map(() => undefined)
  const { acc } = accepted(samples)
  let ref = 0,
    open = false
  acc.forEach(({ i, ts, v }, n) => {
    const r = acc[ref] as { ts: number; v: number }
    if (n === 0 || Math.abs(v - r.v) > o.epsilon) {
      if (open)
        out[i] = {
          state: 'close',
          start: r.ts,
          end: ts,
          value: v,
          peak: Math.max(...acc.slice(ref, n).map((x) => Math.abs(x.v - r.v))),
          threshold: o.epsilon,
        }
      open = false
      ref = n
    }
    const r2 = acc[ref] as { ts: number; v: number }
    // One event per sample: a sample that closed the previous run opens the new one at the earliest next time.
    if (!open && out[i] === undefined && ts - r2.ts >= o.durationMs) {
      open = true
      out[i] = {
        state: 'open',
        start: r2.ts,
        value: v,
        peak: Math.max(...acc.slice(ref, n + 1).map((x) => Math.abs(x.v - r2.v))),
        threshold: o.epsilon,
      }
    }
  })
  return out
}

void t.test('Flatline equals the naive reference and round-trips', async (t) => {
  const vals = fc.oneof(fc.constant(10), fc.constant(10.25), fc.integer({ min: 8, max: 12 }))
  fc.assert(
    fc.property(
      samplesArb(vals),
      fc.constantFrom(0, 0.5, 1),
      fc.constantFrom(0, 2000, 5000),
      fc.nat(),
      (samples, epsilon, durationMs, cut) => {
        const o = { epsilon, durationMs }
        const want = refFlatline(o, samples)
        const got = run(
          () => new Flatline(o),
          (d) => Flatline.fromJSON(o, d),
          samples,
          samples.length ? cut % samples.length : -1,
        )
        if (JSON.stringify(got.trace) !== JSON.stringify(want))
          throw new Error(`trace differs\n got ${JSON.stringify(got.trace)}\nwant ${JSON.stringify(want)}`)
      },
    ),
    { numRuns: 500 },
  )
  const d = new Flatline({ epsilon: 0.25, durationMs: 2000 })
  t.same(
    [d.update(0, 5), d.update(1000, 5.125), d.update(2000, 4.75)?.state, d.update(3000, 5)],
    [undefined, undefined, 'open', undefined],
    'exactly epsilon away is unchanged; exactly durationMs opens',
  )
  t.same(d.update(4000, 5.5), { state: 'close', start: 0, end: 4000, value: 5.5, peak: 0.25, threshold: 0.25 })
  t.equal(d.reference, 5.5)
  const z = new Flatline({ epsilon: 0, durationMs: 0 })
  t.same(
    [z.update(0, 1)?.state, z.update(1, 2)?.state, z.update(2, 2)?.state],
    ['open', 'close', 'open'],
    'zero duration: one event per sample',
  )
})

// ---- Staleness -------------------------------------------------------------------------------------------

void t.test('Staleness: deadline, fire once, close on the next reading, round trip', async (t) => {
  const o = { timeoutMs: 120_000 }
  let s = new Staleness(o)
  t.equal(s.deadline(), undefined)
  t.equal(s.fire(1_000_000), undefined, 'nothing seen, never stale')
  t.equal(s.seen(1000, 50), undefined)
  t.equal(s.deadline(), 121_000)
  t.equal(s.fire(120_999), undefined, 'before the deadline')
  t.same(s.fire(121_000), { state: 'open', start: 50, value: 120_000, peak: 120_000, threshold: 120_000 })
  t.equal(s.fire(500_000), undefined, 'opens once')
  t.ok(s.active)
  s = Staleness.fromJSON(o, JSON.parse(JSON.stringify(s.toJSON())))
  t.same(s.seen(200_000, 90), { state: 'close', start: 50, end: 90, value: 199_000, peak: 199_000, threshold: 120_000 })
  t.notOk(s.active)
  t.equal(s.seen(199_000, 95), undefined, 'an older clock is ignored')
  t.equal(s.ignored, 1)
  t.equal(s.deadline(), 320_000)
})
