import t from 'tap'
import { createHash } from 'node:crypto'
import { buildScenario, loadFixture, vinCheckDigit } from '../../bench/eval/fleet-scenario.js'
import type { VehicleTruth } from '../../bench/eval/fleet-scenario.js'
import { Polyline, haversineM, fenceDepthM } from '../../bench/eval/geo.js'
import type { Fence, LatLon } from '../../bench/eval/geo.js'
import { alignInTime, dist, matchFenceEvents, scoreFleet, FENCE_TOL_MS } from '../../bench/eval/fleet-score.js'
import type { TimedOutput, VehicleRun } from '../../bench/eval/fleet-score.js'
import { runFleetEval } from '../../bench/eval/fleet-eval.js'

const hash = (x: unknown): string => createHash('sha256').update(JSON.stringify(x)).digest('hex')

t.test(
  'the scenario is deterministic, and a vehicle drives the same day whatever the fleet size and rate',
  async (t) => {
    const a = buildScenario({ vehicles: 3, rateS: 5, tripsPerVehicle: 2 })
    const b = buildScenario({ vehicles: 3, rateS: 5, tripsPerVehicle: 2 })
    t.equal(
      hash(a.vehicles.map((v) => [v.readings, v.truth])),
      hash(b.vehicles.map((v) => [v.readings, v.truth])),
      'same seed, same readings and truth',
    )
    const other = buildScenario({ vehicles: 3, rateS: 5, tripsPerVehicle: 2, seed: 23 })
    t.not(
      hash(other.vehicles.map((v) => v.readings)),
      hash(a.vehicles.map((v) => v.readings)),
      'another seed, another day',
    )
    const one = buildScenario({ vehicles: 1, rateS: 10, tripsPerVehicle: 2 })
    t.same(
      one.vehicles[0]?.truth.trips,
      a.vehicles[0]?.truth.trips,
      'vehicle 0: same trips with 1 vehicle at 10 s as with 3 at 5 s',
    )
    t.equal(one.vehicles[0]?.vin, a.vehicles[0]?.vin)
  },
)

t.test('truth distance is the length of the driven GTFS shape (plus the terminal connector)', async (t) => {
  const fx = loadFixture()
  const sc = buildScenario({ vehicles: 4, rateS: 10, tripsPerVehicle: 3 })
  let trips = 0
  for (const v of sc.vehicles) {
    let sum = 0
    v.truth.trips.forEach((tr, k) => {
      trips++
      const shape = new Polyline(fx.shapes[tr.shape] as LatLon[])
      t.ok(Math.abs(tr.shapeLengthM - shape.length) < 1e-6, `${tr.gtfsTrip}: shape length ${shape.length.toFixed(1)} m`)
      t.ok(Math.abs(tr.distanceM - (tr.shapeLengthM + tr.connectorM)) < 1e-6, 'distance = shape + connector')
      if (k === 0) t.equal(tr.connectorM, 0, 'the first trip starts on its shape')
      t.ok(tr.connectorM >= 0 && tr.connectorM <= 60, `connector ${tr.connectorM.toFixed(1)} m <= 60 m`)
      t.ok(
        tr.ignitionOn < tr.start && tr.start < tr.end && tr.end < tr.ignitionOff,
        'ignition on < start < end < ignition off',
      )
      sum += tr.distanceM
    })
    t.ok(Math.abs(v.truth.odometerM - sum) < 1e-6, 'odometer = sum of trips')
    t.ok(v.vin.length === 17 && vinCheckDigit(v.vin) === v.vin[8] && !/[IOQ]/.test(v.vin), `VIN ${v.vin} valid`)
    t.equal(v.truth.quietAt, v.readings.at(-1)?.reading.ts, 'quiet after the last reading')
    t.equal(v.readings.at(-1)?.reading.fields.ignition, false, 'the last reading is the ignition off')
  }
  t.equal(trips, 12)
})

t.test('readings: rate, fields, jumps (also after dropouts), dropouts, noise of a few metres', async (t) => {
  const sc = buildScenario({ vehicles: 8, rateS: 2 })
  let jumps = 0,
    afterDrop = 0,
    gpsDrops = 0,
    linkDrops = 0,
    noiseSum = 0,
    noiseN = 0
  for (const v of sc.vehicles) {
    const ts = v.readings.map((r) => r.reading.ts)
    let minGap = Infinity
    for (let i = 1; i < ts.length; i++) minGap = Math.min(minGap, (ts[i] as number) - (ts[i - 1] as number))
    t.ok(minGap >= 1000, `${v.vin}: readings at least 1 s apart (min ${minGap} ms)`)
    const periodic = ts.filter((x, i) => i > 0 && x - (ts[i - 1] as number) === 2000).length
    t.ok(periodic > ts.length * 0.9, 'mostly every 2 s')
    const byTs = new Map(v.readings.map((r, i) => [r.reading.ts, i]))
    for (const j of v.faults.jumps) {
      jumps++
      if (j.afterDropout) afterDrop++
      const i = byTs.get(j.t) as number
      const f = v.readings[i]?.reading.fields
      const fix: LatLon = [f?.lat as number, f?.lon as number]
      const truePos: LatLon = [v.truePos[2 * i] as number, v.truePos[2 * i + 1] as number]
      t.ok(haversineM(fix, truePos) > 180, 'a jump lands 200-900 m off (noise aside)')
    }
    const jumpTs = new Set(v.faults.jumps.map((j) => j.t))
    v.readings.forEach((r, i) => {
      if (typeof r.reading.fields.lat !== 'number' || jumpTs.has(r.reading.ts)) return
      noiseSum += haversineM(
        [r.reading.fields.lat, r.reading.fields.lon as number],
        [v.truePos[2 * i] as number, v.truePos[2 * i + 1] as number],
      )
      noiseN++
    })
    for (const d of v.faults.dropouts) {
      const inside = v.readings.filter((r) => r.reading.ts >= d.start && r.reading.ts < d.end)
      if (d.kind === 'link') {
        linkDrops++
        t.equal(inside.length, 0, 'no reading during a link dropout')
      } else {
        gpsDrops++
        t.ok(
          inside.length > 0 &&
            inside.every((r) => r.reading.fields.lat === undefined && typeof r.reading.fields.obd_speed === 'number'),
          'OBD without a fix during a GPS dropout',
        )
      }
      t.ok(d.end - d.start >= 30_000 && d.end - d.start <= 120_000, 'dropouts last 30-120 s')
    }
    const f = v.readings[10]?.reading.fields ?? {}
    for (const k of ['obd_speed', 'rpm', 'coolant_temp', 'fuel_level', 'engine_load', 'ignition'])
      t.ok(k in f, `field ${k}`)
  }
  t.ok(
    jumps > 0 && afterDrop > 0 && gpsDrops > 0 && linkDrops > 0,
    `jumps ${jumps} (${afterDrop} after a dropout), dropouts ${gpsDrops} gps + ${linkDrops} link`,
  )
  const mean = noiseSum / noiseN
  t.ok(mean > 1 && mean < 8, `mean GPS error ${mean.toFixed(2)} m: a few metres`)
})

t.test('fence truth alternates enter/exit from the initial state, on the true path', async (t) => {
  const sc = buildScenario({ vehicles: 6, rateS: 5 })
  t.ok(
    sc.fences.some((f) => f.kind === 'polygon') && sc.fences.some((f) => f.kind === 'circle'),
    'circles and polygons',
  )
  let events = 0
  for (const v of sc.vehicles) {
    const byFence = new Map<string, string[]>()
    for (const e of [...v.truth.fenceEvents].sort((a, b) => a.t - b.t))
      byFence.set(e.fence, [...(byFence.get(e.fence) ?? []), e.kind])
    for (const [id, kinds] of byFence) {
      events += kinds.length
      const first = v.truth.initiallyInside.includes(id) ? 'exit' : 'enter'
      t.ok(
        kinds.every((k, i) => k === (i % 2 === 0 ? first : first === 'enter' ? 'exit' : 'enter')),
        `${id}: alternating from ${first}`,
      )
    }
  }
  t.ok(events > 20, `${events} true fence events`)
  const c: Fence = { id: 'c', kind: 'circle', center: [40.75, -73.99], radiusM: 100, note: '' }
  t.ok(
    fenceDepthM(c, [40.75, -73.99]) === -100 && Math.abs(fenceDepthM(c, [40.75 + 150 / 111_195, -73.99]) - 50) < 0.1,
    'circle depth',
  )
  const sq: Fence = {
    id: 's',
    kind: 'polygon',
    ring: [
      [40.75, -73.99],
      [40.751, -73.99],
      [40.751, -73.989],
      [40.75, -73.989],
    ],
    note: '',
  }
  t.ok(fenceDepthM(sq, [40.7505, -73.9895]) < 0 && fenceDepthM(sq, [40.752, -73.9895]) > 0, 'polygon inside/outside')
})

t.test('scorer: low fuel horizon rule: early warnings count within 30 min of engine-on time, else false', async (t) => {
  // Engine on 0-30 min and 60-90 min (a 30 min layover); the level crosses at 70 min. A warning at 25 min is
  // 45 min of wall time early but 15 min of engine-on time: the crossing's under the horizon rule, false under
  // the window rule (more than 30 min of wall time). A second vehicle warns with no crossing at all: false.
  const run: VehicleRun = {
    vin: 'V',
    horizonMs: 0,
    truth: truthOf({
      trips: [trip(0, T0 + min, T0 + 29 * min, 1000), trip(1, T0 + 61 * min, T0 + 89 * min, 1000)],
      lowFuelCrossings: [{ t: T0 + 70 * min, levelPct: 9.99 }],
    }),
    outputs: [alert('low_fuel', 'open', T0 + 25 * min, T0 + 25 * min)],
  }
  const never: VehicleRun = {
    vin: 'W',
    horizonMs: 0,
    truth: truthOf({ trips: [trip(0, T0 + min, T0 + 59 * min, 1000)] }),
    outputs: [alert('low_fuel', 'open', T0 + 50 * min, T0 + 50 * min)],
  }
  const s = scoreFleet([run, never], [], new Set())
  t.same([s.lowFuel.raised, s.lowFuel.missed, s.lowFuel.false], [0, 1, 2], 'window rule: both false, crossing missed')
  const h = s.lowFuel.horizon
  t.same([h.raised, h.missed, h.false, h.onTime, h.early], [1, 0, 1, 1, 1], 'horizon rule')
  t.equal(h.delayS.worst, -45 * 60, 'signed delay: 45 min early')
  t.equal(h.earlyEngineS.max, 15 * 60, '15 min of engine-on time early')
  // A warning at 5 min is 35 min of engine-on time before the crossing: beyond the horizon, false and missed.
  const far = { ...run, outputs: [alert('low_fuel', 'open', T0 + 5 * min, T0 + 5 * min)] }
  const f = scoreFleet([far], [], new Set()).lowFuel.horizon
  t.same([f.raised, f.missed, f.false], [0, 1, 1], 'too early: false')
})

// ---------- scorer cases by hand ----------

const T0 = 1_790_000_000_000
const min = 60_000
function truthOf(p: Partial<VehicleTruth>): VehicleTruth {
  return {
    trips: [],
    odometerM: 0,
    fenceEvents: [],
    initiallyInside: [],
    stops: [],
    lowFuelCrossings: [],
    fuelEvents: [],
    dtcs: [],
    overheats: [],
    quietAt: 0,
    ...p,
  }
}
const trip = (index: number, start: number, end: number, distanceM: number): VehicleTruth['trips'][number] => ({
  index,
  gtfsTrip: `t${index}`,
  route: 'r',
  shape: 's',
  ignitionOn: start - min,
  start,
  end,
  ignitionOff: end + min,
  distanceM,
  shapeLengthM: distanceM,
  connectorM: 0,
})
let seq = 0
const out = (type: string, ts: number, body: unknown, at = ts, procTime = at + 300): TimedOutput => ({
  output: { type, ts, seq: ++seq, body },
  at,
  procTime,
})
const tripOut = (start: number, end: number, km: number, procTime: number): TimedOutput =>
  out(
    'score',
    end,
    { name: 'trip', value: km, factors: { distance_km: km, start_ts: start, end_ts: end } },
    end,
    procTime,
  )
const alert = (
  type: string,
  state: 'open' | 'update' | 'close',
  start: number,
  at: number,
  details: Record<string, unknown> = {},
  end?: number,
): TimedOutput =>
  out(
    'alert',
    at,
    { alertId: `${type}:${start}`, type, state, start, ...(end !== undefined ? { end } : {}), details },
    at,
  )

t.test('scorer: trips matched, split, extra, left open; distance error; closing delay', async (t) => {
  const trips = [
    trip(0, T0, T0 + 20 * min, 5000),
    trip(1, T0 + 30 * min, T0 + 50 * min, 4000),
    trip(2, T0 + 60 * min, T0 + 80 * min, 3000),
  ]
  const run: VehicleRun = {
    vin: 'V',
    horizonMs: 2 * 3600_000,
    truth: truthOf({ trips, odometerM: 12_000, quietAt: T0 + 81 * min }),
    outputs: [
      tripOut(T0 + 2000, T0 + 20 * min + 1000, 5.5, T0 + 21 * min + 1000), // +10 %, closed 1 s after ignition off... +1 s
      tripOut(T0 + 30 * min, T0 + 40 * min, 2, T0 + 41 * min), // trip 1 split in two pieces summing to 4.2 km
      tripOut(T0 + 41 * min, T0 + 50 * min, 2.2, T0 + 55 * min),
      tripOut(T0 + 200 * min, T0 + 210 * min, 1, T0 + 211 * min), // overlaps nothing
      // trip 2 never reported: left open
    ],
  }
  const s = scoreFleet([run], [], new Set())
  t.equal(s.trips.truth, 3)
  t.equal(s.trips.reported, 4)
  t.equal(s.trips.matched, 2)
  t.equal(s.trips.split, 1)
  t.equal(s.trips.extra, 1)
  t.equal(s.trips.leftOpen, 1)
  t.equal(s.trips.lastLeftOpen, 1)
  t.same(
    [
      s.trips.distancePct.n,
      Math.round(s.trips.distancePct.worst * 10) / 10,
      Math.round(s.trips.distancePct.medianSigned * 10) / 10,
    ],
    [2, 10, 7.5],
    'errors +10 % and +5 %',
  )
  t.equal(s.trips.startErrS.max, 2, 'start 2 s late at worst')
  t.same(
    [s.trips.closeAfterOffS.n, s.trips.closeAfterOffS.max],
    [2, 240],
    'trip 0 closed 1 s after off, trip 1 240 s after',
  )
  t.equal(s.odometer.source, 'trips')
  t.ok(Math.abs(s.odometer.reportedKm - 10.7) < 1e-9, 'odometer from trips when no query value')
})

t.test('scorer: fence events within the tolerance, extra, ambiguous and initial enters', async (t) => {
  const fences: Fence[] = [
    { id: 'a', kind: 'circle', center: [0, 0], radiusM: 10, note: '' },
    {
      id: 'p',
      kind: 'polygon',
      ring: [
        [0, 0],
        [0, 1],
        [1, 1],
      ],
      note: '',
    },
  ]
  const ev = (fence: string, kind: 'enter' | 'exit', tt: number, ambiguous = false) => ({
    fence,
    kind,
    t: tt,
    ambiguous,
    unobserved: false,
  })
  const run: VehicleRun = {
    vin: 'V',
    horizonMs: 0,
    truth: truthOf({
      trips: [trip(0, T0, T0 + 60 * min, 1000)],
      initiallyInside: ['a'],
      fenceEvents: [
        ev('a', 'exit', T0 + 5 * min),
        ev('a', 'enter', T0 + 10 * min),
        ev('a', 'exit', T0 + 20 * min, true),
        { ...ev('p', 'enter', T0 + 30 * min), fixDepthM: 0.4 }, // its fixes reach 0.4 m inside at most
      ],
    }),
    outputs: [
      alert('geofence', 'open', T0 - min + 30_000, T0 - min + 30_000, { geofence: 'a' }), // initial enter: optional
      alert(
        'geofence',
        'close',
        T0 - min + 30_000,
        T0 + 5 * min + FENCE_TOL_MS - 1000,
        { geofence: 'a' },
        T0 + 5 * min + FENCE_TOL_MS - 1000,
      ), // matched, 89 s late
      alert('geofence', 'open', T0 + 10 * min + FENCE_TOL_MS + 1000, T0 + 10 * min + FENCE_TOL_MS + 1000, {
        geofence: 'a',
      }), // 91 s late: extra, and the true enter missing
      alert('geofence', 'close', T0 + 10 * min, T0 + 20 * min, { geofence: 'a' }, T0 + 20 * min), // the ambiguous exit: not scored either way
    ],
  }
  const s = scoreFleet([run], fences, new Set(['a']))
  t.equal(s.fences.truth, 3)
  t.equal(s.fences.ambiguous, 1)
  t.equal(s.fences.matched, 1)
  t.equal(s.fences.missing, 2)
  t.same(s.fences.missingByKind, { circle: 1, polygon: 1 })
  t.equal(s.fences.notConfigured, 1, 'the polygon was not configured')
  t.equal(s.fences.missingShallowFixes, 1, 'one missing event whose fixes reach < 1 m beyond the edge')
  t.equal(s.fences.extra, 1)
  t.equal(s.fences.timeErrS.max, 89)
})

t.test('scorer: low fuel delay, refuel and fuel drop windows, DTC and overheat', async (t) => {
  const run: VehicleRun = {
    vin: 'V',
    horizonMs: 0,
    truth: truthOf({
      trips: [trip(0, T0, T0 + 60 * min, 1000)],
      lowFuelCrossings: [{ t: T0 + 10 * min, levelPct: 9.99 }],
      fuelEvents: [
        { kind: 'refuel', start: T0 + 61 * min, end: T0 + 70 * min, fromPct: 9, toPct: 60 },
        { kind: 'fuel_drop', start: T0 + 80 * min, end: T0 + 90 * min, fromPct: 60, toPct: 45 },
      ],
      dtcs: [{ code: 'P0420', t: T0 + 5 * min }],
      overheats: [{ start: T0 + 20 * min, end: T0 + 23 * min, peakC: 118 }],
    }),
    outputs: [
      alert('low_fuel', 'open', T0 + 10 * min + 45_000, T0 + 10 * min + 45_000),
      alert('low_fuel', 'update', T0 + 10 * min + 45_000, T0 + 12 * min),
      alert('refuel', 'open', T0 + 70 * min + 10_000, T0 + 70 * min + 10_000),
      alert('fuel_drop', 'open', T0 + 120 * min, T0 + 120 * min), // too late for the drop: missed and extra
      alert('dtc', 'open', T0 + 5 * min, T0 + 5 * min, { code: 'P0420' }),
      alert('engine_overheat', 'open', T0 + 21 * min, T0 + 21 * min),
      alert('engine_overheat', 'open', T0 + 40 * min, T0 + 40 * min),
    ],
  }
  const s = scoreFleet([run], [], new Set())
  t.same(
    [s.lowFuel.crossings, s.lowFuel.raised, s.lowFuel.false, s.lowFuel.delayS.max],
    [1, 1, 0, 45],
    'raised 45 s after the crossing; updates are not new alerts',
  )
  t.same(s.fuelEvents.refuel, { truth: 1, detected: 1, extra: 0 })
  t.same(s.fuelEvents.fuelDrop, { truth: 1, detected: 0, extra: 1 })
  t.same([s.lowFuel.onTime, s.lowFuel.early], [1, 0], '45 s after: on time (<= 60 s), not early')
  t.same(s.dtc, { truth: 1, detected: 1, extra: 0 })
  t.same(s.overheat, { truth: 1, detected: 1, extra: 1 })
})

t.test('dist: median and p95 of magnitudes, signed worst', async (t) => {
  const d = dist([1, -2, 3, -10, 4])
  t.same([d.n, d.median, d.p95, d.max, d.worst, d.medianSigned], [5, 3, 10, 10, -10, 1])
  t.ok(Number.isNaN(dist([]).median))
})

t.test('the road profile runs over a small fleet in memory and is scored', async (t) => {
  const r = runFleetEval({ vehicles: 2, rateS: 10, tripsPerVehicle: 2 })
  t.equal(r.scenario.trips, 4)
  t.equal(r.score.trips.truth, 4)
  t.ok(r.score.trips.reported > 0, `${r.score.trips.reported} trips reported`)
  t.ok(r.scenario.trueKm > 1, `${r.scenario.trueKm.toFixed(1)} km true`)
  t.ok(
    Number.isFinite(r.score.odometer.errPct) && Number.isFinite(r.baseline.odometerErrPct),
    'odometer and baseline figures',
  )
  t.ok(r.baseline.distancePct.n === 4, 'baseline per true trip')
  t.ok(r.score.fences.truth + r.score.fences.ambiguous > 0, 'fence events to score')
})

t.test('fence events are paired optimally: an early true event does not take the report of the next one', async (t) => {
  // True exits at 0 s and 80 s; the tracker reported one exit, at 81 s. Greedy in time order paired it with the
  // exit at 0 s (81 s apart, within the tolerance) and counted the exit at 80 s missing.
  const ev = (
    kind: 'enter' | 'exit',
    s: number,
  ): { fence: string; kind: 'enter' | 'exit'; t: number; ambiguous: boolean; unobserved: boolean } => ({
    fence: 'f',
    kind,
    t: s * 1000,
    ambiguous: false,
    unobserved: false,
  })
  const truth = {
    trips: [{ ignitionOn: -600_000 }],
    initiallyInside: [],
    fenceEvents: [ev('exit', 0), ev('enter', 5), ev('exit', 80)],
  } as unknown as VehicleTruth
  const m = matchFenceEvents(truth, [{ fence: 'f', kind: 'exit', t: 81_000 }])
  t.same(
    m.matched.map(([a, b]) => [a.t, b.t]),
    [[80_000, 81_000]],
    'the report goes to the exit 1 s away',
  )
  t.same(
    m.missing.map((e) => [e.kind, e.t]),
    [
      ['exit', 0],
      ['enter', 5000],
    ],
  )
  t.same(
    alignInTime([0, 100, 200], [85, 95, 190], 90),
    [
      [0, 0],
      [1, 1],
      [2, 2],
    ],
    'most pairs first',
  )
  t.same(alignInTime([0, 100], [99], 100), [[1, 0]], 'then the least time error')
})

t.test('scorer: stops, idle periods and idling alerts by length; trip idle time and fuel used', async (t) => {
  const s = 1000
  const stop = (a: number, b: number, kind: 'bus_stop' | 'light' | 'arrival' = 'bus_stop') => ({
    start: T0 + a * s,
    end: T0 + b * s,
    kind,
    engineOn: true,
  })
  const tt = { ...trip(0, T0, T0 + 1000 * s, 5000), fuelStartPct: 50, fuelEndPct: 48 }
  const truth = truthOf({
    trips: [tt],
    // In the trip: a 40 s stop, a 90 s stop, a 10 s dwell; after it, 6 min idling at the terminal.
    stops: [stop(100, 140), stop(300, 390), stop(500, 510, 'light'), stop(1000, 1360, 'arrival')],
  })
  const score = (name: string, a: number, b: number): TimedOutput =>
    out('score', T0 + b * s, { name, value: b - a, factors: { start_ts: T0 + a * s, end_ts: T0 + b * s } })
  const outputs = [
    { ...tripOut(T0, T0 + 1000 * s, 5, T0 + 1001 * s) },
    // Stops: the 90 s one found (3 s long), a 30 s stop over the 10 s dwell (extra), the 40 s one missed.
    score('stop', 299, 392),
    score('stop', 495, 525),
    // Idle: the 90 s stand and the terminal; one while driving (extra).
    score('idle', 300, 391),
    score('idle', 1000, 1362),
    score('idle', 600, 700),
    // Idling: the terminal's 6 min, closed.
    alert('idling', 'open', T0 + 1000 * s, T0 + 1300 * s),
    alert('idling', 'close', T0 + 1000 * s, T0 + 1362 * s, {}, T0 + 1362 * s),
  ]
  const trip0 = outputs[0] as TimedOutput
  ;(trip0.output.body as { factors: Record<string, number> }).factors.idle_s = 150
  ;(trip0.output.body as { factors: Record<string, number> }).factors.fuel_used_pct = 2.5
  const st = scoreFleet([{ vin: 'S', horizonMs: 0, truth, outputs }], [], new Set()).stops
  t.same(st.stop.byLength, [
    { fromS: 30, truth: 1, found: 0 },
    { fromS: 60, truth: 1, found: 1 },
  ])
  t.same([st.stop.reported, st.stop.extra], [2, 1], 'a stop over a 10 s dwell is extra')
  t.same([st.stop.startErrS.worst, st.stop.durationErrS.worst], [-1, 3])
  // The 90 s stand is in the 60-120 s bucket, the terminal's 6 min in the >= 120 s one.
  t.same(st.idle.byLength, [
    { fromS: 60, truth: 1, found: 1 },
    { fromS: 120, truth: 1, found: 1 },
  ])
  t.same([st.idle.reported, st.idle.extra], [3, 1], 'an idle while driving is extra')
  t.same(st.idlingAlert.byLength, [
    { fromS: 300, truth: 0, found: 0 },
    { fromS: 360, truth: 1, found: 1 },
  ])
  t.equal(st.idlingAlert.durationErrS.worst, 2, 'the alert spans open to close')
  // True idle inside the trip: 40 + 90 + 10 = 140 s; reported 150 s. Fuel used: 2 points, reported 2.5.
  t.equal(st.tripIdleErrS.worst, 10)
  t.equal(st.tripFuelErrPts.worst, 0.5)
  t.equal(st.tripFuelErrPct.worst, 25)
})
