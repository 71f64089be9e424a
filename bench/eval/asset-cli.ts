/**
 * Runs the asset evaluation (asset-eval.ts) with the naive baseline and prints a table, then one JSON line last.
 *
 *   node dist/bench/eval/asset-cli.js [--seeds tuning|heldout|1,2,3] [--days 72] [--units 60] [--quick] [--json]
 *
 * `--quick` is a small fleet (12 units, 16 days) for a smoke run. Held-out seeds are for final reports only.
 */
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../../actors/errors.js'
import { FAILURE_MODES, PREDICTABLE_MODES } from './asset-scenario.js'
import { naiveBaseline } from './asset-baselines.js'
import { evaluateAssets, HELDOUT_SEEDS, TUNING_SEEDS, type EvalReport } from './asset-eval.js'

export const ASSET_EVAL_USAGE =
  'usage: node dist/bench/eval/asset-cli.js [--seeds tuning|heldout|1,2,3] [--days 72] [--units 60] [--quick] [--json]'

export interface CliOptions {
  seeds: number[]
  seedSet: string
  days: number
  units: number
  json: boolean
}

/** Parses the command line; throws ConfigError naming the bad flag. */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { seeds: [...TUNING_SEEDS], seedSet: 'tuning', days: 72, units: 60, json: false }
  let daysSet = false
  let unitsSet = false
  let quick = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    const val = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new ConfigError(a, 'needs a value')
      return v
    }
    if (a === '--json') o.json = true
    else if (a === '--quick') quick = true
    else if (a === '--seeds') {
      const v = val()
      o.seedSet = v
      if (v === 'tuning') o.seeds = [...TUNING_SEEDS]
      else if (v === 'heldout') o.seeds = [...HELDOUT_SEEDS]
      else {
        o.seeds = v.split(',').map(Number)
        if (o.seeds.some((s) => !Number.isInteger(s)))
          throw new ConfigError('--seeds', `tuning, heldout or a comma-separated list of integers, got ${v}`)
      }
    } else if (a === '--days') {
      o.days = Number(val())
      daysSet = true
      if (!(o.days >= 12)) throw new ConfigError('--days', 'must be a number >= 12')
    } else if (a === '--units') {
      o.units = Number(val())
      unitsSet = true
      if (!Number.isInteger(o.units) || o.units < 4) throw new ConfigError('--units', 'must be an integer >= 4')
    } else throw new ConfigError(a, 'unknown flag')
  }
  if (quick) {
    if (!daysSet) o.days = 16
    if (!unitsSet) o.units = 12
  }
  return o
}

function pct(x: number): string {
  return `${(100 * x).toFixed(0)} %`
}

/** The human table of a report. */
export function formatReport(r: EvalReport, seedSet: string): string {
  const lines: string[] = []
  lines.push(
    `asset eval: seeds ${seedSet} (${r.seeds.join(', ')}), ${r.units} units x ${r.days} days, trained on days 0-${r.trainDays}, scored on days ${r.trainDays}-${r.days}; ${r.readings.toLocaleString('en-US')} readings`,
  )
  lines.push(`test failures: ${FAILURE_MODES.map((m) => `${m} ${r.testFailures[m]}`).join(', ')}`)
  lines.push('')
  lines.push(
    '| detector | caught (bearing / cooling / hydraulic) | caught >= 6 h | median lead | false alerts / asset-month (on rough/hot units) | AUC daily risk | sudden caught | alerts per caught fault |',
  )
  lines.push('|---|---|---|---|---|---|---|---|')
  for (const d of r.detectors) {
    const s = d.score
    const per = PREDICTABLE_MODES.map((m) => `${s.modes[m].caught}/${s.modes[m].total}`).join(' / ')
    lines.push(
      `| ${d.name} | ${s.predictable.caught} of ${s.predictable.total} (${per}) | ${s.predictable.warned} (${pct(s.predictable.shareWarned)}) | ${s.predictable.medianLeadH === null ? '-' : `${s.predictable.medianLeadH.toFixed(1)} h`} | ${s.falsePerAssetMonth.toFixed(2)} (${s.falseAlerts} of ${s.alerts}; ${s.falseOnOddUnits} on rough/hot) | ${s.auc === null ? '-' : s.auc.toFixed(3)} | ${s.modes.sudden.caught}/${s.modes.sudden.total} | ${s.opensPerCaught === null ? '-' : s.opensPerCaught.toFixed(2)} |`,
    )
  }
  return lines.join('\n')
}

async function main(argv: string[]): Promise<number> {
  let o: CliOptions
  try {
    o = parseArgs(argv)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n${ASSET_EVAL_USAGE}\n`)
      return 2
    }
    throw err
  }
  const t0 = performance.now()
  const report = await evaluateAssets({
    seeds: o.seeds,
    days: o.days,
    units: o.units,
    detectors: [naiveBaseline()],
    log: (l) => process.stderr.write(`${l}\n`),
  })
  const wallMs = Math.round(performance.now() - t0)
  process.stdout.write(`${formatReport(report, o.seedSet)}\n(${(wallMs / 1000).toFixed(1)} s)\n`)
  if (o.json) {
    const slim = {
      ...report,
      seedSet: o.seedSet,
      wallMs,
      detectors: report.detectors.map((d) => ({
        ...d,
        perSeed: d.perSeed.map((p) => ({
          seed: p.seed,
          predictable: p.score.predictable,
          falseAlerts: p.score.falseAlerts,
          auc: p.score.auc,
        })),
      })),
    }
    process.stdout.write(`${JSON.stringify(slim)}\n`)
  }
  return 0
}

// Run only as the entry point, so tests can import parseArgs and formatReport.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
