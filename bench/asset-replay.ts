/**
 * Sweeps the asset profile's alert defaults and `pitwall train`'s operating point on the independent locomotive
 * fleet (bench/eval/asset-README.md) without re-running the profile per setting: the profile's own hourly feature
 * rows (the real handler through `featureRows`, one row per completed period and unit, what `pitwall train`
 * samples) are computed once per seed over the whole run; each variant fits a model on the training period (as
 * `pitwall train` does, held-out share 0.3), replays `risk_high`'s hold / hysteresis / calm-run logic over the
 * rows and scores the test period by the evaluation's rules (`asset_danger` left out). With the built-in model
 * it reproduces `bench/asset-eval-run.ts`'s figures; use that one for reports.
 *
 *   node dist/bench/asset-replay.js [--seeds tuning|heldout|1,2] [--units 60] [--variants JSON] [--cache DIR]
 *
 * A variant: {"model": "trained"|"builtin", "heads": true (per-family) | false (single), "falseRate", "l2", "prior":
 * "shrink" (toward the built-in weights, default) | "only" (built-in weights, fitted operating point) | "none",
 * "attributeHours", "horizonHours", "validateShare", "nonNegative", "hold", "hysteresis", "clear"}; missing keys take
 * `pitwall train`'s and the profile's current defaults. `--cache DIR` keeps each seed's feature rows there (a
 * JSON file per seed, units and feature set) so that a sweep computes them once. Tune on tuning seeds only.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ASSET_DEFAULTS,
  ASSET_FEATURES,
  DEFAULT_MODEL,
  featureFamily,
  modelHeads,
  MODEL_FEATURE_SET as ASSET_FEATURE_SET,
} from '../actors/kinds/sensor/asset.js'
import { ConfigError } from '../actors/errors.js'
import { AssetFleet, DAY_MS, type FailureTruth, type MaintenanceEntry } from './eval/asset-scenario.js'
import { HELDOUT_SEEDS, TUNING_SEEDS } from './eval/asset-eval.js'
import {
  builtinPrior,
  featureRows,
  fitHeads,
  fitLogistic,
  fitLogisticNonNegative,
  labelOf,
  TRAIN_DEFAULTS,
  type FeatureRow,
} from '../cmd/train.js'

const HOUR = 3_600_000
const FAMILIES: Record<string, readonly string[]> = {
  bearing: ['vibration'],
  cooling: ['temperature'],
  hydraulic: ['pressure', 'flow'],
}

export interface Variant {
  model?: 'trained' | 'builtin'
  falseRate?: number
  nonNegative?: boolean
  hold?: number
  hysteresis?: number
  clear?: number
  /** Per-family heads (fitHeads) instead of one logistic; attributeHours: the span before a failure that attributes it to a head. */
  heads?: boolean
  attributeHours?: number
  horizonHours?: number
  prior?: 'none' | 'shrink' | 'only'
  l2?: number
  validateShare?: number
}

interface Head {
  intercept: number
  weights: number[]
}

interface SeedRun {
  rows: FeatureRow[]
  failures: FailureTruth[]
  maintenance: MaintenanceEntry[]
  odd: string[]
  units: number
  testStart: number
  testDays: number
}

/** The profile's feature rows over one seed's whole run, with its ground truth. */
export async function seedRun(seed: number, units: number, days = 72, cacheDir?: string): Promise<SeedRun> {
  const file =
    cacheDir === undefined ? undefined : join(cacheDir, `asset-rows-${seed}-${units}-${days}-${ASSET_FEATURE_SET}.json`)
  if (file !== undefined && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as SeedRun
  const run = await computeSeedRun(seed, units, days)
  if (file !== undefined) writeFileSync(file, JSON.stringify(run))
  return run
}

async function computeSeedRun(seed: number, units: number, days: number): Promise<SeedRun> {
  const fleet = new AssetFleet({ seed, units, days })
  function* rows(): Generator<{ entity: string; ts: number; fields: Record<string, number> }> {
    for (const { entity, reading } of fleet.readings())
      yield { entity, ts: reading.ts, fields: reading.fields as Record<string, number> }
  }
  const fr = await featureRows(rows(), { sampleEvery: 1 })
  return {
    rows: fr.rows,
    failures: fleet.failures(),
    maintenance: fleet.maintenance(),
    odd: fleet
      .unitInfo()
      .filter((u) => u.character !== 'normal')
      .map((u) => u.entity),
    units,
    testStart: fleet.startTs + (days / 2) * DAY_MS,
    testDays: days / 2,
  }
}

/** Fits on the training period as `pitwall train` does (held-out share, horizon, downtime, operating point). */
function fit(r: SeedRun, v: Variant): Head[] {
  if (v.model === 'builtin')
    return modelHeads(DEFAULT_MODEL).map((h) => ({
      intercept: h.intercept,
      weights: ASSET_FEATURES.map((f) => h.weights[f] ?? 0),
    }))
  const fails = r.maintenance
    .filter((m) => m.action === 'repair' && m.ts < r.testStart)
    .map((m) => ({ entity: m.entity, ts: m.ts }))
  const train = r.rows.filter((x) => x.ts < r.testStart)
  const from = train[0]?.ts ?? r.testStart
  const cut = r.testStart - (v.validateShare ?? TRAIN_DEFAULTS.validateShare) * (r.testStart - from)
  const o = {
    horizonMs: (v.horizonHours ?? TRAIN_DEFAULTS.horizonHours) * HOUR,
    downtimeMs: TRAIN_DEFAULTS.downtimeHours * HOUR,
  }
  if (v.heads ?? TRAIN_DEFAULTS.model === 'per-family') {
    const prior = v.prior === 'none' ? {} : { prior: builtinPrior(), priorOnly: v.prior === 'only' }
    return fitHeads(
      train,
      fails,
      cut,
      {
        ...o,
        l2: v.l2 ?? TRAIN_DEFAULTS.l2,
        falseRate: v.falseRate ?? TRAIN_DEFAULTS.falseRate,
        nonNegative: v.nonNegative ?? false,
        attributeMs: (v.attributeHours ?? TRAIN_DEFAULTS.attributeHours) * HOUR,
        ...prior,
      },
      ASSET_DEFAULTS.riskHigh.threshold,
    )
  }
  const x: number[][] = [],
    y: number[] = []
  for (const row of train) {
    if (row.ts + o.horizonMs > cut) continue
    const l = labelOf(row, fails, o)
    if (l === null) continue
    x.push(row.x)
    y.push(l)
  }
  const f = (v.nonNegative ? fitLogisticNonNegative : fitLogistic)(x, y, v.l2 ?? TRAIN_DEFAULTS.singleL2)
  const neg = x
    .filter((_, i) => y[i] === 0)
    .map((row) => row.reduce((a, val, j) => a + val * (f.weights[j] as number), f.intercept))
    .sort((a, b) => a - b)
  const q =
    neg[Math.min(neg.length - 1, Math.floor((1 - (v.falseRate ?? TRAIN_DEFAULTS.singleFalseRate)) * neg.length))] ?? 0
  const t = ASSET_DEFAULTS.riskHigh.threshold
  return [{ intercept: f.intercept + Math.log(t / (100 - t)) - q, weights: f.weights }]
}

/** risk_high openings (with the top reason's family) replayed over the rows. */
function openings(
  r: SeedRun,
  heads: readonly Head[],
  v: Variant,
): Array<{ entity: string; ts: number; family: string | null }> {
  const rh = ASSET_DEFAULTS.riskHigh
  const hold = v.hold ?? rh.holdPeriods,
    clear = v.clear ?? rh.clearPeriods,
    low = rh.threshold - (v.hysteresis ?? rh.hysteresis)
  const st = new Map<string, { open: boolean; hot: number; cool: number }>()
  const out: Array<{ entity: string; ts: number; family: string | null }> = []
  for (const row of r.rows) {
    let s = st.get(row.entity)
    if (!s) st.set(row.entity, (s = { open: false, hot: 0, cool: 0 }))
    let m = heads[0] as Head,
      lg = -Infinity
    for (const h of heads) {
      const l = row.x.reduce((a, val, j) => a + val * (h.weights[j] as number), h.intercept)
      if (l > lg) {
        lg = l
        m = h
      }
    }
    const risk = 100 / (1 + Math.exp(-lg))
    if (!s.open) {
      s.hot = risk >= rh.threshold ? s.hot + 1 : 0
      if (s.hot < hold) continue
      s.open = true
      s.cool = 0
      let best = 0,
        family: string | null = null
      row.x.forEach((val, j) => {
        const c = val * (m.weights[j] as number)
        if (c > best) {
          best = c
          family = featureFamily(ASSET_FEATURES[j] as string)
        }
      })
      out.push({ entity: row.entity, ts: row.ts, family })
    } else if (risk <= low) {
      if (++s.cool >= clear) {
        s.open = false
        s.hot = 0
      }
    } else s.cool = 0
  }
  return out
}

/** Scores one variant over the seeds by the evaluation's rules (caught 1-72 h ahead, warned >= 6 h, false alerts). */
export function scoreVariant(runs: readonly SeedRun[], v: Variant): Record<string, unknown> {
  const modes: Record<string, { warned: number; caught: number; total: number }> = {}
  const leads: number[] = []
  let falses = 0,
    odd = 0,
    assetMonths = 0,
    right = 0,
    trueAlerts = 0,
    opensNearCaught = 0,
    caughtPredictable = 0
  for (const r of runs) {
    const opens = openings(r, fit(r, v), v).filter((o) => o.ts >= r.testStart)
    assetMonths += (r.units * r.testDays) / 30
    for (const f of r.failures.filter((x) => x.ts >= r.testStart)) {
      const m = (modes[f.mode] ??= { warned: 0, caught: 0, total: 0 })
      m.total++
      const os = opens.filter((o) => o.entity === f.entity && o.ts >= f.ts - 72 * HOUR && o.ts <= f.ts - HOUR)
      if (os.length === 0) continue
      m.caught++
      const lead = (f.ts - Math.min(...os.map((o) => o.ts))) / HOUR
      if (lead >= 6) m.warned++
      const fam = FAMILIES[f.mode]
      if (!fam) continue
      leads.push(lead)
      caughtPredictable++
      opensNearCaught += opens.filter((o) => o.entity === f.entity && o.ts >= f.ts - 72 * HOUR && o.ts <= f.ts).length
      for (const o of os) {
        trueAlerts++
        if (o.family !== null && fam.includes(o.family)) right++
      }
    }
    for (const o of opens) {
      if (r.failures.some((f) => f.entity === o.entity && f.ts >= o.ts && f.ts - o.ts <= 72 * HOUR)) continue
      falses++
      if (r.odd.includes(o.entity)) odd++
    }
  }
  leads.sort((a, b) => a - b)
  const pred = Object.keys(FAMILIES).map((k) => modes[k] ?? { warned: 0, caught: 0, total: 0 })
  const r3 = (x: number): number => Math.round(x * 1000) / 1000
  return {
    variant: v,
    warned6h: r3(
      pred.reduce((a, m) => a + m.warned, 0) /
        Math.max(
          1,
          pred.reduce((a, m) => a + m.total, 0),
        ),
    ),
    modes: Object.fromEntries(Object.entries(modes).map(([k, m]) => [k, `${m.warned}/${m.caught}/${m.total}`])),
    medianLeadH: leads.length ? r3(leads[Math.floor(leads.length / 2)] as number) : null,
    falsePerAssetMonth: r3(falses / assetMonths),
    falseOnOddUnits: odd,
    opensPerCaught: caughtPredictable ? r3(opensNearCaught / caughtPredictable) : null,
    rightFamily: trueAlerts ? r3(right / trueAlerts) : null,
  }
}

function parse(argv: readonly string[]): {
  seeds: number[]
  units: number
  variants: Variant[]
  cache: string | undefined
} {
  const o = {
    seeds: [...TUNING_SEEDS] as number[],
    units: 60,
    variants: [{}, { model: 'builtin' }] as Variant[],
    cache: undefined as string | undefined,
  }
  for (let i = 0; i < argv.length; i += 2) {
    const a = argv[i],
      v = argv[i + 1]
    if (v === undefined) throw new ConfigError(String(a), 'needs a value')
    if (a === '--seeds')
      o.seeds = v === 'tuning' ? [...TUNING_SEEDS] : v === 'heldout' ? [...HELDOUT_SEEDS] : v.split(',').map(Number)
    else if (a === '--units') o.units = Number(v)
    else if (a === '--variants') o.variants = JSON.parse(v) as Variant[]
    else if (a === '--cache') o.cache = v
    else throw new ConfigError(String(a), 'unknown flag (--seeds, --units, --variants, --cache)')
  }
  if (o.seeds.some((s) => !Number.isInteger(s)))
    throw new ConfigError('--seeds', 'tuning, heldout or comma-separated integers')
  if (!Number.isInteger(o.units) || o.units < 4) throw new ConfigError('--units', 'must be an integer >= 4')
  if (!Array.isArray(o.variants)) throw new ConfigError('--variants', 'must be a JSON array of variants')
  return o
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  let o: ReturnType<typeof parse>
  try {
    o = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(
      `${err instanceof Error ? err.message : String(err)}\nusage: node dist/bench/asset-replay.js [--seeds tuning|heldout|1,2] [--units 60] [--variants JSON] [--cache DIR]\n`,
    )
    process.exit(2)
  }
  const runs: SeedRun[] = []
  for (const seed of o.seeds) {
    runs.push(await seedRun(seed, o.units, 72, o.cache))
    process.stderr.write(`seed ${seed}: ${runs[runs.length - 1]?.rows.length ?? 0} feature rows\n`)
  }
  for (const v of o.variants) process.stdout.write(`${JSON.stringify(scoreVariant(runs, v))}\n`)
}
