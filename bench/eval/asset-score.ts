/**
 * Lead-time scoring of asset alerts and risk against the fleet generator's ground truth (issue 20).
 *
 * Rules (bench/eval/asset-README.md states them for model authors):
 * - A failure in the test period is caught when an alert of the scored types opened on the same unit between
 *   72 h and 1 h before it (an alert in the last hour leaves no time to act). Its lead is the failure time minus
 *   the earliest such opening.
 * - Per mode: caught / total, caught with >= 6 h of warning; the median lead over caught predictable failures.
 *   Sudden failures are reported apart and are not in the predictable totals.
 * - A false alert is an opening in the test period that no failure of the same unit (any mode) follows within
 *   72 h; the rate is per asset-month (units x test days / 30).
 * - AUC of the daily risk: per unit and test day, the highest risk the detector reported that day, against
 *   "a predictable failure of the unit falls in that day or the 72 h after it"; unit-days whose only failure in
 *   that span is sudden are left out, and so are unit-days without any risk value.
 * Several runs (seeds) are pooled: counts add up, leads and AUC samples are pooled.
 */
import { FAILURE_MODES, PREDICTABLE_MODES, type FailureMode } from './asset-scenario.js'

export interface AlertEvent {
  entity: string
  type: string
  state: 'open' | 'update' | 'close'
  /** Event time of the output (ms). */
  ts: number
}

export const DEFAULT_ALERT_TYPES = ['risk_high', 'asset_danger'] as const

export const SCORE_RULES = {
  minLeadMs: 3_600_000,
  maxLeadMs: 72 * 3_600_000,
  warnedLeadMs: 6 * 3_600_000,
  falseHorizonMs: 72 * 3_600_000,
  aucHorizonMs: 72 * 3_600_000,
  dayMs: 86_400_000,
  monthDays: 30,
} as const

export interface ScoredFailure {
  entity: string
  mode: FailureMode
  ts: number
}

/** Highest risk of one unit on one test day (`day` = start of the day, ms; days counted from the test start). */
export interface RiskDay {
  entity: string
  day: number
  risk: number
}

/** One seed's run: its ground truth, the alert outputs of one detector and its daily risk. */
export interface ScoreRun {
  failures: readonly ScoredFailure[]
  alerts: readonly AlertEvent[]
  testStart: number
  testEnd: number
  units: number
  riskDays?: readonly RiskDay[]
  /** Units that are healthy all their life but run rough or hot; false alerts on them are counted apart. */
  oddUnits?: readonly string[]
}

export interface ModeScore {
  total: number
  caught: number
  /** Caught with at least 6 h of warning. */
  warned: number
  /** Leads of the caught failures, hours. */
  leadsH: number[]
}

export interface AssetScore {
  modes: Record<FailureMode, ModeScore>
  predictable: {
    total: number
    caught: number
    warned: number
    shareCaught: number
    shareWarned: number
    medianLeadH: number | null
  }
  /** Alert openings of the scored types in the test period. */
  alerts: number
  falseAlerts: number
  assetMonths: number
  falsePerAssetMonth: number
  /** False alerts on healthy rough or hot units. */
  falseOnOddUnits: number
  /** Openings in the 72 h before a caught predictable failure, per caught failure (1 = one alert per fault). */
  opensPerCaught: number | null
  auc: number | null
  aucPositives: number
  aucNegatives: number
}

/** Median of a list (null when empty). */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** Area under the ROC curve (Mann-Whitney, ties count half); null when either class is empty. */
export function auc(samples: ReadonlyArray<{ score: number; label: boolean }>): number | null {
  const pos = samples.filter((s) => s.label).length
  const neg = samples.length - pos
  if (pos === 0 || neg === 0) return null
  const sorted = [...samples].sort((a, b) => a.score - b.score)
  let rankSumPos = 0
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j < sorted.length && (sorted[j] as { score: number }).score === (sorted[i] as { score: number }).score) j++
    const avgRank = (i + 1 + j) / 2 // ranks i+1..j
    for (let k = i; k < j; k++) if ((sorted[k] as { label: boolean }).label) rankSumPos += avgRank
    i = j
  }
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg)
}

function byEntity<T extends { entity: string }>(xs: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const x of xs) {
    let l = m.get(x.entity)
    if (!l) m.set(x.entity, (l = []))
    l.push(x)
  }
  return m
}

/** Scores one detector over one or more runs (seeds), pooled. */
export function scoreAssets(
  runs: readonly ScoreRun[],
  alertTypes: readonly string[] = DEFAULT_ALERT_TYPES,
): AssetScore {
  const R = SCORE_RULES
  const types = new Set(alertTypes)
  const modes = Object.fromEntries(
    FAILURE_MODES.map((m) => [m, { total: 0, caught: 0, warned: 0, leadsH: [] as number[] }]),
  ) as Record<FailureMode, ModeScore>
  let alerts = 0
  let falseAlerts = 0
  let falseOnOdd = 0
  let assetMonths = 0
  let opensInCaught = 0
  let caughtPredictable = 0
  const aucSamples: Array<{ score: number; label: boolean }> = []
  const predictable = new Set<FailureMode>(PREDICTABLE_MODES)

  for (const run of runs) {
    assetMonths += (run.units * (run.testEnd - run.testStart)) / (R.dayMs * R.monthDays)
    const opens = run.alerts.filter((a) => a.state === 'open' && types.has(a.type)).sort((a, b) => a.ts - b.ts)
    const opensBy = byEntity(opens)
    const failsBy = byEntity([...run.failures].sort((a, b) => a.ts - b.ts))
    const odd = new Set(run.oddUnits ?? [])

    for (const f of run.failures) {
      if (f.ts < run.testStart || f.ts >= run.testEnd) continue
      const ms = modes[f.mode]
      ms.total++
      const mine = opensBy.get(f.entity) ?? []
      const inWindow = mine.filter((a) => a.ts >= f.ts - R.maxLeadMs && a.ts <= f.ts - R.minLeadMs)
      const first = inWindow[0]
      if (!first) continue
      const lead = f.ts - first.ts
      ms.caught++
      ms.leadsH.push(lead / 3_600_000)
      if (lead >= R.warnedLeadMs) ms.warned++
      if (predictable.has(f.mode)) {
        caughtPredictable++
        opensInCaught += mine.filter((a) => a.ts >= f.ts - R.maxLeadMs && a.ts < f.ts).length
      }
    }

    for (const a of opens) {
      if (a.ts < run.testStart || a.ts >= run.testEnd) continue
      alerts++
      const followed = (failsBy.get(a.entity) ?? []).some((f) => f.ts > a.ts && f.ts <= a.ts + R.falseHorizonMs)
      if (followed) continue
      falseAlerts++
      if (odd.has(a.entity)) falseOnOdd++
    }

    for (const d of run.riskDays ?? []) {
      if (!Number.isFinite(d.risk)) continue
      const span = (failsBy.get(d.entity) ?? []).filter((f) => f.ts >= d.day && f.ts < d.day + R.dayMs + R.aucHorizonMs)
      if (span.length > 0 && !span.some((f) => predictable.has(f.mode))) continue
      aucSamples.push({ score: d.risk, label: span.length > 0 })
    }
  }

  const pm = PREDICTABLE_MODES.map((m) => modes[m])
  const total = pm.reduce((s, m) => s + m.total, 0)
  const caught = pm.reduce((s, m) => s + m.caught, 0)
  const warned = pm.reduce((s, m) => s + m.warned, 0)
  const pos = aucSamples.filter((s) => s.label).length
  return {
    modes,
    predictable: {
      total,
      caught,
      warned,
      shareCaught: total === 0 ? 0 : caught / total,
      shareWarned: total === 0 ? 0 : warned / total,
      medianLeadH: median(pm.flatMap((m) => m.leadsH)),
    },
    alerts,
    falseAlerts,
    assetMonths,
    falsePerAssetMonth: assetMonths === 0 ? 0 : falseAlerts / assetMonths,
    falseOnOddUnits: falseOnOdd,
    opensPerCaught: caughtPredictable === 0 ? null : opensInCaught / caughtPredictable,
    auc: auc(aucSamples),
    aucPositives: pos,
    aucNegatives: aucSamples.length - pos,
  }
}
