/**
 * A fleet day on real road geometry, with its ground truth: the independent input of the fleet evaluation
 * (issue 22). Buses drive chains of scheduled trips of real MTA bus blocks (GTFS shapes, stops and departure
 * times from test/fixtures/gtfs-nyc-bus.json, see bench/eval/gtfs-extract.ts) with a kinematic speed profile,
 * and an on-board unit reports what it sees every `rateS` seconds: GPS with noise, jumps and dropouts, OBD-2
 * values, fuel with sensor noise, ignition. The truth (trips, distances, fence crossings, stops, idling, fuel
 * events) is computed on the true motion, never on the readings.
 *
 * Independence: this file and its siblings under bench/eval/ were written without reading the road profile's
 * code or tests, and share no constants with it; every threshold here is the evaluation's own (see
 * bench/eval/fleet-README.md).
 *
 * Determinism: every random draw comes from a seeded generator split per vehicle and per concern, so vehicle i
 * drives the same day whatever the fleet size, and the true motion is the same at every reading rate (only the
 * sampling and the noise realisation change with `rateS`).
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Reading } from '../../actors/types.js'
import type { GtfsFixture, FixtureTrip } from './gtfs-extract.js'
import { haversineM, offsetM, LocalPlane, Polyline, fenceDepthM, bearingDeg } from './geo.js'
import type { Fence, LatLon } from './geo.js'

export type { Fence, LatLon } from './geo.js'

/** Simulation step of the true motion (ms): every time in the scenario lies on this grid. */
export const STEP_MS = 500
const DT = STEP_MS / 1000

export interface ScenarioOptions {
  /** Number of vehicles (each drives one chain of the fixture; beyond the fixture's chains they repeat, shifted). */
  vehicles?: number
  /** Seconds between two readings of a unit, 1..10. */
  rateS?: number
  seed?: number
  /** Trips per vehicle (1..5; the fixture's chains hold 3 to 5). */
  tripsPerVehicle?: number
  /** The fleet's low-fuel policy (percent of the tank): true crossings are computed against it. */
  lowFuelPct?: number
  /** Send `hdop` and `sats` with each fix. */
  hdop?: boolean
  /** Send an `ignition` boolean with each reading (an AVL unit's digital input). */
  ignition?: boolean
  fixture?: GtfsFixture
}

export interface Period {
  start: number
  end: number
}

export interface TrueTrip {
  /** Index of the trip in the vehicle's day. */
  index: number
  gtfsTrip: string
  route: string
  shape: string
  ignitionOn: number
  /** First motion. */
  start: number
  /** Arrival at the last stop (speed 0 for good). */
  end: number
  ignitionOff: number
  /** True distance driven (m): the length of the driven polyline (terminal connector + GTFS shape). */
  distanceM: number
  shapeLengthM: number
  connectorM: number
  /** True fuel level (%) at the first motion and at the arrival: the trip's fuel used is their difference
   *  (refuels and drops happen only while the ignition is off). */
  fuelStartPct?: number
  fuelEndPct?: number
}

export interface TrueFenceEvent {
  fence: string
  kind: 'enter' | 'exit'
  t: number
  /** True when the path grazes the boundary by less than `AMBIGUOUS_DEPTH_M` in the episode this event starts
   *  or ends: neither reporting nor missing it is scored. */
  ambiguous: boolean
  /** True when no reported fix (jumps excluded) during the episode this event starts or ends lies on that
   *  episode's side of the edge (a graze crossed during a dropout, shorter than the reading interval, or hidden
   *  by GPS error): no tracker could see it, so it is not scored. */
  unobserved: boolean
  /** Informational, not part of the truth: how far beyond the edge the reported fixes (jumps excluded) reach
   *  on the side of the episode(s) this event starts or ends, the smaller of the two (m; absent for the day's
   *  last episode of a fence). Under ~3.5 m of GPS error, an episode whose fixes reach under 1 m beyond the edge
   *  looks the same as a vehicle passing that close on the other side. */
  fixDepthM?: number
}

export interface StopPeriod extends Period {
  kind: 'bus_stop' | 'light' | 'hold' | 'warmup' | 'arrival'
  engineOn: boolean
}

export interface FuelEvent {
  kind: 'refuel' | 'fuel_drop'
  /** The window in which it happened (during ignition off: from the off reading to the next on reading). */
  start: number
  end: number
  /** Level before and after (true fuel, %). */
  fromPct: number
  toPct: number
}

export interface VehicleTruth {
  trips: TrueTrip[]
  odometerM: number
  fenceEvents: TrueFenceEvent[]
  /** Fences the vehicle is inside at its first fix of the day (an `enter` there is optional). */
  initiallyInside: string[]
  stops: StopPeriod[]
  lowFuelCrossings: Array<{ t: number; levelPct: number }>
  fuelEvents: FuelEvent[]
  dtcs: Array<{ code: string; t: number }>
  overheats: Array<Period & { peakC: number }>
  /** Ts of the last reading of the day: the unit is quiet afterwards. */
  quietAt: number
}

export interface InjectedFaults {
  jumps: Array<{ t: number; distanceM: number; afterDropout: boolean }>
  dropouts: Array<Period & { kind: 'gps' | 'link' }>
}

export interface VehicleTrace {
  vin: string
  chain: string
  readings: Array<{ entity: string; reading: Reading }>
  /** True position of each reading ([lat, lon] interleaved, aligned with `readings`): to score positions. */
  truePos: Float64Array
  truth: VehicleTruth
  faults: InjectedFaults
}

export interface FleetScenario {
  options: Required<Omit<ScenarioOptions, 'fixture'>>
  fences: Fence[]
  vehicles: VehicleTrace[]
}

// ---------- deterministic randomness ----------

/** mulberry32: small, fast, good enough for simulation; seeded per vehicle and concern. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function mix(...xs: number[]): number {
  let h = 2166136261
  for (const x of xs) {
    h ^= x >>> 0
    h = Math.imul(h, 16777619)
    h ^= h >>> 13
  }
  return h >>> 0
}

const uni = (r: () => number, lo: number, hi: number): number => lo + (hi - lo) * r()
function gauss(r: () => number): number {
  const u = Math.max(r(), 1e-12)
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r())
}

// ---------- VINs ----------

const VIN_CHARS = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789'
const VIN_VALUES: Record<string, number> = {
  A: 1,
  B: 2,
  C: 3,
  D: 4,
  E: 5,
  F: 6,
  G: 7,
  H: 8,
  J: 1,
  K: 2,
  L: 3,
  M: 4,
  N: 5,
  P: 7,
  R: 9,
  S: 2,
  T: 3,
  U: 4,
  V: 5,
  W: 6,
  X: 7,
  Y: 8,
  Z: 9,
}
const VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]

/** ISO 3779 / FMVSS 115 check digit (position 9) of a 17-character VIN. */
export function vinCheckDigit(vin: string): string {
  let sum = 0
  for (let i = 0; i < 17; i++) {
    const c = vin[i] as string
    const v = /[0-9]/.test(c) ? Number(c) : (VIN_VALUES[c] ?? 0)
    sum += v * (VIN_WEIGHTS[i] as number)
  }
  const d = sum % 11
  return d === 10 ? 'X' : String(d)
}

function makeVin(r: () => number, index: number): string {
  // WMI 5FY (a US transit bus maker's prefix shape), model/line chars random, serial from the index.
  let s = '5FY'
  for (let i = 0; i < 5; i++) s += VIN_CHARS[Math.floor(r() * VIN_CHARS.length)]
  s += '0' + 'R' + 'A' + String(100_000 + index).slice(-6)
  return s.slice(0, 8) + vinCheckDigit(s) + s.slice(9)
}

// ---------- the fixture ----------

let cachedFixture: GtfsFixture | undefined
/** The GTFS fixture shipped in test/fixtures (found from the source tree or from dist/). */
export function loadFixture(): GtfsFixture {
  if (cachedFixture) return cachedFixture
  const here = path.dirname(fileURLToPath(import.meta.url))
  for (const up of ['../..', '../../..']) {
    const p = path.resolve(here, up, 'test/fixtures/gtfs-nyc-bus.json')
    if (fs.existsSync(p)) return (cachedFixture = JSON.parse(fs.readFileSync(p, 'utf8')) as GtfsFixture)
  }
  throw new Error('test/fixtures/gtfs-nyc-bus.json not found')
}

// ---------- constants of the evaluation (its own; none shared with the profile) ----------

/** A graze shallower than this is not a fact a GPS fleet system can be held to. */
export const AMBIGUOUS_DEPTH_M = 1.0
/** Service day: Tuesday 29 September 2026, midnight in New York (EDT, UTC-4). */
const SERVICE_DAY_MS = Date.UTC(2026, 8, 29, 4, 0, 0)
const TANK_L = 400
const L_PER_KM = 0.55
const L_PER_IDLE_H = 3.0
/** GPS error: a slow wander (Ornstein-Uhlenbeck, per axis) smoothed by the receiver's own filter, plus a
 *  little white noise: a few metres off, but moving smoothly, as a standing receiver's fix does. */
const GPS_NOISE_M = 3
const GPS_NOISE_TAU_S = 30
const GPS_SMOOTH_TAU_S = 4
const GPS_WHITE_M = 0.3
const FUEL_ERR_PCT = 0.3
const FUEL_ERR_TAU_S = 120
const FUEL_SLOSH_PCT_PER_MS2 = 0.8
const FUEL_JITTER_PCT = 0.15
const JUMP_EVERY_S = 3600
const DROPOUT_EVERY_S = 2700

// ---------- one trip's true motion ----------

interface Constraint {
  s: number
  v: number
  dwellS?: number
  kind?: StopPeriod['kind']
}

interface Drive {
  line: Polyline
  /** Distance along the line and speed (m/s) at each step from motion start. */
  s: Float64Array
  v: Float64Array
  dwells: Array<{ fromStep: number; toStep: number; kind: StopPeriod['kind'] }>
}

function turnAt(line: Polyline, s: number): number {
  const a = line.at(Math.max(0, s - 12))
  const b = line.at(s)
  const c = line.at(Math.min(line.length, s + 12))
  if (haversineM(a, b) < 3 || haversineM(b, c) < 3) return 0
  let d = Math.abs(bearingDeg(b, c) - bearingDeg(a, b)) % 360
  if (d > 180) d = 360 - d
  return d
}

function simulateDrive(line: Polyline, stops: LatLon[], r: () => number, city: 'm' | 'si'): Drive {
  const cons: Constraint[] = []
  // Corners: a bus takes a right-angle street corner at walking-to-cycling pace.
  for (let i = 1; i + 1 < line.pts.length; i++) {
    const s = line.cum[i] as number
    const turn = turnAt(line, s)
    const v = turn > 60 ? 4 : turn > 30 ? 6.5 : turn > 15 ? 10 : Infinity
    if (v < Infinity) cons.push({ s, v })
  }
  // Bus stops: GTFS stops projected forward along the shape (first and last are the terminals).
  let from = 0
  for (let k = 1; k + 1 < stops.length; k++) {
    const s = line.project(stops[k] as LatLon, from, from + 3000)
    from = s
    if (s < 20 || s > line.length - 20) continue
    if (r() < 0.75) {
      // Now and then the bus holds at a timepoint stop, engine running: still the same trip.
      const hold = r() < 0.02
      cons.push({ s, v: 0, dwellS: hold ? uni(r, 90, 240) : uni(r, 8, 35), kind: hold ? 'hold' : 'bus_stop' })
    }
  }
  // Traffic lights: red about a third of the time, every block or two.
  for (let s = uni(r, 100, 300); s < line.length - 50; s += uni(r, 150, 400)) {
    if (r() < (city === 'm' ? 0.35 : 0.2)) cons.push({ s, v: 0, dwellS: uni(r, 10, 60), kind: 'light' })
  }
  cons.push({ s: line.length, v: 0, dwellS: 0, kind: 'arrival' })
  cons.sort((a, b) => a.s - b.s)
  const stopsOnly = cons.filter((c) => c.v === 0)
  const accel = uni(r, 0.8, 1.2)
  const brake = uni(r, 1.0, 1.4)
  const cruiseLo = city === 'm' ? 20 : 25
  const cruiseHi = city === 'm' ? 40 : 50
  let cruise = uni(r, cruiseLo, cruiseHi) / 3.6
  const S: number[] = [0]
  const V: number[] = [0]
  const dwells: Drive['dwells'] = []
  let s = 0
  let v = 0
  let next = 0
  let cur = 0
  for (let guard = 0; guard < 2_000_000; guard++) {
    const stop = stopsOnly[next] as Constraint
    let vt = cruise
    while (cur < cons.length && (cons[cur] as Constraint).s <= s) cur++
    for (let j = cur; j < cons.length && (cons[j] as Constraint).s - s < 250; j++) {
      const c = cons[j] as Constraint
      vt = Math.min(vt, Math.sqrt(c.v * c.v + 2 * brake * Math.max(0, c.s - s - 1)))
      if (c.v === 0) break
    }
    if (v < vt) v = Math.min(vt, v + accel * DT)
    else v = Math.max(vt, v - 2.5 * DT)
    if (v < 0.8) v = 0.8 // creep the last metres to the stop line
    if (s + v * DT >= stop.s) {
      s = stop.s
      v = 0
      S.push(s)
      V.push(0)
      next++
      if (next >= stopsOnly.length) break
      const steps = Math.round((stop.dwellS ?? 0) / DT)
      dwells.push({ fromStep: S.length - 1, toStep: S.length - 1 + steps, kind: stop.kind ?? 'light' })
      for (let k = 0; k < steps; k++) {
        S.push(s)
        V.push(0)
      }
      // A new section between stops: traffic sets a new pace.
      cruise = uni(r, cruiseLo, cruiseHi) / 3.6
      continue
    }
    s += v * DT
    S.push(s)
    V.push(v)
  }
  return { line, s: Float64Array.from(S), v: Float64Array.from(V), dwells }
}

// ---------- fences ----------

function fencesForChain(fx: GtfsFixture, chainIdx: number, seed: number): Fence[] {
  const chain = fx.chains[chainIdx]
  if (!chain) return []
  const r = rng(mix(seed, 0xfe, chainIdx))
  const first = chain.trips[0] as FixtureTrip
  const line = new Polyline(fx.shapes[first.shape] as LatLon[])
  const out: Fence[] = []
  const id = (k: string): string => `c${chainIdx}-${k}`
  const normalAt = (s: number): { p: LatLon; n: [number, number] } => {
    const p = line.at(s)
    const h = (line.headingAt(s) * Math.PI) / 180
    // Unit normal to the right of travel in east/north.
    return { p, n: [Math.cos(h), -Math.sin(h)] }
  }
  const straightS = (): number => {
    for (let k = 0; k < 50; k++) {
      const s = uni(r, 0.15, 0.85) * line.length
      if (turnAt(line, s) < 5 && turnAt(line, s - 40) < 5 && turnAt(line, s + 40) < 5) return s
    }
    return line.length / 2
  }
  // Depot at the first trip's end terminal: the bus stands inside, a few metres from the edge.
  {
    const p = line.at(line.length)
    const rad = uni(r, 60, 150)
    const inside = uni(r, 4, 10)
    const a = uni(r, 0, 2 * Math.PI)
    const c = offsetM(p, Math.cos(a) * (rad - inside), Math.sin(a) * (rad - inside))
    out.push({
      id: id('depot'),
      kind: 'circle',
      center: c,
      radiusM: Math.round(rad),
      note: `bus stands ${inside.toFixed(1)} m inside the edge`,
    })
  }
  // A yard at the start terminal the bus stands just outside of.
  {
    const p = line.at(0)
    const rad = uni(r, 60, 150)
    const outside = uni(r, 5, 10)
    const a = uni(r, 0, 2 * Math.PI)
    const c = offsetM(p, Math.cos(a) * (rad + outside), Math.sin(a) * (rad + outside))
    out.push({
      id: id('yard'),
      kind: 'circle',
      center: c,
      radiusM: Math.round(rad),
      note: `bus stands ${outside.toFixed(1)} m outside the edge`,
    })
  }
  // A circle the road grazes from inside (true enter and exit), and one it grazes from outside (no event).
  for (const inside of [true, false]) {
    const s = straightS()
    const { p, n } = normalAt(s)
    const rad = uni(r, 120, 300)
    const g = inside ? uni(r, 4, 8) : uni(r, 4, 10)
    const side = r() < 0.5 ? 1 : -1
    const d = inside ? rad - g : rad + g
    const c = offsetM(p, n[0] * d * side, n[1] * d * side)
    out.push({
      id: id(inside ? 'graze-in' : 'graze-out'),
      kind: 'circle',
      center: c,
      radiusM: Math.round(rad),
      note: inside ? `road ${g.toFixed(1)} m inside the edge` : `road ${g.toFixed(1)} m outside the edge`,
    })
  }
  // A block polygon the route crosses, and a park whose fence runs along the road (grazed from outside).
  {
    const s = straightS()
    const { p } = normalAt(s)
    const h = (line.headingAt(s) * Math.PI) / 180
    const plane = new LocalPlane(p)
    const along: [number, number] = [Math.sin(h), Math.cos(h)]
    const across: [number, number] = [Math.cos(h), -Math.sin(h)]
    const L = uni(r, 100, 200)
    const W = uni(r, 60, 120)
    const q = (a: number, b: number): LatLon =>
      plane.toLatLon(along[0] * a + across[0] * b, along[1] * a + across[1] * b)
    // Slightly skewed quadrilateral: a city block, not an axis-aligned box.
    out.push({
      id: id('block'),
      kind: 'polygon',
      ring: [q(-L, -W), q(L, -W * 0.8), q(L * 1.1, W), q(-L * 0.9, W * 1.1)],
      note: 'route crosses it',
    })
    const s2 = straightS()
    const np = normalAt(s2)
    const h2 = (line.headingAt(s2) * Math.PI) / 180
    const plane2 = new LocalPlane(np.p)
    const al2: [number, number] = [Math.sin(h2), Math.cos(h2)]
    const ac2: [number, number] = [Math.cos(h2), -Math.sin(h2)]
    const off = uni(r, 5, 9)
    const side = r() < 0.5 ? 1 : -1
    const q2 = (a: number, b: number): LatLon =>
      plane2.toLatLon(al2[0] * a + ac2[0] * b * side, al2[1] * a + ac2[1] * b * side)
    const len = uni(r, 30, 45)
    out.push({
      id: id('park'),
      kind: 'polygon',
      ring: [q2(-len, off), q2(len, off), q2(len, off + 120), q2(-len, off + 120)],
      note: `edge ${off.toFixed(1)} m beside the road`,
    })
  }
  return out
}

/** Depth function of one fence for the per-step truth: a flat-plane estimate, exact (haversine or polygon
 *  distance) within 5 m of the edge, where the sign decides an event. */
function fastDepth(f: Fence): (p: LatLon) => number {
  const plane = new LocalPlane(f.kind === 'circle' ? f.center : (f.ring[0] as LatLon))
  if (f.kind === 'circle') {
    return (p) => {
      const [x, y] = plane.toXY(p)
      const d = Math.hypot(x, y) - f.radiusM
      return Math.abs(d) < 5 ? fenceDepthM(f, p) : d
    }
  }
  const xy = f.ring.map((q) => plane.toXY(q))
  let reach = 0
  for (const [x, y] of xy) reach = Math.max(reach, Math.hypot(x, y))
  return (p) => {
    const [x, y] = plane.toXY(p)
    const r0 = Math.hypot(x, y)
    return r0 > reach + 50 ? r0 - reach : fenceDepthM(f, p)
  }
}

/** Marks the events bounding an inside or outside episode that no reported fix shows (see TrueFenceEvent). */
function markUnobserved(
  events: TrueFenceEvent[],
  fences: Fence[],
  readings: VehicleTrace['readings'],
  jumps: Set<number>,
): void {
  const fixes = readings
    .filter((r) => typeof r.reading.fields.lat === 'number' && !jumps.has(r.reading.ts))
    .map((r) => ({ ts: r.reading.ts, pos: [r.reading.fields.lat as number, r.reading.fields.lon as number] as LatLon }))
  const firstAfter = (a: number): number => {
    let lo = 0
    let hi = fixes.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((fixes[mid] as { ts: number }).ts <= a) lo = mid + 1
      else hi = mid
    }
    return lo
  }
  const byId = new Map(fences.map((f) => [f.id, f]))
  const byFence = new Map<string, TrueFenceEvent[]>()
  for (const e of events) {
    let a = byFence.get(e.fence)
    if (!a) byFence.set(e.fence, (a = []))
    a.push(e)
  }
  for (const [id, evs] of byFence) {
    const f = byId.get(id) as Fence
    evs.sort((a, b) => a.t - b.t)
    for (let i = 0; i + 1 < evs.length; i++) {
      const a = evs[i] as TrueFenceEvent
      const b = evs[i + 1] as TrueFenceEvent
      const inside = a.kind === 'enter'
      let seen = false
      let deepest = -Infinity
      for (let k = firstAfter(a.t); k < fixes.length && (fixes[k] as { ts: number }).ts < b.t; k++) {
        const d = fenceDepthM(f, (fixes[k] as { pos: LatLon }).pos)
        if (d <= 0 === inside) seen = true
        deepest = Math.max(deepest, inside ? -d : d)
      }
      for (const e of [a, b]) e.fixDepthM = Math.min(e.fixDepthM ?? Infinity, deepest)
      if (!seen) {
        a.unobserved = true
        b.unobserved = true
      }
    }
  }
}

// ---------- one vehicle's day ----------

interface Phase {
  kind: 'off' | 'idle' | 'drive'
  start: number
  /** Exclusive end (ms), on the step grid. */
  end: number
  pos: LatLon
  heading: number
  drive?: Drive
  trip?: number
  idleKind?: 'warmup' | 'arrival'
}

const grid = (t: number): number => Math.round(t / STEP_MS) * STEP_MS

function buildPhases(
  fx: GtfsFixture,
  chainIdx: number,
  trips: FixtureTrip[],
  dayShiftMs: number,
  r: () => number,
  city: 'm' | 'si',
): { phases: Phase[]; truthTrips: TrueTrip[] } {
  const phases: Phase[] = []
  const truthTrips: TrueTrip[] = []
  let parked: LatLon | undefined
  let heading = 0
  let free = -Infinity
  for (let k = 0; k < trips.length; k++) {
    const tr = trips[k] as FixtureTrip
    const shape = fx.shapes[tr.shape] as LatLon[]
    const gap = parked ? haversineM(parked, shape[0] as LatLon) : 0
    // The bus pulls from where it parked to the trip's first stop: part of the driven path.
    const pts: LatLon[] = parked && gap > 0.5 ? [parked, ...shape] : shape
    const line = new Polyline(pts)
    const shapeLine = new Polyline(shape)
    const stopPts = tr.stops
      .map(([id]) => fx.stops[id])
      .filter((s): s is [number, number, string] => !!s)
      .map((s) => [s[0], s[1]] as LatLon)
    const drive = simulateDrive(line, stopPts, r, city)
    const warmup = grid(uni(r, 40, 240) * 1000)
    const scheduled = grid(SERVICE_DAY_MS + dayShiftMs + tr.dep * 1000)
    const start = Math.max(scheduled, free + warmup)
    // Ignition events fall on whole seconds like the periodic readings, so no two readings come < 1 s apart.
    const on = Math.floor((start - warmup) / 1000) * 1000
    const pos = line.at(0)
    const h0 = line.headingAt(0)
    if (k > 0) {
      const prev = phases[phases.length - 1] as Phase
      phases.push({ kind: 'off', start: prev.end, end: on, pos, heading })
    }
    phases.push({ kind: 'idle', start: on, end: start, pos, heading: h0, idleKind: 'warmup' })
    const driveEnd = start + (drive.s.length - 1) * STEP_MS
    phases.push({ kind: 'drive', start, end: driveEnd, pos, heading: h0, drive, trip: k })
    const endPos = line.at(line.length)
    heading = line.headingAt(line.length)
    const arrivalIdle = Math.ceil((driveEnd + uni(r, 15, 90) * 1000) / 1000) * 1000 - driveEnd
    phases.push({
      kind: 'idle',
      start: driveEnd,
      end: driveEnd + arrivalIdle,
      pos: endPos,
      heading,
      idleKind: 'arrival',
    })
    // Engine off for at least 4 min at the terminal (the city's idling rule is 3 min).
    free = driveEnd + arrivalIdle + 4 * 60_000
    truthTrips.push({
      index: k,
      gtfsTrip: tr.id,
      route: tr.route,
      shape: tr.shape,
      ignitionOn: on,
      start,
      end: driveEnd,
      ignitionOff: driveEnd + arrivalIdle,
      distanceM: line.length,
      shapeLengthM: shapeLine.length,
      connectorM: line.length - shapeLine.length,
    })
    parked = endPos
  }
  void chainIdx
  return { phases, truthTrips }
}

/** Builds the scenario: fences, readings and truth for every vehicle. */
export function buildScenario(opts: ScenarioOptions = {}): FleetScenario {
  const fx = opts.fixture ?? loadFixture()
  const options = {
    vehicles: opts.vehicles ?? 36,
    rateS: opts.rateS ?? 5,
    seed: opts.seed ?? 22,
    tripsPerVehicle: opts.tripsPerVehicle ?? 4,
    lowFuelPct: opts.lowFuelPct ?? 10,
    hdop: opts.hdop ?? true,
    ignition: opts.ignition ?? true,
  }
  if (!Number.isInteger(options.rateS) || options.rateS < 1 || options.rateS > 10)
    throw new RangeError(`rateS must be an integer 1..10, got ${options.rateS}`)
  if (!Number.isInteger(options.vehicles) || options.vehicles < 1)
    throw new RangeError(`vehicles must be a positive integer, got ${options.vehicles}`)
  const nChains = fx.chains.length
  const used = Math.min(nChains, options.vehicles)
  // Chains are interleaved across the feeds so a small fleet still has both cities.
  const order = [...fx.chains.keys()].sort((a, b) => mix(options.seed, a) - mix(options.seed, b))
  const fences: Fence[] = []
  for (let i = 0; i < used; i++) fences.push(...fencesForChain(fx, order[i] as number, options.seed))
  const vehicles: VehicleTrace[] = []
  for (let i = 0; i < options.vehicles; i++) {
    const chainIdx = order[i % nChains] as number
    // Beyond the fixture's chains, a second bus runs the same block 20 minutes later.
    const shift = Math.floor(i / nChains) * 20 * 60_000
    vehicles.push(buildVehicle(fx, i, chainIdx, shift, fences, options))
  }
  return { options, fences, vehicles }
}

function buildVehicle(
  fx: GtfsFixture,
  index: number,
  chainIdx: number,
  shiftMs: number,
  fences: Fence[],
  o: FleetScenario['options'],
): VehicleTrace {
  const chain = fx.chains[chainIdx] as GtfsFixture['chains'][number]
  const rMotion = rng(mix(o.seed, 1, index))
  const rEvents = rng(mix(o.seed, 2, index))
  const rNoise = rng(mix(o.seed, 3, index, o.rateS))
  const vin = makeVin(rng(mix(o.seed, 4, index)), index)
  const city = chain.feed === 'bus_si' ? 'si' : 'm'
  const trips = chain.trips.slice(0, Math.max(1, Math.min(5, o.tripsPerVehicle)))
  const { phases, truthTrips } = buildPhases(fx, chainIdx, trips, shiftMs, rMotion, city)
  const dayStart = (phases[0] as Phase).start
  const dayEnd = (phases[phases.length - 1] as Phase).end

  // --- events drawn in continuous time, independent of the reading rate ---
  const onPeriods = phases.filter((p) => p.kind !== 'off')
  const drivePhases = phases.filter((p) => p.kind === 'drive')
  const driveMs = drivePhases.reduce((a, p) => a + p.end - p.start, 0)
  const onMs = onPeriods.reduce((a, p) => a + p.end - p.start, 0)
  const pickTime = (within: Phase[], totalMs: number, marginMs = 0): number => {
    let x = rEvents() * totalMs
    for (const p of within) {
      const len = p.end - p.start
      if (x < len) return grid(Math.min(p.end - marginMs, Math.max(p.start + marginMs, p.start + x)))
      x -= len
    }
    return (within[0] as Phase).start
  }
  const dropouts: InjectedFaults['dropouts'] = []
  const nDrop = Math.max(1, Math.round(driveMs / 1000 / DROPOUT_EVERY_S))
  for (let k = 0; k < nDrop; k++) {
    const start = pickTime(drivePhases, driveMs, 150_000)
    const end = start + grid(uni(rEvents, 30, 120) * 1000)
    if (dropouts.some((d) => start < d.end + 60_000 && end > d.start - 60_000)) continue
    dropouts.push({ start, end, kind: rEvents() < 0.5 ? 'gps' : 'link' })
  }
  dropouts.sort((a, b) => a.start - b.start)
  const jumpAfter = new Set<number>()
  dropouts.forEach((_, k) => {
    if (rEvents() < 0.4) jumpAfter.add(k)
  })
  const jumpTimes: number[] = []
  const nJump = Math.max(1, Math.round(onMs / 1000 / JUMP_EVERY_S))
  for (let k = 0; k < nJump; k++) jumpTimes.push(pickTime(onPeriods, onMs, 30_000))
  jumpTimes.sort((a, b) => a - b)

  // Fuel: a fifth of the fleet starts the day low and crosses the fleet's threshold during it.
  const lowStart = rEvents() < 0.22
  let fuelPct = lowStart ? uni(rEvents, o.lowFuelPct + 1.2, o.lowFuelPct + 3.5) : uni(rEvents, 35, 90)
  // Decided at each engine-off stop, in day order: a low bus refuels once it has crossed the threshold; others
  // now and then top up, and a few are siphoned while parked (never down to the low-fuel threshold).
  const fuelAt = (): { kind: FuelEvent['kind']; deltaPct: number } | undefined => {
    const draw = rEvents()
    const delta = uni(rEvents, 0, 1)
    if (lowStart)
      return truth.lowFuelCrossings.length > 0 && draw < 0.7 ? { kind: 'refuel', deltaPct: 40 + 30 * delta } : undefined
    if (draw < 0.06) return { kind: 'refuel', deltaPct: 20 + 30 * delta }
    if (draw > 0.88 && fuelPct - 20 > o.lowFuelPct + 5) return { kind: 'fuel_drop', deltaPct: -(8 + 12 * delta) }
    return undefined
  }
  const dtcAt = rEvents() < 0.2 ? pickTime(drivePhases, driveMs) : undefined
  const dtcCode = ['P0301', 'P0420', 'P0128', 'P0171', 'P0700'][Math.floor(rEvents() * 5)] as string
  let overheat: (Period & { peakC: number }) | undefined
  if (rEvents() < 0.18) {
    const start = pickTime(drivePhases, driveMs, 300_000)
    overheat = { start, end: start + grid(uni(rEvents, 90, 240) * 1000), peakC: uni(rEvents, 115, 122) }
  }
  const ambient = uni(rEvents, 14, 24)

  // --- truth accumulators ---
  const truth: VehicleTruth = {
    trips: truthTrips,
    odometerM: truthTrips.reduce((a, t) => a + t.distanceM, 0),
    fenceEvents: [],
    initiallyInside: [],
    stops: [],
    lowFuelCrossings: [],
    fuelEvents: [],
    dtcs: dtcAt !== undefined ? [{ code: dtcCode, t: dtcAt }] : [],
    overheats: overheat ? [overheat] : [],
    quietAt: 0,
  }
  const faults: InjectedFaults = { jumps: [], dropouts }
  // Fences anywhere near this vehicle's day (others never change state).
  const allPts = drivePhases.flatMap((p) => (p.drive as Drive).line.pts)
  const near = fences.filter((f) => {
    const c = f.kind === 'circle' ? f.center : (f.ring[0] as LatLon)
    const reach = f.kind === 'circle' ? f.radiusM + 300 : 1500
    return allPts.some((q) => haversineM(c, q) < reach)
  })
  const fenceState = near.map((f) => ({
    f,
    fast: fastDepth(f),
    depth: fenceDepthM(f, (phases[0] as Phase).pos),
    extreme: 0,
    lastEvent: undefined as TrueFenceEvent | undefined,
  }))
  for (const fs0 of fenceState) {
    fs0.extreme = fs0.depth
    if (fs0.depth <= 0) truth.initiallyInside.push(fs0.f.id)
  }

  // --- readings ---
  const readings: VehicleTrace['readings'] = []
  const truePos: number[] = []
  // Periodic readings on whole seconds, the phase differing per unit; ignition on/off readings come on the event.
  const origin = SERVICE_DAY_MS + Math.floor(rNoise() * o.rateS) * 1000
  const rateMs = o.rateS * 1000
  let nx = 0
  let ny = 0
  let sx = 0
  let sy = 0
  let fuelErr = 0
  let lastNoiseT = dayStart
  let coolant = ambient
  let lastHeading = (phases[0] as Phase).heading
  let rid = 0
  let nextJump = 0
  let pendingJumpAfterDrop = -1
  let wasDropped = false
  let prevV = 0
  let lowArmed = fuelPct >= o.lowFuelPct
  let lastEmitT = -Infinity

  const emit = (
    t: number,
    pos: LatLon,
    vMs: number,
    heading: number,
    accel: number,
    engineOn: boolean,
    ignition: boolean,
  ): void => {
    const drop = dropouts.findIndex((d) => t >= d.start && t < d.end)
    const dropKind = drop >= 0 ? (dropouts[drop] as InjectedFaults['dropouts'][number]).kind : undefined
    // Correlated GPS error (multipath, atmosphere) plus white receiver noise.
    const dtS = (t - lastNoiseT) / 1000
    const phi = Math.exp(-dtS / GPS_NOISE_TAU_S)
    const k = GPS_NOISE_M * Math.sqrt(1 - phi * phi)
    nx = phi * nx + k * gauss(rNoise)
    ny = phi * ny + k * gauss(rNoise)
    const lp = 1 - Math.exp(-dtS / GPS_SMOOTH_TAU_S)
    sx += (nx - sx) * lp
    sy += (ny - sy) * lp
    lastNoiseT = t
    if (dropKind === 'link') {
      if (!wasDropped) pendingJumpAfterDrop = jumpAfter.has(drop) ? drop : -1
      wasDropped = true
      return
    }
    const fields: Record<string, number | boolean | string> = {}
    const kmh = vMs * 3.6
    if (dropKind !== 'gps') {
      let e = sx + GPS_WHITE_M * gauss(rNoise)
      let n = sy + GPS_WHITE_M * gauss(rNoise)
      let jumped = false
      const afterDrop = wasDropped && pendingJumpAfterDrop >= 0
      while (nextJump < jumpTimes.length && (jumpTimes[nextJump] as number) <= t) {
        nextJump++
        jumped = true
      }
      if (afterDrop) jumped = true
      if (jumped) {
        const dist = uni(rNoise, 200, 900)
        const a = uni(rNoise, 0, 2 * Math.PI)
        e += Math.cos(a) * dist
        n += Math.sin(a) * dist
        faults.jumps.push({ t, distanceM: dist, afterDropout: afterDrop })
      }
      wasDropped = false
      pendingJumpAfterDrop = -1
      const fix = offsetM(pos, e, n)
      fields.lat = Number(fix[0].toFixed(7))
      fields.lon = Number(fix[1].toFixed(7))
      fields.speed = Number(
        Math.max(0, kmh > 0.5 ? kmh + 0.5 * gauss(rNoise) : Math.abs(0.6 * gauss(rNoise))).toFixed(1),
      )
      if (kmh > 3) lastHeading = heading
      fields.heading = Math.round((((lastHeading + 3 * gauss(rNoise)) % 360) + 360) % 360)
      if (o.hdop) {
        const bad = jumped && rNoise() < 0.5
        fields.hdop = Number((bad ? uni(rNoise, 2.5, 6) : 0.7 + Math.abs(0.3 * gauss(rNoise))).toFixed(1))
        fields.sats = bad ? 4 + Math.floor(rNoise() * 3) : 8 + Math.floor(rNoise() * 6)
      }
    } else if (!wasDropped) {
      pendingJumpAfterDrop = jumpAfter.has(drop) ? drop : -1
      wasDropped = true
    }
    fields.obd_speed = Math.round(kmh)
    const rpm = !engineOn
      ? 0
      : kmh < 0.5
        ? 650 + 40 * gauss(rNoise)
        : 750 + ((kmh * 45) % 900) + Math.max(0, accel) * 500 + 30 * gauss(rNoise)
    fields.rpm = Math.max(0, Math.round(rpm))
    fields.coolant_temp = Math.round(coolant + 0.4 * gauss(rNoise))
    // The OBD fuel level is the cluster's damped sender value: a slow error (temperature, slope), slosh under
    // acceleration and braking, a little jitter; the unit reports tenths of a percent.
    const fphi = Math.exp(-dtS / FUEL_ERR_TAU_S)
    fuelErr = fphi * fuelErr + FUEL_ERR_PCT * Math.sqrt(1 - fphi * fphi) * gauss(rNoise)
    fields.fuel_level = Number(
      Math.max(
        0,
        Math.min(100, fuelPct + fuelErr + FUEL_SLOSH_PCT_PER_MS2 * accel + FUEL_JITTER_PCT * gauss(rNoise)),
      ).toFixed(1),
    )
    fields.engine_load = engineOn
      ? Math.round(Math.max(0, Math.min(100, 18 + kmh * 0.6 + Math.max(0, accel) * 35 + 3 * gauss(rNoise))))
      : 0
    if (dtcAt !== undefined && t >= dtcAt) fields.dtc = dtcCode
    if (o.ignition) fields.ignition = ignition
    lastEmitT = t
    truePos.push(pos[0], pos[1])
    readings.push({ entity: vin, reading: { ts: t, fields, profile: 'road', rid: `${vin}:${++rid}` } })
  }

  const stepFences = (t: number, pos: LatLon): void => {
    for (const st of fenceState) {
      const d = st.fast(pos)
      if (d <= 0 !== st.depth <= 0) {
        // Crossing between the previous step and this one: linear in depth, on the step grid.
        const frac = st.depth / (st.depth - d)
        const ev: TrueFenceEvent = {
          fence: st.f.id,
          kind: d <= 0 ? 'enter' : 'exit',
          t: Math.round(t - STEP_MS + frac * STEP_MS),
          ambiguous: Math.abs(st.extreme) < AMBIGUOUS_DEPTH_M,
          unobserved: false,
        }
        if (ev.ambiguous && st.lastEvent) st.lastEvent.ambiguous = true
        truth.fenceEvents.push(ev)
        st.lastEvent = ev
        st.extreme = d
      } else if (Math.abs(d) > Math.abs(st.extreme)) st.extreme = d
      st.depth = d
    }
  }

  const consume = (t: number, vMs: number, engineOn: boolean): void => {
    const before = fuelPct
    fuelPct -= ((((vMs * DT) / 1000) * L_PER_KM + (engineOn ? (DT / 3600) * L_PER_IDLE_H : 0)) / TANK_L) * 100
    if (lowArmed && before >= o.lowFuelPct && fuelPct < o.lowFuelPct) {
      truth.lowFuelCrossings.push({ t, levelPct: fuelPct })
      lowArmed = false
    }
    const target = overheat && t >= overheat.start && t < overheat.end ? overheat.peakC + 2 : engineOn ? 90 : ambient
    const tau = target > 100 ? 40 : engineOn ? 300 : 1800
    coolant += (target - coolant) * (1 - Math.exp(-DT / tau))
  }

  for (let pi = 0; pi < phases.length; pi++) {
    const ph = phases[pi] as Phase
    if (ph.kind === 'off') {
      // Quiet: the unit sleeps. Coolant cools; fuel changes only by a refuel or a theft at the pump/yard.
      coolant = ambient + (coolant - ambient) * Math.exp(-(ph.end - ph.start) / 1000 / 1800)
      const plan = fuelAt()
      if (plan) {
        const from = fuelPct
        fuelPct = Math.min(98, Math.max(0, fuelPct + plan.deltaPct))
        truth.fuelEvents.push({ kind: plan.kind, start: ph.start, end: ph.end, fromPct: from, toPct: fuelPct })
        if (fuelPct >= o.lowFuelPct + 2) lowArmed = true
      }
      continue
    }
    const nSteps = Math.round((ph.end - ph.start) / STEP_MS)
    if (ph.kind === 'idle') {
      if (ph.end - ph.start > 0)
        truth.stops.push({ start: ph.start, end: ph.end, kind: ph.idleKind ?? 'warmup', engineOn: true })
      for (let k = 0; k <= nSteps; k++) {
        const t = ph.start + k * STEP_MS
        if (k > 0) consume(t, 0, true)
        const first = ph.idleKind === 'warmup' && k === 0
        const last = ph.idleKind === 'arrival' && k === nSteps
        if (k === nSteps && !last) break
        if (first || last || ((t - origin) % rateMs === 0 && t - lastEmitT >= 1000))
          emit(t, ph.pos, 0, ph.heading, 0, !last, !last)
        if (last) truth.quietAt = t
      }
      continue
    }
    const dr = ph.drive as Drive
    const tripTruth = ph.trip === undefined ? undefined : truth.trips[ph.trip]
    if (tripTruth) tripTruth.fuelStartPct = fuelPct
    for (const d of dr.dwells)
      truth.stops.push({
        start: ph.start + d.fromStep * STEP_MS,
        end: ph.start + d.toStep * STEP_MS,
        kind: d.kind,
        engineOn: true,
      })
    for (let k = 0; k <= nSteps; k++) {
      const t = ph.start + k * STEP_MS
      const s = dr.s[k] as number
      const v = dr.v[k] as number
      const pos = dr.line.at(s)
      if (k > 0) {
        consume(t, v, true)
        stepFences(t, pos)
      }
      const accel = (v - prevV) / DT
      prevV = v
      // The arrival instant itself belongs to the idle phase that follows.
      if (k < nSteps && (t - origin) % rateMs === 0 && t - lastEmitT >= 1000)
        emit(t, pos, v, dr.line.headingAt(s), accel, true, true)
    }
    if (tripTruth) tripTruth.fuelEndPct = fuelPct
    prevV = 0
  }
  truth.quietAt = readings[readings.length - 1]?.reading.ts ?? dayEnd
  markUnobserved(truth.fenceEvents, near, readings, new Set(faults.jumps.map((j) => j.t)))
  return { vin, chain: `${chain.feed}/${chain.block}`, readings, truePos: Float64Array.from(truePos), truth, faults }
}
