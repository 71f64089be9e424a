/**
 * `pitwall train` (cmd/train.ts): the logistic fit recovers known coefficients; labels follow the
 * documented semantics; the per-family fit attributes failures from the features and fits each head on its own
 * family; a model trained from the simulated mixed fleet's history and maintenance log is a valid
 * format-3 `asset` model (one head per family), carries held-out validation figures and, loaded as profile config, warns ahead of the
 * failures of another seed through the real profile; the lead-time scorer counts by hand; flags are parsed
 * strictly (per-command --help, unknown flags and bad values exit 2).
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ActorCell } from '../../actors/cell.js'
import {
  ASSET_DEFAULTS,
  ASSET_FEATURES,
  MODEL_FEATURE_SET,
  MODEL_FORMAT,
  MODEL_HEADS,
  asset,
  featureFamily,
  mergeAssetModel,
} from '../../actors/kinds/sensor/asset.js'
import { AssetSimulator } from '../../simulators/asset.js'
import { runAssetProfile, scoreLeadTime, type Failure, type HistoryRow } from '../../simulators/asset-score.js'
import {
  adviseOn,
  attributeFailures,
  fitHeads,
  fitLogistic,
  fitLogisticNonNegative,
  labelOf,
  trainMain,
  type FeatureRow,
  type HeadFit,
  type TrainedModel,
} from '../../cmd/train.js'

const H = 3_600_000

void t.test('logistic fit recovers known coefficients', async (t) => {
  let s = 42
  const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296
  const x: number[][] = [],
    y: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const a = rnd() * 4 - 2,
      b = rnd() * 10
    x.push([a, b])
    y.push(rnd() < 1 / (1 + Math.exp(-(1 + 2 * a - 0.5 * b))) ? 1 : 0)
  }
  const f = fitLogistic(x, y, 0)
  t.ok(Math.abs(f.intercept - 1) < 0.15, `intercept ${f.intercept}`)
  t.ok(Math.abs((f.weights[0] ?? 0) - 2) < 0.15, `w1 ${f.weights[0]}`)
  t.ok(Math.abs((f.weights[1] ?? 0) + 0.5) < 0.05, `w2 ${f.weights[1]}`)
})

void t.test(
  'non-negative fit: a feature that came out negative weighs 0, the others are refitted without it',
  async (t) => {
    let s = 7
    const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296
    const x: number[][] = [],
      y: number[] = []
    for (let i = 0; i < 20_000; i++) {
      const a = rnd() * 4 - 2,
        b = rnd() * 10,
        c = rnd() * 2
      x.push([a, b, c])
      y.push(rnd() < 1 / (1 + Math.exp(-(1 + 2 * a - 0.5 * b + 1.5 * c))) ? 1 : 0)
    }
    const signed = fitLogistic(x, y, 0)
    t.ok((signed.weights[1] ?? 0) < -0.4, `signed fit keeps the negative weight: ${signed.weights[1]}`)
    const f = fitLogisticNonNegative(x, y, 0)
    t.equal(f.weights[1], 0, 'the negative feature is fixed at 0')
    t.ok(
      f.weights.every((w) => w >= 0),
      `all weights >= 0: ${f.weights.join(', ')}`,
    )
    // Leaving a real effect out of a logistic fit attenuates the others a little (2 and 1.5 true): they stay clearly positive.
    t.ok(
      (f.weights[0] ?? 0) > 1 && (f.weights[2] ?? 0) > 0.8,
      `the positive features keep their weight: ${f.weights.join(', ')}`,
    )
    // Nothing negative to drop: the same fit as the unconstrained one.
    const pos = x.map((r) => [r[0] as number, r[2] as number])
    const y2 = x.map(
      (r, i) => (rnd() < 1 / (1 + Math.exp(-(1 + 2 * (r[0] as number) + 1.5 * (r[2] as number)))) ? 1 : 0) + 0 * i,
    )
    t.same(fitLogisticNonNegative(pos, y2, 1).weights, fitLogistic(pos, y2, 1).weights)
  },
)

void t.test(
  'labels: positive within the horizon before a failure, left out while down, routine rows are no failures',
  async (t) => {
    const fails: Failure[] = [{ entity: 'a', ts: 100 * H }]
    const o = { horizonMs: 72 * H, downtimeMs: 24 * H }
    t.equal(labelOf({ entity: 'a', ts: 27 * H }, fails, o), 0, 'more than 72 h before')
    t.equal(labelOf({ entity: 'a', ts: 28 * H }, fails, o), 1, 'exactly 72 h before')
    t.equal(labelOf({ entity: 'a', ts: 99 * H }, fails, o), 1)
    t.equal(labelOf({ entity: 'a', ts: 100 * H }, fails, o), null, 'at the failure: down')
    t.equal(labelOf({ entity: 'a', ts: 123 * H }, fails, o), null)
    t.equal(labelOf({ entity: 'a', ts: 124 * H }, fails, o), 0, 'back after the downtime')
    t.equal(labelOf({ entity: 'b', ts: 99 * H }, fails, o), 0, 'another entity')
  },
)

void t.test('lead-time scorer counted by hand', async (t) => {
  const fails: Failure[] = [
    { entity: 'a', ts: 100 * H, mode: 'bearing' },
    { entity: 'b', ts: 100 * H, mode: 'cooling' },
    { entity: 'c', ts: 50 * H, mode: 'hydraulic' },
  ]
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
  t.match(s.byMode, {
    bearing: { failures: 1, caught6h: 1 },
    cooling: { failures: 1, caught6h: 0 },
    hydraulic: { failures: 1, caught6h: 0 },
  })
})

void t.test('warnings carry a concrete suggestion', async (t) => {
  const heads = ['vibration', 'temperature', 'hydraulic'].map((name) => ({
    name,
    failures: 5,
    samples: 100,
    positives: 10,
  }))
  const trained = { failures: 30, falseRate: 0.002, model: 'per-family', heads } as TrainedModel['trained']
  const poor = adviseOn(
    {
      failures: 10,
      caught6h: 2,
      recall6h: 0.2,
      medianLeadHours: 10,
      falseAlerts: 30,
      falsePerAssetMonth: 1.2,
      from: 0,
      to: 1,
      assets: 10,
    },
    trained,
  )
  t.equal(poor.length, 3)
  t.match(poor[0], /--false-rate \(e\.g\. 0\.006\).*--log-time completion/)
  t.match(poor[1], /lower --false-rate.*holdPeriods/)
  t.match(poor[2], /--horizon-hours/)
  t.same(
    adviseOn(
      {
        failures: 10,
        caught6h: 9,
        recall6h: 0.9,
        medianLeadHours: 40,
        falseAlerts: 0,
        falsePerAssetMonth: 0,
        from: 0,
        to: 1,
        assets: 10,
      },
      trained,
    ),
    [],
  )
  t.match(adviseOn(null, { ...trained, failures: 3 }), [/only 3 failures/, /held-out period holds no failure/])
  const lonely = { ...trained, heads: heads.map((h) => (h.name === 'hydraulic' ? { ...h, failures: 0 } : h)) }
  t.match(adviseOn(null, lonely), [
    /no training failure was attributed to the hydraulic head: it keeps the built-in weights/,
    /holds no failure/,
  ])
})

// Rows of 24 features (ASSET_FEATURES order) for the per-family fit: noise, plus a family's features raised
// in the hours before a failure of that family.
function familyRows(seed: number): { rows: FeatureRow[]; failures: Failure[] } {
  let x = seed
  const rnd = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648
  const idx = (fam: string): number[] =>
    ASSET_FEATURES.map((f, j) => (featureFamily(f) === fam ? j : -1)).filter((j) => j >= 0)
  const failures: Failure[] = []
  const rows: FeatureRow[] = []
  const plan: Array<[string, number, string | null]> = []
  for (let u = 0; u < 30; u++)
    plan.push([
      `u${u}`,
      (200 + (u % 7) * 40) * H,
      (['vibration', 'pressure', 'temperature', null] as const)[u % 4] ?? null,
    ])
  for (const [entity, fts, fam] of plan) {
    failures.push({ entity, ts: fts })
    for (let h = 0; h < 500; h++) {
      const ts = h * H
      const row = ASSET_FEATURES.map(() => Math.max(0, rnd() * 2 - 1))
      const before = (fts - ts) / H
      if (fam !== null && before > 0 && before <= 48)
        for (const j of idx(fam)) row[j] = (row[j] as number) + 6 * (1 - before / 60)
      rows.push({ entity, ts, x: row })
    }
  }
  rows.sort((a, b) => a.ts - b.ts)
  return { rows, failures }
}

void t.test(
  'per-family fit: failures attributed from the features alone; each head weighs its family only, at its own operating point',
  async (t) => {
    const { rows, failures } = familyRows(7)
    const o = { horizonMs: 72 * H, downtimeMs: 24 * H, attributeMs: 24 * H, until: Infinity }
    const owner = attributeFailures(rows, failures, o)
    // Expected from how the rows were built: u%4 = 0 vibration, 1 pressure (the hydraulic head), 2 temperature, 3 none.
    t.same(
      owner,
      failures.map((_, u) => (['vibration', 'hydraulic', 'temperature', null] as const)[u % 4]),
    )
    const heads = fitHeads(rows, failures, Infinity, { ...o, l2: 1, falseRate: 0.01 }, 70)
    t.same(
      heads.map((h) => h.name),
      ['vibration', 'temperature', 'hydraulic'],
    )
    for (const h of heads) {
      const fields = (MODEL_HEADS as Record<string, readonly string[]>)[h.name] ?? []
      ASSET_FEATURES.forEach((f, j) => {
        if (!fields.includes(featureFamily(f))) t.equal(h.weights[j], 0, `${h.name} head: ${f} weighs 0`)
      })
      t.ok(h.failures >= 7 && h.positives > 0, `${h.name}: ${h.failures} failures, ${h.positives} positives`)
      // Operating point: about falseRate of the head's healthy rows (no failure within 72 h) reach the threshold logit.
      const healthy = rows.filter((r) => labelOf(r, failures, o) === 0)
      const thr = Math.log(70 / 30)
      const over =
        healthy.filter((r) => r.x.reduce((a, v, j) => a + v * (h.weights[j] as number), h.intercept) >= thr).length /
        healthy.length
      t.ok(
        over <= 0.012 && over >= 0.005,
        `${h.name}: ${(100 * over).toFixed(2)} % of healthy rows at or above the threshold (falseRate 1 %)`,
      )
    }
    // A prior: with priorOnly the weights are the prior's (restricted to the head), only the intercept is fitted.
    const prior = ASSET_FEATURES.map((_, j) => j + 1)
    const fixed = fitHeads(rows, failures, Infinity, { ...o, l2: 1, falseRate: 0.01, prior, priorOnly: true }, 70)
    const vib = fixed[0] as HeadFit
    ASSET_FEATURES.forEach((f, j) => t.equal(vib.weights[j], featureFamily(f) === 'vibration' ? j + 1 : 0))
    // A strong pull toward the prior keeps the fitted weights near it; a weak one lets the data speak.
    const near = fitLogistic(
      rows.map((r) => r.x.slice(0, 2)),
      rows.map((r) => ((r.x[0] as number) > 3 ? 1 : 0)),
      1e7,
      [0.123, 0.456],
    )
    t.ok(
      Math.abs((near.weights[0] ?? 0) - 0.123) < 0.01 && Math.abs((near.weights[1] ?? 0) - 0.456) < 0.01,
      `pulled to the prior: ${near.weights.join(', ')}`,
    )
  },
)

void t.test(
  'train from the simulated fleet; the model is versioned, validated, loads and warns ahead on another seed',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-train-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const h = join(dir, 'history.csv'),
      m = join(dir, 'maintenance.csv'),
      out = join(dir, 'model.json')
    t.equal(
      await trainMain([
        '--simulate-days',
        '30',
        '--fleet',
        '--seed',
        '5',
        '--entities',
        '16',
        '--history',
        h,
        '--maintenance',
        m,
        '--out',
        out,
        '--version',
        'test-1',
      ]),
      0,
    )
    t.match(readFileSync(h, 'utf8').split('\n')[0], 'entity,ts,vibration,temperature,pressure,flow')
    t.ok(readFileSync(m, 'utf8').includes(',repair'), 'the maintenance log has repairs')
    const model = JSON.parse(readFileSync(out, 'utf8')) as TrainedModel
    t.match(model, { format: MODEL_FORMAT, features: MODEL_FEATURE_SET, version: 'test-1' })
    t.ok(model.trained.positives > 0 && model.trained.samples > model.trained.positives)
    t.ok(model.trained.failures >= 5, `${model.trained.failures} training failures`)
    t.ok(model.validation && model.validation.failures > 0, 'validated on the held-out period')
    t.ok(Array.isArray(model.warnings))
    t.same(
      model.heads.map((h) => h.name),
      ['vibration', 'temperature', 'hydraulic'],
      'one head per failure family (the default)',
    )
    t.equal(model.trained.model, 'per-family')
    for (const h of model.heads) {
      const fields = (MODEL_HEADS as Record<string, readonly string[]>)[h.name] ?? []
      t.ok(
        Object.keys(h.weights).every((k) => fields.some((f) => k.startsWith(`${f}_`))),
        `the ${h.name} head weighs only its family's features: ${Object.keys(h.weights).join(',')}`,
      )
    }
    const family = (f: string): number =>
      model.heads
        .flatMap((h) => Object.entries(h.weights))
        .filter(([k]) => k.startsWith(`${f}_`))
        .reduce((a, [, w]) => a + Math.max(0, w), 0)
    t.ok(
      family('vibration') > 0 && family('pressure') > 0,
      `vibration (${family('vibration').toFixed(2)}) and pressure (${family('pressure').toFixed(2)}) features carry weight`,
    )
    const config = mergeAssetModel(ASSET_DEFAULTS, model)
    t.doesNotThrow(() => new ActorCell(asset, config, { kind: 'sensor', id: 'x' }), 'a valid asset model')
    // Another seed, through the profile with the trained model, scored by lead time.
    const sim = new AssetSimulator({ seed: 77, locomotives: 16, anomalies: true, fleet: true, periodMs: 120_000 })
    const end = sim.startTs + 30 * 86_400_000
    const rows: HistoryRow[] = []
    for (let it = sim.next(); it.reading.ts < end; it = sim.next())
      rows.push({ entity: it.id, ts: it.reading.ts, fields: it.reading.fields })
    const all = sim
      .episodes(Infinity)
      .filter((e) => e.end < end)
      .map((e) => ({ entity: e.entity, ts: e.end, mode: e.mode as string }))
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
  },
)

void t.test('flags: --help, unknown flags and bad values exit 2', async (t) => {
  t.equal(await trainMain(['--help']), 0)
  t.equal(await trainMain(['-h']), 0)
  t.equal(await trainMain(['--history', 'h.csv']), 2, 'missing --maintenance and --out')
  t.equal(await trainMain(['--bogus', '1']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', '--log-time', 'sometime']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', '--false-rate', '2']), 2)
  t.equal(await trainMain(['--history', 'h', '--maintenance', 'm', '--out', 'o', 'stray']), 2, 'positionals rejected')
})
