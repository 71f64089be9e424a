/**
 * The sensor/asset profile through the real ActorCell (test/helpers/harness.ts): the danger floor at its exact
 * boundaries, hysteresis, the hourly per-unit features (each failure family moves its own features, a healthy
 * rough unit moves none), score factors, once-per-period scoring, one risk_high per developing fault with
 * updates and reasons, late readings, snapshot/restore (and migration of version 1), model validation.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../../actors/cell.js'
import { ConfigError } from '../../actors/errors.js'
import {
  ASSET_DEFAULTS,
  MODEL_FEATURE_SET,
  MODEL_FORMAT,
  asset,
  mergeAssetModel,
  type AssetConfig,
  type AssetModelHead,
} from '../../actors/kinds/sensor/asset.js'
import type { AlertBody, LateBody, Reading, ScoreBody } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'sensor', id: 'loco7' } as const
const T0 = 1_700_000_040_000 // a whole multiple of the 2-minute bucket
const C = ASSET_DEFAULTS

const alerts = (outs: EmittedOutput[], type?: string): AlertBody[] =>
  outs
    .filter((o) => o.type === 'alert')
    .map((o) => o.body as AlertBody)
    .filter((a) => type === undefined || a.type === type)
const scores = (outs: EmittedOutput[]): EmittedOutput[] => outs.filter((o) => o.type === 'score')
const msgs = (rs: Reading[]): HarnessMessage[] => rs.map((reading) => ({ reading }))
const at = (s: number, vibration: number, temperature: number): Reading => ({
  ts: T0 + s * 1000,
  fields: { vibration, temperature },
})

/** A config with some parts replaced (a fresh object: validation is per config object). */
function cfg(over: Record<string, unknown>): AssetConfig {
  const base = JSON.parse(JSON.stringify(C)) as Record<string, unknown>
  for (const [k, v] of Object.entries(over)) {
    base[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...(base[k] as object), ...v } : v
  }
  return base as unknown as AssetConfig
}

void t.test('danger floor: exact boundaries of vibration, temperature and duration', async (t) => {
  const run = (v: number, temp: number, lastS: number): EmittedOutput[] => {
    const rs: Reading[] = []
    for (let s = 0; s <= lastS; s += 5) rs.push(at(s, v, temp))
    return runActor(asset, entity, msgs(rs)).outputs
  }
  t.same(alerts(run(6.99, 90, 60)), [], 'vibration 6.99 does not open')
  t.same(alerts(run(9, 84.99, 60)), [], 'temperature 84.99 does not open')
  const open = alerts(run(7, 85, 30), 'asset_danger')
  t.equal(open.length, 1, 'vibration 7 with temperature 85 opens after exactly durationMs')
  t.match(open[0], { state: 'open', severity: 'critical', start: T0, alertId: `sensor:loco7:asset_danger:${T0}` })
  t.same(alerts(run(7, 85, 25), 'asset_danger'), [], 'not before the duration')
  const outs = run(7, 85, 60)
  const last = scores(outs).at(-1)?.body as ScoreBody
  t.equal(last.value, 100, 'risk is floored at 100 while danger is open')
  const view = runActor(asset, entity, msgs([at(0, 7, 85), at(30, 7, 85)])).cell.query() as {
    risk: number
    floor: boolean
    alerts: Array<{ type: string }>
    reasons: Array<{ feature: string }>
  }
  t.equal(view.risk, 100)
  t.equal(view.floor, true)
  t.same(
    view.alerts.map((a) => a.type),
    ['asset_danger'],
  )
  t.equal(view.reasons[0]?.feature, 'danger')
  // A dip below the threshold before the duration resets the run.
  t.same(
    alerts(
      runActor(asset, entity, msgs([at(0, 8, 90), at(20, 6.9, 90), at(40, 8, 90), at(60, 8, 90)])).outputs,
      'asset_danger',
    ),
    [],
  )
})

void t.test('danger hysteresis: closes only at vibration <= 6.5 or temperature <= 80', async (t) => {
  const base = [at(0, 8, 90), at(30, 8, 90)]
  const tail = (rs: Reading[]): AlertBody[] =>
    alerts(runActor(asset, entity, msgs([...base, ...rs])).outputs, 'asset_danger')
  t.same(
    tail([at(40, 6.6, 90), at(50, 7, 80.1)]).map((a) => a.state),
    ['open'],
    'inside the band it stays open',
  )
  const closed = tail([at(40, 6.6, 90), at(50, 6.5, 90)])
  t.same(
    closed.map((a) => a.state),
    ['open', 'close'],
  )
  t.match(closed[1], { start: T0, end: T0 + 50_000, alertId: `sensor:loco7:asset_danger:${T0}` })
  t.same(
    tail([at(40, 9, 80)]).map((a) => a.state),
    ['open', 'close'],
    'temperature at 80 closes',
  )
  const after = runActor(asset, entity, msgs([...base, at(40, 2, 45)])).cell.query() as { risk: number; floor: boolean }
  t.equal(after.floor, false)
  t.ok(after.risk < 100, 'the floor lifts when the alert closes')
})

// ---- hourly per-unit features ------------------------------------------------------------------------------------

const H = 3_600_000
const STEP = 120_000
/** Hour-aligned start for the hourly tests. */
const TH = Math.ceil(T0 / H) * H
type Shape = (h: number, i: number) => Partial<Record<'vibration' | 'temperature' | 'pressure' | 'flow', number>>
/** A unit reporting every 2 minutes for `hours`, nominal plus `shape` (h = hours since start, i = sample index). */
function unit(hours: number, shape: Shape = () => ({})): Reading[] {
  const rs: Reading[] = []
  for (let i = 0; i * STEP < hours * H; i++) {
    const h = (i * STEP) / H
    // Deterministic wobble so the baseline has a spread (duty cycle every 3 h, a little noise).
    const duty = Math.floor(h) % 3 === 0 ? 1 : 0
    const w = Math.sin(i * 1.7) * 0.5 + Math.sin(i * 0.31) * 0.5
    const base = {
      vibration: 2 + 0.5 * duty + 0.2 * w,
      temperature: 45 + 10 * duty + 1.5 * w,
      pressure: 5 + 0.1 * w,
      flow: 12 + 0.4 * w,
    }
    rs.push({ ts: TH + i * STEP, fields: { ...base, ...shape(h, i) } })
  }
  return rs
}
type View = {
  risk: number | null
  features: Record<string, number>
  reasons: Array<{ feature: string; family: string; contribution: number | null }>
  baselinePeriods: number
  alerts: Array<{ type: string }>
  modelVersion: string | number
  last: Record<string, number>
  lateCount: number
}
const view = (rs: Reading[], c: AssetConfig = C): View =>
  runActor(asset, entity, msgs(rs), { config: c }).cell.query() as View
const ramp =
  (from: number, hours: number) =>
  (h: number): number =>
    Math.max(0, Math.min(1, (h - from) / hours))

void t.test('each failure family moves its own features; a healthy rough unit moves none', async (t) => {
  const healthy = view(unit(96))
  t.equal(healthy.baselinePeriods >= C.baseline.warmupPeriods, true, 'baseline warm')
  const maxOf = (v: View): number => Math.max(...Object.values(v.features))
  t.ok(maxOf(healthy) < 3, `healthy unit: largest feature ${maxOf(healthy).toFixed(2)}`)
  t.ok((healthy.risk ?? 100) < 5, `healthy risk ${healthy.risk}`)
  // Runs rough (vibration x2) and hot (+12 °C) all its life: its own baseline absorbs it.
  const rough = view(
    unit(96, (_h, i) => ({
      vibration: 4.2 + 0.4 * Math.sin(i * 1.7),
      temperature: 57 + 10 * (Math.floor((i * STEP) / H) % 3 === 0 ? 1 : 0) + 1.5 * Math.sin(i * 1.7),
    })),
  )
  t.ok(
    maxOf(rough) < 3 && (rough.risk ?? 100) < 5,
    `rough unit: largest feature ${maxOf(rough).toFixed(2)}, risk ${rough.risk}`,
  )
  const bearing = view(unit(96, (h, i) => ({ vibration: 2 + 0.2 * Math.sin(i * 1.7) + 3 * ramp(60, 36)(h) })))
  t.ok(
    (bearing.features['vibration_level_up'] ?? 0) > 5 && (bearing.features['vibration_trend_up'] ?? 0) > 1,
    `bearing: ${JSON.stringify(bearing.features)}`,
  )
  t.equal(bearing.reasons[0]?.family, 'vibration')
  const leak = view(unit(96, (h) => ({ pressure: 5 - 1.5 * ramp(48, 48)(h) })))
  t.ok(
    (leak.features['pressure_level_down'] ?? 0) > 5 && (leak.features['pressure_trend_down'] ?? 0) > 1,
    `leak: ${JSON.stringify(leak.features)}`,
  )
  t.equal(leak.features['pressure_level_up'], 0)
  t.equal(leak.reasons[0]?.family, 'pressure')
  // Cooling: hotter only when worked hard (the duty hours).
  const cooling = view(
    unit(96, (h, i) => {
      const duty = Math.floor(h) % 3 === 0
      return { temperature: 45 + (duty ? 10 + 25 * ramp(60, 36)(h) : 0) + 1.5 * Math.sin(i * 1.7) }
    }),
  )
  t.ok(
    (cooling.features['temperature_load'] ?? 0) > 3 && (cooling.features['temperature_peak'] ?? 0) > 3,
    `cooling: ${JSON.stringify(cooling.features)}`,
  )
  t.equal(cooling.reasons[0]?.family, 'temperature')
  t.ok(
    Object.values(cooling.features).every((x) => Number.isFinite(x) && x >= 0 && x <= C.zClip),
    'features are finite, one-sided and clipped',
  )
})

void t.test('no features, risk or alerts before the baseline is warm; scores once per completed period', async (t) => {
  const early = runActor(asset, entity, msgs(unit(C.baseline.warmupPeriods)))
  t.same(scores(early.outputs), [], 'no score while the unit is still unknown')
  t.equal((early.cell.query() as View).risk, null)
  const outs = runActor(asset, entity, msgs(unit(40))).outputs
  const sc = scores(outs)
  // Periods complete at hours warmup..39 (the reading that opens hour h completes hour h-1).
  t.equal(sc.length, 40 - C.baseline.warmupPeriods)
  for (const o of sc) {
    t.equal((o.ts - TH) % H, 0, 'scored on the first reading of a period')
    const b = o.body as ScoreBody
    t.equal(o.id, `sensor:loco7:score:failure_risk:${o.ts}`)
    const sum = (C.model.heads?.[0]?.intercept ?? NaN) + Object.values(b.factors).reduce((a, x) => a + x, 0)
    t.ok(Math.abs(100 / (1 + Math.exp(-sum)) - b.value) < 1e-9, 'factors sum to the logit')
  }
})

void t.test(
  'one risk_high per developing fault: opens after the hold, updates as risk grows with reasons, closes after the clear run',
  async (t) => {
    const fault = (h: number): number => (h < 60 ? 0 : h < 84 ? 4 * ramp(60, 16)(h) : 0)
    const rs = unit(130, (h, i) => ({ vibration: 2 + 0.2 * Math.sin(i * 1.7) + fault(h) }))
    const outs = runActor(asset, entity, msgs(rs)).outputs
    const rh = alerts(outs, 'risk_high')
    const states = rh.map((a) => a.state)
    t.equal(states.filter((s) => s === 'open').length, 1, `one opening: ${states.join(',')}`)
    t.equal(states[0], 'open')
    t.equal(states.at(-1), 'close', 'closed after the fault is gone')
    t.ok(
      states.slice(1, -1).every((s) => s === 'update'),
      'in between only updates',
    )
    const ids = new Set(rh.map((a) => a.alertId))
    t.equal(ids.size, 1, 'one alert id')
    const open = rh[0] as AlertBody
    const reasons = open.details?.['reasons'] as Array<{
      feature: string
      family: string
      value: number
      contribution: number
    }>
    t.ok(reasons.length >= 1 && reasons.every((r) => r.contribution > 0), 'reasons with their contributions')
    t.equal(open.details?.['family'], 'vibration')
    t.match(open.explanation, /vibration_/)
    // Held: the first scored risk above the threshold does not open it yet.
    const hot = scores(outs).filter((o) => (o.body as ScoreBody).value >= C.riskHigh.threshold)
    t.ok(hot.length >= C.riskHigh.holdPeriods)
    t.equal(open.start, hot[0]?.ts, 'the alert starts at the first hot period')
    const openOut = outs.find((o) => o.type === 'alert' && (o.body as AlertBody).state === 'open')
    t.equal(openOut?.ts, hot[C.riskHigh.holdPeriods - 1]?.ts, `opens after ${C.riskHigh.holdPeriods} hot periods`)
    let prev = 0
    for (const u of rh.filter((a) => a.state !== 'close')) {
      t.ok(
        u.value >= prev + (prev === 0 ? 0 : C.riskHigh.updateStep),
        `update at ${u.value.toFixed(1)} after ${prev.toFixed(1)}`,
      )
      prev = u.value
    }
    const close = rh.at(-1) as AlertBody
    t.ok(close.end !== undefined && close.end > open.start)
  },
)

void t.test(
  'per-family heads: the risk is the largest head, whose features are the reasons and whose name the alert carries',
  async (t) => {
    // Two heads with hand-set weights: a vibration head that a leak leaves at its intercept, and a hydraulic head.
    const model = {
      format: MODEL_FORMAT,
      features: MODEL_FEATURE_SET,
      version: 'heads-test',
      heads: [
        { name: 'vibration', intercept: -6, weights: { vibration_level_up: 1, vibration_trend_up: 0.5 } },
        {
          name: 'hydraulic',
          intercept: -7,
          weights: { pressure_level_down: 1, pressure_trend_down: 0.5, flow_level_up: 0.5 },
        },
      ],
    }
    const c = mergeAssetModel(C, model)
    const rs = unit(96, (h) => ({ pressure: 5 - 1.5 * ramp(48, 48)(h) }))
    const run = runActor(asset, entity, msgs(rs), { config: c })
    const v = run.cell.query() as View & { heads: Record<string, number | null> }
    const logistic = (l: number): number => 100 / (1 + Math.exp(-l))
    const f = v.features
    // Expected head risks computed here from the documented formula, not read from the profile.
    const hyd = logistic(
      -7 + (f['pressure_level_down'] ?? 0) + 0.5 * (f['pressure_trend_down'] ?? 0) + 0.5 * (f['flow_level_up'] ?? 0),
    )
    const vib = logistic(-6 + (f['vibration_level_up'] ?? 0) + 0.5 * (f['vibration_trend_up'] ?? 0))
    t.ok(
      Math.abs((v.heads['hydraulic'] ?? NaN) - hyd) < 1e-9 && Math.abs((v.heads['vibration'] ?? NaN) - vib) < 1e-9,
      `head risks ${JSON.stringify(v.heads)}`,
    )
    t.ok(
      hyd > 90 && vib < 1,
      `the leak drives the hydraulic head (${hyd.toFixed(1)}) and not the vibration head (${vib.toFixed(3)})`,
    )
    const last = scores(run.outputs).at(-1)?.body as ScoreBody
    t.ok(
      Math.abs(last.value - Math.max(hyd, vib)) < 1e-6 || last.value > C.riskHigh.threshold,
      'the scored risk is the largest head',
    )
    t.ok(
      Object.keys(last.factors).every((k) => k.startsWith('pressure_') || k.startsWith('flow_')),
      `score factors are the top head's: ${Object.keys(last.factors).join(',')}`,
    )
    t.ok(
      v.reasons.length > 0 && v.reasons.every((r) => r.family === 'pressure' || r.family === 'flow'),
      'reasons come from the hydraulic head',
    )
    const open = alerts(run.outputs, 'risk_high').find((a) => a.state === 'open')
    t.equal(open?.details?.['head'], 'hydraulic')
    t.equal(open?.details?.['family'], 'pressure')
    // The same unit with a bearing fault: the vibration head takes over.
    const b = runActor(
      asset,
      entity,
      msgs(unit(96, (h, i) => ({ vibration: 2 + 0.2 * Math.sin(i * 1.7) + 3 * ramp(60, 36)(h) }))),
      { config: c },
    )
    t.equal(alerts(b.outputs, 'risk_high').find((a) => a.state === 'open')?.details?.['head'], 'vibration')
  },
)

void t.test('live query: risk, reasons with families, last values, open alerts', async (t) => {
  const rs = unit(90, (h, i) => ({
    vibration: 2 + 0.2 * Math.sin(i * 1.7) + 4 * ramp(60, 16)(h),
    pressure: 5.1,
    flow: 12,
  }))
  const v = view(rs)
  t.ok((v.risk ?? 0) > C.riskHigh.threshold, `risk ${v.risk}`)
  t.equal(v.reasons.length, C.reasons)
  t.equal(v.reasons[0]?.family, 'vibration', 'the largest contribution first')
  t.ok((v.reasons[0]?.contribution ?? 0) >= (v.reasons[1]?.contribution ?? 0))
  t.same(Object.keys(v.last).sort(), ['flow', 'pressure', 'temperature', 'vibration'])
  t.same(
    v.alerts.map((a) => a.type),
    ['risk_high'],
  )
  t.equal(v.modelVersion, C.model.version)
})

void t.test('late readings are emitted aside and not applied', async (t) => {
  let lateSeen = 0
  fc.assert(
    fc.property(
      fc.array(fc.record({ step: fc.integer({ min: 0, max: 90 }), back: fc.integer({ min: 0, max: 120 }) }), {
        minLength: 1,
        maxLength: 80,
      }),
      (xs) => {
        let clock = T0
        const rs: Reading[] = xs.map((x) => ({
          ts: (clock += x.step * 1000) - x.back * 1000,
          fields: { vibration: 2, temperature: 45 },
        }))
        let maxTs = -Infinity
        const late: number[] = []
        rs.forEach((r, i) => {
          maxTs = Math.max(maxTs, r.ts)
          if (r.ts < maxTs - C.allowedLatenessMs) late.push(i + 1)
        })
        const run = runActor(asset, entity, msgs(rs))
        const got = run.outputs.filter((o) => o.type === 'late').map((o) => (o.body as LateBody).readingSeq)
        if (got.join() !== late.join()) throw new Error(`late ${got.join()} vs ${late.join()}`)
        if ((run.cell.query() as View).lateCount !== late.length) throw new Error('late count')
        lateSeen += late.length
      },
    ),
    { numRuns: 200 },
  )
  t.ok(lateSeen > 20, `${lateSeen} late readings`)
})

void t.test('snapshot/restore mid-run gives identical outputs; state is compact; version 1 migrates', async (t) => {
  const base = unit(80, (h, i) => ({ vibration: 2 + 0.2 * Math.sin(i * 1.7) + 4 * ramp(50, 16)(h) }))
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: base.length }), { maxLength: 4 }),
      fc.integer({ min: 0, max: 20 }),
      (cuts, drop) => {
        // Gaps (dropped stretches) included: missing periods are absent, not zero.
        const rs = base.filter((_, i) => drop === 0 || Math.floor(i / 200) % drop !== 1)
        const a = runActor(asset, entity, msgs(rs))
        const b = runActor(asset, entity, msgs(rs), { snapshotBefore: cuts.filter((x) => x <= rs.length) })
        if (JSON.stringify(a.outputs) !== JSON.stringify(b.outputs)) throw new Error('outputs differ after restore')
        if (JSON.stringify(a.cell.query()) !== JSON.stringify(b.cell.query()))
          throw new Error('query differs after restore')
        const ids = a.outputs.map((o) => o.id)
        if (new Set(ids).size !== ids.length) throw new Error('duplicate output ids')
      },
    ),
    { numRuns: 25 },
  )
  const run = runActor(asset, entity, msgs(base))
  const size = JSON.stringify(run.cell.snapshot(1).state).length
  t.ok(size < 12_000, `snapshot state is ${size} bytes (24 hourly periods x 6 channels x 3 figures)`)
  const copy = new ActorCell(asset, C, entity, JSON.parse(JSON.stringify(run.cell.snapshot(1))))
  t.same(copy.query(), run.cell.query(), 'a new cell from the JSON snapshot answers the same')
  t.throws(() => new ActorCell(asset, C, entity, { ...run.cell.snapshot(1), v: 3 }), /newer/)
  // A version 1 snapshot (10-minute window) keeps its live values, danger detector and late count.
  const v1 = {
    f: 1 as const,
    profile: 'asset',
    v: 1,
    lastSeq: 7,
    maxEventTs: T0,
    timers: [],
    token: 1,
    state: {
      b: new Array<number>(60).fill(0),
      h: 1,
      v: [T0, 3, 50, 5, 12],
      d: [...new Array<null>(16).fill(null)].map((_, i) => (i === 0 || i === 7 || i === 8 || i === 15 ? 0 : null)),
      r: 1,
      ls: T0,
      l: 4,
    },
  }
  const mig = new ActorCell(asset, C, entity, v1)
  const mv = mig.query() as View
  t.same(mv.last, { vibration: 3, temperature: 50, pressure: 5, flow: 12 })
  t.equal(mv.lateCount, 4)
  t.equal(mv.baselinePeriods, 0, 'the baseline is learned afresh')
  mig.applyReading(8, T0 + 1000, { ts: T0 + 1000, fields: { vibration: 2, temperature: 45 } }, () => undefined)
  t.equal(mig.snapshot(1).v, 2, 'written back as version 2')
})

void t.test('invalid config and old model files are rejected at activation, naming the setting', async (t) => {
  const settingOf = (c: AssetConfig): string | undefined => {
    try {
      new ActorCell(asset, c, entity)
      return undefined
    } catch (err) {
      return err instanceof ConfigError ? err.setting : 'not a ConfigError'
    }
  }
  t.equal(settingOf(C), undefined, 'the defaults are valid')
  const head0 = C.model.heads?.[0] as AssetModelHead
  const withHead = (h: Record<string, unknown>): Record<string, unknown> => ({
    ...C.model,
    heads: [{ ...head0, ...h }],
  })
  t.equal(settingOf(cfg({ model: withHead({ intercept: Number.NaN }) })), 'asset.model.heads[0].intercept')
  t.equal(settingOf(cfg({ model: { ...C.model, version: 0 } })), 'asset.model.version')
  t.equal(settingOf(cfg({ model: { ...C.model, version: '' } })), 'asset.model.version')
  t.equal(
    settingOf(cfg({ model: withHead({ weights: { vibration_level_up: 'x' } }) })),
    'asset.model.heads[0].weights.vibration_level_up',
  )
  t.equal(settingOf(cfg({ model: withHead({ weights: { bogus: 1 } }) })), 'asset.model.heads[0].weights.bogus')
  t.equal(
    settingOf({ ...C, model: withHead({ weights: undefined }) } as unknown as AssetConfig),
    'asset.model.heads[0].weights',
  )
  t.equal(settingOf(cfg({ model: { ...C.model, heads: [] } })), 'asset.model.heads')
  t.equal(
    settingOf(cfg({ model: { ...C.model, heads: [head0, head0] } })),
    'asset.model.heads[1].name',
    'head names are unique',
  )
  // A format-2 file (one logistic) is still read, as one head; its fields are checked where they are.
  const v2 = {
    format: 2,
    features: MODEL_FEATURE_SET,
    version: 'trained-2',
    intercept: head0.intercept,
    weights: head0.weights,
  }
  t.equal(settingOf(cfg({ model: v2 })), undefined, 'a format-2 model loads')
  t.equal(settingOf(cfg({ model: { ...v2, intercept: 'x' } })), 'asset.model.intercept')
  t.equal(settingOf(cfg({ model: { ...C.model, format: 4 } })), 'asset.model.format')
  t.equal(settingOf(cfg({ model: null })), 'asset.model')
  // A format-1 model file (what `pitwall train` wrote before): rejected with a message that says what to do.
  const old = { version: 'trained-1', intercept: -3, weights: { vibration_level: 1 }, trained: {} }
  t.equal(settingOf(cfg({ model: old })), 'asset.model.format')
  t.throws(() => new ActorCell(asset, cfg({ model: old }), entity), {
    code: 'PW_CONFIG_INVALID',
    message: /retrain it with `pitwall train`/,
  })
  t.equal(settingOf(cfg({ model: { ...C.model, features: 'asset-window-0' } })), 'asset.model.features')
  t.equal(settingOf(cfg({ trendPeriods: 2 })), 'asset.trendPeriods')
  t.equal(settingOf(cfg({ recentPeriods: 30 })), 'asset.recentPeriods')
  t.equal(settingOf(cfg({ riskHigh: { holdPeriods: 0 } })), 'asset.riskHigh.holdPeriods')
  t.equal(settingOf(cfg({ riskHigh: { hysteresis: 80 } })), 'asset.riskHigh.hysteresis')
  t.equal(settingOf(cfg({ baseline: { floor: { vibration: 0 } } })), 'asset.baseline.floor.vibration')
  t.equal(settingOf(cfg({ danger: { vibration: Number.POSITIVE_INFINITY } })), 'asset.danger.vibration')
  t.equal(
    settingOf(cfg({ model: { ...withHead({ intercept: -3, weights: {} }), version: '2026-11-a' } })),
    undefined,
    'a string version is fine',
  )
})
