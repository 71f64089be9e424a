/**
 * Vehicle profile `road`: one actor per road vehicle of the multi-brand fleet (DOMAIN.md section 5).
 *
 * Reading fields (all optional per reading): GPS `lat`, `lon` (or `loc`), `speed` km/h, `heading` °, `hdop`,
 * `sats`; OBD-2 `obd_speed` km/h, `rpm`, `coolant_temp` °C, `fuel_level` %, `engine_load` %, `dtc`
 * (comma-separated trouble codes, e.g. "P0301,P0420", or "" for none); `ignition` (boolean or 0/1). Speed is the
 * GPS `speed`, else `obd_speed`. The engine is on when `ignition` says so, else when `rpm` > 0.
 *
 * On each reading (event time `ts`), docs/profiles.md `road` states the rules for users; in short:
 *  - staleness: processing-time timer `stale` (staleAfterMs) opens `unit_offline`; the next reading closes it.
 *  - late: a reading older than the last applied one is emitted as `late` and not applied to anything else.
 *  - GPS filter. A fix is used only when hdop <= maxHdop and sats >= minSatellites (when those are set and sent).
 *    It is plausible from the last accepted fix when its distance <= v·dt + gpsMarginM, with v = 1.3 × the
 *    highest speed the vehicle reported since that fix (or this reading's) + 3 m/s, capped by maxJumpKmh (no
 *    speed known: maxJumpKmh). A plausible fix is accepted, except the first fix after >= confirmGapMs without
 *    fixes that moved more than gpsMarginM or whose reading reports a speed above stationaryKmh: like an
 *    implausible fix it becomes a candidate, accepted only when
 *    the next fix is plausible from it (then both are accepted: the vehicle is there, so true fixes are never
 *    rejected for long after a bad one); otherwise it is a GPS jump and dropped (`gpsJumps`).
 *  - distance: by speed where the unit reports it densely (both readings of a pair have a speed and are <=
 *    speedIntegrateMaxMs apart: trapezoid of the two speeds, zero when both are <= stationaryKmh), else by GPS:
 *    the chord from a distance anchor to each accepted fix, for the part of the interval speed did not cover.
 *    The anchor stays put while the vehicle stands (speed <= stationaryKmh or unknown, and within
 *    stationaryRadiusM), so noise at stops and lights adds nothing. Why both: summing chords of noisy fixes
 *    inflates a distance by about σ²/step per step (+14 % at 1 s readings), speed integration does not; at 10 s
 *    steps the chord is the better measure and its noise bias is small.
 *  - trips: outside a trip, speed > tripStartKmh starts one. A trip ends (a) at the start of a stop once a
 *    reading comes >= tripStopMs after it, (b) at a reading with ignition off (at the start of the stop it ended,
 *    if any), (c) after a gap of >= tripStopMs in the readings, at the last reading before it, (d) on processing
 *    time: `trip_quiet` fires tripQuietMs after the last reading was handled, ending the trip at the start of its
 *    stop or at its last reading. So no trip stays open longer than tripQuietMs (+ one tick) after the unit goes
 *    quiet. A finished trip is ONE `score` output (name `trip`, key `trip:<start_ts>`, ts = end): a measurement,
 *    not a condition to act on, so it stays out of alert lists and notifications.
 *  - stops (speed <= tripStartKmh inside a trip, >= stopMinMs, the vehicle moving again after it): `score` `stop`;
 *    idle (engine on and standing: OBD speed 0, else speed <= stationaryKmh; >= idleMinMs): `score` `idle`;
 *    `idling` alert (info) after idleAlertMs, closed when the idle ends. Idle time, stops and fuel used are per
 *    trip factors.
 *  - positions: as before (trip_start, stop, sample every positionIntervalMs, trip_end), one per reading at most.
 *  - geofences: circles and polygons from the config (`geofences`) and from the reference data `geofences`
 *    (published by the gateway, actors/references.ts) assigned to this vehicle. The position is the accepted fix
 *    while moving, the mean of the stand's fixes while standing. Enter when it is inside for >= minDwellMs and
 *    more than geofenceEnterMarginM deep (or, with geofenceEnterConfirmMs, inside that long); exit once it is
 *    more than geofenceMarginM (or the fence's marginM) outside (hysteresis: noise at the edge does not flap) or,
 *    with geofenceExitConfirmMs, once it has been outside that long. For fixes 5 s or more apart the margins are
 *    geofenceEnterMarginSparseM and geofenceMarginSparseM (linear from 1 s). Both events are dated at the
 *    crossing interpolated between the fixes on either side (also across a dropout). A fence clipped between two
 *    close fixes outside it (segment > geofenceClipDepthM deep) is an enter and an exit. Alerts `geofence`
 *    (info) open/close, `score` `geofence_dwell` on exit.
 *    The version of the set applied is kept in the state (`gfVer`) and in each output's details.
 *  - fuel: the level is smoothed by the median of the readings of the last fuelSmoothMs (>= 3 readings), so one
 *    noisy reading neither raises nor restarts anything. low_fuel: the level of a Theil-Sen line through the 20 s
 *    means of the last fuelTrendMs, at the reading's time, less lowFuelSigmas robust spreads of the bins about it
 *    (a lower confidence bound: raised at or before the true crossing), < lowFuelPct for >= lowFuelMs since it
 *    crossed (fuelTrendMs 0: the smoothed level, from the first raw reading below); the window goes on across a
 *    gap in engine-on time when the level did not move; closes when the smoothed level is above lowFuelPct +
 *    hysteresis.
 *    refuel (`score`): smoothed level >= refuelPct above its minimum of the last fuelEventWindowMs, reported once
 *    it has stopped rising for fuelSettleMs or the vehicle moves. fuel_drop (alert, warning, opened and closed at
 *    once): smoothed level >= fuelDropPct below its maximum of the last fuelEventWindowMs.
 *  - DTC and engine_overheat: as before.
 * Alerts: output `alert`, key `<alertId>:<state>:<seq>`. alertId is `<kind>:<id>:<type>:<start>`, with the code /
 * geofence id before the start for per-code / per-fence alerts (`vehicle:V1:dtc:P0301:<start>`).
 */
import { defineActor } from '../../actor.js'
import * as alert from '../../alerts.js'
import type { ActorContext, FiredTimer, SnapshotCodec } from '../../actor.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import {
  compileShape,
  GEOFENCES_REF,
  haversineM,
  validateShape,
  type CompiledShape,
  type GeofenceSet,
  type GeofenceShape,
} from '../../geo.js'
import type { AlertBody, EntityRef, PositionBody, Reading, Severity } from '../../types.js'

export { haversineM } from '../../geo.js'

/**
 * A configured geofence: a circle `{id, lat, lon, radiusM}`, a polygon `{id, polygon: [[lat, lon], ...]}` (one
 * ring, the short form for configuration) or `{id, shape}` (a circle or a GeoJSON polygon with holes).
 */
export type Geofence =
  | { id: string; lat: number; lon: number; radiusM: number }
  | { id: string; shape: GeofenceShape }
  | { id: string; polygon: number[][] }

/** The shape of a configured geofence. */
function shapeOf(g: Geofence): GeofenceShape {
  if ('shape' in g) return g.shape
  if ('polygon' in g)
    return {
      type: 'polygon',
      coordinates: [Array.isArray(g.polygon) ? g.polygon.map((p) => [p[1] as number, p[0] as number]) : []],
    }
  return { type: 'circle', lat: g.lat, lon: g.lon, radiusM: g.radiusM }
}

export interface RoadConfig {
  /** Watermark lateness (readings are applied in arrival order; older ones are `late`). */
  allowedLatenessMs: number
  tripStartKmh: number
  tripStopMs: number
  /** Stop length that ends a trip while the engine is reported on (ignition / rpm). */
  tripStopEngineOnMs: number
  /** Processing time after the last reading at which an open trip is closed (unit quiet). */
  tripQuietMs: number
  /** Upper bound of any plausible speed between fixes. */
  maxJumpKmh: number
  /** GPS noise allowance added to every plausibility bound, and the radius within which a fix is "not moved". */
  gpsMarginM: number
  /** A fix after this long without fixes must be confirmed by the next one when it moved more than gpsMarginM. */
  confirmGapMs: number
  /** Fixes with hdop above this are ignored (0 = not checked). */
  maxHdop: number
  /** Fixes with fewer satellites are ignored (0 = not checked). */
  minSatellites: number
  /** Speed at or below which the vehicle stands (no distance, GPS anchor held). */
  stationaryKmh: number
  /** A standing vehicle's anchor moves only when a fix is farther than this. */
  stationaryRadiusM: number
  /** Readings with speed at most this far apart are integrated by speed rather than by GPS chord. */
  speedIntegrateMaxMs: number
  geofences: readonly Geofence[]
  /** Default exit hysteresis of geofences (m outside before an exit counts) for fixes 1 s apart. */
  geofenceMarginM: number
  /** The default exit hysteresis for fixes >= 5 s apart (linear in between); a fence's own marginM overrides both. */
  geofenceMarginSparseM: number
  /** Enter hysteresis of geofences (m inside before an enter counts) for fixes <= 1 s apart. */
  geofenceEnterMarginM: number
  /** The enter hysteresis for fixes >= 5 s apart (linear in between): fewer fixes, fewer noise dips. */
  geofenceEnterMarginSparseM: number
  /** An enter also counts once the position has been inside (even within the enter margin) for this long (0 = margin only). */
  geofenceEnterConfirmMs: number
  /** Default minimum time inside before an enter counts (0 = the first fix inside). */
  geofenceMinDwellMs: number
  /** An exit also counts once every fix has been outside (even within the margin) for this long (0 = margin only). */
  geofenceExitConfirmMs: number
  /** A segment between two fixes outside a fence that passes more than this deep inside is an enter and an exit (0 = off). */
  geofenceClipDepthM: number
  stopMinMs: number
  idleMinMs: number
  idleAlertMs: number
  overheatC: number
  overheatMs: number
  overheatHysteresis: number
  lowFuelPct: number
  lowFuelMs: number
  lowFuelHysteresis: number
  fuelSmoothMs: number
  /** Low fuel on the level of a robust trend line (Theil-Sen) over this much of the smoothed level (0 = the smoothed level itself). */
  fuelTrendMs: number
  /**
   * Low fuel is raised early by this many residual spreads of the trend line: on its level minus that many
   * robust standard deviations of the bins around it (a lower confidence bound), 0 = on the line's level.
   */
  lowFuelSigmas: number
  refuelPct: number
  fuelDropPct: number
  fuelEventWindowMs: number
  fuelSettleMs: number
  /** Tank capacity in litres, for litre factors (0 = unknown: percentages only). */
  fuelTankL: number
  staleAfterMs: number
  /** Event time between two sampled `position` outputs (trip starts, stops and ends are always emitted); 0 = every fix. */
  positionIntervalMs: number
}

export const ROAD_DEFAULTS: RoadConfig = Object.freeze({
  allowedLatenessMs: 0,
  tripStartKmh: 5,
  tripStopMs: 180_000,
  tripStopEngineOnMs: 900_000,
  tripQuietMs: 180_000,
  maxJumpKmh: 200,
  gpsMarginM: 40,
  confirmGapMs: 25_000,
  maxHdop: 0,
  minSatellites: 0,
  stationaryKmh: 3,
  stationaryRadiusM: 30,
  speedIntegrateMaxMs: 12_000,
  geofences: Object.freeze([]) as readonly Geofence[],
  geofenceMarginM: 5,
  geofenceMarginSparseM: 3,
  geofenceEnterMarginM: 1,
  geofenceEnterMarginSparseM: 0.7,
  geofenceEnterConfirmMs: 0,
  geofenceMinDwellMs: 0,
  geofenceExitConfirmMs: 0,
  geofenceClipDepthM: 10,
  stopMinMs: 30_000,
  idleMinMs: 60_000,
  idleAlertMs: 300_000,
  overheatC: 110,
  overheatMs: 30_000,
  overheatHysteresis: 5,
  lowFuelPct: 10,
  lowFuelMs: 30_000,
  lowFuelHysteresis: 3,
  fuelSmoothMs: 30_000,
  fuelTrendMs: 600_000,
  lowFuelSigmas: 0.75,
  refuelPct: 8,
  fuelDropPct: 5,
  fuelEventWindowMs: 600_000,
  fuelSettleMs: 60_000,
  fuelTankL: 0,
  staleAfterMs: 600_000,
  positionIntervalMs: 60_000,
})

export const STALE_TIMER = 'stale'
export const QUIET_TIMER = 'trip_quiet'
const DAY_MS = 86_400_000
/** Fuel samples kept for smoothing: bounds the state at 1 s readings and long windows. */
const FUEL_BUF_MAX = 32
/** Smoothed-level history for refuel/drop: one sample per this much event time. */
const FUEL_HIST_STEP_MS = 20_000

/** Checks a road config; throws ConfigError naming the setting. */
export function validateRoadConfig(c: RoadConfig): void {
  const nums = [
    'allowedLatenessMs',
    'tripStartKmh',
    'tripStopMs',
    'tripStopEngineOnMs',
    'tripQuietMs',
    'maxJumpKmh',
    'gpsMarginM',
    'confirmGapMs',
    'maxHdop',
    'minSatellites',
    'stationaryKmh',
    'stationaryRadiusM',
    'speedIntegrateMaxMs',
    'geofenceMarginM',
    'geofenceMarginSparseM',
    'geofenceEnterMarginM',
    'geofenceEnterMarginSparseM',
    'geofenceEnterConfirmMs',
    'geofenceMinDwellMs',
    'geofenceExitConfirmMs',
    'geofenceClipDepthM',
    'stopMinMs',
    'idleMinMs',
    'idleAlertMs',
    'overheatC',
    'overheatMs',
    'overheatHysteresis',
    'lowFuelPct',
    'lowFuelMs',
    'lowFuelHysteresis',
    'fuelSmoothMs',
    'fuelTrendMs',
    'lowFuelSigmas',
    'refuelPct',
    'fuelDropPct',
    'fuelEventWindowMs',
    'fuelSettleMs',
    'fuelTankL',
    'staleAfterMs',
    'positionIntervalMs',
  ] as const
  for (const k of nums) {
    const v = c[k]
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ConfigError(`road.${k}`, `must be a finite number >= 0, got ${String(v)}`)
    }
  }
  for (const k of [
    'maxJumpKmh',
    'staleAfterMs',
    'tripQuietMs',
    'refuelPct',
    'fuelDropPct',
    'fuelEventWindowMs',
  ] as const) {
    if (c[k] <= 0) throw new ConfigError(`road.${k}`, 'must be > 0')
  }
  if (!Array.isArray(c.geofences)) throw new ConfigError('road.geofences', 'must be an array')
  const ids = new Set<string>()
  c.geofences.forEach((g: Geofence, i: number) => {
    const at = `road.geofences[${i}]`
    if (!g || typeof g !== 'object')
      throw new ConfigError(at, 'must be an object {id, lat, lon, radiusM} or {id, shape}')
    if (typeof g.id !== 'string' || g.id === '' || g.id.includes(':'))
      throw new ConfigError(`${at}.id`, 'must be a non-empty string without ":"')
    if (ids.has(g.id)) throw new ConfigError(`${at}.id`, `duplicate geofence id ${g.id}`)
    ids.add(g.id)
    if ('polygon' in g && !Array.isArray(g.polygon))
      throw new ConfigError(`${at}.polygon`, 'must be an array of [lat, lon]')
    validateShape(shapeOf(g), 'shape' in g ? `${at}.shape` : 'polygon' in g ? `${at}.polygon` : at)
  })
}

/** A duration condition: `since` = event time the condition began (null = not met), `open` = alert start or null, value at open. */
type Cond = [since: number | null, open: number | null, value: number]

interface Trip {
  start: number
  km: number
  max: number
  stopSince: number | null
  /** Where the current stop began (the accepted fix then), for the `stop` output. */
  stopAt: [number, number] | null
  idleMs: number
  /** Idle counted since the current stop began (absent in older snapshots: 0): not the trip's when the trip
   *  ends at that stop's start, as it does after a stop of tripStopMs, an ignition off or the unit going quiet. */
  idleInStop?: number
  stops: number
  stopMs: number
  /** Smoothed fuel level when the trip started (first known in it), refuels during it (percentage points). */
  fuel0: number | null
  refuel: number
  /** The trip_start position is still owed (its fix was a candidate): the next accepted fix carries it. */
  owesStart: boolean
}

/**
 * Geofence state: [enter start or null, crossing time of a pending enter or null, crossing time of a pending exit
 * (every fix since has been outside) or null, event time and signed distance (m) of the last fix]. The last three
 * are missing in snapshots written before they existed (read as null).
 */
type FenceState = [
  entered: number | null,
  insideSince: number | null,
  outSince?: number | null,
  lastTs?: number | null,
  lastD?: number | null,
]

export interface RoadState {
  /** Event time of the last applied reading. */
  lastTs: number | null
  /** Last accepted fix: [ts, lat, lon] or null. */
  fix: [number, number, number] | null
  /** Stream sequence of the reading of `fix`. */
  fixSeq: number | null
  /** A fix awaiting confirmation by the next one: [ts, lat, lon, seq]. */
  cand: [number, number, number, number] | null
  /** Event time of the last fix received (accepted or not). */
  lastFixTs: number | null
  /** Highest speed (km/h) reported since the last accepted fix (null: none), for the plausibility bound. */
  vmax: number | null
  /** Distance anchor [ts, lat, lon] and the ms since it covered by speed integration. */
  anc: [number, number, number] | null
  cov: number
  /** Fixes of the current stand (the anchor's and the jitter since): [count, sum of lat, sum of lon], or null. */
  am: [number, number, number] | null
  /** Last reading with a speed: [ts, km/h]. */
  spd: [number, number] | null
  /** Event time and reading sequence of the last `position` output (null before the first). */
  posTs: number | null
  posSeq: number | null
  speed: number | null
  heading: number | null
  /** Last known engine state (null: never reported). */
  engine: boolean | null
  /** Current idle period: [since, idling alert open (1) or not (0)], or null. */
  idle: [number, number] | null
  trip: Trip | null
  /** Start of the UTC day of `dayKm`. */
  day: number | null
  dayKm: number
  odoKm: number
  /** Geofences by id. */
  gf: Record<string, FenceState>
  /** Version of the published geofence set last applied (null: none). */
  gfVer: number | null
  /** Open DTCs: code -> alert start. */
  dtc: Record<string, number>
  oh: Cond
  lf: Cond
  /** First raw fuel reading under lowFuelPct since the smoothed level was last at or above it. */
  lowSince: number | null
  /** Fuel readings of the smoothing window, flat [ts, level, ts, level, ...]. */
  fb: number[]
  /** Smoothed fuel levels of the event window, flat [ts, level, ...], one per FUEL_HIST_STEP_MS. */
  fh: number[]
  /** Fuel levels of the trend window (fuelTrendMs), flat [ts, level, ...]: the mean of each FUEL_HIST_STEP_MS bin. */
  ft: number[]
  /** The bin being filled: [sum of ts, sum of levels, readings, first ts], or null. */
  fbin: [number, number, number, number] | null
  /** The trend line fitted when the last bin closed: [ts, level at ts, slope per ms, robust spread of the bins
   *  around it (points)], or null (too few bins). */
  fline: [number, number, number, number] | null
  /** A refuel (+1) or drop (-1) in progress: [sign, start ts, level before, extreme level, ts of the extreme]. */
  fev: [number, number, number, number, number] | null
  /** Start of the open unit_offline alert, or null. */
  stale: number | null
  late: number
  jumps: number
  badFixes: number
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)

function emitAlert(ctx: ActorContext, ts: number, b: Omit<AlertBody, 'alertId'> & { sub?: string }): void {
  const { sub, ...rest } = b
  const body: AlertBody = { alertId: alert.alertId(ctx.entity, b.type, b.start, sub), ...rest }
  alert.emitAlert(ctx, ts, body)
}

/**
 * Advances a threshold-for-duration condition: opens once `over` has held for >= durMs of event time (start =
 * when it began), closes when `clear`. Returns the event and the alert start, or null.
 */
function stepCond(
  c: Cond,
  ts: number,
  v: number,
  over: boolean,
  clear: boolean,
  durMs: number,
): ['open' | 'close', number] | null {
  const open = c[1]
  if (open !== null) {
    if (clear) {
      c[0] = null
      c[1] = null
      return ['close', open]
    }
    return null
  }
  if (!over) {
    c[0] = null
    return null
  }
  if (c[0] === null) c[0] = ts
  if (ts - c[0] >= durMs) {
    c[1] = c[0]
    c[2] = v
    return ['open', c[0]]
  }
  return null
}

// ---- fuel ------------------------------------------------------------------------------------------------

/** Median of the buffered levels, or null with fewer than 3 (a lone reading after a gap is not trusted). */
function fuelSmoothed(s: RoadState): number | null {
  const n = s.fb.length / 2
  if (n < 3) return null
  const vals: number[] = []
  for (let i = 1; i < s.fb.length; i += 2) vals.push(s.fb[i] as number)
  vals.sort((a, b) => a - b)
  return n % 2 === 1 ? (vals[(n - 1) / 2] as number) : ((vals[n / 2 - 1] as number) + (vals[n / 2] as number)) / 2
}

function pushFuel(s: RoadState, ts: number, level: number, c: RoadConfig): void {
  s.fb.push(ts, level)
  let drop = 0
  while (
    drop < s.fb.length - 2 &&
    (ts - (s.fb[drop] as number) > c.fuelSmoothMs || s.fb.length - drop > FUEL_BUF_MAX * 2)
  )
    drop += 2
  if (drop > 0) s.fb.splice(0, drop)
}

function litres(pct: number, c: RoadConfig): Record<string, number> {
  return c.fuelTankL > 0 ? { litres: (pct / 100) * c.fuelTankL } : {}
}

/**
 * Adds a raw reading to the trend window: readings are averaged per FUEL_HIST_STEP_MS bin (mean time, mean level),
 * bins older than fuelTrendMs drop out, and a gap of more than TREND_GAP_MS restarts it.
 */
function pushTrend(s: RoadState, ts: number, raw: number, c: RoadConfig): void {
  // A gap: the unit was off (or its link was). Fuel burns with the engine, not with the clock, so when the level
  // after the gap is where the line left it, the window goes on with the gap taken out of its time (its bins
  // and line move forward by the gap): a bus that parked at 10.3 % is judged on that trend from its first minute
  // of the next trip, not blind for half a window. A level that moved more than TREND_GAP_KEEP_PCT (a refuel or
  // a siphoning, also followed as a fuel event) restarts it.
  const lastTs = s.fbin !== null ? s.fbin[0] / s.fbin[2] : s.ft.length >= 2 ? (s.ft[s.ft.length - 2] as number) : null
  if (lastTs !== null && ts - lastTs > TREND_GAP_MS) {
    const fl = s.fline
    const at = fl ? fl[1] + fl[2] * (lastTs - fl[0]) : null
    if (fl && at !== null && Math.abs(raw - at) <= TREND_GAP_KEEP_PCT) {
      const shift = Math.round(ts - lastTs - FUEL_HIST_STEP_MS)
      for (let i = 0; i < s.ft.length; i += 2) s.ft[i] = (s.ft[i] as number) + shift
      if (s.fbin !== null) {
        s.fbin[0] += shift * s.fbin[2]
        s.fbin[3] += shift
      }
      fl[0] += shift
    } else {
      s.ft = []
      s.fbin = null
      s.fline = null
    }
  }
  let closed = false
  if (s.fbin !== null && ts - s.fbin[3] >= FUEL_HIST_STEP_MS) {
    const [sumTs, sumLv, n] = s.fbin
    s.ft.push(Math.round(sumTs / n), sumLv / n)
    s.fbin = null
    closed = true
  }
  if (s.fbin === null) s.fbin = [0, 0, 0, ts]
  s.fbin[0] += ts
  s.fbin[1] += raw
  s.fbin[2]++
  let drop = 0
  while (drop < s.ft.length && ts - (s.ft[drop] as number) > c.fuelTrendMs) drop += 2
  if (drop > 0) s.ft.splice(0, drop)
  // The line is refitted once per bin (a Theil-Sen fit is quadratic in the bins), then followed to each reading.
  // A short window extrapolates a noisy slope: the line is used once the bins span half the window.
  if (closed) {
    const span = s.ft.length >= 4 ? (s.ft[s.ft.length - 2] as number) - (s.ft[0] as number) : 0
    const line = span >= c.fuelTrendMs / 2 ? trendLevel(s.ft, ts) : null
    s.fline = line ? [ts, line[0], line[1], trendSpread(s.ft, ts, line[0], line[1])] : null
  }
}

/** A gap in the fuel readings after which the trend window goes on without the gap, or restarts. */
const TREND_GAP_MS = 60_000
/** The trend window goes on across a gap when the first level after it is within this of the line (points). */
const TREND_GAP_KEEP_PCT = 2
/** Fewest samples of the trend window (FUEL_HIST_STEP_MS apart) before its line is trusted over the smoothed level. */
const TREND_MIN_SAMPLES = 6

/**
 * The level at `ts` on the Theil-Sen line of the trend window (median of the pairwise slopes, then the median
 * intercept): robust to slosh and to a burst of bad readings, and unbiased while the tank drains, where a median
 * or a mean of the window lags by half the window. [level, slope per ms], or null with too few samples.
 */
export function trendLevel(ft: readonly number[], ts: number): [number, number] | null {
  const n = ft.length / 2
  if (n < TREND_MIN_SAMPLES) return null
  const slopes: number[] = []
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dt = (ft[2 * j] as number) - (ft[2 * i] as number)
      if (dt > 0) slopes.push(((ft[2 * j + 1] as number) - (ft[2 * i + 1] as number)) / dt)
    }
  }
  if (slopes.length === 0) return null
  const slope = medianOf(slopes)
  const icpt: number[] = []
  for (let i = 0; i < n; i++) icpt.push((ft[2 * i + 1] as number) + slope * (ts - (ft[2 * i] as number)))
  return [medianOf(icpt), slope]
}

/**
 * Robust standard deviation of the trend window's bins around the line (1.4826 × median absolute residual):
 * how far the sender's level wanders from the trend, in points. A clean sender (rounding only) gives a few
 * hundredths, a noisy one (slow sender error, slosh) a few tenths.
 */
export function trendSpread(ft: readonly number[], ts: number, level: number, slope: number): number {
  const res: number[] = []
  for (let i = 0; i + 1 < ft.length; i += 2)
    res.push(Math.abs((ft[i + 1] as number) - (level + slope * ((ft[i] as number) - ts))))
  return res.length > 0 ? 1.4826 * medianOf(res) : 0
}

function medianOf(xs: number[]): number {
  xs.sort((a, b) => a - b)
  const m = xs.length >> 1
  return xs.length % 2 ? (xs[m] as number) : ((xs[m - 1] as number) + (xs[m] as number)) / 2
}

/**
 * low_fuel on the estimated level: the trend line's level at `ts` when the window holds enough samples, else the
 * smoothed level (and, with fuelTrendMs 0, always the smoothed level with the first raw reading below as start).
 * Opens once the estimate has been below lowFuelPct for lowFuelMs; closes above lowFuelPct + lowFuelHysteresis.
 */
function lowFuel(s: RoadState, ctx: ActorContext, ts: number, raw: number, sm: number, c: RoadConfig): void {
  if (c.fuelTrendMs > 0) pushTrend(s, ts, raw, c)
  // With a trend window, nothing is raised until it holds TREND_MIN_SAMPLES bins, nor while a refuel or a drop is
  // being followed (the line spans the jump).
  const fl = c.fuelTrendMs > 0 && s.fev === null ? s.fline : null
  // The estimate with a trend: the line's level at ts less lowFuelSigmas spreads (a lower confidence bound:
  // the level may be this low already), so the warning comes at or before the true crossing, not minutes
  // after it; how early scales with the sender's noise (docs/profiles.md, road, fuel).
  const lvl = fl ? fl[1] + fl[2] * (ts - fl[0]) : sm
  const tr: [number, number] | null = fl ? [lvl - c.lowFuelSigmas * (fl[3] ?? 0), fl[2]] : null
  if (c.fuelTrendMs > 0 && tr === null && s.lf[1] === null) return
  const est = tr ? tr[0] : sm
  // When the estimate went below: with a trend, where its line crossed (not before the window); else the
  // first raw reading below since the smoothed level was last above (a level flickering at the threshold does
  // not restart the duration).
  if (tr) {
    if (est >= c.lowFuelPct) s.lowSince = null
    else if (s.lowSince === null) {
      const back = tr[1] < 0 ? (c.lowFuelPct - est) / tr[1] : 0
      s.lowSince = Math.round(Math.max(s.ft[0] as number, ts + back))
    }
  } else {
    if (raw < c.lowFuelPct) s.lowSince ??= ts
    if (sm >= c.lowFuelPct && raw >= c.lowFuelPct) s.lowSince = null
  }
  if (s.lf[1] === null) {
    if (est < c.lowFuelPct && s.lowSince !== null && ts - s.lowSince >= c.lowFuelMs) {
      // Dated where the line itself crossed the threshold when that is past, else now: an early warning (on the
      // lower bound, the line still above) starts when it is raised, never before the level was thought low.
      const lineAt = tr && lvl < c.lowFuelPct && tr[1] < 0 ? ts + (c.lowFuelPct - lvl) / tr[1] : ts
      const start = tr ? Math.round(Math.max(s.ft[0] ?? lineAt, Math.min(ts, lineAt))) : s.lowSince
      s.lf = [start, start, est]
      emitAlert(ctx, ts, {
        type: 'low_fuel',
        severity: 'warning',
        state: 'open',
        start,
        value: lvl,
        threshold: c.lowFuelPct,
        explanation: tr
          ? `fuel ${lvl.toFixed(1)} % (trend of the last minutes${est < lvl ? `, may be ${est.toFixed(1)} %` : ''}) < ${c.lowFuelPct} %`
          : `fuel ${est.toFixed(1)} % (smoothed) < ${c.lowFuelPct} %`,
      })
    }
  } else if (sm > c.lowFuelPct + c.lowFuelHysteresis) {
    const start = s.lf[1]
    s.lf = [null, null, 0]
    s.lowSince = null
    emitAlert(ctx, ts, {
      type: 'low_fuel',
      severity: 'warning',
      state: 'close',
      start,
      end: ts,
      value: sm,
      threshold: c.lowFuelPct,
      explanation: `fuel back to ${sm.toFixed(1)} % (> ${c.lowFuelPct + c.lowFuelHysteresis} %)`,
    })
  }
}

/** Reports the refuel or drop in progress (once the level settled, or the vehicle moves). */
function finishFuelEvent(s: RoadState, ctx: ActorContext, ts: number, c: RoadConfig): void {
  const e = s.fev
  if (!e) return
  const [sign, start, from, to, toTs] = e
  s.fev = null
  s.fh = [ts, to]
  // The level jumped: a trend across the jump means nothing.
  s.ft = [ts, to]
  s.fbin = null
  s.fline = null
  const amount = Math.abs(to - from)
  if (sign > 0) {
    ctx.emit('score', `refuel:${start}`, ts, {
      name: 'refuel',
      value: amount,
      factors: { from_pct: from, to_pct: to, start_ts: start, end_ts: toTs, ...litres(amount, c) },
    })
    // Only a refuel inside the trip changes its fuel balance (one while parked came before its first level).
    if (s.trip && s.trip.fuel0 !== null && start >= s.trip.start) s.trip.refuel += amount
    return
  }
  const body = {
    type: 'fuel_drop',
    severity: 'warning' as Severity,
    start,
    value: amount,
    threshold: c.fuelDropPct,
    details: { from_pct: from, to_pct: to, end_ts: toTs, ...litres(amount, c) },
  }
  emitAlert(ctx, ts, {
    ...body,
    state: 'open',
    explanation: `fuel fell ${amount.toFixed(1)} points (${from.toFixed(1)} % -> ${to.toFixed(1)} %) in ${((toTs - start) / 60_000).toFixed(1)} min`,
  })
  // An event, not a lasting condition: closed at once, so it never lingers among the open alerts.
  emitAlert(ctx, ts, { ...body, state: 'close', end: ts, explanation: 'sudden fuel drop recorded' })
  if (s.trip && s.trip.fuel0 !== null && start >= s.trip.start) s.trip.refuel -= amount
}

/**
 * Refuel and fuel-drop detection on the smoothed level `v` at `ts`: a change of >= refuelPct up / fuelDropPct
 * down against the window's extreme starts an episode, which follows the level until it stops changing for
 * fuelSettleMs (or the vehicle moves), so a fill or a siphoning is reported once, with its full amount.
 */
function fuelEvents(s: RoadState, ctx: ActorContext, ts: number, v: number, moving: boolean, c: RoadConfig): void {
  const e = s.fev
  if (e) {
    if (e[0] * (v - e[3]) > 0) {
      e[3] = v
      e[4] = ts
    }
    if (moving || ts - e[4] >= c.fuelSettleMs) finishFuelEvent(s, ctx, ts, c)
    return
  }
  // The window's samples, and always the last one before it: a refuel or a drop while the unit was off (no
  // readings for longer than the window) compares with the level it was switched off at.
  let drop = 0
  while (drop < s.fh.length - 2 && ts - (s.fh[drop] as number) > c.fuelEventWindowMs) drop += 2
  if (drop > 0) s.fh.splice(0, drop)
  let min = v,
    minTs = ts,
    max = v,
    maxTs = ts
  for (let i = 0; i < s.fh.length; i += 2) {
    const hv = s.fh[i + 1] as number
    if (hv < min) {
      min = hv
      minTs = s.fh[i] as number
    }
    if (hv > max) {
      max = hv
      maxTs = s.fh[i] as number
    }
  }
  const lastH = s.fh.length >= 2 ? (s.fh[s.fh.length - 2] as number) : null
  if (lastH === null || ts - lastH >= FUEL_HIST_STEP_MS) s.fh.push(ts, v)
  if (v - min >= c.refuelPct) s.fev = [1, minTs, min, v, ts]
  else if (max - v >= c.fuelDropPct) s.fev = [-1, maxTs, max, v, ts]
  else return
  if (moving) finishFuelEvent(s, ctx, ts, c)
}

// ---- trips, stops, idle, positions ------------------------------------------------------------------------

/** The trip's idle time up to `end`: a trip that ends at the start of its stop leaves out that stop's idle. */
function tripIdleMs(trip: Trip, end: number): number {
  return trip.stopSince !== null && end <= trip.stopSince ? trip.idleMs - (trip.idleInStop ?? 0) : trip.idleMs
}

function finishTrip(s: RoadState, trip: Trip, end: number, ctx: ActorContext, c: RoadConfig): void {
  const durS = (end - trip.start) / 1000
  const km = trip.km
  const fuelNow = fuelSmoothed(s)
  const used = trip.fuel0 !== null && fuelNow !== null ? Math.max(0, trip.fuel0 - fuelNow + trip.refuel) : null
  ctx.emit('score', `trip:${trip.start}`, end, {
    name: 'trip',
    value: km,
    factors: {
      distance_km: km,
      duration_s: durS,
      max_speed: trip.max,
      avg_speed: durS > 0 ? km / (durS / 3600) : 0,
      start_ts: trip.start,
      end_ts: end,
      idle_s: tripIdleMs(trip, end) / 1000,
      stops: trip.stops,
      stop_s: trip.stopMs / 1000,
      ...(used !== null
        ? { fuel_used_pct: used, ...(c.fuelTankL > 0 ? { fuel_used_l: (used / 100) * c.fuelTankL } : {}) }
        : {}),
    },
  })
  s.trip = null
  ctx.cancelTimer(QUIET_TIMER)
}

/** Ends the idle period at `end` (emits `idle` when long enough, closes `idling`). */
function endIdle(s: RoadState, ctx: ActorContext, end: number, c: RoadConfig): void {
  const idle = s.idle
  if (!idle) return
  s.idle = null
  const [since, open] = idle
  const durMs = end - since
  if (durMs >= c.idleMinMs) {
    ctx.emit('score', `idle:${since}`, end, {
      name: 'idle',
      value: durMs / 1000,
      factors: {
        start_ts: since,
        end_ts: end,
        duration_s: durMs / 1000,
        ...(s.fix ? { lat: s.fix[1], lon: s.fix[2] } : {}),
      },
    })
  }
  if (open === 1) {
    emitAlert(ctx, end, {
      type: 'idling',
      severity: 'info',
      state: 'close',
      start: since,
      end,
      value: durMs / 1000,
      threshold: c.idleAlertMs / 1000,
      explanation: 'engine no longer idling',
    })
  }
}

/** Emits the `position` of `fix`, the fix of reading `seq`, and records it as the last position. */
function emitPosition(
  s: RoadState,
  ctx: ActorContext,
  fix: readonly [number, number, number],
  seq: number,
  reason: PositionBody['reason'],
): void {
  const [ts, lat, lon] = fix
  // Speed and heading belong to the current reading: for the fix of an earlier one they are unknown.
  const body: PositionBody = {
    lat,
    lon,
    speed: seq === ctx.seq ? s.speed : null,
    heading: seq === ctx.seq ? s.heading : null,
    reason,
    readingSeq: seq,
  }
  ctx.emit('position', `pos:${seq}`, ts, body)
  if (s.posTs === null || ts >= s.posTs) s.posTs = ts
  s.posSeq = seq
}

/** Ends the open trip because the unit went quiet or was switched off (rule b/c/d). */
function closeTripAt(s: RoadState, ctx: ActorContext, lastTs: number, c: RoadConfig): void {
  const trip = s.trip
  if (!trip) return
  const end = trip.stopSince ?? lastTs
  finishTrip(s, trip, end, ctx, c)
  const fix = s.fix
  if (fix !== null && s.fixSeq !== null && fix[0] === lastTs && s.posSeq !== s.fixSeq)
    emitPosition(s, ctx, fix, s.fixSeq, 'trip_end')
}

// ---- GPS --------------------------------------------------------------------------------------------------

/** Whether a move from `from` to (lat, lon) at `ts` is plausible given the speeds seen (km/h, null = unknown). */
function plausible(
  from: readonly [number, number, number],
  ts: number,
  lat: number,
  lon: number,
  vKmh: number | null,
  c: RoadConfig,
): boolean {
  const d = haversineM(from[1], from[2], lat, lon)
  if (d <= c.gpsMarginM) return true
  const dtS = (ts - from[0]) / 1000
  if (dtS <= 0) return false
  const cap = c.maxJumpKmh / 3.6
  const v = vKmh === null ? cap : Math.min(cap, (vKmh / 3.6) * 1.3 + 3)
  return d <= v * dtS + c.gpsMarginM
}

/** A travelled segment: [from ts, to ts, km]; the trip logic decides which trip it belongs to. */
type Seg = [number, number, number]

/** Adds `km` travelled from `from` to `ts` to the day and the odometer, and records it for the trips. */
function addKm(s: RoadState, segs: Seg[], from: number, ts: number, km: number): void {
  if (!(km > 0)) return
  const day = ts - (((ts % DAY_MS) + DAY_MS) % DAY_MS)
  if (s.day !== day) {
    s.day = day
    s.dayKm = 0
  }
  s.dayKm += km
  s.odoKm += km
  segs.push([from, ts, km])
}

/** Counts the speed-integrated interval [from, ts] as covered since the distance anchor. */
function cover(s: RoadState, ts: number, from: number | null): void {
  if (from === null || s.anc === null) return
  const add = ts - Math.max(from, s.anc[0])
  if (add > 0) s.cov += add
}

/** Accepts a fix: moves the displayed position and, unless the vehicle stands, the distance anchor. */
function acceptFix(
  s: RoadState,
  segs: Seg[],
  ts: number,
  lat: number,
  lon: number,
  seq: number,
  speed: number | undefined,
  vSince: number | null,
  c: RoadConfig,
): void {
  const prevFixTs = s.fix ? s.fix[0] : ts
  s.fix = [ts, lat, lon]
  s.fixSeq = seq
  s.vmax = speed ?? null
  const a = s.anc
  if (a === null) {
    s.anc = [ts, lat, lon]
    s.am = [1, lat, lon]
    s.cov = 0
    return
  }
  const d = haversineM(a[1], a[2], lat, lon)
  // Standing: every speed reported since the last fix says so and no gap hides a move (any plausible fix is then
  // jitter), or the fix is within stationaryRadiusM and no speed says otherwise (a vehicle without speed moves
  // the anchor once it got that far).
  const slow = vSince === null || vSince <= c.stationaryKmh
  const standing = slow && (d <= c.stationaryRadiusM || (vSince !== null && ts - prevFixTs < c.confirmGapMs))
  if (standing) {
    // Jitter of a standing vehicle: the anchor stays, the interval is accounted for (nothing travelled). The
    // fixes of the stand are averaged for the geofences: GPS error wanders for tens of seconds, so one fix (the
    // anchor, taken while arriving) can be metres off where the mean of a minute's fixes is not.
    a[0] = ts
    s.cov = 0
    const m = s.am ?? (s.am = [1, a[1], a[2]])
    m[0]++
    m[1] += lat
    m[2] += lon
    return
  }
  const span = ts - a[0]
  const uncovered = span > 0 ? Math.max(0, span - s.cov) / span : 1
  addKm(s, segs, a[0], ts, (d / 1000) * uncovered)
  s.anc = [ts, lat, lon]
  s.am = [1, lat, lon]
  s.cov = 0
}

/**
 * An accepted fix: [ts, lat, lon, reading seq, lat, lon of the position the geofences use]: the fix while moving,
 * the mean of the stand's fixes while standing.
 */
type Accepted = [number, number, number, number, number, number]

/** The accepted-fix record of the fix just accepted. */
function acc(s: RoadState, ts: number, lat: number, lon: number, seq: number): Accepted {
  const m = s.am
  if (m !== null && m[0] > 1) return [ts, lat, lon, seq, m[1] / m[0], m[2] / m[0]]
  const a = s.anc as [number, number, number]
  return [ts, lat, lon, seq, a[1], a[2]]
}

/**
 * Runs one fix through the filter; returns the accepted fixes, oldest first, with their reading sequences
 * (a confirmed candidate, then this fix), or none.
 */
function filterFix(
  s: RoadState,
  segs: Seg[],
  ts: number,
  lat: number,
  lon: number,
  seq: number,
  speed: number | undefined,
  covFrom: number | null,
  c: RoadConfig,
): Accepted[] {
  const v = speed === undefined ? s.vmax : Math.max(speed, s.vmax ?? 0)
  s.lastFixTs = ts
  const fix = s.fix
  if (fix === null) {
    acceptFix(s, segs, ts, lat, lon, seq, speed, v, c)
    return [acc(s, ts, lat, lon, seq)]
  }
  const cand = s.cand
  if (cand !== null) {
    s.cand = null
    // Only a fix soon after the candidate confirms it: across a gap, agreement proves nothing.
    if (ts - cand[0] < c.confirmGapMs && plausible([cand[0], cand[1], cand[2]], ts, lat, lon, v, c)) {
      // Two fixes agree: the vehicle is there, whatever the last accepted fix said.
      acceptFix(s, segs, cand[0], cand[1], cand[2], cand[3], undefined, v, c)
      const first = acc(s, cand[0], cand[1], cand[2], cand[3])
      cover(s, ts, covFrom)
      acceptFix(s, segs, ts, lat, lon, seq, speed, v, c)
      return [first, acc(s, ts, lat, lon, seq)]
    }
    s.jumps++
    if (ts - fix[0] < c.confirmGapMs && plausible(fix, ts, lat, lon, v, c)) {
      cover(s, ts, covFrom)
      acceptFix(s, segs, ts, lat, lon, seq, speed, v, c)
      return [acc(s, ts, lat, lon, seq)]
    }
    s.cand = [ts, lat, lon, seq]
    return []
  }
  // After a gap since the last accepted fix, a fix needs the next one to agree when it moved, or when the vehicle
  // reports motion now: a jump that lands near where the vehicle stood before the gap does not look "moved", and
  // accepting it would lose the whole distance driven during the gap (the true fixes after it snap back within a
  // second, where speed integration, not the chord, counts the distance).
  const gapped =
    ts - fix[0] >= c.confirmGapMs &&
    (haversineM(fix[1], fix[2], lat, lon) > c.gpsMarginM || (speed !== undefined && speed > c.stationaryKmh))
  if (!gapped && plausible(fix, ts, lat, lon, v, c)) {
    cover(s, ts, covFrom)
    acceptFix(s, segs, ts, lat, lon, seq, speed, v, c)
    return [acc(s, ts, lat, lon, seq)]
  }
  s.cand = [ts, lat, lon, seq]
  return []
}

// ---- geofences --------------------------------------------------------------------------------------------

interface LiveFence {
  id: string
  shape: CompiledShape
  /** The fence's own exit margin, or null: the configuration's (geofenceMarginM / geofenceMarginSparseM). */
  marginM: number | null
  minDwellMs: number
}

// By configuration (not by its fence list alone: the margins are part of the compiled fences).
const configFences = new WeakMap<RoadConfig, LiveFence[]>()
const setFences = new WeakMap<object, Map<string, LiveFence[]>>()

function fencesOf(c: RoadConfig, set: GeofenceSet | undefined, vehicle: string): LiveFence[] {
  let base = configFences.get(c)
  if (!base) {
    base = c.geofences.map((g) => ({
      id: g.id,
      shape: compileShape(shapeOf(g)),
      marginM: null,
      minDwellMs: c.geofenceMinDwellMs,
    }))
    configFences.set(c, base)
  }
  if (!set || set.fences.length === 0) return base
  let byVehicle = setFences.get(set)
  if (!byVehicle) setFences.set(set, (byVehicle = new Map()))
  let list = byVehicle.get(vehicle)
  if (!list) {
    const taken = new Set(base.map((f) => f.id))
    list = [...base]
    for (const f of set.fences) {
      // A config fence keeps its id; the API cannot override it (docs/profiles.md).
      if (taken.has(f.id) || (f.vehicles !== null && !f.vehicles.includes(vehicle))) continue
      list.push({
        id: f.id,
        shape: compileShape(f.shape),
        marginM: f.marginM ?? null,
        minDwellMs: f.minDwellMs ?? c.geofenceMinDwellMs,
      })
    }
    byVehicle.set(vehicle, list)
  }
  return list
}

function fenceExit(
  s: RoadState,
  ctx: ActorContext,
  id: string,
  start: number,
  ts: number,
  end: number,
  value: number,
  threshold: number,
  why: string,
): void {
  const details = { geofence: id, ...(s.gfVer !== null ? { version: s.gfVer } : {}) }
  emitAlert(ctx, ts, {
    sub: id,
    type: 'geofence',
    severity: 'info',
    state: 'close',
    start,
    end,
    value,
    threshold,
    explanation: why,
    details,
  })
  ctx.emit('score', `dwell:${id}:${start}`, ts, {
    name: 'geofence_dwell',
    value: (end - start) / 1000,
    factors: {
      enter_ts: start,
      exit_ts: end,
      dwell_s: (end - start) / 1000,
      ...(s.gfVer !== null ? { version: s.gfVer } : {}),
    },
  })
}

function fenceEnter(
  s: RoadState,
  ctx: ActorContext,
  id: string,
  start: number,
  ts: number,
  d: number,
  why: string,
): void {
  emitAlert(ctx, ts, {
    sub: id,
    type: 'geofence',
    severity: 'info',
    state: 'open',
    start,
    value: d,
    threshold: 0,
    explanation: why,
    details: { geofence: id, ...(s.gfVer !== null ? { version: s.gfVer } : {}) },
  })
}

/**
 * When the boundary was crossed between the fence's last fix and this one (signed distance `d` at `ts`): linear
 * in the signed distance, so an event is dated where the track crossed the edge, not at the first fix beyond it
 * (after a dropout that may be a minute later). `ts` when the last fix was on the same side or unknown.
 */
function crossedAt(st: FenceState, ts: number, d: number): number {
  const t0 = st[3] ?? null
  const d0 = st[4] ?? null
  if (t0 === null || d0 === null || ts <= t0 || d0 > 0 === d > 0) return ts
  return Math.round(t0 + ((ts - t0) * d0) / (d0 - d))
}

/** Samples along a segment between two fixes: about one per 2 m, at most this many. */
const CLIP_SAMPLES_MAX = 100

/**
 * A fence clipped between two fixes both outside it: the straight segment from `from` to the fix passes more than
 * `depthM` inside (a corner cut by a fast vehicle, a short crossing between sparse fixes). Returns the times the
 * segment entered and left the fence, or null. Cheap when far: the signed distance is 1-Lipschitz, so no point
 * of the segment is deeper than (d0 + d1 - length) / 2 inside.
 */
function clipped(
  shape: CompiledShape,
  from: readonly [number, number, number],
  d0: number,
  ts: number,
  lat: number,
  lon: number,
  d1: number,
  depthM: number,
): [number, number] | null {
  const len = haversineM(from[1], from[2], lat, lon)
  if ((d0 + d1 - len) / 2 >= -depthM || ts <= from[0]) return null
  const n = Math.min(CLIP_SAMPLES_MAX, Math.ceil(len / 2))
  let inFrom = -1
  let inTo = -1
  let deepest = 0
  for (let k = 1; k < n; k++) {
    const f = k / n
    const d = shape.signedM(from[1] + (lat - from[1]) * f, from[2] + (lon - from[2]) * f)
    if (d <= 0) {
      if (inFrom < 0) inFrom = f
      inTo = f
    }
    if (d < deepest) deepest = d
  }
  if (deepest >= -depthM || inFrom < 0) return null
  const at = (f: number): number => Math.round(from[0] + (ts - from[0]) * f)
  return [at(inFrom), at(inTo)]
}

/**
 * Advances every fence with an accepted fix at `ts`: `fix` the fix, `anc` the position judged (the fix, or the
 * mean of the stand's fixes while the vehicle stands), `prev` the accepted fix before (for clips).
 */
function stepFences(
  s: RoadState,
  ctx: ActorContext,
  ts: number,
  fix: readonly [number, number],
  anc: readonly [number, number],
  prev: readonly [number, number, number] | null,
  c: RoadConfig,
): void {
  const ref = ctx.reference(GEOFENCES_REF)
  const set = ref?.data as GeofenceSet | undefined
  if (set) s.gfVer = set.version
  const fences = fencesOf(c, set, ctx.entity.id)
  const live = new Set<string>()
  const same = fix[0] === anc[0] && fix[1] === anc[1]
  const m = fenceMargins(prev, ts, c)
  for (const g of fences) {
    live.add(g.id)
    const dF = g.shape.signedM(fix[0], fix[1])
    const d = same ? dF : g.shape.signedM(anc[0], anc[1])
    let st = s.gf[g.id]
    if (!st) s.gf[g.id] = st = [null, null, null, null, null]
    const cross = crossedAt(st, ts, dF)
    const exitM = g.marginM ?? m.exit
    if (st[0] === null) stepOutside(s, ctx, g, st, ts, fix, d, dF, cross, prev, m.enter, exitM, c)
    else stepInside(s, ctx, g, st, ts, d, dF, cross, exitM, c)
    // An exit deleted the state; the next fix starts a fresh one that still knows this fix (for crossings).
    const now = s.gf[g.id] ?? (s.gf[g.id] = [null, null, null, null, null])
    now[3] = ts
    now[4] = dF
  }
  for (const id of Object.keys(s.gf).sort()) {
    if (live.has(id)) continue
    const st = s.gf[id] as FenceState
    delete s.gf[id]
    if (st[0] !== null) fenceExit(s, ctx, id, st[0], ts, ts, 0, 0, `geofence ${id} removed or no longer assigned`)
  }
}

/** A fence the vehicle is not in: enter once the position is deep enough inside (or long enough) and for minDwellMs; or a clip between two fixes. */
function stepOutside(
  s: RoadState,
  ctx: ActorContext,
  g: LiveFence,
  st: FenceState,
  ts: number,
  fix: readonly [number, number],
  d: number,
  dF: number,
  cross: number,
  prev: readonly [number, number, number] | null,
  enterM: number,
  exitM: number,
  c: RoadConfig,
): void {
  if (d > 0) {
    st[1] = null
    const d0 = st[4] ?? null
    // Only between two consecutive fixes close in time (a straight line across a long gap may cut any corner),
    // and for fences without a minimum dwell (a clip has none).
    if (
      c.geofenceClipDepthM <= 0 ||
      g.minDwellMs > 0 ||
      prev === null ||
      d0 === null ||
      d0 <= 0 ||
      dF <= 0 ||
      st[3] !== prev[0] ||
      ts - prev[0] > c.speedIntegrateMaxMs
    )
      return
    const clip = clipped(g.shape, prev, d0, ts, fix[0], fix[1], dF, c.geofenceClipDepthM)
    if (!clip) return
    fenceEnter(s, ctx, g.id, clip[0], ts, 0, `passed through geofence ${g.id} between two fixes`)
    fenceExit(s, ctx, g.id, clip[0], ts, clip[1], dF, exitM, `left geofence ${g.id} (passed through between two fixes)`)
    return
  }
  if (st[1] === null) st[1] = dF <= 0 ? cross : ts
  // Enter hysteresis: the position must be the enter margin inside (the crossing stays dated where it began).
  const held = c.geofenceEnterConfirmMs > 0 && ts - st[1] >= c.geofenceEnterConfirmMs
  if ((d > -enterM && !held) || ts - st[1] < g.minDwellMs) return
  const start = st[1]
  st[0] = start
  st[1] = null
  st[2] = null
  fenceEnter(s, ctx, g.id, start, ts, d, `entered geofence ${g.id} (${(-d).toFixed(0)} m inside)`)
}

/**
 * The enter and exit hysteresis for a fix `ts` after the accepted fix `prev`: geofenceEnterMarginM and
 * geofenceMarginM for fixes 1 s apart, the `...SparseM` settings for fixes 5 s or more apart, linear in between.
 * A vehicle passing or standing near an edge crosses it by noise about as often as its track is sampled: fewer
 * fixes, fewer false crossings, so a sparse track affords shallower margins (and a short true graze or excursion,
 * seen by one or two fixes, needs them). Measured: docs/benchmarks.md, fleet evaluation, fifth pass.
 */
function fenceMargins(
  prev: readonly [number, number, number] | null,
  ts: number,
  c: RoadConfig,
): { enter: number; exit: number } {
  const f = prev === null ? 0 : Math.min(1, Math.max(0, (ts - prev[0] - 1000) / 4000))
  return {
    enter: c.geofenceEnterMarginM + (c.geofenceEnterMarginSparseM - c.geofenceEnterMarginM) * f,
    exit: c.geofenceMarginM + (c.geofenceMarginSparseM - c.geofenceMarginM) * f,
  }
}

/**
 * A fence the vehicle is in: exit once the position is more than exitM outside, or once it has been outside
 * for geofenceExitConfirmMs (a vehicle standing just outside an edge: its fixes stay out, within the margin).
 * The exit is dated at the crossing before the first of those fixes.
 */
function stepInside(
  s: RoadState,
  ctx: ActorContext,
  g: LiveFence,
  st: FenceState,
  ts: number,
  d: number,
  dF: number,
  cross: number,
  exitM: number,
  c: RoadConfig,
): void {
  const pending = st[2] ?? null
  if (d <= 0) st[2] = null
  else if (pending === null) st[2] = dF > 0 ? cross : ts
  const confirmed = pending !== null && d > 0 && c.geofenceExitConfirmMs > 0 && ts - pending >= c.geofenceExitConfirmMs
  if (d <= exitM && !confirmed) return
  const start = st[0] as number
  const end = st[2] ?? cross
  delete s.gf[g.id]
  fenceExit(
    s,
    ctx,
    g.id,
    start,
    ts,
    Math.max(start, end),
    d,
    exitM,
    d > exitM
      ? `left geofence ${g.id} (${d.toFixed(0)} m outside)`
      : `left geofence ${g.id} (outside for ${((ts - (st[2] ?? ts)) / 1000).toFixed(0)} s)`,
  )
}

// ---- the handler ------------------------------------------------------------------------------------------

function engineOf(f: Reading['fields']): boolean | undefined {
  const ign = f['ignition']
  if (typeof ign === 'boolean') return ign
  if (typeof ign === 'number' && Number.isFinite(ign)) return ign !== 0
  const rpm = num(f['rpm'])
  return rpm === undefined ? undefined : rpm > 0
}

/** Any reading re-arms the staleness timer and closes an open `unit_offline`. */
function unitBack(s: RoadState, ctx: ActorContext, ts: number, c: RoadConfig): void {
  ctx.setTimer(STALE_TIMER, 'processing', ctx.procTime + c.staleAfterMs)
  if (s.stale === null) return
  const end = Math.max(ts, s.stale)
  emitAlert(ctx, end, {
    type: 'unit_offline',
    severity: 'warning',
    state: 'close',
    start: s.stale,
    end,
    value: 0,
    threshold: c.staleAfterMs,
    explanation: 'on-board unit sends data again',
  })
  s.stale = null
}

/** A reading older than the last one applied is counted and written aside (`late`), never applied. */
function rejectLate(s: RoadState, r: Reading, ctx: ActorContext): boolean {
  if (s.lastTs === null || !(r.ts < s.lastTs)) return false
  s.late++
  ctx.emit('late', `late:${ctx.seq}`, r.ts, {
    readingTs: r.ts,
    watermark: s.lastTs,
    readingSeq: ctx.seq,
    fields: r.fields,
  })
  return true
}

/**
 * Trip rule a: the end of the open trip when its stop has lasted long enough, else null. It needs the stop
 * observed for tripStopMs: when this reading moves, the stop is known to have lasted until the previous reading
 * only (after a short silent gap the vehicle may have left long before).
 */
function stopEnd(
  s: RoadState,
  c: RoadConfig,
  ts: number,
  prevTs: number | null,
  speed: number | undefined,
): number | null {
  const stoppedUntil = speed !== undefined && speed <= c.tripStartKmh ? ts : prevTs
  // With the engine reported on, a stop is a hold (layover, queue): only a much longer one ends the trip; the
  // ignition going off ends it at once (rule b).
  const stopMs = s.engine === true ? c.tripStopEngineOnMs : c.tripStopMs
  const trip = s.trip
  return trip &&
    speed !== undefined &&
    trip.stopSince !== null &&
    stoppedUntil !== null &&
    stoppedUntil - trip.stopSince >= stopMs
    ? trip.stopSince
    : null
}

/** Distance by speed over dense pairs of readings into `segs`; returns the start of the interval it covered (ends at ts). */
function speedDistance(s: RoadState, segs: Seg[], ts: number, speed: number, c: RoadConfig): number | null {
  let covFrom: number | null = null
  const p = s.spd
  if (p !== null && ts > p[0] && ts - p[0] <= c.speedIntegrateMaxMs) {
    const dt = ts - p[0]
    if (p[1] > c.stationaryKmh || speed > c.stationaryKmh)
      addKm(s, segs, p[0], ts, ((p[1] + speed) / 2) * (dt / 3_600_000))
    covFrom = p[0]
  }
  s.spd = [ts, speed]
  if (s.vmax === null || speed > s.vmax) s.vmax = speed
  return covFrom
}

/** Position: a fix of usable quality goes through the GPS filter (which may add distance too); returns the fixes it accepted. */
function positionFixes(
  s: RoadState,
  r: Reading,
  segs: Seg[],
  seq: number,
  speed: number | undefined,
  covFrom: number | null,
  c: RoadConfig,
): Accepted[] {
  const f = r.fields
  const lat = num(f['lat']) ?? r.loc?.lat
  const lon = num(f['lon']) ?? r.loc?.lon
  let accepted: Accepted[] = []
  if (lat !== undefined && lon !== undefined && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) {
    const hdop = num(f['hdop'])
    const sats = num(f['sats'])
    if (
      (c.maxHdop > 0 && hdop !== undefined && hdop > c.maxHdop) ||
      (c.minSatellites > 0 && sats !== undefined && sats < c.minSatellites)
    )
      s.badFixes++
    else accepted = filterFix(s, segs, r.ts, lat, lon, seq, speed, covFrom, c)
  }
  if (accepted.length === 0) cover(s, r.ts, covFrom)
  return accepted
}

/** Ends the trip that rule a or c closed, with the distance up to its end; a trip ended by a gap shows its last fix. */
function closeEndedTrip(
  s: RoadState,
  ctx: ActorContext,
  segs: Seg[],
  closeEnd: number,
  byGap: boolean,
  prevTs: number | null,
  prevFix: RoadState['fix'],
  prevFixSeq: number | null,
  c: RoadConfig,
): void {
  const old = s.trip
  if (!old) return
  for (const g of segs) if (g[1] >= old.start && g[1] <= closeEnd) old.km += g[2]
  finishTrip(s, old, closeEnd, ctx, c)
  if (byGap && prevFix !== null && prevFixSeq !== null && prevFix[0] === prevTs && s.posSeq !== prevFixSeq)
    emitPosition(s, ctx, prevFix, prevFixSeq, 'trip_end')
}

/**
 * Trip start, stops (emits `stop` when long enough) and top speed by this reading's speed; returns the position
 * reason it gives. A trip starts only at a time after the previous reading's: a trip that ended at that reading
 * (ignition off, or closed by the quiet timer) keeps its id (`trip:<start>`) to itself.
 */
function stepTrip(
  s: RoadState,
  ctx: ActorContext,
  ts: number,
  prevTs: number | null,
  speed: number,
  engine: boolean | undefined,
  c: RoadConfig,
): PositionBody['reason'] | null {
  let posReason: PositionBody['reason'] | null = null
  const moving = speed > c.tripStartKmh
  const trip = s.trip
  if (trip) {
    if (moving) {
      if (trip.stopSince !== null) {
        const dur = ts - trip.stopSince
        if (dur >= c.stopMinMs) {
          trip.stops++
          trip.stopMs += dur
          ctx.emit('score', `stop:${trip.stopSince}`, ts, {
            name: 'stop',
            value: dur / 1000,
            factors: {
              start_ts: trip.stopSince,
              end_ts: ts,
              duration_s: dur / 1000,
              ...(trip.stopAt ? { lat: trip.stopAt[0], lon: trip.stopAt[1] } : {}),
            },
          })
        }
        trip.stopSince = null
        trip.stopAt = null
        trip.idleInStop = 0
      }
    } else if (trip.stopSince === null) {
      trip.stopSince = ts
      trip.stopAt = s.fix ? [s.fix[1], s.fix[2]] : null
      posReason = 'stop'
    }
  } else if (moving && engine !== false && (prevTs === null || ts > prevTs)) {
    s.trip = {
      start: ts,
      km: 0,
      max: 0,
      stopSince: null,
      stopAt: null,
      idleMs: 0,
      stops: 0,
      stopMs: 0,
      fuel0: fuelSmoothed(s),
      refuel: 0,
      owesStart: true,
    }
    posReason = 'trip_start'
  }
  if (s.trip && speed > s.trip.max) s.trip.max = speed
  return posReason
}

/**
 * The rest of this reading's distance belongs to the open trip: segments after the one that ended, and for a
 * trip starting now only the one into this reading (not one across a gap).
 */
function tripDistance(s: RoadState, segs: Seg[], ts: number, closeEnd: number | null, c: RoadConfig): void {
  const cur = s.trip
  if (!cur) return
  for (const g of segs) {
    if (g[1] < cur.start || (closeEnd !== null && g[1] <= closeEnd)) continue
    if (cur.start === ts && g[1] - g[0] >= c.tripStopMs) continue
    cur.km += g[2]
  }
}

/**
 * Standing, for idle time: the OBD speed reads 0 (whole km/h: under 0.5), else the speed is at most
 * stationaryKmh. Not the trip's 5 km/h: a bus brakes and pulls away below that for a second or two at every
 * stop, which summed over a trip's stops was +18 % of its idle time (docs/benchmarks.md, fleet evaluation).
 */
function standingOf(f: Reading['fields'], speed: number | undefined, c: RoadConfig): boolean | undefined {
  const obd = num(f['obd_speed'])
  if (obd !== undefined) return obd < 0.5
  return speed === undefined ? undefined : speed <= c.stationaryKmh
}

/** Idle: engine on, not moving. Time counts from the previous reading when it was idle too; long idling alerts. */
function stepIdle(
  s: RoadState,
  ctx: ActorContext,
  ts: number,
  prevTs: number | null,
  gap: boolean,
  standing: boolean | undefined,
  engine: boolean | undefined,
  c: RoadConfig,
): void {
  const idleNow = s.engine === true && standing === true
  // After a silence longer than speedIntegrateMaxMs (a link dropout), a reading that is not idle ends the idle
  // where the data ended: the vehicle may have driven off at any time in between (and stopped again).
  const endsAt = prevTs !== null && ts - prevTs > c.speedIntegrateMaxMs ? prevTs : ts
  const trip = s.trip
  if (s.idle && prevTs !== null && !gap && trip && (idleNow || endsAt === ts)) {
    trip.idleMs += ts - prevTs
    if (trip.stopSince !== null && prevTs >= trip.stopSince) trip.idleInStop = (trip.idleInStop ?? 0) + ts - prevTs
  }
  if (idleNow) {
    if (!s.idle) s.idle = [ts, 0]
    else if (s.idle[1] === 0 && ts - s.idle[0] >= c.idleAlertMs) {
      s.idle[1] = 1
      emitAlert(ctx, ts, {
        type: 'idling',
        severity: 'info',
        state: 'open',
        start: s.idle[0],
        value: (ts - s.idle[0]) / 1000,
        threshold: c.idleAlertMs / 1000,
        explanation: `engine idling for ${Math.round((ts - s.idle[0]) / 60_000)} min`,
      })
    }
  } else if (s.idle && (standing !== undefined || engine === false)) endIdle(s, ctx, endsAt, c)
}

/** Positions: the trip's first fix (owed since it started), then this reading's fix for a reason or every positionIntervalMs. */
function emitPositions(
  s: RoadState,
  ctx: ActorContext,
  ts: number,
  accepted: Accepted[],
  reason: PositionBody['reason'] | null,
  c: RoadConfig,
): void {
  let posReason = reason
  const mine = accepted.find((a) => a[3] === ctx.seq)
  const trip = s.trip
  const first = trip?.owesStart ? accepted.find((a) => a[0] >= trip.start) : undefined
  if (trip && first) {
    trip.owesStart = false
    if (first[3] !== ctx.seq) emitPosition(s, ctx, [first[0], first[1], first[2]], first[3], 'trip_start')
    else posReason = 'trip_start'
  }
  if (mine && s.fix !== null) {
    if (posReason === null && (s.posTs === null || ts - s.posTs >= c.positionIntervalMs)) posReason = 'sample'
    if (posReason !== null) emitPosition(s, ctx, s.fix, ctx.seq, posReason)
  }
}

/** Geofences on the fix, or while the vehicle stands on the mean of the stand's fixes (steadier than any one of them). */
function fenceSteps(
  s: RoadState,
  ctx: ActorContext,
  accepted: Accepted[],
  prevFix: RoadState['fix'],
  c: RoadConfig,
): void {
  let before = prevFix
  for (const a of accepted) {
    stepFences(s, ctx, a[0], [a[1], a[2]], [a[4], a[5]], before, c)
    before = [a[0], a[1], a[2]]
  }
}

/** Diagnostic trouble codes: the reported set opens an alert per new code and closes those no longer reported. */
function stepDtc(s: RoadState, ctx: ActorContext, ts: number, dtc: string): void {
  const now = new Set(
    dtc
      .split(',')
      .map((x) => x.trim().toUpperCase())
      .filter((x) => x !== ''),
  )
  for (const code of Object.keys(s.dtc).sort()) {
    if (!now.has(code)) {
      const start = s.dtc[code] as number
      delete s.dtc[code]
      emitAlert(ctx, ts, {
        sub: code,
        type: 'dtc',
        severity: 'warning',
        state: 'close',
        start,
        end: ts,
        value: 0,
        threshold: 0,
        explanation: `trouble code ${code} cleared`,
        details: { code },
      })
    }
  }
  for (const code of [...now].sort()) {
    if (s.dtc[code] === undefined) {
      s.dtc[code] = ts
      emitAlert(ctx, ts, {
        sub: code,
        type: 'dtc',
        severity: 'warning',
        state: 'open',
        start: ts,
        value: 1,
        threshold: 0,
        explanation: `diagnostic trouble code ${code} reported`,
        details: { code },
      })
    }
  }
}

/** Engine overheat: coolant above overheatC for overheatMs opens, below it by the hysteresis closes. */
function stepOverheat(s: RoadState, ctx: ActorContext, ts: number, cool: number, c: RoadConfig): void {
  const ev = stepCond(s.oh, ts, cool, cool > c.overheatC, cool < c.overheatC - c.overheatHysteresis, c.overheatMs)
  if (ev?.[0] === 'open') {
    emitAlert(ctx, ts, {
      type: 'engine_overheat',
      severity: 'critical',
      state: 'open',
      start: ev[1],
      value: cool,
      threshold: c.overheatC,
      explanation: `coolant ${cool} °C > ${c.overheatC} °C for >= ${c.overheatMs / 1000} s`,
    })
  } else if (ev?.[0] === 'close') {
    emitAlert(ctx, ts, {
      type: 'engine_overheat',
      severity: 'critical',
      state: 'close',
      start: ev[1],
      end: ts,
      value: cool,
      threshold: c.overheatC,
      explanation: `coolant back to ${cool} °C (< ${c.overheatC - c.overheatHysteresis} °C)`,
    })
  }
}

/** Fuel: smoothed level, low fuel, refuel and drops, and the trip's starting level. */
function stepFuel(
  s: RoadState,
  ctx: ActorContext,
  ts: number,
  fuel: number,
  speed: number | undefined,
  c: RoadConfig,
): void {
  pushFuel(s, ts, fuel, c)
  const sm = fuelSmoothed(s)
  if (sm === null) return
  lowFuel(s, ctx, ts, fuel, sm, c)
  fuelEvents(s, ctx, ts, sm, speed !== undefined && speed > c.tripStartKmh, c)
  if (s.trip && s.trip.fuel0 === null) s.trip.fuel0 = sm
}

/** One reading: staleness, late check, trip rules, distance, position, trip and idle, positions, geofences, ignition, DTCs, overheat, fuel. */
function onReading(s: RoadState, r: Reading, ctx: ActorContext, c: RoadConfig): void {
  const ts = r.ts
  const f = r.fields
  unitBack(s, ctx, ts, c)
  if (rejectLate(s, r, ctx)) return
  const prevTs = s.lastTs
  s.lastTs = ts
  const prevFix = s.fix
  const prevFixSeq = s.fixSeq

  const speed = num(f['speed']) ?? num(f['obd_speed'])
  if (speed !== undefined) s.speed = speed
  const heading = num(f['heading'])
  if (heading !== undefined) s.heading = heading
  const engine = engineOf(f)
  if (engine !== undefined) s.engine = engine
  const gap = prevTs !== null && ts - prevTs >= c.tripStopMs

  // Trip rules a and c: decided now, applied once this reading's distance is known (a candidate fix confirmed
  // now may still belong to the trip that ends).
  let closeEnd = stopEnd(s, c, ts, prevTs, speed)
  const closeByGap = closeEnd === null && gap && prevTs !== null && !!s.trip
  if (closeByGap) closeEnd = prevTs
  if (gap && prevTs !== null) endIdle(s, ctx, prevTs, c)

  const segs: Seg[] = []
  const covFrom = speed !== undefined ? speedDistance(s, segs, ts, speed, c) : null
  const accepted = positionFixes(s, r, segs, ctx.seq, speed, covFrom, c)
  if (s.trip && closeEnd !== null) closeEndedTrip(s, ctx, segs, closeEnd, closeByGap, prevTs, prevFix, prevFixSeq, c)
  const posReason = speed !== undefined ? stepTrip(s, ctx, ts, prevTs, speed, engine, c) : null
  tripDistance(s, segs, ts, closeEnd, c)
  stepIdle(s, ctx, ts, prevTs, gap, standingOf(f, speed, c), engine, c)
  emitPositions(s, ctx, ts, accepted, posReason, c)
  fenceSteps(s, ctx, accepted, prevFix, c)

  // Ignition off ends the trip (rule b) and the idle.
  if (engine === false && typeof f['ignition'] !== 'undefined') {
    endIdle(s, ctx, ts, c)
    if (s.trip) closeTripAt(s, ctx, ts, c)
  }
  if (s.trip) ctx.setTimer(QUIET_TIMER, 'processing', ctx.procTime + c.tripQuietMs)
  const dtc = f['dtc']
  if (typeof dtc === 'string') stepDtc(s, ctx, ts, dtc)
  const cool = num(f['coolant_temp'])
  if (cool !== undefined) stepOverheat(s, ctx, ts, cool, c)
  const fuel = num(f['fuel_level'])
  if (fuel !== undefined) stepFuel(s, ctx, ts, fuel, speed, c)
}

function onTimer(s: RoadState, t: FiredTimer, ctx: ActorContext, c: RoadConfig): void {
  if (t.name === QUIET_TIMER) {
    // The unit went quiet (rule d): end the trip and the idle where the data ended.
    if (s.lastTs === null) return
    endIdle(s, ctx, s.lastTs, c)
    closeTripAt(s, ctx, s.lastTs, c)
    return
  }
  if (t.name !== STALE_TIMER || s.stale !== null || s.lastTs === null) return
  s.stale = s.lastTs
  emitAlert(ctx, s.lastTs, {
    type: 'unit_offline',
    severity: 'warning',
    state: 'open',
    start: s.lastTs,
    value: t.now - (t.at - c.staleAfterMs),
    threshold: c.staleAfterMs,
    explanation: `no data from the on-board unit for ${c.staleAfterMs / 60_000} min`,
  })
}

function init(_e: EntityRef, c: RoadConfig): RoadState {
  validateRoadConfig(c)
  return {
    lastTs: null,
    fix: null,
    fixSeq: null,
    cand: null,
    lastFixTs: null,
    vmax: null,
    anc: null,
    cov: 0,
    am: null,
    spd: null,
    posTs: null,
    posSeq: null,
    speed: null,
    heading: null,
    engine: null,
    idle: null,
    trip: null,
    day: null,
    dayKm: 0,
    odoKm: 0,
    gf: {},
    gfVer: null,
    dtc: {},
    oh: [null, null, 0],
    lf: [null, null, 0],
    lowSince: null,
    fb: [],
    fh: [],
    ft: [],
    fbin: null,
    fline: null,
    fev: null,
    stale: null,
    late: 0,
    jumps: 0,
    badFixes: 0,
  }
}

/** Version 2: GPS filter, idle, fuel smoothing and events, geofence states with pending enters. */
const CODEC_VERSION = 2
const copyArr = <T extends unknown[] | null>(a: T): T => (a ? [...a] : null) as T
const codec: SnapshotCodec<RoadState> = {
  version: CODEC_VERSION,
  // A copy: the runtime may hold the snapshot while the live state moves on.
  encode: (s) => ({
    ...s,
    fix: copyArr(s.fix),
    cand: copyArr(s.cand),
    anc: copyArr(s.anc),
    am: copyArr(s.am ?? null),
    spd: copyArr(s.spd),
    idle: copyArr(s.idle),
    trip: s.trip ? { ...s.trip, stopAt: copyArr(s.trip.stopAt) } : null,
    gf: Object.fromEntries(Object.entries(s.gf).map(([k, v]) => [k, [...v]])),
    dtc: { ...s.dtc },
    oh: [...s.oh],
    lf: [...s.lf],
    fb: [...s.fb],
    fh: [...s.fh],
    ft: [...(s.ft ?? [])],
    fbin: copyArr(s.fbin ?? null),
    fline: copyArr(s.fline ?? null),
    fev: copyArr(s.fev),
  }),
  decode: (d, v) => {
    if (v !== 1 && v !== CODEC_VERSION)
      throw new SnapshotError(
        RuntimeErrorCodes.SNAPSHOT_VERSION,
        `road snapshot version ${v} is not 1 or ${CODEC_VERSION}`,
      )
    const s = d as RoadState & { fences?: Record<string, number> }
    if (!s || typeof s !== 'object' || !Array.isArray(s.oh) || !Array.isArray(s.lf) || typeof s.dtc !== 'object') {
      throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'road snapshot is malformed')
    }
    if (v === 1) {
      // Version 1: geofences as id -> enter start, no GPS filter / idle / fuel state. The last fix becomes the
      // distance anchor, so the distance goes on from where it was.
      const old = s.fences ?? {}
      delete s.fences
      s.gf = Object.fromEntries(Object.entries(old).map(([id, start]) => [id, [start, null] as FenceState]))
      s.gfVer = null
      s.cand = null
      s.lastFixTs = s.fix ? s.fix[0] : null
      s.vmax = s.speed ?? null
      s.anc = s.fix ? [...s.fix] : null
      s.cov = 0
      s.spd = null
      s.engine = null
      s.idle = null
      s.lowSince = s.lf[0] ?? null
      s.fb = []
      s.fh = []
      s.fev = null
      s.badFixes = 0
      if (s.trip)
        Object.assign(s.trip, {
          stopAt: null,
          idleMs: 0,
          stops: 0,
          stopMs: 0,
          fuel0: null,
          refuel: 0,
          owesStart: false,
        })
      // Snapshots written before positions existed: no position emitted yet (the next fix is a sample).
      s.fixSeq ??= null
      s.posTs ??= null
      s.posSeq ??= null
    } else if (typeof s.gf !== 'object' || !Array.isArray(s.fb) || !Array.isArray(s.fh)) {
      throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'road snapshot is malformed')
    }
    // Written before the stand's mean existed: it starts again at the next fix.
    s.am ??= null
    // Written before the trend window existed: it fills again from the next readings.
    if (!Array.isArray(s.ft)) s.ft = []
    s.fbin ??= null
    s.fline ??= null
    // Written before the line carried its spread: no early margin until the next bin refits it.
    if (s.fline && s.fline.length < 4) s.fline = [s.fline[0], s.fline[1], s.fline[2], 0]
    return s
  },
}

export interface RoadView {
  position: { lat: number; lon: number; ts: number; heading: number | null } | null
  speed: number | null
  trip: { start: number; distance_km: number; max_speed: number; stopped_since: number | null; idle_s: number } | null
  distanceToday: { day: number | null; km: number }
  odometerKm: number
  /** Smoothed fuel level (%), null before three readings of the window. */
  fuelLevel: number | null
  /** Geofences the vehicle is in: id -> enter time; and the version of the published set applied. */
  geofences: Record<string, number>
  geofenceVersion: number | null
  idleSince: number | null
  openAlerts: Array<{ alertId: string; type: string; severity: Severity; start: number }>
  late: number
  gpsJumps: number
}

function query(s: RoadState, q: { entity: EntityRef }): RoadView {
  const e = q.entity
  const open: RoadView['openAlerts'] = []
  const inside: Record<string, number> = {}
  for (const [id, st] of Object.entries(s.gf)) {
    if (st[0] === null) continue
    inside[id] = st[0]
    open.push({ alertId: alert.alertId(e, 'geofence', st[0], id), type: 'geofence', severity: 'info', start: st[0] })
  }
  for (const [code, start] of Object.entries(s.dtc))
    open.push({ alertId: alert.alertId(e, 'dtc', start, code), type: 'dtc', severity: 'warning', start })
  if (s.oh[1] !== null)
    open.push({
      alertId: alert.alertId(e, 'engine_overheat', s.oh[1]),
      type: 'engine_overheat',
      severity: 'critical',
      start: s.oh[1],
    })
  if (s.lf[1] !== null)
    open.push({ alertId: alert.alertId(e, 'low_fuel', s.lf[1]), type: 'low_fuel', severity: 'warning', start: s.lf[1] })
  if (s.idle?.[1] === 1)
    open.push({ alertId: alert.alertId(e, 'idling', s.idle[0]), type: 'idling', severity: 'info', start: s.idle[0] })
  if (s.stale !== null)
    open.push({
      alertId: alert.alertId(e, 'unit_offline', s.stale),
      type: 'unit_offline',
      severity: 'warning',
      start: s.stale,
    })
  return {
    position: s.fix ? { ts: s.fix[0], lat: s.fix[1], lon: s.fix[2], heading: s.heading } : null,
    speed: s.speed,
    trip: s.trip
      ? {
          start: s.trip.start,
          distance_km: s.trip.km,
          max_speed: s.trip.max,
          stopped_since: s.trip.stopSince,
          idle_s: s.trip.idleMs / 1000,
        }
      : null,
    distanceToday: { day: s.day, km: s.day !== null && s.lastTs !== null && s.lastTs - s.day < DAY_MS ? s.dayKm : 0 },
    odometerKm: s.odoKm,
    fuelLevel: fuelSmoothed(s),
    geofences: inside,
    geofenceVersion: s.gfVer,
    idleSince: s.idle?.[0] ?? null,
    openAlerts: open,
    late: s.late,
    gpsJumps: s.jumps,
  }
}

export const road = defineActor<RoadState, RoadConfig>({
  kind: 'vehicle',
  profile: 'road',
  allowedLatenessMs: (c) => {
    validateRoadConfig(c)
    return c.allowedLatenessMs
  },
  defaults: ROAD_DEFAULTS,
  init,
  codec,
  onReading,
  onTimer,
  query: (s, q) => query(s, q),
})
