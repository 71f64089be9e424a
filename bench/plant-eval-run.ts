/**
 * The `plant_eval` section of `npm run bench:detect` (issue 17): the project's `process` profile (sensor and pair
 * actors) and both baselines (robust z-score, Isolation Forest) on the independent plant scenario
 * (bench/eval/plant-scenario.ts), on the same readings, scored by bench/eval/score.ts: per detector and per type
 * precision and recall (typed, untyped), the chance level of its alert times, false alerts per sensor-day, the
 * plant's alerts a day, median delay and per-reading cost.
 *
 * `--plant-eval heldout|heldout-past|tuning|quick|off` (default heldout: seeds 4001-4003; heldout-past: the
 * earlier held-out sets 1001-1003, 2001-2003 and 3001-3003, no longer held out; quick: tuning seeds, 10 h), `--plant-eval-hours H`
 * (default 48).
 */
import { isolationForestBaseline, robustZBaseline } from './eval/baselines.js'
import { evaluatePlant, HELDOUT_SEEDS, PAST_HELDOUT_SEEDS, TUNING_SEEDS } from './eval/plant-eval.js'
import { ANOMALY_TYPES, DEFAULT_HOURS, DEFAULT_WARMUP_HOURS, QUICK_HOURS } from './eval/plant-scenario.js'
import { processProfileDetector } from './eval/plant-process.js'
import { withStageSignals } from './eval/plant-stage-feed.js'

const r3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000)

export interface PlantEvalSection {
  seeds: number[]
  set: string
  hours: number
  episodes: number
  episodesByType: Record<string, number>
  detectors: Array<{
    name: string
    precision: number | null
    recall: number | null
    precisionTyped: number | null
    recallTyped: number | null
    chanceRecall: number | null
    chanceRecallTyped: number | null
    falseAlertsPerSensorDay: number | null
    alertsPerDay: number | null
    medianDelayS: number | null
    costUsP95: number | null
    perType: Record<
      string,
      { precisionTyped: number | null; recallTyped: number | null; recall: number | null; chanceRecall: number | null }
    >
  }>
}

/** Runs the section as the command line asks; undefined when `--plant-eval off`. */
export function plantEvalSection(args: readonly string[], log: (s: string) => void): PlantEvalSection | undefined {
  const val = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 ? args[i + 1] : undefined
  }
  const set = val('plant-eval') ?? 'heldout'
  if (set === 'off') return undefined
  const seeds =
    set === 'heldout'
      ? HELDOUT_SEEDS
      : set === 'heldout-past'
        ? PAST_HELDOUT_SEEDS
        : set === 'tuning' || set === 'quick'
          ? TUNING_SEEDS
          : undefined
  if (seeds === undefined)
    throw new Error(`--plant-eval must be heldout, heldout-past, tuning, quick or off (got ${set})`)
  const hours = Number(val('plant-eval-hours') ?? (set === 'quick' ? QUICK_HOURS : DEFAULT_HOURS))
  if (!(hours > DEFAULT_WARMUP_HOURS + 1)) throw new Error(`--plant-eval-hours must exceed ${DEFAULT_WARMUP_HOURS + 1}`)
  const r = evaluatePlant({
    seeds,
    hours,
    detectors: [
      withStageSignals(processProfileDetector()),
      robustZBaseline(),
      isolationForestBaseline({ warmupMs: DEFAULT_WARMUP_HOURS * 3_600_000 }),
    ],
    log,
  })
  const section: PlantEvalSection = {
    seeds: r.seeds,
    set,
    hours: r.hours,
    episodes: r.episodes,
    episodesByType: r.episodesByType,
    detectors: r.detectors.map((d) => {
      const s = d.score
      return {
        name: d.name,
        precision: r3(s.precision),
        recall: r3(s.recall),
        precisionTyped: r3(s.precisionTyped),
        recallTyped: r3(s.recallTyped),
        chanceRecall: r3(s.chanceRecall),
        chanceRecallTyped: r3(s.chanceRecallTyped),
        falseAlertsPerSensorDay: r3(s.falseAlertsPerEntityDay),
        alertsPerDay: r3(s.alertsPerDay),
        medianDelayS: r3(s.medianDelayS),
        costUsP95: r3(d.costUs.p95),
        perType: Object.fromEntries(
          ANOMALY_TYPES.map((t) => {
            const p = s.perType[t]
            return [
              t,
              {
                precisionTyped: r3(p?.precisionTyped ?? null),
                recallTyped: r3(p?.recallTyped ?? null),
                recall: r3(p?.recall ?? null),
                chanceRecall: r3(p?.chanceRecall ?? null),
              },
            ]
          }),
        ),
      }
    }),
  }
  log(`independent plant scenario (${set}: seeds ${r.seeds.join(',')}, ${r.hours} h, ${r.episodes} episodes):`)
  log('detector                          prec  recall  chance  p_typ  r_typ  FA/s-d  alerts/d  delay_s  us_p95')
  for (const d of section.detectors) {
    const f = (x: number | null, n = 3): string => (x === null ? '-' : x.toFixed(n))
    log(
      `${d.name.padEnd(32)} ${f(d.precision).padStart(5)} ${f(d.recall).padStart(7)} ${f(d.chanceRecall).padStart(7)} ${f(d.precisionTyped).padStart(6)} ${f(d.recallTyped).padStart(6)} ${f(d.falseAlertsPerSensorDay, 2).padStart(7)} ${f(d.alertsPerDay, 1).padStart(9)} ${f(d.medianDelayS, 0).padStart(8)} ${f(d.costUsP95, 2).padStart(7)}`,
    )
  }
  return section
}
