/**
 * The asset risk model on the independent locomotive fleet (bench/eval/asset-README.md, issue 20): the real
 * `asset` profile (one ActorCell per unit, what a worker runs, no broker) as a detector of `evaluateAssets`,
 * once with a model `pitwall train` fits on each seed's training period (its two CSVs, default flags) and once
 * with the built-in default model, beside the naive baseline, in the same run. Scored by the evaluation's own
 * scorer on the test period; besides, the share of true alerts whose top reason names the failure mode's feature
 * family (bearing -> vibration, cooling -> temperature, hydraulic -> pressure or flow), checked here against the
 * fleet's ground truth after the run (the detectors never see it).
 *
 * `npm run bench:detect -- --json` runs it on the held-out seeds (`--asset-eval heldout`, the default); `tuning`
 * runs the tuning seeds, `quick` a small tuning run, `off` skips it. `node dist/bench/asset-eval-run.js
 * [--asset-eval tuning|heldout|quick] [--units N]` runs only this part.
 */
import { ActorCell, ASSET_DEFAULTS, asset, mergeAssetModel } from '../actors/mod.js'
import type { AlertBody, AssetConfig, AssetModel, Output, Reading } from '../actors/mod.js'
import { evaluateAssets, HELDOUT_SEEDS, TUNING_SEEDS, type Detector, type DetectorInstance } from './eval/asset-eval.js'
import type { AlertEvent } from './eval/asset-score.js'
import { naiveBaseline } from './eval/asset-baselines.js'
import { AssetFleet } from './eval/asset-scenario.js'
import { historyRows, readFailures, trainModel, TRAIN_DEFAULTS, type TrainedModel } from '../cmd/train.js'

const HOUR = 3_600_000

interface Opened {
  seed: number
  entity: string
  ts: number
  family: string | null
}

/** The asset profile as an evaluation detector; `trained` fits a model per seed with `pitwall train`'s defaults. */
export function profileDetector(
  name: string,
  o: { trained: boolean; config?: AssetConfig; opens: Opened[]; models: TrainedModel[]; seeds: readonly number[] },
): Detector {
  let model: AssetModel | undefined
  let seedIdx = -1
  const det: Detector = {
    name,
    create(): DetectorInstance {
      seedIdx++
      const seed = o.seeds[seedIdx] ?? seedIdx
      const config = model ? mergeAssetModel(o.config ?? ASSET_DEFAULTS, model) : (o.config ?? ASSET_DEFAULTS)
      const cells = new Map<string, ActorCell>()
      let seq = 0
      let out: AlertEvent[] = []
      const emit = (x: Omit<Output, 'site' | 'partition' | 'token'>): void => {
        if (x.type !== 'alert') return
        const b = x.body as AlertBody
        out.push({ entity: x.entity, type: b.type, state: b.state, ts: x.ts })
        if (b.state === 'open') {
          const family =
            b.type === config.danger.type ? 'danger' : ((b.details?.['family'] as string | null | undefined) ?? null)
          o.opens.push({ seed, entity: x.entity, ts: x.ts, family })
        }
      }
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          let cell = cells.get(entity)
          if (!cell) cells.set(entity, (cell = new ActorCell(asset, config, { kind: 'sensor', id: entity })))
          out = []
          cell.applyReading(++seq, r.ts, r, emit)
          return out
        },
        // The last scored risk, read from the state (the live view would recompute every feature per reading).
        risk(entity: string): number | undefined {
          const r = (cells.get(entity)?.state as { r?: number } | undefined)?.r
          return r !== undefined && Number.isFinite(r) ? r : undefined
        },
      }
    },
  }
  if (o.trained) {
    det.train = async (readings: string, maintenance: string): Promise<void> => {
      const failures = await readFailures(maintenance, { logTime: 'failure', jobMs: 0 })
      const m = await trainModel(
        () => historyRows(readings),
        failures,
        {
          horizonMs: TRAIN_DEFAULTS.horizonHours * HOUR,
          l2: TRAIN_DEFAULTS.l2,
          sampleEvery: TRAIN_DEFAULTS.sampleEvery,
          logTime: 'failure',
          jobMs: 0,
          model: TRAIN_DEFAULTS.model,
          attributeMs: TRAIN_DEFAULTS.attributeHours * HOUR,
          downtimeMs: TRAIN_DEFAULTS.downtimeHours * HOUR,
          validateShare: TRAIN_DEFAULTS.validateShare,
          falseRate: TRAIN_DEFAULTS.falseRate,
          version: `eval-${o.models.length + 1}`,
        },
        o.config ?? ASSET_DEFAULTS,
      )
      o.models.push(m)
      model = m
    }
  }
  return det
}

const FAMILIES: Record<string, readonly string[]> = {
  bearing: ['vibration'],
  cooling: ['temperature'],
  hydraulic: ['pressure', 'flow'],
}

/** Share of openings 1-72 h before a predictable failure whose top reason is the mode's family. */
function familyShare(
  opens: readonly Opened[],
  seeds: readonly number[],
  units: number,
  days: number,
  trainDays: number,
): { share: number | null; n: number } {
  let right = 0,
    n = 0
  for (const seed of seeds) {
    const fleet = new AssetFleet({ seed, units, days })
    for (const _ of fleet.readings()) {
      /* run the fleet to its end: failures() lists those that happened */
    }
    const testStart = fleet.startTs + trainDays * 86_400_000
    for (const f of fleet.failures()) {
      const fam = FAMILIES[f.mode]
      if (!fam || f.ts < testStart) continue
      for (const a of opens) {
        if (
          a.seed !== seed ||
          a.entity !== f.entity ||
          a.family === 'danger' ||
          a.ts < f.ts - 72 * HOUR ||
          a.ts > f.ts - HOUR
        )
          continue
        n++
        if (a.family !== null && fam.includes(a.family)) right++
      }
    }
  }
  return { share: n ? right / n : null, n }
}

const r3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000)

/** Runs the evaluation; returns the compact figures of the three detectors. */
export async function assetEval(o: {
  seeds: readonly number[]
  units?: number
  days?: number
  log?: (s: string) => void
}): Promise<Record<string, unknown>> {
  const units = o.units ?? 60,
    days = o.days ?? 72,
    trainDays = days / 2
  const trainedOpens: Opened[] = [],
    builtinOpens: Opened[] = [],
    models: TrainedModel[] = []
  const rep = await evaluateAssets({
    seeds: o.seeds,
    units,
    days,
    trainDays,
    detectors: [
      profileDetector('asset-trained', { trained: true, opens: trainedOpens, models, seeds: o.seeds }),
      profileDetector('asset-builtin', { trained: false, opens: builtinOpens, models, seeds: o.seeds }),
      naiveBaseline(),
    ],
    ...(o.log ? { log: o.log } : {}),
  })
  const fam = {
    'asset-trained': familyShare(trainedOpens, o.seeds, units, days, trainDays),
    'asset-builtin': familyShare(builtinOpens, o.seeds, units, days, trainDays),
  }
  const out: Record<string, unknown> = { seeds: rep.seeds, units, days, trainDays }
  for (const d of rep.detectors) {
    const s = d.score
    const m = (k: 'bearing' | 'cooling' | 'hydraulic' | 'sudden'): string =>
      `${s.modes[k].warned}/${s.modes[k].caught}/${s.modes[k].total}`
    out[d.name] = {
      warned6h: r3(s.predictable.shareWarned),
      caught: r3(s.predictable.shareCaught),
      medianLeadH: r3(s.predictable.medianLeadH),
      falsePerAssetMonth: r3(s.falsePerAssetMonth),
      falseOnOddUnits: s.falseOnOddUnits,
      opensPerCaught: r3(s.opensPerCaught),
      auc: r3(s.auc),
      'modes warned/caught/total': {
        bearing: m('bearing'),
        cooling: m('cooling'),
        hydraulic: m('hydraulic'),
        sudden: m('sudden'),
      },
      ...(d.name in fam
        ? { rightFamily: r3(fam[d.name as keyof typeof fam].share), trueAlerts: fam[d.name as keyof typeof fam].n }
        : {}),
    }
  }
  out['trainedValidation'] = models.map((m) => ({
    recall6h: r3(m.validation?.recall6h ?? null),
    medianLeadH: r3(m.validation?.medianLeadHours ?? null),
    falsePerAssetMonth: r3(m.validation?.falsePerAssetMonth ?? null),
    warnings: m.warnings.length,
  }))
  return out
}

/** The bench:detect hook: `--asset-eval heldout|tuning|quick|off` (default heldout). */
export async function assetEvalSection(
  args: readonly string[],
  log: (s: string) => void,
): Promise<Record<string, unknown> | undefined> {
  const i = args.indexOf('--asset-eval')
  const which = i >= 0 ? args[i + 1] : 'heldout'
  if (which === 'off') return undefined
  if (which !== 'heldout' && which !== 'tuning' && which !== 'quick')
    throw new Error(`--asset-eval must be heldout, tuning, quick or off, got ${String(which)}`)
  const u = args.indexOf('--units')
  const units = u >= 0 ? Number(args[u + 1]) : which === 'quick' ? 16 : 60
  return await assetEval({
    seeds: which === 'heldout' ? HELDOUT_SEEDS : which === 'quick' ? [TUNING_SEEDS[0]] : TUNING_SEEDS,
    units,
    days: which === 'quick' ? 30 : 72,
    log,
  })
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const args = process.argv.slice(2)
  const out = await assetEvalSection(args.includes('--asset-eval') ? args : [...args, '--asset-eval', 'tuning'], (s) =>
    process.stderr.write(`${s}\n`),
  )
  process.stdout.write(`${JSON.stringify(out)}\n`)
}
