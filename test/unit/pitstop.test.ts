// Pure pit-stop score: checked against a naive reference on random inputs (fast-check), plus the edges.
import t from 'tap'
import fc from 'fast-check'
import {
  PIT_STOP_DEFAULTS,
  median,
  pitReason,
  pitStopScore,
  recommendStep,
  type PitStopConfig,
  type PitStopInputs,
} from '../../actors/kinds/vehicle/pitstop.js'

/** The score written out the long way, as the domain states it. */
function naive(i: PitStopInputs, c: PitStopConfig): { value: number; f: number[] } {
  const ok = (x: number | undefined): x is number => typeof x === 'number' && Number.isFinite(x)
  const cl = (x: number): number => Math.min(1, Math.max(0, x))
  let tyre = 0
  if (ok(i.tyreWearPct)) tyre = cl((i.tyreWearPct - c.tyreWearLowPct) / (c.tyreWearHighPct - c.tyreWearLowPct))
  let speed = 0
  if (ok(i.lastLapMs) && ok(i.refLapMs) && i.refLapMs > 0) {
    const lossPct = ((i.lastLapMs - i.refLapMs) / i.refLapMs) * 100
    speed = cl(lossPct / c.speedLossFullPct)
  }
  let brake = 0
  if (ok(i.brakeWearPct)) brake = cl((i.brakeWearPct - c.brakeWearLowPct) / (c.brakeWearHighPct - c.brakeWearLowPct))
  else if (ok(i.lapBrakeTemp) && ok(i.refBrakeTemp) && i.refBrakeTemp > 0) {
    brake = cl((((i.lapBrakeTemp - i.refBrakeTemp) / i.refBrakeTemp) * 100) / c.brakeRiseFullPct)
  }
  const anomaly = c.anomalyCap > 0 ? cl(i.openAnomalies / c.anomalyCap) : 0
  const value = 100 * (c.wTyreWear * tyre + c.wSpeedLoss * speed + c.wBrake * brake + c.wAnomaly * anomaly)
  return { value, f: [tyre, speed, brake, anomaly] }
}

const opt = (a: fc.Arbitrary<number>): fc.Arbitrary<number | undefined> => fc.option(a, { nil: undefined })
const inputs: fc.Arbitrary<PitStopInputs> = fc.record({
  tyreWearPct: opt(fc.double({ min: -10, max: 120, noNaN: true })),
  lastLapMs: opt(fc.double({ min: 50_000, max: 150_000, noNaN: true })),
  refLapMs: opt(fc.double({ min: 50_000, max: 150_000, noNaN: true })),
  lapBrakeTemp: opt(fc.double({ min: 100, max: 1200, noNaN: true })),
  refBrakeTemp: opt(fc.double({ min: 100, max: 1200, noNaN: true })),
  brakeWearPct: opt(fc.double({ min: 0, max: 100, noNaN: true })),
  openAnomalies: fc.integer({ min: 0, max: 6 }),
})
const weights = fc
  .tuple(
    fc.integer({ min: 0, max: 100 }),
    fc.integer({ min: 0, max: 100 }),
    fc.integer({ min: 0, max: 100 }),
    fc.integer({ min: 1, max: 100 }),
  )
  .map(([a, b, c, d]) => {
    const s = a + b + c + d
    return { wTyreWear: a / s, wSpeedLoss: b / s, wBrake: c / s, wAnomaly: d / s }
  })
const configs: fc.Arbitrary<PitStopConfig> = fc
  .record({
    w: weights,
    lo: fc.integer({ min: 0, max: 50 }),
    span: fc.integer({ min: 1, max: 60 }),
    full: fc.double({ min: 0.5, max: 20, noNaN: true }),
    rise: fc.double({ min: 1, max: 40, noNaN: true }),
    cap: fc.integer({ min: 0, max: 5 }),
  })
  .map(({ w, lo, span, full, rise, cap }) => ({
    ...PIT_STOP_DEFAULTS,
    ...w,
    tyreWearLowPct: lo,
    tyreWearHighPct: lo + span,
    brakeWearLowPct: lo,
    brakeWearHighPct: lo + span,
    speedLossFullPct: full,
    brakeRiseFullPct: rise,
    anomalyCap: cap,
  }))

void t.test('score matches the naive reference on random inputs and configs', async (t) => {
  fc.assert(
    fc.property(inputs, configs, (i, c) => {
      const got = pitStopScore(i, c)
      const want = naive(i, c)
      const f = [
        got.factors.tyre_wear,
        got.factors.speed_loss,
        got.factors.brake_degradation,
        got.factors.anomaly_penalty,
      ]
      for (let k = 0; k < 4; k++) {
        if (Math.abs((f[k] as number) - (want.f[k] as number)) > 1e-9) return false
        if ((f[k] as number) < 0 || (f[k] as number) > 1) return false
      }
      const pts =
        got.points.tyre_wear + got.points.speed_loss + got.points.brake_degradation + got.points.anomaly_penalty
      return (
        Math.abs(got.value - want.value) <= 0.005 + 1e-9 &&
        Math.abs(pts - want.value) < 1e-9 &&
        got.value >= 0 &&
        got.value <= 100 &&
        Math.round(got.value * 100) / 100 === got.value
      )
    }),
    { numRuns: 3000 },
  )
  t.pass('property held')
})

void t.test('domain weights and edges', async (t) => {
  const c = PIT_STOP_DEFAULTS
  t.equal(pitStopScore({ openAnomalies: 0 }, c).value, 0, 'nothing known: 0')
  t.equal(pitStopScore({ tyreWearPct: 20, openAnomalies: 0 }, c).value, 0, 'wear at low end: 0')
  t.equal(pitStopScore({ tyreWearPct: 80, openAnomalies: 0 }, c).value, 40, 'wear at high end: 40 %')
  t.equal(pitStopScore({ tyreWearPct: 50, openAnomalies: 0 }, c).value, 20)
  t.equal(pitStopScore({ lastLapMs: 105_000, refLapMs: 100_000, openAnomalies: 0 }, c).value, 30, '5 % slower: 30 %')
  t.equal(pitStopScore({ lastLapMs: 99_000, refLapMs: 100_000, openAnomalies: 0 }, c).value, 0, 'faster: no loss')
  t.equal(pitStopScore({ lapBrakeTemp: 920, refBrakeTemp: 800, openAnomalies: 0 }, c).value, 20, '15 % hotter: 20 %')
  t.equal(
    pitStopScore({ lapBrakeTemp: 2000, refBrakeTemp: 800, brakeWearPct: 50, openAnomalies: 0 }, c).value,
    10,
    'brake wear field wins over temperatures',
  )
  t.equal(pitStopScore({ openAnomalies: 1 }, c).value, 5)
  t.equal(pitStopScore({ openAnomalies: 9 }, c).value, 10, 'anomaly penalty capped')
  const all = pitStopScore(
    { tyreWearPct: 95, lastLapMs: 120_000, refLapMs: 100_000, lapBrakeTemp: 1000, refBrakeTemp: 800, openAnomalies: 3 },
    c,
  )
  t.equal(all.value, 100)
  t.match(pitReason(all, 70), /^pit-stop score 100\.00 > 70: tyre wear 40\.0 pts/)
})

void t.test('recommendStep fires once per crossing (vs a naive gate)', async (t) => {
  const c = PIT_STOP_DEFAULTS
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 200 }), (scores) => {
      // Naive, from the definition: fire at i when above 70 and, since the previous firing, some score was below 65.
      const want: number[] = []
      scores.forEach((s, i) => {
        const prev = want[want.length - 1]
        if (s > 70 && (prev === undefined || scores.slice(prev + 1, i).some((x) => x < 65))) want.push(i)
      })
      const got: number[] = []
      let armed = true
      scores.forEach((s, i) => {
        const st = recommendStep(armed, s, c)
        armed = st.armed
        if (st.fire) got.push(i)
      })
      return JSON.stringify(got) === JSON.stringify(want)
    }),
    { numRuns: 2000 },
  )
  const seq = [50, 71, 90, 69, 72, 66, 71, 64.99, 70, 70.01, 100]
  const fired: number[] = []
  let armed = true
  for (const s of seq) {
    const st = recommendStep(armed, s, c)
    armed = st.armed
    if (st.fire) fired.push(s)
  }
  t.same(fired, [71, 70.01], 'fires at 71, not again until below 65, then at 70.01 (70 itself is not above)')
})

void t.test('median', async (t) => {
  t.equal(median([]), undefined)
  t.equal(median([3]), 3)
  t.equal(median([5, 1, 3]), 3)
  t.equal(median([4, 1, 3, 2]), 2.5)
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1 }), (xs) => {
      const m = median(xs) as number
      const below = xs.filter((x) => x < m).length
      const above = xs.filter((x) => x > m).length
      return below <= xs.length / 2 && above <= xs.length / 2
    }),
  )
})
