/**
 * `pitwall train`: fits the `asset` profile's failure-risk model offline from a CSV of sensor history plus a
 * maintenance log, and writes a versioned JSON model file that a deployment loads at start
 * (`PITWALL_PROFILE_CONFIG='{"asset":{"model":<file contents>}}'`, docs/profiles.md).
 *
 *   pitwall train --history H.csv --maintenance M.csv --out model.json [--horizon-hours 12] [--version V] [--l2 1]
 *   pitwall train --simulate-days 14 [--seed 1] [--entities 40] --history H.csv --maintenance M.csv --out model.json
 *     (first writes the two CSVs from the asset simulator, then trains on them)
 *
 * History CSV: header `entity,ts,vibration,temperature[,pressure,flow]`, rows in time order per entity.
 * Maintenance CSV: header `entity,ts,action` with action `repair` or `routine`.
 *
 * Features are computed by the asset profile itself (its handler and live view, run over the history in memory),
 * so training and runtime cannot disagree on what a feature is. Label: 1 when a repair of the same entity follows
 * within the horizon, else 0. Model: L2-regularised logistic regression on standardised features (Newton's
 * method), written back in raw units: risk = 100 / (1 + exp(-(intercept + sum w_f x_f))).
 */
import { createReadStream, createWriteStream, writeFileSync, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { ConfigError, PitwallError, PROFILES } from '../../actors/mod.js'
import type { ActorContext, ActorDefinition, Reading } from '../../actors/mod.js'
import { AssetSimulator } from './asset.js'

export interface TrainOptions {
  history: string
  maintenance: string
  out: string
  horizonMs: number
  version?: string
  l2: number
  /** One sample every `sampleEvery` readings of an entity. */
  sampleEvery: number
}

export interface TrainedModel {
  version: string
  intercept: number
  weights: Record<string, number>
  trained: { at: string; samples: number; positives: number; horizonHours: number; l2: number; logLoss: number;
    /** At the profile's risk_high threshold (70), on the training samples. */
    precision: number; recall: number }
}

type AnyDef = ActorDefinition<unknown, unknown>

function assetDef(): AnyDef {
  const d = PROFILES.find((p) => p.profile === 'asset')
  if (!d) throw new ConfigError('profile', 'the asset profile is not registered')
  return d as unknown as AnyDef
}

async function* csvRows(path: string): AsyncGenerator<Record<string, string>> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity })
  let header: string[] | undefined
  let line = 0
  for await (const raw of rl) {
    line++
    const text = raw.trim()
    if (text === '') continue
    const cells = text.split(',')
    if (!header) {
      header = cells
      continue
    }
    if (cells.length !== header.length) throw new ConfigError(path, `line ${line}: ${cells.length} cells, header has ${header.length}`)
    yield Object.fromEntries(header.map((h, i) => [h, cells[i] as string]))
  }
}

/** Writes the asset simulator's history and maintenance log as the two training CSVs. */
export async function writeAssetHistory(o: { seed: number; entities: number; days: number; history: string; maintenance: string }): Promise<number> {
  const sim = new AssetSimulator({ seed: o.seed, locomotives: o.entities, anomalies: true })
  const end = sim.startTs + o.days * 86_400_000
  const out: WriteStream = createWriteStream(o.history)
  out.write('entity,ts,vibration,temperature,pressure,flow\n')
  let n = 0
  for (let it = sim.next(); it.reading.ts < end; it = sim.next()) {
    const f = it.reading.fields
    if (!out.write(`${it.id},${it.reading.ts},${String(f['vibration'])},${String(f['temperature'])},${String(f['pressure'])},${String(f['flow'])}\n`)) await once(out, 'drain')
    n++
  }
  out.end()
  await once(out, 'finish')
  writeFileSync(o.maintenance, `entity,ts,action\n${sim.maintenance(end).map((m) => `${m.entity},${m.ts},${m.action}`).join('\n')}\n`)
  return n
}

/** Feature rows computed by the asset profile over the history, with labels from the maintenance log. */
export async function featureRows(o: Pick<TrainOptions, 'history' | 'maintenance' | 'horizonMs' | 'sampleEvery'>): Promise<{ names: string[]; x: number[][]; y: number[] }> {
  const repairs = new Map<string, number[]>()
  for await (const r of csvRows(o.maintenance)) {
    const ts = Number(r['ts'])
    if (!r['entity'] || !Number.isFinite(ts)) throw new ConfigError(o.maintenance, 'rows need entity and a numeric ts')
    if (r['action'] !== 'repair') continue
    let l = repairs.get(r['entity'])
    if (!l) repairs.set(r['entity'], l = [])
    l.push(ts)
  }
  for (const l of repairs.values()) l.sort((a, b) => a - b)
  const def = assetDef()
  const cfg = def.defaults
  const cells = new Map<string, { state: unknown; seq: number; max: number; n: number }>()
  let names: string[] = []
  const x: number[][] = []
  const y: number[] = []
  for await (const r of csvRows(o.history)) {
    const id = r['entity'] as string
    const ts = Number(r['ts'])
    if (!id || !Number.isFinite(ts)) throw new ConfigError(o.history, 'rows need entity and a numeric ts')
    let c = cells.get(id)
    if (!c) cells.set(id, c = { state: def.init({ kind: 'sensor', id }, cfg), seq: 0, max: -Infinity, n: 0 })
    const fields: Reading['fields'] = {}
    for (const k of ['vibration', 'temperature', 'pressure', 'flow']) {
      const v = Number(r[k])
      if (r[k] !== undefined && r[k] !== '' && Number.isFinite(v)) fields[k] = v
    }
    c.seq++
    c.max = Math.max(c.max, ts)
    const ctx: ActorContext = { entity: { kind: 'sensor', id }, profile: 'asset', seq: c.seq, procTime: ts, watermark: c.max - def.allowedLatenessMs(cfg),
      maxEventTime: c.max, emit: () => undefined, setTimer: () => undefined, cancelTimer: () => undefined, reference: () => undefined }
    def.onReading(c.state, { ts, fields }, ctx, cfg)
    if (++c.n % o.sampleEvery !== 0 || !def.query) continue
    const view = def.query(c.state, { entity: ctx.entity, watermark: ctx.watermark, lastSeq: c.seq }, cfg) as { features: Record<string, number> }
    const keys = Object.keys(view.features)
    if (keys.length === 0) continue
    if (names.length === 0) names = keys
    x.push(names.map((k) => view.features[k] as number))
    const next = (repairs.get(id) ?? []).find((t) => t >= ts)
    y.push(next !== undefined && next - ts <= o.horizonMs ? 1 : 0)
  }
  return { names, x, y }
}

/** Solves A z = b (small, dense, symmetric positive definite) by Gaussian elimination with partial pivoting. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length
  const m = a.map((row, i) => [...row, b[i] as number])
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs((m[r] as number[])[c] as number) > Math.abs((m[p] as number[])[c] as number)) p = r
    ;[m[c], m[p]] = [m[p] as number[], m[c] as number[]]
    const piv = (m[c] as number[])[c] as number
    for (let r = c + 1; r < n; r++) {
      const f = ((m[r] as number[])[c] as number) / piv
      for (let k = c; k <= n; k++) (m[r] as number[])[k] = ((m[r] as number[])[k] as number) - f * ((m[c] as number[])[k] as number)
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
export function fitLogistic(x: number[][], y: number[], l2: number): { intercept: number; weights: number[]; logLoss: number } {
  const n = x.length, d = x[0]?.length ?? 0
  if (n === 0 || d === 0) throw new ConfigError('history', 'no feature rows: the history is empty or too short for the feature window')
  const mean = new Array<number>(d).fill(0), sd = new Array<number>(d).fill(0)
  for (const r of x) r.forEach((v, j) => { mean[j] = (mean[j] as number) + v / n })
  for (const r of x) r.forEach((v, j) => { sd[j] = (sd[j] as number) + (v - (mean[j] as number)) ** 2 / n })
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j] as number) || 1
  const z = x.map((r) => [1, ...r.map((v, j) => (v - (mean[j] as number)) / (sd[j] as number))])
  let w = new Array<number>(d + 1).fill(0)
  for (let it = 0; it < 50; it++) {
    const g = new Array<number>(d + 1).fill(0)
    const h = Array.from({ length: d + 1 }, () => new Array<number>(d + 1).fill(0))
    z.forEach((r, i) => {
      const p = 1 / (1 + Math.exp(-r.reduce((a, v, j) => a + v * (w[j] as number), 0)))
      const e = p - (y[i] as number), s = Math.max(p * (1 - p), 1e-9)
      for (let j = 0; j <= d; j++) {
        g[j] = (g[j] as number) + e * (r[j] as number)
        const hj = h[j] as number[]
        for (let k = 0; k <= d; k++) hj[k] = (hj[k] as number) + s * (r[j] as number) * (r[k] as number)
      }
    })
    for (let j = 1; j <= d; j++) {
      g[j] = (g[j] as number) + l2 * (w[j] as number)
      ;(h[j] as number[])[j] = ((h[j] as number[])[j] as number) + l2
    }
    const step = solve(h, g)
    w = w.map((v, j) => v - (step[j] as number))
    if (step.every((s) => Math.abs(s) < 1e-8)) break
  }
  let loss = 0
  z.forEach((r, i) => {
    const p = Math.min(1 - 1e-12, Math.max(1e-12, 1 / (1 + Math.exp(-r.reduce((a, v, j) => a + v * (w[j] as number), 0)))))
    loss -= (y[i] as number) * Math.log(p) + (1 - (y[i] as number)) * Math.log(1 - p)
  })
  const weights = Array.from({ length: d }, (_, j) => (w[j + 1] as number) / (sd[j] as number))
  const intercept = (w[0] as number) - weights.reduce((a, v, j) => a + v * (mean[j] as number), 0)
  return { intercept, weights, logLoss: loss / n }
}

/** Trains and writes the model file. */
export async function train(o: TrainOptions): Promise<TrainedModel> {
  const { names, x, y } = await featureRows(o)
  const fit = fitLogistic(x, y, o.l2)
  let tp = 0, fp = 0, fn = 0
  x.forEach((r, i) => {
    const risk = 100 / (1 + Math.exp(-(fit.intercept + r.reduce((a, v, j) => a + v * (fit.weights[j] as number), 0))))
    const hit = risk >= 70
    if (hit && y[i] === 1) tp++
    else if (hit) fp++
    else if (y[i] === 1) fn++
  })
  const at = new Date().toISOString()
  const model: TrainedModel = {
    version: o.version ?? `trained-${at.slice(0, 19).replace(/[-:]/g, '')}`,
    intercept: fit.intercept,
    weights: Object.fromEntries(names.map((k, j) => [k, fit.weights[j] as number])),
    trained: { at, samples: x.length, positives: y.filter((v) => v === 1).length, horizonHours: o.horizonMs / 3_600_000, l2: o.l2,
      logLoss: fit.logLoss, precision: tp + fp === 0 ? 1 : tp / (tp + fp), recall: tp + fn === 0 ? 1 : tp / (tp + fn) },
  }
  writeFileSync(o.out, `${JSON.stringify(model, null, 2)}\n`)
  return model
}

export const TRAIN_USAGE = 'usage: pitwall train --history H.csv --maintenance M.csv --out model.json [--horizon-hours 12] [--version V] [--l2 1] [--sample-every 5] [--simulate-days D --seed N --entities N]'

/** `pitwall train ...`: returns the exit code. */
export async function trainMain(argv: string[]): Promise<number> {
  const vals = new Map<string, string>()
  for (let i = 0; i < argv.length; i += 2) vals.set(argv[i] as string, argv[i + 1] ?? '')
  const known = ['--history', '--maintenance', '--out', '--horizon-hours', '--version', '--l2', '--sample-every', '--simulate-days', '--seed', '--entities']
  try {
    for (const k of vals.keys()) if (!known.includes(k)) throw new ConfigError(k, `unknown option; known: ${known.join(' ')}`)
    const need = (k: string): string => {
      const v = vals.get(k)
      if (!v) throw new ConfigError(k, 'is required')
      return v
    }
    const num = (k: string, d: number, min: number): number => {
      const v = vals.has(k) ? Number(vals.get(k)) : d
      if (!Number.isFinite(v) || v < min) throw new ConfigError(k, `must be a number >= ${min}`)
      return v
    }
    const o: TrainOptions = { history: need('--history'), maintenance: need('--maintenance'), out: need('--out'),
      horizonMs: num('--horizon-hours', 12, 0.1) * 3_600_000, l2: num('--l2', 1, 0), sampleEvery: Math.round(num('--sample-every', 5, 1)) }
    const v = vals.get('--version')
    if (v !== undefined) o.version = v
    if (vals.has('--simulate-days')) {
      const n = await writeAssetHistory({ seed: Math.round(num('--seed', 1, -Number.MAX_SAFE_INTEGER)), entities: Math.round(num('--entities', 40, 1)),
        days: num('--simulate-days', 14, 0.01), history: o.history, maintenance: o.maintenance })
      process.stderr.write(`train: wrote ${n} simulated readings to ${o.history} and the maintenance log to ${o.maintenance}\n`)
    }
    const m = await train(o)
    process.stdout.write(`${JSON.stringify({ out: o.out, version: m.version, ...m.trained })}\n`)
    return 0
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n${TRAIN_USAGE}\n`)
      return 2
    }
    const code = err instanceof PitwallError ? err.code : 'PW_FAILED'
    process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}
