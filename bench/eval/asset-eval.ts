/**
 * The independent evaluation of asset risk detectors (issue 20): for each seed, a locomotive fleet from
 * asset-scenario.ts is split by time into a training period (the first `trainDays`) and a test period (the rest).
 * Detectors that train get the training period as the two CSVs `pitwall train` reads; then every detector sees
 * the whole run in time order (a deployed model has the history behind it too), and only the test period is
 * scored (asset-score.ts). Seeds come in two sets: TUNING_SEEDS for building and tuning a detector, HELDOUT_SEEDS
 * for final reports only.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../actors/errors.js'
import type { Reading } from '../../actors/types.js'
import { AssetFleet, DAY_MS, FAILURE_MODES, writeTrainingCsvs, type FailureMode } from './asset-scenario.js'
import {
  DEFAULT_ALERT_TYPES,
  scoreAssets,
  type AlertEvent,
  type AssetScore,
  type RiskDay,
  type ScoreRun,
} from './asset-score.js'

export type { AlertEvent } from './asset-score.js'

/** Seeds for building and tuning detectors. */
export const TUNING_SEEDS = [1, 2, 3, 4] as const
/** Seeds for final reports only: never tune on them. */
export const HELDOUT_SEEDS = [1001, 1002, 1003, 1004] as const

/** One running detector over a whole fleet (all units). */
export interface DetectorInstance {
  /** Feeds one reading of one unit (in time order across the fleet); returns the alert outputs it caused. */
  onReading(entity: string, r: Reading): AlertEvent[]
  /** The unit's current failure risk (any scale: only its order matters, for the AUC), if the detector has one. */
  risk?(entity: string): number | undefined
}

export interface Detector {
  name: string
  /** Alert types that count as a warning (default `risk_high` and `asset_danger`). */
  alertTypes?: readonly string[]
  /** Trains on one seed's training period (history CSV, maintenance log CSV); called before `create` for that seed. */
  train?(readingsCsvPath: string, maintenanceCsvPath: string): Promise<void> | void
  create(): DetectorInstance
}

export interface EvalOptions {
  seeds: readonly number[]
  /** Length of each run (72 days). */
  days?: number
  /** Training period, days from the start (half of `days`). */
  trainDays?: number
  /** Units per fleet (60). */
  units?: number
  intervalMs?: number
  detectors: readonly Detector[]
  /** Where the training CSVs are written (a temp dir, removed afterwards). */
  workDir?: string
  /** Progress lines (e.g. process.stderr.write). */
  log?: (line: string) => void
}

export interface DetectorReport {
  name: string
  alertTypes: readonly string[]
  score: AssetScore
  perSeed: Array<{ seed: number; score: AssetScore }>
  /** Time spent inside the detector (train + readings + risk), ms. */
  elapsedMs: number
}

export interface EvalReport {
  seeds: number[]
  days: number
  trainDays: number
  units: number
  readings: number
  /** Failures in the test periods, per mode, all seeds. */
  testFailures: Record<FailureMode, number>
  detectors: DetectorReport[]
}

/** Runs every detector over every seed and scores the test periods. */
export async function evaluateAssets(o: EvalOptions): Promise<EvalReport> {
  const days = o.days ?? 72
  const trainDays = o.trainDays ?? days / 2
  const units = o.units ?? 60
  if (o.seeds.length === 0) throw new ConfigError('eval.seeds', 'give at least one seed')
  if (!(trainDays > 0 && trainDays < days))
    throw new ConfigError('eval.trainDays', `must be in (0, days=${days}), got ${trainDays}`)
  if (o.detectors.length === 0) throw new ConfigError('eval.detectors', 'give at least one detector')
  const names = new Set(o.detectors.map((d) => d.name))
  if (names.size !== o.detectors.length) throw new ConfigError('eval.detectors', 'detector names must be unique')
  const log = o.log ?? (() => undefined)
  const runs = o.detectors.map(() => [] as Array<{ seed: number; run: ScoreRun }>)
  const elapsed = o.detectors.map(() => 0)
  const testFailures = Object.fromEntries(FAILURE_MODES.map((m) => [m, 0])) as Record<FailureMode, number>
  let readings = 0

  for (const seed of o.seeds) {
    const fleetOpts = { seed, units, days, ...(o.intervalMs === undefined ? {} : { intervalMs: o.intervalMs }) }
    const fleet = new AssetFleet(fleetOpts)
    const testStart = fleet.startTs + trainDays * DAY_MS
    const trainers = o.detectors.filter((d) => d.train)
    if (trainers.length > 0) {
      const dir = await mkdtemp(join(o.workDir ?? tmpdir(), 'asset-eval-'))
      try {
        const readingsPath = join(dir, `readings-${seed}.csv`)
        const maintenancePath = join(dir, `maintenance-${seed}.csv`)
        const n = await writeTrainingCsvs({ ...fleetOpts, untilTs: testStart, readingsPath, maintenancePath })
        log(`seed ${seed}: training CSVs ${n.readings} readings, ${n.maintenance} maintenance entries`)
        for (const [i, d] of o.detectors.entries()) {
          if (!d.train) continue
          const t0 = performance.now()
          await d.train(readingsPath, maintenancePath)
          elapsed[i] = (elapsed[i] as number) + performance.now() - t0
        }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }

    const instances = o.detectors.map((d) => d.create())
    const alerts = o.detectors.map(() => [] as AlertEvent[])
    const riskMax = o.detectors.map(() => new Map<string, number>())
    const t = o.detectors.map(() => 0)
    for (const { entity, reading } of fleet.readings()) {
      readings++
      const inTest = reading.ts >= testStart
      const dayKey = inTest
        ? `${entity}\u0000${testStart + Math.floor((reading.ts - testStart) / DAY_MS) * DAY_MS}`
        : ''
      for (let i = 0; i < instances.length; i++) {
        const inst = instances[i] as DetectorInstance
        const t0 = performance.now()
        const out = inst.onReading(entity, reading)
        const risk = inTest && inst.risk ? inst.risk(entity) : undefined
        t[i] = (t[i] as number) + performance.now() - t0
        for (const e of out) if (e.state === 'open') (alerts[i] as AlertEvent[]).push(e)
        if (risk !== undefined && Number.isFinite(risk)) {
          const m = riskMax[i] as Map<string, number>
          const prev = m.get(dayKey)
          if (prev === undefined || risk > prev) m.set(dayKey, risk)
        }
      }
    }
    const failures = fleet.failures()
    for (const f of failures) if (f.ts >= testStart && f.ts < fleet.endTs) testFailures[f.mode]++
    const oddUnits = fleet
      .unitInfo()
      .filter((u) => u.character !== 'normal')
      .map((u) => u.entity)
    for (let i = 0; i < instances.length; i++) {
      elapsed[i] = (elapsed[i] as number) + (t[i] as number)
      const riskDays: RiskDay[] = []
      for (const [k, risk] of riskMax[i] as Map<string, number>) {
        const [entity, day] = k.split('\u0000') as [string, string]
        riskDays.push({ entity, day: Number(day), risk })
      }
      ;(runs[i] as Array<{ seed: number; run: ScoreRun }>).push({
        seed,
        run: {
          failures,
          alerts: alerts[i] as AlertEvent[],
          testStart,
          testEnd: fleet.endTs,
          units,
          riskDays,
          oddUnits,
        },
      })
    }
    log(
      `seed ${seed}: ${failures.length} failures, detectors ${o.detectors.map((d, i) => `${d.name} ${Math.round(t[i] as number)} ms`).join(', ')}`,
    )
  }

  return {
    seeds: [...o.seeds],
    days,
    trainDays,
    units,
    readings,
    testFailures,
    detectors: o.detectors.map((d, i) => {
      const types = d.alertTypes ?? DEFAULT_ALERT_TYPES
      const mine = runs[i] as Array<{ seed: number; run: ScoreRun }>
      return {
        name: d.name,
        alertTypes: types,
        score: scoreAssets(
          mine.map((r) => r.run),
          types,
        ),
        perSeed: mine.map((r) => ({ seed: r.seed, score: scoreAssets([r.run], types) })),
        elapsedMs: Math.round(elapsed[i] as number),
      }
    }),
  }
}
