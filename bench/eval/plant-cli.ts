/**
 * `node dist/bench/eval/plant-cli.js [--seeds tuning|heldout|heldout-past|1,2,...] [--hours H] [--quick] [--json]
 *   [--detectors all|process,robust-z,iforest] [--process-config JSON] [--pair-config JSON] [--no-stage-feed]`
 *
 * Runs the project's process profile and the two baselines (robust z-score, Isolation Forest) over the independent plant scenario and prints a
 * table, then one JSON line (the result of evaluatePlant). Tuning seeds by default; run `--seeds heldout` (6001-6003) only
 * for a final report; `heldout-past` is the earlier held-out sets 1001-1003, 2001-2003 and 3001-3003, no longer held out (see bench/eval/README.md). 48 h x 3 seeds takes about a minute on a 2-core machine.
 */
import { isolationForestBaseline, robustZBaseline } from './baselines.js'
import {
  evaluatePlant,
  HELDOUT_SEEDS,
  PAST_HELDOUT_SEEDS,
  TUNING_SEEDS,
  type PlantDetector,
  type PlantEvalResult,
} from './plant-eval.js'
import { ANOMALY_TYPES, DEFAULT_HOURS, DEFAULT_WARMUP_HOURS, QUICK_HOURS } from './plant-scenario.js'
import { processProfileDetector } from './plant-process.js'
import { withStageSignals } from './plant-stage-feed.js'
import { settingsOver } from './settings.js'
import { PROCESS_DEFAULTS, validateProcessConfig, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import { PAIR_DEFAULTS, validatePairConfig, type PairConfig } from '../../actors/kinds/sensor/process-pair.js'

const args = process.argv.slice(2)
const value = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const JSON_ONLY = args.includes('--json')
const QUICK = args.includes('--quick')
/** Without the edge's filter-group signals (the process profile's backwash view then sees nothing). */
const NO_STAGE_FEED = args.includes('--no-stage-feed')
const seedArg = value('seeds') ?? 'tuning'
const seeds =
  seedArg === 'tuning'
    ? TUNING_SEEDS
    : seedArg === 'heldout'
      ? HELDOUT_SEEDS
      : seedArg === 'heldout-past'
        ? PAST_HELDOUT_SEEDS
        : seedArg.split(',').map(Number)
if (seeds.some((s) => !Number.isInteger(s))) {
  process.stderr.write(
    `--seeds must be tuning, heldout, heldout-past or a comma-separated list of integers (got ${seedArg})\n`,
  )
  process.exit(2)
}
const hours = Number(value('hours') ?? (QUICK ? QUICK_HOURS : DEFAULT_HOURS))
if (!(hours > DEFAULT_WARMUP_HOURS + 1)) {
  process.stderr.write(
    `--hours must exceed the ${DEFAULT_WARMUP_HOURS} h warm-up by more than 1 (got ${value('hours')})\n`,
  )
  process.exit(2)
}
const detectorArg = value('detectors') ?? 'all'
const wanted = detectorArg === 'all' ? ['process', 'robust-z', 'iforest'] : detectorArg.split(',')
/**
 * `--process-config '{"drift":{"z":3}}'` and `--pair-config '{"levelScale":false}'`: settings merged over
 * PROCESS_DEFAULTS / PAIR_DEFAULTS (validated by the profile).
 */
function settingsArg<T>(flag: string, defaults: T, validate: (c: T) => void): T {
  const json = value(flag)
  if (json === undefined) return defaults
  try {
    return settingsOver(defaults, json, validate)
  } catch (err) {
    process.stderr.write(`--${flag}: ${(err as Error).message}\n`)
    process.exit(2)
  }
}
const processConfig: ProcessConfig = settingsArg('process-config', PROCESS_DEFAULTS, validateProcessConfig)
const pairConfig: PairConfig = settingsArg('pair-config', PAIR_DEFAULTS, validatePairConfig)
const processDetector = (): PlantDetector => processProfileDetector(processConfig, undefined, { pairs: pairConfig })
const known: Record<string, () => PlantDetector> = {
  process: () => (NO_STAGE_FEED ? processDetector() : withStageSignals(processDetector())),
  'robust-z': () => robustZBaseline(),
  iforest: () => isolationForestBaseline({ warmupMs: DEFAULT_WARMUP_HOURS * 3_600_000 }),
}
if (wanted.length === 0 || wanted.some((w) => known[w] === undefined)) {
  process.stderr.write(
    `--detectors must be all or a comma-separated list of ${Object.keys(known).join(', ')} (got ${detectorArg})\n`,
  )
  process.exit(2)
}
const say = (s: string): void => {
  if (!JSON_ONLY) process.stderr.write(`${s}\n`)
}

const result = evaluatePlant({
  seeds,
  hours,
  detectors: wanted.map((w) => (known[w] as () => PlantDetector)()),
  log: say,
})

const f = (x: number | null, d = 3): string => (x === null ? '-' : x.toFixed(d))
function table(r: PlantEvalResult): string {
  const lines = [
    '',
    `plant evaluation: seeds ${r.seeds.join(',')}, ${r.hours} h (${r.warmupHours} h warm-up), ${r.sensors} sensors, ${r.readings} readings, ` +
      `${r.episodes} episodes (${(r.anomalousFraction * 100).toFixed(2)} % of sensor-time), ${r.maintenanceWindows} maintenance windows; hit = alert starts in [start, end + ${r.graceS / 60} min]`,
    `${'detector'.padEnd(44)} ${'prec'.padStart(6)} ${'recall'.padStart(6)} ${'chance'.padStart(6)} ${'p_typ'.padStart(6)} ${'r_typ'.padStart(6)} ${'FA/s-d'.padStart(7)} ${'alerts/d'.padStart(9)} ${'FA_mnt'.padStart(6)} ${'dup'.padStart(5)} ${'delay_s'.padStart(8)} ${'us_p95'.padStart(7)}`,
  ]
  for (const d of r.detectors) {
    const s = d.score
    lines.push(
      `${d.name.padEnd(44)} ${f(s.precision).padStart(6)} ${f(s.recall).padStart(6)} ${f(s.chanceRecall).padStart(6)} ${f(s.precisionTyped).padStart(6)} ${f(s.recallTyped).padStart(6)} ` +
        `${f(s.falseAlertsPerEntityDay, 2).padStart(7)} ${f(s.alertsPerDay, 1).padStart(9)} ${String(s.falseAlertsInMaintenance).padStart(6)} ${String(s.duplicates).padStart(5)} ${f(s.medianDelayS, 0).padStart(8)} ${f(d.costUs.p95, 2).padStart(7)}`,
    )
  }
  lines.push('', `recall per episode type (untyped / chance):`)
  lines.push(`${'detector'.padEnd(44)} ${ANOMALY_TYPES.map((t) => t.padStart(20)).join(' ')}`)
  for (const d of r.detectors) {
    lines.push(
      `${d.name.padEnd(44)} ${ANOMALY_TYPES.map((t) => {
        const p = d.score.perType[t]
        return (p === undefined ? '-' : `${f(p.recall, 2)} / ${f(p.chanceRecall, 2)} (${p.episodes})`).padStart(20)
      }).join(' ')}`,
    )
  }
  return `${lines.join('\n')}\n`
}

if (!JSON_ONLY) process.stdout.write(table(result))
process.stdout.write(`${JSON.stringify(result)}\n`)
