/**
 * Vehicle profile `road`: one actor per road vehicle of the multi-brand fleet (DOMAIN.md section 5).
 *
 * Reading fields (all optional per reading): GPS `lat`, `lon` (or `loc`), `speed` km/h, `heading` °; OBD-2
 * `obd_speed` km/h, `rpm`, `coolant_temp` °C, `fuel_level` %, `engine_load` %, `dtc` (comma-separated trouble
 * codes, e.g. "P0301,P0420", or "" for none). Speed is the GPS `speed`, else `obd_speed`.
 *
 * On each reading (event time `ts`):
 *  - staleness: the processing-time timer `stale` is re-armed at procTime + staleAfterMs; an open
 *    `unit_offline` alert closes (end = ts). When the timer fires, `unit_offline` (warning) opens with
 *    start = event time of the last applied reading. Late readings count as signs of life too.
 *  - late: a reading older than the last applied one (ts < last ts) is emitted as `late` (key `late:<seq>`) and
 *    not applied to anything else (position, trips, distance, alerts).
 *  - distance: haversine between consecutive accepted fixes; a fix implying more than maxJumpKmh from the last
 *    accepted fix is a GPS jump: ignored (it does not move the position either). Distance today is per UTC day.
 *  - trips: outside a trip, speed > tripStartKmh starts one at ts. In a trip, speed <= tripStartKmh marks the
 *    start of a stop; once a reading is >= tripStopMs after that stop began (still stopped, or moving again), the
 *    trip ends at the stop start. A gap of >= tripStopMs without readings ends it at the last reading before the
 *    gap (units are often powered off when parked). A trip therefore always follows >= tripStopMs stopped (or
 *    silent), or the first reading.
 *    CHOICE: a finished trip is ONE `score` output (name `trip`, value = distance km, key `trip:<start_ts>`,
 *    ts = end_ts, factors {distance_km, duration_s, max_speed, avg_speed, start_ts, end_ts}) rather than a pair
 *    of `trip` alerts: a trip is a measurement, not a condition to act on, so it stays out of alert lists,
 *    counts and notifications, and one self-contained row is what trip reports need.
 *  - positions: a `position` output (key `pos:<readingSeq>`, ts = the fix's event time, body {lat, lon, speed,
 *    heading, reason, readingSeq}) for an accepted fix when it starts a trip (`trip_start`), begins a stop in a
 *    trip (`stop`, a possible trip end), or is >= positionIntervalMs of event time after the last position emitted
 *    (`sample`; 0 = every accepted fix); and, when a trip ends after a gap, the last fix before the gap
 *    (`trip_end`) unless it was emitted already. A trip ended by a stop ends at the `stop` position. So a trip's
 *    positions bound its path at one point per positionIntervalMs plus its stops, and the live map and trip
 *    geometry need no raw-reading store. At most one position per reading, keyed by its stream sequence, so a
 *    replay emits the same ones.
 *  - geofences (config): entering opens an alert `geofence` (info), leaving closes it.
 *  - DTC: one `dtc` alert (warning) per code: opens when the code appears in `dtc`, closes when it disappears.
 *  - engine_overheat (critical): coolant > overheatC for >= overheatMs; closes below overheatC - hysteresis.
 *  - low_fuel (warning): fuel < lowFuelPct for >= lowFuelMs; closes above lowFuelPct + hysteresis.
 * Alerts: output `alert`, key `<alertId>:<state>:<seq>`, ts = event time. alertId is
 * `<kind>:<id>:<type>:<start>`, with the code / geofence id before the start for per-code / per-fence alerts
 * (`vehicle:V1:dtc:P0301:<start>`), so several can be open at once.
 */
import { defineActor } from '../../actor.js'
import type { ActorContext, FiredTimer, SnapshotCodec } from '../../actor.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import type { AlertBody, EntityRef, PositionBody, Reading, Severity } from '../../types.js'

export interface Geofence { id: string; lat: number; lon: number; radiusM: number }

export interface RoadConfig {
  /** Watermark lateness (readings are applied in arrival order; older ones are `late`). */
  allowedLatenessMs: number
  tripStartKmh: number
  tripStopMs: number
  /** Implied speed between fixes above which a fix is a GPS jump. */
  maxJumpKmh: number
  geofences: readonly Geofence[]
  overheatC: number
  overheatMs: number
  overheatHysteresis: number
  lowFuelPct: number
  lowFuelMs: number
  lowFuelHysteresis: number
  staleAfterMs: number
  /** Event time between two sampled `position` outputs (trip starts, stops and ends are always emitted); 0 = every fix. */
  positionIntervalMs: number
}

export const ROAD_DEFAULTS: RoadConfig = Object.freeze({
  allowedLatenessMs: 0,
  tripStartKmh: 5,
  tripStopMs: 180_000,
  maxJumpKmh: 200,
  geofences: Object.freeze([]) as readonly Geofence[],
  overheatC: 110,
  overheatMs: 30_000,
  overheatHysteresis: 5,
  lowFuelPct: 10,
  lowFuelMs: 60_000,
  lowFuelHysteresis: 3,
  staleAfterMs: 600_000,
  positionIntervalMs: 60_000,
})

export const STALE_TIMER = 'stale'
const DAY_MS = 86_400_000
const EARTH_R_M = 6_371_008.8

/** Great-circle distance in metres. */
export function haversineM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180
  const dLat = (lat2 - lat1) * rad
  const dLon = (lon2 - lon1) * rad
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_R_M * Math.asin(Math.min(1, Math.sqrt(a)))
}

/** Checks a road config; throws ConfigError naming the setting. */
export function validateRoadConfig(c: RoadConfig): void {
  const nums = ['allowedLatenessMs', 'tripStartKmh', 'tripStopMs', 'maxJumpKmh', 'overheatC', 'overheatMs',
    'overheatHysteresis', 'lowFuelPct', 'lowFuelMs', 'lowFuelHysteresis', 'staleAfterMs', 'positionIntervalMs'] as const
  for (const k of nums) {
    const v = c[k]
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ConfigError(`road.${k}`, `must be a finite number >= 0, got ${String(v)}`)
    }
  }
  if (c.maxJumpKmh <= 0) throw new ConfigError('road.maxJumpKmh', 'must be > 0')
  if (c.staleAfterMs <= 0) throw new ConfigError('road.staleAfterMs', 'must be > 0')
  if (!Array.isArray(c.geofences)) throw new ConfigError('road.geofences', 'must be an array')
  const ids = new Set<string>()
  c.geofences.forEach((g: Geofence, i: number) => {
    const at = `road.geofences[${i}]`
    if (!g || typeof g !== 'object') throw new ConfigError(at, 'must be an object {id, lat, lon, radiusM}')
    if (typeof g.id !== 'string' || g.id === '' || g.id.includes(':')) throw new ConfigError(`${at}.id`, 'must be a non-empty string without ":"')
    if (ids.has(g.id)) throw new ConfigError(`${at}.id`, `duplicate geofence id ${g.id}`)
    ids.add(g.id)
    if (typeof g.lat !== 'number' || !(g.lat >= -90 && g.lat <= 90)) throw new ConfigError(`${at}.lat`, 'must be in -90..90')
    if (typeof g.lon !== 'number' || !(g.lon >= -180 && g.lon <= 180)) throw new ConfigError(`${at}.lon`, 'must be in -180..180')
    if (typeof g.radiusM !== 'number' || !Number.isFinite(g.radiusM) || g.radiusM <= 0) throw new ConfigError(`${at}.radiusM`, 'must be > 0')
  })
}

/** A duration condition: `since` = event time the condition began (null = not met), `open` = alert start or null, value at open. */
type Cond = [since: number | null, open: number | null, value: number]

interface Trip { start: number; km: number; max: number; stopSince: number | null }

export interface RoadState {
  /** Event time of the last applied reading. */
  lastTs: number | null
  /** Last accepted fix: [ts, lat, lon] or null. */
  fix: [number, number, number] | null
  /** Stream sequence of the reading of `fix`. */
  fixSeq: number | null
  /** Event time and reading sequence of the last `position` output (null before the first). */
  posTs: number | null
  posSeq: number | null
  speed: number | null
  heading: number | null
  trip: Trip | null
  /** Start of the UTC day of `dayKm`. */
  day: number | null
  dayKm: number
  odoKm: number
  /** Geofences the vehicle is in: id -> alert start. */
  fences: Record<string, number>
  /** Open DTCs: code -> alert start. */
  dtc: Record<string, number>
  oh: Cond
  lf: Cond
  /** Start of the open unit_offline alert, or null. */
  stale: number | null
  late: number
  jumps: number
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)

function alertId(e: EntityRef, type: string, start: number, sub?: string): string {
  return sub === undefined ? `${e.kind}:${e.id}:${type}:${start}` : `${e.kind}:${e.id}:${type}:${sub}:${start}`
}

function emitAlert(ctx: ActorContext, ts: number, b: Omit<AlertBody, 'alertId'> & { sub?: string }): void {
  const { sub, ...rest } = b
  const id = alertId(ctx.entity, b.type, b.start, sub)
  const body: AlertBody = { alertId: id, ...rest }
  ctx.emit('alert', `${id}:${b.state}:${ctx.seq}`, ts, body)
}

/**
 * Advances a threshold-for-duration condition: opens once `over` has held for >= durMs of event time (start =
 * when it began), closes when `clear`. Returns the event and the alert start, or null.
 */
function stepCond(c: Cond, ts: number, v: number, over: boolean, clear: boolean, durMs: number): ['open' | 'close', number] | null {
  const open = c[1]
  if (open !== null) {
    if (clear) { c[0] = null; c[1] = null; return ['close', open] }
    return null
  }
  if (!over) { c[0] = null; return null }
  if (c[0] === null) c[0] = ts
  if (ts - c[0] >= durMs) { c[1] = c[0]; c[2] = v; return ['open', c[0]] }
  return null
}

function finishTrip(s: RoadState, trip: Trip, end: number, ctx: ActorContext): void {
  const durS = (end - trip.start) / 1000
  const km = trip.km
  ctx.emit('score', `trip:${trip.start}`, end, {
    name: 'trip',
    value: km,
    factors: {
      distance_km: km, duration_s: durS, max_speed: trip.max, avg_speed: durS > 0 ? km / (durS / 3600) : 0,
      start_ts: trip.start, end_ts: end,
    },
  })
  s.trip = null
}

/** Emits the `position` of `fix`, the fix of reading `seq`, and records it as the last position. */
function emitPosition(s: RoadState, ctx: ActorContext, fix: [number, number, number], seq: number, reason: PositionBody['reason']): void {
  const [ts, lat, lon] = fix
  // Speed and heading belong to the current reading: for the fix of an earlier one (trip_end) they are unknown.
  const body: PositionBody = { lat, lon, speed: seq === ctx.seq ? s.speed : null, heading: seq === ctx.seq ? s.heading : null, reason, readingSeq: seq }
  ctx.emit('position', `pos:${seq}`, ts, body)
  if (s.posTs === null || ts >= s.posTs) s.posTs = ts
  s.posSeq = seq
}

function onReading(s: RoadState, r: Reading, ctx: ActorContext, c: RoadConfig): void {
  const ts = r.ts
  const f = r.fields
  ctx.setTimer(STALE_TIMER, 'processing', ctx.procTime + c.staleAfterMs)
  if (s.stale !== null) {
    const end = Math.max(ts, s.stale)
    emitAlert(ctx, end, { type: 'unit_offline', severity: 'warning', state: 'close', start: s.stale, end, value: 0,
      threshold: c.staleAfterMs, explanation: 'on-board unit sends data again' })
    s.stale = null
  }
  if (s.lastTs !== null && ts < s.lastTs) {
    s.late++
    ctx.emit('late', `late:${ctx.seq}`, ts, { readingTs: ts, watermark: s.lastTs, readingSeq: ctx.seq, fields: f })
    return
  }
  const prevTs = s.lastTs
  s.lastTs = ts

  // Position and distance.
  const prevFix = s.fix
  const prevFixSeq = s.fixSeq
  const lat = num(f['lat']) ?? r.loc?.lat
  const lon = num(f['lon']) ?? r.loc?.lon
  let segKm = 0
  let accepted = false
  if (lat !== undefined && lon !== undefined && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) {
    if (s.fix === null) accepted = true
    else {
      const [pts, plat, plon] = s.fix
      const m = haversineM(plat, plon, lat, lon)
      const dtH = (ts - pts) / 3_600_000
      if (m === 0 || (dtH > 0 && m / 1000 / dtH <= c.maxJumpKmh)) { accepted = true; segKm = m / 1000 } else s.jumps++
    }
    if (accepted) {
      s.fix = [ts, lat, lon]
      s.fixSeq = ctx.seq
    }
  }
  const speed = num(f['speed']) ?? num(f['obd_speed'])
  if (speed !== undefined) s.speed = speed
  const heading = num(f['heading'])
  if (heading !== undefined) s.heading = heading

  // Trips.
  let posReason: PositionBody['reason'] | null = null
  if (speed !== undefined) {
    const moving = speed > c.tripStartKmh
    let trip = s.trip
    if (trip && trip.stopSince !== null && ts - trip.stopSince >= c.tripStopMs) {
      finishTrip(s, trip, trip.stopSince, ctx)
      trip = null
    } else if (trip && prevTs !== null && ts - prevTs >= c.tripStopMs) {
      // No data for >= tripStopMs (the unit is often powered off when parked): the trip ended at the last reading.
      finishTrip(s, trip, prevTs, ctx)
      trip = null
      if (prevFix !== null && prevFixSeq !== null && prevFix[0] === prevTs && s.posSeq !== prevFixSeq) {
        emitPosition(s, ctx, prevFix, prevFixSeq, 'trip_end')
      }
    }
    if (trip) {
      if (moving) trip.stopSince = null
      else if (trip.stopSince === null) {
        trip.stopSince = ts
        posReason = 'stop'
      }
    } else if (moving) {
      trip = s.trip = { start: ts, km: 0, max: 0, stopSince: null }
      posReason = 'trip_start'
    }
    if (trip && speed > trip.max) trip.max = speed
  }
  if (accepted && s.fix !== null) {
    if (posReason === null && (s.posTs === null || ts - s.posTs >= c.positionIntervalMs)) posReason = 'sample'
    if (posReason !== null) emitPosition(s, ctx, s.fix, ctx.seq, posReason)
  }
  if (segKm > 0) {
    const day = ts - (((ts % DAY_MS) + DAY_MS) % DAY_MS)
    if (s.day !== day) { s.day = day; s.dayKm = 0 }
    s.dayKm += segKm
    s.odoKm += segKm
    if (s.trip) s.trip.km += segKm
  }

  // Geofences.
  if (accepted && lat !== undefined && lon !== undefined) {
    for (const g of c.geofences) {
      const d = haversineM(g.lat, g.lon, lat, lon)
      const inside = d <= g.radiusM
      const start = s.fences[g.id]
      if (inside && start === undefined) {
        s.fences[g.id] = ts
        emitAlert(ctx, ts, { sub: g.id, type: 'geofence', severity: 'info', state: 'open', start: ts, value: d,
          threshold: g.radiusM, explanation: `entered geofence ${g.id} (${d.toFixed(0)} m from centre, radius ${g.radiusM} m)`,
          details: { geofence: g.id } })
      } else if (!inside && start !== undefined) {
        delete s.fences[g.id]
        emitAlert(ctx, ts, { sub: g.id, type: 'geofence', severity: 'info', state: 'close', start, end: ts, value: d,
          threshold: g.radiusM, explanation: `left geofence ${g.id}`, details: { geofence: g.id } })
      }
    }
  }

  // Diagnostic trouble codes.
  const dtc = f['dtc']
  if (typeof dtc === 'string') {
    const now = new Set(dtc.split(',').map((x) => x.trim().toUpperCase()).filter((x) => x !== ''))
    for (const code of Object.keys(s.dtc).sort()) {
      if (!now.has(code)) {
        const start = s.dtc[code] as number
        delete s.dtc[code]
        emitAlert(ctx, ts, { sub: code, type: 'dtc', severity: 'warning', state: 'close', start, end: ts, value: 0,
          threshold: 0, explanation: `trouble code ${code} cleared`, details: { code } })
      }
    }
    for (const code of [...now].sort()) {
      if (s.dtc[code] === undefined) {
        s.dtc[code] = ts
        emitAlert(ctx, ts, { sub: code, type: 'dtc', severity: 'warning', state: 'open', start: ts, value: 1,
          threshold: 0, explanation: `diagnostic trouble code ${code} reported`, details: { code } })
      }
    }
  }

  // Engine overheat and low fuel.
  const cool = num(f['coolant_temp'])
  if (cool !== undefined) {
    const ev = stepCond(s.oh, ts, cool, cool > c.overheatC, cool < c.overheatC - c.overheatHysteresis, c.overheatMs)
    if (ev?.[0] === 'open') {
      emitAlert(ctx, ts, { type: 'engine_overheat', severity: 'critical', state: 'open', start: ev[1], value: cool,
        threshold: c.overheatC, explanation: `coolant ${cool} °C > ${c.overheatC} °C for >= ${c.overheatMs / 1000} s` })
    } else if (ev?.[0] === 'close') {
      emitAlert(ctx, ts, { type: 'engine_overheat', severity: 'critical', state: 'close', start: ev[1], end: ts, value: cool,
        threshold: c.overheatC, explanation: `coolant back to ${cool} °C (< ${c.overheatC - c.overheatHysteresis} °C)` })
    }
  }
  const fuel = num(f['fuel_level'])
  if (fuel !== undefined) {
    const ev = stepCond(s.lf, ts, fuel, fuel < c.lowFuelPct, fuel > c.lowFuelPct + c.lowFuelHysteresis, c.lowFuelMs)
    if (ev?.[0] === 'open') {
      emitAlert(ctx, ts, { type: 'low_fuel', severity: 'warning', state: 'open', start: ev[1], value: fuel,
        threshold: c.lowFuelPct, explanation: `fuel ${fuel} % < ${c.lowFuelPct} % for >= ${c.lowFuelMs / 1000} s` })
    } else if (ev?.[0] === 'close') {
      emitAlert(ctx, ts, { type: 'low_fuel', severity: 'warning', state: 'close', start: ev[1], end: ts, value: fuel,
        threshold: c.lowFuelPct, explanation: `fuel back to ${fuel} % (> ${c.lowFuelPct + c.lowFuelHysteresis} %)` })
    }
  }
}

function onTimer(s: RoadState, t: FiredTimer, ctx: ActorContext, c: RoadConfig): void {
  if (t.name !== STALE_TIMER || s.stale !== null || s.lastTs === null) return
  s.stale = s.lastTs
  emitAlert(ctx, s.lastTs, { type: 'unit_offline', severity: 'warning', state: 'open', start: s.lastTs,
    value: t.now - (t.at - c.staleAfterMs), threshold: c.staleAfterMs,
    explanation: `no data from the on-board unit for ${c.staleAfterMs / 60_000} min` })
}

function init(_e: EntityRef, c: RoadConfig): RoadState {
  validateRoadConfig(c)
  return { lastTs: null, fix: null, fixSeq: null, posTs: null, posSeq: null, speed: null, heading: null, trip: null, day: null, dayKm: 0, odoKm: 0,
    fences: {}, dtc: {}, oh: [null, null, 0], lf: [null, null, 0], stale: null, late: 0, jumps: 0 }
}

const CODEC_VERSION = 1
const codec: SnapshotCodec<RoadState> = {
  version: CODEC_VERSION,
  // A copy: the runtime may hold the snapshot while the live state moves on.
  encode: (s) => ({ ...s, fix: s.fix ? [...s.fix] : null, trip: s.trip ? { ...s.trip } : null, fences: { ...s.fences },
    dtc: { ...s.dtc }, oh: [...s.oh], lf: [...s.lf] }),
  decode: (d, v) => {
    if (v !== CODEC_VERSION) throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_VERSION, `road snapshot version ${v} is not ${CODEC_VERSION}`)
    const s = d as RoadState
    if (!s || typeof s !== 'object' || !Array.isArray(s.oh) || !Array.isArray(s.lf) || typeof s.fences !== 'object' || typeof s.dtc !== 'object') {
      throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'road snapshot is malformed')
    }
    // Snapshots written before positions existed: no position emitted yet (the next fix is a sample).
    s.fixSeq ??= null
    s.posTs ??= null
    s.posSeq ??= null
    return s
  },
}

export interface RoadView {
  position: { lat: number; lon: number; ts: number; heading: number | null } | null
  speed: number | null
  trip: { start: number; distance_km: number; max_speed: number; stopped_since: number | null } | null
  distanceToday: { day: number | null; km: number }
  odometerKm: number
  openAlerts: Array<{ alertId: string; type: string; severity: Severity; start: number }>
  late: number
  gpsJumps: number
}

function query(s: RoadState, q: { entity: EntityRef }): RoadView {
  const e = q.entity
  const open: RoadView['openAlerts'] = []
  for (const [id, start] of Object.entries(s.fences)) open.push({ alertId: alertId(e, 'geofence', start, id), type: 'geofence', severity: 'info', start })
  for (const [code, start] of Object.entries(s.dtc)) open.push({ alertId: alertId(e, 'dtc', start, code), type: 'dtc', severity: 'warning', start })
  if (s.oh[1] !== null) open.push({ alertId: alertId(e, 'engine_overheat', s.oh[1]), type: 'engine_overheat', severity: 'critical', start: s.oh[1] })
  if (s.lf[1] !== null) open.push({ alertId: alertId(e, 'low_fuel', s.lf[1]), type: 'low_fuel', severity: 'warning', start: s.lf[1] })
  if (s.stale !== null) open.push({ alertId: alertId(e, 'unit_offline', s.stale), type: 'unit_offline', severity: 'warning', start: s.stale })
  return {
    position: s.fix ? { ts: s.fix[0], lat: s.fix[1], lon: s.fix[2], heading: s.heading } : null,
    speed: s.speed,
    trip: s.trip ? { start: s.trip.start, distance_km: s.trip.km, max_speed: s.trip.max, stopped_since: s.trip.stopSince } : null,
    distanceToday: { day: s.day, km: s.day !== null && s.lastTs !== null && s.lastTs - s.day < DAY_MS ? s.dayKm : 0 },
    odometerKm: s.odoKm,
    openAlerts: open,
    late: s.late,
    gpsJumps: s.jumps,
  }
}

export const road = defineActor<RoadState, RoadConfig>({
  kind: 'vehicle',
  profile: 'road',
  allowedLatenessMs: (c) => { validateRoadConfig(c); return c.allowedLatenessMs },
  defaults: ROAD_DEFAULTS,
  init,
  codec,
  onReading,
  onTimer,
  query: (s, q) => query(s, q),
})
