/**
 * The sensor/asset profile through the real ActorCell (test/helpers/harness.ts): the danger floor at its exact
 * boundaries, hysteresis, window features against a naive reference, score factors, once-per-interval scoring,
 * risk_high, late readings, snapshot/restore and model validation.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../actors/cell.js'
import { ConfigError } from '../actors/errors.js'
import { ASSET_DEFAULTS, asset, type AssetConfig } from '../actors/kinds/sensor/asset.js'
import type { AlertBody, LateBody, Reading, ScoreBody } from '../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from './helpers/harness.js'

const entity = { kind: 'sensor', id: 'loco7' } as const
const T0 = 1_700_000_040_000 // a whole multiple of the 2-minute bucket
const C = ASSET_DEFAULTS

const alerts = (outs: EmittedOutput[], type?: string): AlertBody[] =>
  outs.filter((o) => o.type === 'alert').map((o) => o.body as AlertBody).filter((a) => type === undefined || a.type === type)
const scores = (outs: EmittedOutput[]): EmittedOutput[] => outs.filter((o) => o.type === 'score')
const msgs = (rs: Reading[]): HarnessMessage[] => rs.map((reading) => ({ reading }))
const at = (s: number, vibration: number, temperature: number): Reading => ({ ts: T0 + s * 1000, fields: { vibration, temperature } })

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
  const view = runActor(asset, entity, msgs([at(0, 7, 85), at(30, 7, 85)])).cell.query() as { risk: number; floor: boolean; alerts: Array<{ type: string }>; reasons: Array<{ feature: string }> }
  t.equal(view.risk, 100)
  t.equal(view.floor, true)
  t.same(view.alerts.map((a) => a.type), ['asset_danger'])
  t.equal(view.reasons[0]?.feature, 'danger')
  // A dip below the threshold before the duration resets the run.
  t.same(alerts(runActor(asset, entity, msgs([at(0, 8, 90), at(20, 6.9, 90), at(40, 8, 90), at(60, 8, 90)])).outputs, 'asset_danger'), [])
})

void t.test('danger hysteresis: closes only at vibration <= 6.5 or temperature <= 80', async (t) => {
  const base = [at(0, 8, 90), at(30, 8, 90)]
  const tail = (rs: Reading[]): AlertBody[] => alerts(runActor(asset, entity, msgs([...base, ...rs])).outputs, 'asset_danger')
  t.same(tail([at(40, 6.6, 90), at(50, 7, 80.1)]).map((a) => a.state), ['open'], 'inside the band it stays open')
  const closed = tail([at(40, 6.6, 90), at(50, 6.5, 90)])
  t.same(closed.map((a) => a.state), ['open', 'close'])
  t.match(closed[1], { start: T0, end: T0 + 50_000, alertId: `sensor:loco7:asset_danger:${T0}` })
  t.same(tail([at(40, 9, 80)]).map((a) => a.state), ['open', 'close'], 'temperature at 80 closes')
  const after = runActor(asset, entity, msgs([...base, at(40, 2, 45)])).cell.query() as { risk: number; floor: boolean }
  t.equal(after.floor, false)
  t.ok(after.risk < 100, 'the floor lifts when the alert closes')
})

// ---- naive reference of the window features ------------------------------------------------------------------

function refFeatures(accepted: Reading[]): Record<string, number> {
  const B = C.windowMs / C.bucketMs
  const h = Math.max(...accepted.map((r) => Math.floor(r.ts / C.bucketMs)))
  const inWin = accepted.filter((r) => Math.floor(r.ts / C.bucketMs) > h - B)
  const out: Record<string, number> = {}
  for (const f of ['vibration', 'temperature']) {
    const pts = inWin.filter((r) => typeof r.fields[f] === 'number').map((r) => ({ t: r.ts / 3_600_000, x: r.fields[f] as number }))
    if (pts.length === 0) continue
    const n = pts.length
    const mt = pts.reduce((a, p) => a + p.t, 0) / n
    const mx = pts.reduce((a, p) => a + p.x, 0) / n
    const vt = pts.reduce((a, p) => a + (p.t - mt) ** 2, 0) / n
    const cov = pts.reduce((a, p) => a + (p.t - mt) * (p.x - mx), 0) / n
    out[`${f}_level`] = mx
    out[`${f}_trend`] = vt > 1e-12 ? cov / vt : 0
    out[`${f}_variance`] = pts.reduce((a, p) => a + (p.x - mx) ** 2, 0) / n
  }
  return out
}

const readingArb = fc.record({
  step: fc.integer({ min: 0, max: 90 }).map((s) => s * 1000),
  back: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 60 }).map((s) => s * 1000) }),
  vibration: fc.option(fc.integer({ min: 0, max: 120 }).map((x) => x / 10), { nil: undefined, freq: 8 }),
  temperature: fc.integer({ min: 200, max: 1000 }).map((x) => x / 10),
})

void t.test('slope and variance features equal a naive reference; late readings are emitted', async (t) => {
  let compared = 0, lateSeen = 0
  fc.assert(fc.property(fc.array(readingArb, { minLength: 1, maxLength: 80 }), (xs) => {
    let clock = T0
    const rs: Reading[] = xs.map((x) => {
      clock += x.step
      const fields: Reading['fields'] = { temperature: x.temperature }
      if (x.vibration !== undefined) fields.vibration = x.vibration
      return { ts: clock - x.back, fields }
    })
    const run = runActor(asset, entity, msgs(rs))
    let maxTs = -Infinity
    const accepted: Reading[] = []
    const late: number[] = []
    rs.forEach((r, i) => {
      maxTs = Math.max(maxTs, r.ts)
      if (r.ts < maxTs - C.allowedLatenessMs) late.push(i + 1)
      else accepted.push(r)
    })
    const got = run.outputs.filter((o) => o.type === 'late').map((o) => (o.body as LateBody).readingSeq)
    if (got.join() !== late.join()) throw new Error(`late ${got.join()} vs ${late.join()}`)
    const ref = refFeatures(accepted)
    const view = run.cell.query() as { features: Record<string, number> }
    // The live features exist once both fields have a sample in the window.
    if (ref.vibration_level === undefined) {
      if (Object.keys(view.features).length !== 0) throw new Error('features without vibration')
      return
    }
    for (const [k, want] of Object.entries(ref)) {
      const v = view.features[k]
      if (v === undefined || Math.abs(v - want) > 1e-6 * Math.max(1, Math.abs(want))) throw new Error(`${k}: ${v} vs ${want}`)
    }
    compared++
    lateSeen += late.length
  }), { numRuns: 300 })
  t.ok(compared > 200 && lateSeen > 20, `${compared} runs compared, ${lateSeen} late readings`)
})

void t.test('score factors sum to the logit; scores at most once per scoreIntervalMs', async (t) => {
  let checked = 0
  fc.assert(fc.property(fc.array(fc.record({ step: fc.integer({ min: 1, max: 40_000 }), v: fc.integer({ min: 0, max: 60 }), temp: fc.integer({ min: 300, max: 800 }) }), { minLength: 2, maxLength: 60 }), (xs) => {
    let clock = T0
    const rs = xs.map((x) => ({ ts: (clock += x.step), fields: { vibration: x.v / 10, temperature: x.temp / 10 } }))
    const outs = runActor(asset, entity, msgs(rs)).outputs
    const sc = scores(outs)
    if (sc.length === 0) throw new Error('no score')
    if (sc[0]?.ts !== rs[0]?.ts) throw new Error('the first reading scores')
    sc.forEach((o, i) => {
      const b = o.body as ScoreBody
      if (o.id !== `sensor:loco7:score:failure_risk:${o.ts}` || b.name !== 'failure_risk') throw new Error(`score id ${o.id}`)
      const prev = sc[i - 1]
      if (prev && o.ts - prev.ts < C.scoreIntervalMs) throw new Error('two scores within an interval')
      const sum = C.model.intercept + Object.values(b.factors).reduce((a, x) => a + x, 0)
      if (Object.keys(b.factors).length !== 6) throw new Error('one factor per feature')
      if (Math.abs(100 / (1 + Math.exp(-sum)) - b.value) > 1e-9) throw new Error(`factors ${sum} vs value ${b.value}`)
      // Away from saturation the logit can be read back from the value.
      if (b.value > 1e-6 && b.value < 100 - 1e-6) {
        const logit = Math.log(b.value / (100 - b.value))
        if (Math.abs(sum - logit) > 1e-6 * Math.max(1, Math.abs(logit))) throw new Error(`factors ${sum} vs logit ${logit}`)
        checked++
      }
    })
    // Every reading at least an interval after the previous score produced one.
    let last = -Infinity
    const want = rs.filter((r) => (r.ts - last >= C.scoreIntervalMs ? ((last = r.ts), true) : false)).map((r) => r.ts)
    if (sc.map((o) => o.ts).join() !== want.join()) throw new Error('score times')
  }), { numRuns: 150 })
  const ids = scores(runActor(asset, entity, msgs([at(0, 2, 45), at(30, 2, 45), at(59.999, 2, 45), at(60, 2, 45), at(61, 2, 45)])).outputs).map((o) => o.ts - T0)
  t.same(ids, [0, 60_000], 'once per 60 s of event time')
  t.ok(checked > 100, `${checked} scores read back to their logit`)
})

void t.test('risk_high opens at risk >= 70 for 5 min and closes 10 below', async (t) => {
  // Vibration 6, temperature 80: ~80 % risk with the default model, below the danger rule.
  const hot: Reading[] = []
  for (let s = 0; s <= 300; s += 10) hot.push(at(s, 6, 80))
  const early = alerts(runActor(asset, entity, msgs(hot.slice(0, -1))).outputs, 'risk_high')
  t.same(early, [], 'not before 5 minutes')
  const outs = runActor(asset, entity, msgs(hot)).outputs
  const open = alerts(outs, 'risk_high')
  t.equal(open.length, 1)
  t.match(open[0], { state: 'open', severity: 'warning', start: T0, threshold: 70 })
  t.ok((open[0]?.value ?? 0) >= 70)
  // Back to nominal after the window has rolled past the hot readings: closes.
  const cool: Reading[] = []
  for (let s = 310; s <= 1200; s += 10) cool.push(at(s, 2, 45))
  const all = alerts(runActor(asset, entity, msgs([...hot, ...cool])).outputs, 'risk_high')
  t.same(all.map((a) => a.state), ['open', 'close'])
  t.ok((all[1]?.value ?? 100) <= 60)
})

void t.test('live query: risk, reasons, last values, open alerts', async (t) => {
  const rs: Reading[] = []
  for (let s = 0; s <= 120; s += 10) rs.push({ ts: T0 + s * 1000, fields: { vibration: 2 + s / 100, temperature: 45, pressure: 5.1, flow: 12 } })
  const v = runActor(asset, entity, msgs(rs)).cell.query() as { risk: number; reasons: Array<{ feature: string; contribution: number }>; last: Record<string, number>; alerts: unknown[]; modelVersion: number }
  t.ok(v.risk > 0 && v.risk < 5, `nominal risk is low (${v.risk})`)
  t.equal(v.reasons.length, 3)
  t.equal(v.reasons[0]?.feature, 'temperature_level', 'the largest contribution first')
  t.ok((v.reasons[0]?.contribution ?? 0) >= (v.reasons[1]?.contribution ?? 0))
  t.same(v.last, { vibration: 3.2, temperature: 45, pressure: 5.1, flow: 12 })
  t.same(v.alerts, [])
  t.equal(v.modelVersion, 1)
})

void t.test('snapshot/restore mid-run gives identical outputs; state is compact', async (t) => {
  fc.assert(fc.property(fc.array(readingArb, { minLength: 1, maxLength: 60 }), fc.array(fc.nat(60), { maxLength: 4 }), (xs, cuts) => {
    let clock = T0
    const rs: Reading[] = xs.map((x) => {
      clock += x.step
      return { ts: clock - x.back, fields: { vibration: (x.vibration ?? 5) + 2, temperature: x.temperature + 20 } }
    })
    const a = runActor(asset, entity, msgs(rs))
    const b = runActor(asset, entity, msgs(rs), { snapshotBefore: cuts })
    if (JSON.stringify(a.outputs) !== JSON.stringify(b.outputs)) throw new Error('outputs differ after restore')
    if (JSON.stringify(a.cell.query()) !== JSON.stringify(b.cell.query())) throw new Error('query differs after restore')
    const ids = a.outputs.map((o) => o.id)
    if (new Set(ids).size !== ids.length) throw new Error('duplicate output ids')
  }), { numRuns: 150 })
  const rs: Reading[] = []
  for (let s = 0; s <= 900; s += 7) rs.push(at(s, 2 + (s % 13) / 10, 45 + (s % 7) / 10))
  const run = runActor(asset, entity, msgs(rs))
  const size = JSON.stringify(run.cell.snapshot(1).state).length
  t.ok(size < 1500, `snapshot state is ${size} bytes`)
  const copy = new ActorCell(asset, C, entity, JSON.parse(JSON.stringify(run.cell.snapshot(1))))
  t.same(copy.query(), run.cell.query(), 'a new cell from the JSON snapshot answers the same')
  t.throws(() => new ActorCell(asset, C, entity, { ...run.cell.snapshot(1), v: 2 }), /newer/)
})

void t.test('invalid model config is rejected at activation, naming the setting', async (t) => {
  const settingOf = (c: AssetConfig): string | undefined => {
    try {
      new ActorCell(asset, c, entity)
      return undefined
    } catch (err) {
      return err instanceof ConfigError ? err.setting : 'not a ConfigError'
    }
  }
  t.equal(settingOf(C), undefined, 'the defaults are valid')
  t.equal(settingOf(cfg({ model: { ...C.model, intercept: Number.NaN } })), 'asset.model.intercept')
  t.equal(settingOf(cfg({ model: { ...C.model, version: 0 } })), 'asset.model.version')
  t.equal(settingOf(cfg({ model: { ...C.model, version: '' } })), 'asset.model.version')
  t.equal(settingOf(cfg({ model: { ...C.model, weights: { vibration_level: 'x' } } })), 'asset.model.weights.vibration_level')
  t.equal(settingOf(cfg({ model: { ...C.model, weights: { bogus: 1 } } })), 'asset.model.weights.bogus')
  t.equal(settingOf({ ...C, model: { version: 2, intercept: 0 } } as unknown as AssetConfig), 'asset.model.weights')
  t.equal(settingOf(cfg({ model: null })), 'asset.model')
  t.equal(settingOf(cfg({ windowMs: 100_000 })), 'asset.windowMs')
  t.equal(settingOf(cfg({ danger: { vibration: Number.POSITIVE_INFINITY } })), 'asset.danger.vibration')
  t.equal(settingOf(cfg({ model: { version: '2026-11-a', intercept: -3, weights: {} } })), undefined, 'a string version is fine')
})
