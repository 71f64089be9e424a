/**
 * Scores a fleet-tracking run against the scenario's truth (bench/eval/fleet-scenario.ts). Input: per vehicle,
 * the outputs a profile emitted (as an in-memory run, the projector or the live feed would see them) stamped
 * with when they were emitted; output: what a fleet manager would see wrong, in numbers. The output shapes it
 * understands are the documented ones of the road profile (docs/profiles.md: `score` `trip`, alerts `geofence`,
 * `low_fuel`, `dtc`, `engine_overheat`, `position`) plus the names issue 22 asks for (`trip`, `geofence`,
 * `refuel`, `fuel_drop`, `stop`, `idle` as output types or alert types), so a profile that grows them is scored
 * without changing this file. Tolerances are constants below, documented in bench/eval/fleet-README.md.
 */
import { haversineM } from './geo.js'
import type { LatLon } from './geo.js'
import type { Fence, VehicleTruth, InjectedFaults, TrueFenceEvent } from './fleet-scenario.js'

/** A reported trip closes a true trip when it ends within this of the true end. */
export const TRIP_END_TOL_MS = 120_000
/** A fence event matches a true one of the same vehicle, fence and direction within this time. */
export const FENCE_TOL_MS = 90_000
/** A fuel event matches a true one when it falls in [start - this, end + FUEL_AFTER_MS]. */
export const FUEL_BEFORE_MS = 60_000
export const FUEL_AFTER_MS = 300_000
/** Low fuel raised more than this after (or before) a true crossing is not counted as that crossing's. */
export const LOW_FUEL_WINDOW_MS = 30 * 60_000
/** A missing fence event is "shallow in the fixes" when its episode's fixes reach less than this beyond the edge. */
export const SHALLOW_FIX_M = 1
/** The target: low fuel raised at most this long after the true crossing (early is on time). */
export const LOW_FUEL_ON_TIME_MS = 60_000
/**
 * Horizon of an early warning, in engine-on time: a warning is that crossing's when the true level crosses
 * within this much engine-on time after it (fuel burns only with the engine on; a layover in between does
 * not count against it), else it is false (raised for a vehicle that did not get low).
 */
export const LOW_FUEL_HORIZON_ENGINE_MS = 30 * 60_000
/** An overheat alert belongs to an episode when it opens in [start, end + this]. */
export const OVERHEAT_AFTER_MS = 120_000
/** An `enter` of a fence the vehicle starts the day inside, within this time of its first reading, is optional. */
export const INITIAL_ENTER_MS = 120_000
/** A position farther than this from the vehicle's true position at its reading counts as wrong. */
export const POSITION_WRONG_M = 100
/**
 * Stops and idling, as a fleet report counts them: true periods are scored by length (recall per bucket, from
 * these lower bounds, ms). Stops: standstills of 30 s or more inside a trip; idle periods: the engine on and the
 * vehicle standing for 60 s or more; idling alerts: idle periods of 5 min or more. A report is extra when it
 * overlaps no true period of at least the `...EXTRA_MIN_MS` length: braking and pulling away add a few seconds
 * to a standstill, so a 30 s stop reported over a 25 s dwell is not wrong, one over a 10 s dwell or while the
 * bus drives is.
 */
export const STOP_BUCKETS_MS = [30_000, 60_000]
export const STOP_EXTRA_MIN_MS = 20_000
export const IDLE_BUCKETS_MS = [60_000, 120_000]
export const IDLE_EXTRA_MIN_MS = 45_000
export const IDLING_BUCKETS_MS = [300_000, 360_000]
export const IDLING_EXTRA_MIN_MS = 240_000

/** An output as the runtime hands it over (site, partition, token stamped or not). */
export interface LooseOutput {
  type: string
  ts: number
  seq: number
  body: unknown
}

/** An output and when it was produced: `at` is the event time of the input that produced it (the reading's ts,
 *  or for a processing-time tick the tick's time minus the transport latency), `procTime` the processing time. */
export interface TimedOutput {
  output: LooseOutput
  at: number
  procTime: number
}

export interface VehicleRun {
  vin: string
  truth: VehicleTruth
  faults?: InjectedFaults
  outputs: TimedOutput[]
  /** What the profile says the odometer is (live query), when it has one. */
  odometerKm?: number
  /** Processing time after the unit's last reading until which the run went on (ticks only). */
  horizonMs: number
  /** Readings' true positions and event times by stream sequence, to score positions (optional). */
  truthBySeq?: Map<number, { ts: number; pos: LatLon; jump: boolean }>
}

/** Figures of a signed quantity: median, p95 and max of magnitudes, the signed median and the signed worst. */
export interface Dist {
  n: number
  median: number
  p95: number
  max: number
  worst: number
  medianSigned: number
}

export interface FleetScore {
  vehicles: number
  trips: {
    /** matched: true trips with at least one reported piece; extra: reported trips overlapping no true trip;
     *  split: pieces beyond the first. */
    truth: number
    reported: number
    matched: number
    missing: number
    extra: number
    split: number
    startErrS: Dist
    endErrS: Dist
    /** Distance error (%) of closed trips, all pieces summed. */
    distancePct: Dist
    /** Processing time from the true ignition off to the output of the piece that closes the trip (s). */
    closeAfterOffS: Dist
    /** Last trip of the day: processing time after the unit went quiet until it was reported (s). */
    lastTripCloseAfterQuietS: Dist
    /** True trips no reported trip closes (ends within TRIP_END_TOL_MS of the true end) by the horizon. */
    leftOpen: number
    /** Of which the day's last trips. */
    lastLeftOpen: number
  }
  odometer: { trueKm: number; reportedKm: number; errPct: number; source: 'query' | 'trips' }
  fences: {
    /** Not scored: grazes under 1 m, and episodes no true fix saw. */
    /** extraPct: extra / scored true events on the fences the profile was given. */
    truth: number
    ambiguous: number
    matched: number
    missing: number
    extra: number
    extraPct: number
    missingByKind: Record<string, number>
    extraByKind: Record<string, number>
    timeErrS: Dist
    /** Missing events whose episode's reported fixes reach less than SHALLOW_FIX_M beyond the edge on its side
     *  (TrueFenceEvent.fixDepthM): within the GPS error, not told apart from noise. Informational, part of `missing`. */
    missingShallowFixes: number
    /** Fences the profile was not given (e.g. polygons to a circles-only profile): their events count missing. */
    notConfigured: number
  }
  /** Window rule: a raise within LOW_FUEL_WINDOW_MS (wall time, either side) of a crossing is that crossing's.
   *  onTime: raised at most LOW_FUEL_ON_TIME_MS after it (early included); early: before it. */
  lowFuel: {
    crossings: number
    raised: number
    missed: number
    false: number
    delayS: Dist
    onTime: number
    early: number
    /** Horizon rule: a raise is the crossing's when that crossing comes within LOW_FUEL_HORIZON_ENGINE_MS of
     *  engine-on time after it, or LOW_FUEL_WINDOW_MS after the crossing; else it is false. Delays signed
     *  (early negative); earlyEngineS: engine-on time from the raise to the crossing for early raises. */
    horizon: {
      raised: number
      missed: number
      false: number
      onTime: number
      early: number
      delayS: Dist
      earlyEngineS: Dist
    }
  }
  fuelEvents: {
    refuel: { truth: number; detected: number; extra: number }
    fuelDrop: { truth: number; detected: number; extra: number }
  }
  dtc: { truth: number; detected: number; extra: number }
  overheat: { truth: number; detected: number; extra: number }
  /** `stop` (standstills inside trips), `idle` (engine on, standing) and `idling` alerts against the true
   *  periods; per closed trip reported as one piece, its `idle_s` and `fuel_used_pct` against the truth. */
  stops: {
    stop: PeriodScore
    idle: PeriodScore
    idlingAlert: PeriodScore
    /** Trip idle_s - true idle time inside the trip (s); relative to the true idle time (%). */
    tripIdleErrS: Dist
    tripIdleErrPct: Dist
    /** Trip fuel_used_pct - true fuel used (points of the tank); relative to the true fuel used (%). */
    tripFuelErrPts: Dist
    tripFuelErrPct: Dist
    truthIdleH: number
  }
  positions: { emitted: number; wrong: number; wrongAtTrueFix: number; jumpsEmitted: number }
  faults: { jumps: number; jumpsAfterDropout: number; dropouts: number }
}

/** Reported periods against true ones: recall per length bucket, extras, start and duration errors. */
export interface PeriodScore {
  /** Per bucket: true periods from `fromS` (up to the next bucket's), and how many a report overlaps. */
  byLength: Array<{ fromS: number; truth: number; found: number }>
  reported: number
  /** Reports overlapping no true period long enough to count (see the EXTRA_MIN_MS constants). */
  extra: number
  /** Report - the true periods it overlaps (their union's start and length), s. */
  startErrS: Dist
  durationErrS: Dist
}

const EMPTY_DIST: Dist = { n: 0, median: NaN, p95: NaN, max: NaN, worst: NaN, medianSigned: NaN }

/** Median, 95th percentile and maximum of |x|, and the signed value of largest magnitude. */
export function dist(xs: number[]): Dist {
  if (xs.length === 0) return { ...EMPTY_DIST }
  const abs = xs.map(Math.abs).sort((a, b) => a - b)
  const q = (p: number): number => abs[Math.min(abs.length - 1, Math.ceil(p * abs.length) - 1)] as number
  let worst = xs[0] as number
  for (const x of xs) if (Math.abs(x) > Math.abs(worst)) worst = x
  return {
    n: xs.length,
    median: q(0.5),
    p95: q(0.95),
    max: abs[abs.length - 1] as number,
    worst,
    medianSigned: median(xs),
  }
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

const rec = (x: unknown): Record<string, unknown> => (x && typeof x === 'object' ? (x as Record<string, unknown>) : {})
const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined)

/** The output's kind in the vocabulary: its type, or the alert/score name inside it. */
function kindOf(o: LooseOutput): string {
  const b = rec(o.body)
  if (o.type === 'alert') return String(b.type ?? '')
  if (o.type === 'score') return String(b.name ?? '')
  return o.type
}

export interface ReportedTrip {
  start: number
  end: number
  distanceM: number
  procTime: number
  /** Idle time (engine on, standing) and fuel used (points of the tank) the trip reports, when it does. */
  idleS?: number
  fuelUsedPct?: number
}

/** Trips from `score` `trip` (factors start_ts, end_ts, distance_km) or a `trip` output (start, end, distanceM or distance_km). */
export function reportedTrips(outs: TimedOutput[]): ReportedTrip[] {
  const trips: ReportedTrip[] = []
  for (const t of outs) {
    if (kindOf(t.output) !== 'trip') continue
    const b = rec(t.output.body)
    const f = { ...rec(b.factors), ...b }
    const start = num(f.start_ts) ?? num(f.start)
    const end = num(f.end_ts) ?? num(f.end) ?? t.output.ts
    const dM = num(f.distanceM) ?? num(f.distance_m) ?? (num(f.distance_km) ?? NaN) * 1000
    if (start === undefined || !Number.isFinite(dM)) continue
    const trip: ReportedTrip = { start, end, distanceM: dM, procTime: t.procTime }
    const idleS = num(f.idle_s)
    const fuelUsedPct = num(f.fuel_used_pct)
    if (idleS !== undefined) trip.idleS = idleS
    if (fuelUsedPct !== undefined) trip.fuelUsedPct = fuelUsedPct
    trips.push(trip)
  }
  return trips.sort((a, b) => a.start - b.start)
}

export interface ReportedFenceEvent {
  fence: string
  kind: 'enter' | 'exit'
  t: number
}

/** Fence events: alert `geofence` open = enter (at start), close = exit (at end); or an output typed
 *  `geofence`/`fence_event` whose body has a fence id and `event`/`kind` enter|exit. */
export function reportedFenceEvents(outs: TimedOutput[]): ReportedFenceEvent[] {
  const evs: ReportedFenceEvent[] = []
  for (const t of outs) {
    const o = t.output
    if (kindOf(o) !== 'geofence' && o.type !== 'fence_event') continue
    const b = rec(o.body)
    const d = rec(b.details)
    const fence = String(d.geofence ?? d.fence ?? d.fenceId ?? b.fence ?? b.fenceId ?? b.geofence ?? '')
    if (!fence) continue
    const ev = String(b.event ?? b.kind ?? '')
    if (ev === 'enter' || ev === 'exit') evs.push({ fence, kind: ev, t: num(b.ts) ?? num(b.at) ?? o.ts })
    else if (b.state === 'open') evs.push({ fence, kind: 'enter', t: num(b.start) ?? o.ts })
    else if (b.state === 'close') evs.push({ fence, kind: 'exit', t: num(b.end) ?? o.ts })
  }
  return evs.sort((a, b) => a.t - b.t)
}

/**
 * The fence events of one vehicle matched, per fence and direction: the most pairs of a true and a reported
 * event within FENCE_TOL_MS, then the smallest total time error, in time order (an order-preserving assignment,
 * optimal on a line). A greedy pass in time order let an early true event take a report that belonged to a
 * later one and count both neighbours missing. Ambiguous or unobserved true events take theirs too but are not
 * scored. Also used by fleet-diag.ts to explain each missing event.
 */
export function matchFenceEvents(
  truth: VehicleTruth,
  rf: ReportedFenceEvent[],
): {
  matched: Array<[TrueFenceEvent, ReportedFenceEvent]>
  missing: TrueFenceEvent[]
  extra: ReportedFenceEvent[]
  notScored: TrueFenceEvent[]
} {
  const firstTs = Math.min(...truth.trips.map((t) => t.ignitionOn))
  const out = {
    matched: [] as Array<[TrueFenceEvent, ReportedFenceEvent]>,
    missing: [] as TrueFenceEvent[],
    extra: [] as ReportedFenceEvent[],
    notScored: [] as TrueFenceEvent[],
  }
  const groups = new Map<string, { t: TrueFenceEvent[]; r: ReportedFenceEvent[] }>()
  const group = (fence: string, kind: string): { t: TrueFenceEvent[]; r: ReportedFenceEvent[] } => {
    const k = `${fence}\u0000${kind}`
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { t: [], r: [] }))
    return g
  }
  for (const te of truth.fenceEvents) group(te.fence, te.kind).t.push(te)
  for (const re of rf) group(re.fence, re.kind).r.push(re)
  for (const g of groups.values()) {
    g.t.sort((a, b) => a.t - b.t)
    g.r.sort((a, b) => a.t - b.t)
    const pairs = alignInTime(
      g.t.map((e) => e.t),
      g.r.map((e) => e.t),
      FENCE_TOL_MS,
    )
    const tookT = new Map(pairs.map(([i, j]) => [i, j]))
    const tookR = new Set(pairs.map(([, j]) => j))
    g.t.forEach((te, i) => {
      const j = tookT.get(i)
      if (te.ambiguous || te.unobserved) out.notScored.push(te)
      else if (j !== undefined) out.matched.push([te, g.r[j] as ReportedFenceEvent])
      else out.missing.push(te)
    })
    g.r.forEach((re, j) => {
      if (tookR.has(j)) return
      if (re.kind === 'enter' && truth.initiallyInside.includes(re.fence) && re.t - firstTs <= INITIAL_ENTER_MS) return
      out.extra.push(re)
    })
  }
  return out
}

/** Order-preserving pairs (i, j) of sorted times a[i], b[j] within `tol`: the most pairs, then the least total |a - b|. */
export function alignInTime(a: number[], b: number[], tol: number): Array<[number, number]> {
  const n = a.length
  const m = b.length
  // best[i][j]: [pairs, -error] over a[i..], b[j..]; compared lexicographically.
  const cnt = Array.from({ length: n + 1 }, () => new Float64Array(m + 1))
  const err = Array.from({ length: n + 1 }, () => new Float64Array(m + 1))
  const better = (c1: number, e1: number, c2: number, e2: number): boolean => c1 > c2 || (c1 === c2 && e1 < e2)
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      let c = (cnt[i + 1] as Float64Array)[j] as number
      let e = (err[i + 1] as Float64Array)[j] as number
      const c2 = (cnt[i] as Float64Array)[j + 1] as number
      const e2 = (err[i] as Float64Array)[j + 1] as number
      if (better(c2, e2, c, e)) {
        c = c2
        e = e2
      }
      const d = Math.abs((a[i] as number) - (b[j] as number))
      if (d <= tol) {
        const c3 = ((cnt[i + 1] as Float64Array)[j + 1] as number) + 1
        const e3 = ((err[i + 1] as Float64Array)[j + 1] as number) + d
        if (better(c3, e3, c, e)) {
          c = c3
          e = e3
        }
      }
      ;(cnt[i] as Float64Array)[j] = c
      ;(err[i] as Float64Array)[j] = e
    }
  }
  const pairs: Array<[number, number]> = []
  let i = 0
  let j = 0
  while (i < n && j < m) {
    const c = (cnt[i] as Float64Array)[j] as number
    const e = (err[i] as Float64Array)[j] as number
    const d = Math.abs((a[i] as number) - (b[j] as number))
    if (
      d <= tol &&
      ((cnt[i + 1] as Float64Array)[j + 1] as number) + 1 === c &&
      ((err[i + 1] as Float64Array)[j + 1] as number) + d === e
    ) {
      pairs.push([i, j])
      i++
      j++
    } else if ((cnt[i + 1] as Float64Array)[j] === c && (err[i + 1] as Float64Array)[j] === e) i++
    else j++
  }
  return pairs
}

/** Opens (first emission) of alerts or outputs of one kind, with when they were raised. */
function opens(
  outs: TimedOutput[],
  kinds: RegExp,
): Array<{ at: number; start: number; body: Record<string, unknown> }> {
  const seen = new Set<string>()
  const res: Array<{ at: number; start: number; body: Record<string, unknown> }> = []
  for (const t of outs) {
    if (!kinds.test(kindOf(t.output))) continue
    const b = rec(t.output.body)
    if (t.output.type === 'alert' && b.state !== 'open') continue
    const id = String(b.alertId ?? `${t.output.type}:${t.output.seq}:${t.output.ts}`)
    if (seen.has(id)) continue
    seen.add(id)
    res.push({ at: t.at, start: num(b.start) ?? t.output.ts, body: b })
  }
  return res
}

interface Span {
  start: number
  end: number
}

/** A true period and a report overlap (a report of zero length counts as 1 ms). */
const overlapsReport = (t: Span, r: Span): boolean => overlap(t.start, t.end, r.start, Math.max(r.end, r.start + 1)) > 0

/** Accumulates PeriodScore over vehicles: `add` one vehicle's true and reported periods. */
function periodScorer(
  bucketsMs: number[],
  extraMinMs: number,
): {
  add(truth: Span[], reported: Span[]): void
  result(): PeriodScore
} {
  const byLength = bucketsMs.map((ms) => ({ fromS: ms / 1000, truth: 0, found: 0 }))
  const startErr: number[] = []
  const durErr: number[] = []
  let reportedN = 0
  let extra = 0
  return {
    add(truth, reported) {
      reportedN += reported.length
      for (const t of truth) {
        const len = t.end - t.start
        let b = -1
        for (let k = 0; k < bucketsMs.length; k++) if (len >= (bucketsMs[k] as number)) b = k
        if (b < 0) continue
        const bucket = byLength[b] as PeriodScore['byLength'][number]
        bucket.truth++
        if (reported.some((r) => overlapsReport(t, r))) bucket.found++
      }
      for (const r of reported) {
        const over = truth.filter((t) => overlapsReport(t, r))
        if (!over.some((t) => t.end - t.start >= extraMinMs)) {
          extra++
          continue
        }
        const start = Math.min(...over.map((t) => t.start))
        const end = Math.max(...over.map((t) => t.end))
        startErr.push((r.start - start) / 1000)
        durErr.push((r.end - r.start - (end - start)) / 1000)
      }
    },
    result: () => ({ byLength, reported: reportedN, extra, startErrS: dist(startErr), durationErrS: dist(durErr) }),
  }
}

/** Periods reported as `score` outputs of this name (factors start_ts, end_ts) or alerts of this type (opened,
 *  with their close's end when there is one). */
function reportedPeriods(outs: TimedOutput[], name: string): Span[] {
  const byId = new Map<string, Span>()
  const res: Span[] = []
  for (const t of outs) {
    if (kindOf(t.output) !== name) continue
    const b = rec(t.output.body)
    if (t.output.type === 'alert') {
      const id = String(b.alertId ?? '')
      const start = num(b.start) ?? t.output.ts
      const open = byId.get(id)
      if (b.state === 'open' && !open) {
        const span = { start, end: Infinity }
        byId.set(id, span)
        res.push(span)
      } else if (b.state === 'close' && open) open.end = num(b.end) ?? t.output.ts
      continue
    }
    const f = { ...rec(b.factors), ...b }
    const start = num(f.start_ts) ?? num(f.start)
    if (start === undefined) continue
    res.push({ start, end: num(f.end_ts) ?? num(f.end) ?? t.output.ts })
  }
  return res
}

/** Each reported trip belongs to the true trip it overlaps most; `extra`: reported trips overlapping none. */
function tripPieces(
  truthTrips: VehicleTruth['trips'],
  rep: ReportedTrip[],
): { pieces: ReportedTrip[][]; extra: number } {
  const pieces = truthTrips.map(() => [] as ReportedTrip[])
  let extra = 0
  for (const rt of rep) {
    let best = -1
    let bestOv = 0
    truthTrips.forEach((tt, ti) => {
      const ov = overlap(tt.start, tt.end, rt.start, rt.end)
      if (ov > bestOv) {
        best = ti
        bestOv = ov
      }
    })
    if (best < 0) extra++
    else (pieces[best] as ReportedTrip[]).push(rt)
  }
  return { pieces, extra }
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0))
}

/** Scores a whole run. `fences` are the scenario's; `configured` the ids the profile was given. */
export function scoreFleet(runs: VehicleRun[], fences: Fence[], configured: Set<string>): FleetScore {
  const fenceKind = new Map(fences.map((f) => [f.id, f.kind]))
  const startErr: number[] = []
  const endErr: number[] = []
  const dPct: number[] = []
  const closeAfterOff: number[] = []
  const lastClose: number[] = []
  let tTruth = 0,
    tRep = 0,
    tMatched = 0,
    tExtra = 0,
    tSplit = 0,
    leftOpen = 0,
    lastLeftOpen = 0
  let odoTrue = 0,
    odoRep = 0
  let odoSource: 'query' | 'trips' = 'query'
  let fTruth = 0,
    fTruthConf = 0,
    fAmb = 0,
    fMatched = 0,
    fMissing = 0,
    fExtra = 0,
    fNotConf = 0,
    fShallow = 0
  const missingByKind: Record<string, number> = {}
  const extraByKind: Record<string, number> = {}
  const fenceDt: number[] = []
  let lfCross = 0,
    lfRaised = 0,
    lfMissed = 0,
    lfFalse = 0
  const lfDelay: number[] = []
  const lfH = { raised: 0, missed: 0, false: 0, onTime: 0, early: 0 }
  const lfHDelay: number[] = []
  const lfHEngine: number[] = []
  const fuel = { refuel: { truth: 0, detected: 0, extra: 0 }, fuelDrop: { truth: 0, detected: 0, extra: 0 } }
  const dtc = { truth: 0, detected: 0, extra: 0 }
  const oh = { truth: 0, detected: 0, extra: 0 }
  const stopScore = periodScorer(STOP_BUCKETS_MS, STOP_EXTRA_MIN_MS)
  const idleScore = periodScorer(IDLE_BUCKETS_MS, IDLE_EXTRA_MIN_MS)
  const idlingScore = periodScorer(IDLING_BUCKETS_MS, IDLING_EXTRA_MIN_MS)
  const tripIdleErr: number[] = []
  const tripIdlePct: number[] = []
  const tripFuelErr: number[] = []
  const tripFuelPct: number[] = []
  let truthIdleH = 0
  const pos = { emitted: 0, wrong: 0, wrongAtTrueFix: 0, jumpsEmitted: 0 }
  const faults = { jumps: 0, jumpsAfterDropout: 0, dropouts: 0 }

  for (const run of runs) {
    const { truth } = run
    // --- trips: each reported trip belongs to the true trip it overlaps most; a true trip's figures are
    // those of all its pieces (distance summed, start of the first, end of the last), extra pieces are splits.
    const rep = reportedTrips(run.outputs)
    tTruth += truth.trips.length
    tRep += rep.length
    const { pieces, extra } = tripPieces(truth.trips, rep)
    tExtra += extra
    const lastIdx = truth.trips.length - 1
    truth.trips.forEach((tt, ti) => {
      const ps = pieces[ti] as ReportedTrip[]
      const closer = ps.find((p) => Math.abs(p.end - tt.end) <= TRIP_END_TOL_MS)
      if (!closer) {
        leftOpen++
        if (ti === lastIdx) lastLeftOpen++
      } else {
        closeAfterOff.push((closer.procTime - tt.ignitionOff) / 1000)
        if (ti === lastIdx) lastClose.push((closer.procTime - truth.quietAt) / 1000)
      }
      if (ps.length === 0) return
      tMatched++
      // Errors are judged on closed trips: an open trip's figures are not final (it counts in leftOpen).
      if (!closer) return
      tSplit += ps.length - 1
      startErr.push((Math.min(...ps.map((p) => p.start)) - tt.start) / 1000)
      endErr.push((Math.max(...ps.map((p) => p.end)) - tt.end) / 1000)
      dPct.push(((ps.reduce((a, p) => a + p.distanceM, 0) - tt.distanceM) / tt.distanceM) * 100)
    })
    // --- odometer ---
    odoTrue += truth.odometerM / 1000
    if (run.odometerKm !== undefined) odoRep += run.odometerKm
    else {
      odoSource = 'trips'
      odoRep += rep.reduce((a, t) => a + t.distanceM, 0) / 1000
    }
    // --- fences ---
    const fm = matchFenceEvents(truth, reportedFenceEvents(run.outputs))
    fAmb += fm.notScored.length
    for (const [te, re] of fm.matched) {
      fTruth++
      if (configured.has(te.fence)) fTruthConf++
      fMatched++
      fenceDt.push((re.t - te.t) / 1000)
    }
    for (const te of fm.missing) {
      fTruth++
      if (configured.has(te.fence)) fTruthConf++
      fMissing++
      if ((te.fixDepthM ?? Infinity) < SHALLOW_FIX_M) fShallow++
      const k = fenceKind.get(te.fence) ?? 'unknown'
      missingByKind[k] = (missingByKind[k] ?? 0) + 1
      if (!configured.has(te.fence)) fNotConf++
    }
    for (const re of fm.extra) {
      fExtra++
      const k = fenceKind.get(re.fence) ?? 'unknown'
      extraByKind[k] = (extraByKind[k] ?? 0) + 1
    }
    // --- low fuel: delay from the true crossing to the reading that raised it ---
    const lf = opens(run.outputs, /^low_fuel$/)
    const lfUsed = new Set<number>()
    for (const c of truth.lowFuelCrossings) {
      lfCross++
      const i = lf.findIndex((a, k) => !lfUsed.has(k) && Math.abs(a.at - c.t) <= LOW_FUEL_WINDOW_MS)
      if (i < 0) {
        lfMissed++
        continue
      }
      lfUsed.add(i)
      lfRaised++
      lfDelay.push(((lf[i] as { at: number }).at - c.t) / 1000)
    }
    lfFalse += lf.length - lfUsed.size
    // The horizon rule: engine-on time between two instants, from the true ignition cycles.
    const engineMs = (a: number, b: number): number => {
      let ms = 0
      for (const t of truth.trips) ms += overlap(a, b, t.ignitionOn, t.ignitionOff)
      return ms
    }
    const hUsed = new Set<number>()
    for (const c of truth.lowFuelCrossings) {
      const i = lf.findIndex(
        (a, k) =>
          !hUsed.has(k) &&
          (a.at <= c.t ? engineMs(a.at, c.t) <= LOW_FUEL_HORIZON_ENGINE_MS : a.at - c.t <= LOW_FUEL_WINDOW_MS),
      )
      if (i < 0) {
        lfH.missed++
        continue
      }
      hUsed.add(i)
      lfH.raised++
      const at = (lf[i] as { at: number }).at
      lfHDelay.push((at - c.t) / 1000)
      if (at - c.t <= LOW_FUEL_ON_TIME_MS) lfH.onTime++
      if (at < c.t) {
        lfH.early++
        lfHEngine.push(engineMs(at, c.t) / 1000)
      }
    }
    lfH.false += lf.length - hUsed.size
    // --- refuel and fuel drops ---
    for (const [key, re] of [
      ['refuel', /^refuel/],
      ['fuelDrop', /^(fuel_drop|fuel_theft|theft)/],
    ] as const) {
      const got = opens(run.outputs, re)
      const tr = truth.fuelEvents.filter((e) => (key === 'refuel' ? e.kind === 'refuel' : e.kind === 'fuel_drop'))
      const used = new Set<number>()
      for (const e of tr) {
        fuel[key].truth++
        const i = got.findIndex(
          (g, k) => !used.has(k) && g.at >= e.start - FUEL_BEFORE_MS && g.at <= e.end + FUEL_AFTER_MS,
        )
        if (i >= 0) {
          used.add(i)
          fuel[key].detected++
        }
      }
      fuel[key].extra += got.length - used.size
    }
    // --- DTC and overheat ---
    const dtcs = opens(run.outputs, /^dtc$/)
    const dUsed = new Set<number>()
    for (const d of truth.dtcs) {
      dtc.truth++
      const i = dtcs.findIndex(
        (a, k) => !dUsed.has(k) && JSON.stringify(a.body).includes(d.code) && a.at >= d.t - 10_000,
      )
      if (i >= 0) {
        dUsed.add(i)
        dtc.detected++
      }
    }
    dtc.extra += dtcs.length - dUsed.size
    const ohs = opens(run.outputs, /overheat/)
    const oUsed = new Set<number>()
    for (const e of truth.overheats) {
      oh.truth++
      const i = ohs.findIndex((a, k) => !oUsed.has(k) && a.at >= e.start && a.at <= e.end + OVERHEAT_AFTER_MS)
      if (i >= 0) {
        oUsed.add(i)
        oh.detected++
      }
    }
    oh.extra += ohs.length - oUsed.size
    // --- stops and idling: stops are the standstills inside trips; idle is any engine-on standstill ---
    const inTrip = truth.stops.filter((x) => truth.trips.some((tt) => x.start >= tt.start && x.end <= tt.end))
    const idle = truth.stops.filter((x) => x.engineOn)
    truthIdleH += idle.reduce((a, x) => a + x.end - x.start, 0) / 3_600_000
    stopScore.add(inTrip, reportedPeriods(run.outputs, 'stop'))
    idleScore.add(idle, reportedPeriods(run.outputs, 'idle'))
    idlingScore.add(idle, reportedPeriods(run.outputs, 'idling'))
    truth.trips.forEach((tt, ti) => {
      const ps = pieces[ti] as ReportedTrip[]
      const rt = ps[0]
      if (ps.length !== 1 || !rt || Math.abs(rt.end - tt.end) > TRIP_END_TOL_MS) return
      if (rt.idleS !== undefined) {
        const trueIdleS = idle.reduce((a, x) => a + overlap(x.start, x.end, tt.start, tt.end), 0) / 1000
        tripIdleErr.push(rt.idleS - trueIdleS)
        if (trueIdleS > 0) tripIdlePct.push(((rt.idleS - trueIdleS) / trueIdleS) * 100)
      }
      if (rt.fuelUsedPct !== undefined && tt.fuelStartPct !== undefined && tt.fuelEndPct !== undefined) {
        const used = tt.fuelStartPct - tt.fuelEndPct
        tripFuelErr.push(rt.fuelUsedPct - used)
        if (used > 0) tripFuelPct.push(((rt.fuelUsedPct - used) / used) * 100)
      }
    })
    // --- positions ---
    if (run.truthBySeq) {
      for (const t of run.outputs) {
        if (t.output.type !== 'position') continue
        const b = rec(t.output.body)
        const lat = num(b.lat)
        const lon = num(b.lon)
        const seq = num(b.readingSeq) ?? t.output.seq
        const tr = run.truthBySeq.get(seq)
        if (lat === undefined || lon === undefined || !tr) continue
        pos.emitted++
        if (tr.jump) pos.jumpsEmitted++
        if (haversineM([lat, lon], tr.pos) > POSITION_WRONG_M) {
          pos.wrong++
          // A true fix shown at a wrong place: the position stuck where a jump put it.
          if (!tr.jump) pos.wrongAtTrueFix++
        }
      }
    }
    if (run.faults) {
      faults.jumps += run.faults.jumps.length
      faults.jumpsAfterDropout += run.faults.jumps.filter((j) => j.afterDropout).length
      faults.dropouts += run.faults.dropouts.length
    }
  }
  const dd = dist(dPct)
  return {
    vehicles: runs.length,
    trips: {
      truth: tTruth,
      reported: tRep,
      matched: tMatched,
      missing: tTruth - tMatched,
      extra: tExtra,
      split: tSplit,
      startErrS: dist(startErr),
      endErrS: dist(endErr),
      distancePct: dd,
      closeAfterOffS: dist(closeAfterOff),
      lastTripCloseAfterQuietS: dist(lastClose),
      leftOpen,
      lastLeftOpen,
    },
    odometer: { trueKm: odoTrue, reportedKm: odoRep, errPct: ((odoRep - odoTrue) / odoTrue) * 100, source: odoSource },
    fences: {
      truth: fTruth,
      ambiguous: fAmb,
      matched: fMatched,
      missing: fMissing,
      extra: fExtra,
      extraPct: fTruthConf > 0 ? (fExtra / fTruthConf) * 100 : 0,
      missingByKind,
      extraByKind,
      timeErrS: dist(fenceDt),
      missingShallowFixes: fShallow,
      notConfigured: fNotConf,
    },
    lowFuel: {
      crossings: lfCross,
      raised: lfRaised,
      missed: lfMissed,
      false: lfFalse,
      delayS: dist(lfDelay),
      onTime: lfDelay.filter((x) => x * 1000 <= LOW_FUEL_ON_TIME_MS).length,
      early: lfDelay.filter((x) => x < 0).length,
      horizon: { ...lfH, delayS: dist(lfHDelay), earlyEngineS: dist(lfHEngine) },
    },
    fuelEvents: fuel,
    dtc,
    overheat: oh,
    stops: {
      stop: stopScore.result(),
      idle: idleScore.result(),
      idlingAlert: idlingScore.result(),
      tripIdleErrS: dist(tripIdleErr),
      tripIdleErrPct: dist(tripIdlePct),
      tripFuelErrPts: dist(tripFuelErr),
      tripFuelErrPct: dist(tripFuelPct),
      truthIdleH,
    },
    positions: pos,
    faults,
  }
}

/** The naive baseline: raw haversine sum over every fix, per true trip (fixes from ignition on to off) and per day. */
export function baselineDistances(runs: Array<{ truth: VehicleTruth; fixes: Array<{ ts: number; pos: LatLon }> }>): {
  distancePct: Dist
  odometerErrPct: number
} {
  const pct: number[] = []
  let tot = 0
  let trueTot = 0
  for (const r of runs) {
    let day = 0
    for (let i = 1; i < r.fixes.length; i++)
      day += haversineM((r.fixes[i - 1] as { pos: LatLon }).pos, (r.fixes[i] as { pos: LatLon }).pos)
    tot += day
    trueTot += r.truth.odometerM
    for (const t of r.truth.trips) {
      const fx = r.fixes.filter((f) => f.ts >= t.ignitionOn && f.ts <= t.ignitionOff)
      let d = 0
      for (let i = 1; i < fx.length; i++)
        d += haversineM((fx[i - 1] as { pos: LatLon }).pos, (fx[i] as { pos: LatLon }).pos)
      pct.push(((d - t.distanceM) / t.distanceM) * 100)
    }
  }
  return { distancePct: dist(pct), odometerErrPct: ((tot - trueTot) / trueTot) * 100 }
}
