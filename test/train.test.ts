/**
 * `pitwall train` (cmd/train.ts): the logistic fit recovers known coefficients; labels follow the
 * documented semantics; a model trained from the simulated mixed fleet's history and maintenance log is a valid
 * format-2 `asset` model, carries held-out validation figures and, loaded as profile config, warns ahead of the
 * failures of another seed through the real profile; the lead-time scorer counts by hand; flags are parsed
 * strictly (per-command --help, unknown flags and bad values exit 2).
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ActorCell } from '../actors/cell.js'
import { ASSET_DEFAULTS, MODEL_FEATURE_SET, MODEL_FORMAT, asset, mergeAssetModel } from '../actors/kinds/sensor/asset.js'
import { AssetSimulator } from '../simulators/asset.js'
import { runAssetProfile, scoreLeadTime, type Failure, type HistoryRow } from '../simulators/asset-score.js'
import { adviseOn, fitLogistic, fitLogisticNonNegative, labelOf, trainMain, type TrainedModel } from '../cmd/train.js'

const H = 3_600_000

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

void t.test('non-negative fit: a feature that came out negative weighs 0, the others are refitted without it', async (t) => {
  let s = 7
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296)
  const x: number[][] = [], y: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const a = rnd() * 4 - 2, b = rnd() * 10, c = rnd() * 2
    x.push([a, b, c])
    y.push(rnd() < 1 / (1 + Math.exp(-(1 + 2 * a - 0.5 * b + 1.5 * c))) ? 1 : 0)
  }
  const signed = fitLogistic(x, y, 0)
  t.ok((signed.weights[1] ?? 0) < -0.4, `signed fit keeps the negative weight: ${signed.weights[1]}`)
  const f = fitLogisticNonNegative(x, y, 0)
  t.equal(f.weights[1], 0, 'the negative feature is fixed at 0')
  t.ok(f.weights.every((w) => w >= 0), `all weights >= 0: ${f.weights.join(', ')}`)
  // Leaving a real effect out of a logistic fit attenuates the others a little (2 and 1.5 true): they stay clearly positive.
  t.ok((f.weights[0] ?? 0) > 1 && (f.weights[2] ?? 0) > 0.8, `the positive features keep their weight: ${f.weights.join(', ')}`)
  // Nothing negative to drop: the same fit as the unconstrained one.
  const pos = x.map((r) => [r[0] as number, r[2] as number])
  const y2 = x.map((r, i) => (rnd() < 1 / (1 + Math.exp(-(1 + 2 * (r[0] as number) + 1.5 * (r[2] as number)))) ? 1 : 0) + 0 * i)
  t.same(fitLogisticNonNegative(pos, y2, 1).weights, fitLogistic(pos, y2, 1).weights)
})

void t.test('labels: positive within the horizon before a failure, left out while down, routine rows are no failures', async (t) => {
  const fails: Failure[] = [{ entity: 'a', ts: 100 * H }]
  const o = { horizonMs: 72 * H, downtimeMs: 24 * H }
  t.equal(labelOf({ entity: 'a', ts: 27 * H }, fails, o), 0, 'more than 72 h before')
  t.equal(labelOf({ entity: 'a', ts: 28 * H }, fails, o), 1, 'exactly 72 h before')
  t.equal(labelOf({ entity: 'a', ts: 99 * H }, fails, o), 1)
  t.equal(labelOf({ entity: 'a', ts: 100 * H }, fails, o), null, 'at the failure: down')
  t.equal(labelOf({ entity: 'a', ts: 123 * H }, fails, o), null)
  t.equal(labelOf({ entity: 'a', ts: 124 * H }, fails, o), 0, 'back after the downtime')
  t.equal(labelOf({ entity: 'b', ts: 99 * H }, fails, o), 0, 'another entity')
})

void t.test('lead-time scorer counted by hand', async (t) => {
  const fails: Failure[] = [{ entity: 'a', ts: 100 * H, mode: 'bearing' }, { entity: 'b', ts: 100 * H, mode: 'cooling' }, { entity: 'c', ts: 50 * H, mode: 'hydraulic' }]
  const opens = [
    { entity: 'a', ts: 40 * H, type: 'risk_high', family: 'vibration' }, // 60 h ahead: caught, warned
    { entity: 'a', ts: 90 * H, type: 'risk_high', family: 'temperature' }, // same failure, later, wrong family
    { entity: 'b', ts: 96 * H, type: 'risk_high', family: 'temperature' }, // 4 h ahead: caught, not warned
    { entity: 'c', ts: 49.5 * H, type: 'risk_high', family: 'pressure' }, // 30 min ahead: too late, not false
    { entity: 'd', ts: 10 * H, type: 'risk_high', family: 'vibration' }, // no failure follows: false
  ]
  const s = scoreLeadTime(opens, fails, { from: 0, to: 30 * 24 * H, assets: 4 })
  t.match(s, { failures: 3, caught: 2, caught6h: 1, falseAlerts: 1, alerts: 5 })
  t.equal(s.medianLeadHours, 32)
  t.equal(s.falsePerAssetMonth, 0.25)
  t.equal(s.rightFamily, 2 / 3)
  t.match(s.byMode, { bearing: { failures: 1, caught6h: 1 }, cooling: { failures: 1, caught6h: 0 }, hydraulic: { failures: 1, caught6h: 0 } })
})

void t.test('warnings carry a concrete suggestion', async (t) => {
  const trained = { failures: 30, falseRate: 0.002 } as TrainedModel['trained']
  const poor = adviseOn({ failures: 10, caught6h: 2, recall6h: 0.2, medianLeadHours: 10, falseAlerts: 30, falsePerAssetMonth: 1.2, from: 0, to: 1, assets: 10 }, trained)
  t.equal(poor.length, 3)
  t.match(poor[0], /--false-rate \(e\.g\. 0\.006\).*--log-time completion/)
  t.match(poor[1], /lower --false-rate.*holdPeriods/)
  t.match(poor[2], /--horizon-hours/)
  t.same(adviseOn({ failures: 10, caught6h: 9, recall6h: 0.9, medianLeadHours: 40, falseAlerts: 0, falsePerAssetMonth: 0, from: 0, to: 1, assets: 10 }, trained), [])
  t.match(adviseOn(null, { ...trained, failures: 3 }), [/only 3 failures/, /held-out period holds no failure/])
})

void t.test('train from the simulated fleet; the model is versioned, validated, loads and warns ahead on another seed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-train-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const h = join(dir, 'history.csv'), m = join(dir, 'maintenance.csv'), out = join(dir, 'model.json')
  t.equal(await trainMain(['--simulate-days', '30', '--fleet', '--seed', '5', '--entities', '16', '--history', h, '--maintenance', m, '--out', out, '--version', 'test-1']), 0)
  t.match(readFileSync(h, 'utf8').split('\n')[0], 'entity,ts,vibration,temperature,pressure,flow')
  t.ok(readFileSync(m, 'utf8').includes(',repair'), 'the maintenance log has repairs')
  const model = JSON.parse(readFileSync(out, 'utf8')) as TrainedModel
  t.match(model, { format: MODEL_FORMAT, features: MODEL_FEATURE_SET, version: 'test-1' })
  t.ok(model.trained.positives > 0 && model.trained.samples > model.trained.positives)
  t.ok(model.trained.failures >= 5, `${model.trained.failures} training failures`)
  t.ok(model.validation && model.validation.failures > 0, 'validated on the held-out period')
  t.ok(Array.isArray(model.warnings))
  const family = (f: string): number => Object.entries(model.weights).filter(([k]) => k.startsWith(`${f}_`)).reduce((a, [, w]) => a + Math.max(0, w), 0)
  t.ok(family('vibration') > 0 && family('pressure') > 0, `vibration (${family('vibration').toFixed(2)}) and pressure (${family('pressure').toFixed(2)}) features carry weight`)
  const config = mergeAssetModel(ASSET_DEFAULTS, model)
  t.doesNotThrow(() => new ActorCell(asset, config, { kind: 'sensor', id: 'x' }), 'a valid asset model')
  // Another seed, through the profile with the trained model, scored by lead time.
  const sim = new AssetSimulator({ seed: 77, locomotives: 16, anomalies: true, fleet: true, periodMs: 120_000 })
  const end = sim.startTs + 30 * 86_400_000
  const rows: HistoryRow[] = []
  for (let it = sim.next(); it.reading.ts < end; it = sim.next()) rows.push({ entity: it.id, ts: it.reading.ts, fields: it.reading.fields })
  const all = sim.episodes(Infinity).filter((e) => e.end < end).map((e) => ({ entity: e.entity, ts: e.end, mode: e.mode as string }))
  const fails = all.filter((f) => f.mode !== 'sudden')
  const run = await runAssetProfile(rows, { model })
  const window = { from: sim.startTs + 5 * 86_400_000, to: end, assets: 16 }
  const s = scoreLeadTime(run.opens, fails, window)
  // An alert before a sudden failure is no false alert (nor a catch: sudden failures are scored apart).
  s.falsePerAssetMonth = scoreLeadTime(run.opens, all, window).falsePerAssetMonth
  t.ok(s.failures >= 6, `${s.failures} predictable failures`)
  t.ok(s.recall6h >= 0.5, `warned >= 6 h ahead: ${s.caught6h}/${s.failures}`)
  // A model fitted on 16 units' ~11 failures: the issue's 0.5 target is measured on the full evaluation (docs/benchmarks.md).
  t.ok(s.falsePerAssetMonth <= 1, `${s.falsePerAssetMonth} false alerts per asset-month`)
})

void t.test('flags: --help, unknown flags and bad values exit 2', async (t) => {
  t.equal(await trainMain(['--help']), 0)
  t.equal(await trainMain(['-h']), 0)
  t.equal(await trainMain(['--history', 'h.csv']), 2, 'missing --maintenance and --out')
  t.equal(await trainMain(['--bogus', '1']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', '--log-time', 'sometime']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', '--false-rate', '2']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', 'stray']), 2, 'positionals rejected')
})
