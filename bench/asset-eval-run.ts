/**
 * The asset bench (issue 20): the `asset` profile's risk model on a fleet split by time into a training and a
 * test period, through the real profile (one ActorCell per unit, sites/simulate/asset-score.ts). For each seed:
 * `pitwall train`'s core fits a model on the training period's history and maintenance log, then the trained
 * model, the built-in default model and the naive baseline (hourly vibration or temperature vs its own 30-day
 * median, 4 robust sigmas) run over the whole history and are scored on the test period only: a failure is
 * caught when an alert opened 1-72 h before it; recall counts those warned >= 6 h ahead; false alerts per
 * asset-month; reasons' family vs the failure mode. Predictable failures (bearing, cooling, hydraulic) and
 * sudden ones are reported apart.
 *
 * Fleet: the project's own mixed-fleet simulator (`AssetSimulator` with `fleet: true`). Seeds 1-3 are the
 * tuning seeds (what the defaults were tuned on), 101-103 held out.
 */
import { AssetSimulator, ASSET_FAILURE_MODES } from '../sites/simulate/asset.js'
import { naiveBaseline, runAssetProfile, scoreLeadTime, type AlertOpen, type Failure, type HistoryRow, type LeadScore } from '../sites/simulate/asset-score.js'
import { TRAIN_DEFAULTS, trainModel, type TrainedModel } from '../sites/simulate/train.js'

export const ASSET_TUNING_SEEDS = [1, 2, 3] as const
export const ASSET_HELDOUT_SEEDS = [101, 102, 103] as const
const DAY = 86_400_000

export interface AssetBenchOptions { seeds: readonly number[]; units: number; days: number; trainDays: number; periodMs: number }

interface Split { predictable: LeadScore; sudden: { failures: number; caught: number } }
export interface AssetBenchReport {
  options: AssetBenchOptions
  trained: Split; builtin: Split; naive: Split
  models: Array<Pick<TrainedModel, 'version' | 'validation' | 'warnings'>>
}

function merge(parts: LeadScore[]): LeadScore {
  // Pools the counts of several seeds; medians over the pooled leads are not recoverable, so the median is the
  // failure-weighted median of the seeds' medians (documented in docs/profiles.md).
  const sum = (f: (s: LeadScore) => number): number => parts.reduce((a, s) => a + f(s), 0)
  const failures = sum((s) => s.failures), caught6h = sum((s) => s.caught6h), alerts = sum((s) => s.alerts), falseAlerts = sum((s) => s.falseAlerts)
  const months = sum((s) => (s.falsePerAssetMonth > 0 ? s.falseAlerts / s.falsePerAssetMonth : 0))
  const leads = parts.flatMap((s) => (s.medianLeadHours === null ? [] : Array<number>(s.caught).fill(s.medianLeadHours))).sort((a, b) => a - b)
  const byMode: LeadScore['byMode'] = {}
  for (const s of parts) {
    for (const [m, v] of Object.entries(s.byMode)) {
      const t = byMode[m] ??= { failures: 0, caught6h: 0, recall6h: 0, medianLeadHours: null }
      t.failures += v.failures
      t.caught6h += v.caught6h
    }
  }
  for (const v of Object.values(byMode)) v.recall6h = v.failures ? v.caught6h / v.failures : 1
  const rf = parts.filter((s) => s.rightFamily !== null)
  return { failures, caught: sum((s) => s.caught), caught6h, recall6h: failures ? caught6h / failures : 1, medianLeadHours: leads[Math.floor(leads.length / 2)] ?? null,
    falseAlerts, alerts, falsePerAssetMonth: months > 0 ? falseAlerts / months : (falseAlerts > 0 ? Infinity : 0),
    rightFamily: rf.length ? rf.reduce((a, s) => a + (s.rightFamily as number) * s.caught, 0) / Math.max(1, rf.reduce((a, s) => a + s.caught, 0)) : null, byMode }
}

function split(opens: AlertOpen[], failures: Failure[], from: number, to: number, assets: number): { p: LeadScore; s: { failures: number; caught: number } } {
  const predictable = failures.filter((f) => f.mode !== 'sudden')
  const sudden = failures.filter((f) => f.mode === 'sudden')
  const p = scoreLeadTime(opens, predictable, { from, to, assets })
  // False alerts are judged against every failure (an alert before a sudden failure is not false).
  const all = scoreLeadTime(opens, failures, { from, to, assets })
  p.falseAlerts = all.falseAlerts
  p.falsePerAssetMonth = all.falsePerAssetMonth
  const s = scoreLeadTime(opens, sudden, { from, to, assets })
  return { p, s: { failures: s.failures, caught: s.caught } }
}

/** Runs the bench over the given seeds. */
export async function assetBench(o: AssetBenchOptions, log: (s: string) => void = () => undefined): Promise<AssetBenchReport> {
  const acc = { trained: [] as Array<ReturnType<typeof split>>, builtin: [] as Array<ReturnType<typeof split>>, naive: [] as Array<ReturnType<typeof split>> }
  const models: AssetBenchReport['models'] = []
  for (const seed of o.seeds) {
    const sim = new AssetSimulator({ seed, locomotives: o.units, anomalies: true, fleet: true, periodMs: o.periodMs })
    const end = sim.startTs + o.days * DAY, cut = sim.startTs + o.trainDays * DAY
    const rows: HistoryRow[] = []
    for (let it = sim.next(); it.reading.ts < end; it = sim.next()) rows.push({ entity: it.id, ts: it.reading.ts, fields: it.reading.fields })
    const failures: Failure[] = sim.episodes(Infinity).filter((e) => e.end < end).map((e) => ({ entity: e.entity, ts: e.end, ...(e.mode ? { mode: e.mode } : {}) }))
    // Training sees only the training period: its history and the failures the maintenance log has by then.
    const trainRows = rows.filter((r) => r.ts < cut)
    const model = await trainModel(() => trainRows, failures.filter((f) => f.ts < cut), {
      horizonMs: TRAIN_DEFAULTS.horizonHours * 3_600_000, l2: TRAIN_DEFAULTS.l2, sampleEvery: TRAIN_DEFAULTS.sampleEvery, logTime: 'failure', jobMs: 0,
      downtimeMs: TRAIN_DEFAULTS.downtimeHours * 3_600_000, validateShare: TRAIN_DEFAULTS.validateShare, falseRate: TRAIN_DEFAULTS.falseRate, version: `bench-seed-${seed}` })
    models.push({ version: model.version, validation: model.validation, warnings: model.warnings })
    const trained = await runAssetProfile(rows, { model })
    const builtin = await runAssetProfile(rows)
    const naive = await naiveBaseline(rows)
    acc.trained.push(split(trained.opens, failures, cut, end, o.units))
    acc.builtin.push(split(builtin.opens, failures, cut, end, o.units))
    acc.naive.push(split(naive, failures, cut, end, o.units))
    log(`seed ${seed}: ${rows.length} readings, ${failures.length} failures`)
  }
  const fold = (xs: Array<ReturnType<typeof split>>): Split => ({ predictable: merge(xs.map((x) => x.p)),
    sudden: { failures: xs.reduce((a, x) => a + x.s.failures, 0), caught: xs.reduce((a, x) => a + x.s.caught, 0) } })
  return { options: o, trained: fold(acc.trained), builtin: fold(acc.builtin), naive: fold(acc.naive), models }
}

const r3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000)

/** Compact figures for the bench line. */
export function compactAsset(rep: AssetBenchReport): Record<string, unknown> {
  const c = (s: Split): Record<string, unknown> => ({ recall6h: r3(s.predictable.recall6h), medianLeadHours: r3(s.predictable.medianLeadHours),
    falsePerAssetMonth: r3(s.predictable.falsePerAssetMonth), rightFamily: r3(s.predictable.rightFamily),
    byMode: Object.fromEntries(ASSET_FAILURE_MODES.filter((m) => m !== 'sudden').map((m) => [m, r3(s.predictable.byMode[m]?.recall6h ?? null)])),
    failures: s.predictable.failures, sudden: s.sudden })
  return { seeds: rep.options.seeds, trained: c(rep.trained), builtin: c(rep.builtin), naive: c(rep.naive) }
}

/** The bench:detect hook: `--asset-eval tuning|heldout|quick|off` (default heldout). */
export async function assetEvalSection(args: readonly string[], log: (s: string) => void): Promise<Record<string, unknown> | undefined> {
  const i = args.indexOf('--asset-eval')
  const which = i >= 0 ? args[i + 1] : 'heldout'
  if (which === 'off') return undefined
  const quick = which === 'quick'
  const seeds = which === 'tuning' ? ASSET_TUNING_SEEDS : quick ? [ASSET_TUNING_SEEDS[0]] : ASSET_HELDOUT_SEEDS
  const rep = await assetBench({ seeds, units: quick ? 20 : 40, days: quick ? 40 : 60, trainDays: quick ? 20 : 30, periodMs: 120_000 }, log)
  return compactAsset(rep)
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const args = process.argv.slice(2)
  const out = await assetEvalSection(args.includes('--asset-eval') ? args : ['--asset-eval', 'tuning'], (s) => process.stderr.write(`${s}\n`))
  process.stdout.write(`${JSON.stringify(out)}\n`)
}
