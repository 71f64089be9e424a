/**
 * The vehicle/road profile through the real ActorCell (test/helpers/harness.ts): trips at their boundaries,
 * distance against a naive reference, GPS-jump rejection, geofences, DTCs, overheat / low fuel with durations
 * and hysteresis, staleness on a processing-time tick, late readings, position outputs, config validation,
 * snapshot/restore.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../../actors/cell.js'
import { ConfigError } from '../../actors/errors.js'
import { ROAD_DEFAULTS, road, type RoadConfig, type RoadView } from '../../actors/kinds/vehicle/road.js'
import type { AlertBody, FieldValue, PositionBody, Reading, ScoreBody } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'vehicle', id: 'V1' } as const
const T0 = 1_700_006_400_000 // 2023-11-15T00:00:00Z, a UTC day boundary
const C = ROAD_DEFAULTS

const rd = (ts: number, fields: Record<string, FieldValue>): HarnessMessage => ({ reading: { ts, fields } })
const alerts = (outs: EmittedOutput[], type?: string): AlertBody[] =>
  outs
    .filter((o) => o.type === 'alert')
    .map((o) => o.body as AlertBody)
    .filter((b) => type === undefined || b.type === type)
const trips = (outs: EmittedOutput[]): ScoreBody[] =>
  outs
    .filter((o) => o.type === 'score')
    .map((o) => o.body as ScoreBody)
    .filter((b) => b.name === 'trip')
/** The ConfigError setting thrown by `fn`, or undefined. */
const settingOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (e) {
    return e instanceof ConfigError ? e.setting : `not a ConfigError: ${String(e)}`
  }
  return undefined
}
const view = (r: { cell: ActorCell }): RoadView => r.cell.query() as RoadView

/** Naive great-circle distance in metres via 3-D unit vectors and the chord. */
function naiveM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const v = (la: number, lo: number): number[] => {
    const a = (la * Math.PI) / 180,
      b = (lo * Math.PI) / 180
    return [Math.cos(a) * Math.cos(b), Math.cos(a) * Math.sin(b), Math.sin(a)]
  }
  const p = v(lat1, lon1),
    q = v(lat2, lon2)
  const chord = Math.hypot(
    (p[0] as number) - (q[0] as number),
    (p[1] as number) - (q[1] as number),
    (p[2] as number) - (q[2] as number),
  )
  return 2 * 6_371_008.8 * Math.asin(chord / 2)
}

void t.test('trip starts above 5 km/h and ends after 3 min stopped (boundaries)', async (t) => {
  const m: HarnessMessage[] = [
    rd(T0, { speed: 0 }),
    rd(T0 + 10_000, { speed: 5 }), // not above 5: no trip
    rd(T0 + 20_000, { speed: 5.1 }), // trip starts here
    rd(T0 + 60_000, { speed: 80 }),
    rd(T0 + 100_000, { speed: 0 }), // stop begins
    rd(T0 + 100_000 + 179_999, { speed: 30 }), // moving again 1 ms short of 3 min: same trip
    rd(T0 + 300_000, { speed: 0 }), // stop begins
    rd(T0 + 479_999, { speed: 0 }), // 1 ms short of 3 min stopped: still in the trip
    rd(T0 + 480_000, { speed: 0 }), // exactly 3 min: the trip ends at T0+300_000
    rd(T0 + 500_000, { speed: 40 }), // a new trip
  ]
  const before = runActor(road, entity, m.slice(0, 8))
  t.equal(trips(before.outputs).length, 0, 'no trip ends before 3 min stopped')
  // No fixes: distance by speed over the one pair <= 12 s apart, the one into the trip's first reading.
  t.same(view(before).trip, {
    start: T0 + 20_000,
    distance_km: ((5 + 5.1) / 2) * (10 / 3600),
    max_speed: 80,
    stopped_since: T0 + 300_000,
    idle_s: 0,
  })
  const r = runActor(road, entity, m)
  const tr = trips(r.outputs)
  t.equal(tr.length, 1)
  const f = tr[0]?.factors
  t.equal(tr[0]?.name, 'trip')
  t.equal(f?.['start_ts'], T0 + 20_000)
  t.equal(f?.['end_ts'], T0 + 300_000)
  t.equal(f?.['duration_s'], 280)
  t.equal(f?.['max_speed'], 80)
  const out = r.outputs.find((o) => o.type === 'score' && (o.body as ScoreBody).name === 'trip')
  t.equal(out?.id, `vehicle:V1:score:trip:${T0 + 20_000}`)
  t.equal(out?.ts, T0 + 300_000)
  t.equal(view(r).trip?.start, T0 + 500_000, 'the next trip is current')
  // A reading arriving after a long gap while moving ends the old trip at its stop and starts a new one.
  const r2 = runActor(road, entity, [
    rd(T0, { speed: 50 }),
    rd(T0 + 1000, { speed: 0 }),
    rd(T0 + 600_000, { speed: 50 }),
  ])
  t.same(
    trips(r2.outputs).map((b) => [b.factors['start_ts'], b.factors['end_ts']]),
    [[T0, T0 + 1000]],
  )
  t.equal(view(r2).trip?.start, T0 + 600_000)
  // Silence (unit powered off) for >= 3 min ends the trip at the last reading before the gap, even while moving.
  const r3 = runActor(road, entity, [
    rd(T0, { speed: 50 }),
    rd(T0 + 30_000, { speed: 20 }),
    rd(T0 + 209_999, { speed: 20 }),
    rd(T0 + 389_999, { speed: 0 }),
  ])
  t.same(
    trips(r3.outputs).map((b) => [b.factors['start_ts'], b.factors['end_ts']]),
    [[T0, T0 + 209_999]],
  )
  t.equal(view(r3).trip, null)
})

void t.test('GPS distance matches a naive reference on random tracks; trip avg speed', async (t) => {
  // Chords only (no speed integration), no confirmation after gaps: the plain great-circle sum.
  const chords: RoadConfig = { ...C, speedIntegrateMaxMs: 0, confirmGapMs: 3_600_000 }
  const step = fc.record({
    dLat: fc.double({ min: -0.004, max: 0.004, noNaN: true }),
    dLon: fc.double({ min: -0.004, max: 0.004, noNaN: true }),
    dt: fc.integer({ min: 5_000, max: 20_000 }),
  })
  fc.assert(
    fc.property(
      fc.double({ min: -60, max: 60, noNaN: true }),
      fc.double({ min: -170, max: 170, noNaN: true }),
      fc.array(step, { minLength: 1, maxLength: 60 }),
      (lat0, lon0, steps) => {
        let lat = lat0,
          lon = lon0,
          ts = T0
        const m: HarnessMessage[] = [rd(ts, { lat, lon, speed: 30 })]
        let want = 0
        for (const s of steps) {
          const nl = lat + s.dLat,
            no = lon + s.dLon
          const d = naiveM(lat, lon, nl, no)
          ts += s.dt
          // Keep every step under the plausibility bound (150 km/h reported: 1.3 x 41.7 + 3 m/s): skip those.
          if (d / 1000 / (s.dt / 3_600_000) > 190) {
            ts -= s.dt
            continue
          }
          lat = nl
          lon = no
          want += d
          m.push(rd(ts, { lat, lon, speed: 150 }))
        }
        m[0] = rd(T0, { lat: lat0, lon: lon0, speed: 150 })
        const v = view(runActor(road, entity, m, { config: chords }))
        return (
          Math.abs(v.distanceToday.km * 1000 - want) < 1e-6 * Math.max(1, want) + 1e-6 &&
          Math.abs((v.trip?.distance_km ?? 0) * 1000 - want) < 1e-6 * Math.max(1, want) + 1e-6 &&
          Math.abs(v.odometerKm * 1000 - want) < 1e-6 * Math.max(1, want) + 1e-6
        )
      },
    ),
    { numRuns: 300 },
  )
  // 0.01° of latitude ~ 1.112 km in 60 s at 66.7 km/h, then stop for 3 min.
  const r = runActor(
    road,
    entity,
    [
      rd(T0, { lat: 45, lon: 7, speed: 60 }),
      rd(T0 + 60_000, { lat: 45.01, lon: 7, speed: 0 }),
      rd(T0 + 240_000, { lat: 45.01, lon: 7, speed: 0 }),
    ],
    { config: chords },
  )
  const f = trips(r.outputs)[0]?.factors ?? {}
  t.ok(Math.abs((f['distance_km'] ?? 0) - 1.1119) < 0.001, `distance ${f['distance_km']}`)
  t.ok(Math.abs((f['avg_speed'] ?? 0) - 66.71) < 0.1, `avg ${f['avg_speed']}`)
})

void t.test('GPS jumps (> 200 km/h implied) are ignored', async (t) => {
  const chords: RoadConfig = { ...C, speedIntegrateMaxMs: 0 }
  const r = runActor(
    road,
    entity,
    [
      rd(T0, { lat: 45, lon: 7, speed: 50 }),
      rd(T0 + 10_000, { lat: 46, lon: 7, speed: 50 }), // 111 km in 10 s
      rd(T0 + 20_000, { lat: 45.001, lon: 7, speed: 50 }), // 111 m in 20 s from the last good fix
    ],
    { config: chords },
  )
  const v = view(r)
  t.ok(Math.abs(v.distanceToday.km - 0.1112) < 0.001, `distance ${v.distanceToday.km}`)
  t.equal(v.gpsJumps, 1)
  t.same(v.position, { ts: T0 + 20_000, lat: 45.001, lon: 7, heading: null })
  const r2 = runActor(road, entity, [rd(T0, { lat: 45, lon: 7 }), rd(T0 + 10_000, { lat: 46, lon: 7 })])
  t.same(view(r2).position, { ts: T0, lat: 45, lon: 7, heading: null }, 'a jump does not move the position')
  // No speed known: the bound is maxJumpKmh (200 km/h for 9 s = 500 m, plus the 40 m margin).
  const r3 = runActor(road, entity, [
    rd(T0, { lat: 45, lon: 7 }),
    rd(T0 + 9_000, { lat: 45 + 0.53 / 111.19508, lon: 7 }),
  ])
  t.same([view(r3).gpsJumps, view(r3).position?.ts], [0, T0 + 9_000], '530 m in 9 s: accepted')
  const r4 = runActor(road, entity, [
    rd(T0, { lat: 45, lon: 7 }),
    rd(T0 + 9_000, { lat: 45 + 0.56 / 111.19508, lon: 7 }),
  ])
  t.same(view(r4).position?.ts, T0, '560 m in 9 s: a candidate, not accepted')
})

void t.test('geofence enter/exit as info alerts', async (t) => {
  const config: RoadConfig = {
    ...C,
    geofenceMarginM: 20,
    geofences: [
      { id: 'depot', lat: 45, lon: 7, radiusM: 500 },
      { id: 'yard', lat: 45.1, lon: 7, radiusM: 200 },
    ],
  }
  const r = runActor(
    road,
    entity,
    [
      rd(T0, { lat: 44.99, lon: 7 }), // ~1.1 km away
      rd(T0 + 60_000, { lat: 44.996, lon: 7 }), // ~445 m: inside (after 60 s without fixes: a candidate)
      rd(T0 + 70_000, { lat: 44.9965, lon: 7 }), // confirms it: enter at T0+60 s
      rd(T0 + 75_000, { lat: 45.0046, lon: 7 }), // ~511 m: outside by 11 m, within the 20 m margin: still in
      rd(T0 + 80_000, { lat: 45.006, lon: 7 }), // ~667 m: out
    ],
    { config },
  )
  const a = alerts(r.outputs, 'geofence')
  // Events are dated where the track crossed the edge: linear in the signed distance between the fix before and
  // the fix beyond it (enter: T0 .. T0+60 s; exit: T0+70 s .. T0+75 s, the first fix outside, within the margin).
  const dd = (lat: number): number => naiveM(45, 7, lat, 7) - 500
  const cross = (t0: number, t1: number, d0: number, d1: number): number =>
    Math.round(t0 + ((t1 - t0) * d0) / (d0 - d1))
  const enter = cross(T0, T0 + 60_000, dd(44.99), dd(44.996))
  const exit = cross(T0 + 70_000, T0 + 75_000, dd(44.9965), dd(45.0046))
  t.same(
    a.map((b) => [b.state, b.severity, b.details?.['geofence']]),
    [
      ['open', 'info', 'depot'],
      ['close', 'info', 'depot'],
    ],
  )
  t.ok(
    Math.abs((a[0]?.start ?? 0) - enter) <= 1 && Math.abs((a[1]?.end ?? 0) - exit) <= 1,
    `enter ${a[0]?.start} ~ ${enter}, exit ${a[1]?.end} ~ ${exit}`,
  )
  t.equal(a[1]?.start, a[0]?.start)
  t.equal(a[0]?.alertId, `vehicle:V1:geofence:depot:${a[0]?.start}`)
  t.ok(Math.abs((a[0]?.value ?? 0) + 55) < 2, `signed distance to the boundary ${a[0]?.value}`)
  const dwell = r.outputs
    .filter((o) => o.type === 'score' && (o.body as ScoreBody).name === 'geofence_dwell')
    .map((o) => (o.body as ScoreBody).factors)
  t.same(
    dwell,
    [{ enter_ts: a[0]?.start, exit_ts: a[1]?.end, dwell_s: ((a[1]?.end ?? 0) - (a[0]?.start ?? 0)) / 1000 }],
    'dwell time on exit',
  )
  t.equal(
    settingOf(() =>
      runActor(road, entity, [], { config: { ...C, geofences: [{ id: 'x', lat: 95, lon: 0, radiusM: 1 }] } }),
    ),
    'road.geofences[0].lat',
  )
})

void t.test('DTC alerts open and close per code', async (t) => {
  const r = runActor(road, entity, [
    rd(T0, { dtc: '' }),
    rd(T0 + 1000, { dtc: 'P0301,P0420' }),
    rd(T0 + 2000, { rpm: 900 }), // no dtc field: no change
    rd(T0 + 3000, { dtc: 'P0420, P0301' }),
    rd(T0 + 4000, { dtc: 'P0420' }),
    rd(T0 + 5000, { dtc: '' }),
    rd(T0 + 6000, { dtc: 'P0301' }),
  ])
  const a = alerts(r.outputs, 'dtc')
  t.same(
    a.map((b) => [b.state, b.details?.['code'], b.start, b.end ?? null]),
    [
      ['open', 'P0301', T0 + 1000, null],
      ['open', 'P0420', T0 + 1000, null],
      ['close', 'P0301', T0 + 1000, T0 + 4000],
      ['close', 'P0420', T0 + 1000, T0 + 5000],
      ['open', 'P0301', T0 + 6000, null],
    ],
  )
  t.ok(a.every((b) => b.severity === 'warning'))
  t.same(
    view(r).openAlerts.map((x) => x.alertId),
    [`vehicle:V1:dtc:P0301:${T0 + 6000}`],
  )
  const ids = r.outputs.map((o) => o.id)
  t.equal(new Set(ids).size, ids.length, 'output ids are unique')
})

void t.test('engine overheat: > 110 °C for 30 s, hysteresis 5', async (t) => {
  const r = runActor(road, entity, [
    rd(T0, { coolant_temp: 111 }),
    rd(T0 + 29_999, { coolant_temp: 115 }),
    rd(T0 + 30_000, { coolant_temp: 110 }), // not above 110: resets the duration
    rd(T0 + 40_000, { coolant_temp: 112 }),
    rd(T0 + 70_000, { coolant_temp: 113 }), // 30 s: opens, start T0+40_000
    rd(T0 + 80_000, { coolant_temp: 105 }), // within the hysteresis: stays open
    rd(T0 + 90_000, { coolant_temp: 104.9 }), // closes
  ])
  const a = alerts(r.outputs, 'engine_overheat')
  t.same(
    a.map((b) => [b.state, b.severity, b.start, b.end ?? null, b.value, b.threshold]),
    [
      ['open', 'critical', T0 + 40_000, null, 113, 110],
      ['close', 'critical', T0 + 40_000, T0 + 90_000, 104.9, 110],
    ],
  )
  t.equal(
    r.outputs.find((o) => o.type === 'alert')?.id,
    `vehicle:V1:alert:vehicle:V1:engine_overheat:${T0 + 40_000}:open:5`,
  )
})

/** Low fuel on the smoothed level (the rule before the trend line; test/unit/road-edges.test.ts has the trend). */
const OLD_FUEL: RoadConfig = { ...C, fuelTrendMs: 0 }

void t.test(
  'low fuel (fuelTrendMs 0): smoothed level < 10 % for 30 s, hysteresis 3; one noisy reading changes nothing',
  async (t) => {
    const at = (s: number, fuel: number): HarnessMessage => rd(T0 + s * 1000, { fuel_level: fuel })
    const r = runActor(
      road,
      entity,
      [
        at(0, 10.4),
        at(10, 10.3),
        at(20, 10.2),
        at(30, 9.4), // first reading under 10: the start
        at(40, 9.3),
        at(50, 14), // one noisy reading: the median of the last 30 s (9.85) stays under 10, nothing restarts
        at(60, 9.2), // 30 s after the start, median 9.35: opens with start T0+30 s
        at(70, 9.1),
        at(80, 13.2),
        at(90, 13.5),
        at(100, 13.4), // median 13.3 > 13: closes
      ],
      { config: OLD_FUEL },
    )
    const a = alerts(r.outputs, 'low_fuel')
    t.same(
      a.map((b) => [b.state, b.severity, b.start, b.end ?? null, r.outputs.find((o) => o.body === b)?.ts]),
      [
        ['open', 'warning', T0 + 30_000, null, T0 + 60_000],
        ['close', 'warning', T0 + 30_000, T0 + 100_000, T0 + 100_000],
      ],
    )
    // A lone low reading among normal ones never opens it.
    const spike = runActor(
      road,
      entity,
      [at(0, 20), at(10, 20), at(20, 3), at(30, 20), at(40, 20), at(50, 20), at(60, 20), at(70, 20)],
      { config: OLD_FUEL },
    )
    t.same(alerts(spike.outputs), [], 'a spike raises nothing')
  },
)

void t.test('staleness: unit_offline on a processing-time tick, closed by the next reading', async (t) => {
  const cell = new ActorCell(road, C, entity)
  const outs: EmittedOutput[] = []
  const emit = (o: EmittedOutput): void => {
    outs.push(o)
  }
  const P = 5_000_000
  cell.applyReading(1, P, { ts: T0, fields: { speed: 0 } }, emit)
  t.equal(cell.nextProcTimer(), P + 600_000)
  cell.applyReading(2, P + 60_000, { ts: T0 + 60_000, fields: { speed: 0 } }, emit)
  t.equal(cell.applyTick(3, P + 659_999, emit), false, 'not yet due')
  t.equal(outs.length, 0)
  t.equal(cell.applyTick(4, P + 660_000, emit), true)
  const a = alerts(outs, 'unit_offline')
  t.same(
    a.map((b) => [b.state, b.severity, b.start]),
    [['open', 'warning', T0 + 60_000]],
  )
  t.equal(outs[0]?.id, `vehicle:V1:alert:vehicle:V1:unit_offline:${T0 + 60_000}:open:4`)
  t.equal(cell.applyTick(5, P + 700_000, emit), false, 'fires once')
  t.same(
    (cell.query() as RoadView).openAlerts.map((x) => x.type),
    ['unit_offline'],
  )
  cell.applyReading(6, P + 800_000, { ts: T0 + 800_000, fields: { speed: 0 } }, emit)
  t.same(
    alerts(outs, 'unit_offline').map((b) => [b.state, b.start, b.end ?? null]),
    [
      ['open', T0 + 60_000, null],
      ['close', T0 + 60_000, T0 + 800_000],
    ],
  )
  t.equal(cell.nextProcTimer(), P + 1_400_000, 're-armed')
})

void t.test('late readings are emitted as late and not applied', async (t) => {
  const r = runActor(road, entity, [
    rd(T0, { lat: 45, lon: 7, speed: 40 }),
    rd(T0 + 10_000, { lat: 45.001, lon: 7, speed: 40 }),
    rd(T0 + 5_000, { lat: 45.05, lon: 7, speed: 0, dtc: 'P0300' }),
    rd(T0 + 10_000, { lat: 45.002, lon: 7, speed: 40 }), // same time as the last applied: applied (a candidate: 111 m in 0 s)
  ])
  const late = r.outputs.filter((o) => o.type === 'late')
  t.equal(late.length, 1)
  t.equal(late[0]?.id, 'vehicle:V1:late:late:3')
  t.equal(alerts(r.outputs).length, 0)
  const v = view(r)
  t.equal(v.late, 1)
  t.same(v.position, { ts: T0 + 10_000, lat: 45.001, lon: 7, heading: null })
  t.equal(v.gpsJumps, 0, 'the equal-time moved fix awaits confirmation (zero time, non-zero distance)')
  t.ok(Math.abs(v.distanceToday.km - 0.1112) < 0.001)
})

void t.test('positions: rate-bounded samples plus trip start, stops and the trip end after a gap', async (t) => {
  const at = (ts: number, speed: number, lat = 45.75): HarnessMessage => rd(ts, { lat, lon: 4.83, speed, heading: 90 })
  const m: HarnessMessage[] = [
    at(T0, 0), // seq 1: first fix -> sample
    at(T0 + 10_000, 0), // 2: within the minute -> none
    at(T0 + 20_000, 30, 45.7501), // 3: trip starts -> trip_start
    at(T0 + 30_000, 40, 45.7502), // 4: none
    at(T0 + 80_000, 40, 45.7505), // 5: 60 s after the last position -> sample
    rd(T0 + 85_000, { speed: 40 }), // 6: no fix -> none
    at(T0 + 86_000, 40, 46.5), // 7: GPS jump -> ignored, none
    at(T0 + 90_000, 0, 45.7506), // 8: a stop begins -> stop
    at(T0 + 100_000, 30, 45.7507), // 9: none
    at(T0 + 150_000, 30, 45.7509), // 10: sample
    at(T0 + 160_000, 30, 45.751), // 11: the last reading before the unit is switched off
    at(T0 + 160_000 + 1_200_000, 0, 45.751), // 12: after 20 min: the trip ended at 11 -> trip_end for 11, then a sample
  ]
  // Fix 5 comes 50 s after fix 4, 33 m from it at 40 km/h: after a gap of >= confirmGapMs a fix whose reading
  // reports motion waits for the next one to confirm it (the GPS filter's tests); here the gap is within it.
  const PC = { ...C, confirmGapMs: 60_000 }
  const r = runActor(road, entity, m, { config: PC })
  const pos = r.outputs.filter((o) => o.type === 'position')
  t.same(
    pos.map((o) => [(o.body as PositionBody).readingSeq, (o.body as PositionBody).reason, o.ts, o.seq]),
    [
      [1, 'sample', T0, 1],
      [3, 'trip_start', T0 + 20_000, 3],
      [5, 'sample', T0 + 80_000, 5],
      [8, 'stop', T0 + 90_000, 8],
      [10, 'sample', T0 + 150_000, 10],
      [11, 'trip_end', T0 + 160_000, 12],
      [12, 'sample', T0 + 1_360_000, 12],
    ],
  )
  t.same(
    pos.map((o) => o.id),
    pos.map((o) => `vehicle:V1:position:pos:${(o.body as PositionBody).readingSeq}`),
    'keyed by the reading',
  )
  t.match(pos[1]?.body, { lat: 45.7501, lon: 4.83, speed: 30, heading: 90 })
  t.match(
    pos[5]?.body,
    { lat: 45.751, speed: null, heading: null },
    'a trip end after a gap has the fix, not the speed of a later reading',
  )
  const tr = trips(r.outputs)
  t.equal(tr.length, 1)
  t.same(
    [tr[0]?.factors.start_ts, tr[0]?.factors.end_ts],
    [T0 + 20_000, T0 + 160_000],
    'the trip runs from its trip_start to its trip_end position',
  )
  // Every fix with interval 0; nothing without a fix.
  const every = runActor(road, entity, m, { config: { ...PC, positionIntervalMs: 0 } })
  t.same(
    every.outputs.filter((o) => o.type === 'position').map((o) => (o.body as PositionBody).readingSeq),
    [1, 2, 3, 4, 5, 8, 9, 10, 11, 12],
  )
  // Snapshots written before positions existed decode with no position emitted yet.
  const snap = JSON.parse(JSON.stringify(r.cell.snapshot(1))) as { state: Record<string, unknown> }
  delete snap.state.fixSeq
  delete snap.state.posTs
  delete snap.state.posSeq
  const old = road.codec.decode(snap.state, 1)
  t.same([old.fixSeq, old.posTs, old.posSeq], [null, null, null])
})

void t.test('config validation names the setting', async (t) => {
  const bad = (patch: Partial<RoadConfig>, setting: string): void => {
    t.equal(
      settingOf(() => new ActorCell(road, { ...C, ...patch }, entity)),
      setting,
    )
  }
  bad({ tripStopMs: -1 }, 'road.tripStopMs')
  bad({ overheatC: Number.NaN }, 'road.overheatC')
  bad({ maxJumpKmh: 0 }, 'road.maxJumpKmh')
  bad({ staleAfterMs: 0 }, 'road.staleAfterMs')
  bad({ positionIntervalMs: -1 }, 'road.positionIntervalMs')
  bad({ geofences: [{ id: 'a', lat: 0, lon: 0, radiusM: 0 }] }, 'road.geofences[0].radiusM')
  bad(
    {
      geofences: [
        { id: 'a', lat: 0, lon: 0, radiusM: 1 },
        { id: 'a', lat: 0, lon: 0, radiusM: 1 },
      ],
    },
    'road.geofences[1].id',
  )
  t.doesNotThrow(() => new ActorCell(road, C, entity))
})

void t.test('snapshot/restore mid-run gives identical outputs and state', async (t) => {
  const config: RoadConfig = { ...C, geofences: [{ id: 'g', lat: 45, lon: 7, radiusM: 300 }] }
  const codes = ['P0301', 'P0420', 'U0100']
  const msg = fc.record({
    dt: fc.integer({ min: -20_000, max: 120_000 }),
    dLat: fc.double({ min: -0.002, max: 0.002, noNaN: true }),
    speed: fc.integer({ min: 0, max: 90 }),
    cool: fc.integer({ min: 95, max: 120 }),
    fuel: fc.integer({ min: 0, max: 20 }),
    dtc: fc.subarray(codes),
    tick: fc.boolean(),
    gap: fc.integer({ min: 1_000, max: 700_000 }),
  })
  fc.assert(
    fc.property(fc.array(msg, { minLength: 1, maxLength: 80 }), fc.array(fc.nat(80), { maxLength: 4 }), (ms, cuts) => {
      let ts = T0,
        lat = 45,
        proc = 1_000_000
      const m: HarnessMessage[] = []
      for (const x of ms) {
        proc += x.gap
        if (x.tick) {
          m.push({ tick: true, procTime: proc })
          continue
        }
        ts += x.dt
        lat += x.dLat
        const reading: Reading = {
          ts,
          fields: { lat, lon: 7, speed: x.speed, coolant_temp: x.cool, fuel_level: x.fuel, dtc: x.dtc.join(',') },
        }
        m.push({ reading, procTime: proc })
      }
      const a = runActor(road, entity, m, { config })
      const b = runActor(road, entity, m, { config, snapshotBefore: cuts.filter((c) => c < m.length) })
      const ids = a.outputs.map((o) => o.id)
      return (
        JSON.stringify(a.outputs) === JSON.stringify(b.outputs) &&
        JSON.stringify(a.cell.query()) === JSON.stringify(b.cell.query()) &&
        new Set(ids).size === ids.length
      )
    }),
    { numRuns: 300 },
  )
  t.pass('property held')
  t.throws(() => road.codec.decode({}, 2))
  t.throws(
    () => road.codec.decode(JSON.parse(JSON.stringify(runActor(road, entity, []).cell.snapshot(1).state)), 3),
    'newer version',
  )
})
