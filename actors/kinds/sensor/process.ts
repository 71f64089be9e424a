/**
 * Sensor profile `process`: one actor per wastewater-plant sensor (DOMAIN.md section 3: 127 sensors, 8 stages).
 *
 * Reading fields:
 *   value  the sensor's own measurement, in the unit of its type (pH, mg/l, NTU, m³/h, kWh, A, ...); absent
 *          when the SCADA poll got nothing from the sensor (a dropout)
 *   flow   stage flow m³/h and `temp` water temperature °C: the covariates the PLC sends with every sample
 *   type   sensor type (`ph`, `do`, `cod`, ... see PROCESS_DEFAULTS.limits), `stage` process stage
 *   inlet  optional, on outlet analysers: the influent value of the same parameter (treatment efficiency)
 *
 * CHOICE (one actor per sensor, multivariate inside the reading): the runtime wants one actor per entity, and a
 * plant sensor is the entity operators name. The multivariate part comes from the covariates each reading
 * carries: the actor learns how its value follows stage flow and water temperature (an exponentially weighted
 * regression, process-model.ts), so "correlated sensors disagreeing" is a large residual against what flow and
 * temperature predict, rain and the daily cycle are explained instead of alarmed on, and each alert can say how
 * much the value, the flow and the temperature each drove it.
 *
 * Detection, per reading applied (in event-time order; an older reading is `late` and not applied), in priority
 * order; at most one anomaly alert is open per sensor, a higher-priority finding closes a lower one:
 *   1. cyber_attack (critical): value outside the physical range of its type, a change faster than the type's
 *      physical max rate, or a replay (>= cyber.replayMatches consecutive readings whose exact (value, flow, temp)
 *      was already seen in the last cyber.replayWindow readings). Works from the first reading.
 *   2. sensor_failure (warning): value missing for >= failure.dropoutReadings readings, or exactly the same value
 *      for >= failure.stuckReadings readings (a live sensor's noise never repeats to the last digit).
 *   3. pollution_spike (critical) / process_malfunction (critical): residual z beyond spike.z, same sign, for
 *      spike.confirm consecutive readings. Classified by onset: a pollutant front reaches a probe within a
 *      reading or two, so an upward run whose mean residual over the 4 readings before it was below spike.sharpZ
 *      is a pollution spike; a run built up over minutes (a failing blower, pump or control loop moves the
 *      process at its own time constant), or a downward one, is a process malfunction.
 *   4. sensor_drift (warning): the slow EW mean of the residual z beyond drift.z for drift.sustainReadings
 *      consecutive readings with no run of spike-level residuals among them.
 *   Out of service (an operator's maintenance state, reference data `service`, actors/service.ts): no alert opens,
 *   an open one closes with `out of service: <reason>`, the model learns nothing, residual means stay at zero;
 *   KPIs and the other counters go on. Back in service, detection resumes at the next reading.
 *   Residual-based checks (3, 4) start after warmupReadings, and pause while flow or temperature is beyond what the
 *   model has learned (noveltyMargin: a first storm is learned, not alarmed on). The model learns only from readings that look
 *   healthy (no open alert, no evidence pending, |z| < spike.clearZ), so an anomaly never becomes the baseline.
 *
 * Every alert names the features that drove it with their z and share (details.features), the classification
 * reason, the stage and sensor type. Outputs:
 *   alert  key `<alertId>:<open|close>:<seq>`, alertId `sensor:<id>:<type>:<start>`, ts = event time
 *   score  per kpiIntervalMs of event time, when the first reading of the next interval arrives:
 *          `anomalies:<start>` (value = alerts opened, factors per type), on outlet sensors with a limit
 *          `compliance:<start>` (% of readings within the limit), on sensors with `inlet`
 *          `treatment_efficiency:<start>` (mean 100 * (1 - value / inlet)). Plant KPIs are rollups of these.
 *   late   key `late:<seq>`
 * State: ~40 numbers plus a ring of cyber.replayWindow fingerprints (default 720: one hour at 5 s).
 */
import { defineActor } from '../../actor.js'
import * as alert from '../../alerts.js'
import type { ActorContext } from '../../actor.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import { outOfService } from '../../service.js'
import type { AlertBody, EntityRef, Reading, Severity } from '../../types.js'
import {
  M,
  M_SLOTS,
  blankModel,
  covariateZ,
  fingerprint,
  learn,
  novel,
  predict,
  remember,
  seen,
} from './process-model.js'
import {
  B,
  PHASE,
  BACKWASH_SLOTS,
  backwashReason,
  backwashState,
  blankBackwash,
  endRipple,
  observeStage,
  validateBackwashConfig,
  type BackwashConfig,
} from './backwash.js'

export const PLANT_ANOMALIES = [
  'cyber_attack',
  'sensor_failure',
  'pollution_spike',
  'process_malfunction',
  'sensor_drift',
] as const
export type PlantAnomaly = (typeof PLANT_ANOMALIES)[number]

/** Physical limits of a sensor type, and the discharge limit when it is measured at the outlet. */
export interface SensorLimits {
  unit: string
  lo: number
  hi: number
  /** Fastest physically possible change, units per second. */
  maxRatePerS: number
  outlet?: { min?: number; max?: number }
}

export interface ProcessConfig {
  allowedLatenessMs: number
  warmupReadings: number
  /** Memory of the regression and residual scale, in readings (default 17,280: a day at 5 s). */
  halfLifeReadings: number
  /** Residual scale floor, as a fraction of the type's physical span. */
  sigmaFloorRel: number
  /**
   * Flow or temperature beyond the learned range by more than this fraction of its width (twice it for
   * temperature) is a regime the model has not seen: residual checks pause and the reading is learned.
   */
  noveltyMargin: number
  /**
   * The rolling baseline spikes and malfunctions are measured against: an EW level of the residual (value minus
   * what flow and temperature predict) with a memory of `readings`, updated with each step clipped at
   * `winsorZ` scales (an excursion barely moves it), and an EW mean absolute deviation around it with a memory of
   * `scaleReadings` (learned only while no alert is open). `fastReadings`: EW smoothing of the value compared.
   */
  baseline: { readings: number; scaleReadings: number; fastReadings: number; winsorZ: number }
  /**
   * Spike / malfunction: |baseline z| > z for `confirm` readings opens; the rise time (from the first reading
   * beyond `departZ` to the last 10 % growth of the excursion, decided once it has not grown for
   * `plateauReadings`) tells a pollutant front (<= frontS, upward, chemistry type) from a
   * build-up; on outlet analysers an `inlet` that rose by `inletZ` or more makes it a spike, one that did not a
   * malfunction. Types no pollutant front reaches (flow, level, pump, energy, pressure, temperature: equipment
   * that steps) need `equipmentZ` instead of `z`, and a jump on them beyond `regimeZ` is a change of state (a
   * blower or pump switching on or off): the baseline restarts at the new level. Nothing opens while the stage flow is `stormFlowZ` or more above its own baseline (a storm's
   * first flush moves every sensor). A malfunction must hold `malfunctionConfirm` readings. `updateZ`: an open alert is updated when its peak grows by this much.
   * `steppingJumps`: an equipment sensor that made this many such jumps while healthy is stepping equipment
   * (pumps staged on and off, batch pumping, blowers, filter backwashes): its level is set by the equipment's
   * state, not by flow and temperature, so neither the rolling baseline nor the covariate model says anything
   * about a fault there, and it raises no spike, malfunction or drift of its own (failure and cyber rules stay;
   * 0 = never). The same for an equipment sensor whose healthy values span at most `stateLevels` quanta after
   * warm-up (a count of pumps running, a valve position: a state, not a measurement; 0 = never).
   */
  spike: {
    z: number
    equipmentZ: number
    regimeZ: number
    confirm: number
    malfunctionConfirm: number
    plateauReadings: number
    departZ: number
    frontS: number
    inletZ: number
    stormFlowZ: number
    clearZ: number
    clearReadings: number
    updateZ: number
    steppingJumps: number
    stateLevels: number
    /**
     * The front view of a chemistry sensor: the smoothed residual against a short EW level with a memory of
     * `frontReadings` (2 min), over its own healthy scale (EW mean absolute deviation, memory
     * baseline.scaleReadings). A pollutant front rises within 30-120 s; over 2 minutes the process itself moves
     * little, so the front stands out there where the 30 min baseline's scale (which carries the process's motion
     * within 30 min) hides it. Upward beyond `frontZ`, it opens the spike rule like the baseline z does (the same
     * confirm, rise time and clear rules; it fades within minutes, so it never holds long enough for a malfunction).
     * Not on a sensor whose longest healthy hold is `frontMaxHold` readings or more (a sample-and-hold analyser
     * shows a measurement cycle's step, not a front). 0 = off.
     */
    frontReadings: number
    frontZ: number
    frontMaxHold: number
    /**
     * A probe whose readings name its redundant partner (field `partner`, attached by the edge that knows the
     * P&ID, as it publishes the pair's copy: docs/profiles.md "Redundant pairs") raises no process_malfunction of
     * its own (neither the baseline's build-up nor the drift rule's fast shift): a malfunction is correlated sensors
     * disagreeing, which the pair actor measures in the difference of the two probes; a move of the probe's own
     * residual that its partner shares is the process (a storm, a load change). Spikes, drifts, failures and cyber
     * findings stay. false = the probe judges malfunctions as an unpaired sensor does.
     */
    leaveToPair: boolean
    /**
     * The rise-time bound of a pollutant front on such a probe (s), instead of `frontS`: there an upward build-up
     * typed as a malfunction raises nothing (it is left to the pair), so a front rising a little slower than
     * `frontS` (a front takes up to 2 min to pass) would be lost altogether, while a one-probe departure is still
     * named by the pair actor. Only with `leaveToPair`.
     */
    pairFrontS: number
  }
  drift: {
    z: number
    scaleZ: number
    fastZ: number
    fastRatio: number
    slowReadings: number
    sustainReadings: number
    midReadings: number
    clearZ: number
    clearReadings: number
    /** The model stops learning while |slow mean| >= learnBelow. */
    learnBelow: number
    /** A drift open this long is accepted as the new baseline: closed, and the model's level moved to it. */
    maxReadings: number
    /**
     * The rule (drift, and the shift it types as a malfunction) judges only a sensor whose slow mean averages at
     * least this many values of its own: slowReadings / its longest healthy hold >= minSamples (a sample-and-hold
     * analyser that holds a value for minutes gives the 10 min mean one or two measurements). 0 = every sensor.
     */
    minSamples: number
  }
  /**
   * Stuck: the same value for max(stuckReadings, holdFactor x the longest run of one value the sensor had while
   * healthy) readings, so a quantised or sample-and-hold sensor is judged by its own hold behaviour; judged only
   * once the sensor has changed value minChanges times (a pump that has not switched yet has no known hold). A reading
   * outside the type's range by at most loopBreakRel of its span is a 4-20 mA loop break (sensor_failure), one
   * further out is no instrument's value (cyber_attack). `idleRel`: stepping equipment (spike.steppingJumps,
   * spike.stateLevels) holding a value within this share of its healthy range above its healthy minimum is off,
   * not stuck (0 = judge it anyway).
   */
  failure: {
    stuckReadings: number
    holdFactor: number
    minChanges: number
    dropoutReadings: number
    loopBreakRel: number
    clearReadings: number
    idleRel: number
  }
  /**
   * Replay: `replayMatches` consecutive readings seen bit for bit in the last `replayWindow`, only on a sensor
   * whose healthy readings repeat such a fingerprint at most `replayMaxRate` of the time (at SCADA resolution a
   * slow sensor repeats its (value, flow, temp) by itself). Toggling: `toggleSteps` large steps in alternating
   * signs, each larger than `toggleStepZ` times the sensor's mean healthy step over the last `stepReadings` (and
   * than its quantum and than `toggleSpanRel` of the range of values it had while healthy), at most `toggleGap` readings apart, each within `toggleTolerance` of the size of the one
   * before (a toggle swings between two levels; noise steps have random sizes). Each step must also reach
   * `toggleRangeRel` of the type's physical range `limits[type]` (a standby blower dithering between 0 and 0.1 kW
   * on a 5000 kW meter is the SCADA resolution, not an attack; 0 = no such floor).
   */
  cyber: {
    replayWindow: number
    replayMatches: number
    replayMaxRate: number
    toggleSteps: number
    toggleStepZ: number
    toggleGap: number
    toggleTolerance: number
    toggleSpanRel: number
    toggleRangeRel: number
    stepReadings: number
    clearReadings: number
  }
  /**
   * Designed suppression (ISA-18.2 state-based alarming) during a filter backwash the sensor's own readings show
   * through the filter group's signals the edge attaches to them (backwash.ts): no spike, malfunction, drift or
   * stuck alert on this sensor from the backwash until the wash water has passed; cyber, dropout and loop break
   * still alert. A sensor whose readings carry no such signals is never suppressed.
   */
  backwash: BackwashConfig
  kpiIntervalMs: number
  /** Stage whose sensors are checked against `limits[type].outlet`. */
  outletStage: string
  severities: Record<PlantAnomaly, Severity>
  /** Per sensor type. A type not listed gets no range/rate check (replay and the rest still apply). */
  limits: Record<string, SensorLimits>
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

export const PROCESS_DEFAULTS: ProcessConfig = deepFreeze({
  allowedLatenessMs: 0,
  warmupReadings: 720,
  halfLifeReadings: 17_280,
  sigmaFloorRel: 1e-5,
  noveltyMargin: 0.1,
  baseline: { readings: 360, scaleReadings: 1440, fastReadings: 3, winsorZ: 3 },
  spike: {
    z: 3.5,
    equipmentZ: 12,
    regimeZ: 50,
    confirm: 6,
    malfunctionConfirm: 60,
    plateauReadings: 6,
    departZ: 1.5,
    frontS: 75,
    inletZ: 2,
    stormFlowZ: 4,
    clearZ: 2,
    clearReadings: 36,
    updateZ: 1,
    steppingJumps: 3,
    stateLevels: 20,
    frontReadings: 24,
    frontZ: 4,
    frontMaxHold: 60,
    leaveToPair: true,
    pairFrontS: 120,
  },
  drift: {
    z: 1.5,
    scaleZ: 12,
    fastZ: 7,
    fastRatio: 2,
    slowReadings: 120,
    sustainReadings: 120,
    midReadings: 10,
    clearZ: 0.75,
    clearReadings: 12,
    learnBelow: 0.75,
    maxReadings: 8_640,
    minSamples: 4,
  },
  failure: {
    stuckReadings: 6,
    holdFactor: 3,
    minChanges: 20,
    dropoutReadings: 6,
    loopBreakRel: 0.1,
    clearReadings: 3,
    idleRel: 0.05,
  },
  cyber: {
    replayWindow: 720,
    replayMatches: 3,
    replayMaxRate: 0.01,
    toggleSteps: 6,
    toggleStepZ: 8,
    toggleGap: 2,
    toggleTolerance: 0.3,
    toggleSpanRel: 0.1,
    toggleRangeRel: 0.001,
    stepReadings: 120,
    clearReadings: 12,
  },
  backwash: {
    pumpOnRel: 0.5,
    filterOutShare: 0.2,
    confirmReadings: 2,
    endReadings: 3,
    staleMs: 60_000,
    settleMs: 120_000,
    rippleClearZ: 1.5,
    rippleClearReadings: 36,
    rippleMaxMs: 2_700_000,
  },
  kpiIntervalMs: 900_000,
  outletStage: 'outlet',
  severities: {
    cyber_attack: 'critical',
    sensor_failure: 'warning',
    pollution_spike: 'critical',
    process_malfunction: 'critical',
    sensor_drift: 'warning',
  },
  // Physical ranges and rates of the instruments; outlet limits of a typical urban discharge permit.
  limits: {
    ph: { unit: 'pH', lo: 0, hi: 14, maxRatePerS: 0.2 },
    do: { unit: 'mg/l', lo: 0, hi: 20, maxRatePerS: 0.5 },
    turbidity: { unit: 'NTU', lo: 0, hi: 4000, maxRatePerS: 100 },
    flow: { unit: 'm³/h', lo: 0, hi: 20000, maxRatePerS: 300 },
    temperature: { unit: '°C', lo: -5, hi: 60, maxRatePerS: 0.5 },
    pressure: { unit: 'bar', lo: 0, hi: 16, maxRatePerS: 1 },
    conductivity: { unit: 'µS/cm', lo: 0, hi: 20000, maxRatePerS: 400 },
    nitrogen: { unit: 'mg/l', lo: 0, hi: 300, maxRatePerS: 10, outlet: { max: 15 } },
    phosphorus: { unit: 'mg/l', lo: 0, hi: 60, maxRatePerS: 2, outlet: { max: 2 } },
    tss: { unit: 'mg/l', lo: 0, hi: 20000, maxRatePerS: 300, outlet: { max: 35 } },
    cod: { unit: 'mg/l', lo: 0, hi: 5000, maxRatePerS: 100, outlet: { max: 125 } },
    bod5: { unit: 'mg/l', lo: 0, hi: 2000, maxRatePerS: 50, outlet: { max: 25 } },
    metals: { unit: 'mg/l', lo: 0, hi: 20, maxRatePerS: 0.5, outlet: { max: 0.5 } },
    chlorine: { unit: 'mg/l', lo: 0, hi: 10, maxRatePerS: 0.3, outlet: { max: 0.2 } },
    ammonia: { unit: 'mg/l', lo: 0, hi: 200, maxRatePerS: 5, outlet: { max: 4 } },
    nitrate: { unit: 'mg/l', lo: 0, hi: 200, maxRatePerS: 5 },
    nitrite: { unit: 'mg/l', lo: 0, hi: 20, maxRatePerS: 0.5 },
    energy: { unit: 'kW', lo: 0, hi: 5000, maxRatePerS: 100 },
    pump: { unit: 'A', lo: 0, hi: 400, maxRatePerS: 40 },
    level: { unit: 'm', lo: 0, hi: 12, maxRatePerS: 0.2 },
    sludge: { unit: 'g/l', lo: 0, hi: 80, maxRatePerS: 2 },
  },
})

const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical']
const CYBER = 0,
  FAILURE = 1,
  SPIKE = 2,
  MALFUNCTION = 3,
  DRIFT = 4
const NONE = -1

/** Checks a process config; throws ConfigError naming the setting. */
export function validateProcessConfig(c: ProcessConfig): void {
  const num = (setting: string, v: unknown, min: number, integer = false): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      throw new ConfigError(
        `process.${setting}`,
        `must be a finite ${integer ? 'integer' : 'number'} >= ${min}, got ${String(v)}`,
      )
    }
  }
  const group = (g: string, v: unknown): void => {
    if (!v || typeof v !== 'object') throw new ConfigError(`process.${g}`, 'must be an object')
  }
  num('allowedLatenessMs', c.allowedLatenessMs, 0)
  num('warmupReadings', c.warmupReadings, 0, true)
  num('halfLifeReadings', c.halfLifeReadings, 2, true)
  num('sigmaFloorRel', c.sigmaFloorRel, 0)
  num('noveltyMargin', c.noveltyMargin, 0)
  num('kpiIntervalMs', c.kpiIntervalMs, 1000)
  for (const g of ['spike', 'drift', 'failure', 'cyber', 'backwash', 'severities', 'limits'] as const) group(g, c[g])
  validateBackwashConfig(c.backwash, (setting, why) => {
    throw new ConfigError(`process.${setting}`, why)
  })
  group('baseline', c.baseline)
  for (const k of ['readings', 'scaleReadings', 'fastReadings'] as const) num(`baseline.${k}`, c.baseline[k], 1, true)
  num('baseline.winsorZ', c.baseline.winsorZ, 0)
  num('spike.z', c.spike.z, 0)
  num('spike.confirm', c.spike.confirm, 1, true)
  num('spike.malfunctionConfirm', c.spike.malfunctionConfirm, 1, true)
  num('spike.plateauReadings', c.spike.plateauReadings, 1, true)
  for (const k of ['equipmentZ', 'regimeZ', 'departZ', 'frontS', 'inletZ', 'stormFlowZ', 'clearZ', 'updateZ'] as const)
    num(`spike.${k}`, c.spike[k], 0)
  num('spike.pairFrontS', c.spike.pairFrontS, 0)
  if (c.spike.clearZ > c.spike.z) throw new ConfigError('process.spike.clearZ', 'must be <= spike.z')
  if (c.spike.departZ > c.spike.z) throw new ConfigError('process.spike.departZ', 'must be <= spike.z')
  num('spike.clearReadings', c.spike.clearReadings, 1, true)
  num('spike.steppingJumps', c.spike.steppingJumps, 0, true)
  num('spike.stateLevels', c.spike.stateLevels, 0)
  num('spike.frontReadings', c.spike.frontReadings, 0, true)
  num('spike.frontZ', c.spike.frontZ, 0)
  num('spike.frontMaxHold', c.spike.frontMaxHold, 0)
  if (typeof c.spike.leaveToPair !== 'boolean') throw new ConfigError('process.spike.leaveToPair', 'must be a boolean')
  num('drift.z', c.drift.z, 0)
  num('drift.scaleZ', c.drift.scaleZ, 0)
  num('drift.fastZ', c.drift.fastZ, 0)
  num('drift.fastRatio', c.drift.fastRatio, 0)
  num('drift.clearZ', c.drift.clearZ, 0)
  num('drift.learnBelow', c.drift.learnBelow, 0)
  num('drift.minSamples', c.drift.minSamples, 0)
  for (const k of ['slowReadings', 'sustainReadings', 'midReadings', 'clearReadings', 'maxReadings'] as const)
    num(`drift.${k}`, c.drift[k], 1, true)
  for (const k of ['stuckReadings', 'dropoutReadings', 'clearReadings'] as const)
    num(`failure.${k}`, c.failure[k], 1, true)
  num('failure.holdFactor', c.failure.holdFactor, 1)
  num('failure.idleRel', c.failure.idleRel, 0)
  num('failure.minChanges', c.failure.minChanges, 0, true)
  num('failure.loopBreakRel', c.failure.loopBreakRel, 0)
  num('cyber.replayWindow', c.cyber.replayWindow, 1, true)
  if (c.cyber.replayWindow > 20_000)
    throw new ConfigError('process.cyber.replayWindow', 'must be <= 20000 (memory per actor)')
  num('cyber.replayMatches', c.cyber.replayMatches, 1, true)
  num('cyber.replayMaxRate', c.cyber.replayMaxRate, 0)
  num('cyber.toggleSteps', c.cyber.toggleSteps, 2, true)
  num('cyber.toggleStepZ', c.cyber.toggleStepZ, 0)
  num('cyber.toggleGap', c.cyber.toggleGap, 0, true)
  num('cyber.toggleTolerance', c.cyber.toggleTolerance, 0)
  num('cyber.toggleSpanRel', c.cyber.toggleSpanRel, 0)
  num('cyber.toggleRangeRel', c.cyber.toggleRangeRel, 0)
  num('cyber.stepReadings', c.cyber.stepReadings, 1, true)
  num('cyber.clearReadings', c.cyber.clearReadings, 1, true)
  if (typeof c.outletStage !== 'string') throw new ConfigError('process.outletStage', 'must be a string')
  for (const a of PLANT_ANOMALIES) {
    if (!SEVERITIES.includes(c.severities[a]))
      throw new ConfigError(`process.severities.${a}`, `must be one of ${SEVERITIES.join(', ')}`)
  }
  for (const [t, l] of Object.entries(c.limits)) {
    group(`limits.${t}`, l)
    num(`limits.${t}.lo`, l.lo, -Infinity)
    num(`limits.${t}.hi`, l.hi, -Infinity)
    if (!(l.hi > l.lo)) throw new ConfigError(`process.limits.${t}.hi`, 'must be > lo')
    num(`limits.${t}.maxRatePerS`, l.maxRatePerS, 0)
    if (l.outlet !== undefined) {
      group(`limits.${t}.outlet`, l.outlet)
      if (l.outlet.min !== undefined) num(`limits.${t}.outlet.min`, l.outlet.min, -Infinity)
      if (l.outlet.max !== undefined) num(`limits.${t}.outlet.max`, l.outlet.max, -Infinity)
    }
  }
}

const validated = new WeakSet<ProcessConfig>()
function checked(c: ProcessConfig): ProcessConfig {
  if (!validated.has(c)) {
    validateProcessConfig(c)
    validated.add(c)
  }
  return c
}

// ---- state ------------------------------------------------------------------------------------------------

/** Live slots (`v`). NaN = none. */
const L = {
  TS: 0,
  VALUE: 1,
  FLOW: 2,
  TEMP: 3,
  /** Readings with a value applied; same value run; missing value run. */
  N: 4,
  REP: 5,
  MISS: 6,
  /** Run of readings beyond spike.z against the baseline: count and sign. */
  OVER: 7,
  OSIGN: 8,
  /** Slow and medium EW means of the covariate-model residual z; run of |slow| > drift.z. */
  SLOW: 9,
  MID: 10,
  SRUN: 11,
  /** Consecutive replayed readings; consecutive readings meeting the open alert's clear condition. */
  REPLAY: 12,
  CLEAR: 13,
  /** Last covariate-model residual z, last expected value. */
  Z: 14,
  EXP: 15,
  /** Open alert: type index (NONE), start, peak (|z|, or the finding's value), readings since it opened. */
  AT: 16,
  AS: 17,
  AP: 18,
  AN: 19,
  /** Consecutive readings not learned because of the slow mean alone. */
  GATED: 20,
  /** The sensor's quantum (smallest change seen), longest healthy run of one value, EW rate of replay hits. */
  QUANT: 21,
  HOLD: 22,
  FPR: 23,
  /** Rolling baseline of the residual: level, mean absolute deviation, fast EW value, baseline z, readings. */
  BASE: 24,
  DEV: 25,
  FAST: 26,
  ZB: 27,
  BN: 28,
  /** Event time the current excursion passed spike.departZ, and the time it first passed spike.z. */
  DEPART: 29,
  FIRST: 30,
  /** Inlet baseline (outlet analysers): level and mean absolute deviation. */
  INB: 31,
  INDEV: 32,
  /** Stage flow baseline: level and mean absolute deviation. */
  FLB: 33,
  FLD: 34,
  /** EW mean |step| of healthy readings; alternating large steps in a row and the sign of the last. */
  STEP: 35,
  ALT: 36,
  DSIGN: 37,
  /** Peak |z| last reported by an open alert (updates). */
  UPD: 38,
  /** Value changes seen while healthy (the hold behaviour is known after failure.minChanges of them). */
  CHG: 39,
  /** Readings since the last large step (toggling); warm-up readings outside the type's range. */
  GAP: 40,
  ROUT: 41,
  /** Size of the last large step (a toggle goes back and forth between the same two levels). */
  BIGM: 42,
  /** Lowest and highest value seen while healthy. */
  VMIN: 43,
  VMAX: 44,
  /** Peak |baseline z| of the current excursion and when it was last raised by 10 % or more. */
  PEAK: 45,
  PEAKTS: 46,
  /** EW mean |slow mean| while healthy: how far this sensor's residual wanders by itself (drift threshold). */
  SLOWDEV: 47,
  /** 1 when the open alert was found by the drift rule (it closes by that rule), else 0. */
  SLOWOPEN: 48,
  /** Changes of state (jumps beyond spike.regimeZ on an equipment type) seen while healthy. */
  JUMPS: 49,
  /** The front view (spike.frontReadings): short EW level of the residual, and the mean absolute deviation around it. */
  SHORT: 50,
  SDEV: 51,
  /** Readings since the front view last restarted (out of service, designed suppression). */
  SN: 52,
  /** The front view's z when it stood in for the baseline z on this reading (v[L.ZB]), else NaN; its scale. */
  FZ: 53,
  FSCALE: 54,
  /** 1 when the newest reading that said so named a redundant partner (field `partner`), else 0. */
  PAIRED: 55,
} as const
const L_SLOTS = 56
/** The slow mean of z is fed z clipped at this: a single wild reading belongs to the spike logic. */
const DRIFT_CLIP = 6
/** Sensor types a pollutant front can reach (concentrations and water-quality analysers). */
const CHEMISTRY = new Set([
  'ph',
  'do',
  'turbidity',
  'conductivity',
  'nitrogen',
  'phosphorus',
  'tss',
  'cod',
  'bod5',
  'metals',
  'chlorine',
  'ammonia',
  'nitrate',
  'nitrite',
  'sludge',
])
/** KPI interval slots (`k`): start, readings, readings under a limit, within it, efficiency sum and count, opened per type. */
const K = { START: 0, N: 1, LIM: 2, OK: 3, EFF: 4, EFFN: 5, OPEN: 6 } as const
const K_SLOTS = 6 + PLANT_ANOMALIES.length

export interface ProcessState {
  /** Sensor type and stage, from the newest reading that named them. */
  type: string
  stage: string
  m: number[]
  v: number[]
  k: number[]
  /** Replay fingerprints (NaN = empty) and the next write position. */
  fp: number[]
  fpPos: number
  late: number
  /** The filter backwash view (backwash.ts): designed suppression from the stage signals in the readings. */
  b: number[]
}

function freshLive(): number[] {
  const v = new Array<number>(L_SLOTS).fill(NaN)
  for (const i of [
    L.N,
    L.REP,
    L.MISS,
    L.OVER,
    L.SRUN,
    L.REPLAY,
    L.CLEAR,
    L.SLOW,
    L.MID,
    L.AN,
    L.GATED,
    L.HOLD,
    L.FPR,
    L.BN,
    L.ALT,
    L.DSIGN,
    L.CHG,
    L.GAP,
    L.ROUT,
    L.SLOWOPEN,
    L.JUMPS,
    L.SN,
    L.PAIRED,
  ])
    v[i] = 0
  v[L.AT] = NONE
  return v
}

function init(_e: EntityRef, c: ProcessConfig): ProcessState {
  checked(c)
  const v = freshLive()
  const k = new Array<number>(K_SLOTS).fill(0)
  k[K.START] = NaN
  return {
    type: '',
    stage: '',
    m: blankModel(),
    v,
    k,
    fp: new Array<number>(c.cyber.replayWindow).fill(NaN),
    fpPos: 0,
    late: 0,
    b: blankBackwash(),
  }
}

// ---- alerts -------------------------------------------------------------------------------------------------

interface Feature {
  feature: string
  value: number
  z: number
  share: number
}

function fmt(x: number): string {
  return String(Math.round(x * 1000) / 1000)
}

/** Names the features with their z and their share of the total |z| (how much each drove the finding). */
function features(parts: Array<[string, number, number]>): Feature[] {
  const tot = parts.reduce((a, p) => a + Math.abs(p[2]), 0) || 1
  return parts
    .map(([feature, value, z]) => ({
      feature,
      value,
      z: Math.round(z * 100) / 100,
      share: Math.round((Math.abs(z) / tot) * 1000) / 1000,
    }))
    .sort((a, b) => b.share - a.share)
}

/** `peak`: the |z| an open alert of this finding reports, for updates (spike, malfunction). */
/** `slow`: found by the drift rule (a drift, or a shift typed as a malfunction); such an alert closes by the drift rule. */
interface Finding {
  type: number
  value: number
  threshold: number
  reason: string
  features: Feature[]
  peak?: number
  slow?: boolean
}

function alertIdOf(e: EntityRef, type: number, start: number): string {
  return alert.alertId(e, PLANT_ANOMALIES[type] as string, start)
}

function openAlert(s: ProcessState, ctx: ActorContext, c: ProcessConfig, f: Finding, ts: number, start: number): void {
  const name = PLANT_ANOMALIES[f.type] as PlantAnomaly
  const alertId = alertIdOf(ctx.entity, f.type, start)
  const top = f.features
    .slice(0, 3)
    .map((x) => `${x.feature} ${Math.round(x.share * 100)} %`)
    .join(', ')
  const body: AlertBody = {
    alertId,
    type: name,
    severity: c.severities[name],
    state: 'open',
    start,
    value: f.value,
    threshold: f.threshold,
    explanation: `${s.stage || 'plant'} ${s.type || 'sensor'}: ${f.reason} (driven by ${top})`,
    details: { stage: s.stage, sensorType: s.type, features: f.features, reason: f.reason },
  }
  alert.emitAlert(ctx, ts, body)
  s.v[L.AT] = f.type
  s.v[L.AS] = start
  // Peak: |medium mean| for a drift (see the close rule), the value otherwise.
  s.v[L.AP] = f.slow ? Math.abs(s.v[L.MID] as number) : f.value
  s.v[L.SLOWOPEN] = f.slow ? 1 : 0
  s.v[L.CLEAR] = 0
  s.v[L.AN] = 0
  s.v[L.UPD] = f.peak ?? NaN
  s.k[K.OPEN + f.type] = (s.k[K.OPEN + f.type] as number) + 1
}

/**
 * The open alert grew (its peak |z| by spike.updateZ or more): the same alert, state `update`, with the features
 * of the reading that made it grow. One episode stays one alert that updates, not a series.
 */
function updateAlert(s: ProcessState, ctx: ActorContext, c: ProcessConfig, f: Finding, ts: number): void {
  const type = s.v[L.AT] as number
  const name = PLANT_ANOMALIES[type] as PlantAnomaly
  const start = s.v[L.AS] as number
  const alertId = alertIdOf(ctx.entity, type, start)
  const top = f.features
    .slice(0, 3)
    .map((x) => `${x.feature} ${Math.round(x.share * 100)} %`)
    .join(', ')
  alert.emitAlert(ctx, ts, {
    alertId,
    type: name,
    severity: c.severities[name],
    state: 'update',
    start,
    value: f.value,
    threshold: f.threshold,
    explanation: `${s.stage || 'plant'} ${s.type || 'sensor'}: ${f.reason} (driven by ${top})`,
    details: { stage: s.stage, sensorType: s.type, features: f.features, reason: f.reason },
  })
  s.v[L.UPD] = f.peak ?? NaN
}

function closeAlert(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number,
  why: string,
): void {
  const type = s.v[L.AT] as number
  if (type === NONE) return
  const name = PLANT_ANOMALIES[type] as PlantAnomaly
  const start = s.v[L.AS] as number
  const alertId = alertIdOf(ctx.entity, type, start)
  alert.emitAlert(ctx, ts, {
    alertId,
    type: name,
    severity: c.severities[name],
    state: 'close',
    start,
    end: ts,
    value,
    threshold: 0,
    explanation: `${s.stage || 'plant'} ${s.type || 'sensor'}: ${why}`,
    details: { stage: s.stage, sensorType: s.type, peak: s.v[L.AP] },
  })
  s.v[L.AT] = NONE
  s.v[L.AS] = NaN
  s.v[L.AP] = NaN
  s.v[L.SLOWOPEN] = 0
  s.v[L.CLEAR] = 0
  // Whatever was open, the residual means start afresh: the readings under the alert are not a drift.
  s.v[L.SLOW] = 0
  s.v[L.MID] = 0
  s.v[L.SRUN] = 0
  s.v[L.UPD] = NaN
}

// ---- KPIs -------------------------------------------------------------------------------------------------

function flushKpis(s: ProcessState, ctx: ActorContext, c: ProcessConfig): void {
  const k = s.k
  const start = k[K.START] as number
  if (Number.isNaN(start) || (k[K.N] as number) === 0) return
  const end = start + c.kpiIntervalMs
  const factors: Record<string, number> = { readings: k[K.N] as number }
  let opened = 0
  PLANT_ANOMALIES.forEach((a, i) => {
    factors[a] = k[K.OPEN + i] as number
    opened += k[K.OPEN + i] as number
  })
  ctx.emit('score', `anomalies:${start}`, end, { name: 'anomalies', value: opened, factors })
  if ((k[K.LIM] as number) > 0) {
    ctx.emit('score', `compliance:${start}`, end, {
      name: 'compliance',
      value: (100 * (k[K.OK] as number)) / (k[K.LIM] as number),
      factors: { readings: k[K.LIM] as number, within: k[K.OK] as number },
    })
  }
  if ((k[K.EFFN] as number) > 0) {
    ctx.emit('score', `treatment_efficiency:${start}`, end, {
      name: 'treatment_efficiency',
      value: (k[K.EFF] as number) / (k[K.EFFN] as number),
      factors: { samples: k[K.EFFN] as number },
    })
  }
}

function kpiStep(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number | undefined,
  inlet: number | undefined,
): void {
  const k = s.k
  const start = Math.floor(ts / c.kpiIntervalMs) * c.kpiIntervalMs
  if (start !== k[K.START]) {
    flushKpis(s, ctx, c)
    k.fill(0)
    k[K.START] = start
  }
  k[K.N] = (k[K.N] as number) + 1
  if (value === undefined) return
  const lim = c.limits[s.type]?.outlet
  if (lim && s.stage === c.outletStage) {
    k[K.LIM] = (k[K.LIM] as number) + 1
    if ((lim.min === undefined || value >= lim.min) && (lim.max === undefined || value <= lim.max))
      k[K.OK] = (k[K.OK] as number) + 1
  }
  if (inlet !== undefined && inlet > 0) {
    k[K.EFF] = (k[K.EFF] as number) + 100 * (1 - value / inlet)
    k[K.EFFN] = (k[K.EFFN] as number) + 1
  }
}

// ---- the reading handler ----------------------------------------------------------------------------------

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined)

/**
 * Range evidence of this reading: just outside the type's range is a loop break, further out no instrument's
 * value. A sensor whose warm-up readings were outside the range more than 1 % of the time has an instrument range
 * the type's limits do not describe (e.g. another unit): no range finding on it, only the other checks.
 */
function rangeFinding(s: ProcessState, c: ProcessConfig, value: number): Finding | undefined {
  const lim = c.limits[s.type]
  if (!lim || (value >= lim.lo && value <= lim.hi)) return undefined
  const v = s.v
  if ((v[L.N] as number) < c.warmupReadings) {
    v[L.ROUT] = (v[L.ROUT] as number) + 1
    return undefined
  }
  if ((v[L.ROUT] as number) > c.warmupReadings * 0.01) return undefined
  const span = lim.hi - lim.lo
  const out = value < lim.lo ? lim.lo - value : value - lim.hi
  const edge = value < lim.lo ? lim.lo : lim.hi
  if (out <= span * c.failure.loopBreakRel) {
    return {
      type: FAILURE,
      value,
      threshold: edge,
      reason: `value ${fmt(value)} ${lim.unit} just ${value < lim.lo ? 'below' : 'above'} the range ${lim.lo}..${lim.hi} (4-20 mA loop break or saturated transmitter)`,
      features: features([['range', value, out / (span * 0.01)]]),
    }
  }
  return {
    type: CYBER,
    value,
    threshold: edge,
    reason: `value ${fmt(value)} ${lim.unit} outside the physical range ${lim.lo}..${lim.hi}`,
    features: features([['range', value, out / (span * 0.01)]]),
  }
}

/** Cyber evidence of this reading (rate, toggling, replay), or undefined. */
function cyberFinding(
  s: ProcessState,
  c: ProcessConfig,
  ts: number,
  value: number,
  replayed: boolean,
): Finding | undefined {
  const lim = c.limits[s.type]
  const v = s.v
  const prev = v[L.VALUE] as number,
    dt = (ts - (v[L.TS] as number)) / 1000
  // Equipment (flow, level, pump, energy, ...) steps by itself when pumps stage or a filter goes to backwash: a
  // single fast step there is a change of state, not evidence; toggling is (below).
  if (lim && CHEMISTRY.has(s.type) && !Number.isNaN(prev) && dt > 0) {
    const rate = Math.abs(value - prev) / dt
    if (rate > lim.maxRatePerS) {
      return {
        type: CYBER,
        value: rate,
        threshold: lim.maxRatePerS,
        reason: `value changed ${fmt(rate)} ${lim.unit}/s (from ${fmt(prev)} to ${fmt(value)}), faster than the physical max ${lim.maxRatePerS}`,
        features: features([['rate', rate, rate / lim.maxRatePerS]]),
      }
    }
  }
  if ((v[L.ALT] as number) >= c.cyber.toggleSteps) {
    const step = Math.abs(value - prev),
      typical = v[L.STEP] as number
    return {
      type: CYBER,
      value: step,
      threshold: c.cyber.toggleStepZ * typical,
      reason: `${v[L.ALT] as number} steps in a row in alternating signs, the last ${fmt(step)} against a typical step of ${fmt(typical)} (toggling faster than the process can move)`,
      features: features([
        ['toggle_steps', v[L.ALT] as number, v[L.ALT] as number],
        ['step', step, typical > 0 ? step / typical : 0],
      ]),
    }
  }
  if (replayed && (v[L.REPLAY] as number) >= c.cyber.replayMatches && (v[L.FPR] as number) <= c.cyber.replayMaxRate) {
    return {
      type: CYBER,
      value: v[L.REPLAY] as number,
      threshold: c.cyber.replayMatches,
      reason: `${v[L.REPLAY] as number} consecutive readings repeat earlier readings bit for bit (replayed data)`,
      features: features([
        ['replay', v[L.REPLAY] as number, v[L.REPLAY] as number],
        ['replay_base_rate', v[L.FPR] as number, 0],
      ]),
    }
  }
  return undefined
}

/** EW step with alpha 1 / min(n + 1, memory): the exact mean at first, then a window of about `memory` readings. */
const ew = (cur: number, x: number, n: number, memory: number): number => cur + (x - cur) / Math.min(n + 1, memory)

/**
 * Stepping equipment (spike.steppingJumps, spike.stateLevels) at the bottom of its healthy range (within
 * failure.idleRel of it): a pump, blower or filter that is off holds its floor value for as long as it is off, which
 * is not a stuck transmitter (and a transmitter stuck there could not be told from it).
 */
function idle(s: ProcessState, c: ProcessConfig, value: number): boolean {
  const v = s.v
  const lo = v[L.VMIN] as number,
    hi = v[L.VMAX] as number
  return c.failure.idleRel > 0 && stepping(s, c) && value <= lo + c.failure.idleRel * (hi - lo)
}

/** Readings a stuck value must last on this sensor: its own longest healthy hold, times holdFactor. */
function stuckNeed(s: ProcessState, c: ProcessConfig): number {
  return Math.max(c.failure.stuckReadings, Math.ceil(c.failure.holdFactor * (s.v[L.HOLD] as number)))
}

/** A reading older than the last one applied is counted and written aside (`late`), never applied. */
function rejectLate(s: ProcessState, r: Reading, ctx: ActorContext): boolean {
  const last = s.v[L.TS] as number
  if (!(r.ts < last)) return false
  s.late++
  ctx.emit('late', `late:${ctx.seq}`, r.ts, { readingTs: r.ts, watermark: last, readingSeq: ctx.seq, fields: r.fields })
  return true
}

/** Takes the sensor's type and stage from the reading when it names them, and sizes the replay ring to the config. */
function identify(s: ProcessState, f: Reading['fields'], c: ProcessConfig): void {
  if (typeof f['type'] === 'string') s.type = f['type']
  if (typeof f['stage'] === 'string') s.stage = f['stage']
  if (typeof f['partner'] === 'string') s.v[L.PAIRED] = f['partner'] === '' ? 0 : 1
  if (s.fp.length !== c.cyber.replayWindow) {
    s.fp = new Array<number>(c.cyber.replayWindow).fill(NaN)
    s.fpPos = 0
  }
}

/** Width of the type's physical range (`limits[type]`), 0 when the type has none. */
function rangeOf(c: ProcessConfig, type: string): number {
  const lim = c.limits[type]
  return lim ? lim.hi - lim.lo : 0
}

/** Learns the sensor's resolution, step size and range from its data, and counts alternating large steps (toggling). */
function learnResolution(s: ProcessState, c: ProcessConfig, value: number | undefined, calm: boolean): void {
  // A quantised sensor's repeats and steps are judged against these, not against a rule that assumes a live value
  // never repeats.
  const v = s.v
  const prev = v[L.VALUE] as number
  if (value === undefined || Number.isNaN(prev)) return
  const d = value - prev
  if (d !== 0 && !(Math.abs(d) >= (v[L.QUANT] as number))) v[L.QUANT] = Math.abs(d)
  const typical = Number.isNaN(v[L.STEP] as number) ? 0 : (v[L.STEP] as number)
  const span = (v[L.VMAX] as number) - (v[L.VMIN] as number)
  const big =
    (v[L.N] as number) >= c.warmupReadings &&
    Math.abs(d) > c.cyber.toggleStepZ * typical &&
    Math.abs(d) >= (v[L.QUANT] as number) &&
    Math.abs(d) >= c.cyber.toggleSpanRel * span &&
    Math.abs(d) >= c.cyber.toggleRangeRel * rangeOf(c, s.type)
  // A toggle swings between the same two levels: each large step about as large as the one before.
  const same = Math.abs(Math.abs(d) - (v[L.BIGM] as number)) <= c.cyber.toggleTolerance * Math.abs(d)
  const sign = d > 0 ? 1 : -1
  if (big) {
    v[L.ALT] = v[L.DSIGN] === -sign && (v[L.GAP] as number) <= c.cyber.toggleGap && same ? (v[L.ALT] as number) + 1 : 1
    v[L.DSIGN] = sign
    v[L.GAP] = 0
    v[L.BIGM] = Math.abs(d)
  } else {
    v[L.GAP] = (v[L.GAP] as number) + 1
    if ((v[L.GAP] as number) > c.cyber.toggleGap) v[L.ALT] = 0
  }
  if (calm && !big) {
    if (!(value >= (v[L.VMIN] as number))) v[L.VMIN] = value
    if (!(value <= (v[L.VMAX] as number))) v[L.VMAX] = value
  }
  if (calm && !big)
    v[L.STEP] = Number.isNaN(v[L.STEP] as number)
      ? Math.abs(d)
      : ew(v[L.STEP] as number, Math.abs(d), v[L.N] as number, c.cyber.stepReadings)
}

/** Step 1: cyber and range evidence (replay ring, range, rate, toggling). */
function cyberEvidence(
  s: ProcessState,
  c: ProcessConfig,
  f: Reading['fields'],
  ts: number,
  value: number | undefined,
  calm: boolean,
): Finding | undefined {
  if (value === undefined) return undefined
  const v = s.v
  const h = fingerprint(value, num(f['flow']) ?? NaN, num(f['temp']) ?? NaN)
  const replayed = seen(s.fp, h)
  v[L.REPLAY] = replayed ? (v[L.REPLAY] as number) + 1 : 0
  // How often this sensor's healthy readings repeat a recent fingerprint by themselves.
  if (calm) v[L.FPR] = ew(v[L.FPR] as number, replayed ? 1 : 0, v[L.N] as number, c.cyber.replayWindow)
  s.fpPos = remember(s.fp, s.fpPos, h)
  return rangeFinding(s, c, value) ?? cyberFinding(s, c, ts, value, replayed)
}

/** Step 2: sensor failure evidence (dropout, stuck value); keeps a finding of higher priority. */
function failureEvidence(
  s: ProcessState,
  c: ProcessConfig,
  value: number | undefined,
  calm: boolean,
  found: Finding | undefined,
): Finding | undefined {
  const v = s.v
  if (value === undefined) {
    v[L.MISS] = (v[L.MISS] as number) + 1
  } else {
    v[L.MISS] = 0
    if (value === v[L.VALUE]) v[L.REP] = (v[L.REP] as number) + 1
    else {
      // A run of one value that ended without an alert is healthy hold behaviour (sample-and-hold analysers,
      // SCADA quantisation): learned, growing by at most a quarter at a time so a near-threshold fault does not
      // raise the bar by much.
      const run = (v[L.REP] as number) + 1
      const hold = v[L.HOLD] as number
      if (calm) v[L.CHG] = (v[L.CHG] as number) + 1
      if (calm && run > hold)
        v[L.HOLD] = (v[L.N] as number) < c.warmupReadings * 6 ? run : Math.min(run, Math.max(hold * 1.25, hold + 1))
      v[L.REP] = 0
    }
  }
  const miss = v[L.MISS] as number,
    rep = (v[L.REP] as number) + 1
  const need = stuckNeed(s, c)
  if (
    (found && found.type <= FAILURE) ||
    !(
      miss >= c.failure.dropoutReadings ||
      (value !== undefined &&
        rep >= need &&
        (v[L.N] as number) >= c.warmupReadings &&
        (v[L.CHG] as number) >= c.failure.minChanges &&
        !idle(s, c, value))
    )
  )
    return found
  return miss > 0
    ? {
        type: FAILURE,
        value: miss,
        threshold: c.failure.dropoutReadings,
        reason: `no value in the last ${miss} readings (dropout)`,
        features: features([['missing', miss, miss]]),
      }
    : {
        type: FAILURE,
        value: value as number,
        threshold: need,
        reason: `value stuck at ${fmt(value as number)} for ${rep} readings (flatline; this sensor's longest healthy hold is ${v[L.HOLD] as number})`,
        features: features([['repeat', rep, rep / Math.max(1, v[L.HOLD] as number)]]),
      }
}

/**
 * Moves the rolling robust baseline of the residual `x` (level, mean absolute deviation, fast mean, baseline z in
 * v[L.ZB]); returns the scale this reading's z was measured with.
 */
function rollingBaseline(
  s: ProcessState,
  c: ProcessConfig,
  x: number,
  floor: number,
  frozen: boolean,
  calm: boolean,
  suppressed: boolean,
): number {
  const v = s.v
  const bn = v[L.BN] as number
  const bl = c.baseline
  if (bn === 0) {
    v[L.BASE] = v[L.FAST] = x
    v[L.DEV] = 0
  }
  v[L.FAST] = (v[L.FAST] as number) + (x - (v[L.FAST] as number)) / bl.fastReadings
  const quant = Number.isNaN(v[L.QUANT] as number) ? 0 : (v[L.QUANT] as number)
  const scale = Math.max(1.2533 * (v[L.DEV] as number), quant, floor)
  if (!CHEMISTRY.has(s.type) && Math.abs(x - (v[L.BASE] as number)) > c.spike.regimeZ * scale && bn > 0) {
    // Equipment changing state (a blower or pump switching): restart the level there, keep the scale.
    if (calm || suppressed) v[L.JUMPS] = (v[L.JUMPS] as number) + 1
    v[L.BASE] = v[L.FAST] = x
    v[L.DEPART] = NaN
    v[L.OVER] = 0
  }
  v[L.ZB] = ((v[L.FAST] as number) - (v[L.BASE] as number)) / scale
  // Under an open alert other than a drift (an impossible value, a dropout, the excursion itself) the front view
  // restarts; a drift is slow, a front during it is still a front.
  const at = v[L.AT] as number
  const underAlert = at !== NONE && at !== DRIFT && (v[L.SLOWOPEN] as number) !== 1
  frontView(s, c, x, Math.max(quant, floor), calm, frozen || suppressed || underAlert)
  const d = x - (v[L.BASE] as number)
  const dc = bn >= bl.fastReadings * 10 ? Math.max(-bl.winsorZ * scale, Math.min(bl.winsorZ * scale, d)) : d
  if (!frozen) v[L.BASE] = (v[L.BASE] as number) + dc / Math.min(bn + 1, bl.readings)
  // Learned at a quarter of the rate while an alert is open, so a sensor whose scale was wrong cannot stay in
  // alert forever; an anomaly moves it by at most winsorZ scales a reading.
  if (!frozen) v[L.DEV] = ew(v[L.DEV] as number, Math.abs(dc), bn, calm ? bl.scaleReadings : 4 * bl.scaleReadings)
  v[L.BN] = bn + 1
  return scale
}

/**
 * The front view (spike.frontReadings): the fast value against a short EW level, over its own healthy scale. On a
 * chemistry sensor that does not hold its values (spike.frontMaxHold), an upward front z beyond spike.frontZ that
 * exceeds the baseline z takes its place in v[L.ZB], rescaled so that frontZ reads as spike.z: the spike rule
 * then opens, types and clears on it as on the baseline z.
 */
function frontView(s: ProcessState, c: ProcessConfig, x: number, min: number, calm: boolean, held: boolean): void {
  const v = s.v
  const sp = c.spike
  v[L.FZ] = NaN
  if (sp.frontReadings <= 0) return
  if (Number.isNaN(v[L.SHORT] as number)) {
    v[L.SHORT] = x
    v[L.SDEV] = 0
  }
  // Out of service, suppressed (a calibration's standard solutions, a backwash) or under an open alert: the view
  // restarts and judges nothing until its level has
  // followed the sensor for frontReadings after it (a probe returns with a new offset).
  if (held) {
    v[L.SHORT] = x
    v[L.SN] = 0
    return
  }
  v[L.SN] = (v[L.SN] as number) + 1
  const d = (v[L.FAST] as number) - (v[L.SHORT] as number)
  const scale = Math.max(1.2533 * (v[L.SDEV] as number), min)
  if (calm)
    v[L.SDEV] = ew(v[L.SDEV] as number, Math.min(Math.abs(d), 3 * scale), v[L.BN] as number, c.baseline.scaleReadings)
  v[L.SHORT] = (v[L.SHORT] as number) + (x - (v[L.SHORT] as number)) / sp.frontReadings
  if (!CHEMISTRY.has(s.type) || !((v[L.HOLD] as number) < sp.frontMaxHold) || (v[L.SN] as number) <= sp.frontReadings)
    return
  const zf = (d / scale) * (sp.z / Math.max(sp.frontZ, 1e-9))
  if (zf > Math.abs(v[L.ZB] as number)) {
    v[L.ZB] = zf
    v[L.FZ] = d / scale
    v[L.FSCALE] = scale
  }
}

/**
 * A side baseline (inlet of an outlet analyser, stage flow) in slots `lvl`, `dev`: returns the z of `x` against it,
 * then learns `x` the way the residual baseline learns. `bn`: the residual baseline's readings before this one.
 */
function sideZ(
  v: number[],
  lvl: number,
  dev: number,
  x: number,
  minScale: number,
  bn: number,
  bl: ProcessConfig['baseline'],
): number {
  if (Number.isNaN(v[lvl] as number)) {
    v[lvl] = x
    v[dev] = 0
  }
  const scale = Math.max(1.2533 * (v[dev] as number), minScale)
  const d = x - (v[lvl] as number)
  const dc = bn >= bl.fastReadings * 10 ? Math.max(-bl.winsorZ * scale, Math.min(bl.winsorZ * scale, d)) : d
  v[dev] = ew(v[dev] as number, Math.abs(dc), bn, bl.scaleReadings)
  v[lvl] = (v[lvl] as number) + dc / Math.min(bn + 1, bl.readings)
  return d / scale
}

/** Tracks when the current excursion left the departZ band and when its peak last grew by 10 %. */
function trackExcursion(v: number[], sp: ProcessConfig['spike'], zb: number, ts: number): void {
  if (Math.abs(zb) < sp.departZ) {
    v[L.DEPART] = NaN
    v[L.PEAK] = 0
    return
  }
  if (Number.isNaN(v[L.DEPART] as number)) v[L.DEPART] = ts
  if (!(Math.abs(zb) < 1.1 * (v[L.PEAK] as number))) {
    v[L.PEAK] = Math.abs(zb)
    v[L.PEAKTS] = ts
  }
}

/** Counts the run of readings beyond the opening threshold in one direction (OVER, OSIGN, FIRST); returns it. */
function countOver(v: number[], zb: number, zOpen: number, sign: number, blocked: boolean, ts: number): number {
  if (Math.abs(zb) > zOpen && !blocked && (v[L.OVER] === 0 || v[L.OSIGN] === sign)) {
    if (v[L.OVER] === 0) v[L.FIRST] = ts
    v[L.OVER] = (v[L.OVER] as number) + 1
    v[L.OSIGN] = sign
  } else v[L.OVER] = 0
  return v[L.OVER] as number
}

/**
 * Types a confirmed excursion: a pollutant front (spike) or the process (malfunction), by the inlet on outlet
 * analysers, else by its rise time; undefined while it is not decided yet.
 */
function classifyExcursion(
  s: ProcessState,
  c: ProcessConfig,
  ts: number,
  value: number,
  flow: number | undefined,
  temp: number | undefined,
  inlet: number | undefined,
  inz: number,
  zb: number,
  zOpen: number,
  scale: number,
  run: number,
): Finding | undefined {
  const v = s.v,
    sp = c.spike
  const sign = zb > 0 ? 1 : -1
  const chem = CHEMISTRY.has(s.type)
  // The rise time: from leaving the band (departZ) to the last time the excursion grew by 10 %. Decided once
  // it has stopped growing for plateauReadings (or once it has lasted malfunctionConfirm readings).
  const departed = Number.isNaN(v[L.DEPART] as number) ? (v[L.FIRST] as number) : (v[L.DEPART] as number)
  const frontS = Math.max(0, ((v[L.PEAKTS] as number) - departed) / 1000)
  const rising = ts - (v[L.PEAKTS] as number) < sp.plateauReadings * Math.max(1, ts - (v[L.TS] as number))
  // A probe that leaves malfunctions to its pair would raise nothing for a front typed as a build-up: a wider bound.
  const frontBound = leftToPair(s, c) ? sp.pairFrontS : sp.frontS
  let type: number, why: string
  if (sign > 0 && !Number.isNaN(inz)) {
    // An outlet analyser: a pollutant front raises its inlet too; a rise the inlet does not share is the plant.
    type = inz >= sp.inletZ ? SPIKE : MALFUNCTION
    why =
      inz >= sp.inletZ
        ? `the inlet rose too (${fmt(inz)} sigma): a pollutant front`
        : `the inlet stayed normal (${fmt(inz)} sigma): the treatment is failing`
  } else if (sign > 0 && chem && frontS <= frontBound && run < sp.malfunctionConfirm) {
    type = SPIKE
    why = `a front of ${fmt(frontS)} s: a pollutant front`
  } else {
    type = MALFUNCTION
    why =
      sign < 0
        ? `a drop over ${fmt(frontS)} s`
        : chem
          ? `built up over ${fmt(frontS)} s, slower than a front`
          : `on a ${s.type || 'sensor'} that no pollutant front reaches`
  }
  const p = flow !== undefined && temp !== undefined
  const cz = p ? covariateZ(s.m, 'flow', flow) : 0,
    tz = p ? covariateZ(s.m, 'temp', temp) : 0
  const fz = v[L.FZ] as number
  const feats: Array<[string, number, number]> = [
    Number.isNaN(fz) ? ['value_vs_baseline', value, zb] : ['front_vs_short_level', value, fz],
    ['flow', flow ?? NaN, cz],
    ['temp', temp ?? NaN, tz],
  ]
  if (!Number.isNaN(inz)) feats.push(['inlet', inlet as number, inz])
  // A malfunction lasts (15 min and more): it must hold malfunctionConfirm readings, which a passing
  // equipment step or a short excursion does not. A spike is typed once its rise has ended.
  if ((type === MALFUNCTION || rising) && run < sp.malfunctionConfirm) return undefined
  if (type === MALFUNCTION && leftToPair(s, c)) return undefined
  return {
    type,
    value,
    threshold: zOpen,
    peak: Math.abs(zb),
    reason: Number.isNaN(fz)
      ? `value ${fmt(value)} is ${fmt(Math.abs(zb))} sigma ${sign > 0 ? 'above' : 'below'} its rolling baseline (sigma ${fmt(scale)}), ${why}`
      : `value ${fmt(value)} rose ${fmt(fz)} sigma above its ${fmt((c.spike.frontReadings * Math.max(1, ts - (v[L.TS] as number))) / 60_000)} min level (front view, sigma ${fmt(v[L.FSCALE] as number)}), ${why}`,
    features: features(feats),
  }
}

/** Step 3: spike / malfunction, the residual against a rolling robust baseline; keeps an earlier finding. */
function spikeEvidence(
  s: ProcessState,
  c: ProcessConfig,
  f: Reading['fields'],
  ts: number,
  value: number | undefined,
  flow: number | undefined,
  temp: number | undefined,
  inlet: number | undefined,
  floor: number,
  frozen: boolean,
  calm: boolean,
  suppressed: boolean,
  open: number,
  found: Finding | undefined,
): Finding | undefined {
  if (value === undefined) return found
  const v = s.v
  const p = flow !== undefined && temp !== undefined ? predict(s.m, flow, temp, floor) : undefined
  const x = p ? value - p.expected : value - (Number.isNaN(v[L.EXP] as number) ? 0 : (v[L.EXP] as number))
  if (p) v[L.EXP] = p.expected
  const bn = v[L.BN] as number
  const scale = rollingBaseline(s, c, x, floor, frozen, calm, suppressed)
  const zb = v[L.ZB] as number
  // Inlet (outlet analysers) and stage flow: their own baselines, to tell a front from the process.
  const quant = Number.isNaN(v[L.QUANT] as number) ? 0 : (v[L.QUANT] as number)
  const inz = inlet !== undefined ? sideZ(v, L.INB, L.INDEV, inlet, Math.max(floor, quant), bn, c.baseline) : NaN
  const fl = num(f['flow'])
  const fz = fl !== undefined ? sideZ(v, L.FLB, L.FLD, fl, 1e-9, bn, c.baseline) : 0

  if ((v[L.N] as number) < c.warmupReadings) return found
  const sp = c.spike
  const sign = zb > 0 ? 1 : -1
  trackExcursion(v, sp, zb, ts)
  const zOpen = CHEMISTRY.has(s.type) ? sp.z : sp.equipmentZ
  const recal =
    (open === DRIFT || (v[L.SLOWOPEN] as number) === 1) &&
    Math.abs(zb) > zOpen &&
    sign !== Math.sign(v[L.SLOW] as number)
  if (recal) {
    // A step against an open drift (or a shift the drift rule found) is its recalibration or its end: the value returns to what flow and temperature
    // predict, and the rolling baseline, which had followed the drift, restarts there (no spike); so does the front
    // view (its 2 min level had followed the drift too: the step back is no front).
    v[L.BASE] = v[L.FAST] = x
    v[L.SHORT] = x
    v[L.SN] = 0
    v[L.ZB] = 0
    v[L.DEPART] = NaN
    v[L.PEAK] = 0
  }
  // Nothing opens while the stage flow is far above its own baseline (a storm's first flush moves every sensor).
  const run = countOver(v, zb, zOpen, sign, fz >= sp.stormFlowZ || recal, ts)
  if (found || run < sp.confirm || stepping(s, c)) return found
  return classifyExcursion(s, c, ts, value, flow, temp, inlet, inz, zb, zOpen, scale, run)
}

/** The covariate-model residual of this reading (stored by step 3 in v[L.EXP]), NaN when flow or temperature is unknown. */
function residualOf(
  v: number[],
  value: number | undefined,
  flow: number | undefined,
  temp: number | undefined,
): number {
  return value !== undefined && flow !== undefined && temp !== undefined ? value - (v[L.EXP] as number) : NaN
}

/** Moves the slow and medium means of the residual z and the drift run; a confirmed run is a drift or a fast shift. */
function driftFinding(
  s: ProcessState,
  c: ProcessConfig,
  value: number,
  flow: number,
  temp: number,
  z: number,
  sigma: number,
  fresh: boolean,
  calm: boolean,
  open: number,
  found: Finding | undefined,
): Finding | undefined {
  const v = s.v
  const zc = Math.max(-DRIFT_CLIP, Math.min(DRIFT_CLIP, z))
  v[L.SLOW] = ew(v[L.SLOW] as number, zc, Infinity, c.drift.slowReadings)
  v[L.MID] = ew(v[L.MID] as number, zc, Infinity, c.drift.midReadings)
  const slow = v[L.SLOW] as number
  // The threshold is the sensor's own: drift.z, or scaleZ times how far its slow mean wanders while healthy
  // (a process the covariate model fits badly wanders far, and must drift further to count).
  const dz = Math.max(
    c.drift.z,
    c.drift.scaleZ * 1.2533 * (Number.isNaN(v[L.SLOWDEV] as number) ? 0 : (v[L.SLOWDEV] as number)),
  )
  // A spike-level run pauses the count (the spike rule judges it) rather than restarting it, so a build-up the
  // baseline keeps crossing back and forth is still confirmed.
  if (!(Math.abs(slow) > dz)) v[L.SRUN] = 0
  else if ((v[L.OVER] as number) === 0 && !fresh) v[L.SRUN] = (v[L.SRUN] as number) + 1
  if (calm && (v[L.SRUN] as number) === 0 && Math.abs(slow) < 0.5 * dz) {
    // Clipped at three times its current value, and learned only well inside the threshold, so a drift on its
    // way up cannot teach the sensor to tolerate it (early on, when the mean learns fast, it would outrun it).
    const sd = Number.isNaN(v[L.SLOWDEV] as number) ? 0 : (v[L.SLOWDEV] as number)
    v[L.SLOWDEV] = ew(
      sd,
      Math.min(Math.abs(slow), Math.max(3 * sd, c.drift.z / Math.max(1, c.drift.scaleZ))),
      (v[L.N] as number) - c.warmupReadings,
      c.halfLifeReadings,
    )
  }
  if (found || open !== NONE || (v[L.SRUN] as number) < c.drift.sustainReadings) return found
  const fz = covariateZ(s.m, 'flow', flow),
    tz = covariateZ(s.m, 'temp', temp)
  // A drift creeps: when it is confirmed its recent residual is a few times the threshold at most. A shift
  // whose last readings (the baseline's fast mean, unclipped) are already far beyond it built up in minutes:
  // a process malfunction the rolling baseline followed too closely to hold it as an excursion.
  const recent = (v[L.FAST] as number) / sigma
  if (Math.sign(recent) === Math.sign(slow) && Math.abs(recent) >= Math.max(c.drift.fastZ, c.drift.fastRatio * dz)) {
    if (leftToPair(s, c)) {
      // The pair's to judge; not a drift either (the count starts again, as after a closed alert).
      v[L.SRUN] = 0
      return found
    }
    return {
      type: MALFUNCTION,
      value,
      threshold: Math.max(c.drift.fastZ, c.drift.fastRatio * dz),
      peak: Math.abs(recent),
      slow: true,
      reason: `the residual against flow and temperature is ${fmt(recent)} sigma, ${fmt(Math.abs(recent) / dz)} x this sensor's drift threshold after ${v[L.SRUN] as number} readings: built up too fast for a drift`,
      features: features([
        ['residual_recent', value, recent],
        ['residual_mean', slow, slow * Math.sqrt(c.drift.slowReadings)],
        ['flow', flow, fz],
        ['temp', temp, tz],
      ]),
    }
  }
  return {
    type: DRIFT,
    value,
    threshold: dz,
    slow: true,
    reason: `the residual against flow and temperature has averaged ${fmt(slow)} sigma for ${v[L.SRUN] as number} readings (slow ${slow > 0 ? 'upward' : 'downward'} drift)`,
    features: features([
      ['residual_mean', slow, slow * Math.sqrt(c.drift.slowReadings)],
      ['flow', flow, fz],
      ['temp', temp, tz],
    ]),
  }
}

/** Whether this warm reading may teach the covariate model: evidence pending is not learned (GATED counts the slow-mean holds). */
function learnable(s: ProcessState, c: ProcessConfig, z: number, fresh: boolean, healthy: boolean): boolean {
  const v = s.v
  // Evidence pending is not learned: a regression that kept learning would absorb a drift.
  if (fresh) v[L.GATED] = 0
  else if (Math.abs(z) >= c.spike.clearZ || (v[L.OVER] as number) > 0) return false
  else if (Math.abs(v[L.SLOW] as number) >= c.drift.learnBelow) {
    // ... unless the slow mean has hovered there far longer than a drift would take to confirm: then it is
    // the model that is off, and it must learn its way back.
    v[L.GATED] = (v[L.GATED] as number) + 1
    if ((v[L.GATED] as number) <= 8 * c.drift.sustainReadings) return false
  } else v[L.GATED] = 0
  return healthy
}

/**
 * Stepping equipment (spike.steppingJumps): its own residual raises nothing. So is the equipment of a filter group
 * this sensor has seen backwash (backwash.ts): a filter's flow share and head loss follow its wash cycle (reset by
 * each backwash, clogging back up over hours), not the stage flow and temperature.
 */
function stepping(s: ProcessState, c: ProcessConfig): boolean {
  const v = s.v
  if (CHEMISTRY.has(s.type)) return false
  if ((s.b[B.COUNT] as number) > 0) return true
  if (c.spike.steppingJumps > 0 && (v[L.JUMPS] as number) >= c.spike.steppingJumps) return true
  const q = v[L.QUANT] as number
  return (
    c.spike.stateLevels > 0 &&
    (v[L.N] as number) >= c.warmupReadings &&
    q > 0 &&
    (v[L.VMAX] as number) - (v[L.VMIN] as number) <= c.spike.stateLevels * q
  )
}

/** A probe with a redundant partner leaves process malfunctions to its pair actor (spike.leaveToPair). */
function leftToPair(s: ProcessState, c: ProcessConfig): boolean {
  return c.spike.leaveToPair && (s.v[L.PAIRED] as number) === 1
}

/** A sensor that holds its values too long for the drift rule's slow mean to average enough of them (drift.minSamples). */
function holding(s: ProcessState, c: ProcessConfig): boolean {
  return c.drift.minSamples > 0 && (s.v[L.HOLD] as number) * c.drift.minSamples > c.drift.slowReadings
}

/** Step 4: drift, the slow mean of the covariate-model residual z; the model learns from healthy readings. */
function driftEvidence(
  s: ProcessState,
  c: ProcessConfig,
  value: number,
  flow: number,
  temp: number,
  resid: number,
  floor: number,
  frozen: boolean,
  calm: boolean,
  open: number,
  found: Finding | undefined,
): Finding | undefined {
  const v = s.v
  const p = predict(s.m, flow, temp, floor)
  const warm = (v[L.N] as number) >= c.warmupReadings
  const fresh = warm && novel(s.m, flow, temp, c.noveltyMargin)
  let healthy = calm && !found && (v[L.MISS] as number) === 0 && (v[L.REP] as number) === 0
  let z = NaN
  if (warm) {
    z = resid / p.sigma
    if (open === NONE || open === DRIFT || (v[L.SLOWOPEN] as number) === 1) {
      const d = driftFinding(s, c, value, flow, temp, z, p.sigma, fresh, calm, open, found)
      if (!stepping(s, c) && !holding(s, c)) found = d
    }
    healthy = learnable(s, c, z, fresh, healthy)
  }
  if (!frozen && (healthy || !warm) && !found && open === NONE) learn(s.m, flow, temp, value, resid, c.halfLifeReadings)
  v[L.Z] = z
  return found
}

/**
 * Out of service: an open alert closes naming the reason; residual evidence does not pile up during the
 * calibration to fire the moment the sensor is back (a condition that persists, such as a stuck value, is found
 * again at once).
 */
function suspend(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number | undefined,
  reason: string,
): void {
  const v = s.v
  if ((v[L.AT] as number) !== NONE) closeAlert(s, ctx, c, ts, value ?? NaN, `out of service: ${reason}`)
  v[L.OVER] = 0
  v[L.SLOW] = 0
  v[L.MID] = 0
  v[L.SRUN] = 0
  v[L.DEPART] = NaN
}

/**
 * Designed suppression during a filter backwash and the ripple after it (backwash.ts): an open spike, malfunction
 * or drift closes naming the backwash; residual evidence does not pile up; of this reading's findings only a cyber
 * finding and a failure of the instrument itself (dropout, loop break) stand: a stuck value is what a filter out of
 * service holds (found again at once after the backwash if it persists). Ends the ripple once the sensor is back
 * near the level it had when the suppression started (chemistry) or after backwash.settleMs (equipment).
 */
function suppressByDesign(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number | undefined,
  found: Finding | undefined,
  floor: number,
): Finding | undefined {
  const v = s.v
  const cur = v[L.AT] as number
  if (cur === SPIKE || cur === MALFUNCTION || cur === DRIFT)
    closeAlert(s, ctx, c, ts, value ?? NaN, backwashReason(s.b))
  // Nothing confirms during the suppression; the excursion keeps its departure time (trackExcursion), so what is
  // still off when it ends is judged as a build-up over that time, not as a front arriving at its end.
  v[L.OVER] = 0
  v[L.SLOW] = 0
  v[L.MID] = 0
  v[L.SRUN] = 0
  // The ripple is over once the value is back near the level the sensor had when the suppression started.
  if (Number.isNaN(s.b[B.REF] as number)) s.b[B.REF] = v[L.BASE] as number
  const scale = Math.max(
    1.2533 * (v[L.DEV] as number),
    Number.isNaN(v[L.QUANT] as number) ? 0 : (v[L.QUANT] as number),
    floor,
  )
  const back = CHEMISTRY.has(s.type)
    ? value !== undefined && Math.abs((v[L.FAST] as number) - (s.b[B.REF] as number)) < c.backwash.rippleClearZ * scale
    : undefined
  endRipple(s.b, ts, c.backwash, back)
  const keep =
    found !== undefined && (found.type === CYBER || (found.type === FAILURE && found.features[0]?.feature !== 'repeat'))
  return keep ? found : undefined
}

/** Spike and malfunction are one family: a reading that now looks like the other updates the open alert. */
const family = (t: number): number => (t === MALFUNCTION ? SPIKE : t)

/** Whether the open alert of type `kind` (DRIFT for one found by the drift rule) sees its clear condition now. */
function clearNow(
  s: ProcessState,
  c: ProcessConfig,
  kind: number,
  value: number | undefined,
  found: Finding | undefined,
  z: number,
): boolean {
  const v = s.v
  switch (kind) {
    case CYBER:
      return !found || found.type !== CYBER
    case FAILURE:
      return value !== undefined && (v[L.REP] as number) === 0 && !(found?.type === FAILURE)
    case SPIKE:
    case MALFUNCTION:
      return value !== undefined && Math.abs(v[L.ZB] as number) < c.spike.clearZ
    default: {
      // Closes when the medium mean is back near zero, or has fallen well below the drift's peak (a
      // recalibration returns the value at once; the model may have taken in a little of the drift before it was
      // confirmed, so "back to exactly zero" would wait forever).
      const mid = Math.abs(v[L.MID] as number)
      if (mid > (v[L.AP] as number)) v[L.AP] = mid
      return !Number.isNaN(z) && (mid < c.drift.clearZ || mid < 0.25 * (v[L.AP] as number))
    }
  }
}

/** Readings in a row the clear condition of an alert of type `kind` must hold (hysteresis). */
function clearNeed(c: ProcessConfig, kind: number): number {
  switch (kind) {
    case CYBER:
      return c.cyber.clearReadings
    case FAILURE:
      return c.failure.clearReadings
    case SPIKE:
    case MALFUNCTION:
      return c.spike.clearReadings
    default:
      return c.drift.clearReadings
  }
}

/** Opens an alert for a finding of higher priority than the one open, closing that one (superseded). */
function raise(s: ProcessState, ctx: ActorContext, c: ProcessConfig, ts: number, found: Finding, cur: number): void {
  const v = s.v
  const rep = (v[L.REP] as number) + 1
  // A stuck value started when its run did.
  const start =
    found.type === FAILURE && (v[L.MISS] as number) === 0 && found.features[0]?.feature === 'repeat'
      ? ts - (rep - 1) * Math.max(0, ts - (v[L.TS] as number))
      : ts
  if (cur !== NONE) closeAlert(s, ctx, c, ts, found.value, `superseded by ${PLANT_ANOMALIES[found.type] as string}`)
  openAlert(s, ctx, c, found, ts, Number.isFinite(start) ? start : ts)
}

/** Updates the open alert when it grew, and closes it after its clear condition held long enough, or accepts a lasting shift. */
function settle(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number | undefined,
  found: Finding | undefined,
  z: number,
  floor: number,
  cur: number,
): void {
  const v = s.v
  if (
    found?.peak !== undefined &&
    family(found.type) === family(cur) &&
    found.peak >= (v[L.UPD] as number) + c.spike.updateZ
  )
    updateAlert(s, ctx, c, found, ts)
  const bySlow = cur === DRIFT || (v[L.SLOWOPEN] as number) === 1
  const kind = bySlow ? DRIFT : cur
  const clear = clearNow(s, c, kind, value, found, z) && !(found && family(found.type) === family(cur))
  v[L.CLEAR] = clear ? (v[L.CLEAR] as number) + 1 : 0
  v[L.AN] = (v[L.AN] as number) + 1
  if ((v[L.CLEAR] as number) >= clearNeed(c, kind)) closeAlert(s, ctx, c, ts, value ?? NaN, 'back to normal')
  else if (bySlow && (v[L.AN] as number) >= c.drift.maxReadings) {
    // A lasting shift: accept it as the new level rather than alarming forever.
    const sigma = predict(s.m, v[L.FLOW] as number, v[L.TEMP] as number, floor).sigma
    s.m[M.MV] = (s.m[M.MV] as number) + (v[L.MID] as number) * sigma
    closeAlert(s, ctx, c, ts, value ?? NaN, 'shift accepted as the new baseline')
  }
}

/**
 * The alert state machine, one alert per episode: a finding of higher priority than the open alert (lower index)
 * replaces it; one of lower or equal priority only updates it (when it grew), so an episode does not flap between
 * types. Closing needs the type's clear condition for its clearReadings in a row (hysteresis).
 */
function stepAlert(
  s: ProcessState,
  ctx: ActorContext,
  c: ProcessConfig,
  ts: number,
  value: number | undefined,
  found: Finding | undefined,
  z: number,
  floor: number,
): void {
  const cur = s.v[L.AT] as number
  if (found && (cur === NONE || family(found.type) < family(cur))) raise(s, ctx, c, ts, found, cur)
  else if (cur !== NONE) settle(s, ctx, c, ts, value, found, z, floor, cur)
}

/** Remembers this reading (time, value and covariates) for the next one. */
function rememberReading(
  v: number[],
  ts: number,
  value: number | undefined,
  flow: number | undefined,
  temp: number | undefined,
): void {
  v[L.TS] = ts
  if (value !== undefined) v[L.VALUE] = value
  if (flow !== undefined) v[L.FLOW] = flow
  if (temp !== undefined) v[L.TEMP] = temp
}

/** One reading: the steps of the header, in order (late, KPIs, evidence 1-4, out of service, alert state machine). */
function onReading(s: ProcessState, r: Reading, ctx: ActorContext, c: ProcessConfig): void {
  checked(c)
  if (rejectLate(s, r, ctx)) return
  const v = s.v
  const f = r.fields
  const ts = r.ts
  identify(s, f, c)
  const value = num(f['value']),
    inlet = num(f['inlet'])
  const flow = num(f['flow']) ?? (Number.isNaN(v[L.FLOW] as number) ? undefined : (v[L.FLOW] as number))
  const temp = num(f['temp']) ?? (Number.isNaN(v[L.TEMP] as number) ? undefined : (v[L.TEMP] as number))
  kpiStep(s, ctx, c, ts, value, inlet)
  const open = v[L.AT] as number
  // Out of service (actors/service.ts, ISA-18.2): the evidence below is still gathered (KPIs, replay ring, run
  // counters), but nothing is learned from a sensor under maintenance and no alert opens; see the state machine.
  const oos = outOfService(ctx)
  // Designed suppression (backwash.ts): a filter backwash the stage signals in this reading show. Like out of
  // service, nothing is learned from it; unlike it, failures of the instrument itself and cyber findings still alert.
  const sup = observeStage(s.b, f, ts, c.backwash) !== PHASE.NONE
  const frozen = oos !== undefined || sup
  const calm = !frozen && open === NONE
  const lim = c.limits[s.type]
  const floor = lim ? (lim.hi - lim.lo) * c.sigmaFloorRel : 1e-9

  learnResolution(s, c, value, calm)
  let found = cyberEvidence(s, c, f, ts, value, calm)
  found = failureEvidence(s, c, value, calm, found)
  // The rolling baseline follows the sensor through a backwash (a filter's change of state counts as one, the
  // wash water's ripple moves it by at most winsorZ scales a reading); only out of service freezes it.
  found = spikeEvidence(s, c, f, ts, value, flow, temp, inlet, floor, oos !== undefined, calm, sup, open, found)
  const resid = residualOf(v, value, flow, temp)
  if (!Number.isNaN(resid))
    found = driftEvidence(
      s,
      c,
      value as number,
      flow as number,
      temp as number,
      resid,
      floor,
      frozen,
      calm,
      open,
      found,
    )
  // The drift step's z, NaN when it did not run.
  const z = Number.isNaN(resid) ? NaN : (v[L.Z] as number)
  if (value !== undefined) v[L.N] = (v[L.N] as number) + 1
  if (oos) {
    suspend(s, ctx, c, ts, value, oos.reason)
    found = undefined
  } else if (sup) found = suppressByDesign(s, ctx, c, ts, value, found, floor)
  stepAlert(s, ctx, c, ts, value, found, z, floor)
  rememberReading(v, ts, value, flow, temp)
}

// ---- query ----------------------------------------------------------------------------------------------

const orNull = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null)

function query(
  s: ProcessState,
  ctx: { entity: EntityRef; watermark: number; lastSeq: number },
  c: ProcessConfig,
): unknown {
  const v = s.v
  const lim = c.limits[s.type]
  const flow = v[L.FLOW] as number,
    temp = v[L.TEMP] as number
  const p =
    Number.isNaN(flow) || Number.isNaN(temp)
      ? undefined
      : predict(s.m, flow, temp, lim ? (lim.hi - lim.lo) * c.sigmaFloorRel : 1e-9)
  const at = v[L.AT] as number
  return {
    type: s.type,
    stage: s.stage,
    unit: lim?.unit ?? null,
    last: { ts: orNull(v[L.TS]), value: orNull(v[L.VALUE]), flow: orNull(flow), temp: orNull(temp) },
    model: {
      readings: s.m[M.N],
      expected: orNull(p?.expected),
      sigma: orNull(p?.sigma),
      perFlow: orNull(p?.bf),
      perDegree: orNull(p?.bt),
      warm: (v[L.N] as number) >= c.warmupReadings,
    },
    residualZ: orNull(v[L.Z]),
    baseline: {
      z: orNull(v[L.ZB]),
      level: orNull(v[L.BASE]),
      deviation: orNull(v[L.DEV]),
      quantum: orNull(v[L.QUANT]),
      longestHold: v[L.HOLD],
    },
    driftMean: orNull(v[L.SLOW]),
    driftRun: v[L.SRUN],
    alert:
      at === NONE
        ? null
        : { type: PLANT_ANOMALIES[at], alertId: alertIdOf(ctx.entity, at, v[L.AS] as number), start: v[L.AS] },
    backwash: backwashState(s.b),
    lateCount: s.late,
    lastSeq: ctx.lastSeq,
  }
}

// ---- snapshot codec (version 2) -------------------------------------------------------------------------

/**
 * Version 2 added the baseline, hold, quantum and toggle slots to `v`. A version 1 snapshot is read with its
 * model, KPI counters and replay ring, and fresh live slots: detection warms up again (warmupReadings), the
 * covariate model is kept.
 */
const CODEC_VERSION = 2

interface Encoded {
  t: string
  g: string
  m: Array<number | null>
  v: Array<number | null>
  k: Array<number | null>
  fp: Array<number | null>
  p: number
  l: number
  /** The backwash view; absent in snapshots written before it (read as a blank view). */
  b?: Array<number | null>
}

const enc = (xs: readonly number[]): Array<number | null> => xs.map((x) => (Number.isFinite(x) ? x : null))

function nums(xs: unknown, what: string, len?: number): number[] {
  if (
    !Array.isArray(xs) ||
    (len !== undefined && xs.length !== len) ||
    !xs.every((x) => x === null || (typeof x === 'number' && Number.isFinite(x)))
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `process snapshot: ${what} is not a list of numbers`)
  }
  return (xs as Array<number | null>).map((x) => x ?? NaN)
}

function encode(s: ProcessState): Encoded {
  return {
    t: s.type,
    g: s.stage,
    m: enc(s.m),
    v: enc(s.v),
    k: enc(s.k),
    fp: enc(s.fp),
    p: s.fpPos,
    l: s.late,
    b: enc(s.b),
  }
}

function decode(data: unknown, version: number): ProcessState {
  if (version !== CODEC_VERSION && version !== 1)
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_VERSION,
      `process snapshot version ${version} is not 1 or ${CODEC_VERSION}`,
    )
  const e = data as Partial<Encoded> | null
  if (
    !e ||
    typeof e !== 'object' ||
    typeof e.t !== 'string' ||
    typeof e.g !== 'string' ||
    !Number.isSafeInteger(e.l) ||
    !Number.isSafeInteger(e.p)
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'process snapshot is not a process state')
  }
  const fp = nums(e.fp, 'fingerprints')
  const p = e.p as number
  if (p < 0 || (fp.length > 0 && p >= fp.length))
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'process snapshot: bad ring position')
  const m = nums(e.m, 'model', M_SLOTS)
  // The model and counters are never NaN.
  if (m.some((x) => Number.isNaN(x)))
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'process snapshot: bad model')
  // A version 2 snapshot written before the SLOWOPEN slot (its open alert closes by its type's rule) or before the
  // JUMPS slot (the sensor learns again whether it steps) has one or two slots fewer.
  const v = version === 1 ? freshLive() : nums(e.v, 'live values')
  // Before the front view's slots (SHORT, SDEV) it has two more fewer: the front view is learned again.
  const pad = [0, 0, NaN, NaN, 0, NaN, NaN, 0]
  while (v.length >= L.SLOWOPEN && v.length < L_SLOTS) v.push(pad[v.length - L.SLOWOPEN] as number)
  if (v.length !== L_SLOTS)
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_CORRUPT,
      'process snapshot: live values is not a list of numbers',
    )
  const b = e.b === undefined ? blankBackwash() : nums(e.b, 'backwash view', BACKWASH_SLOTS)
  return { type: e.t, stage: e.g, m, v, k: nums(e.k, 'kpi counters', K_SLOTS), fp, fpPos: p, late: e.l as number, b }
}

/** The wastewater plant profile (kind `sensor`). */
export const processProfile = defineActor<ProcessState, ProcessConfig>({
  kind: 'sensor',
  profile: 'process',
  defaults: PROCESS_DEFAULTS,
  allowedLatenessMs: (c) => checked(c).allowedLatenessMs,
  init,
  codec: { version: CODEC_VERSION, encode, decode },
  onReading,
  query,
})
