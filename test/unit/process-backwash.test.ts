/**
 * Designed suppression during filter backwashes (actors/kinds/sensor/backwash.ts, issue 17): the view recognises a
 * backwash only when the pump runs AND a filter is out of service; through the real ActorCell a backwash and its
 * wash-water ripple raise nothing on an affected analyser, while the same series without the stage signals does;
 * an anomaly on a sensor the backwash does not affect still alerts, as does a cyber finding on an affected one;
 * snapshot/restore through a backwash gives identical outputs; the bench's edge feed picks the right tags.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../../actors/cell.js'
import { ConfigError } from '../../actors/errors.js'
import {
  B,
  BACKWASH_FIELDS,
  PHASE,
  blankBackwash,
  endRipple,
  observeStage,
} from '../../actors/kinds/sensor/backwash.js'
import { PROCESS_DEFAULTS, processProfile, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import type { AlertBody, Reading } from '../../actors/types.js'
import type { PlantInstruments } from '../../bench/eval/plant-eval.js'
import { stageFeed } from '../../bench/eval/plant-stage-feed.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'
import { rng } from '../helpers/trace.js'

const C = PROCESS_DEFAULTS
const BW = C.backwash
const T0 = 1_736_121_600_000
const P = 5000

const sig = (pump: number, f1: number, f2: number): Reading['fields'] => ({
  [BACKWASH_FIELDS.pump]: pump,
  [BACKWASH_FIELDS.filters[0]]: f1,
  [BACKWASH_FIELDS.filters[1]]: f2,
})

void t.test('the view: a backwash needs the pump on AND a filter out; it ends, then the ripple ends', async (t) => {
  const b = blankBackwash()
  let ts = T0
  const step = (f: Reading['fields']): number => observeStage(b, f, (ts += P), BW)
  // Healthy: pump off, both filters sharing the flow. The pump never ran: not on.
  for (let i = 0; i < 20; i++) t.equal(step(sig(0, 1800, 1700)), PHASE.NONE)
  // The pump alone (an attacker toggling it, a test run) is no backwash, nor is a filter flow alone.
  for (let i = 0; i < 10; i++) t.equal(step(sig(i % 2, 1800, 1700)), PHASE.NONE)
  for (let i = 0; i < 10; i++) t.equal(step(sig(0, 3500, 4)), PHASE.NONE)
  // Both: confirmed after confirmReadings.
  t.equal(step(sig(1, 3500, 6)), PHASE.NONE)
  t.equal(step(sig(1, 3520, 5)), PHASE.BACKWASH)
  t.equal(b[B.OUT], 2, 'filter 2 is the one out')
  const since = b[B.SINCE]
  // Readings without the signals (a lost poll of the edge) keep the phase.
  t.equal(observeStage(b, { value: 1 }, (ts += P), BW), PHASE.BACKWASH)
  for (let i = 0; i < 100; i++) step(sig(1, 3500, 6))
  t.equal(b[B.PHASE], PHASE.BACKWASH)
  t.equal(b[B.SINCE], since, 'since stays the start')
  // Signals gone stale (the filter flows last seen 10 min ago): the phase stays as it is.
  t.equal(observeStage(b, { [BACKWASH_FIELDS.pump]: 0 }, (ts += 10 * 60_000), BW), PHASE.BACKWASH)
  t.equal(b[B.RUN], 0)
  for (let i = 1; i < BW.endReadings; i++) t.equal(step(sig(0, 1800, 1700)), PHASE.BACKWASH)
  t.equal(step(sig(0, 1800, 1700)), PHASE.RIPPLE)
  const ended = b[B.ENDED] as number
  // Equipment: settles after settleMs; chemistry: once back for rippleClearReadings, or at rippleMaxMs.
  const e = [...b]
  t.equal(endRipple(e, ended + BW.settleMs - 1, BW, undefined), undefined)
  t.equal(endRipple(e, ended + BW.settleMs, BW, undefined), 'timeout')
  t.equal(e[B.PHASE], PHASE.NONE)
  const ch = [...b]
  for (let i = 1; i < BW.rippleClearReadings; i++) t.equal(endRipple(ch, ended + i * P, BW, true), undefined)
  t.equal(endRipple(ch, ended + BW.rippleClearReadings * P, BW, true), 'returned')
  const slow = [...b]
  t.equal(endRipple(slow, ended + 60_000, BW, false), undefined)
  t.equal(endRipple(slow, ended + BW.rippleMaxMs, BW, false), 'timeout')
  t.equal(b[B.COUNT], 1)
})

/**
 * A downstream turbidity analyser (level 0.8 NTU, noise 0.02, SCADA resolution 0.01) with, from reading `at`,
 * a backwash of 15 min and then a wash-water ripple: +1.5 NTU after the pump stops, decaying over ~5 min (60
 * readings); `signals` attaches the filter group's signals to every reading.
 */
function turbidity(n: number, at: number, signals: boolean, tweak?: (i: number, r: Reading) => void): Reading[] {
  const rnd = rng(7)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
  const out: Reading[] = []
  const wash = 180 // 15 min
  for (let i = 0; i < n; i++) {
    const h = (i * P) / 3_600_000
    const flow = Math.round(3500 * (1 + 0.2 * Math.sin((2 * Math.PI * h) / 24)))
    const temp = Math.round((15 + Math.sin((2 * Math.PI * h) / 24)) * 10) / 10
    const after = i - (at + wash)
    const ripple = after >= 0 ? 1.5 * Math.min(1, after / 6) * Math.exp(-Math.max(0, after - 6) / 60) : 0
    const value = Math.round((0.8 + 0.02 * normal() + ripple) * 100) / 100
    const r: Reading = { ts: T0 + i * P, fields: { type: 'turbidity', stage: 'disinfection', flow, temp, value } }
    if (signals) {
      const on = i >= at && i < at + wash
      Object.assign(r.fields, on ? sig(1, flow, 5) : sig(0, flow / 2 + 20, flow / 2 - 20))
    }
    tweak?.(i, r)
    out.push(r)
  }
  return out
}

const msgs = (rs: Reading[]): HarnessMessage[] => rs.map((reading) => ({ reading }))
const alerts = (outs: EmittedOutput[]): AlertBody[] =>
  outs.filter((o) => o.type === 'alert').map((o) => o.body as AlertBody)
const opened = (outs: EmittedOutput[]): AlertBody[] => alerts(outs).filter((a) => a.state === 'open')
const entity = { kind: 'sensor', id: 'dis-turbidity-01' } as const
const AT = 1800 // 2.5 h of history first
const N = AT + 180 + 600

void t.test(
  'a backwash and its ripple raise nothing on an affected analyser; the suppression is visible',
  async (t) => {
    const without = runActor(processProfile, entity, msgs(turbidity(N, AT, false)))
    t.ok(
      opened(without.outputs).length >= 1,
      'without the stage signals the ripple alerts (the false alert this removes)',
    )

    const rs = turbidity(N, AT, true)
    const during = runActor(processProfile, entity, msgs(rs.slice(0, AT + 60)))
    const q = during.cell.query() as { backwash: { fed: boolean; suppression: Record<string, unknown> | null } }
    t.equal(q.backwash.fed, true)
    t.match(q.backwash.suppression, {
      state: 'backwash',
      kind: 'designed',
      reason: /designed suppression: filter backwash \(backwash pump on, filter 2 out of service/,
      since: T0 + (AT + 1) * P,
    })
    const ripple = runActor(processProfile, entity, msgs(rs.slice(0, AT + 200)))
    t.match((ripple.cell.query() as { backwash: { suppression: unknown } }).backwash.suppression, { state: 'ripple' })

    const run = runActor(processProfile, entity, msgs(rs))
    t.same(opened(run.outputs), [], 'no alert from the backwash or the ripple')
    t.equal((run.cell.query() as { backwash: { suppression: unknown } }).backwash.suppression, null, 'over afterwards')

    // A real pollutant front after the ripple still alerts.
    const later = turbidity(N + 400, AT, true, (i, r) => {
      if (i >= N + 100 && i < N + 250) r.fields['value'] = (r.fields['value'] as number) + 0.4
    })
    const after = runActor(processProfile, entity, msgs(later))
    t.same(
      opened(after.outputs).map((a) => a.type),
      ['pollution_spike'],
      'a front after the ripple is found',
    )
  },
)

void t.test(
  'during a backwash: an unaffected sensor still alerts, and so does a cyber finding on an affected one',
  async (t) => {
    // The same analyser without the signals (not downstream of the filters) with a front inside the backwash window.
    const front = (i: number, r: Reading): void => {
      if (i >= AT + 30 && i < AT + 150) r.fields['value'] = (r.fields['value'] as number) + 0.4
    }
    const unaffected = runActor(processProfile, entity, msgs(turbidity(AT + 170, AT, false, front)))
    t.same(
      opened(unaffected.outputs).map((a) => a.type),
      ['pollution_spike'],
    )
    // The affected analyser: the same front is suppressed (the backwash explains a turbidity rise) ...
    const affected = runActor(processProfile, entity, msgs(turbidity(AT + 170, AT, true, front)))
    t.same(opened(affected.outputs), [])
    // ... but a value no turbidity instrument can send is not.
    const impossible = runActor(
      processProfile,
      entity,
      msgs(
        turbidity(AT + 170, AT, true, (i, r) => {
          if (i >= AT + 40 && i < AT + 60) r.fields['value'] = 9999
        }),
      ),
    )
    t.same(
      opened(impossible.outputs).map((a) => a.type),
      ['cyber_attack'],
    )
    // An alert open when the backwash starts (of a suppressed type) closes naming it.
    const open = runActor(
      processProfile,
      entity,
      msgs(
        turbidity(AT + 100, AT, true, (i, r) => {
          if (i >= AT - 120) r.fields['value'] = (r.fields['value'] as number) + 0.4
        }),
      ),
    )
    const closes = alerts(open.outputs).filter((a) => a.state === 'close')
    t.equal(opened(open.outputs).length, 1)
    t.match(closes[0]?.explanation, /designed suppression: filter backwash/)
  },
)

void t.test('snapshot/restore through a backwash gives identical outputs and state', async (t) => {
  const rs = turbidity(N, AT, true, (i, r) => {
    if (i >= AT - 200 && i < AT - 100) r.fields['value'] = (r.fields['value'] as number) + 0.4
  })
  const ref = runActor(processProfile, entity, msgs(rs))
  fc.assert(
    fc.property(fc.array(fc.integer({ min: AT - 50, max: N - 1 }), { minLength: 1, maxLength: 4 }), (cuts) => {
      const b = runActor(processProfile, entity, msgs(rs), { snapshotBefore: cuts })
      if (JSON.stringify(b.outputs) !== JSON.stringify(ref.outputs))
        throw new Error(`outputs differ after restore at ${cuts.join()}`)
      if (JSON.stringify(b.cell.query()) !== JSON.stringify(ref.cell.query()))
        throw new Error('query differs after restore')
    }),
    { numRuns: 20 },
  )
  // Mid-backwash, the view survives a snapshot; one written before the view existed reads as a blank view.
  const mid = runActor(processProfile, entity, msgs(rs.slice(0, AT + 30)))
  const snap = mid.cell.snapshot(1)
  const again = new ActorCell(processProfile, C, entity, snap)
  t.same(again.query(), mid.cell.query())
  const st = snap.state as Record<string, unknown>
  const { b: _view, ...older } = st
  const old = new ActorCell(processProfile, C, entity, { ...snap, state: older })
  t.equal((old.query() as { backwash: { fed: boolean } }).backwash.fed, false)
  t.throws(
    () => new ActorCell(processProfile, C, entity, { ...snap, state: { ...st, b: [1, 2] } }),
    /cannot be decoded/,
  )
})

void t.test('backwash settings are validated', async (t) => {
  const settingOf = (over: (c: ProcessConfig) => void): string | undefined => {
    const c = JSON.parse(JSON.stringify(C)) as ProcessConfig
    over(c)
    try {
      new ActorCell(processProfile, c, entity)
      return undefined
    } catch (err) {
      return err instanceof ConfigError ? err.setting : 'not a ConfigError'
    }
  }
  t.equal(
    settingOf((c) => {
      c.backwash.pumpOnRel = 1.5
    }),
    'process.backwash.pumpOnRel',
  )
  t.equal(
    settingOf((c) => {
      c.backwash.confirmReadings = 0
    }),
    'process.backwash.confirmReadings',
  )
  t.equal(
    settingOf((c) => {
      ;(c as { backwash: unknown }).backwash = undefined
    }),
    'process.backwash',
  )
})

void t.test(
  'the edge feed: the filter stage pump and flows are the signals, the stage and downstream analysers receive them',
  async (t) => {
    const sensors = [
      { id: 'ter-flow-02', type: 'flow', stage: 'tertiary' },
      { id: 'ter-flow-01', type: 'flow', stage: 'tertiary' },
      { id: 'ter-pump-01', type: 'pump', stage: 'tertiary' },
      { id: 'ter-turbidity-01a', type: 'turbidity', stage: 'tertiary', pair: 'ter-turbidity-01b' },
      { id: 'dis-turbidity-01', type: 'turbidity', stage: 'disinfection' },
      { id: 'dis-ph-01', type: 'ph', stage: 'disinfection' },
      { id: 'out-tss-01', type: 'tss', stage: 'outlet' },
      { id: 'bio-turbidity-01', type: 'turbidity', stage: 'biological' },
    ] as PlantInstruments['sensors']
    const f = stageFeed({ sensors })
    t.same(Object.fromEntries(f.signals), {
      'ter-pump-01': 'backwash_pump',
      'ter-flow-01': 'filter_flow_1',
      'ter-flow-02': 'filter_flow_2',
    })
    t.same([...f.recipients].sort(), [
      'dis-turbidity-01',
      'out-tss-01',
      'ter-flow-01',
      'ter-flow-02',
      'ter-pump-01',
      'ter-turbidity-01a',
    ])
    t.equal(
      stageFeed({ sensors: sensors.filter((s) => s.id !== 'ter-pump-01') }).recipients.size,
      0,
      'no pump: no feed',
    )
  },
)

void t.test(
  'a filter group that has backwashed is stepping equipment: its own level shifts raise nothing',
  async (t) => {
    // The washed filter's flow meter: healthy ~1750 m³/h (noise 10), then (after the backwash, when there is one) a
    // lasting 20 sigma shift of its share of the stage flow, as a cleaner filter takes more of it.
    const flowMeter = (withBackwash: boolean): Reading[] => {
      const rnd = rng(3)
      const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
      const out: Reading[] = []
      for (let i = 0; i < AT + 180 + 900; i++) {
        const stage = 3500
        const wash = withBackwash && i >= AT && i < AT + 180
        const share = i >= AT + 180 + 200 ? 0.5 + 200 / stage : 0.5
        const value = wash ? Math.round(5 + normal()) : Math.round(stage * share + 10 * normal())
        const r: Reading = { ts: T0 + i * P, fields: { type: 'flow', stage: 'tertiary', flow: stage, temp: 15, value } }
        Object.assign(r.fields, wash ? sig(1, stage, value) : sig(0, value, stage - value))
        out.push(r)
      }
      return out
    }
    const entity = { kind: 'sensor', id: 'ter-flow-02' } as const
    const plain = runActor(processProfile, entity, msgs(flowMeter(false)))
    t.ok(
      opened(plain.outputs).some((a) => a.type === 'process_malfunction'),
      'without a backwash the shift is a malfunction',
    )
    const washed = runActor(processProfile, entity, msgs(flowMeter(true)))
    t.same(opened(washed.outputs), [], 'after a backwash it is the filter cycle')
    t.equal((washed.cell.query() as { backwash: { backwashes: number } }).backwash.backwashes, 1)
  },
)
