/**
 * Event-based scoring of anomaly alerts against ground-truth episodes, generic over (entity, type, time) so any
 * profile's benchmark can use it (issue 17 replaced an "any overlap in time counts" scorer with this).
 *
 * Rules (each one is what an operator would count):
 * - An alert is a hit when it starts within [episode.start, episode.end + grace] (grace 10 min by default) on the
 *   episode's entity. Alerts that start before an episode do not count for it: a detector that is already
 *   alarming did not detect the event.
 * - Each episode is detected at most once per view: the first hitting alert is the hit, later ones on the same
 *   episode are duplicates, which count against precision (each is one more alarm for an event already raised).
 * - Typed view: only alerts of the episode's type hit it (per-type precision and recall). Untyped view: any type.
 * - An alert that hits nothing is false; false alerts in a maintenance window of the same entity (calibrations,
 *   backwashes) are false too, and also counted apart.
 * - Alerts before `evalStart` (the warm-up) are not scored, only counted.
 * - Chance level: each episode's window is moved to random healthy times of the same entity (no episode, no
 *   maintenance nearby) and hit with the detector's own alerts: the recall its alert times would give if they
 *   had nothing to do with the episodes. A recall near its chance level says the detector alarms everywhere.
 * Several runs (seeds) are scored together: counts add up, delays are pooled.
 */

export interface GtEpisode {
  entity: string
  type: string
  start: number
  end: number
}

export interface ScoredAlert {
  entity: string
  type: string
  /** Event time the alert started. */
  start: number
}

export interface QuietWindow {
  entity: string
  start: number
  end: number
}

export interface ScoreRun {
  episodes: readonly GtEpisode[]
  alerts: readonly ScoredAlert[]
  /** Legitimate interventions (calibration, maintenance): alerts there are false; chance draws avoid them. */
  maintenance?: readonly QuietWindow[]
  /** Scored period [evalStart, evalEnd). */
  evalStart: number
  evalEnd: number
  /** Number of monitored entities (for false alerts per entity-day). */
  entities: number
}

export interface ScoreOptions {
  /** Episode types to report (rows of the confusion matrix); others found in the data are added. */
  types?: readonly string[]
  graceMs?: number
  /** Random placements per episode for the chance level (default 20). */
  chanceDraws?: number
  /** Seed of the chance placements, so a score is reproducible. */
  seed?: number
}

export interface TypeScore {
  episodes: number
  /** Episodes hit by an alert of any type / of this type. */
  detected: number
  detectedTyped: number
  recall: number
  recallTyped: number
  /** Alerts of this type, and those that hit an episode of this type first. */
  alerts: number
  alertsHitTyped: number
  precisionTyped: number
  medianDelayS: number | null
  medianDelayTypedS: number | null
  chanceRecall: number
  chanceRecallTyped: number
}

export interface ScoreResult {
  graceS: number
  episodes: number
  alerts: number
  hits: number
  duplicates: number
  falseAlerts: number
  falseAlertsInMaintenance: number
  warmupAlerts: number
  precision: number
  recall: number
  precisionTyped: number
  recallTyped: number
  medianDelayS: number | null
  days: number
  entityDays: number
  falseAlertsPerEntityDay: number
  /** All scored alerts, true ones included, per day: the plant-wide alarm load. */
  alertsPerDay: number
  chanceRecall: number
  chanceRecallTyped: number
  perType: Record<string, TypeScore>
  /** confusion[episode type][type of the first alert that hit it | 'missed']; row 'none' = false alerts. */
  confusion: Record<string, Record<string, number>>
}

const DEFAULT_GRACE_MS = 10 * 60_000

/** Deterministic uniform [0,1) stream (mulberry32) for the chance placements. */
function mulberry(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b)

/** Index of the first element of sorted `xs` that is >= x. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0,
    hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((xs[mid] as number) < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

function groupBy<T extends { entity: string }>(xs: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const x of xs) {
    const l = m.get(x.entity)
    if (l === undefined) m.set(x.entity, [x])
    else l.push(x)
  }
  return m
}

interface TypeAcc {
  episodes: number
  detected: number
  detectedTyped: number
  alerts: number
  alertsHitTyped: number
  delays: number[]
  delaysTyped: number[]
  chanceHits: number
  chanceHitsTyped: number
  chanceDraws: number
}

/** Score the alerts of one detector over one or more runs. */
export function scoreAlerts(runs: readonly ScoreRun[], opts: ScoreOptions = {}): ScoreResult {
  const grace = opts.graceMs ?? DEFAULT_GRACE_MS
  const draws = opts.chanceDraws ?? 20
  const rand = mulberry(opts.seed ?? 12345)
  const acc = new Map<string, TypeAcc>()
  const typeAcc = (t: string): TypeAcc => {
    let a = acc.get(t)
    if (a === undefined) {
      a = {
        episodes: 0,
        detected: 0,
        detectedTyped: 0,
        alerts: 0,
        alertsHitTyped: 0,
        delays: [],
        delaysTyped: [],
        chanceHits: 0,
        chanceHitsTyped: 0,
        chanceDraws: 0,
      }
      acc.set(t, a)
    }
    return a
  }
  for (const t of opts.types ?? []) typeAcc(t)
  const confusion: Record<string, Record<string, number>> = {}
  const bump = (row: string, col: string): void => {
    const r = confusion[row] ?? (confusion[row] = {})
    r[col] = (r[col] ?? 0) + 1
  }
  let episodes = 0,
    alerts = 0,
    hits = 0,
    duplicates = 0,
    falseAlerts = 0,
    inMaint = 0,
    warmup = 0,
    hitsTyped = 0
  let days = 0,
    entityDays = 0
  const delays: number[] = []
  let chanceHits = 0,
    chanceHitsTyped = 0,
    chanceTotal = 0

  for (const run of runs) {
    const runDays = (run.evalEnd - run.evalStart) / 86_400_000
    days += runDays
    entityDays += runDays * run.entities
    const epsBy = groupBy(run.episodes)
    for (const l of epsBy.values()) l.sort((a, b) => a.start - b.start)
    const maintBy = groupBy(run.maintenance ?? [])
    const scored = run.alerts
      .filter((a) => {
        if (a.start < run.evalStart) {
          warmup++
          return false
        }
        return a.start < run.evalEnd
      })
      .sort((a, b) => a.start - b.start)
    const hitUntyped = new Set<GtEpisode>()
    const hitTyped = new Set<GtEpisode>()
    const firstType = new Map<GtEpisode, string>()
    for (const a of scored) {
      alerts++
      typeAcc(a.type).alerts++
      const candidates = (epsBy.get(a.entity) ?? []).filter((e) => a.start >= e.start && a.start <= e.end + grace)
      if (candidates.length === 0) {
        falseAlerts++
        bump('none', a.type)
        if ((maintBy.get(a.entity) ?? []).some((w) => a.start >= w.start && a.start <= w.end + grace)) inMaint++
        continue
      }
      // untyped view: the earliest not-yet-detected episode in reach
      const fresh = candidates.find((e) => !hitUntyped.has(e))
      if (fresh === undefined) duplicates++
      else {
        hitUntyped.add(fresh)
        firstType.set(fresh, a.type)
        hits++
        const ta = typeAcc(fresh.type)
        ta.detected++
        ta.delays.push(a.start - fresh.start)
        delays.push(a.start - fresh.start)
      }
      // typed view
      const freshTyped = candidates.find((e) => e.type === a.type && !hitTyped.has(e))
      if (freshTyped !== undefined) {
        hitTyped.add(freshTyped)
        hitsTyped++
        const ta = typeAcc(a.type)
        ta.alertsHitTyped++
        ta.detectedTyped++
        ta.delaysTyped.push(a.start - freshTyped.start)
      }
    }
    for (const e of run.episodes) {
      episodes++
      typeAcc(e.type).episodes++
      bump(e.type, firstType.get(e) ?? 'missed')
    }
    // chance level: the same windows at random healthy times of the same entity
    const alertsBy = groupBy(scored)
    const startsBy = new Map<string, number[]>()
    const startsByType = new Map<string, number[]>()
    for (const [entity, l] of alertsBy) {
      startsBy.set(
        entity,
        l.map((a) => a.start),
      )
      for (const a of l) {
        const k = `${entity}\u0000${a.type}`
        const s = startsByType.get(k)
        if (s === undefined) startsByType.set(k, [a.start])
        else s.push(a.start)
      }
    }
    const anyIn = (xs: number[] | undefined, lo: number, hi: number): boolean => {
      if (xs === undefined) return false
      const i = lowerBound(xs, lo)
      return i < xs.length && (xs[i] as number) <= hi
    }
    for (const e of run.episodes) {
      const busy = [...(epsBy.get(e.entity) ?? []), ...(maintBy.get(e.entity) ?? [])]
      const dur = e.end - e.start
      const room = run.evalEnd - run.evalStart - dur - grace
      if (room <= 0) continue
      const ta = typeAcc(e.type)
      for (let d = 0; d < draws; d++) {
        let placed: number | undefined
        for (let attempt = 0; attempt < 50 && placed === undefined; attempt++) {
          const s = run.evalStart + rand() * room
          if (busy.every((b) => s + dur + grace < b.start - grace || s > b.end + grace)) placed = s
        }
        if (placed === undefined) continue
        const hi = placed + dur + grace
        const hit = anyIn(startsBy.get(e.entity), placed, hi)
        const hitT = anyIn(startsByType.get(`${e.entity}\u0000${e.type}`), placed, hi)
        chanceTotal++
        ta.chanceDraws++
        if (hit) {
          chanceHits++
          ta.chanceHits++
        }
        if (hitT) {
          chanceHitsTyped++
          ta.chanceHitsTyped++
        }
      }
    }
  }

  const perType: Record<string, TypeScore> = {}
  for (const [t, a] of acc) {
    const md = median(a.delays),
      mdt = median(a.delaysTyped)
    perType[t] = {
      episodes: a.episodes,
      detected: a.detected,
      detectedTyped: a.detectedTyped,
      recall: ratio(a.detected, a.episodes),
      recallTyped: ratio(a.detectedTyped, a.episodes),
      alerts: a.alerts,
      alertsHitTyped: a.alertsHitTyped,
      precisionTyped: ratio(a.alertsHitTyped, a.alerts),
      medianDelayS: md === null ? null : md / 1000,
      medianDelayTypedS: mdt === null ? null : mdt / 1000,
      chanceRecall: ratio(a.chanceHits, a.chanceDraws),
      chanceRecallTyped: ratio(a.chanceHitsTyped, a.chanceDraws),
    }
  }
  const md = median(delays)
  return {
    graceS: grace / 1000,
    episodes,
    alerts,
    hits,
    duplicates,
    falseAlerts,
    falseAlertsInMaintenance: inMaint,
    warmupAlerts: warmup,
    precision: ratio(hits, alerts),
    recall: ratio(hits, episodes),
    precisionTyped: ratio(hitsTyped, alerts),
    recallTyped: ratio(hitsTyped, episodes),
    medianDelayS: md === null ? null : md / 1000,
    days,
    entityDays,
    falseAlertsPerEntityDay: ratio(falseAlerts, entityDays),
    alertsPerDay: ratio(alerts, days),
    chanceRecall: ratio(chanceHits, chanceTotal),
    chanceRecallTyped: ratio(chanceHitsTyped, chanceTotal),
    perType,
    confusion,
  }
}
