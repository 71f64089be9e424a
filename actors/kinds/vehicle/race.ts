/**
 * Vehicle profile `race`: one actor per race car (DOMAIN.md section 1).
 *
 * Reading fields (all optional per reading; a missing field leaves its last value in force):
 *   speed            km/h                       rpm              engine rpm
 *   gear             integer                    throttle, brake  % 0..100
 *   drs              boolean (or 0/1)           ers_deploy       kW (or %), shown only
 *   ers_store        MJ (or %), shown only      fuel             kg on board
 *   brake_temp_fl/fr/rl/rr   °C (normal 200..900)
 *   tyre_temp_fl/fr/rl/rr    °C (normal 80..120)
 *   tyre_pressure_fl/fr/rl/rr  bar or psi, shown only
 *   tyre_wear        % 0..100, average of the four tyres
 *   brake_wear       % 0..100, optional; when present it drives the brake factor of the pit-stop score
 *   engine_temp, oil_temp  °C, shown only      oil_pressure     bar
 *   g_lat, g_lon     g, shown only              lap              integer lap counter
 *   lap_distance     m into the lap             sector           1..3
 *   pit              boolean, true while in the pit lane
 *   driver           string
 *
 * Outputs:
 *   alert           key `<alertId>:<open|update|close>:<seq>`, alertId `vehicle:<id>:<type>:<start>`; types
 *                   brake_overheat (critical), tire_overheat (warning), oil_pressure_drop (critical),
 *                   sudden_speed_loss (warning), fuel_anomaly (warning)
 *   lap             key `lap:<lap>` when the lap counter increments (stats of the finished lap)
 *   score           key `pit_stop:<seq>` at each lap end and every pitStop.intervalMs of event time
 *   recommendation  key `pit_now:<seq>` once per crossing of pitStop.recommendAbove
 *   late            key `late:<seq>` for a reading older than the car's latest one (not applied)
 *
 * Decisions:
 * - Brakes and tyres: one detector each on the hottest corner, not one per corner. An overheat is a car-level
 *   condition with one alert (unique id per start, no four-way duplicates), and it costs one detector update
 *   instead of four; the alert's details name the hottest corner and every corner that was over the threshold
 *   during the episode.
 * - Readings are applied in event-time order: a car streams over one link in order, and the detectors and lap
 *   accounting are sequential, so a reading older than the latest one is written aside as `late` rather than
 *   reordered (allowed lateness 0).
 * - Laps: lap time = event time of the first sample of the next lap - that of the first sample of this lap.
 *   A lap is valid for references when its start was seen, no pit lane sample fell in it, and the counter
 *   went up by exactly one. The first lap seen is emitted with what was seen, but is never a reference. The
 *   counter only moves forward: a reading with a lower lap counts in the lap in progress (one `lap:<n>` per car).
 * - Speed-loss reference: the median of the car's first `pitStop.referenceLaps` valid laps (median, not best:
 *   one lucky tow or one traffic lap does not move it). Brake reference: the same laps' mean peak-corner brake
 *   temperature. After a pit stop the last-lap pace is forgotten until the next valid lap.
 */
import { defineActor } from '../../actor.js'
import * as alert from '../../alerts.js'
import type { ActorContext } from '../../actor.js'
import { ThresholdForDuration } from '../../detectors.js'
import type { DetectorEvent, ThresholdOptions } from '../../detectors.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import type { AlertState, FieldValue, LapBody, Reading, Severity } from '../../types.js'
import {
  PIT_STOP_DEFAULTS,
  factorRecord,
  median,
  pitReason,
  pitStopScore,
  recommendStep,
  type PitStopConfig,
  type PitStopScore,
} from './pitstop.js'

export interface RaceConfig {
  brake: {
    overheatC: number
    durationMs: number
    hysteresisC: number
    clearMs: number
    updateDeltaC: number
    updateIntervalMs: number
  }
  tyre: {
    overheatC: number
    durationMs: number
    hysteresisC: number
    clearMs: number
    updateDeltaC: number
    updateIntervalMs: number
  }
  /** Low oil pressure only counts above `minRpm`: at idle in the pit lane low pressure is normal. */
  oil: {
    minBar: number
    durationMs: number
    hysteresisBar: number
    clearMs: number
    minRpm: number
    updateDeltaBar: number
    updateIntervalMs: number
  }
  /** Speed drop over the last `windowMs` with no sample of brake > `brakeMaxPct` in between. */
  speedLoss: { dropKmh: number; windowMs: number; brakeMaxPct: number; hysteresisKmh: number; clearMs: number }
  /**
   * Consumption of a lap > rateFactor x median of the previous valid laps (at least minBaselineLaps, at most
   * baselineLaps kept); or fuel rising more than increaseKg above its minimum since the last pit stop, for
   * increaseDurationMs, outside the pit lane.
   */
  fuel: {
    rateFactor: number
    rateHysteresis: number
    minBaselineLaps: number
    baselineLaps: number
    increaseKg: number
    increaseDurationMs: number
    increaseHysteresisKg: number
  }
  pitStop: PitStopConfig
}

export const RACE_DEFAULTS: RaceConfig = {
  brake: { overheatC: 950, durationMs: 2_000, hysteresisC: 25, clearMs: 0, updateDeltaC: 25, updateIntervalMs: 5_000 },
  tyre: { overheatC: 130, durationMs: 2_000, hysteresisC: 5, clearMs: 0, updateDeltaC: 5, updateIntervalMs: 5_000 },
  oil: {
    minBar: 1.5,
    durationMs: 1_000,
    hysteresisBar: 0.25,
    clearMs: 0,
    minRpm: 4_000,
    updateDeltaBar: 0.25,
    updateIntervalMs: 5_000,
  },
  speedLoss: { dropKmh: 80, windowMs: 1_000, brakeMaxPct: 50, hysteresisKmh: 20, clearMs: 0 },
  fuel: {
    rateFactor: 1.5,
    rateHysteresis: 0.2,
    minBaselineLaps: 3,
    baselineLaps: 20,
    increaseKg: 0.5,
    increaseDurationMs: 1_000,
    increaseHysteresisKg: 0.25,
  },
  pitStop: PIT_STOP_DEFAULTS,
}

export const RACE_ANOMALIES = {
  brake_overheat: 'critical',
  tire_overheat: 'warning',
  oil_pressure_drop: 'critical',
  sudden_speed_loss: 'warning',
  fuel_anomaly: 'warning',
} as const satisfies Record<string, Severity>
export type RaceAnomaly = keyof typeof RACE_ANOMALIES
const ANOMALY_TYPES = Object.keys(RACE_ANOMALIES) as RaceAnomaly[]

const CORNERS = ['fl', 'fr', 'rl', 'rr'] as const
const BRAKE_FIELDS = CORNERS.map((c) => `brake_temp_${c}`)
const TYRE_FIELDS = CORNERS.map((c) => `tyre_temp_${c}`)

/** The documented fields; only these are kept as last values (bounds the state whatever a device sends). */
export const RACE_FIELDS: readonly string[] = [
  'speed',
  'rpm',
  'gear',
  'throttle',
  'brake',
  'drs',
  'ers_deploy',
  'ers_store',
  'fuel',
  ...BRAKE_FIELDS,
  ...TYRE_FIELDS,
  ...CORNERS.map((c) => `tyre_pressure_${c}`),
  'tyre_wear',
  'brake_wear',
  'engine_temp',
  'oil_temp',
  'oil_pressure',
  'g_lat',
  'g_lon',
  'lap',
  'lap_distance',
  'sector',
  'pit',
  'driver',
]
const KNOWN_FIELDS = new Set(RACE_FIELDS)

/** An open alert as the actor remembers it (for updates, close, the anomaly factor and live queries). */
interface OpenAlert {
  id: string
  start: number
  value: number
  threshold: number
  peak: number
}

/** Running statistics of the lap in progress; all numbers finite so the state is plain JSON. */
interface LapAcc {
  lap: number
  start: number
  /** Its first sample was the one where the counter moved to it. */
  seenStart: boolean
  pit: boolean
  samples: number
  spN: number
  spSum: number
  spMin: number
  spMax: number
  brakeMax: number
  tyreMax: number
  /** Sum and count of the per-sample hottest-corner brake temperature (the brake-degradation input). */
  brSum: number
  brN: number
  /** First and last fuel of the lap, -1 until seen. */
  fuelFirst: number
  fuelLast: number
}

interface Detectors {
  brake: ThresholdForDuration
  tyre: ThresholdForDuration
  oil: ThresholdForDuration
  speed: ThresholdForDuration
  fuelInc: ThresholdForDuration
}

export interface RaceState {
  /** Event time of the latest applied reading. */
  lastTs: number | null
  late: number
  last: Record<string, FieldValue>
  lap: LapAcc | null
  lapsEmitted: number
  /** Lap times and brake means of the first `referenceLaps` valid laps. */
  refLapMs: number[]
  refBrake: number[]
  lastLapMs: number | null
  lastLapBrake: number | null
  /** Fuel used per valid lap, the most recent `fuel.baselineLaps`. */
  fuelLaps: number[]
  /** Consumption condition holds (with hysteresis) since the lap end that raised it. */
  fuelRateHigh: boolean
  /** Lowest fuel since the last pit stop (the baseline of "fuel increasing outside the pit"). */
  minFuel: number | null
  inPit: boolean
  wear: number | null
  armed: boolean
  nextScoreAt: number | null
  lastScore: number | null
  alerts: Partial<Record<RaceAnomaly, OpenAlert>>
  /** Last alert start per type, to keep alert ids unique when timestamps repeat. */
  lastStart: Partial<Record<RaceAnomaly, number>>
  /** Corners over the threshold during the current brake / tyre episode (bit i = CORNERS[i]). */
  brakeMask: number
  tyreMask: number
  /**
   * Monotonic deque of (ts, speed) over the speed-loss window: speeds decrease from head to tail, so the head
   * is the window's maximum. `dqH` is the head index (amortised O(1), no per-reading allocation).
   */
  dqT: number[]
  dqV: number[]
  dqH: number
  /** State slots of the five detectors (ThresholdForDuration.SLOTS each, NaN = none), in DET_KEYS order. */
  slots: number[]
  /**
   * Detector views over `slots` (they hold no state of their own); built on the first reading after init or
   * restore because they need the config, which the codec's decode does not get. Never encoded.
   */
  det: Detectors | null
}

const CODEC_VERSION = 1

type Num = number | undefined
function num(f: Record<string, FieldValue>, k: string): Num {
  const v = f[k]
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

function newLap(lap: number, ts: number, seenStart: boolean, pit: boolean): LapAcc {
  return {
    lap,
    start: ts,
    seenStart,
    pit,
    samples: 0,
    spN: 0,
    spSum: 0,
    spMin: 0,
    spMax: 0,
    brakeMax: 0,
    tyreMax: 0,
    brSum: 0,
    brN: 0,
    fuelFirst: -1,
    fuelLast: -1,
  }
}

/** Checks a race config; throws ConfigError naming the setting. Called at activation (and usable at start). */
export function validateRaceConfig(c: RaceConfig): void {
  const groups = c as unknown as Record<string, Record<string, unknown> | undefined>
  for (const [g, d] of Object.entries(RACE_DEFAULTS) as Array<[string, Record<string, unknown>]>) {
    const got = groups[g]
    if (!got || typeof got !== 'object') throw new ConfigError(`race.${g}`, 'must be an object')
    for (const k of Object.keys(d)) {
      const v = got[k]
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new ConfigError(`race.${g}.${k}`, `must be a finite number >= 0, got ${String(v)}`)
      }
    }
  }
  const p = c.pitStop
  const wsum = p.wTyreWear + p.wSpeedLoss + p.wBrake + p.wAnomaly
  if (Math.abs(wsum - 1) > 1e-9) throw new ConfigError('race.pitStop.wTyreWear', `weights must sum to 1, got ${wsum}`)
  if (p.tyreWearHighPct <= p.tyreWearLowPct)
    throw new ConfigError('race.pitStop.tyreWearHighPct', 'must exceed tyreWearLowPct')
  if (p.brakeWearHighPct <= p.brakeWearLowPct)
    throw new ConfigError('race.pitStop.brakeWearHighPct', 'must exceed brakeWearLowPct')
  for (const k of ['speedLossFullPct', 'brakeRiseFullPct', 'referenceLaps'] as const) {
    if (p[k] <= 0) throw new ConfigError(`race.pitStop.${k}`, 'must be > 0')
  }
  if (!Number.isInteger(p.referenceLaps)) throw new ConfigError('race.pitStop.referenceLaps', 'must be an integer')
  if (c.fuel.rateFactor <= 1) throw new ConfigError('race.fuel.rateFactor', 'must be > 1')
  if (c.fuel.rateHysteresis >= c.fuel.rateFactor)
    throw new ConfigError('race.fuel.rateHysteresis', 'must be < rateFactor')
  if (c.fuel.minBaselineLaps < 1 || c.fuel.baselineLaps < c.fuel.minBaselineLaps) {
    throw new ConfigError('race.fuel.baselineLaps', 'need 1 <= minBaselineLaps <= baselineLaps')
  }
  if (c.speedLoss.windowMs <= 0) throw new ConfigError('race.speedLoss.windowMs', 'must be > 0')
}

function detectorOptions(c: RaceConfig): Record<keyof Detectors, ThresholdOptions> {
  return {
    brake: {
      above: c.brake.overheatC,
      durationMs: c.brake.durationMs,
      hysteresis: c.brake.hysteresisC,
      clearMs: c.brake.clearMs,
      updateDelta: c.brake.updateDeltaC,
      updateIntervalMs: c.brake.updateIntervalMs,
    },
    tyre: {
      above: c.tyre.overheatC,
      durationMs: c.tyre.durationMs,
      hysteresis: c.tyre.hysteresisC,
      clearMs: c.tyre.clearMs,
      updateDelta: c.tyre.updateDeltaC,
      updateIntervalMs: c.tyre.updateIntervalMs,
    },
    oil: {
      below: c.oil.minBar,
      durationMs: c.oil.durationMs,
      hysteresis: c.oil.hysteresisBar,
      clearMs: c.oil.clearMs,
      updateDelta: c.oil.updateDeltaBar,
      updateIntervalMs: c.oil.updateIntervalMs,
    },
    // The drop itself is the instantaneous measure: it opens on the first sample over the threshold.
    speed: {
      above: c.speedLoss.dropKmh,
      durationMs: 0,
      hysteresis: c.speedLoss.hysteresisKmh,
      clearMs: c.speedLoss.clearMs,
    },
    fuelInc: {
      above: c.fuel.increaseKg,
      durationMs: c.fuel.increaseDurationMs,
      hysteresis: c.fuel.increaseHysteresisKg,
    },
  }
}

const DET_KEYS = ['brake', 'tyre', 'oil', 'speed', 'fuelInc'] as const
const SLOTS = ThresholdForDuration.SLOTS * DET_KEYS.length

function hydrate(s: RaceState, c: RaceConfig): Detectors {
  validateRaceConfig(c)
  const o = detectorOptions(c)
  const mk = (k: keyof Detectors, i: number): ThresholdForDuration =>
    new ThresholdForDuration(o[k], s.slots, i * ThresholdForDuration.SLOTS)
  const det: Detectors = {
    brake: mk('brake', 0),
    tyre: mk('tyre', 1),
    oil: mk('oil', 2),
    speed: mk('speed', 3),
    fuelInc: mk('fuelInc', 4),
  }
  s.det = det
  return det
}

function init(): RaceState {
  return {
    lastTs: null,
    late: 0,
    last: {},
    lap: null,
    lapsEmitted: 0,
    refLapMs: [],
    refBrake: [],
    lastLapMs: null,
    lastLapBrake: null,
    fuelLaps: [],
    fuelRateHigh: false,
    minFuel: null,
    inPit: false,
    wear: null,
    armed: true,
    nextScoreAt: null,
    lastScore: null,
    alerts: {},
    lastStart: {},
    brakeMask: 0,
    tyreMask: 0,
    dqT: [],
    dqV: [],
    dqH: 0,
    slots: DET_KEYS.flatMap(() => ThresholdForDuration.blank()),
    det: null,
  }
}

// ---- alerts ---------------------------------------------------------------------------------------------

function cornerNames(mask: number): string[] {
  const out: string[] = []
  for (let i = 0; i < CORNERS.length; i++) if (mask & (1 << i)) out.push(CORNERS[i] as string)
  return out
}

function openAlert(
  s: RaceState,
  ctx: ActorContext,
  type: RaceAnomaly,
  start: number,
  ts: number,
  value: number,
  threshold: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  // Two episodes can only share a start when timestamps repeat; nudging keeps the deterministic id unique.
  const prev = s.lastStart[type]
  const st = prev !== undefined && start <= prev ? prev + 1 : start
  s.lastStart[type] = st
  const id = alert.alertId(ctx.entity, type, st)
  s.alerts[type] = { id, start: st, value, threshold, peak: typeof details.peak === 'number' ? details.peak : value }
  emitAlert(ctx, type, 'open', s.alerts[type], ts, undefined, value, threshold, explanation, details)
}

function emitAlert(
  ctx: ActorContext,
  type: RaceAnomaly,
  state: AlertState,
  a: OpenAlert,
  ts: number,
  end: number | undefined,
  value: number,
  threshold: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  const body = {
    alertId: a.id,
    type,
    severity: RACE_ANOMALIES[type],
    state,
    start: a.start,
    value,
    threshold,
    explanation,
    details,
  }
  alert.emitAlert(ctx, ts, end === undefined ? body : { ...body, end })
}

function updateAlert(
  s: RaceState,
  ctx: ActorContext,
  type: RaceAnomaly,
  ts: number,
  value: number,
  peak: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  const a = s.alerts[type]
  if (!a) return
  a.value = value
  a.peak = peak
  emitAlert(ctx, type, 'update', a, ts, undefined, value, a.threshold, explanation, details)
}

function closeAlert(
  s: RaceState,
  ctx: ActorContext,
  type: RaceAnomaly,
  end: number,
  value: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  const a = s.alerts[type]
  if (!a) return
  delete s.alerts[type]
  emitAlert(ctx, type, 'close', a, end, end, value, a.threshold, explanation, details)
}

/** Maps a detector event of a single-detector anomaly to alert outputs. */
function onDetector(
  s: RaceState,
  ctx: ActorContext,
  type: RaceAnomaly,
  ev: DetectorEvent,
  ts: number,
  value: number,
  explain: (ev: DetectorEvent) => string,
  details: Record<string, unknown>,
): void {
  if (ev.state === 'open') {
    openAlert(s, ctx, type, ev.start, ts, value, ev.threshold, explain(ev), details)
  } else if (ev.state === 'update') {
    updateAlert(s, ctx, type, ts, value, ev.peak, explain(ev), details)
  } else {
    closeAlert(s, ctx, type, ev.end ?? ts, value, explain(ev), details)
  }
}

const fmt = (x: number, d = 1): string => x.toFixed(d)
const secs = (ms: number): string => `${fmt(ms / 1000, 2)} s`

/** Hottest of the corner fields present in the reading, undefined when none is. */
function hottest(f: Record<string, FieldValue>, names: readonly string[]): Num {
  let max: Num
  for (const n of names) {
    const v = num(f, n)
    if (v !== undefined && (max === undefined || v > max)) max = v
  }
  return max
}

/** Index of the hottest corner (only computed when an alert event needs it). */
function hottestCorner(f: Record<string, FieldValue>, names: readonly string[]): string | null {
  let idx = -1
  let max = -Infinity
  for (let i = 0; i < names.length; i++) {
    const v = num(f, names[i] as string)
    if (v !== undefined && v > max) {
      max = v
      idx = i
    }
  }
  return CORNERS[idx] ?? null
}

/** Bit mask of the corners over `thr`. */
function cornerMask(f: Record<string, FieldValue>, names: readonly string[], thr: number): number {
  let mask = 0
  for (let i = 0; i < names.length; i++) {
    const v = num(f, names[i] as string)
    if (v !== undefined && v > thr) mask |= 1 << i
  }
  return mask
}

function temperatureAlert(
  s: RaceState,
  ctx: ActorContext,
  type: 'brake_overheat' | 'tire_overheat',
  det: ThresholdForDuration,
  f: Record<string, FieldValue>,
  ts: number,
  value: number,
  cfg: RaceConfig['brake'],
): void {
  const maskKey = type === 'brake_overheat' ? 'brakeMask' : 'tyreMask'
  const names = type === 'brake_overheat' ? BRAKE_FIELDS : TYRE_FIELDS
  if (value > cfg.overheatC) s[maskKey] |= cornerMask(f, names, cfg.overheatC)
  const ev = det.update(ts, value)
  if (ev) {
    const what = type === 'brake_overheat' ? 'brake' : 'tyre'
    const corner = hottestCorner(f, names)
    onDetector(
      s,
      ctx,
      type,
      ev,
      ts,
      ev.value,
      (e) =>
        e.state === 'close'
          ? `${what} temperature back to ${fmt(e.value)} °C (<= ${fmt(cfg.overheatC - cfg.hysteresisC)} °C); peak ${fmt(e.peak)} °C`
          : `${what} temperature ${fmt(e.value)} °C at ${String(corner)} above ${fmt(cfg.overheatC)} °C for >= ${secs(cfg.durationMs)}`,
      { corner, corners: cornerNames(s[maskKey]), peak: ev.peak },
    )
  }
  // The episode's corner set restarts once the condition is neither pending nor active.
  if (!det.active && value <= cfg.overheatC) s[maskKey] = 0
}

// ---- speed loss -----------------------------------------------------------------------------------------

function speedDrop(s: RaceState, ts: number, speed: number, hardBrake: boolean, windowMs: number): number {
  if (hardBrake) {
    // A drop under heavy braking is a braking zone, not a failure: only samples after the last hard-brake
    // sample count as the speed the car lost from.
    s.dqT.length = 0
    s.dqV.length = 0
    s.dqH = 0
    return 0
  }
  const T = s.dqT
  const V = s.dqV
  while (T.length > s.dqH && (V[V.length - 1] as number) <= speed) {
    T.pop()
    V.pop()
  }
  T.push(ts)
  V.push(speed)
  while ((T[s.dqH] as number) < ts - windowMs) s.dqH++
  if (s.dqH > 32 && s.dqH * 2 > T.length) {
    T.splice(0, s.dqH)
    V.splice(0, s.dqH)
    s.dqH = 0
  }
  return (V[s.dqH] as number) - speed
}

// ---- fuel -----------------------------------------------------------------------------------------------

function fuelIncrease(s: RaceState, ctx: ActorContext, det: ThresholdForDuration, ts: number, fuel: number): void {
  if (fuel < 0) return
  // In the pit lane refuelling is legitimate: the baseline follows the gauge and the condition is false.
  const rise = s.inPit || s.minFuel === null ? 0 : fuel - s.minFuel
  s.minFuel = s.inPit || s.minFuel === null ? fuel : Math.min(s.minFuel, fuel)
  const ev = det.update(ts, rise)
  if (!ev) return
  const details = { reason: 'increase', fuel, baseline: s.minFuel, peak: ev.peak }
  if (ev.state === 'open') {
    const text = `fuel rose ${fmt(ev.value, 2)} kg above its minimum since the last pit stop, outside the pit lane`
    if (s.alerts.fuel_anomaly) updateAlert(s, ctx, 'fuel_anomaly', ts, ev.value, ev.peak, text, details)
    else openAlert(s, ctx, 'fuel_anomaly', ev.start, ts, ev.value, ev.threshold, text, details)
  } else if (ev.state === 'update') {
    updateAlert(s, ctx, 'fuel_anomaly', ts, ev.value, ev.peak, `fuel ${fmt(ev.value, 2)} kg above its minimum`, details)
  } else if (!s.fuelRateHigh) {
    closeAlert(s, ctx, 'fuel_anomaly', ev.end ?? ts, ev.value, 'fuel level consistent again', details)
  }
}

function fuelRate(
  s: RaceState,
  ctx: ActorContext,
  det: ThresholdForDuration,
  ts: number,
  used: number,
  c: RaceConfig,
): void {
  const f = c.fuel
  const base = s.fuelLaps.length >= f.minBaselineLaps ? median(s.fuelLaps) : undefined
  if (base !== undefined && base > 0) {
    const thr = f.rateFactor * base
    const details = {
      reason: 'consumption',
      lapFuelKg: used,
      medianKg: base,
      ratio: used / base,
      laps: s.fuelLaps.length,
    }
    if (!s.fuelRateHigh && used > thr) {
      s.fuelRateHigh = true
      const text = `lap used ${fmt(used, 2)} kg, ${fmt(used / base, 2)}x the median ${fmt(base, 2)} kg of previous laps (> ${f.rateFactor}x)`
      if (s.alerts.fuel_anomaly) updateAlert(s, ctx, 'fuel_anomaly', ts, used, used, text, details)
      else openAlert(s, ctx, 'fuel_anomaly', ts, ts, used, thr, text, details)
    } else if (s.fuelRateHigh && used <= (f.rateFactor - f.rateHysteresis) * base) {
      s.fuelRateHigh = false
      if (!det.active)
        closeAlert(s, ctx, 'fuel_anomaly', ts, used, `lap used ${fmt(used, 2)} kg, back to normal`, details)
    }
  }
  s.fuelLaps.push(used)
  if (s.fuelLaps.length > f.baselineLaps) s.fuelLaps.shift()
}

// ---- laps and score -------------------------------------------------------------------------------------

function pitStop(s: RaceState): void {
  s.armed = true
  // Pace measured on the old tyres says nothing about the new ones.
  s.lastLapMs = null
  s.minFuel = null
  if (s.lap) s.lap.pit = true
}

function finishLap(
  s: RaceState,
  ctx: ActorContext,
  det: Detectors,
  a: LapAcc,
  ts: number,
  nextLap: number,
  c: RaceConfig,
): void {
  const body: LapBody = {
    lap: a.lap,
    start: a.start,
    end: ts,
    lapTimeMs: ts - a.start,
    minSpeed: a.spMin,
    avgSpeed: a.spN > 0 ? a.spSum / a.spN : 0,
    maxSpeed: a.spMax,
    maxBrakeTemp: a.brakeMax,
    maxTyreTemp: a.tyreMax,
    samples: a.samples,
  }
  ctx.emit('lap', `lap:${a.lap}`, ts, body)
  s.lapsEmitted++
  if (!a.seenStart || a.pit || nextLap !== a.lap + 1 || body.lapTimeMs <= 0) return
  const K = c.pitStop.referenceLaps
  s.lastLapMs = body.lapTimeMs
  if (s.refLapMs.length < K) s.refLapMs.push(body.lapTimeMs)
  if (a.brN > 0) {
    s.lastLapBrake = a.brSum / a.brN
    if (s.refBrake.length < K) s.refBrake.push(s.lastLapBrake)
  }
  if (a.fuelFirst >= 0 && a.fuelLast >= 0 && a.fuelFirst >= a.fuelLast && a.samples > 1) {
    fuelRate(s, ctx, det.fuelInc, ts, a.fuelFirst - a.fuelLast, c)
  }
}

/** The inputs of the pit-stop score as the state stands. */
export function raceScoreInputs(s: RaceState, c: RaceConfig): Parameters<typeof pitStopScore>[0] {
  const K = c.pitStop.referenceLaps
  const bw = s.last.brake_wear
  return {
    tyreWearPct: s.wear ?? undefined,
    lastLapMs: s.lastLapMs ?? undefined,
    refLapMs: s.refLapMs.length >= K ? median(s.refLapMs) : undefined,
    lapBrakeTemp: s.lastLapBrake ?? undefined,
    refBrakeTemp: s.refBrake.length >= K ? median(s.refBrake) : undefined,
    brakeWearPct: typeof bw === 'number' ? bw : undefined,
    openAnomalies: Object.keys(s.alerts).length,
  }
}

function score(s: RaceState, ctx: ActorContext, ts: number, c: RaceConfig): void {
  const sc: PitStopScore = pitStopScore(raceScoreInputs(s, c), c.pitStop)
  const factors = factorRecord(sc)
  s.lastScore = sc.value
  ctx.emit('score', `pit_stop:${ctx.seq}`, ts, { name: 'pit_stop', value: sc.value, factors })
  // No recommendation from inside the pit lane: the car is already stopping.
  if (s.inPit) return
  const step = recommendStep(s.armed, sc.value, c.pitStop)
  s.armed = step.armed
  if (step.fire) {
    ctx.emit('recommendation', `pit_now:${ctx.seq}`, ts, {
      action: 'pit_now',
      score: sc.value,
      factors,
      reason: pitReason(sc, c.pitStop.recommendAbove),
    })
  }
}

// ---- the profile ----------------------------------------------------------------------------------------

/** A reading older than the last one applied is counted and written aside (`late`), never applied. */
function rejectLate(s: RaceState, r: Reading, ctx: ActorContext): boolean {
  if (s.lastTs === null || !(r.ts < s.lastTs)) return false
  s.late++
  ctx.emit('late', `late:${ctx.seq}`, r.ts, {
    readingTs: r.ts,
    watermark: ctx.watermark,
    readingSeq: ctx.seq,
    fields: r.fields,
  })
  return true
}

/** Pit stops: entering the pit lane, or a tyre wear drop (new tyres) when the car sends no pit flag. */
function trackPit(s: RaceState, f: Reading['fields'], c: RaceConfig): void {
  const pit = f.pit
  if (typeof pit === 'boolean') {
    if (pit && !s.inPit) pitStop(s)
    // Leaving the pit lane: the fuel baseline restarts from the first reading outside it.
    if (!pit && s.inPit) s.minFuel = null
    s.inPit = pit
  }
  const wear = num(f, 'tyre_wear')
  if (wear !== undefined) {
    if (s.wear !== null && wear < s.wear - c.pitStop.wearDropPct) pitStop(s)
    s.wear = wear
  }
}

/** Oil pressure drop, judged only above the rpm gate. */
function oilPressure(s: RaceState, ctx: ActorContext, det: Detectors, ts: number, oilP: number, c: RaceConfig): void {
  const rpm = num(s.last, 'rpm')
  const gated = rpm !== undefined && rpm > c.oil.minRpm
  // Below the rpm gate low pressure is normal: the sample counts as healthy, which ends an episode.
  const ev = det.oil.update(ts, gated ? oilP : Number.MAX_VALUE)
  if (!ev) return
  onDetector(
    s,
    ctx,
    'oil_pressure_drop',
    ev,
    ts,
    oilP,
    (e) =>
      e.state === 'close'
        ? gated
          ? `oil pressure back to ${fmt(oilP, 2)} bar`
          : `rpm ${fmt(rpm ?? 0, 0)} at or below ${c.oil.minRpm}: low pressure expected`
        : `oil pressure ${fmt(oilP, 2)} bar below ${c.oil.minBar} bar for >= ${secs(c.oil.durationMs)} at ${fmt(rpm ?? 0, 0)} rpm`,
    { peak: ev.peak, rpm: rpm ?? null, oil_pressure: oilP },
  )
}

/** Sudden speed loss: the drop over the window, not counting braking zones. */
function speedLoss(s: RaceState, ctx: ActorContext, det: Detectors, ts: number, speed: number, c: RaceConfig): void {
  const brake = num(s.last, 'brake') ?? 0
  const drop = speedDrop(s, ts, speed, brake > c.speedLoss.brakeMaxPct, c.speedLoss.windowMs)
  const ev = det.speed.update(ts, drop)
  if (!ev) return
  const from = s.dqV[s.dqH] ?? speed
  onDetector(
    s,
    ctx,
    'sudden_speed_loss',
    ev,
    ts,
    ev.value,
    (e) =>
      e.state === 'close'
        ? `speed drop over ${secs(c.speedLoss.windowMs)} back to ${fmt(e.value)} km/h`
        : `speed fell ${fmt(e.value)} km/h (${fmt(from)} -> ${fmt(speed)}) within ${secs(c.speedLoss.windowMs)} without brake > ${c.speedLoss.brakeMaxPct} %`,
    { peak: ev.peak, speed, fromSpeed: from, fromTs: s.dqT[s.dqH] ?? ts, brake },
  )
}

/** Laps: the sample that moves the counter belongs to the new lap; returns whether a lap ended. */
function advanceLap(
  s: RaceState,
  ctx: ActorContext,
  det: Detectors,
  ts: number,
  lapNo: number,
  c: RaceConfig,
): boolean {
  const cur = s.lap
  if (cur === null) {
    s.lap = newLap(lapNo, ts, false, s.inPit)
    return false
  }
  // A counter that goes back (a glitch, or a session restarting its count) counts in the lap in progress:
  // restarting there threw that lap away and emitted `lap:<n>` a second time with another body (a one-sample
  // fragment overwriting the lap already stored), and lap ids are unique per car.
  if (!(lapNo > cur.lap)) return false
  finishLap(s, ctx, det, cur, ts, lapNo, c)
  s.lap = newLap(lapNo, ts, lapNo === cur.lap + 1, s.inPit)
  return true
}

/** Adds this sample to the per-lap statistics of the lap in progress. */
function accumulateLap(
  s: RaceState,
  speed: number | undefined,
  brakeT: number | undefined,
  tyreT: number | undefined,
  fuel: number | undefined,
): void {
  const a = s.lap
  if (!a) return
  a.samples++
  if (s.inPit) a.pit = true
  if (speed !== undefined) {
    if (a.spN === 0 || speed < a.spMin) a.spMin = speed
    if (a.spN === 0 || speed > a.spMax) a.spMax = speed
    a.spSum += speed
    a.spN++
  }
  if (brakeT !== undefined) {
    if (brakeT > a.brakeMax) a.brakeMax = brakeT
    a.brSum += brakeT
    a.brN++
  }
  if (tyreT !== undefined && tyreT > a.tyreMax) a.tyreMax = tyreT
  if (fuel !== undefined && fuel >= 0) {
    if (a.fuelFirst < 0) a.fuelFirst = fuel
    a.fuelLast = fuel
  }
}

/** The pit-stop score: at each lap's end and every pitStop.intervalMs of event time. */
function scoreStep(s: RaceState, ctx: ActorContext, ts: number, lapEnded: boolean, c: RaceConfig): void {
  const iv = c.pitStop.intervalMs
  const due = iv > 0 && s.nextScoreAt !== null && ts >= s.nextScoreAt
  if (lapEnded || due) score(s, ctx, ts, c)
  if (iv > 0 && (s.nextScoreAt === null || lapEnded || due)) s.nextScoreAt = ts + iv
}

/** One reading: late check, pit stops, the five anomalies, laps and their statistics, the score. */
function onReading(s: RaceState, r: Reading, ctx: ActorContext, c: RaceConfig): void {
  if (rejectLate(s, r, ctx)) return
  const ts = r.ts
  s.lastTs = ts
  const det = s.det ?? hydrate(s, c)
  const f = r.fields
  for (const k in f) if (KNOWN_FIELDS.has(k)) s.last[k] = f[k] as FieldValue
  trackPit(s, f, c)

  // Anomalies.
  const brakeT = hottest(f, BRAKE_FIELDS)
  if (brakeT !== undefined) temperatureAlert(s, ctx, 'brake_overheat', det.brake, f, ts, brakeT, c.brake)
  const tyreT = hottest(f, TYRE_FIELDS)
  if (tyreT !== undefined) temperatureAlert(s, ctx, 'tire_overheat', det.tyre, f, ts, tyreT, c.tyre)
  const oilP = num(f, 'oil_pressure')
  if (oilP !== undefined) oilPressure(s, ctx, det, ts, oilP, c)
  const speed = num(f, 'speed')
  if (speed !== undefined) speedLoss(s, ctx, det, ts, speed, c)
  const fuel = num(f, 'fuel')
  if (fuel !== undefined) fuelIncrease(s, ctx, det.fuelInc, ts, fuel)

  const lapNo = num(f, 'lap')
  const lapEnded = lapNo !== undefined && advanceLap(s, ctx, det, ts, lapNo, c)
  accumulateLap(s, speed, brakeT, tyreT, fuel)
  scoreStep(s, ctx, ts, lapEnded, c)
}

// ---- snapshot codec -------------------------------------------------------------------------------------

type Encoded = Omit<RaceState, 'det' | 'dqH' | 'slots'> & { slots: Array<number | null> }

function encode(s: RaceState): Encoded {
  const { det: _det, dqH, dqT, dqV, slots, ...rest } = s
  return {
    ...rest,
    dqT: dqH > 0 ? dqT.slice(dqH) : dqT,
    dqV: dqH > 0 ? dqV.slice(dqH) : dqV,
    // NaN marks "none" in detector slots and is not JSON.
    slots: slots.map((v) => (Number.isFinite(v) ? v : null)),
  }
}

function decode(data: unknown, version: number): RaceState {
  if (version !== CODEC_VERSION) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_VERSION,
      `race snapshot version ${version} is not ${CODEC_VERSION}`,
    )
  }
  const d = data as Partial<Encoded> | null
  if (
    !d ||
    typeof d !== 'object' ||
    !Array.isArray(d.dqT) ||
    !Array.isArray(d.dqV) ||
    !Array.isArray(d.refLapMs) ||
    !Array.isArray(d.slots) ||
    d.slots.length !== SLOTS ||
    !d.slots.every((v) => v === null || typeof v === 'number')
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'race snapshot is not a race state')
  }
  const { slots, ...rest } = d as Encoded
  return { ...init(), ...rest, dqH: 0, slots: slots.map((v) => v ?? NaN), det: null }
}

function query(s: RaceState, _ctx: unknown, c: RaceConfig): unknown {
  const live = pitStopScore(raceScoreInputs(s, c), c.pitStop)
  const openAlerts = ANOMALY_TYPES.flatMap((t) => {
    const a = s.alerts[t]
    return a
      ? [
          {
            type: t,
            severity: RACE_ANOMALIES[t],
            alertId: a.id,
            start: a.start,
            value: a.value,
            threshold: a.threshold,
            peak: a.peak,
          },
        ]
      : []
  })
  return {
    driver: typeof s.last.driver === 'string' ? s.last.driver : null,
    lastTs: s.lastTs,
    lap: s.lap?.lap ?? null,
    inPit: s.inPit,
    last: s.last,
    openAlerts,
    score: { value: live.value, factors: live.factors, points: live.points, lastEmitted: s.lastScore, armed: s.armed },
    laps: {
      emitted: s.lapsEmitted,
      lastLapMs: s.lastLapMs,
      referenceLapMs: s.refLapMs.length >= c.pitStop.referenceLaps ? (median(s.refLapMs) ?? null) : null,
      referenceLaps: s.refLapMs.length,
      fuelBaselineKg: median(s.fuelLaps) ?? null,
    },
    late: s.late,
  }
}

/** The race car profile. */
export const race = defineActor<RaceState, RaceConfig>({
  kind: 'vehicle',
  profile: 'race',
  defaults: RACE_DEFAULTS,
  allowedLatenessMs: () => 0,
  init,
  codec: { version: CODEC_VERSION, encode, decode },
  onReading,
  query,
})
