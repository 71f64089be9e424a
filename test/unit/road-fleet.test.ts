/**
 * The fleet-manager features of the road profile (issue 22), through the real ActorCell: stationary filter,
 * distance by speed against a reference (fast-check), jumps after a dropout and recovery, trips closed on
 * ignition off and on processing time, stops / idle / idling, refuel and fuel drop, fuel used per trip,
 * polygon geometry against @turf/boolean-point-in-polygon (fast-check), geofences from versioned reference data
 * (assignment, hysteresis, dwell, removal), the v1 snapshot migration, and the reference-version lookup.
 */
import t from 'tap'
import fc from 'fast-check'
import booleanPointInPolygon from '@turf/boolean-point-in-polygon'
import type { ReferenceLookup } from '../../actors/actor.js'
import { ActorCell } from '../../actors/cell.js'
import { compileShape, GEOFENCES_REF, haversineM, type GeofenceSet } from '../../actors/geo.js'
import { QUIET_TIMER, ROAD_DEFAULTS, road, type RoadConfig, type RoadView } from '../../actors/kinds/vehicle/road.js'
import { ReferenceTable } from '../../actors/references.js'
import type { AlertBody, FieldValue, ScoreBody } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'vehicle', id: 'V1' } as const
const T0 = Date.UTC(2026, 0, 5, 7, 0, 0)
const C = ROAD_DEFAULTS
const M_LAT = 1 / 111_195
const rd = (ts: number, fields: Record<string, FieldValue>): HarnessMessage => ({ reading: { ts, fields } })
const scores = (outs: EmittedOutput[], name: string): Array<Record<string, number>> =>
  outs
    .filter((o) => o.type === 'score' && (o.body as ScoreBody).name === name)
    .map((o) => (o.body as ScoreBody).factors)
const alerts = (outs: EmittedOutput[], type: string): AlertBody[] =>
  outs
    .filter((o) => o.type === 'alert')
    .map((o) => o.body as AlertBody)
    .filter((b) => b.type === type)
const view = (r: { cell: ActorCell }): RoadView => r.cell.query() as RoadView
/** Seeded normal noise. */
function noise(seed: number): () => number {
  let a = seed >>> 0
  const u = (): number => {
    a = (a * 1664525 + 1013904223) >>> 0
    return (a + 0.5) / 4294967296
  }
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
}

void t.test('standing: GPS noise adds no distance, with or without a speed field', async (t) => {
  const n = noise(1)
  const m: HarnessMessage[] = []
  for (let i = 0; i <= 600; i++)
    m.push(
      rd(T0 + i * 1000, {
        lat: 40.75 + 6 * n() * M_LAT,
        lon: -73.98 + 6 * n() * M_LAT * 1.32,
        speed: Math.abs(0.4 * n()),
      }),
    )
  const r = runActor(road, entity, m)
  t.equal(view(r).odometerKm, 0, '10 min standing at 1 s with 6 m noise: 0 km')
  const noSpeed = runActor(
    road,
    entity,
    m.map((x) => {
      const f = { ...(x as { reading: { ts: number; fields: Record<string, FieldValue> } }).reading.fields }
      delete f['speed']
      return rd((x as { reading: { ts: number } }).reading.ts, f)
    }),
  )
  t.ok(
    view(noSpeed).odometerKm < 0.05,
    `no speed field: ${view(noSpeed).odometerKm.toFixed(3)} km (anchor held within 30 m)`,
  )
  t.equal(view(r).position?.ts, T0 + 600_000, 'the displayed position still follows the last fix')
})

void t.test('distance by speed equals the trapezoid reference over dense pairs', async (t) => {
  const step = fc.record({ dt: fc.integer({ min: 200, max: 20_000 }), v: fc.double({ min: 0, max: 130, noNaN: true }) })
  fc.assert(
    fc.property(fc.double({ min: 0, max: 130, noNaN: true }), fc.array(step, { maxLength: 80 }), (v0, steps) => {
      let ts = T0,
        prev = v0,
        want = 0
      const m: HarnessMessage[] = [rd(ts, { speed: v0 })]
      for (const s of steps) {
        ts += s.dt
        if (s.dt <= C.speedIntegrateMaxMs && (prev > C.stationaryKmh || s.v > C.stationaryKmh))
          want += ((prev + s.v) / 2) * (s.dt / 3_600_000)
        prev = s.v
        m.push(rd(ts, { speed: s.v }))
      }
      return Math.abs(view(runActor(road, entity, m)).odometerKm - want) <= 1e-9 * Math.max(1, want)
    }),
    { numRuns: 200 },
  )
  t.pass('odometer = sum of trapezoids over pairs <= 12 s apart, 0 where both speeds <= 3 km/h')
})

void t.test(
  'a jump as the first fix after a dropout is not counted; true fixes are accepted right after',
  async (t) => {
    // 36 km/h north, fixes every second; 40 s of silence; the first fix back is 670 m off to the east.
    const m: HarnessMessage[] = []
    const lat = (s: number): number => 40.75 + 10 * s * M_LAT
    for (let s = 0; s <= 30; s++) m.push(rd(T0 + s * 1000, { lat: lat(s), lon: -73.98, speed: 36 }))
    m.push(rd(T0 + 70_000, { lat: lat(70), lon: -73.98 + 670 * M_LAT * 1.32, speed: 36 }))
    for (let s = 71; s <= 80; s++) m.push(rd(T0 + s * 1000, { lat: lat(s), lon: -73.98, speed: 36 }))
    const r = runActor(road, entity, m, { config: { ...C, speedIntegrateMaxMs: 0 } })
    const v = view(r)
    t.equal(v.gpsJumps, 1)
    t.ok(
      Math.abs(v.odometerKm - 0.8) < 0.002,
      `odometer ${v.odometerKm.toFixed(4)} km = 800 m driven (the chord across the dropout counted once)`,
    )
    t.same(v.position, { ts: T0 + 80_000, lat: lat(80), lon: -73.98, heading: null })
    // The jump never became the position: positions emitted are all on the true track.
    t.ok(
      r.outputs.filter((o) => o.type === 'position').every((o) => (o.body as { lon: number }).lon === -73.98),
      'no position at the jump',
    )
    // A single jump in a continuous stream: rejected, and the next true fix is accepted at once.
    const m2: HarnessMessage[] = []
    for (let s = 0; s <= 20; s++)
      m2.push(rd(T0 + s * 1000, { lat: lat(s), lon: s === 10 ? -73.97 : -73.98, speed: 36 }))
    const r2 = runActor(road, entity, m2.slice(0, 12), { config: { ...C, speedIntegrateMaxMs: 0 } })
    t.same([view(r2).gpsJumps, view(r2).position?.ts], [1, T0 + 11_000], 'the fix after the jump is accepted')
  },
)

void t.test('hdop and satellites gate fixes when configured', async (t) => {
  const cfg: RoadConfig = { ...C, maxHdop: 5, minSatellites: 4 }
  const r = runActor(
    road,
    entity,
    [
      rd(T0, { lat: 40, lon: -74, hdop: 1, sats: 9 }),
      rd(T0 + 1000, { lat: 40.0001, lon: -74, hdop: 9, sats: 9 }),
      rd(T0 + 2000, { lat: 40.0001, lon: -74, hdop: 1, sats: 3 }),
    ],
    { config: cfg },
  )
  t.same(view(r).position?.ts, T0, 'both poor fixes ignored')
})

void t.test('trips close on ignition off, and on processing time when the unit goes quiet', async (t) => {
  const drive = [
    rd(T0, { speed: 30, ignition: true }),
    rd(T0 + 10_000, { speed: 40, ignition: true }),
    rd(T0 + 20_000, { speed: 0, ignition: true }),
  ]
  const off = runActor(road, entity, [...drive, rd(T0 + 25_000, { speed: 0, ignition: false })])
  t.same(
    scores(off.outputs, 'trip').map((f) => [f['start_ts'], f['end_ts']]),
    [[T0, T0 + 20_000]],
    'ignition off: ends at the start of its stop',
  )
  t.equal(view(off).trip, null)

  const cell = new ActorCell(road, C, entity)
  const outs: EmittedOutput[] = []
  const emit = (o: EmittedOutput): void => {
    outs.push(o)
  }
  const P = 9_000_000
  cell.applyReading(1, P, { ts: T0, fields: { speed: 30 } }, emit)
  cell.applyReading(2, P + 5_000, { ts: T0 + 5_000, fields: { speed: 35 } }, emit)
  t.equal(cell.nextProcTimer(), P + 5_000 + C.tripQuietMs, 'the quiet timer follows the last reading')
  cell.applyTick(3, P + 5_000 + C.tripQuietMs - 1, emit)
  t.equal(scores(outs, 'trip').length, 0, 'not before tripQuietMs')
  cell.applyTick(4, P + 5_000 + C.tripQuietMs, emit)
  t.same(
    scores(outs, 'trip').map((f) => [f['start_ts'], f['end_ts']]),
    [[T0, T0 + 5_000]],
    'closed at the last reading',
  )
  t.equal((cell.query() as RoadView).trip, null)
  t.notOk(
    cell.timers.some((x) => x.name === QUIET_TIMER),
    'no quiet timer without a trip',
  )
  // The next reading starts a new trip; the old one is not emitted twice.
  cell.applyReading(5, P + 600_000, { ts: T0 + 600_000, fields: { speed: 30 } }, emit)
  t.equal(scores(outs, 'trip').length, 1)
})

void t.test(
  'a hold with the engine on does not end the trip; 3 min stopped without engine information does',
  async (t) => {
    const hold = [
      rd(T0, { speed: 30, rpm: 1400 }),
      ...Array.from({ length: 25 }, (_, i) => rd(T0 + 10_000 + i * 10_000, { speed: 0, rpm: 750 })),
      rd(T0 + 260_000, { speed: 30, rpm: 1400 }),
    ]
    t.same(scores(runActor(road, entity, hold).outputs, 'trip'), [], 'a 4 min hold, engine on: same trip')
    const noEngine = hold.map((m) => {
      const r = (m as { reading: { ts: number; fields: Record<string, FieldValue> } }).reading
      return rd(r.ts, { speed: r.fields['speed'] as number })
    })
    t.same(
      scores(runActor(road, entity, noEngine).outputs, 'trip').map((f) => f['end_ts']),
      [T0 + 10_000],
      'no engine information: tripStopMs',
    )
    const long = [
      ...hold.slice(0, 2),
      ...Array.from({ length: C.tripStopEngineOnMs / 60_000 }, (_, i) =>
        rd(T0 + 70_000 + i * 60_000, { speed: 0, rpm: 750 }),
      ),
    ]
    t.same(
      scores(runActor(road, entity, long).outputs, 'trip').map((f) => f['end_ts']),
      [T0 + 10_000],
      'tripStopEngineOnMs with the engine on',
    )
  },
)

void t.test('stops, idle periods, idling alert and idle time per trip', async (t) => {
  const m: HarnessMessage[] = [rd(T0, { speed: 40, rpm: 1500 })]
  // Stop of 45 s (engine idling), drive, then idle 6 min, then drive, then park.
  for (let s = 10; s <= 55; s += 5) m.push(rd(T0 + s * 1000, { speed: 0, rpm: 750 }))
  m.push(rd(T0 + 60_000, { speed: 30, rpm: 1400 }))
  for (let s = 70; s <= 430; s += 10) m.push(rd(T0 + s * 1000, { speed: 0, rpm: 750 }))
  m.push(rd(T0 + 440_000, { speed: 30, rpm: 1400 }))
  m.push(rd(T0 + 450_000, { speed: 0, ignition: false }))
  const r = runActor(road, entity, m, { config: { ...C, tripStopMs: 600_000 } })
  t.same(
    scores(r.outputs, 'stop').map((f) => [f['start_ts'], f['end_ts'], f['duration_s']]),
    [
      [T0 + 10_000, T0 + 60_000, 50],
      [T0 + 70_000, T0 + 440_000, 370],
    ],
  )
  t.same(
    scores(r.outputs, 'idle').map((f) => [f['start_ts'], f['end_ts']]),
    [[T0 + 70_000, T0 + 440_000]],
    'the 50 s idle is under idleMinMs',
  )
  t.same(
    alerts(r.outputs, 'idling').map((a) => [a.state, a.start, a.end ?? null]),
    [
      ['open', T0 + 70_000, null],
      ['close', T0 + 70_000, T0 + 440_000],
    ],
  )
  const trip = scores(r.outputs, 'trip')[0] ?? {}
  t.equal(trip['idle_s'], 50 + 370, 'idle seconds in the trip')
  t.same([trip['stops'], trip['stop_s']], [2, 420])
})

void t.test('refuel, fuel drop and fuel used per trip', async (t) => {
  const m: HarnessMessage[] = []
  let ts = T0
  // Drive 10 min burning 50 -> 45 %, park with the unit off, come back refuelled to 90 %, drive, then a 20-point
  // drop while standing.
  for (let i = 0; i <= 60; i++, ts += 10_000) m.push(rd(ts, { speed: 40, fuel_level: 50 - i / 12 }))
  for (let i = 0; i < 6; i++, ts += 10_000) m.push(rd(ts, { speed: 0, fuel_level: 45 }))
  ts += 3_600_000
  for (let i = 0; i <= 30; i++, ts += 10_000) m.push(rd(ts, { speed: 40, fuel_level: 90 - i / 12 }))
  for (let i = 0; i < 30; i++, ts += 10_000) m.push(rd(ts, { speed: 0, fuel_level: i < 10 ? 87.5 : 67.5 }))
  const r = runActor(road, entity, m)
  const refuels = r.outputs
    .filter((o) => o.type === 'score' && (o.body as ScoreBody).name === 'refuel')
    .map((o) => o.body as ScoreBody)
  t.equal(refuels.length, 1)
  t.ok(Math.abs((refuels[0]?.value ?? 0) - 45) < 0.5, `refuel +${refuels[0]?.value.toFixed(1)} points`)
  const trips = scores(r.outputs, 'trip')
  t.ok(
    Math.abs((trips[0]?.['fuel_used_pct'] ?? 0) - 5) < 0.3,
    `first trip used ${trips[0]?.['fuel_used_pct']?.toFixed(2)} %`,
  )
  const drops = alerts(r.outputs, 'fuel_drop')
  t.same(
    drops.map((a) => a.state),
    ['open', 'close'],
    'one fuel_drop, opened and closed at once',
  )
  // Measured from the highest smoothed level of the last 10 min (the drive before included): 20 points stolen.
  t.ok((drops[0]?.value ?? 0) >= 19.5 && (drops[0]?.value ?? 0) <= 23, `drop of ${drops[0]?.value?.toFixed(1)} points`)
  t.equal(alerts(r.outputs, 'low_fuel').length, 0)
})

void t.test(
  'polygon signed distance: the sign matches turf, the magnitude matches a brute-force edge distance',
  async (t) => {
    const ring = fc.array(
      fc.tuple(fc.double({ min: -0.01, max: 0.01, noNaN: true }), fc.double({ min: -0.01, max: 0.01, noNaN: true })),
      { minLength: 3, maxLength: 12 },
    )
    fc.assert(
      fc.property(
        ring,
        fc.tuple(
          fc.double({ min: -0.012, max: 0.012, noNaN: true }),
          fc.double({ min: -0.012, max: 0.012, noNaN: true }),
        ),
        (pts, [dx, dy]) => {
          const coords = [
            ...pts.map(([x, y]) => [-73.98 + x, 40.75 + y]),
            [-73.98 + (pts[0] as number[])[0]!, 40.75 + (pts[0] as number[])[1]!],
          ]
          const p = [-73.98 + dx, 40.75 + dy]
          const d = compileShape({ type: 'polygon', coordinates: [coords] }).signedM(p[1] as number, p[0] as number)
          // Points within a few centimetres of an edge are ambiguous for any implementation.
          if (Math.abs(d) < 0.05) return true
          const turf = booleanPointInPolygon(p, { type: 'Polygon', coordinates: [coords] })
          return turf === d < 0
        },
      ),
      { numRuns: 2000 },
    )
    // Hole: a square with a square hole.
    const sq = (h: number): number[][] => [
      [-73.98 - h, 40.75 - h],
      [-73.98 + h, 40.75 - h],
      [-73.98 + h, 40.75 + h],
      [-73.98 - h, 40.75 + h],
      [-73.98 - h, 40.75 - h],
    ]
    const shape = compileShape({ type: 'polygon', coordinates: [sq(0.01), sq(0.002)] })
    t.ok(shape.signedM(40.75, -73.98) > 0, 'in the hole: outside')
    t.ok(shape.signedM(40.755, -73.98) < 0, 'between the rings: inside')
    t.ok(Math.abs(shape.signedM(40.75 + 0.011, -73.98) - 0.001 * 111_195) < 1, 'distance to the outer edge in metres')
    t.ok(
      Math.abs(compileShape({ type: 'circle', lat: 40.75, lon: -73.98, radiusM: 100 }).signedM(40.75, -73.98) + 100) <
        1e-9,
      'circle centre: -radius',
    )
  },
)

/** A reference lookup holding the given geofence sets, each effective from its `at`. */
function refsOf(...sets: Array<{ at: number; set: GeofenceSet }>): ReferenceLookup {
  const table = new ReferenceTable(0)
  sets.forEach((x, i) => table.add(GEOFENCES_REF, i + 1, x.at, x.set))
  return table.lookup
}

/** Runs readings with processing time = event time through one cell with reference data. */
function runWithRefs(
  msgs: Array<{ ts: number; fields: Record<string, FieldValue> }>,
  refs: ReferenceLookup,
  config: RoadConfig = C,
  id = 'V1',
): { outs: EmittedOutput[]; cell: ActorCell } {
  const cell = new ActorCell(road, config, { kind: 'vehicle', id })
  const outs: EmittedOutput[] = []
  msgs.forEach((m, i) => cell.applyReading(i + 1, m.ts, { ts: m.ts, fields: m.fields }, (o) => outs.push(o), refs))
  return { outs, cell }
}

void t.test('geofences from reference data: assignment, version, hysteresis, dwell output, removal', async (t) => {
  const depot = {
    type: 'polygon' as const,
    coordinates: [
      [
        [-73.99, 40.74],
        [-73.97, 40.74],
        [-73.97, 40.76],
        [-73.99, 40.76],
        [-73.99, 40.74],
      ],
    ],
  }
  const v1: GeofenceSet = {
    version: 7,
    fences: [
      { id: 'depot', shape: depot, vehicles: ['V1'], marginM: null, minDwellMs: null },
      { id: 'other', shape: depot, vehicles: ['V2'], marginM: null, minDwellMs: null },
      {
        id: 'all',
        shape: { type: 'circle', lat: 40.75, lon: -73.98, radiusM: 200 },
        vehicles: null,
        marginM: 30,
        minDwellMs: 20_000,
      },
    ],
  }
  const v2: GeofenceSet = { version: 8, fences: [] }
  const refs = refsOf({ at: T0, set: v1 }, { at: T0 + 300_000, set: v2 })
  const msgs: Array<{ ts: number; fields: Record<string, FieldValue> }> = []
  // Approach from the south at 36 km/h, stand at the circle's centre for a minute, leave north.
  for (let s = 0; s <= 200; s++)
    msgs.push({
      ts: T0 + s * 1000,
      fields: { lat: 40.735 + 10 * Math.min(s, 150) * M_LAT, lon: -73.98, speed: s < 150 ? 36 : 0 },
    })
  // The circle (radius 200 m, 1,668 m north of the start) is reached at 147 s and needs 20 s inside: not by 160 s.
  const a = runWithRefs(msgs.slice(0, 161), refs)
  const fences = alerts(a.outs, 'geofence')
  t.same(
    fences.map((b) => [b.state, b.details?.['geofence'], b.details?.['version']]),
    [['open', 'depot', 7]],
    'V1 enters its own fence only, the circle not yet',
  )
  const entered = fences[0]?.start ?? 0
  t.ok(
    Math.abs(haversineM(40.74, -73.98, 40.735 + 10 * ((entered - T0) / 1000) * M_LAT, -73.98)) <= 10,
    'entered at the boundary',
  )
  // Past the dwell of the circle and into the next version (no fences): everything closes with its dwell time.
  const more = [
    ...msgs,
    ...Array.from({ length: 150 }, (_, i) => ({
      ts: T0 + (201 + i) * 1000,
      fields: { lat: 40.75, lon: -73.98, speed: 0 } as Record<string, FieldValue>,
    })),
  ]
  const b = runWithRefs(more, refs)
  const fb = alerts(b.outs, 'geofence')
  t.same(
    fb.map((x) => [x.state, x.details?.['geofence'], x.details?.['version']]),
    [
      ['open', 'depot', 7],
      ['open', 'all', 7],
      ['close', 'all', 8],
      ['close', 'depot', 8],
    ],
    'circle after 20 s inside; both close when the set drops them',
  )
  const circleOpen = b.outs.find((o) => o.type === 'alert' && (o.body as AlertBody).details?.['geofence'] === 'all')
  const circleStart = (circleOpen?.body as AlertBody | undefined)?.start ?? 0
  t.equal(circleOpen?.ts, T0 + 167_000, 'raised after 20 s inside')
  // The start is where the track crossed the edge, between the last fix outside (146 s) and the first inside (147 s).
  t.ok(circleStart > T0 + 146_000 && circleStart <= T0 + 147_000, `start ${(circleStart - T0) / 1000} s`)
  t.ok(
    Math.abs(haversineM(40.75, -73.98, 40.735 + 10 * ((circleStart - T0) / 1000) * M_LAT, -73.98) - 200) <= 1,
    'start at the circle',
  )
  t.same(
    scores(b.outs, 'geofence_dwell').map((f) => [f['enter_ts'], f['exit_ts'], f['version']]),
    [
      [circleStart, T0 + 300_000, 8],
      [entered, T0 + 300_000, 8],
    ],
  )
  t.equal((b.cell.query() as RoadView).geofenceVersion, 8, 'the version applied is in the state')
  // A vehicle standing at the edge of a fence with 8 m noise for 10 min: one enter, no flapping.
  const n = noise(3)
  const edge = Array.from({ length: 600 }, (_, i) => ({
    ts: T0 + i * 1000,
    fields: { lat: 40.75 + (200 + 8 * n()) * M_LAT, lon: -73.98 + 8 * n() * M_LAT * 1.32, speed: 0 } as Record<
      string,
      FieldValue
    >,
  }))
  const circle: GeofenceSet = {
    version: 1,
    fences: [
      {
        id: 'c',
        shape: { type: 'circle', lat: 40.75, lon: -73.98, radiusM: 200 },
        vehicles: null,
        marginM: null,
        minDwellMs: null,
      },
    ],
  }
  const e = runWithRefs(edge, refsOf({ at: 0, set: circle }))
  t.ok(alerts(e.outs, 'geofence').length <= 1, `standing at the edge: ${alerts(e.outs, 'geofence').length} event(s)`)
  // Driving along a road 10 m outside the circle with 4 m noise at 1 s: with a 20 m exit margin on this fence
  // (per-fence tuning for a fence beside a road), at most one enter/exit pair.
  const n2 = noise(4)
  const graze = Array.from({ length: 300 }, (_, i) => {
    const ang = -0.8 + (1.6 * i) / 300
    const r = 210 + 4 * n2()
    return {
      ts: T0 + i * 1000,
      fields: {
        lat: 40.75 + r * Math.cos(ang) * M_LAT,
        lon: -73.98 + r * Math.sin(ang) * M_LAT * 1.32,
        speed: 20,
      } as Record<string, FieldValue>,
    }
  })
  const wide: GeofenceSet = {
    version: 2,
    fences: [{ ...(circle.fences[0] as GeofenceSet['fences'][number]), marginM: 20 }],
  }
  const g = runWithRefs(graze, refsOf({ at: 0, set: wide }))
  t.ok(
    alerts(g.outs, 'geofence').length <= 2,
    `a road grazing the fence: ${alerts(g.outs, 'geofence').length} event(s)`,
  )
})

void t.test('config geofences still work (circles and polygons) and snapshots of version 1 migrate', async (t) => {
  const cfg: RoadConfig = {
    ...C,
    geofences: [
      { id: 'c', lat: 40.75, lon: -73.98, radiusM: 100 },
      {
        id: 'p',
        shape: {
          type: 'polygon',
          coordinates: [
            [
              [-73.99, 40.74],
              [-73.97, 40.74],
              [-73.98, 40.76],
            ],
          ],
        },
      },
    ],
  }
  const r = runActor(road, entity, [rd(T0, { lat: 40.75, lon: -73.98, speed: 0 })], { config: cfg })
  t.same(Object.keys(view(r).geofences).sort(), ['c', 'p'])
  // The short polygon form: one ring of [lat, lon].
  const short: RoadConfig = {
    ...C,
    geofences: [
      {
        id: 'q',
        polygon: [
          [40.74, -73.99],
          [40.74, -73.97],
          [40.76, -73.98],
        ],
      },
    ],
  }
  t.same(
    Object.keys(view(runActor(road, entity, [rd(T0, { lat: 40.75, lon: -73.98 })], { config: short })).geofences),
    ['q'],
  )
  t.equal(
    view(runActor(road, entity, [rd(T0, { lat: 40.75, lon: -73.96 })], { config: short })).geofences['q'],
    undefined,
  )
  // A version-1 state (before this change): fences as id -> start.
  const v1 = {
    lastTs: T0,
    fix: [T0, 40.75, -73.98],
    fixSeq: 1,
    posTs: T0,
    posSeq: 1,
    speed: 40,
    heading: null,
    trip: { start: T0 - 60_000, km: 1.5, max: 50, stopSince: null },
    day: T0 - (T0 % 86_400_000),
    dayKm: 1.5,
    odoKm: 10,
    fences: { c: T0 - 1000 },
    dtc: {},
    oh: [null, null, 0],
    lf: [null, null, 0],
    stale: null,
    late: 0,
    jumps: 2,
  }
  const snap = { f: 1 as const, profile: 'road', v: 1, lastSeq: 1, maxEventTs: T0, timers: [], token: 1, state: v1 }
  const cell = new ActorCell(road, cfg, entity, snap)
  const outs: EmittedOutput[] = []
  cell.applyReading(
    2,
    T0 + 1000,
    { ts: T0 + 1000, fields: { lat: 40.75 + 400 * M_LAT, lon: -73.98, speed: 40 } },
    (o) => outs.push(o),
  )
  cell.applyReading(
    3,
    T0 + 2000,
    { ts: T0 + 2000, fields: { lat: 40.75 + 410 * M_LAT, lon: -73.98, speed: 40 } },
    (o) => outs.push(o),
  )
  const v = cell.query() as RoadView
  t.ok(v.odometerKm > 10, 'the odometer goes on')
  t.equal(v.trip?.start, T0 - 60_000, 'the open trip goes on')
  t.same(
    alerts(outs, 'geofence')
      .filter((a) => a.details?.['geofence'] === 'c')
      .map((a) => [a.state, a.start]),
    [['close', T0 - 1000]],
    'the old fence state closes with its start',
  )
  t.equal(cell.snapshot(1).v, 2, 'written back as version 2')
})

void t.test('reference lookup: the newest revision effective at the processing time', async (t) => {
  const table = new ReferenceTable(2_000)
  const set = (version: number): GeofenceSet => ({ version, fences: [] })
  table.add(GEOFENCES_REF, 5, 10_000, set(1))
  table.add(GEOFENCES_REF, 9, 20_000, set(2))
  table.add(GEOFENCES_REF, 9, 20_000, set(2))
  t.equal((table.lookup(GEOFENCES_REF, 5_000)?.data as GeofenceSet).version, 1, 'before every revision: the oldest')
  t.equal((table.lookup(GEOFENCES_REF, 12_000)?.data as GeofenceSet).version, 1, 'effective at created + activation')
  t.equal((table.lookup(GEOFENCES_REF, 21_999)?.data as GeofenceSet).version, 1)
  t.equal((table.lookup(GEOFENCES_REF, 22_000)?.data as GeofenceSet).version, 2)
  t.equal(table.lookup('nothing', 22_000), undefined)
  t.throws(
    () =>
      table.add(GEOFENCES_REF, 10, 30_000, {
        version: 3,
        fences: [
          {
            id: 'x',
            shape: { type: 'circle', lat: 99, lon: 0, radiusM: 1 },
            vehicles: null,
            marginM: null,
            minDwellMs: null,
          },
        ],
      }),
    'a malformed set is refused',
  )
  t.equal((table.latest(GEOFENCES_REF)?.data as GeofenceSet).version, 2)
})
