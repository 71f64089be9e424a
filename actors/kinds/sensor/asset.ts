/**
 * Sensor profile `asset`: one actor per locomotive sensor unit (DOMAIN.md section 4, rolling stock), scoring the
 * risk that the unit fails within the next days (predictive maintenance, issue 20).
 *
 * Reading fields (all optional per reading; a missing field leaves its last value in force): vibration mm/s
 * (nominal ~2), temperature °C (nominal ~45), pressure, flow, and `loadField` (default `load`, e.g. notch or
 * tractive effort %) when the unit reports one.
 *
 * Why hourly aggregates and per-unit baselines: the faults that can be predicted develop over hours to days
 * (bearing wear, a cooling fault that shows at load, a hydraulic leak that bleeds pressure), and units differ
 * (a healthy unit may run rough or hot all its life). So every channel is aggregated per period (`periodMs`,
 * an hour by default: n, sum, sum of squares, max), the last `trendPeriods` periods are kept in a small ring
 * (mean, standard deviation, max per channel), and each unit learns its own baseline of those hourly figures as
 * exponentially weighted mean and variance (half-life `baseline.halfLifeHours`). The baseline is fed only with
 * periods as they leave the ring (a day late); a period beyond `baseline.clip` sigmas only nudges its mean, so a fault that develops
 * over a day or two is compared with the unit before it, not absorbed into it. The first `baseline.warmupPeriods`
 * (a day: a shorter warm-up misses part of the daily cycle) periods seed the baseline directly (no features
 * before that: the unit is still unknown).
 *
 * Features (unit-normalised: z = (x - baseline mean) / baseline sd, sd floored at max(floor of the field,
 * `relativeFloor` x |baseline mean|), clipped to ±`zClip`), for f in vibration, temperature, pressure, flow:
 *   f_level_up / f_level_down   mean of the last `recentPeriods` hourly means, above / below the baseline
 *   f_trend_up / f_trend_down   least-squares slope of the hourly means over the ring, in baseline sds per day
 *   f_spread                    within-hour standard deviation (recent mean) above its baseline (variance)
 *   vibration_impulse           within-hour peak over the hour's mean, in hour sds (crest), above its baseline
 *   temperature_load            temperature above what the unit's own temperature-vs-load line predicts for the
 *                               hour's load (load = `loadField`, else vibration as the load proxy)
 *   temperature_peak            hourly maximum temperature above its baseline (heat that shows only at load)
 *   temperature_heat            in-service temperature minus the unit's rest temperature (idling or shut down,
 *                               2 h time constant), above its baseline: the ambient cancels out
 * Only readings in service (vibration >= service.vibration) enter the periods; a period with less than
 * service.minShare of its readings in service is absent.
 * Each feature's family is the field it is computed from (vibration, temperature, pressure, flow).
 *
 * Model: heads of logistics, risk = max over heads of 100 / (1 + exp(-(intercept + sum w_f x_f))) on the feature
 * set named by `model.features` (MODEL_FEATURE_SET), file format `model.format` (MODEL_FORMAT; format 2, a single
 * logistic, is read as one head); recomputed at each completed period. `pitwall train` fits one head per failure
 * family (MODEL_HEADS: vibration, temperature, hydraulic), each on its own family's features with its own operating
 * point, so a family that commoner faults move cannot drown out another; the reasons are the top head's features. A model of another format or feature set is rejected at activation (ConfigError PW_CONFIG_INVALID on
 * `asset.model.format` / `asset.model.features`): retrain it with `pitwall train`.
 *
 * Outputs:
 *   score  key `failure_risk:<ts>`: on each completed period and whenever the danger floor starts or ends; factors
 *          = each feature's contribution w_f * x_f to the logit; risk 100 while the danger floor holds.
 *   alert  key `<alertId>:<state>:<seq>`, alertId `sensor:<id>:<type>:<start>`:
 *          `asset_danger` (critical): vibration >= danger.vibration together with temperature >= danger.temperature
 *          (last known values of both) for >= danger.durationMs; closes when vibration <= vibration - hysteresis
 *          or temperature <= temperature - hysteresis. While it is open the risk is 100 (the floor).
 *          `risk_high` (warning): one alert per developing fault. Opens when the model risk is >= threshold for
 *          `holdPeriods` consecutive periods; `update` each time the risk has grown by `updateStep` points since
 *          it was last reported; closes once the risk stayed <= threshold - hysteresis for `clearPeriods`
 *          consecutive periods. Every open/update carries the reasons: the features that drove it, their values
 *          and logit contributions, and the family they belong to.
 *   late   key `late:<seq>` for a reading older than the watermark (max event time - allowedLatenessMs); not applied.
 *
 * State (flat number arrays, about 600 numbers: ~5 KB in memory, ~8 KB as JSON): the open period's sums, the ring, the baseline, the cached
 * logit, detector slots. Replay-deterministic: everything is a function of the readings in stream order.
 */
import { defineActor } from '../../actor.js'
import * as alert from '../../alerts.js'
import type { ActorContext } from '../../actor.js'
import { ThresholdForDuration } from '../../detectors.js'
import type { DetectorEvent, ThresholdOptions } from '../../detectors.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import type { AlertBody, EntityRef, Reading, Severity } from '../../types.js'

/**
 * Model file format: 3 = heads (one logistic per failure family; the risk is the largest head's), on hourly
 * per-unit baseline features. Format 2 (one logistic: `intercept` + `weights`) is still read, as a single head
 * named `all`; format 1 (10-minute window levels) is not.
 */
export const MODEL_FORMAT = 3
/** Model file formats this version reads. */
const READABLE_FORMATS: readonly number[] = [2, 3]
/** Name of the feature set this code computes; a model names the set it was trained on. */
export const MODEL_FEATURE_SET = 'asset-hourly-baseline-1'

export const ASSET_FIELDS = ['vibration', 'temperature', 'pressure', 'flow'] as const
export type AssetField = (typeof ASSET_FIELDS)[number]

export const ASSET_FEATURES = [
  'vibration_level_up',
  'vibration_level_down',
  'vibration_trend_up',
  'vibration_trend_down',
  'vibration_spread',
  'vibration_impulse',
  'temperature_level_up',
  'temperature_level_down',
  'temperature_trend_up',
  'temperature_trend_down',
  'temperature_spread',
  'temperature_load',
  'temperature_peak',
  'temperature_heat',
  'pressure_level_up',
  'pressure_level_down',
  'pressure_trend_up',
  'pressure_trend_down',
  'pressure_spread',
  'flow_level_up',
  'flow_level_down',
  'flow_trend_up',
  'flow_trend_down',
  'flow_spread',
] as const
export type AssetFeature = (typeof ASSET_FEATURES)[number]

/** Heads of a per-family model and the fields whose features each one sees (a failure mode per head). */
export const MODEL_HEADS = {
  vibration: ['vibration'],
  temperature: ['temperature'],
  hydraulic: ['pressure', 'flow'],
} as const

/** Feature names of model format 1, recognised only to reject such a model with a clear message. */
const FORMAT1_FEATURES: readonly string[] = [
  'vibration_level',
  'vibration_trend',
  'vibration_variance',
  'temperature_level',
  'temperature_trend',
  'temperature_variance',
]

/** The family (field) a feature belongs to: what a reason points at. */
export function featureFamily(f: string): string {
  return f.slice(0, f.indexOf('_'))
}

/** One logistic of a model: risk of this head = 100 / (1 + exp(-(intercept + sum w x))). */
export interface AssetModelHead {
  /** Head name (a MODEL_HEADS key for a per-family model; `all` for a single logistic). */
  name: string
  intercept: number
  /** Weight per feature; a feature left out weighs 0. */
  weights: Partial<Record<AssetFeature, number>>
}

export interface AssetModel {
  /** File format (MODEL_FORMAT; 2 still read). */
  format: number
  /** Feature set the weights refer to (MODEL_FEATURE_SET). */
  features: string
  /** Model version label (positive integer or non-empty string), reported with every score and alert. */
  version: number | string
  /** Format 3: the heads; the risk is the largest head's, and the reasons are that head's features. */
  heads?: AssetModelHead[]
  /** Format 2: the single logistic's intercept and weights. */
  intercept?: number
  weights?: Partial<Record<AssetFeature, number>>
}

/** The heads of a model of either readable format (format 2: one head `all`). */
export function modelHeads(m: AssetModel): AssetModelHead[] {
  if (m.format === 2) return [{ name: 'all', intercept: m.intercept as number, weights: m.weights ?? {} }]
  return m.heads ?? []
}

export interface AssetConfig {
  allowedLatenessMs: number
  /** Aggregation period (an hour): features and risk are recomputed when a period completes. */
  periodMs: number
  /** Periods kept in the ring (trend window, and the lag before a period enters the baseline). */
  trendPeriods: number
  /** Periods averaged for the level, spread, impulse and load features. */
  recentPeriods: number
  baseline: {
    halfLifeHours: number
    warmupPeriods: number
    clip: number
    relativeFloor: number
    /** Smallest baseline standard deviation per field, in the field's units. */
    floor: Record<AssetField, number>
  }
  /** z-scores are clipped to ±zClip (one stuck sensor cannot dominate the logit without bound). */
  zClip: number
  /** Reading field used as the load for temperature_load; vibration stands in when readings lack it. */
  loadField: string
  /**
   * In service: a reading whose vibration (the last known one when it has none) is >= `vibration`. Only such
   * readings enter the periods: a unit idling or shut down (cold, pressure bled off, no flow) is not compared
   * with itself at work. A period with fewer than `minShare` of its readings in service is absent.
   */
  service: { vibration: number; minShare: number }
  danger: {
    type: string
    severity: Severity
    vibration: number
    temperature: number
    durationMs: number
    vibrationHysteresis: number
    temperatureHysteresis: number
  }
  riskHigh: {
    type: string
    severity: Severity
    threshold: number
    holdPeriods: number
    hysteresis: number
    clearPeriods: number
    updateStep: number
  }
  /** How many top contributing features are given as reasons (live view, alerts). */
  reasons: number
  model: AssetModel
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/**
 * The built-in model, set by hand on the meaning of the features (no fleet data): a level or trend about 5
 * baseline sds past the unit's own normal, sustained over the recent hours, reaches the alert threshold; two
 * families moving together reach it sooner. `pitwall train` fits a better one from history.
 */
export const DEFAULT_MODEL: AssetModel = {
  format: MODEL_FORMAT,
  features: MODEL_FEATURE_SET,
  version: 'builtin-2',
  heads: [
    {
      name: 'all',
      intercept: -9,
      weights: {
        vibration_level_up: 1.2,
        vibration_trend_up: 0.5,
        vibration_spread: 0.3,
        vibration_impulse: 0.3,
        // The temperature features move together (level, load, peak, heat): each weighs less so that their sum
        // is comparable to one vibration or pressure feature.
        temperature_level_up: 0.5,
        temperature_trend_up: 0.15,
        temperature_load: 0.4,
        temperature_peak: 0.25,
        temperature_heat: 0.3,
        pressure_level_down: 1.2,
        pressure_trend_down: 0.5,
        pressure_spread: 0.2,
        flow_level_down: 0.8,
        flow_level_up: 0.5,
        flow_trend_down: 0.3,
      },
    },
  ],
}

export const ASSET_DEFAULTS: AssetConfig = deepFreeze({
  allowedLatenessMs: 30_000,
  periodMs: 3_600_000,
  trendPeriods: 24,
  recentPeriods: 6,
  baseline: {
    halfLifeHours: 240,
    warmupPeriods: 24,
    clip: 3,
    relativeFloor: 0.02,
    floor: { vibration: 0.1, temperature: 1, pressure: 0.05, flow: 0.2 },
  },
  zClip: 12,
  loadField: 'load',
  // Half the nominal 2 mm/s of DOMAIN.md: below it a unit idles or stands.
  service: { vibration: 1, minShare: 0.25 },
  danger: {
    type: 'asset_danger',
    severity: 'critical',
    vibration: 7,
    temperature: 85,
    durationMs: 30_000,
    vibrationHysteresis: 0.5,
    temperatureHysteresis: 5,
  },
  riskHigh: {
    type: 'risk_high',
    severity: 'warning',
    threshold: 70,
    holdPeriods: 2,
    hysteresis: 20,
    clearPeriods: 8,
    updateStep: 10,
  },
  reasons: 3,
  model: DEFAULT_MODEL,
})

const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical']
const HOUR = 3_600_000
/** Channels aggregated per period: the four fields, then the load. */
const CH = ASSET_FIELDS.length + 2
/** Heat: an in-service temperature minus the unit's recent rest temperature (ambient cancels out). */
const HEAT = ASSET_FIELDS.length
const LOAD = ASSET_FIELDS.length + 1
/** Channels with a baseline: the four fields and the heat. */
const BASE_CH = ASSET_FIELDS.length + 1
/** Time constant of the rest temperature (idling or shut down): follows the ambient within hours. */
const REST_TAU_MS = 2 * 3_600_000
/** A rest temperature older than this is stale: no heat until the unit rests again. */
const REST_STALE_MS = 36 * 3_600_000
/** Open-period sums per channel: n, Σx, Σx², max. */
const AF = 4
/** Ring entry per channel: mean, sd, max (NaN when the period had no sample). */
const RF = 3
/** Baseline per field: EW mean and EW variance of the hourly mean, sd and max; then the load line (5 EW moments). */
const BF = 6
const B_LOAD = BASE_CH * BF
const B_LEN = B_LOAD + 5
const TS = ThresholdForDuration.SLOTS
// Live values: newest event time, vibration, temperature, pressure, flow.
const LIVE = ['vibration', 'temperature', 'pressure', 'flow'] as const
const V_TS = 0,
  V_VIB = 1,
  V_TEMP = 2
// risk_high slots: phase (0 idle, 1 open), start of the hot run, hot periods, cool periods, last reported risk.
const A_PHASE = 0,
  A_START = 1,
  A_HOT = 2,
  A_COOL = 3,
  A_REPORTED = 4
const A_BLANK: readonly number[] = [0, NaN, 0, 0, NaN]

export interface AssetState {
  /** Index (floor(ts / periodMs)) of the open period; NaN before the first reading. */
  p: number
  /** Open period sums, CH x AF. */
  a: number[]
  /** Ring of completed periods, trendPeriods x CH x RF (slot = period index mod trendPeriods). */
  g: number[]
  /** Baseline moments (B_LEN) and how many periods fed it. */
  b: number[]
  bn: number
  /** Newest period index that fed the baseline (NaN = none). */
  bp: number
  /** Logit of the last completed period (NaN = no features yet). */
  lg: number
  /** Live values [ts, ...LIVE]; NaN = none. */
  v: number[]
  /** Danger detector slots, then risk_high slots. */
  d: number[]
  /** Rest temperature (EW of readings out of service; NaN = none) and the event time of its last reading. */
  rt: number
  rts: number
  /** Last risk (NaN = none), floor flag of the last score (0/1). */
  r: number
  fl: number
  late: number
}

interface Compiled {
  /** Per head: name, intercept and weights in ASSET_FEATURES order. */
  heads: Array<{ name: string; intercept: number; weights: number[] }>
  alpha: number
  danger: ThresholdOptions
}

/** Checks an asset config; throws ConfigError naming the setting. */
export function validateAssetConfig(c: AssetConfig): void {
  const num = (setting: string, v: unknown, min: number, max = Infinity): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new ConfigError(`asset.${setting}`, `must be a finite number in [${min}, ${max}], got ${String(v)}`)
    }
  }
  const int = (setting: string, v: unknown, min: number, max: number): void => {
    num(setting, v, min, max)
    if (!Number.isInteger(v)) throw new ConfigError(`asset.${setting}`, `must be an integer, got ${String(v)}`)
  }
  const group = (g: string, v: unknown): void => {
    if (!v || typeof v !== 'object') throw new ConfigError(`asset.${g}`, 'must be an object')
  }
  num('allowedLatenessMs', c.allowedLatenessMs, 0)
  num('periodMs', c.periodMs, 1000)
  int('trendPeriods', c.trendPeriods, 3, 168)
  int('recentPeriods', c.recentPeriods, 1, c.trendPeriods)
  group('baseline', c.baseline)
  num('baseline.halfLifeHours', c.baseline.halfLifeHours, 1)
  int('baseline.warmupPeriods', c.baseline.warmupPeriods, 2, 10_000)
  num('baseline.clip', c.baseline.clip, 1)
  num('baseline.relativeFloor', c.baseline.relativeFloor, 0, 1)
  group('baseline.floor', c.baseline.floor)
  for (const f of ASSET_FIELDS) num(`baseline.floor.${f}`, c.baseline.floor[f], 1e-9)
  num('zClip', c.zClip, 1)
  if (typeof c.loadField !== 'string' || c.loadField.length === 0)
    throw new ConfigError('asset.loadField', 'must be a non-empty string')
  group('service', c.service)
  num('service.vibration', c.service.vibration, 0)
  num('service.minShare', c.service.minShare, 0, 1)
  num('reasons', c.reasons, 0)
  group('danger', c.danger)
  group('riskHigh', c.riskHigh)
  for (const k of ['vibration', 'temperature'] as const) num(`danger.${k}`, c.danger[k], -Infinity)
  for (const k of ['durationMs', 'vibrationHysteresis', 'temperatureHysteresis'] as const)
    num(`danger.${k}`, c.danger[k], 0)
  num('riskHigh.threshold', c.riskHigh.threshold, 0, 100)
  int('riskHigh.holdPeriods', c.riskHigh.holdPeriods, 1, 1000)
  num('riskHigh.hysteresis', c.riskHigh.hysteresis, 0, c.riskHigh.threshold)
  int('riskHigh.clearPeriods', c.riskHigh.clearPeriods, 1, 1000)
  num('riskHigh.updateStep', c.riskHigh.updateStep, 0.01, 100)
  for (const g of ['danger', 'riskHigh'] as const) {
    const a = c[g]
    if (typeof a.type !== 'string' || a.type.length === 0)
      throw new ConfigError(`asset.${g}.type`, 'must be a non-empty string')
    if (!SEVERITIES.includes(a.severity))
      throw new ConfigError(`asset.${g}.severity`, `must be one of ${SEVERITIES.join(', ')}`)
  }
  if (c.danger.type === c.riskHigh.type) throw new ConfigError('asset.riskHigh.type', 'must differ from danger.type')
  validateAssetModel(c.model, 'asset.model')
}

/** Checks a model (a model file's contents); throws ConfigError naming the field under `at`. */
export function validateAssetModel(m: AssetModel, at = 'model'): void {
  if (!m || typeof m !== 'object') throw new ConfigError(at, 'must be an object')
  // A format-1 file merged over the defaults (deployment overrides merge one level deep) inherits the default
  // format and feature set: its format-1 feature names give it away.
  const v1 =
    m.weights && typeof m.weights === 'object' && m.format !== 2
      ? Object.keys(m.weights).find((k) => FORMAT1_FEATURES.includes(k))
      : undefined
  if (v1 !== undefined) {
    throw new ConfigError(
      `${at}.format`,
      `weight ${v1} is a format-1 feature (10-minute window): this version reads format ${MODEL_FORMAT} models only; retrain it with \`pitwall train\``,
    )
  }
  if (typeof m.format !== 'number' || !READABLE_FORMATS.includes(m.format)) {
    throw new ConfigError(
      `${at}.format`,
      m.format === undefined
        ? `missing: this is a format-1 model (10-minute window features), which this version cannot use; retrain it with \`pitwall train\` (format ${MODEL_FORMAT})`
        : `model file format ${String(m.format)} is not supported (this version reads format ${MODEL_FORMAT}); retrain it with \`pitwall train\``,
    )
  }
  if (m.features !== MODEL_FEATURE_SET) {
    throw new ConfigError(
      `${at}.features`,
      `model trained on feature set ${JSON.stringify(m.features)}, this version computes ${MODEL_FEATURE_SET}; retrain it with \`pitwall train\``,
    )
  }
  const v = m.version
  if (!((typeof v === 'number' && Number.isSafeInteger(v) && v > 0) || (typeof v === 'string' && v.length > 0))) {
    throw new ConfigError(
      `${at}.version`,
      `must be a positive integer or a non-empty string, got ${JSON.stringify(v) ?? String(v)}`,
    )
  }
  const head = (h: { intercept?: unknown; weights?: unknown }, where: string): void => {
    if (typeof h.intercept !== 'number' || !Number.isFinite(h.intercept))
      throw new ConfigError(`${where}.intercept`, 'must be a finite number')
    if (!h.weights || typeof h.weights !== 'object') throw new ConfigError(`${where}.weights`, 'must be an object')
    for (const [k, w] of Object.entries(h.weights)) {
      if (!(ASSET_FEATURES as readonly string[]).includes(k)) {
        throw new ConfigError(`${where}.weights.${k}`, `unknown feature; known: ${ASSET_FEATURES.join(', ')}`)
      }
      if (typeof w !== 'number' || !Number.isFinite(w))
        throw new ConfigError(`${where}.weights.${k}`, 'must be a finite number')
    }
  }
  if (m.format === 2) {
    head(m, at)
    return
  }
  if (!Array.isArray(m.heads) || m.heads.length === 0)
    throw new ConfigError(`${at}.heads`, 'must be a non-empty list of heads {name, intercept, weights}')
  const names = new Set<string>()
  m.heads.forEach((h, i) => {
    if (!h || typeof h !== 'object')
      throw new ConfigError(`${at}.heads[${i}]`, 'must be an object {name, intercept, weights}')
    if (typeof h.name !== 'string' || h.name.length === 0 || names.has(h.name))
      throw new ConfigError(`${at}.heads[${i}].name`, 'must be a non-empty string, unique among the heads')
    names.add(h.name)
    head(h, `${at}.heads[${i}]`)
  })
}

const compiledByConfig = new WeakMap<AssetConfig, Compiled>()

function compiled(c: AssetConfig): Compiled {
  let k = compiledByConfig.get(c)
  if (k) return k
  validateAssetConfig(c)
  k = {
    heads: modelHeads(c.model).map((h) => ({
      name: h.name,
      intercept: h.intercept,
      weights: ASSET_FEATURES.map((f) => h.weights[f] ?? 0),
    })),
    alpha: 1 - 2 ** (-(c.periodMs / HOUR) / c.baseline.halfLifeHours),
    danger: Object.freeze({ above: 0.5, durationMs: c.danger.durationMs, hysteresis: 0.5 }),
  }
  compiledByConfig.set(c, k)
  return k
}

/** Index of the open period's count of all readings (in service or not), after the channel sums. */
const A_TOTAL = CH * AF
const blankAcc = (): number[] => {
  const a = new Array<number>(CH * AF + 1).fill(0)
  for (let ch = 0; ch < CH; ch++) a[ch * AF + 3] = -Infinity
  return a
}

function init(_entity: EntityRef, c: AssetConfig): AssetState {
  compiled(c)
  return {
    p: NaN,
    a: blankAcc(),
    g: new Array<number>(c.trendPeriods * CH * RF).fill(NaN),
    b: new Array<number>(B_LEN).fill(0),
    bn: 0,
    bp: NaN,
    lg: NaN,
    v: new Array<number>(1 + LIVE.length).fill(NaN),
    d: [...ThresholdForDuration.blank(), ...A_BLANK],
    rt: NaN,
    rts: NaN,
    r: NaN,
    fl: 0,
    late: 0,
  }
}

// ---- periods, ring and baseline -----------------------------------------------------------------------------

const at = (xs: readonly number[], i: number): number => xs[i] as number

/** Closes the open period into the ring slot of period `p`. */
function closePeriod(s: AssetState, c: AssetConfig): void {
  const slot = (s.p % c.trendPeriods) * CH * RF
  const absent = at(s.a, 0) < c.service.minShare * at(s.a, A_TOTAL)
  for (let ch = 0; ch < CH; ch++) {
    const n = absent ? 0 : at(s.a, ch * AF),
      o = slot + ch * RF
    if (n === 0) {
      s.g[o] = NaN
      s.g[o + 1] = NaN
      s.g[o + 2] = NaN
      continue
    }
    const mean = at(s.a, ch * AF + 1) / n
    s.g[o] = mean
    s.g[o + 1] = Math.sqrt(Math.max(0, at(s.a, ch * AF + 2) / n - mean * mean))
    s.g[o + 2] = at(s.a, ch * AF + 3)
  }
}

/** Ring entry (channel `ch`, statistic `k`) of completed period `p` (the ring holds s.p - trendPeriods .. s.p - 1), else NaN. */
function ringAt(s: AssetState, c: AssetConfig, p: number, ch: number, k: number): number {
  if (p >= s.p || p < s.p - c.trendPeriods || p < 0) return NaN
  return at(s.g, (p % c.trendPeriods) * CH * RF + ch * RF + k)
}

function ew(b: number[], o: number, x: number, alpha: number, clip: number, warm: boolean): void {
  if (!Number.isFinite(x)) return
  const m = at(b, o),
    v = at(b, o + 1)
  if (!warm && clip > 0 && v > 0) {
    const sd = Math.sqrt(v)
    if (Math.abs(x - m) > clip * sd) {
      // An outlying period (a fault developing over days) must not widen the baseline it is measured against
      // (winsorising still grows the variance by ~8 alpha per period): only the mean creeps toward it, a tenth
      // of a clipped step, so a lasting change (a repair that leaves the unit a little different) is absorbed
      // over weeks.
      b[o] = m + 0.1 * alpha * clip * sd * Math.sign(x - m)
      return
    }
  }
  const d = x - m
  b[o] = m + alpha * d
  b[o + 1] = (1 - alpha) * (v + alpha * d * d)
}

/** Feeds the completed period `p` (still in the ring) to the baseline. */
function feedBaseline(s: AssetState, c: AssetConfig, k: Compiled, p: number): void {
  const warm = s.bn < c.baseline.warmupPeriods
  // Running average while warming up (every period counts the same), then exponential weighting.
  const alpha = Math.max(k.alpha, 1 / (s.bn + 1))
  const slot = (p % c.trendPeriods) * CH * RF
  for (let f = 0; f < BASE_CH; f++) {
    for (let j = 0; j < 3; j++) {
      const x = at(s.g, slot + f * RF + j)
      if (s.bn === 0 || (at(s.b, f * BF + 2 * j + 1) === 0 && at(s.b, f * BF + 2 * j) === 0)) {
        if (Number.isFinite(x)) {
          s.b[f * BF + 2 * j] = x
          s.b[f * BF + 2 * j + 1] = 0
        }
      } else {
        ew(s.b, f * BF + 2 * j, x, alpha, c.baseline.clip, warm)
      }
    }
  }
  // Load line: EW moments of load L and temperature T hourly means (L, T, LL, LT, TT).
  const L = at(s.g, slot + LOAD * RF),
    T = at(s.g, slot + 1 * RF)
  if (Number.isFinite(L) && Number.isFinite(T)) {
    const xs = [L, T, L * L, L * T, T * T]
    const first = at(s.b, B_LOAD) === 0 && at(s.b, B_LOAD + 2) === 0
    xs.forEach((x, i) => {
      s.b[B_LOAD + i] = first ? x : at(s.b, B_LOAD + i) + alpha * (x - at(s.b, B_LOAD + i))
    })
  }
  s.bn++
  s.bp = p
}

/** Moves the open period to `np`: closes it into the ring, feeds the baseline, recomputes the logit. */
function advance(s: AssetState, c: AssetConfig, k: Compiled, np: number): void {
  const R = c.trendPeriods
  if (s.bn >= c.baseline.warmupPeriods) {
    // Periods about to leave the ring (a day old) feed the baseline, once each, while still readable.
    const from = Math.max(Number.isNaN(s.bp) ? -Infinity : s.bp + 1, s.p - R),
      to = Math.min(np - R - 1, s.p - 1)
    for (let p = from; p <= to; p++) {
      if (Number.isFinite(ringAt(s, c, p, 0, 0)) || Number.isFinite(ringAt(s, c, p, 1, 0))) feedBaseline(s, c, k, p)
    }
  }
  closePeriod(s, c)
  const slot = (s.p % R) * CH * RF
  if (s.bn < c.baseline.warmupPeriods && (Number.isFinite(at(s.g, slot)) || Number.isFinite(at(s.g, slot + RF))))
    feedBaseline(s, c, k, s.p)
  // Periods skipped by a gap are absent (NaN) in the ring.
  for (let p = s.p + 1; p < np && p <= s.p + R; p++) s.g.fill(NaN, (p % R) * CH * RF, ((p % R) + 1) * CH * RF)
  s.p = np
  s.a = blankAcc()
  s.lg = s.bn >= c.baseline.warmupPeriods ? logitOf(features(s, c), k) : NaN
}

// ---- features ---------------------------------------------------------------------------------------------

/** Feature values (NaN-free; 0 = no evidence) from the ring against the baseline. */
export function features(s: AssetState, c: AssetConfig): number[] {
  const x = new Array<number>(ASSET_FEATURES.length).fill(0)
  if (s.bn < c.baseline.warmupPeriods || Number.isNaN(s.p)) return x
  const R = c.trendPeriods,
    last = s.p - 1,
    clip = c.zClip
  const cz = (z: number): number => (Number.isFinite(z) ? Math.max(-clip, Math.min(clip, z)) : 0)
  const sdOf = (f: number, j: number): number => {
    const m = at(s.b, f * BF + 2 * j),
      v = at(s.b, f * BF + 2 * j + 1)
    const floor = c.baseline.floor[f === HEAT ? 'temperature' : (ASSET_FIELDS[f] as AssetField)]
    return Math.max(Math.sqrt(Math.max(0, v)), floor, f === HEAT ? 0 : c.baseline.relativeFloor * Math.abs(m))
  }
  /** Mean (or max) over the recent periods of g(p), skipping absent ones. */
  const recent = (g: (p: number) => number, max = false): number => {
    let sum = 0,
      n = 0,
      mx = -Infinity
    for (let p = last; p > last - c.recentPeriods; p--) {
      const v = g(p)
      if (Number.isFinite(v)) {
        sum += v
        n++
        mx = Math.max(mx, v)
      }
    }
    return n === 0 ? NaN : max ? mx : sum / n
  }
  let o = 0
  ASSET_FIELDS.forEach((name, f) => {
    const mean = at(s.b, f * BF),
      sd = sdOf(f, 0)
    const level = cz((recent((p) => ringAt(s, c, p, f, 0)) - mean) / sd)
    // Trend: least-squares slope of the hourly means over the ring, per day, in baseline sds.
    let n = 0,
      st = 0,
      stt = 0,
      sx = 0,
      stx = 0
    for (let p = last - R + 1; p <= last; p++) {
      const v = ringAt(s, c, p, f, 0)
      if (!Number.isFinite(v)) continue
      const t = ((p - last) * c.periodMs) / (24 * HOUR)
      n++
      st += t
      stt += t * t
      sx += v
      stx += t * v
    }
    const vt = n > 2 ? stt / n - (st / n) ** 2 : 0
    const slope = vt > 1e-12 ? (stx / n - (st / n) * (sx / n)) / vt : 0
    const trend = cz(slope / sd)
    const spread = cz((recent((p) => ringAt(s, c, p, f, 1)) - at(s.b, f * BF + 2)) / sdOf(f, 1))
    x[o++] = Math.max(0, level)
    x[o++] = Math.max(0, -level)
    x[o++] = Math.max(0, trend)
    x[o++] = Math.max(0, -trend)
    x[o++] = Math.max(0, spread)
    if (name === 'vibration') {
      // Impulsiveness: the hour's peak above its mean in the hour's own sds, against the unit's usual crest.
      const crest = (p: number): number => {
        const m = ringAt(s, c, p, f, 0),
          sdv = ringAt(s, c, p, f, 1),
          mx = ringAt(s, c, p, f, 2)
        return (mx - m) / Math.max(sdv, c.baseline.floor.vibration)
      }
      const bm = at(s.b, f * BF + 4),
        bs = at(s.b, f * BF + 5)
      // The crest baseline is derived from the max baseline and the sd baseline of the same hours.
      const baseCrest = (bm - mean) / Math.max(at(s.b, f * BF + 2), c.baseline.floor.vibration)
      const crestSd = Math.max(
        1,
        Math.sqrt(Math.max(0, bs)) / Math.max(at(s.b, f * BF + 2), c.baseline.floor.vibration),
      )
      x[o++] = Math.max(0, cz((recent(crest) - baseCrest) / crestSd))
    } else if (name === 'temperature') {
      // Load-conditioned temperature: residual from the unit's temperature-vs-load line.
      const [mL, mT, mLL, mLT, mTT] = [0, 1, 2, 3, 4].map((i) => at(s.b, B_LOAD + i)) as [
        number,
        number,
        number,
        number,
        number,
      ]
      const vL = mLL - mL * mL,
        cLT = mLT - mL * mT,
        vT = mTT - mT * mT
      // Physically temperature does not fall with load: a negative fitted slope is noise, taken as 0. The load is
      // held to the range the baseline saw (±2 sds), so a load proxy gone wild (vibration of a failing bearing)
      // is not extrapolated into a prediction.
      const slopeL = vL > 1e-9 ? Math.max(0, cLT / vL) : 0
      const resVar = Math.max(0, vT - slopeL * cLT)
      const resSd = Math.max(Math.sqrt(resVar), c.baseline.floor.temperature, c.baseline.relativeFloor * Math.abs(mT))
      const lSd = Math.sqrt(Math.max(0, vL))
      const dL = (p: number): number => Math.max(-2 * lSd, Math.min(2 * lSd, ringAt(s, c, p, LOAD, 0) - mL))
      // The worst recent hour: a cooling fault shows in the hours worked hard, and the mean would dilute it.
      const res = recent((p) => ringAt(s, c, p, f, 0) - (mT + slopeL * dL(p)), true)
      x[o++] = Math.max(0, cz(res / resSd))
      x[o++] = Math.max(0, cz((recent((p) => ringAt(s, c, p, f, 2), true) - at(s.b, f * BF + 4)) / sdOf(f, 2)))
      // Heat at work over the rest temperature, against the unit's usual: a cooling fault heats the unit at
      // load whatever the weather (the ambient is in both terms).
      x[o++] = Math.max(0, cz((recent((p) => ringAt(s, c, p, HEAT, 0)) - at(s.b, HEAT * BF)) / sdOf(HEAT, 0)))
    }
  })
  return x
}

/** The largest head's logit and that head's index (the risk is the largest head's). */
function topHead(x: readonly number[], k: Compiled): { logit: number; head: number } {
  let best = -Infinity,
    head = 0
  k.heads.forEach((h, i) => {
    let l = h.intercept
    for (let j = 0; j < x.length; j++) l += at(h.weights, j) * at(x, j)
    if (l > best) {
      best = l
      head = i
    }
  })
  return { logit: best, head }
}

function logitOf(x: readonly number[], k: Compiled): number {
  return topHead(x, k).logit
}

interface Reason {
  feature: string
  family: string
  value: number
  contribution: number
}

/** The features that pushed the largest head's logit up most, largest first. */
function reasonsOf(x: readonly number[], k: Compiled, n: number): Reason[] {
  const r: Reason[] = []
  const w = (k.heads[topHead(x, k).head] as Compiled['heads'][number]).weights
  ASSET_FEATURES.forEach((feature, j) => {
    const contribution = at(w, j) * at(x, j)
    if (contribution > 0) r.push({ feature, family: featureFamily(feature), value: at(x, j), contribution })
  })
  r.sort((a, b) => b.contribution - a.contribution || (a.feature < b.feature ? -1 : 1))
  return r.slice(0, n)
}

// ---- handlers -------------------------------------------------------------------------------------------------

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100)
}

const riskOf = (lg: number): number => 100 / (1 + Math.exp(-lg))

function emitAlert(
  ctx: ActorContext,
  type: string,
  severity: Severity,
  ev: DetectorEvent,
  ts: number,
  value: number,
  threshold: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  const alertId = alert.alertId(ctx.entity, type, ev.start)
  const body: AlertBody = {
    alertId,
    type,
    severity,
    state: ev.state,
    start: ev.start,
    value,
    threshold,
    explanation,
    details,
  }
  if (ev.end !== undefined) body.end = ev.end
  alert.emitAlert(ctx, ts, body)
}

/** risk_high after a completed period: hold before opening, update on growth, clear after a calm run. */
function riskAlert(s: AssetState, c: AssetConfig, k: Compiled, ctx: ActorContext, ts: number): void {
  if (Number.isNaN(s.lg)) return
  const rh = c.riskHigh,
    o = TS,
    d = s.d
  const risk = riskOf(s.lg)
  const why = (): Record<string, unknown> => {
    const x = features(s, c)
    const rs = reasonsOf(x, k, Math.max(1, c.reasons))
    return {
      reasons: rs,
      family: rs[0]?.family ?? null,
      head: k.heads[topHead(x, k).head]?.name ?? null,
      modelVersion: c.model.version,
    }
  }
  const top = (det: Record<string, unknown>): string =>
    (det['reasons'] as Reason[]).map((r) => `${r.feature} ${fmt(r.value)} (+${fmt(r.contribution)})`).join(', ')
  if (at(d, o + A_PHASE) === 0) {
    if (risk >= rh.threshold) {
      if (at(d, o + A_HOT) === 0) d[o + A_START] = ts
      d[o + A_HOT] = at(d, o + A_HOT) + 1
      if (at(d, o + A_HOT) >= rh.holdPeriods) {
        d[o + A_PHASE] = 1
        d[o + A_COOL] = 0
        d[o + A_REPORTED] = risk
        const det = why()
        emitAlert(
          ctx,
          rh.type,
          rh.severity,
          { state: 'open', start: at(d, o + A_START) } as DetectorEvent,
          ts,
          risk,
          rh.threshold,
          `failure risk ${fmt(risk)} >= ${fmt(rh.threshold)} for ${rh.holdPeriods} periods; drivers: ${top(det)}`,
          det,
        )
      }
    } else {
      d[o + A_HOT] = 0
    }
    return
  }
  if (risk <= rh.threshold - rh.hysteresis) {
    d[o + A_COOL] = at(d, o + A_COOL) + 1
    if (at(d, o + A_COOL) >= rh.clearPeriods) {
      emitAlert(
        ctx,
        rh.type,
        rh.severity,
        { state: 'close', start: at(d, o + A_START), end: ts } as DetectorEvent,
        ts,
        risk,
        rh.threshold,
        `failure risk back to ${fmt(risk)} (<= ${fmt(rh.threshold - rh.hysteresis)} for ${rh.clearPeriods} periods)`,
        { modelVersion: c.model.version },
      )
      for (let i = 0; i < A_BLANK.length; i++) d[o + i] = at(A_BLANK, i)
    }
    return
  }
  d[o + A_COOL] = 0
  if (risk >= at(d, o + A_REPORTED) + rh.updateStep) {
    d[o + A_REPORTED] = risk
    const det = why()
    emitAlert(
      ctx,
      rh.type,
      rh.severity,
      { state: 'update', start: at(d, o + A_START) } as DetectorEvent,
      ts,
      risk,
      rh.threshold,
      `failure risk up to ${fmt(risk)}; drivers: ${top(det)}`,
      det,
    )
  }
}

function emitScore(s: AssetState, c: AssetConfig, k: Compiled, ctx: ActorContext, ts: number, floor: boolean): void {
  const x = features(s, c)
  const factors: Record<string, number> = {}
  const top = topHead(x, k)
  const w = (k.heads[top.head] as Compiled['heads'][number]).weights
  ASSET_FEATURES.forEach((f, j) => {
    if (at(w, j) !== 0) factors[f] = at(w, j) * at(x, j)
  })
  s.r = floor ? 100 : riskOf(s.lg)
  s.fl = floor ? 1 : 0
  // The floor lifted before the unit is known: no model risk to report.
  if (Number.isNaN(s.r)) return
  ctx.emit('score', `failure_risk:${ts}`, ts, { name: 'failure_risk', value: s.r, factors })
}

function onReading(s: AssetState, r: Reading, ctx: ActorContext, c: AssetConfig): void {
  const k = compiled(c)
  if (s.g.length !== c.trendPeriods * CH * RF) {
    // A snapshot written with another ring length: learn the unit afresh.
    Object.assign(s, { ...init(ctx.entity, c), v: s.v, d: s.d, late: s.late })
  }
  const f = r.fields
  if (r.ts < ctx.watermark) {
    s.late++
    ctx.emit('late', `late:${ctx.seq}`, r.ts, {
      readingTs: r.ts,
      watermark: ctx.watermark,
      readingSeq: ctx.seq,
      fields: f,
    })
    return
  }
  const p = Math.floor(r.ts / c.periodMs)
  let completed = false
  if (Number.isNaN(s.p)) s.p = p
  else if (p > s.p) {
    advance(s, c, k, p)
    completed = true
  }
  const vibNow =
    typeof f['vibration'] === 'number' && Number.isFinite(f['vibration']) ? f['vibration'] : (s.v[V_VIB] as number)
  if (p === s.p) s.a[A_TOTAL] = at(s.a, A_TOTAL) + 1
  const temp0 = f['temperature']
  const inService = vibNow >= c.service.vibration
  if (!inService && typeof temp0 === 'number' && Number.isFinite(temp0) && !(r.ts < s.rts)) {
    s.rt = Number.isNaN(s.rt) ? temp0 : s.rt + (1 - Math.exp(-(r.ts - s.rts) / REST_TAU_MS)) * (temp0 - s.rt)
    s.rts = r.ts
  }
  if (p === s.p && inService) {
    // Readings of an already completed period (within the lateness) update only the live values.
    const load = f[c.loadField]
    const heat = typeof temp0 === 'number' && r.ts - s.rts <= REST_STALE_MS ? temp0 - s.rt : NaN
    const vals = [...ASSET_FIELDS.map((n) => f[n]), heat, typeof load === 'number' ? load : f['vibration']]
    vals.forEach((x, ch) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) return
      const o = ch * AF
      s.a[o] = at(s.a, o) + 1
      s.a[o + 1] = at(s.a, o + 1) + x
      s.a[o + 2] = at(s.a, o + 2) + x * x
      s.a[o + 3] = Math.max(at(s.a, o + 3), x)
    })
  }
  // Detectors, live values and scores follow the newest reading (equal event times: the later arrival).
  if (r.ts < (s.v[V_TS] as number)) return
  s.v[V_TS] = r.ts
  LIVE.forEach((name, i) => {
    const x = f[name]
    if (typeof x === 'number' && Number.isFinite(x)) s.v[1 + i] = x
  })
  const vib = s.v[V_VIB] as number,
    temp = s.v[V_TEMP] as number
  const dg = c.danger
  const det = new ThresholdForDuration(k.danger, s.d, 0)
  if (!Number.isNaN(vib) && !Number.isNaN(temp)) {
    const hot = vib >= dg.vibration && temp >= dg.temperature
    const clear = vib <= dg.vibration - dg.vibrationHysteresis || temp <= dg.temperature - dg.temperatureHysteresis
    const ev = det.update(r.ts, hot ? 1 : clear ? 0 : 0.5)
    if (ev) {
      const explanation =
        ev.state === 'close'
          ? `vibration ${fmt(vib)} mm/s, temperature ${fmt(temp)} °C: out of danger`
          : `vibration ${fmt(vib)} mm/s >= ${fmt(dg.vibration)} with temperature ${fmt(temp)} °C >= ${fmt(dg.temperature)} for >= ${fmt(dg.durationMs / 1000)} s`
      emitAlert(ctx, dg.type, dg.severity, ev, r.ts, vib, dg.vibration, explanation, {
        vibration: vib,
        temperature: temp,
      })
    }
  }
  if (completed) riskAlert(s, c, k, ctx, r.ts)
  const floor = det.active
  if (completed || floor !== (s.fl === 1)) emitScore(s, c, k, ctx, r.ts, floor)
}

function orNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null
}

function query(s: AssetState, ctx: { entity: EntityRef; watermark: number; lastSeq: number }, c: AssetConfig): unknown {
  const k = compiled(c)
  const floor = s.fl === 1
  const x = features(s, c)
  const reasons: Array<{ feature: string; family: string; value: number; contribution: number | null }> = []
  if (floor) reasons.push({ feature: 'danger', family: 'danger', value: s.v[V_VIB] as number, contribution: null })
  reasons.push(...reasonsOf(x, k, c.reasons))
  const last: Record<string, number> = {}
  LIVE.forEach((name, i) => {
    const v = s.v[1 + i] as number
    if (!Number.isNaN(v)) last[name] = v
  })
  const alerts: Array<{ type: string; severity: Severity; alertId: string; start: number }> = []
  const td = new ThresholdForDuration(k.danger, s.d, 0)
  if (td.active && td.start !== undefined) {
    alerts.push({
      type: c.danger.type,
      severity: c.danger.severity,
      alertId: alert.alertId(ctx.entity, c.danger.type, td.start),
      start: td.start,
    })
  }
  if (at(s.d, TS + A_PHASE) === 1) {
    const start = at(s.d, TS + A_START)
    alerts.push({
      type: c.riskHigh.type,
      severity: c.riskHigh.severity,
      alertId: alert.alertId(ctx.entity, c.riskHigh.type, start),
      start,
    })
  }
  return {
    risk: orNull(s.r),
    floor,
    modelVersion: c.model.version,
    baselinePeriods: s.bn,
    reasons,
    features: Object.fromEntries(ASSET_FEATURES.map((f, j) => [f, at(x, j)])),
    // Each head's risk now (the risk is the largest; before the baseline is warm, null).
    heads: Object.fromEntries(
      k.heads.map((h) => [
        h.name,
        s.bn >= c.baseline.warmupPeriods
          ? riskOf(ASSET_FEATURES.reduce((a, _, j) => a + at(h.weights, j) * at(x, j), h.intercept))
          : null,
      ]),
    ),
    last,
    lastTs: orNull(s.v[V_TS]),
    watermark: orNull(ctx.watermark),
    lastSeq: ctx.lastSeq,
    alerts,
    lateCount: s.late,
  }
}

// ---- snapshot codec (version 2; version 1 migrated) ------------------------------------------------------------

const CODEC_VERSION = 2

interface Encoded {
  p: number | null
  a: Array<number | null>
  g: Array<number | null>
  b: number[]
  bn: number
  bp: number | null
  lg: number | null
  v: Array<number | null>
  d: Array<number | null>
  rt: number | null
  rts: number | null
  r: number | null
  fl: number
  l: number
}

const out = (xs: readonly number[]): Array<number | null> => xs.map((x) => (Number.isFinite(x) ? x : null))

function numsIn(xs: unknown, what: string, len?: number): number[] {
  if (
    !Array.isArray(xs) ||
    (len !== undefined && xs.length !== len) ||
    !xs.every((x) => x === null || (typeof x === 'number' && Number.isFinite(x)))
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `asset snapshot: ${what} is not a list of numbers`)
  }
  return (xs as Array<number | null>).map((x) => x ?? NaN)
}

function encode(s: AssetState): Encoded {
  return {
    p: orNull(s.p),
    a: out(s.a),
    g: out(s.g),
    b: s.b.slice(),
    bn: s.bn,
    bp: orNull(s.bp),
    lg: orNull(s.lg),
    v: out(s.v),
    d: out(s.d),
    rt: orNull(s.rt),
    rts: orNull(s.rts),
    r: orNull(s.r),
    fl: s.fl,
    l: s.late,
  }
}

function decode(data: unknown, version: number): AssetState {
  const e = data as Record<string, unknown> | null
  if (!e || typeof e !== 'object' || !Number.isSafeInteger(e['l']) || (e['l'] as number) < 0) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'asset snapshot is not an asset state')
  }
  const one = (x: unknown, what: string): number => numsIn([x], what)[0] as number
  if (version === 1) {
    // Version 1 kept a 10-minute window; its live values, danger detector and late count carry over, and the
    // unit's baseline is learned afresh (the old window holds nothing the hourly features can use).
    const d1 = numsIn(e['d'], 'detector slots', 2 * TS)
    return {
      p: NaN,
      a: blankAcc(),
      g: [],
      b: new Array<number>(B_LEN).fill(0),
      bn: 0,
      bp: NaN,
      lg: NaN,
      v: numsIn(e['v'], 'live values', 1 + LIVE.length),
      d: [...d1.slice(0, TS), ...A_BLANK],
      rt: NaN,
      rts: NaN,
      r: NaN,
      fl: 0,
      late: e['l'] as number,
    }
  }
  if (version !== CODEC_VERSION) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_VERSION,
      `asset snapshot version ${version} is not ${CODEC_VERSION} or 1`,
    )
  }
  const a = numsIn(e['a'], 'period sums', CH * AF + 1).map((x, i) => (i % AF === 3 && Number.isNaN(x) ? -Infinity : x))
  const b = numsIn(e['b'], 'baseline', B_LEN)
  const g = numsIn(e['g'], 'ring')
  const bn = e['bn'],
    fl = e['fl']
  if (
    b.some((x) => Number.isNaN(x)) ||
    g.length % (CH * RF) !== 0 ||
    !Number.isSafeInteger(bn) ||
    (bn as number) < 0 ||
    (fl !== 0 && fl !== 1)
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'asset snapshot: bad baseline or ring')
  }
  return {
    p: one(e['p'], 'period'),
    a,
    g,
    b,
    bn: bn as number,
    bp: one(e['bp'], 'baseline period'),
    lg: one(e['lg'], 'logit'),
    v: numsIn(e['v'], 'live values', 1 + LIVE.length),
    d: numsIn(e['d'], 'detector slots', TS + A_BLANK.length),
    rt: one(e['rt'], 'rest temperature'),
    rts: one(e['rts'], 'rest time'),
    r: one(e['r'], 'risk'),
    fl: fl as number,
    late: e['l'] as number,
  }
}

/** The asset profile (kind `sensor`). */
export const asset = defineActor<AssetState, AssetConfig>({
  kind: 'sensor',
  profile: 'asset',
  defaults: ASSET_DEFAULTS,
  // Called when a cell is built (activation): validates the configuration, model included.
  allowedLatenessMs: (c) => {
    compiled(c)
    return c.allowedLatenessMs
  },
  init,
  codec: { version: CODEC_VERSION, encode, decode },
  onReading,
  query,
})

/** A config with its model replaced (a fresh object: configs are validated and compiled per object). */
export function mergeAssetModel(c: AssetConfig, m: AssetModel): AssetConfig {
  const model: AssetModel = { format: m.format, features: m.features, version: m.version }
  if (m.heads !== undefined)
    model.heads = m.heads.map((h) => ({ name: h.name, intercept: h.intercept, weights: { ...h.weights } }))
  if (m.intercept !== undefined) model.intercept = m.intercept
  if (m.weights !== undefined) model.weights = { ...m.weights }
  return { ...c, model }
}
