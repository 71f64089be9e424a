/**
 * Sensor profile `asset`: one actor per locomotive sensor unit (DOMAIN.md section 4, rolling stock).
 *
 * Reading fields (all optional per reading; a missing field leaves its last value in force):
 *   vibration mm/s (nominal ~2), temperature °C (nominal ~45), pressure, flow (shown only).
 *
 * Outputs:
 *   score  key `failure_risk:<ts>`: risk 0..100 of the asset, at most once per `scoreIntervalMs` of event time
 *          (the first newest reading at least that long after the previous score); factors = each feature's
 *          contribution w_f * x_f to the logit (intercept + sum of factors = logit of value/100), unless the
 *          danger floor holds (value 100).
 *   alert  key `<alertId>:<state>:<seq>`, alertId `sensor:<id>:<type>:<start>`:
 *          `asset_danger` (critical): vibration >= danger.vibration together with temperature >= danger.temperature
 *          (last known values of both) for >= danger.durationMs; closes when vibration <= vibration - hysteresis
 *          or temperature <= temperature - hysteresis. While it is open the risk is 100 (the floor).
 *          `risk_high` (warning): risk >= riskHigh.threshold for >= riskHigh.durationMs; closes at risk <=
 *          threshold - hysteresis.
 *   late   key `late:<seq>` for a reading older than the watermark (max event time - allowedLatenessMs); not applied.
 *
 * Features: over a sliding event-time window of `windowMs` kept as `windowMs / bucketMs` bucket sums (the window
 * is the buckets from the newest reading's bucket back), per field (vibration, temperature): level (mean),
 * trend (least-squares slope, units per hour) and variance (population). Readings within the lateness but
 * out of order still enter their bucket; the detectors and the score follow only the newest reading.
 *
 * Model: logistic, risk = 100 / (1 + exp(-(intercept + sum w_f x_f))), coefficients in `model` (versioned, trained
 * offline by `pitwall train`, validated at activation). State: bucket sums, live values and detector slots as
 * flat number arrays (a few hundred bytes).
 */
import { defineActor } from '../../actor.js'
import type { ActorContext } from '../../actor.js'
import { ThresholdForDuration } from '../../detectors.js'
import type { DetectorEvent, ThresholdOptions } from '../../detectors.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import type { AlertBody, EntityRef, Reading, Severity } from '../../types.js'

export const ASSET_FEATURES = [
  'vibration_level', 'vibration_trend', 'vibration_variance',
  'temperature_level', 'temperature_trend', 'temperature_variance',
] as const
export type AssetFeature = (typeof ASSET_FEATURES)[number]

export interface AssetModel {
  /** Model version (positive integer or non-empty string), reported with every score. */
  version: number | string
  intercept: number
  /** Weight per feature; a feature left out weighs 0. */
  weights: Partial<Record<AssetFeature, number>>
}

export interface AssetConfig {
  allowedLatenessMs: number
  /** Sliding window of the features, a whole multiple of bucketMs. */
  windowMs: number
  bucketMs: number
  scoreIntervalMs: number
  danger: { type: string; severity: Severity; vibration: number; temperature: number; durationMs: number;
    vibrationHysteresis: number; temperatureHysteresis: number }
  riskHigh: { type: string; severity: Severity; threshold: number; durationMs: number; hysteresis: number }
  /** How many top contributing features the live view gives as reasons. */
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

export const ASSET_DEFAULTS: AssetConfig = deepFreeze({
  allowedLatenessMs: 30_000,
  windowMs: 600_000,
  bucketMs: 120_000,
  scoreIntervalMs: 60_000,
  danger: { type: 'asset_danger', severity: 'critical', vibration: 7, temperature: 85, durationMs: 30_000,
    vibrationHysteresis: 0.5, temperatureHysteresis: 5 },
  riskHigh: { type: 'risk_high', severity: 'warning', threshold: 70, durationMs: 300_000, hysteresis: 10 },
  reasons: 3,
  // Hand-set until `pitwall train` fits one: about 0.1 % risk at nominal (2 mm/s, 45 °C), ~80 % at 6 mm/s, 80 °C.
  model: {
    version: 1,
    intercept: -14,
    weights: { vibration_level: 1, vibration_trend: 0.02, vibration_variance: 0.3,
      temperature_level: 0.12, temperature_trend: 0.002, temperature_variance: 0.02 },
  },
})

const FIELDS = ['vibration', 'temperature'] as const
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical']
const HOUR = 3_600_000
/** Per bucket and field: n, Σt, Σt², Σx, Σx², Σtx (t in hours from the bucket start). */
const PF = 6
const PB = PF * FIELDS.length
const TS = ThresholdForDuration.SLOTS
/** Variance of the sample times (h²) below which the trend is 0 (all samples at about the same time). */
const MIN_TIME_VAR = 1e-12
// Live values: newest event time, vibration, temperature, pressure, flow.
const LIVE = ['vibration', 'temperature', 'pressure', 'flow'] as const
const V_TS = 0, V_VIB = 1, V_TEMP = 2

export interface AssetState {
  /** Bucket sums, ring of `windowMs / bucketMs` buckets (PB numbers each), NaN-free. */
  b: number[]
  /** Bucket index (floor(ts / bucketMs)) of the newest bucket; NaN before the first reading. */
  h: number
  /** Live values [ts, ...LIVE]; NaN = none. */
  v: number[]
  /** Detector slots: danger, then risk_high. */
  d: number[]
  /** Last computed risk (NaN = none) and event time of the last score output (NaN = none). */
  r: number
  ls: number
  /** Late readings. */
  late: number
}

interface Compiled {
  buckets: number
  weights: number[]
  danger: ThresholdOptions
  risk: ThresholdOptions
}

/** Checks an asset config; throws ConfigError naming the setting. */
export function validateAssetConfig(c: AssetConfig): void {
  const num = (setting: string, v: unknown, min: number): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new ConfigError(`asset.${setting}`, `must be a finite number >= ${min}, got ${String(v)}`)
  }
  const group = (g: string, v: unknown): void => {
    if (!v || typeof v !== 'object') throw new ConfigError(`asset.${g}`, 'must be an object')
  }
  num('allowedLatenessMs', c.allowedLatenessMs, 0)
  num('bucketMs', c.bucketMs, 1)
  num('windowMs', c.windowMs, c.bucketMs)
  if (!Number.isInteger(c.windowMs / c.bucketMs) || c.windowMs / c.bucketMs > 60) {
    throw new ConfigError('asset.windowMs', `must be a whole multiple (at most 60) of bucketMs ${c.bucketMs}`)
  }
  num('scoreIntervalMs', c.scoreIntervalMs, 0)
  num('reasons', c.reasons, 0)
  group('danger', c.danger)
  group('riskHigh', c.riskHigh)
  for (const k of ['vibration', 'temperature'] as const) num(`danger.${k}`, c.danger[k], -Infinity)
  for (const k of ['durationMs', 'vibrationHysteresis', 'temperatureHysteresis'] as const) num(`danger.${k}`, c.danger[k], 0)
  num('riskHigh.threshold', c.riskHigh.threshold, 0)
  if (c.riskHigh.threshold > 100) throw new ConfigError('asset.riskHigh.threshold', 'must be <= 100')
  num('riskHigh.durationMs', c.riskHigh.durationMs, 0)
  num('riskHigh.hysteresis', c.riskHigh.hysteresis, 0)
  for (const g of ['danger', 'riskHigh'] as const) {
    const a = c[g]
    if (typeof a.type !== 'string' || a.type.length === 0) throw new ConfigError(`asset.${g}.type`, 'must be a non-empty string')
    if (!SEVERITIES.includes(a.severity)) throw new ConfigError(`asset.${g}.severity`, `must be one of ${SEVERITIES.join(', ')}`)
  }
  if (c.danger.type === c.riskHigh.type) throw new ConfigError('asset.riskHigh.type', 'must differ from danger.type')
  const m = c.model
  group('model', m)
  const v = m.version
  if (!((typeof v === 'number' && Number.isSafeInteger(v) && v > 0) || (typeof v === 'string' && v.length > 0))) {
    throw new ConfigError('asset.model.version', `must be a positive integer or a non-empty string, got ${JSON.stringify(v) ?? String(v)}`)
  }
  num('model.intercept', m.intercept, -Infinity)
  group('model.weights', m.weights)
  for (const [k, w] of Object.entries(m.weights)) {
    if (!(ASSET_FEATURES as readonly string[]).includes(k)) {
      throw new ConfigError(`asset.model.weights.${k}`, `unknown feature; known: ${ASSET_FEATURES.join(', ')}`)
    }
    num(`model.weights.${k}`, w, -Infinity)
  }
}

const compiledByConfig = new WeakMap<AssetConfig, Compiled>()

function compiled(c: AssetConfig): Compiled {
  let k = compiledByConfig.get(c)
  if (k) return k
  validateAssetConfig(c)
  k = {
    buckets: c.windowMs / c.bucketMs,
    weights: ASSET_FEATURES.map((f) => c.model.weights[f] ?? 0),
    danger: Object.freeze({ above: 0.5, durationMs: c.danger.durationMs, hysteresis: 0.5 }),
    risk: Object.freeze({ above: 0.5, durationMs: c.riskHigh.durationMs, hysteresis: 0.5 }),
  }
  compiledByConfig.set(c, k)
  return k
}

function init(_entity: EntityRef, c: AssetConfig): AssetState {
  const k = compiled(c)
  return { b: new Array<number>(k.buckets * PB).fill(0), h: NaN, v: new Array<number>(1 + LIVE.length).fill(NaN),
    d: [...ThresholdForDuration.blank(), ...ThresholdForDuration.blank()], r: NaN, ls: NaN, late: 0 }
}

// ---- window features ----------------------------------------------------------------------------------------

/** Adds a sample to the bucket ring, sliding it forward when the reading opens a newer bucket. */
function addSample(s: AssetState, c: AssetConfig, k: Compiled, ts: number, f: Reading['fields']): void {
  const B = k.buckets
  const bi = Math.floor(ts / c.bucketMs)
  if (Number.isNaN(s.h) || bi - s.h >= B) {
    s.b.fill(0)
    s.h = bi
  } else if (bi > s.h) {
    for (let x = s.h + 1; x <= bi; x++) s.b.fill(0, (x % B) * PB, (x % B) * PB + PB)
    s.h = bi
  } else if (bi <= s.h - B) {
    return
  }
  const t = (ts - bi * c.bucketMs) / HOUR
  const base = (bi % B) * PB
  FIELDS.forEach((name, i) => {
    const x = f[name]
    if (typeof x !== 'number' || !Number.isFinite(x)) return
    const o = base + i * PF
    const b = s.b
    b[o] = (b[o] as number) + 1
    b[o + 1] = (b[o + 1] as number) + t
    b[o + 2] = (b[o + 2] as number) + t * t
    b[o + 3] = (b[o + 3] as number) + x
    b[o + 4] = (b[o + 4] as number) + x * x
    b[o + 5] = (b[o + 5] as number) + t * x
  })
}

interface FieldFeatures { n: number; level: number; trend: number; variance: number }

/** Level, trend (per hour) and variance of each field over the window; n = 0 when the field has no sample. */
function windowFeatures(s: AssetState, c: AssetConfig, k: Compiled): FieldFeatures[] {
  const B = k.buckets
  return FIELDS.map((_, i) => {
    let n = 0, st = 0, stt = 0, sx = 0, sxx = 0, stx = 0
    if (!Number.isNaN(s.h) && s.b.length === B * PB) {
      const first = s.h - B + 1
      for (let idx = first; idx <= s.h; idx++) {
        const o = (idx % B) * PB + i * PF
        const bn = s.b[o] as number
        if (bn === 0) continue
        // Shift the bucket's times (from its own start) to the window's start.
        const dl = ((idx - first) * c.bucketMs) / HOUR
        const bt = s.b[o + 1] as number, btt = s.b[o + 2] as number, bx = s.b[o + 3] as number
        n += bn
        st += bt + bn * dl
        stt += btt + 2 * dl * bt + bn * dl * dl
        sx += bx
        sxx += s.b[o + 4] as number
        stx += (s.b[o + 5] as number) + dl * bx
      }
    }
    if (n === 0) return { n, level: NaN, trend: NaN, variance: NaN }
    const mt = st / n, mx = sx / n
    const vt = stt / n - mt * mt
    const trend = vt > MIN_TIME_VAR ? (stx / n - mt * mx) / vt : 0
    return { n, level: mx, trend, variance: Math.max(0, sxx / n - mx * mx) }
  })
}

interface Scored { risk: number; logit: number; floor: boolean; factors: Record<string, number>; values: Record<string, number> }

/** Model risk from the window (NaN when a field has no sample), with the danger floor applied. */
function score(s: AssetState, c: AssetConfig, k: Compiled): Scored {
  const ff = windowFeatures(s, c, k)
  const floor = new ThresholdForDuration(k.danger, s.d, 0).active
  const factors: Record<string, number> = {}
  const values: Record<string, number> = {}
  let logit = NaN
  if (ff.every((x) => x.n > 0)) {
    logit = c.model.intercept
    ASSET_FEATURES.forEach((name, j) => {
      const fx = ff[Math.floor(j / 3)] as FieldFeatures
      const x = j % 3 === 0 ? fx.level : j % 3 === 1 ? fx.trend : fx.variance
      const contrib = (k.weights[j] as number) * x
      values[name] = x
      factors[name] = contrib
      logit += contrib
    })
  }
  const model = 100 / (1 + Math.exp(-logit))
  return { risk: floor ? 100 : model, logit, floor, factors, values }
}

// ---- handlers -------------------------------------------------------------------------------------------------

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100)
}

function emitAlert(ctx: ActorContext, type: string, severity: Severity, ev: DetectorEvent, ts: number, value: number, threshold: number,
  explanation: string, details: Record<string, unknown>): void {
  const alertId = `${ctx.entity.kind}:${ctx.entity.id}:${type}:${ev.start}`
  const body: AlertBody = { alertId, type, severity, state: ev.state, start: ev.start, value, threshold, explanation, details }
  if (ev.end !== undefined) body.end = ev.end
  ctx.emit('alert', `${alertId}:${ev.state}:${ctx.seq}`, ts, body)
}

function onReading(s: AssetState, r: Reading, ctx: ActorContext, c: AssetConfig): void {
  const k = compiled(c)
  if (s.b.length !== k.buckets * PB) {
    // A snapshot written with another window layout: start the window afresh.
    s.b = new Array<number>(k.buckets * PB).fill(0)
    s.h = NaN
  }
  const f = r.fields
  if (r.ts < ctx.watermark) {
    s.late++
    ctx.emit('late', `late:${ctx.seq}`, r.ts, { readingTs: r.ts, watermark: ctx.watermark, readingSeq: ctx.seq, fields: f })
    return
  }
  addSample(s, c, k, r.ts, f)
  // Detectors, live values and scores follow the newest reading (equal event times: the later arrival).
  if (r.ts < (s.v[V_TS] as number)) return
  s.v[V_TS] = r.ts
  LIVE.forEach((name, i) => {
    const x = f[name]
    if (typeof x === 'number' && Number.isFinite(x)) s.v[1 + i] = x
  })
  const vib = s.v[V_VIB] as number, temp = s.v[V_TEMP] as number
  const dg = c.danger
  if (!Number.isNaN(vib) && !Number.isNaN(temp)) {
    const hot = vib >= dg.vibration && temp >= dg.temperature
    const clear = vib <= dg.vibration - dg.vibrationHysteresis || temp <= dg.temperature - dg.temperatureHysteresis
    const ev = new ThresholdForDuration(k.danger, s.d, 0).update(r.ts, hot ? 1 : clear ? 0 : 0.5)
    if (ev) {
      const explanation = ev.state === 'close'
        ? `vibration ${fmt(vib)} mm/s, temperature ${fmt(temp)} °C: out of danger`
        : `vibration ${fmt(vib)} mm/s >= ${fmt(dg.vibration)} with temperature ${fmt(temp)} °C >= ${fmt(dg.temperature)} for >= ${fmt(dg.durationMs / 1000)} s`
      emitAlert(ctx, dg.type, dg.severity, ev, r.ts, vib, dg.vibration, explanation, { vibration: vib, temperature: temp })
    }
  }
  const sc = score(s, c, k)
  s.r = sc.risk
  const rh = c.riskHigh
  if (!Number.isNaN(sc.risk)) {
    const code = sc.risk >= rh.threshold ? 1 : sc.risk <= rh.threshold - rh.hysteresis ? 0 : 0.5
    const ev = new ThresholdForDuration(k.risk, s.d, TS).update(r.ts, code)
    if (ev) {
      const explanation = ev.state === 'close'
        ? `failure risk back to ${fmt(sc.risk)} (<= ${fmt(rh.threshold - rh.hysteresis)})`
        : `failure risk ${fmt(sc.risk)} >= ${fmt(rh.threshold)} for >= ${fmt(rh.durationMs / 1000)} s`
      emitAlert(ctx, rh.type, rh.severity, ev, r.ts, sc.risk, rh.threshold, explanation,
        { factors: sc.factors, floor: sc.floor, modelVersion: c.model.version })
    }
    if (Number.isNaN(s.ls) || r.ts - s.ls >= c.scoreIntervalMs) {
      s.ls = r.ts
      ctx.emit('score', `failure_risk:${r.ts}`, r.ts, { name: 'failure_risk', value: sc.risk, factors: sc.factors })
    }
  }
}

function orNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null
}

function query(s: AssetState, ctx: { entity: EntityRef; watermark: number; lastSeq: number }, c: AssetConfig): unknown {
  const k = compiled(c)
  const sc = score(s, c, k)
  const reasons: Array<{ feature: string; value: number; contribution: number }> = []
  if (sc.floor) reasons.push({ feature: 'danger', value: s.v[V_VIB] as number, contribution: Infinity })
  const ranked = Object.entries(sc.factors).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
  for (const [feature, contribution] of ranked.slice(0, c.reasons)) {
    reasons.push({ feature, value: sc.values[feature] as number, contribution })
  }
  const last: Record<string, number> = {}
  LIVE.forEach((name, i) => {
    const x = s.v[1 + i] as number
    if (!Number.isNaN(x)) last[name] = x
  })
  const alerts: Array<{ type: string; severity: Severity; alertId: string; start: number }> = []
  const pairs = [[c.danger, 0], [c.riskHigh, TS]] as const
  for (const [a, off] of pairs) {
    const td = new ThresholdForDuration(off === 0 ? k.danger : k.risk, s.d, off)
    const start = td.start
    if (td.active && start !== undefined) alerts.push({ type: a.type, severity: a.severity, alertId: `${ctx.entity.kind}:${ctx.entity.id}:${a.type}:${start}`, start })
  }
  return {
    risk: orNull(s.r),
    floor: sc.floor,
    modelVersion: c.model.version,
    reasons: reasons.map((x) => ({ ...x, contribution: x.contribution === Infinity ? null : x.contribution })),
    features: sc.values,
    last,
    lastTs: orNull(s.v[V_TS]),
    watermark: orNull(ctx.watermark),
    lastSeq: ctx.lastSeq,
    alerts,
    lateCount: s.late,
  }
}

// ---- snapshot codec (version 1) -------------------------------------------------------------------------

const CODEC_VERSION = 1

interface Encoded { b: number[]; h: number | null; v: Array<number | null>; d: Array<number | null>; r: number | null; ls: number | null; l: number }

const out = (xs: readonly number[]): Array<number | null> => xs.map((x) => (Number.isFinite(x) ? x : null))

function numsIn(xs: unknown, what: string, len?: number): number[] {
  if (!Array.isArray(xs) || (len !== undefined && xs.length !== len)
    || !xs.every((x) => x === null || (typeof x === 'number' && Number.isFinite(x)))) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `asset snapshot: ${what} is not a list of numbers`)
  }
  return (xs as Array<number | null>).map((x) => x ?? NaN)
}

function encode(s: AssetState): Encoded {
  return { b: s.b.slice(), h: orNull(s.h), v: out(s.v), d: out(s.d), r: orNull(s.r), ls: orNull(s.ls), l: s.late }
}

function decode(data: unknown, version: number): AssetState {
  if (version !== CODEC_VERSION) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_VERSION, `asset snapshot version ${version} is not ${CODEC_VERSION}`)
  }
  const e = data as Partial<Encoded> | null
  if (!e || typeof e !== 'object' || !Number.isSafeInteger(e.l) || (e.l as number) < 0) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'asset snapshot is not an asset state')
  }
  const one = (x: unknown, what: string): number => numsIn([x], what)[0] as number
  const b = numsIn(e.b, 'bucket sums')
  if (b.length % PB !== 0 || b.some((x) => Number.isNaN(x))) throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'asset snapshot: bad bucket sums')
  return { b, h: one(e.h, 'head bucket'), v: numsIn(e.v, 'live values', 1 + LIVE.length), d: numsIn(e.d, 'detector slots', 2 * TS),
    r: one(e.r, 'risk'), ls: one(e.ls, 'last score'), late: e.l as number }
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
