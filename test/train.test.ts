/**
 * `pitwall train` (sites/simulate/train.ts): the logistic fit recovers known coefficients; a model trained from
 * the asset simulator's history and maintenance log is a valid `asset` model and, loaded as profile config,
 * detects the degradations of a different seed against its ground truth; bad options exit 2.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ActorCell } from '../actors/cell.js'
import type { ActorDefinition } from '../actors/actor.js'
import { ASSET_DEFAULTS, asset, type AssetConfig } from '../actors/kinds/sensor/asset.js'
import { alertSpans, runCells, score } from '../bench/detect.js'
import { AssetSimulator } from '../sites/simulate/asset.js'
import { fitLogistic, trainMain, type TrainedModel } from '../sites/simulate/train.js'

void t.test('logistic fit recovers known coefficients', async (t) => {
  let s = 42
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296)
  const x: number[][] = [], y: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const a = rnd() * 4 - 2, b = rnd() * 10
    x.push([a, b])
    y.push(rnd() < 1 / (1 + Math.exp(-(1 + 2 * a - 0.5 * b))) ? 1 : 0)
  }
  const f = fitLogistic(x, y, 0)
  t.ok(Math.abs(f.intercept - 1) < 0.15, `intercept ${f.intercept}`)
  t.ok(Math.abs((f.weights[0] ?? 0) - 2) < 0.15, `w1 ${f.weights[0]}`)
  t.ok(Math.abs((f.weights[1] ?? 0) + 0.5) < 0.05, `w2 ${f.weights[1]}`)
})

void t.test('train from simulated history; the model loads and detects another seed\'s degradations', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-train-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const h = join(dir, 'history.csv'), m = join(dir, 'maintenance.csv'), out = join(dir, 'model.json')
  t.equal(await trainMain(['--simulate-days', '10', '--seed', '5', '--entities', '20', '--history', h, '--maintenance', m, '--out', out, '--version', 'test-1']), 0)
  t.match(readFileSync(h, 'utf8').split('\n')[0], 'entity,ts,vibration,temperature,pressure,flow')
  t.ok(readFileSync(m, 'utf8').includes(',repair'), 'the maintenance log has repairs')
  const model = JSON.parse(readFileSync(out, 'utf8')) as TrainedModel
  t.equal(model.version, 'test-1')
  t.same(Object.keys(model.weights).sort(), ['temperature_level', 'temperature_trend', 'temperature_variance', 'vibration_level', 'vibration_trend', 'vibration_variance'])
  t.ok(model.trained.positives > 0 && model.trained.samples > model.trained.positives)
  t.ok((model.weights['vibration_level'] ?? 0) > 0 && (model.weights['temperature_level'] ?? 0) > 0, 'hotter and shakier means riskier')
  const config: AssetConfig = { ...ASSET_DEFAULTS, model: { version: model.version, intercept: model.intercept, weights: model.weights } }
  t.doesNotThrow(() => new ActorCell(asset, config, { kind: 'sensor', id: 'x' }), 'a valid asset model')
  // Another seed, through the profile with the trained model, scored against its ground truth.
  const sim = new AssetSimulator({ seed: 77, locomotives: 20, anomalies: true })
  const end = sim.startTs + 10 * 86_400_000
  const def = { ...asset, defaults: config } as unknown as ActorDefinition<unknown, unknown>
  const outs = runCells(def, () => {
    const it = sim.next()
    return it.reading.ts < end ? it : undefined
  })
  const s = score(alertSpans(outs, end), sim.episodes(Infinity), ['degradation'], (ty) => (ty === 'risk_high' || ty === 'asset_danger' ? 'degradation' : undefined), end)['degradation']
  t.ok(s && s.episodes >= 5, `${s?.episodes} episodes`)
  t.ok(s && s.precision >= 0.95 && s.recall >= 0.9, `trained model: precision ${s?.precision}, recall ${s?.recall}`)
  const early = outs.filter((o) => o.type === 'alert' && (o.body as { type: string; state: string }).type === 'risk_high' && (o.body as { state: string }).state === 'open').length
  t.ok(early > 0, `${early} risk_high alerts from the trained model (before the danger floor)`)
})

void t.test('bad options exit 2', async (t) => {
  t.equal(await trainMain(['--history', 'h.csv']), 2)
  t.equal(await trainMain(['--bogus', '1']), 2)
})
