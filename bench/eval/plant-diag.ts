/**
 * `node dist/bench/eval/plant-diag.js [--seeds tuning|1,2] [--hours H] [--process-config JSON] [--top N] [--json]
 *   [--no-stage-feed] [--pair-config JSON]`: --no-stage-feed without the filter group's signals
 *   (bench/eval/plant-stage-feed.ts); --pair-config the pair actors' settings merged over PAIR_DEFAULTS
 *
 * Where the process profile's alert load and false alerts come from on the independent plant scenario (issue
 * 17): runs the profile (sensor and pair actors, as plant-cli does) over each seed, keeps every alert with the
 * reason the profile gave, and classifies each one the way score.ts counts it (typed hit, hit of another type,
 * duplicate, false) and, for false alerts, by cause: inside a backwash or calibration window of the same sensor
 * (or up to 10 min after), during a storm (from its start to 6 h after), elsewhere. Tables per alert type x
 * class, per sensor type, per source (sensor actor / pair actor) and per reason (the reason's wording with its
 * numbers taken out). For tuning seeds only: the classification reads the ground truth.
 */
import type { AlertBody } from '../../actors/types.js'
import { PROCESS_DEFAULTS, validateProcessConfig, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import { PAIR_DEFAULTS, validatePairConfig, type PairConfig } from '../../actors/kinds/sensor/process-pair.js'
import { evaluatePlant, TUNING_SEEDS } from './plant-eval.js'
import { DEFAULT_WARMUP_HOURS, plantScenario, QUICK_HOURS } from './plant-scenario.js'
import { processProfileDetector } from './plant-process.js'
import { withStageSignals } from './plant-stage-feed.js'
import { settingsOver } from './settings.js'

export interface DiagAlert {
  seed: number
  entity: string
  sensorType: string
  stage: string
  type: string
  source: 'sensor' | 'pair'
  start: number
  reason: string
  /** typed | other-type | duplicate | false | warmup */
  cls: string
  /** For false alerts: backwash | calibration | storm | healthy. */
  cause?: string
  episodeType?: string
}

const GRACE = 600_000
const STORM_AFTER = 6 * 3_600_000

/** The reason's wording without its numbers, so alerts of one rule group together. */
export function reasonKey(reason: string): string {
  return reason
    .replace(/-?\d+(\.\d+)?(e-?\d+)?/g, '#')
    .replace(/\s+/g, ' ')
    .slice(0, 90)
}

/** Runs the process profile over the seeds and classifies its alerts (the scorer's rules, plus causes). */
export function diagnose(
  seeds: readonly number[],
  hours: number,
  config: ProcessConfig,
  stageFeed = true,
  pairs?: PairConfig,
): DiagAlert[] {
  const all: DiagAlert[] = []
  for (const seed of seeds) {
    const sc = plantScenario({ seed, hours, warmupHours: DEFAULT_WARMUP_HOURS })
    const info = new Map(sc.sensors.map((s) => [s.id, s]))
    const raw: DiagAlert[] = []
    const open = new Set<string>()
    const base = processProfileDetector(config, 'process', {
      ...(pairs === undefined ? {} : { pairs }),
      onAlert(entity: string, b: AlertBody, ts: number, source: 'sensor' | 'pair') {
        const key = `${entity}\u0000${b.type}`
        if (b.state === 'close') {
          open.delete(key)
          return
        }
        if (b.state === 'update' && open.has(key)) return
        open.add(key)
        const s = info.get(entity)
        const reason = typeof b.details?.['reason'] === 'string' ? (b.details['reason'] as string) : ''
        raw.push({
          seed,
          entity,
          sensorType: s?.type ?? '?',
          stage: s?.stage ?? '?',
          type: b.type,
          source,
          start: ts,
          reason,
          cls: '',
        })
      },
    })
    const det = stageFeed ? withStageSignals(base) : base
    evaluatePlant({ seeds: [seed], hours, detectors: [det] })
    raw.sort((a, b) => a.start - b.start)
    const detected = new Set<object>()
    const detectedTyped = new Set<object>()
    for (const a of raw) {
      if (a.start < sc.evalStart) {
        a.cls = 'warmup'
        all.push(a)
        continue
      }
      const eps = sc.episodes.filter((e) => e.entity === a.entity && a.start >= e.start && a.start <= e.end + GRACE)
      const typed = eps.find((e) => e.type === a.type && !detectedTyped.has(e))
      const any = eps.find((e) => !detected.has(e))
      if (typed) {
        a.cls = 'typed'
        a.episodeType = typed.type
        detectedTyped.add(typed)
        detected.add(typed)
      } else if (any) {
        a.cls = 'other-type'
        a.episodeType = any.type
        detected.add(any)
      } else if (eps.length > 0) {
        a.cls = 'duplicate'
        a.episodeType = eps[0]?.type
      } else {
        a.cls = 'false'
        const m = sc.maintenance.find((w) => w.entity === a.entity && a.start >= w.start && a.start <= w.end + GRACE)
        if (m) a.cause = m.kind
        else if (sc.storms.some((st) => a.start >= st.start && a.start <= st.start + STORM_AFTER)) a.cause = 'storm'
        else a.cause = 'healthy'
      }
      all.push(a)
    }
  }
  return all
}

function count<T>(xs: readonly T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>()
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1)
  return new Map([...m].sort((a, b) => b[1] - a[1]))
}

function crossTable(title: string, xs: readonly DiagAlert[], row: (a: DiagAlert) => string, cols: string[]): string {
  const rows = count(xs, row)
  const w = Math.min(100, Math.max(34, ...[...rows.keys()].map((k) => k.length)))
  const lines = [title, `${''.padEnd(w)} ${cols.map((c) => c.padStart(11)).join('')} ${'total'.padStart(7)}`]
  for (const [r, n] of rows) {
    const sub = xs.filter((a) => row(a) === r)
    const cells = cols.map((c) => String(sub.filter((a) => (a.cause ?? a.cls) === c).length).padStart(11))
    lines.push(`${r.slice(0, w).padEnd(w)} ${cells.join('')} ${String(n).padStart(7)}`)
  }
  return lines.join('\n')
}

function main(): void {
  const args = process.argv.slice(2)
  const value = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 ? args[i + 1] : undefined
  }
  const seedArg = value('seeds') ?? 'tuning'
  const seeds = seedArg === 'tuning' ? TUNING_SEEDS : seedArg.split(',').map(Number)
  if (seeds.some((s) => !Number.isInteger(s) || s >= 1000)) {
    process.stderr.write('plant-diag reads the ground truth: tuning seeds only (integers under 1000)\n')
    process.exit(2)
  }
  const hours = Number(value('hours') ?? QUICK_HOURS)
  const top = Number(value('top') ?? 25)
  const over = value('process-config')
  const config: ProcessConfig =
    over === undefined ? PROCESS_DEFAULTS : settingsOver(PROCESS_DEFAULTS, over, validateProcessConfig)
  const pairOver = value('pair-config')
  const pairs: PairConfig | undefined =
    pairOver === undefined ? undefined : settingsOver(PAIR_DEFAULTS, pairOver, validatePairConfig)
  const alerts = diagnose(seeds, hours, config, !args.includes('--no-stage-feed'), pairs)
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(alerts)}\n`)
    return
  }
  const scored = alerts.filter((a) => a.cls !== 'warmup')
  const days = (seeds.length * (hours - DEFAULT_WARMUP_HOURS)) / 24
  const cols = ['typed', 'other-type', 'duplicate', 'backwash', 'calibration', 'storm', 'healthy']
  const out = [
    `seeds ${seeds.join(',')}, ${hours} h: ${scored.length} scored alerts (${(scored.length / days).toFixed(1)} a day), ${alerts.length - scored.length} in warm-up`,
    '',
    crossTable('by alert type', scored, (a) => a.type, cols),
    '',
    crossTable('by source', scored, (a) => `${a.source} ${a.type}`, cols),
    '',
    crossTable(`by sensor type x alert type (top ${top})`, scored, (a) => `${a.sensorType} ${a.type}`, cols)
      .split('\n')
      .slice(0, top + 2)
      .join('\n'),
    '',
    crossTable(`by reason (top ${top})`, scored, (a) => `${a.type.slice(0, 6)} ${reasonKey(a.reason)}`, cols)
      .split('\n')
      .slice(0, top + 2)
      .join('\n'),
  ]
  process.stdout.write(`${out.join('\n')}\n`)
}

if (process.argv[1]?.endsWith('plant-diag.js')) main()
