/**
 * The sensor/process (plant) profile through the real ActorCell (test/helpers/harness.ts): each of the five
 * anomaly types on hand-made series with a known healthy relation value = a + bf * flow + bt * temp + noise, the
 * classification by onset, explanations (features and shares), no alert on healthy series with storms and daily
 * cycles (property), KPI scores, late readings, snapshot/restore equivalence and config validation.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../../actors/cell.js'
import { ConfigError } from '../../actors/errors.js'
import { PROCESS_DEFAULTS, processProfile, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import { remember, seen } from '../../actors/kinds/sensor/process-model.js'
import type { AlertBody, Reading, ScoreBody } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'
import { rng } from '../helpers/trace.js'

const entity = { kind: 'sensor', id: 'bio-cod-01' } as const
const T0 = 1_736_121_600_000 // a whole day, so KPI intervals start on the quarter hour
const P = 5000
const C = PROCESS_DEFAULTS

interface Series {
  a: number
  bf: number
  bt: number
  sigma: number
  seed: number
  storm?: number
  type?: string
  stage?: string
}

/** n healthy readings (5 s apart) of a sensor following flow and temperature; `tweak(i, r)` alters reading i. */
function series(n: number, s: Series, tweak?: (i: number, r: Reading) => void): Reading[] {
  const rnd = rng(s.seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
  const out: Reading[] = []
  for (let i = 0; i < n; i++) {
    const h = (i * P) / 3_600_000
    // Daily flow cycle, plus a storm doubling the flow over an hour from hour 5 when `storm` is set.
    const storm =
      s.storm !== undefined && h > s.storm ? Math.min(1, h - s.storm) * Math.exp(-Math.max(0, h - s.storm - 1) / 2) : 0
    const flow = Math.round(2000 * (1 + 0.3 * Math.sin((2 * Math.PI * h) / 24)) * (1 + storm) * 100) / 100
    const temp = Math.round((15 + 1.5 * Math.sin((2 * Math.PI * (h - 6)) / 24) + 0.5 * Math.sin(h / 7)) * 1000) / 1000
    const value = Math.round((s.a + s.bf * flow + s.bt * temp + s.sigma * normal()) * 1e5) / 1e5
    const r: Reading = {
      ts: T0 + i * P,
      fields: { type: s.type ?? 'cod', stage: s.stage ?? 'biological', flow, temp, value },
    }
    tweak?.(i, r)
    out.push(r)
  }
  return out
}

const base: Series = { a: 60, bf: 0.04, bt: -2, sigma: 2, seed: 1 }
const msgs = (rs: Reading[]): HarnessMessage[] => rs.map((reading) => ({ reading }))
const alerts = (outs: EmittedOutput[]): AlertBody[] =>
  outs.filter((o) => o.type === 'alert').map((o) => o.body as AlertBody)
const opened = (outs: EmittedOutput[]): AlertBody[] => alerts(outs).filter((a) => a.state === 'open')
const WARM = 1440 // two hours of history before any injection
const val = (r: Reading): number => r.fields['value'] as number

void t.test('healthy series: no alert, the model learns the relation', async (t) => {
  const rs = series(4000, base)
  const run = runActor(processProfile, entity, msgs(rs))
  t.same(alerts(run.outputs), [])
  const q = run.cell.query() as {
    model: { perFlow: number; perDegree: number; sigma: number; warm: boolean }
    type: string
    stage: string
  }
  t.ok(Math.abs(q.model.perFlow - 0.04) < 0.004, `value per m³/h ${q.model.perFlow}`)
  t.ok(Math.abs(q.model.perDegree + 2) < 0.5, `value per °C ${q.model.perDegree}`)
  t.ok(Math.abs(q.model.sigma - 2) < 0.3, `residual sigma ${q.model.sigma}`)
  t.equal(q.model.warm, true)
  t.same([q.type, q.stage], ['cod', 'biological'])
})

void t.test(
  'property: after a day of history, storms, daily cycles and any linear relation raise no alert',
  async (t) => {
    let runs = 0
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: 10, max: 500 }),
          bf: fc.integer({ min: -100, max: 100 }).map((x) => x / 1000),
          bt: fc.integer({ min: -50, max: 50 }).map((x) => x / 10),
          sigma: fc.integer({ min: 5, max: 50 }).map((x) => x / 10),
          seed: fc.nat(),
          storm: fc.integer({ min: 25, max: 28 }),
        }),
        (s) => {
          // Offset so the series stays physically possible (a concentration is never negative) at storm flows.
          const outs = runActor(
            processProfile,
            entity,
            msgs(series(24_000, { ...s, a: s.a + Math.abs(s.bf) * 8000 + Math.abs(s.bt) * 20 })),
          ).outputs
          const a = opened(outs)
          if (a.length > 0) throw new Error(`false alert ${a[0]?.type}: ${a[0]?.explanation}`)
          runs++
        },
      ),
      { numRuns: 10 },
    )
    t.equal(runs, 10)
  },
)

void t.test('cyber_attack: impossible value, impossible rate, replay; explained and closed', async (t) => {
  // Far outside the range (the cod range is 0..5000, a loop break reads just below it: see sensor_failure).
  const range = runActor(
    processProfile,
    entity,
    msgs(
      series(WARM + 40, base, (i, r) => {
        if (i >= WARM && i < WARM + 5) r.fields['value'] = -1200
      }),
    ),
  )
  const a = opened(range.outputs)
  t.equal(a.length, 1)
  t.match(a[0], { type: 'cyber_attack', severity: 'critical', start: T0 + WARM * P, threshold: 0 })
  t.match((a[0]?.details as { features: Array<{ feature: string }> }).features[0], { feature: 'range' })
  t.match(a[0]?.explanation, /outside the physical range 0\.\.5000/)
  const closes = alerts(range.outputs).filter((x) => x.state === 'close')
  t.equal(closes.length, 1, 'closes after cyber.clearReadings quiet readings')
  t.ok((closes[0]?.end ?? 0) > T0 + (WARM + 5) * P)

  const rate = opened(
    runActor(
      processProfile,
      entity,
      msgs(
        series(WARM + 10, base, (i, r) => {
          if (i === WARM) r.fields['value'] = val(r) + 4000
        }),
      ),
    ).outputs,
  )
  t.match(rate, [{ type: 'cyber_attack' }])
  t.match(rate[0]?.explanation, /faster than the physical max 100/)

  // Replay: readings 200..219 sent again, bit for bit, from reading WARM on.
  const rs = series(WARM + 60, base)
  for (let k = 0; k < 20; k++) {
    const src = rs[WARM - 300 + k] as Reading
    rs[WARM + k] = { ts: T0 + (WARM + k) * P, fields: { ...src.fields } }
  }
  const rep = opened(runActor(processProfile, entity, msgs(rs)).outputs)
  t.equal(rep.length, 1)
  t.match(rep[0], { type: 'cyber_attack', start: T0 + (WARM + 2) * P })
  t.match(rep[0]?.explanation, /repeat earlier readings bit for bit/)
})

void t.test('sensor_failure: stuck value and dropout, with their boundaries', async (t) => {
  // A 4-20 mA loop break reads just below the range: a sensor failure, not a cyber attack (issue 17).
  const loop = opened(
    runActor(
      processProfile,
      entity,
      msgs(
        series(WARM + 40, base, (i, r) => {
          if (i >= WARM) r.fields['value'] = -12
        }),
      ),
    ).outputs,
  )
  t.match(loop, [{ type: 'sensor_failure', start: T0 + WARM * P }])
  t.match(loop[0]?.explanation, /just below the range 0\.\.5000 \(4-20 mA loop break/)
  const stuckFor = (n: number): AlertBody[] =>
    opened(
      runActor(
        processProfile,
        entity,
        msgs(
          series(WARM + 60, base, (i, r) => {
            if (i > WARM && i < WARM + n) r.fields['value'] = 123.45678
          }),
        ),
      ).outputs,
    )
  t.same(stuckFor(5), [], 'five equal readings are not a failure')
  const s = stuckFor(7)
  t.match(s, [{ type: 'sensor_failure', severity: 'warning', start: T0 + (WARM + 1) * P }])
  t.match(s[0]?.explanation, /stuck at 123\.457 for 6 readings/)
  const drop = (n: number): EmittedOutput[] =>
    runActor(
      processProfile,
      entity,
      msgs(
        series(WARM + 60, base, (i, r) => {
          if (i >= WARM && i < WARM + n) delete r.fields['value']
        }),
      ),
    ).outputs
  t.same(opened(drop(2)), [])
  const d = alerts(drop(10))
  // failure.dropoutReadings is 6 (a few healthy polls carry no value): opens at the sixth missing value.
  t.match(d, [
    { type: 'sensor_failure', state: 'open', start: T0 + (WARM + 5) * P },
    { type: 'sensor_failure', state: 'close' },
  ])
  t.equal(d[1]?.end, T0 + (WARM + 12) * P, 'closes at the third reading with a live value')
})

void t.test('pollution_spike vs process_malfunction: classified by onset and sign', async (t) => {
  const spike = runActor(
    processProfile,
    entity,
    msgs(
      series(WARM + 200, base, (i, r) => {
        if (i >= WARM && i < WARM + 100) r.fields['value'] = val(r) + 40 * Math.exp(-(i - WARM) / 50)
      }),
    ),
  ).outputs
  const sp = opened(spike)
  // Typed once the rise has ended (spike.plateauReadings without 10 % growth), within a minute of the front.
  t.match(sp, [{ type: 'pollution_spike', severity: 'critical' }])
  t.ok(
    (sp[0]?.start ?? 0) > T0 + WARM * P && (sp[0]?.start ?? Infinity) <= T0 + (WARM + 12) * P,
    `opens within a minute (${((sp[0]?.start ?? 0) - T0 - WARM * P) / 1000} s)`,
  )
  t.equal(sp.length, 1, 'one alert for the episode')
  const feats = (sp[0]?.details as { features: Array<{ feature: string; share: number; z: number }> }).features
  t.equal(feats[0]?.feature, 'value_vs_baseline', 'the departure from the rolling baseline drives it')
  t.ok(Math.abs(feats.reduce((a, f) => a + f.share, 0) - 1) < 0.01, 'shares sum to 1')
  t.ok((feats[0]?.z ?? 0) > 6)
  t.match(sp[0]?.explanation, /a pollutant front/)

  // The same size built over 8 minutes (a failing aerator): malfunction.
  const ramp = opened(
    runActor(
      processProfile,
      entity,
      msgs(
        series(WARM + 400, base, (i, r) => {
          if (i >= WARM && i < WARM + 300) r.fields['value'] = val(r) + 30 * Math.min(1, (i - WARM) / 96)
        }),
      ),
    ).outputs,
  )
  t.match(ramp, [{ type: 'process_malfunction' }])
  t.match(ramp[0]?.explanation, /slower than a front/)

  // A sharp drop is not a pollutant front.
  const drop = opened(
    runActor(
      processProfile,
      entity,
      msgs(
        series(WARM + 200, base, (i, r) => {
          if (i >= WARM && i < WARM + 100) r.fields['value'] = val(r) - 30
        }),
      ),
    ).outputs,
  )
  t.match(drop, [{ type: 'process_malfunction' }])
})

void t.test(
  'front view: a front the 30 min baseline misses on a process that moves by itself is a spike',
  async (t) => {
    // The process wanders +-5 over four hours; the 30 min baseline lags that motion and its scale carries it (about
    // 8 against a noise of 2), so a front of 14 over a minute stays within 2 of its sigmas. Against the 2 min level
    // (spike.frontReadings) it is over 5 of that level's own sigmas.
    const wander = (i: number): number => 5 * Math.sin((2 * Math.PI * i) / 2880)
    const front = (k: number): number =>
      k < 0 ? 0 : k < 12 ? (14 * k) / 12 : k < 48 ? 14 : 14 * Math.exp(-(k - 48) / 24)
    const rs = (withFront: boolean): Reading[] =>
      series(WARM * 3 + 400, base, (i, r) => {
        r.fields['value'] = val(r) + wander(i) + (withFront ? front(i - WARM * 3) : 0)
      })
    const spikes = (rs: Reading[], config: ProcessConfig): AlertBody[] =>
      opened(runActor(processProfile, entity, msgs(rs), { config }).outputs).filter((a) => a.type === 'pollution_spike')
    const sp = spikes(rs(true), C)
    t.match(sp, [{ type: 'pollution_spike' }], 'the front view finds the front')
    t.match(sp[0]?.explanation, /min level \(front view.*a pollutant front/)
    const feats = (sp[0]?.details as { features: Array<{ feature: string; z: number }> }).features
    t.ok(
      feats.some((f) => f.feature === 'front_vs_short_level' && f.z > 4),
      'the feature that drove it is named, with its z',
    )
    t.ok((sp[0]?.start ?? 0) >= T0 + WARM * 3 * P, 'not before the front')
    t.same(spikes(rs(false), C), [], 'the wander alone: no spike')
    t.same(spikes(rs(true), { ...C, spike: { ...C.spike, frontReadings: 0 } }), [], 'without the front view: missed')
  },
)

void t.test('a probe that names its redundant partner leaves malfunctions to the pair actor', async (t) => {
  // The build-up of the classification test (a malfunction on an unpaired sensor); the same on a probe whose
  // readings name its partner is the pair actor's to judge (spike.leaveToPair); a front is still a spike.
  const ramp = (partner?: string): Reading[] =>
    series(WARM + 400, base, (i, r) => {
      if (partner !== undefined) r.fields['partner'] = partner
      if (i >= WARM && i < WARM + 300) r.fields['value'] = val(r) + 30 * Math.min(1, (i - WARM) / 96)
    })
  const probe = { kind: 'sensor', id: 'bio-cod-01a' } as const
  t.match(opened(runActor(processProfile, probe, msgs(ramp())).outputs), [{ type: 'process_malfunction' }])
  t.same(opened(runActor(processProfile, probe, msgs(ramp('bio-cod-01b'))).outputs), [], 'paired: left to the pair')
  const own = { ...C, spike: { ...C.spike, leaveToPair: false } }
  t.match(
    opened(runActor(processProfile, probe, msgs(ramp('bio-cod-01b')), { config: own }).outputs),
    [{ type: 'process_malfunction' }],
    'leaveToPair false: judged as unpaired',
  )
  const front = series(WARM + 200, base, (i, r) => {
    r.fields['partner'] = 'bio-cod-01b'
    if (i >= WARM && i < WARM + 100) r.fields['value'] = val(r) + 40 * Math.exp(-(i - WARM) / 50)
  })
  t.match(
    opened(runActor(processProfile, probe, msgs(front)).outputs),
    [{ type: 'pollution_spike' }],
    'a front still is',
  )
})

void t.test('a paired probe types a front that rose over 2 minutes as a spike (spike.pairFrontS)', async (t) => {
  // A front of 7 sigma rising over 2 minutes, held 6 minutes, then decaying: its rise measures 95 s, slower than
  // spike.frontS. An unpaired sensor still alerts (a build-up: malfunction); a probe that leaves malfunctions to
  // its pair would raise nothing at all, so there the bound is pairFrontS.
  const front = (partner?: string): Reading[] =>
    series(WARM + 400, base, (i, r) => {
      if (partner !== undefined) r.fields['partner'] = partner
      const k = i - WARM
      if (k >= 0 && k < 200) r.fields['value'] = val(r) + 14 * Math.min(1, k / 24) * Math.exp(-Math.max(0, k - 96) / 24)
    })
  const probe = { kind: 'sensor', id: 'bio-cod-01a' } as const
  const run = (rs: Reading[], config: ProcessConfig = C): AlertBody[] =>
    opened(runActor(processProfile, probe, msgs(rs), { config }).outputs)
  t.match(run(front()), [{ type: 'process_malfunction' }], 'unpaired: a build-up, as before')
  const paired = run(front('bio-cod-01b'))
  t.match(paired, [{ type: 'pollution_spike' }], 'paired: a pollutant front')
  t.match(paired[0]?.explanation, /a front of (9\d|1[01]\d) s: a pollutant front/)
  const old = run(front('bio-cod-01b'), { ...C, spike: { ...C.spike, pairFrontS: C.spike.frontS } })
  t.same(
    old.filter((a) => a.start < T0 + (WARM + 200) * P),
    [],
    'with the unpaired bound the probe raised nothing while the front passed',
  )
})

void t.test('sensor_drift: a slow ramp opens a drift (not a spike), recalibration closes it', async (t) => {
  const n = 1440 // two hours
  const outs = runActor(
    processProfile,
    entity,
    msgs(
      series(WARM * 2 + n + 600, base, (i, r) => {
        const k = i - WARM * 2
        if (k >= 0 && k < n) r.fields['value'] = val(r) + 16 * (k / n)
      }),
    ),
  ).outputs
  const a = alerts(outs)
  t.match(
    a.map((x) => [x.type, x.state]),
    [
      ['sensor_drift', 'open'],
      ['sensor_drift', 'close'],
    ],
  )
  const open = a[0] as AlertBody
  t.ok(open.start > T0 + WARM * 2 * P && open.start < T0 + (WARM * 2 + n) * P, 'opens inside the ramp')
  t.match(open.explanation, /slow upward drift/)
  t.ok((a[1]?.end ?? 0) > T0 + (WARM * 2 + n) * P, 'closes after the recalibration')
})

void t.test(
  'stepping equipment: a pump state steps and idles without alerts; a toggle still fires; a dither is no toggle',
  async (t) => {
    // A lift-pump count (0..3 pumps, quantum 1: a state, spike.stateLevels): staged up and down, off for two
    // hours (idle at its floor, failure.idleRel; over three times its longest hold while running), then all three
    // on for half an hour (a level the covariate model never saw). None of it is a fault.
    const pumpEntity = { kind: 'sensor', id: 'pre-pump-01' } as const
    const state = (i: number): number => {
      if (i >= 5000 && i < 6500) return 0
      if (i >= 6600 && i < 6960) return 3
      return 1 + (Math.floor(i / 150) % 3 === 0 ? 1 : 0)
    }
    const rs = series(9000, { ...base, type: 'pump', stage: 'pretreatment' }, (i, r) => {
      r.fields['value'] = state(i)
    })
    const quiet = runActor(processProfile, pumpEntity, msgs(rs))
    t.same(
      opened(quiet.outputs).map((a) => `${a.type}: ${a.explanation}`),
      [],
      'no spike, malfunction, drift or stuck alert on a pump state',
    )
    // The same pump switched every reading: toggling (cyber), judged by steps, not by the residual.
    const tog = series(9000, { ...base, type: 'pump', stage: 'pretreatment' }, (i, r) => {
      r.fields['value'] = i >= 8200 && i < 8240 ? i % 2 : state(i)
    })
    t.match(opened(runActor(processProfile, pumpEntity, msgs(tog)).outputs), [{ type: 'cyber_attack' }])
    // Without the stepping rules the idle pump is taken for a stuck one (the gate is what keeps it quiet).
    const ungated = runActor(processProfile, pumpEntity, msgs(rs), {
      config: { ...C, spike: { ...C.spike, stateLevels: 0, steppingJumps: 0 }, failure: { ...C.failure, idleRel: 0 } },
    })
    t.match(opened(ungated.outputs), [{ type: 'sensor_failure' }], 'ungated: the idle pump looks stuck')
    // A standby blower's meter at 0 kW with SCADA dither to 0.1 in alternating signs: resolution, not toggling
    // (cyber.toggleRangeRel of a 0..5000 kW range is 5 kW).
    const blower = series(4000, { ...base, type: 'energy', stage: 'biological' }, (i, r) => {
      r.fields['value'] = i % 7 === 3 || i % 11 === 5 ? 0.1 : 0
    })
    const dither = opened(runActor(processProfile, { kind: 'sensor', id: 'bio-energy-03' }, msgs(blower)).outputs)
    t.same(
      dither.filter((a) => a.type === 'cyber_attack'),
      [],
      'no toggle alert on a one-quantum dither',
    )
  },
)

void t.test('KPIs: compliance at the outlet, treatment efficiency, anomalies per interval', async (t) => {
  const outlet: Series = { a: 100, bf: 0, bt: 0, sigma: 1, seed: 3, type: 'cod', stage: 'outlet' }
  // 180 readings = 15 minutes; a third of the second interval above the 125 mg/l limit.
  const rs = series(400, outlet, (i, r) => {
    r.fields['inlet'] = 400
    if (i >= 180 && i < 240) r.fields['value'] = 130 + (i % 3) / 10
  })
  const outs = runActor(processProfile, entity, msgs(rs)).outputs
  const sc = outs.filter((o) => o.type === 'score').map((o) => ({ id: o.id, ts: o.ts, body: o.body as ScoreBody }))
  const comp = sc.filter((s) => s.body.name === 'compliance')
  t.equal(comp.length, 2, 'one per finished interval')
  t.equal(comp[0]?.body.value, 100)
  t.ok(Math.abs((comp[1]?.body.value ?? 0) - (100 * 120) / 180) < 1e-9, `second interval ${comp[1]?.body.value}`)
  t.equal(comp[0]?.id, `sensor:bio-cod-01:score:compliance:${T0}`)
  t.equal(comp[0]?.ts, T0 + 900_000, 'stamped at the interval end')
  const eff = sc.filter((s) => s.body.name === 'treatment_efficiency')
  t.ok(Math.abs((eff[0]?.body.value ?? 0) - 75) < 0.5, `efficiency ~75 % (${eff[0]?.body.value})`)
  const an = sc.filter((s) => s.body.name === 'anomalies')
  t.same(
    an.map((s) => s.body.factors['readings']),
    [180, 180],
  )
  // Not at the outlet: no compliance score.
  const inner = runActor(processProfile, entity, msgs(series(400, { ...outlet, stage: 'biological' }))).outputs
  t.equal(inner.filter((o) => o.type === 'score' && (o.body as ScoreBody).name === 'compliance').length, 0)
})

void t.test('late readings are emitted and not applied', async (t) => {
  const rs = series(20, base)
  rs.splice(10, 0, { ts: T0 + 3 * P, fields: { value: 1e9, flow: 1, temp: 1, type: 'cod' } })
  const run = runActor(processProfile, entity, msgs(rs))
  const late = run.outputs.filter((o) => o.type === 'late')
  t.equal(late.length, 1)
  t.equal(late[0]?.id, 'sensor:bio-cod-01:late:late:11')
  t.same(alerts(run.outputs), [], 'the wild late value never reached the detectors')
  t.equal((run.cell.query() as { lateCount: number }).lateCount, 1)
})

void t.test('snapshot/restore at any point gives identical outputs; the state stays bounded', async (t) => {
  const rs = series(WARM + 500, base, (i, r) => {
    if (i >= WARM && i < WARM + 30) r.fields['value'] = val(r) + 40
    if (i >= WARM + 100 && i < WARM + 120) delete r.fields['value']
    if (i >= WARM + 200 && i < WARM + 210) r.fields['value'] = -1
  })
  const ref = runActor(processProfile, entity, msgs(rs))
  t.ok(opened(ref.outputs).length >= 3)
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: rs.length - 1 }), { minLength: 1, maxLength: 4 }), (cuts) => {
      const b = runActor(processProfile, entity, msgs(rs), { snapshotBefore: cuts })
      if (JSON.stringify(b.outputs) !== JSON.stringify(ref.outputs))
        throw new Error(`outputs differ after restore at ${cuts.join()}`)
      if (JSON.stringify(b.cell.query()) !== JSON.stringify(ref.cell.query()))
        throw new Error('query differs after restore')
    }),
    { numRuns: 25 },
  )
  const size = JSON.stringify(ref.cell.snapshot(1).state).length
  t.ok(size < 16_000, `snapshot state is ${size} bytes (720 fingerprints)`)
  t.throws(() => new ActorCell(processProfile, C, entity, { ...ref.cell.snapshot(1), v: 3 }), /newer/)
  t.throws(
    () => new ActorCell(processProfile, C, entity, { ...ref.cell.snapshot(1), state: { t: 'x' } }),
    /cannot be decoded/,
  )
  // A version 2 snapshot written before the last live slots (the partner flag and the front view's five; changes of
  // state seen; alert found by the drift rule) is read with them unset (the front view learns again, the next
  // reading that names a partner sets the flag); any other length is corrupt.
  const snap = ref.cell.snapshot(1)
  const st = snap.state as { v: unknown[] }
  for (const fewer of [6, 7, 8]) {
    const older = new ActorCell(processProfile, C, entity, { ...snap, state: { ...st, v: st.v.slice(0, -fewer) } })
    t.same(older.query(), ref.cell.query(), `${fewer} slots fewer: same live view`)
  }
  t.throws(
    () => new ActorCell(processProfile, C, entity, { ...snap, state: { ...st, v: st.v.slice(0, -9) } }),
    /cannot be decoded/,
  )
})

void t.test(
  'replay index: seen() equals a scan of the ring, through collisions, wrap-around and rebuilds',
  async (t) => {
    let checks = 0
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 63 }), { minLength: 50, maxLength: 400 }),
        fc.nat(400),
        (size, hs, cut) => {
          let ring = new Array<number>(size).fill(NaN)
          let pos = 0
          hs.forEach((h, i) => {
            // Small hash values collide in the probe table on purpose; a copy at `cut` rebuilds the index.
            if (i === cut) ring = ring.slice()
            for (let q = 0; q < 64; q += 7) {
              if (seen(ring, q) !== ring.includes(q))
                throw new Error(`seen(${q}) wrong after ${i} inserts into ${size}`)
              checks++
            }
            pos = remember(ring, pos, h)
          })
        },
      ),
      { numRuns: 200 },
    )
    t.ok(checks > 50_000, `${checks} lookups compared`)
  },
)

void t.test('invalid config is rejected at activation, naming the setting', async (t) => {
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
    settingOf(() => undefined),
    undefined,
  )
  t.equal(
    settingOf((c) => {
      c.spike.z = -1
    }),
    'process.spike.z',
  )
  t.equal(
    settingOf((c) => {
      c.spike.clearZ = 9
    }),
    'process.spike.clearZ',
  )
  t.equal(
    settingOf((c) => {
      c.cyber.replayWindow = 1e6
    }),
    'process.cyber.replayWindow',
  )
  t.equal(
    settingOf((c) => {
      ;(c.limits['ph'] as { hi: number }).hi = -1
    }),
    'process.limits.ph.hi',
  )
  t.equal(
    settingOf((c) => {
      c.severities.sensor_drift = 'loud' as 'info'
    }),
    'process.severities.sensor_drift',
  )
  t.equal(
    settingOf((c) => {
      c.halfLifeReadings = 1.5
    }),
    'process.halfLifeReadings',
  )
})
