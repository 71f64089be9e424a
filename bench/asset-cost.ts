/**
 * Per-reading cost of the asset profile (issue 20: keep it small): the handler (`ActorCell.applyReading`, what a
 * worker runs per reading) timed with hrtime around each call over the independent locomotive fleet
 * (bench/eval/asset-scenario.ts), with the built-in model (one head) and with a per-family model (three heads,
 * the built-in weights split by family: the cost does not depend on the weights' values). Most readings only add
 * to the open period's sums; the reading that completes a period (one per unit and hour) recomputes the features
 * and every head, so both are reported.
 *
 *   node dist/bench/asset-cost.js [--units 12] [--days 16] [--seed 1]
 */
import {
  ActorCell,
  ASSET_DEFAULTS,
  ASSET_DEFAULT_MODEL,
  ASSET_MODEL_HEADS,
  asset,
  assetModelHeads,
  featureFamily,
  mergeAssetModel,
} from '../actors/mod.js'
import type { AssetConfig, AssetModel } from '../actors/mod.js'
import { AssetFleet } from './eval/asset-scenario.js'

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? Number(process.argv[i + 1]) : d
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`)
  return v
}

const pct = (xs: Float64Array | number[], q: number): number =>
  xs.length ? (xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number) : NaN
const r2 = (x: number): number => Math.round(x * 100) / 100

function measure(config: AssetConfig, o: { units: number; days: number; seed: number }): Record<string, number> {
  const fleet = new AssetFleet({ seed: o.seed, units: o.units, days: o.days })
  const cells = new Map<string, ActorCell>()
  const plain: number[] = [],
    periodic: number[] = []
  let seq = 0,
    scores = 0
  const emit = (x: { type: string }): void => {
    if (x.type === 'score') scores++
  }
  for (const { entity, reading } of fleet.readings()) {
    let cell = cells.get(entity)
    if (!cell) cells.set(entity, (cell = new ActorCell(asset, config, { kind: 'sensor', id: entity })))
    const before = scores
    const t0 = process.hrtime.bigint()
    cell.applyReading(++seq, reading.ts, reading, emit)
    const us = Number(process.hrtime.bigint() - t0) / 1000
    ;(scores > before ? periodic : plain).push(us)
  }
  const all = Float64Array.from([...plain, ...periodic]).sort()
  const p = Float64Array.from(periodic).sort()
  return {
    readings: seq,
    p50us: r2(pct(all, 0.5)),
    p95us: r2(pct(all, 0.95)),
    p99us: r2(pct(all, 0.99)),
    meanUs: r2(all.reduce((a, x) => a + x, 0) / all.length),
    periodCompletions: periodic.length,
    periodP50us: r2(pct(p, 0.5)),
    periodP95us: r2(pct(p, 0.95)),
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const o = { units: arg('--units', 12), days: arg('--days', 16), seed: arg('--seed', 1) }
  const base = assetModelHeads(ASSET_DEFAULT_MODEL)[0]?.weights ?? {}
  const heads: AssetModel = {
    ...ASSET_DEFAULT_MODEL,
    version: 'cost-heads',
    heads: Object.entries(ASSET_MODEL_HEADS).map(([name, fields]) => ({
      name,
      intercept: -9,
      weights: Object.fromEntries(
        Object.entries(base).filter(([f]) => (fields as readonly string[]).includes(featureFamily(f))),
      ),
    })),
  }
  // Warm up the JIT on a small run first, then measure each model.
  measure(ASSET_DEFAULTS, { ...o, units: 4, days: 12 })
  const out = {
    ...o,
    builtin: measure(ASSET_DEFAULTS, o),
    perFamily: measure(mergeAssetModel(ASSET_DEFAULTS, heads), o),
  }
  process.stdout.write(`${JSON.stringify(out)}\n`)
}
