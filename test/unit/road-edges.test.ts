/**
 * The road profile at the edges of what fixes show (issue 22): a fence clipped between two fixes, events dated at
 * the crossing of the track (also across a dropout), an exit by persistence for a vehicle standing just outside,
 * and low fuel on a noisy draining level. Expected values come from the geometry of the synthetic tracks (a
 * local east/north plane and a naive distance), not from the profile's code.
 */
import t from 'tap'
import { ROAD_DEFAULTS, road, trendLevel, type RoadConfig } from '../../actors/kinds/vehicle/road.js'
import type { AlertBody, FieldValue } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'vehicle', id: 'V1' } as const
const T0 = 1_700_006_400_000
const LAT0 = 45
const LON0 = 7
/** Metres per degree in the local plane about (LAT0, LON0) (spherical Earth, as the fences are small). */
const M_LAT = (6_371_008.8 * Math.PI) / 180
const M_LON = M_LAT * Math.cos((LAT0 * Math.PI) / 180)
/** A point `east`, `north` metres from (LAT0, LON0). */
const at = (east: number, north: number): { lat: number; lon: number } => ({
  lat: LAT0 + north / M_LAT,
  lon: LON0 + east / M_LON,
})

const rd = (ts: number, fields: Record<string, FieldValue>): HarnessMessage => ({ reading: { ts, fields } })
const fenceAlerts = (outs: EmittedOutput[]): AlertBody[] =>
  outs
    .filter((o) => o.type === 'alert')
    .map((o) => o.body as AlertBody)
    .filter((b) => b.type === 'geofence')
const events = (outs: EmittedOutput[]): Array<[string, number]> =>
  fenceAlerts(outs).map((b) => (b.state === 'open' ? ['enter', b.start] : ['exit', b.end as number]))

/** A circle of radius 100 m about the plane's origin. */
const CIRCLE: RoadConfig = { ...ROAD_DEFAULTS, geofences: [{ id: 'c', lat: LAT0, lon: LON0, radiusM: 100 }] }

/** Readings of a vehicle driving east at `v` m/s along the line `north` = y, one every `stepS` s from x0 to x1. */
function driveEast(y: number, x0: number, x1: number, v: number, stepS: number, t0 = T0): HarnessMessage[] {
  const out: HarnessMessage[] = []
  for (let x = x0, k = 0; x <= x1 + 1e-9; x += v * stepS, k++)
    out.push(rd(t0 + k * stepS * 1000, { ...at(x, y), speed: v * 3.6 }))
  return out
}

void t.test(
  'a fence clipped between two fixes gives an enter and an exit dated where the segment crossed it',
  async (t) => {
    // y = 70 m: the chord goes 30 m deep into the 100 m circle; fixes every 10 s at 20 m/s fall at x = -300, -100,
    // 100, 300: all 122 m or more from the centre, none inside.
    const r = runActor(road, entity, driveEast(70, -300, 300, 20, 10), { config: CIRCLE })
    const ev = events(r.outputs)
    t.same(
      ev.map((e) => e[0]),
      ['enter', 'exit'],
      'one enter and one exit',
    )
    // The chord enters at x = -sqrt(100² - 70²) = -71.4 m and leaves at +71.4 m; the vehicle is at x = -100 at T0 + 10 s.
    const half = Math.sqrt(100 ** 2 - 70 ** 2)
    const tIn = T0 + 10_000 + ((100 - half) / 20) * 1000
    const tOut = T0 + 10_000 + ((100 + half) / 20) * 1000
    t.ok(
      Math.abs((ev[0]?.[1] ?? 0) - tIn) <= 300,
      `enter ${((ev[0]?.[1] ?? 0) - T0) / 1000} s, chord ${(tIn - T0) / 1000} s`,
    )
    t.ok(
      Math.abs((ev[1]?.[1] ?? 0) - tOut) <= 300,
      `exit ${((ev[1]?.[1] ?? 0) - T0) / 1000} s, chord ${(tOut - T0) / 1000} s`,
    )
    t.same(
      Object.keys((r.cell.query() as { geofences: Record<string, number> }).geofences),
      [],
      'not inside afterwards',
    )

    // A chord 5 m deep (y = 95 m) is within GPS noise: no event (geofenceClipDepthM 10 m).
    t.same(
      events(runActor(road, entity, driveEast(95, -300, 300, 20, 10), { config: CIRCLE }).outputs),
      [],
      'a 5 m clip is not an event',
    )
    // Off: the same 30 m clip gives nothing.
    t.same(
      events(
        runActor(road, entity, driveEast(70, -300, 300, 20, 10), { config: { ...CIRCLE, geofenceClipDepthM: 0 } })
          .outputs,
      ),
      [],
      'geofenceClipDepthM 0: off',
    )
    // Across a gap longer than speedIntegrateMaxMs (12 s) a straight line proves nothing: no clip.
    t.same(
      events(runActor(road, entity, driveEast(70, -300, 300, 20, 20), { config: CIRCLE }).outputs),
      [],
      'fixes 20 s apart: no clip',
    )
  },
)

void t.test('enter and exit are dated where the track crossed the edge, also across a GPS dropout', async (t) => {
  // Fixes every 10 s at 10 m/s along y = 0: x = -150, -50 (inside), 50, then a 60 s dropout, then x = 650, 750.
  const pts = [-150, -50, 50]
  const m: HarnessMessage[] = pts.map((x, k) => rd(T0 + k * 10_000, { ...at(x, 0), speed: 36 }))
  m.push(rd(T0 + 30_000, { speed: 36 }), rd(T0 + 90_000, { speed: 36 }))
  m.push(rd(T0 + 90_000 + 1, { ...at(650, 0), speed: 36 }), rd(T0 + 100_000, { ...at(750, 0), speed: 36 }))
  const r = runActor(road, entity, m, { config: CIRCLE })
  const ev = events(r.outputs)
  t.same(
    ev.map((e) => e[0]),
    ['enter', 'exit'],
  )
  // Linear in the signed distance: between x = -150 (+50 m) and x = -50 (-50 m) -> half way, T0 + 5 s.
  t.ok(Math.abs((ev[0]?.[1] ?? 0) - (T0 + 5_000)) <= 100, `enter at ${((ev[0]?.[1] ?? 0) - T0) / 1000} s, true 5 s`)
  // Between x = 50 (-50 m) at T0 + 20 s and x = 650 (+550 m) at T0 + 90 s: a twelfth of the way, T0 + 25.8 s (true
  // crossing at x = 100: T0 + 25 s). Without interpolation it would be T0 + 90 s, 65 s late.
  const exit = ev[1]?.[1] ?? 0
  const interp = T0 + 20_000 + 70_001 / 12
  t.ok(
    Math.abs(exit - interp) <= 100,
    `exit at ${(exit - T0) / 1000} s, interpolated ${(interp - T0) / 1000} s, true 25 s`,
  )
})

void t.test('exit by persistence: a vehicle standing just outside the edge (within the margin)', async (t) => {
  // Drive in, then out to 3 m beyond the edge (x = 103) and stand there for 60 s, fixes every 5 s.
  const m: HarnessMessage[] = [
    rd(T0, { ...at(-200, 0), speed: 36 }),
    rd(T0 + 10_000, { ...at(-100 + 10, 0), speed: 36 }),
    rd(T0 + 20_000, { ...at(10, 0), speed: 36 }),
    rd(T0 + 29_300, { ...at(103, 0), speed: 0 }),
  ]
  for (let k = 1; k <= 12; k++) m.push(rd(T0 + 29_300 + k * 5000, { ...at(103, 0), speed: 0 }))
  const off = runActor(road, entity, m, { config: CIRCLE })
  t.same(
    events(off.outputs).map((e) => e[0]),
    ['enter'],
    'default (margin only): 3 m outside is still inside',
  )
  const on = runActor(road, entity, m, { config: { ...CIRCLE, geofenceExitConfirmMs: 30_000 } })
  const ev = events(on.outputs)
  t.same(
    ev.map((e) => e[0]),
    ['enter', 'exit'],
    'geofenceExitConfirmMs 30 s: exit',
  )
  // Crossing between x = 10 (-90 m) at T0 + 20 s and x = 103 (+3 m) at T0 + 29.3 s: 90/93 of the way.
  t.ok(
    Math.abs((ev[1]?.[1] ?? 0) - (T0 + 20_000 + (9_300 * 90) / 93)) <= 100,
    `exit dated ${((ev[1]?.[1] ?? 0) - T0) / 1000} s`,
  )
  const close = on.outputs.find((o) => o.type === 'alert' && (o.body as AlertBody).state === 'close')
  t.ok(close && close.ts >= T0 + 29_300 + 30_000, 'reported once outside for 30 s')
})

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Delays (s) from the true crossing of 10 % to the low_fuel open, over seeded noisy drains (see below). */
function fuelDelays(config: RoadConfig, seeds: number): number[] {
  const delays: number[] = []
  for (let seed = 1; seed <= seeds; seed++) {
    const r0 = rng(seed)
    const phase = r0() * 2 * Math.PI
    const m: HarnessMessage[] = []
    for (let s = 0; s <= 60 * 60; s += 5) {
      const level = 13 - s / 600
      const read = level + (r0() - 0.5) + 0.5 * Math.sin((2 * Math.PI * s) / 47 + phase)
      m.push(rd(T0 + s * 1000, { fuel_level: Math.round(read * 10) / 10, speed: 30 }))
    }
    const r = runActor(road, entity, m, { config })
    const open = r.outputs.find(
      (o) => o.type === 'alert' && (o.body as AlertBody).type === 'low_fuel' && (o.body as AlertBody).state === 'open',
    )
    delays.push(open ? (open.ts - (T0 + 1_800_000)) / 1000 : NaN)
  }
  return delays
}

const absMedian = (xs: number[]): number => {
  const a = xs.map(Math.abs).sort((p, q) => p - q)
  return a[a.length >> 1] as number
}

void t.test('low fuel on a noisy drain is raised close to the true crossing', async (t) => {
  // 1 point per 10 min from 13 %, read every 5 s to 0.1 % with +-0.5 uniform noise and a slosh of one point peak
  // to peak (a 47 s sway while driving): the true level crosses 10 % at 30 min. 20 seeded drains.
  // On the line's level itself (lowFuelSigmas 0): close to the crossing, either side.
  const trend = fuelDelays({ ...ROAD_DEFAULTS, lowFuelSigmas: 0 }, 20)
  t.ok(
    trend.every((d) => Number.isFinite(d)),
    'raised on every drain',
  )
  t.ok(
    trend.every((d) => Math.abs(d) <= 120),
    `trend line (10 min): within 120 s: ${trend.join(', ')} s`,
  )
  t.ok(absMedian(trend) <= 60, `median |delay| ${absMedian(trend)} s <= 60 s`)
  // The default: on the line's lower confidence bound (0.75 robust spreads of the bins below it): never late,
  // and early by a few minutes only (0.4-0.5 points here, at 1 point per 10 min).
  const early = fuelDelays(ROAD_DEFAULTS, 20)
  t.ok(
    early.every((d) => Number.isFinite(d) && d <= 0 && d >= -300),
    `lower bound: raised 0-300 s before the crossing: ${early.join(', ')} s`,
  )
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  t.ok(mean(early) < mean(trend), 'earlier than on the line itself')
  // The smoothed level of before (fuelTrendMs 0) on the same drains: its worst case is further off.
  const old = fuelDelays({ ...ROAD_DEFAULTS, fuelTrendMs: 0 }, 20)
  const worst = (xs: number[]): number => Math.max(...xs.map(Math.abs))
  t.ok(worst(old) > worst(trend), `median of 30 s: worst ${worst(old)} s, trend line: ${worst(trend)} s`)
  t.same(
    trendLevel([0, 10, 1000, 9, 2000, 8, 3000, 7, 4000, 6, 5000, 50], 6000)?.map((x) => Math.round(x * 1000) / 1000),
    [4, -0.001],
    'Theil-Sen: one wild sample does not move the line',
  )
})

void t.test('low fuel: the trend goes on across an engine-off layover, a refuel restarts it', async (t) => {
  // 1 point per 10 min of driving from 11.3 %, read every 5 s with a seeded +-0.2 noise; the bus parks (engine off,
  // no readings) for 20 min at 10.3 % and drives on: the true level crosses 10 % 3 min into the next trip.
  // Before, the window restarted after the gap and nothing was raised for half a window (5 min: 2 min late).
  const r0 = rng(7)
  const drive = (from: number, s0: number, s1: number, t0: number, lvl0: number): HarnessMessage[] => {
    const m: HarnessMessage[] = []
    for (let s = s0; s <= s1; s += 5)
      m.push(
        rd(t0 + s * 1000, {
          fuel_level: Math.round((lvl0 - (s - from) / 600 + 0.4 * (r0() - 0.5)) * 10) / 10,
          speed: 30,
          ignition: true,
        }),
      )
    return m
  }
  const before = drive(0, 0, 600, T0, 11.3)
  const t1 = T0 + 600_000 + 20 * 60_000
  const layover = [rd(T0 + 605_000, { fuel_level: 10.3, speed: 0, ignition: false })]
  const after = drive(0, 0, 600, t1, 10.3)
  const crossing = t1 + 180_000
  const opens = (outs: EmittedOutput[]): number[] =>
    outs
      .filter((o) => o.type === 'alert' && (o.body as AlertBody).type === 'low_fuel')
      .filter((o) => (o.body as AlertBody).state === 'open')
      .map((o) => o.ts)
  const on = opens(
    runActor(road, entity, [...before, ...layover, ...after], { config: { ...ROAD_DEFAULTS, lowFuelSigmas: 0 } })
      .outputs,
  )
  t.equal(on.length, 1, 'one low_fuel')
  t.ok(
    Math.abs((on[0] ?? 0) - crossing) <= 60_000,
    `raised ${((on[0] ?? 0) - crossing) / 1000} s from the crossing, 3 min into the trip after the layover`,
  )
  // A refuel in the layover (+40 points): the window restarts, nothing is raised on the old trend.
  const refuelled = drive(0, 0, 600, t1, 50.3)
  const out = runActor(road, entity, [...before, ...layover, ...refuelled], { config: ROAD_DEFAULTS }).outputs
  t.same(opens(out), [], 'no low_fuel after a refuel')
  t.ok(
    out.some((o) => o.type === 'score' && (o.body as { name?: string }).name === 'refuel'),
    'the refuel is reported',
  )
})

void t.test(
  'a jump after a dropout that lands where the vehicle stood is not taken: the distance of the gap counts',
  async (t) => {
    // 60 s east at 10 m/s (600 m), 30 s standing, a link dropout of 100 s in which the vehicle drives 1,000 m on,
    // then a first fix 8 m from where it stood (a jump: it is 1,000 m further) with the speed it drives at, then true
    // fixes for 60 s (600 m more), then ignition off. Every leg is straight east: the true distance is 2,200 m.
    const msgs: HarnessMessage[] = []
    let ts = T0
    const fix = (x: number, kmh: number, extra: Record<string, FieldValue> = {}): void => {
      msgs.push(rd(ts, { ...at(x, 0), speed: kmh, obd_speed: kmh, ignition: true, ...extra }))
      ts += 1000
    }
    for (let k = 0; k <= 60; k++) fix(k * 10, k === 60 ? 0 : 36)
    for (let k = 0; k < 30; k++) fix(600, 0)
    ts += 100_000
    msgs.push(rd(ts, { ...at(608, 0), speed: 36, obd_speed: 36, ignition: true }))
    ts += 1000
    for (let k = 1; k <= 60; k++) fix(1600 + k * 10, 36)
    fix(2200, 0, { ignition: false })
    const r = runActor(road, entity, msgs, { config: ROAD_DEFAULTS })
    const trips = r.outputs.filter((o) => o.type === 'score' && (o.body as { name: string }).name === 'trip')
    t.equal(trips.length, 1, 'one trip')
    const km = (trips[0]?.body as unknown as { factors: { distance_km: number } }).factors.distance_km
    t.ok(Math.abs(km * 1000 - 2200) <= 2200 * 0.02, `trip distance ${(km * 1000).toFixed(0)} m, true 2200 m`)
    // The jump (at x = 608 m, 1,000 m from the vehicle) is never shown as a position.
    const shown = r.outputs.filter((o) => o.type === 'position').map((o) => o.body as { lat: number; lon: number })
    const jumpAt = at(608, 0)
    t.notOk(
      shown.some((p) => Math.abs(p.lon - jumpAt.lon) * M_LON < 1),
      'the jump is not a position',
    )
    t.equal((r.cell.query() as { gpsJumps: number }).gpsJumps, 1, 'counted as a GPS jump')
  },
)

void t.test(
  'a bus parked inside an edge is inside although the fix it arrived with was outside: the stand is averaged',
  async (t) => {
    // Circle of 100 m: east along y = 0 at 10 m/s, 1 s fixes read 7 m behind (x - 7), then parked at x = -96 (4 m
    // inside) for 3 min with speed 0; its fixes wander about it: -7 m decaying over 30 s plus 4 m of swing
    // (some fixes 1-2 m outside the edge).
    const m: HarnessMessage[] = []
    let ts = T0
    for (let x = -200; x <= -100; x += 10) {
      m.push(rd(ts, { ...at(x - 7, 0), speed: 36 }))
      ts += 1000
    }
    for (let k = 0; k < 180; k++) {
      const err = -7 * Math.exp(-k / 30) + 4 * Math.sin(k / 7)
      m.push(rd(ts, { ...at(-96 + err, 0), speed: 0 }))
      ts += 1000
    }
    const r = runActor(road, entity, m, { config: CIRCLE })
    const ev = events(r.outputs)
    t.same(
      ev.map((e) => e[0]),
      ['enter'],
      'one enter, no exit while parked',
    )
    t.same(Object.keys((r.cell.query() as { geofences: Record<string, number> }).geofences), ['c'], 'inside at the end')
    // The mean of the stand's fixes, not the first of them, is judged: with the arrival fix alone (3 m outside) the
    // bus would stay outside for as long as it stands.
    const arrival = -96 - 7
    t.ok(arrival < -100, `the arrival fix is outside (x ${arrival})`)
  },
)

void t.test(
  'enter hysteresis: a fix a little inside is not an enter, a true crossing is, dated at the edge',
  async (t) => {
    // Passing along y = 104 (4 m outside the 100 m circle at x = 0), two fixes read 4.7 m north of it (0.2 and 0.7 m inside).
    const pass = (dip: boolean): HarnessMessage[] =>
      driveEast(104, -300, 300, 10, 1).map((msg, k) => {
        const r = (msg as { reading: { ts: number; fields: Record<string, FieldValue> } }).reading
        const x = -300 + k * 10
        return dip && (x === -10 || x === 0) ? rd(r.ts, { ...at(x, 99.3), speed: 36 }) : msg
      })
    t.same(
      events(runActor(road, entity, pass(true), { config: CIRCLE }).outputs),
      [],
      'default 1 m enter margin: no event',
    )
    const flap = events(runActor(road, entity, pass(true), { config: { ...CIRCLE, geofenceEnterMarginM: 0 } }).outputs)
    t.same(
      flap.map((e) => e[0]),
      ['enter', 'exit'],
      'margin 0: the noise is an enter and an exit',
    )
    // A graze 3 m deep (y = 97) is an enter and an exit, dated where the line crosses the edge: x = -sqrt(100² - 97²).
    const ev = events(runActor(road, entity, driveEast(97, -300, 300, 10, 1), { config: CIRCLE }).outputs)
    t.same(
      ev.map((e) => e[0]),
      ['enter', 'exit'],
    )
    const half = Math.sqrt(100 ** 2 - 97 ** 2)
    t.ok(
      Math.abs((ev[0]?.[1] ?? 0) - (T0 + ((300 - half) / 10) * 1000)) <= 300,
      `enter dated at the edge (${((ev[0]?.[1] ?? 0) - T0) / 1000} s)`,
    )
    // geofenceEnterConfirmMs: inside that long counts within the margin (the 3 m graze, 4.9 s inside, with a 5 m margin).
    const held = events(
      runActor(road, entity, driveEast(97, -300, 300, 10, 1), {
        config: { ...CIRCLE, geofenceEnterMarginM: 5, geofenceEnterConfirmMs: 3_000 },
      }).outputs,
    )
    t.same(
      held.map((e) => e[0]),
      ['enter', 'exit'],
      'inside for 3 s (of 4.9 s): an enter within the margin',
    )
    t.same(
      events(
        runActor(road, entity, driveEast(97, -300, 300, 10, 1), { config: { ...CIRCLE, geofenceEnterMarginM: 5 } })
          .outputs,
      ),
      [],
      'margin 5 m only: no event',
    )
  },
)

void t.test('enter margin: a graze 0.8 m deep is an enter when fixes are 10 s apart, not when 1 s apart', async (t) => {
  // Along y = 99.2 m the track is inside the 100 m circle for |x| < 12.6 m, at most 0.8 m deep (at x = 0). Fixes
  // 1 s apart see that depth a few times: under the 1 m margin of dense fixes, noise would dip as deep as often.
  // Fixes 10 s apart (x = -100, -50, 0, 50, 100) see it once: above the 0.7 m margin of sparse fixes.
  const dense = runActor(road, entity, driveEast(99.2, -100, 100, 5, 1), { config: CIRCLE })
  t.same(events(dense.outputs), [], 'fixes 1 s apart: no enter')
  const sparse = runActor(road, entity, driveEast(99.2, -100, 100, 5, 10), { config: CIRCLE })
  t.same(
    events(sparse.outputs).map((e) => e[0]),
    ['enter', 'exit'],
    'fixes 10 s apart: an enter and an exit',
  )
  // Both settings at 1 m: the sparse track's graze is not an enter either.
  const strict = runActor(road, entity, driveEast(99.2, -100, 100, 5, 10), {
    config: { ...CIRCLE, geofenceEnterMarginSparseM: 1 },
  })
  t.same(events(strict.outputs), [], 'sparse margin set to 1 m: no enter')
})

void t.test('exit margin: 4 m outside is an exit when fixes are 10 s apart, not when 1 s apart', async (t) => {
  // North along x = 0 at 2 m/s from y = 44 (56 m inside the 100 m circle) to y = 104 (4 m outside), and back.
  const track = (stepS: number): HarnessMessage[] => {
    const ys: number[] = []
    for (let y = 44; y <= 104 + 1e-9; y += 2 * stepS) ys.push(y)
    for (let y = 104 - 2 * stepS; y >= 44 - 1e-9; y -= 2 * stepS) ys.push(y)
    return ys.map((y, k) => rd(T0 + k * stepS * 1000, { ...at(0, y), speed: 7.2 }))
  }
  t.same(
    events(runActor(road, entity, track(1), { config: CIRCLE }).outputs).map((e) => e[0]),
    ['enter'],
    'fixes 1 s apart: 4 m is within the 5 m margin, no exit',
  )
  t.same(
    events(runActor(road, entity, track(10), { config: CIRCLE }).outputs).map((e) => e[0]),
    ['enter', 'exit', 'enter'],
    'fixes 10 s apart: beyond the 3 m margin, an exit and a re-enter',
  )
  t.same(
    events(runActor(road, entity, track(10), { config: { ...CIRCLE, geofenceMarginSparseM: 5 } }).outputs).map(
      (e) => e[0],
    ),
    ['enter'],
    'sparse exit margin set to 5 m: no exit',
  )
})
