/**
 * `pitwall train`: fits the `asset` profile's failure-risk model offline from a CSV of sensor history plus a
 * maintenance log, validates it on a held-out (later) time period through the real profile, and writes a
 * versioned JSON model file that a deployment loads at start
 * (`PITWALL_PROFILE_CONFIG='{"asset":{"model":<file contents>}}'`, docs/profiles.md). Every flag: TRAIN_HELP.
 *
 * Features are computed by the asset profile itself (its handler and live view, run over the history in memory,
 * sampled once per completed period), so training and runtime cannot disagree on what a feature is.
 *
 * Labels (docs/profiles.md, "label semantics"): the maintenance log's `repair` rows give failures. With
 * `--log-time failure` (default) a row's ts is the moment the unit failed or was taken out of service; with
 * `--log-time completion` it is when the repair job was signed off, and the failure is taken `--job-hours`
 * earlier. A sample is positive when a failure of its entity follows within `--horizon-hours` (72); samples from
 * the failure to `--downtime-hours` after it (the unit in the shop, then a fresh start) are left out. `routine`
 * rows are not failures.
 *
 * Model: L2-regularised logistic regression on standardised features (Newton's method), written back in raw
 * units. Then the operating point: the intercept is shifted so that the alert threshold (riskHigh.threshold, 70)
 * sits at the (1 - `--false-rate`) quantile of the training negatives' logits; the risk is an alert-aligned score,
 * not a calibrated probability. Validation runs the profile with the fitted model over the whole history and
 * scores only the held-out last `--validate-share` of the time span (simulators/asset-score.ts).
 */
import { createReadStream, createWriteStream, writeFileSync, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import {
  ActorCell,
  ASSET_DEFAULT_MODEL,
  ASSET_DEFAULTS,
  ASSET_FEATURE_SET,
  ASSET_FEATURES,
  ASSET_MODEL_FORMAT,
  ASSET_MODEL_HEADS,
  type CommandSpec,
  ConfigError,
  parseCommand,
  PitwallError,
  asset,
  assetModelHeads,
  featureFamily,
} from '../actors/mod.js'
import type { AssetConfig, AssetModel, AssetModelHead, Reading } from '../actors/mod.js'
import { AssetSimulator } from '../simulators/asset.js'
import { csvObjects } from '../simulators/csv.js'
import {
  runAssetProfile,
  scoreLeadTime,
  type Failure,
  type HistoryRow,
  type LeadScore,
} from '../simulators/asset-score.js'

const HOUR = 3_600_000

export interface TrainOptions {
  history: string
  maintenance: string
  out: string
  horizonMs: number
  version?: string
  l2: number
  /** One sample every `sampleEvery` completed periods of an entity. */
  sampleEvery: number
  logTime: 'failure' | 'completion'
  jobMs: number
  downtimeMs: number
  validateShare: number
  falseRate: number
  /** Every weight >= 0 (fitLogisticNonNegative); default: signed weights (fitLogistic). */
  nonNegative?: boolean
  /** One head per failure family (default) or a single logistic over every feature. */
  model?: 'per-family' | 'single'
  /** Per-family: the span before a failure that attributes it to a head (attributeFailures). */
  attributeMs?: number
}

/**
 * Defaults. Per-family (the default model): `l2` pulls each head's standardised weights toward the built-in
 * model's (the prior), `falseRate` is per head. Single: the defaults of the one-logistic fit before per-family
 * heads (`singleL2` toward 0, `singleFalseRate`). Swept on the independent fleet's tuning seeds (docs/profiles.md).
 */
export const TRAIN_DEFAULTS = {
  horizonHours: 72,
  l2: 1000,
  sampleEvery: 1,
  logTime: 'failure',
  jobHours: 8,
  downtimeHours: 24,
  validateShare: 0.3,
  falseRate: 0.001,
  model: 'per-family',
  attributeHours: 24,
  singleL2: 1,
  singleFalseRate: 0.003,
} as const

export interface TrainedModel extends AssetModel {
  version: string
  heads: AssetModelHead[]
  trained: {
    at: string
    samples: number
    positives: number
    failures: number
    horizonHours: number
    l2: number
    logLoss: number
    logTime: string
    falseRate: number
    trainedUntil: number
    threshold: number
    /** How the weights were fitted: 'signed' (default) or 'non-negative' (--non-negative). */
    weights: 'non-negative' | 'signed'
    /** 'per-family' (one head per failure family, prior = the built-in weights) or 'single'. */
    model: 'per-family' | 'single'
    /** Per head: training failures attributed to it, samples and positives it was fitted on. */
    heads: Array<{ name: string; failures: number; samples: number; positives: number }>
  }
  /** Held-out period through the real profile with this model (null when it holds no failure). */
  validation:
    | (Pick<
        LeadScore,
        'failures' | 'caught6h' | 'recall6h' | 'medianLeadHours' | 'falseAlerts' | 'falsePerAssetMonth'
      > & { from: number; to: number; assets: number })
    | null
  warnings: string[]
}

/** Rows of a CSV file (RFC 4180: quoted fields may hold commas, quotes and line breaks) keyed by its header. */
function csvRows(path: string): AsyncGenerator<Record<string, string>> {
  return csvObjects(createReadStream(path, 'utf8'), path)
}

/** History CSV rows as readings (numeric columns other than entity and ts become fields). */
export async function* historyRows(path: string): AsyncGenerator<HistoryRow> {
  for await (const r of csvRows(path)) {
    const entity = r['entity'],
      ts = Number(r['ts'])
    if (!entity || !Number.isFinite(ts)) throw new ConfigError(path, 'rows need entity and a numeric ts')
    const fields: Reading['fields'] = {}
    for (const [k, raw] of Object.entries(r)) {
      if (k === 'entity' || k === 'ts' || raw === '') continue
      const v = Number(raw)
      if (Number.isFinite(v)) fields[k] = v
    }
    yield { entity, ts, fields }
  }
}

/** Failures from the maintenance log (repair rows), per the label semantics. */
export async function readFailures(path: string, o: Pick<TrainOptions, 'logTime' | 'jobMs'>): Promise<Failure[]> {
  const out: Failure[] = []
  for await (const r of csvRows(path)) {
    const ts = Number(r['ts'])
    if (!r['entity'] || !Number.isFinite(ts)) throw new ConfigError(path, 'rows need entity and a numeric ts')
    if (r['action'] !== 'repair') continue
    const f: Failure = { entity: r['entity'], ts: o.logTime === 'completion' ? ts - o.jobMs : ts }
    if (r['mode']) f.mode = r['mode']
    out.push(f)
  }
  return out.sort((a, b) => a.ts - b.ts)
}

/** Writes the asset simulator's history and maintenance log as the two training CSVs. */
export async function writeAssetHistory(o: {
  seed: number
  entities: number
  days: number
  history: string
  maintenance: string
  fleet?: boolean
}): Promise<number> {
  const sim = new AssetSimulator({ seed: o.seed, locomotives: o.entities, anomalies: true, fleet: o.fleet ?? false })
  const end = sim.startTs + o.days * 86_400_000
  const out: WriteStream = createWriteStream(o.history)
  out.write('entity,ts,vibration,temperature,pressure,flow\n')
  let n = 0
  for (let it = sim.next(); it.reading.ts < end; it = sim.next()) {
    const f = it.reading.fields
    if (
      !out.write(
        `${it.id},${it.reading.ts},${String(f['vibration'])},${String(f['temperature'])},${String(f['pressure'])},${String(f['flow'])}\n`,
      )
    )
      await once(out, 'drain')
    n++
  }
  out.end()
  await once(out, 'finish')
  writeFileSync(
    o.maintenance,
    `entity,ts,action\n${sim
      .maintenance(end)
      .map((m) => `${m.entity},${m.ts},${m.action}`)
      .join('\n')}\n`,
  )
  return n
}

export interface FeatureRow {
  entity: string
  ts: number
  x: number[]
}

/** Feature rows computed by the asset profile (one per completed period and entity, once its baseline is warm). */
export async function featureRows(
  rows: AsyncIterable<HistoryRow> | Iterable<HistoryRow>,
  o: { sampleEvery: number; config?: AssetConfig },
): Promise<{ rows: FeatureRow[]; from: number; to: number; entities: number }> {
  const cfg = o.config ?? ASSET_DEFAULTS
  const cells = new Map<string, { cell: ActorCell; period: number; n: number }>()
  const out: FeatureRow[] = []
  let seq = 0,
    from = Infinity,
    to = -Infinity
  const none = (): void => undefined
  for await (const r of rows) {
    from = Math.min(from, r.ts)
    to = Math.max(to, r.ts)
    let c = cells.get(r.entity)
    if (!c)
      cells.set(
        r.entity,
        (c = { cell: new ActorCell(asset, cfg, { kind: 'sensor', id: r.entity }), period: NaN, n: 0 }),
      )
    const p = Math.floor(r.ts / cfg.periodMs)
    c.cell.applyReading(++seq, r.ts, { ts: r.ts, fields: r.fields }, none)
    if (!(p > c.period)) {
      if (Number.isNaN(c.period)) c.period = p
      continue
    }
    c.period = p
    if (++c.n % o.sampleEvery !== 0) continue
    const view = c.cell.query() as { baselinePeriods: number; features: Record<string, number> }
    if (view.baselinePeriods < cfg.baseline.warmupPeriods) continue
    out.push({ entity: r.entity, ts: r.ts, x: ASSET_FEATURES.map((f) => view.features[f] as number) })
  }
  return { rows: out, from, to, entities: cells.size }
}

/** Labels: 1 when a failure follows within the horizon, 0 otherwise, null (left out) while down after a failure. */
export function labelOf(
  row: { entity: string; ts: number },
  failures: readonly Failure[],
  o: Pick<TrainOptions, 'horizonMs' | 'downtimeMs'>,
): 0 | 1 | null {
  for (const f of failures) {
    if (f.entity !== row.entity) continue
    if (row.ts >= f.ts && row.ts < f.ts + o.downtimeMs) return null
    if (f.ts > row.ts && f.ts - row.ts <= o.horizonMs) return 1
  }
  return 0
}

/** Solves A z = b (small, dense, symmetric positive definite) by Gaussian elimination with partial pivoting. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length
  const m = a.map((row, i) => [...row, b[i] as number])
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++)
      if (Math.abs((m[r] as number[])[c] as number) > Math.abs((m[p] as number[])[c] as number)) p = r
    ;[m[c], m[p]] = [m[p] as number[], m[c] as number[]]
    const piv = (m[c] as number[])[c] as number
    for (let r = c + 1; r < n; r++) {
      const f = ((m[r] as number[])[c] as number) / piv
      for (let k = c; k <= n; k++)
        (m[r] as number[])[k] = ((m[r] as number[])[k] as number) - f * ((m[c] as number[])[k] as number)
    }
  }
  const z = new Array<number>(n).fill(0)
  for (let r = n - 1; r >= 0; r--) {
    let s = (m[r] as number[])[n] as number
    for (let k = r + 1; k < n; k++) s -= ((m[r] as number[])[k] as number) * (z[k] as number)
    z[r] = s / ((m[r] as number[])[r] as number)
  }
  return z
}

/** L2-regularised logistic regression (intercept not penalised); returns raw-unit weights and the intercept. */
export function fitLogistic(
  x: number[][],
  y: number[],
  l2: number,
  prior?: readonly number[],
): { intercept: number; weights: number[]; logLoss: number } {
  const n = x.length,
    d = x[0]?.length ?? 0
  if (n === 0 || d === 0)
    throw new ConfigError('history', 'no feature rows: the history is empty or shorter than the baseline warm-up')
  const mean = new Array<number>(d).fill(0),
    sd = new Array<number>(d).fill(0)
  for (const r of x)
    r.forEach((v, j) => {
      mean[j] = (mean[j] as number) + v / n
    })
  for (const r of x)
    r.forEach((v, j) => {
      sd[j] = (sd[j] as number) + (v - (mean[j] as number)) ** 2 / n
    })
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j] as number) || 1
  // The penalty pulls each standardised weight toward the prior's (0 without one).
  const p0 = Array.from({ length: d }, (_, j) => (prior?.[j] ?? 0) * (sd[j] as number))
  const z = x.map((r) => [1, ...r.map((v, j) => (v - (mean[j] as number)) / (sd[j] as number))])
  let w = new Array<number>(d + 1).fill(0)
  for (let it = 0; it < 50; it++) {
    const g = new Array<number>(d + 1).fill(0)
    const h = Array.from({ length: d + 1 }, () => new Array<number>(d + 1).fill(0))
    z.forEach((r, i) => {
      const p = 1 / (1 + Math.exp(-r.reduce((a, v, j) => a + v * (w[j] as number), 0)))
      const e = p - (y[i] as number),
        s = Math.max(p * (1 - p), 1e-9)
      for (let j = 0; j <= d; j++) {
        g[j] = (g[j] as number) + e * (r[j] as number)
        const hj = h[j] as number[]
        for (let k = 0; k <= d; k++) hj[k] = (hj[k] as number) + s * (r[j] as number) * (r[k] as number)
      }
    })
    for (let j = 1; j <= d; j++) {
      g[j] = (g[j] as number) + l2 * ((w[j] as number) - (p0[j - 1] as number))
      ;(h[j] as number[])[j] = ((h[j] as number[])[j] as number) + l2
    }
    const step = solve(h, g)
    w = w.map((v, j) => v - (step[j] as number))
    if (step.every((s) => Math.abs(s) < 1e-8)) break
  }
  let loss = 0
  z.forEach((r, i) => {
    const p = Math.min(
      1 - 1e-12,
      Math.max(1e-12, 1 / (1 + Math.exp(-r.reduce((a, v, j) => a + v * (w[j] as number), 0)))),
    )
    loss -= (y[i] as number) * Math.log(p) + (1 - (y[i] as number)) * Math.log(1 - p)
  })
  const weights = Array.from({ length: d }, (_, j) => (w[j + 1] as number) / (sd[j] as number))
  const intercept = (w[0] as number) - weights.reduce((a, v, j) => a + v * (mean[j] as number), 0)
  return { intercept, weights, logLoss: loss / n }
}

/**
 * Logistic regression with every weight >= 0 (an active set: fit, fix the features that came out negative at 0,
 * refit on the rest, until none is negative). Every asset feature is one-sided evidence of a fault (a level above
 * or below the unit's own baseline, a trend, a spread, an impulse), so a negative weight says "this sign of a
 * fault makes a failure less likely": on a training period with a handful of failures per mode that is an
 * accident of the sample (a mode that happened to be absent, a healthy rough unit), and it hides that mode at
 * run time. Features fixed at 0 weigh 0 in the model file. `pitwall train --non-negative` (opt-in: measured
 * trade-offs in docs/profiles.md).
 */
export function fitLogisticNonNegative(
  x: number[][],
  y: number[],
  l2: number,
  prior?: readonly number[],
): { intercept: number; weights: number[]; logLoss: number } {
  const d = x[0]?.length ?? 0
  let keep = Array.from({ length: d }, (_, j) => j)
  for (;;) {
    const fit = fitLogistic(
      x.map((r) => keep.map((j) => r[j] as number)),
      y,
      l2,
      prior ? keep.map((j) => prior[j] as number) : undefined,
    )
    const negative = keep.filter((_, i) => (fit.weights[i] as number) < 0)
    if (negative.length === 0 || keep.length === negative.length) {
      const weights = new Array<number>(d).fill(0)
      keep.forEach((j, i) => {
        weights[j] = Math.max(0, fit.weights[i] as number)
      })
      return { intercept: fit.intercept, weights, logLoss: fit.logLoss }
    }
    keep = keep.filter((j) => !negative.includes(j))
  }
}

/** The built-in model's weights (ASSET_FEATURES order): the prior a per-family fit is pulled toward. */
export function builtinPrior(): number[] {
  const h = assetModelHeads(ASSET_DEFAULT_MODEL)[0]
  return ASSET_FEATURES.map((f) => h?.weights[f] ?? 0)
}

/** Feature indices (into ASSET_FEATURES) of each head of a per-family model. */
export function headIndices(): Array<{ name: string; idx: number[] }> {
  return Object.entries(ASSET_MODEL_HEADS).map(([name, fields]) => ({
    name,
    idx: ASSET_FEATURES.map((f, j) => ((fields as readonly string[]).includes(featureFamily(f)) ? j : -1)).filter(
      (j) => j >= 0,
    ),
  }))
}

/** Value at quantile q of an ascending-sorted list (0 when empty). */
function quantileOf(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * sorted.length)))] ?? 0
}

/**
 * Which head each failure belongs to, from the features alone (the log says nothing of the failure mode): per
 * head, the sum of its features over the `attributeMs` before the failure, in units of that sum's 99th
 * percentile over healthy samples; the head whose evidence is largest, when it is at least 1 (above what 1 % of
 * healthy hours reach); else none (a sudden failure: nothing to learn from).
 */
export function attributeFailures(
  rows: readonly FeatureRow[],
  failures: readonly Failure[],
  o: Pick<TrainOptions, 'horizonMs' | 'downtimeMs'> & { attributeMs: number; until: number },
): Array<string | null> {
  const heads = headIndices()
  const sum = (x: readonly number[], idx: readonly number[]): number => idx.reduce((a, j) => a + (x[j] as number), 0)
  const neg = heads.map(() => [] as number[])
  const byEntity = new Map<string, FeatureRow[]>()
  for (const r of rows) {
    if (r.ts > o.until) continue
    let l = byEntity.get(r.entity)
    if (!l) byEntity.set(r.entity, (l = []))
    l.push(r)
    if (labelOf(r, failures, o) === 0) heads.forEach((h, i) => (neg[i] as number[]).push(sum(r.x, h.idx)))
  }
  const q = neg.map((v) =>
    Math.max(
      1e-6,
      quantileOf(
        v.sort((a, b) => a - b),
        0.99,
      ),
    ),
  )
  return failures.map((f) => {
    const before = (byEntity.get(f.entity) ?? []).filter((r) => r.ts < f.ts && r.ts >= f.ts - o.attributeMs)
    if (before.length === 0) return null
    let best: string | null = null,
      bestE = 1
    heads.forEach((h, i) => {
      const e = before.reduce((a, r) => a + sum(r.x, h.idx), 0) / before.length / (q[i] as number)
      if (e >= bestE) {
        bestE = e
        best = h.name
      }
    })
    return best
  })
}

export interface HeadFit {
  name: string
  intercept: number
  weights: number[]
  samples: number
  positives: number
  failures: number
  logLoss: number
}

/**
 * Per-family fit: one logistic per head on that head's features only, positives = samples within the horizon
 * of a failure attributed to the head (attributeFailures), samples before failures of other heads left out; each
 * head gets its own operating point (threshold at its negatives' 1 - falseRate quantile). Weights are full length
 * (0 outside the head).
 */
export function fitHeads(
  rows: readonly FeatureRow[],
  failures: readonly Failure[],
  until: number,
  o: Pick<TrainOptions, 'horizonMs' | 'downtimeMs' | 'l2' | 'falseRate' | 'nonNegative'> & {
    attributeMs: number
    prior?: readonly number[]
    priorOnly?: boolean
  },
  threshold: number,
): HeadFit[] {
  const owner = attributeFailures(rows, failures, { ...o, until })
  return headIndices().map((h) => {
    const x: number[][] = [],
      y: number[] = []
    for (const r of rows) {
      if (r.ts + o.horizonMs > until) continue
      let label: 0 | 1 | null = 0
      for (let i = 0; i < failures.length; i++) {
        const f = failures[i] as Failure
        if (f.entity !== r.entity) continue
        if (r.ts >= f.ts && r.ts < f.ts + o.downtimeMs) {
          label = null
          break
        }
        if (f.ts > r.ts && f.ts - r.ts <= o.horizonMs) {
          label = owner[i] === h.name ? 1 : null
          break
        }
      }
      if (label === null) continue
      x.push(h.idx.map((j) => r.x[j] as number))
      y.push(label)
    }
    const nFail = owner.filter((n, i) => n === h.name && (failures[i] as Failure).ts <= until).length
    const weights = new Array<number>(ASSET_FEATURES.length).fill(0)
    const prior = o.prior ? h.idx.map((j) => o.prior?.[j] ?? 0) : undefined
    let fit: { intercept: number; weights: number[]; logLoss: number }
    if (prior && (o.priorOnly || !y.includes(1))) fit = { intercept: 0, weights: prior, logLoss: NaN }
    else if (!y.includes(1))
      return { name: h.name, intercept: -50, weights, samples: x.length, positives: 0, failures: nFail, logLoss: 0 }
    else fit = o.nonNegative ? fitLogisticNonNegative(x, y, o.l2, prior) : fitLogistic(x, y, o.l2, prior)
    h.idx.forEach((j, i) => {
      weights[j] = fit.weights[i] as number
    })
    const negatives = x
      .filter((_, i) => y[i] === 0)
      .map((r) => r.reduce((a, v, j) => a + v * (fit.weights[j] as number), fit.intercept))
      .sort((a, b) => a - b)
    const q = quantileOf(negatives, 1 - o.falseRate)
    return {
      name: h.name,
      intercept: fit.intercept + Math.log(threshold / (100 - threshold)) - q,
      weights,
      samples: x.length,
      positives: y.filter((v) => v === 1).length,
      failures: nFail,
      logLoss: fit.logLoss,
    }
  })
}

/** Warnings with a concrete next step when the held-out figures are poor. */
export function adviseOn(v: TrainedModel['validation'], t: TrainedModel['trained']): string[] {
  const w: string[] = []
  if (t.failures < 10)
    w.push(
      `only ${t.failures} failures in the training period: the fit is weak; give a longer history (--history) or more units`,
    )
  for (const h of t.heads) {
    if (t.model === 'per-family' && h.failures === 0) {
      w.push(
        `no training failure was attributed to the ${h.name} head: it keeps the built-in weights at its own operating point; give a longer history that holds such failures`,
      )
    }
  }
  if (!v) {
    w.push(
      'the held-out period holds no failure, so nothing was validated; raise --validate-share or give a longer history',
    )
    return w
  }
  if (v.recall6h < 0.5) {
    w.push(
      `held-out recall ${v.recall6h.toFixed(2)} (failures warned >= 6 h ahead) is low: raise --false-rate (e.g. ${Math.min(0.05, t.falseRate * 3).toFixed(3)}) for more alerts, ` +
        'and check --log-time: if the log records job completion, use --log-time completion --job-hours <typical job length>',
    )
  }
  if (v.falsePerAssetMonth > 0.5) {
    w.push(
      `held-out false alerts ${v.falsePerAssetMonth.toFixed(2)} per asset-month (> 0.5): lower --false-rate (e.g. ${(t.falseRate / 3).toFixed(4)}) or raise asset.riskHigh.holdPeriods`,
    )
  }
  if (v.medianLeadHours !== null && v.medianLeadHours < 24) {
    w.push(
      `held-out median lead ${v.medianLeadHours.toFixed(1)} h (< 24 h): a shorter --horizon-hours (e.g. 48) often learns the early signs better, or raise --false-rate`,
    )
  }
  return w
}

/** Fits weights and the operating point on the labelled feature rows whose horizon ends by `until` (one logistic). */
function fitUntil(
  fr: { rows: FeatureRow[] },
  failures: readonly Failure[],
  until: number,
  o: Omit<TrainOptions, 'history' | 'maintenance' | 'out'>,
  threshold: number,
): { intercept: number; weights: number[]; logLoss: number; samples: number; positives: number } {
  const x: number[][] = [],
    y: number[] = []
  for (const r of fr.rows) {
    // Labels need the horizon after the sample inside the period: no peeking past `until`.
    if (r.ts + o.horizonMs > until) continue
    const l = labelOf(r, failures, o)
    if (l === null) continue
    x.push(r.x)
    y.push(l)
  }
  const fit = o.nonNegative ? fitLogisticNonNegative(x, y, o.l2) : fitLogistic(x, y, o.l2)
  const negatives = x
    .filter((_, i) => y[i] === 0)
    .map((r) => r.reduce((a, v, j) => a + v * (fit.weights[j] as number), fit.intercept))
    .sort((a, b) => a - b)
  const q = negatives[Math.min(negatives.length - 1, Math.floor((1 - o.falseRate) * negatives.length))] ?? 0
  return {
    intercept: fit.intercept + Math.log(threshold / (100 - threshold)) - q,
    weights: fit.weights,
    logLoss: fit.logLoss,
    samples: x.length,
    positives: y.filter((v) => v === 1).length,
  }
}

/** Trains on the earlier part of the history, validates on the held-out rest through the real profile. */
export async function trainModel(
  rows: () => AsyncIterable<HistoryRow> | Iterable<HistoryRow>,
  failures: readonly Failure[],
  o: Omit<TrainOptions, 'history' | 'maintenance' | 'out'>,
  config: AssetConfig = ASSET_DEFAULTS,
): Promise<TrainedModel> {
  const fr = await featureRows(rows(), { sampleEvery: o.sampleEvery, config })
  const cut = fr.to - o.validateShare * (fr.to - fr.from)
  const threshold = config.riskHigh.threshold
  const kind = o.model ?? TRAIN_DEFAULTS.model
  const weightsOf = (w: readonly number[]): Record<string, number> =>
    Object.fromEntries(ASSET_FEATURES.map((k, j) => [k, w[j] as number]).filter(([, v]) => v !== 0))
  let heads: AssetModelHead[],
    summary: TrainedModel['trained']['heads'],
    samples: number,
    positives: number,
    logLoss: number
  if (kind === 'per-family') {
    const fit = fitHeads(
      fr.rows,
      failures,
      cut,
      { ...o, attributeMs: o.attributeMs ?? TRAIN_DEFAULTS.attributeHours * HOUR, prior: builtinPrior() },
      threshold,
    )
    heads = fit.map((h) => ({ name: h.name, intercept: h.intercept, weights: weightsOf(h.weights) }))
    summary = fit.map((h) => ({ name: h.name, failures: h.failures, samples: h.samples, positives: h.positives }))
    samples = fit.reduce((a, h) => Math.max(a, h.samples), 0)
    positives = fit.reduce((a, h) => a + h.positives, 0)
    logLoss = fit.reduce((a, h) => a + (Number.isFinite(h.logLoss) ? h.logLoss : 0), 0) / fit.length
  } else {
    const fit = fitUntil(fr, failures, cut, o, threshold)
    heads = [{ name: 'all', intercept: fit.intercept, weights: weightsOf(fit.weights) }]
    summary = [
      {
        name: 'all',
        failures: failures.filter((f) => f.ts < cut).length,
        samples: fit.samples,
        positives: fit.positives,
      },
    ]
    ;({ samples, positives, logLoss } = fit)
  }
  const at = new Date().toISOString()
  const model: TrainedModel = {
    format: ASSET_MODEL_FORMAT,
    features: ASSET_FEATURE_SET,
    version: o.version ?? `trained-${at.slice(0, 19).replace(/[-:]/g, '')}`,
    heads,
    trained: {
      at,
      samples,
      positives,
      failures: failures.filter((f) => f.ts < cut).length,
      horizonHours: o.horizonMs / HOUR,
      l2: o.l2,
      logLoss,
      logTime: o.logTime,
      falseRate: o.falseRate,
      trainedUntil: cut,
      threshold,
      weights: o.nonNegative ? 'non-negative' : 'signed',
      model: kind,
      heads: summary,
    },
    validation: null,
    warnings: [],
  }
  const held = failures.filter((f) => f.ts >= cut && f.ts <= fr.to)
  if (held.length > 0) {
    const run = await runAssetProfile(rows(), { config, model })
    const s = scoreLeadTime(run.opens, failures, { from: cut, to: fr.to + 1, assets: fr.entities })
    model.validation = {
      failures: s.failures,
      caught6h: s.caught6h,
      recall6h: s.recall6h,
      medianLeadHours: s.medianLeadHours,
      falseAlerts: s.falseAlerts,
      falsePerAssetMonth: s.falsePerAssetMonth,
      from: cut,
      to: fr.to,
      assets: fr.entities,
    }
  }
  model.warnings = adviseOn(model.validation, model.trained)
  return model
}

/** Trains from the two CSV files and writes the model file. */
export async function train(o: TrainOptions): Promise<TrainedModel> {
  const failures = await readFailures(o.maintenance, o)
  const model = await trainModel(() => historyRows(o.history), failures, o)
  writeFileSync(o.out, `${JSON.stringify(model, null, 2)}\n`)
  return model
}

export const TRAIN_HELP = `usage: pitwall train --history H.csv --maintenance M.csv --out model.json [options]

Fits the asset profile's failure-risk model, validates it on the held-out end of the history through the real
profile, and writes the model file (format ${ASSET_MODEL_FORMAT}, feature set ${ASSET_FEATURE_SET}).

  --history FILE          sensor history CSV: header entity,ts,<field>... (vibration, temperature, pressure,
                          flow, load...; ts in ms), rows in time order
  --maintenance FILE      maintenance log CSV: header entity,ts,action[,mode]; action repair (a failure) or
                          routine (not a failure)
  --out FILE              model file to write (JSON)
  --log-time failure|completion
                          what a repair row's ts means: the failure (default) or the job's completion, in which
                          case the failure is taken --job-hours earlier
  --job-hours H           repair job length for --log-time completion (default ${TRAIN_DEFAULTS.jobHours})
  --horizon-hours H       a sample is positive when a failure follows within H hours (default ${TRAIN_DEFAULTS.horizonHours})
  --downtime-hours H      samples from a failure to H hours after it are left out (default ${TRAIN_DEFAULTS.downtimeHours})
  --validate-share F      held-out share of the time span, at its end (default ${TRAIN_DEFAULTS.validateShare})
  --model per-family|single
                          one logistic per failure family (vibration, temperature, hydraulic: pressure and
                          flow), each on its family's features with its own operating point, the risk the
                          largest head's (default); or one logistic over every feature
  --attribute-hours H     per-family: a training failure belongs to the head whose features stood highest
                          (against their healthy 99th percentile) in the H hours before it (default ${TRAIN_DEFAULTS.attributeHours})
  --false-rate F          share of healthy training samples allowed at or above the alert threshold, per head;
                          sets the operating point (default ${TRAIN_DEFAULTS.falseRate}; single: ${TRAIN_DEFAULTS.singleFalseRate})
  --l2 X                  L2 penalty on standardised weights, toward the built-in model's weights per-family
                          (default ${TRAIN_DEFAULTS.l2}), toward 0 single (default ${TRAIN_DEFAULTS.singleL2})
  --sample-every N        one sample every N completed periods (hours) per entity (default ${TRAIN_DEFAULTS.sampleEvery})
  --version V             model version label (default trained-<UTC time>)
  --non-negative          every weight >= 0 (a sign of a fault never lowers the risk); default: signed weights
  --simulate-days D       first write both CSVs from the asset simulator (D days), then train on them
  --seed N                simulator seed (default 1)
  --entities N            simulated units (default 40)
  --fleet                 simulate the mixed fleet (failure modes, rough units, seasons)
  -h, --help              this text

Prints one JSON line (the model's training and validation figures) and, on stderr, a warning with a suggestion
for each poor held-out figure (recall < 0.5, > 0.5 false alerts per asset-month, median lead < 24 h).`

const STRING_FLAGS = [
  'history',
  'maintenance',
  'out',
  'log-time',
  'job-hours',
  'horizon-hours',
  'downtime-hours',
  'validate-share',
  'false-rate',
  'l2',
  'sample-every',
  'version',
  'simulate-days',
  'seed',
  'entities',
  'model',
  'attribute-hours',
] as const

/** The flags of `pitwall train` (their meaning is in TRAIN_HELP). */
export const TRAIN_SPEC: CommandSpec = {
  usage: 'pitwall train --history H.csv --maintenance M.csv --out model.json [options]',
  summary: "fit the asset profile's failure-risk model",
  flags: [
    ...STRING_FLAGS.map((name) => ({ name, type: 'string' as const, help: '' })),
    { name: 'fleet', type: 'boolean', help: '' },
    { name: 'non-negative', type: 'boolean', help: '' },
    { name: 'help', type: 'boolean', short: 'h', help: 'this text' },
  ],
}

/** `pitwall train ...`: returns the exit code. */
export async function trainMain(argv: string[]): Promise<number> {
  try {
    const parsed = parseCommand(argv, TRAIN_SPEC)
    if (parsed.help) {
      process.stdout.write(`${TRAIN_HELP}\n`)
      return 0
    }
    const v = parsed.values as Partial<Record<string, string>> & { fleet?: boolean; 'non-negative'?: boolean }
    const need = (k: 'history' | 'maintenance' | 'out'): string => {
      const s = v[k]
      if (!s) throw new ConfigError(`--${k}`, 'is required')
      return s
    }
    const num = (k: keyof typeof v, d: number, min: number, max = Infinity): number => {
      const raw = v[k]
      const n = raw === undefined ? d : Number(raw)
      if (typeof raw === 'boolean' || !Number.isFinite(n) || n < min || n > max)
        throw new ConfigError(`--${String(k)}`, `must be a number in [${min}, ${max}], got ${String(raw)}`)
      return n
    }
    const logTime = v['log-time'] ?? TRAIN_DEFAULTS.logTime
    if (logTime !== 'failure' && logTime !== 'completion')
      throw new ConfigError('--log-time', `must be failure or completion, got ${logTime}`)
    const kind = v.model ?? TRAIN_DEFAULTS.model
    if (kind !== 'per-family' && kind !== 'single')
      throw new ConfigError('--model', `must be per-family or single, got ${kind}`)
    const single = kind === 'single'
    const o: TrainOptions = {
      history: need('history'),
      maintenance: need('maintenance'),
      out: need('out'),
      model: kind,
      attributeMs: num('attribute-hours', TRAIN_DEFAULTS.attributeHours, 1) * HOUR,
      horizonMs: num('horizon-hours', TRAIN_DEFAULTS.horizonHours, 1) * HOUR,
      l2: num('l2', single ? TRAIN_DEFAULTS.singleL2 : TRAIN_DEFAULTS.l2, 0),
      sampleEvery: Math.round(num('sample-every', TRAIN_DEFAULTS.sampleEvery, 1)),
      logTime,
      jobMs: num('job-hours', TRAIN_DEFAULTS.jobHours, 0) * HOUR,
      downtimeMs: num('downtime-hours', TRAIN_DEFAULTS.downtimeHours, 0) * HOUR,
      validateShare: num('validate-share', TRAIN_DEFAULTS.validateShare, 0.05, 0.9),
      falseRate: num('false-rate', single ? TRAIN_DEFAULTS.singleFalseRate : TRAIN_DEFAULTS.falseRate, 1e-5, 0.5),
    }
    if (v.version !== undefined) o.version = v.version
    if (v['non-negative']) o.nonNegative = true
    if (v['simulate-days'] !== undefined) {
      const n = await writeAssetHistory({
        seed: Math.round(num('seed', 1, -Number.MAX_SAFE_INTEGER)),
        entities: Math.round(num('entities', 40, 1)),
        days: num('simulate-days', 14, 0.01),
        history: o.history,
        maintenance: o.maintenance,
        fleet: v.fleet ?? false,
      })
      process.stderr.write(
        `train: wrote ${n} simulated readings to ${o.history} and the maintenance log to ${o.maintenance}\n`,
      )
    }
    const m = await train(o)
    for (const w of m.warnings) process.stderr.write(`train: warning: ${w}\n`)
    process.stdout.write(
      `${JSON.stringify({ out: o.out, version: m.version, ...m.trained, validation: m.validation, warnings: m.warnings.length })}\n`,
    )
    return 0
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nrun \`pitwall train --help\` for every flag\n`)
      return 2
    }
    const code = err instanceof PitwallError ? err.code : 'PW_FAILED'
    process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}
