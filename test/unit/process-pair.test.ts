/**
 * The redundant-pair profile (actors/kinds/sensor/process-pair.ts) through the real ActorCell: two probes of one
 * tag on a shared, moving process (daily swing, shared local variability, per-probe gain, offset, lag-free noise,
 * SCADA quantisation). Healthy pairs stay silent; one probe departing within minutes is a process_malfunction on
 * that probe; one probe's offset creeping in over hours is a sensor_drift; a calibration (member out of service,
 * back with a new offset) raises nothing; snapshot/restore anywhere gives the same outputs; late and foreign
 * readings are counted; bad settings are coded errors.
 */
import t from 'tap'
import fc from 'fast-check'
import { ActorCell } from '../../actors/cell.js'
import type { ActorDefinition, ReferenceVersion } from '../../actors/actor.js'
import { ConfigError } from '../../actors/errors.js'
import {
  PAIR_DEFAULTS,
  pairEntityId,
  processPairProfile,
  validatePairConfig,
  type PairConfig,
} from '../../actors/kinds/sensor/process-pair.js'
import { SERVICE_REF, type ServiceSet } from '../../actors/service.js'
import type { AlertBody, Reading } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'
import { rng } from '../helpers/trace.js'

const entity = { kind: 'sensor', id: 'bio-do-01' } as const
const T0 = 1_736_121_600_000
const P = 5000
const MIN = 60_000
const HOUR = 3_600_000

/** An offset added to one probe: (member, time since the series start) -> offset. */
type Fault = (member: 'a' | 'b', tMs: number) => number

/**
 * Both probes' readings, interleaved in event-time order (b polled 2.5 s after a), `hours` long. Short-term sigma
 * of one probe is about 0.062 (shared local variability 0.05, own 0.03, noise 0.02).
 */
function pairSeries(hours: number, seed: number, fault?: Fault): Reading[] {
  const rnd = rng(seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
  const k = Math.exp(-P / (5 * MIN))
  const ar = (x: number, sd: number): number => k * x + Math.sqrt(1 - k * k) * sd * normal()
  let shared = 0,
    ownA = 0,
    ownB = 0
  const out: Reading[] = []
  for (let i = 0; i < (hours * HOUR) / P; i++) {
    const tMs = i * P
    shared = ar(shared, 0.05)
    ownA = ar(ownA, 0.03)
    ownB = ar(ownB, 0.03)
    const x = 2 + 0.5 * Math.sin((2 * Math.PI * tMs) / (6 * HOUR)) + shared
    const a = x + ownA + 0.02 * normal() + (fault?.('a', tMs) ?? 0)
    const b = 1.03 * x + 0.05 + ownB + 0.02 * normal() + (fault?.('b', tMs) ?? 0)
    out.push({ ts: T0 + tMs, fields: { member: 'bio-do-01a', value: Math.round(a * 100) / 100 } })
    out.push({ ts: T0 + tMs + 2500, fields: { member: 'bio-do-01b', value: Math.round(b * 100) / 100 } })
  }
  return out
}

const msgs = (rs: Reading[]): HarnessMessage[] => rs.map((reading) => ({ reading }))
const alerts = (os: EmittedOutput[]): AlertBody[] =>
  os.filter((o) => o.type === 'alert').map((o) => o.body as AlertBody)
const opened = (os: EmittedOutput[]): AlertBody[] => alerts(os).filter((a) => a.state === 'open')
const SIGMA = 0.062

void t.test('healthy pairs raise nothing (several seeds, 14 h each)', async (t) => {
  for (const seed of [1, 2, 3, 4]) {
    const r = runActor(processPairProfile, entity, msgs(pairSeries(14, seed)))
    t.same(
      opened(r.outputs).map((a) => `${a.type} ${String(a.start)}`),
      [],
      `seed ${seed}: no alert`,
    )
    const q = r.cell.query() as { members: string[]; warm: boolean; lateCount: number }
    t.same(q.members, ['bio-do-01a', 'bio-do-01b'])
    t.ok(q.warm)
    t.equal(q.lateCount, 0)
  }
})

void t.test(
  'one probe departing 5 sigma within minutes: one process_malfunction on that probe, which closes',
  async (t) => {
    const start = 6 * HOUR,
      end = start + 30 * MIN
    const fault: Fault = (m, tMs) =>
      m === 'b' && tMs >= start && tMs < end ? 5 * SIGMA * Math.min(1, (tMs - start) / (2 * MIN)) : 0
    const r = runActor(processPairProfile, entity, msgs(pairSeries(8, 7, fault)))
    const open = opened(r.outputs)
    t.equal(open.length, 1, 'one alert for the episode')
    const a = open[0] as AlertBody
    t.equal(a.type, 'process_malfunction')
    t.equal(a.details?.['sensor'], 'bio-do-01b', 'names the probe that moved')
    t.equal(a.details?.['partner'], 'bio-do-01a')
    t.ok(a.alertId.startsWith('sensor:bio-do-01b:process_malfunction:'), a.alertId)
    t.ok(
      a.start >= T0 + start && a.start <= T0 + start + 10 * MIN,
      `opens within 10 min (${(a.start - T0 - start) / 1000} s)`,
    )
    const feats = a.details?.['features'] as Array<{ feature: string; z: number }>
    t.equal(feats[0]?.feature, 'difference_fast')
    t.ok(Math.abs(feats[0]?.z ?? 0) > PAIR_DEFAULTS.malfunctionZ)
    const close = alerts(r.outputs).filter((x) => x.state === 'close')
    t.equal(close.length, 1, 'closes')
    t.ok((close[0]?.end ?? 0) >= T0 + end && (close[0]?.end ?? 0) <= T0 + end + 15 * MIN, 'after the probe returned')
  },
)

void t.test('both probes seeing the same front (a pollution spike) is no disagreement', async (t) => {
  const start = 6 * HOUR
  const fault: Fault = (m, tMs) => {
    const u = tMs - start - (m === 'b' ? 10_000 : 0)
    return u >= 0 && u < 8 * MIN ? 5 * SIGMA * Math.min(1, u / 60_000) : 0
  }
  const r = runActor(processPairProfile, entity, msgs(pairSeries(8, 9, fault)))
  t.same(
    opened(r.outputs).map((a) => a.type),
    [],
  )
})

void t.test("one probe's offset creeping to 3 sigma over 3 h, then staying: a sensor_drift", async (t) => {
  // (A ramp that ends at 3 sigma is found near its end: the slow scale learns part of it; see docs/profiles.md.)
  const start = 5 * HOUR,
    dur = 4 * HOUR
  const fault: Fault = (m, tMs) =>
    m === 'a' && tMs >= start && tMs < start + dur ? 3 * SIGMA * Math.min(1, (tMs - start) / (3 * HOUR)) : 0
  const r = runActor(processPairProfile, entity, msgs(pairSeries(10, 11, fault)))
  const open = opened(r.outputs)
  t.equal(open.length, 1, open.map((a) => `${a.type} ${a.explanation}`).join('; '))
  const a = open[0] as AlertBody
  t.equal(a.type, 'sensor_drift')
  t.ok(a.start > T0 + start && a.start < T0 + start + dur, 'during the drift')
  t.ok(['bio-do-01a', 'bio-do-01b'].includes(a.details?.['sensor'] as string))
  t.match(a.explanation, /crept/)
})

void t.test(
  'a sudden departure of the other probe while a drift is open: the drift yields to a malfunction on it',
  async (t) => {
    // Probe a's offset creeps 2.5 sigma away within 30 min and stays (an open sensor_drift); 2 h later probe b
    // drops within 2 min and stays down 30 min. Without the rule the open drift hid it: the pair raised nothing more.
    // (The drop is 15 probe sigmas: the pair's fast scale grew about threefold while the offset built up.)
    const start = 5 * HOUR,
      jump = 7 * HOUR
    const fault: Fault = (m, tMs) => {
      if (m === 'a') return tMs >= start && tMs < 9 * HOUR ? 2.5 * SIGMA * Math.min(1, (tMs - start) / (30 * MIN)) : 0
      return tMs >= jump && tMs < jump + 30 * MIN ? -15 * SIGMA * Math.min(1, (tMs - jump) / (2 * MIN)) : 0
    }
    const r = runActor(processPairProfile, entity, msgs(pairSeries(10, 11, fault)))
    const open = opened(r.outputs)
    t.same(
      open.map((a) => `${a.type} ${String(a.details?.['sensor'])}`),
      ['sensor_drift bio-do-01a', 'process_malfunction bio-do-01b'],
      open.map((a) => `${a.type} ${a.explanation}`).join('; '),
    )
    const mal = open[1] as AlertBody
    t.ok(
      mal.start >= T0 + jump && mal.start <= T0 + jump + 10 * MIN,
      `within 10 min (${(mal.start - T0 - jump) / 1000} s)`,
    )
    const closed = alerts(r.outputs).filter((a) => a.state === 'close' && a.type === 'sensor_drift')
    t.equal(closed.length, 1)
    t.match(closed[0]?.explanation ?? '', /superseded by process_malfunction/)
    t.equal(closed[0]?.end, mal.start, 'the drift closes where the malfunction opens')
  },
)

/** Runs readings through a cell with the `service` reference changing at the given event times. */
function runWithService(
  def: ActorDefinition<unknown, unknown>,
  cfg: unknown,
  rs: Reading[],
  changes: Array<{ at: number; out: boolean; id: string }>,
): EmittedOutput[] {
  const cell = new ActorCell(def, cfg, entity)
  const outs: EmittedOutput[] = []
  let ref: ReferenceVersion | undefined
  let next = 0,
    rev = 0
  rs.forEach((r, i) => {
    while (next < changes.length && (changes[next]?.at as number) <= r.ts) {
      const c = changes[next++] as { at: number; out: boolean; id: string }
      const sensors: ServiceSet['sensors'] = c.out
        ? { [c.id]: { reason: 'calibration', since: c.at, until: null, by: 'test' } }
        : {}
      ref = { name: SERVICE_REF, revision: ++rev, effectiveAt: c.at, data: { version: rev, sensors } }
    }
    cell.applyReading(
      i + 1,
      r.ts,
      r,
      (o) => {
        outs.push(o)
      },
      (n) => (n === SERVICE_REF ? ref : undefined),
    )
  })
  return outs
}

void t.test('a calibration (member out of service, back with a new offset) raises nothing', async (t) => {
  const cs = 6 * HOUR,
    ce = cs + 25 * MIN
  const fault: Fault = (m, tMs) => (m === 'a' && tMs >= cs ? (tMs < ce ? 5 - 2 : 4 * SIGMA) : 0)
  const rs = pairSeries(9, 13, fault)
  const def = processPairProfile as unknown as ActorDefinition<unknown, unknown>
  const quiet = runWithService(def, PAIR_DEFAULTS, rs, [
    { at: T0 + cs, out: true, id: 'bio-do-01a' },
    { at: T0 + ce, out: false, id: 'bio-do-01a' },
  ])
  t.same(
    opened(quiet).map((a) => a.type),
    [],
    'announced: nothing',
  )
  const loud = runWithService(def, PAIR_DEFAULTS, rs, [])
  t.ok(
    opened(loud).some((a) => a.details?.['sensor'] === 'bio-do-01a'),
    'unannounced, the same data is a disagreement',
  )
})

void t.test('snapshot/restore at any point gives identical outputs', async (t) => {
  const start = 4 * HOUR
  const rs = pairSeries(6, 17, (m, tMs) => (m === 'a' && tMs >= start && tMs < start + 20 * MIN ? 5 * SIGMA : 0))
  const ref = runActor(processPairProfile, entity, msgs(rs))
  t.ok(opened(ref.outputs).length >= 1)
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: rs.length - 1 }), { minLength: 1, maxLength: 4 }), (cuts) => {
      const b = runActor(processPairProfile, entity, msgs(rs), { snapshotBefore: cuts })
      if (JSON.stringify(b.outputs) !== JSON.stringify(ref.outputs))
        throw new Error(`outputs differ after restore at ${cuts.join()}`)
      if (JSON.stringify(b.cell.query()) !== JSON.stringify(ref.cell.query()))
        throw new Error('query differs after restore')
    }),
    { numRuns: 20 },
  )
  t.ok(JSON.stringify(ref.cell.snapshot(1).state).length < 2000, 'small state')
  t.throws(
    () => new ActorCell(processPairProfile, PAIR_DEFAULTS, entity, { ...ref.cell.snapshot(1), state: { a: 1 } }),
    /cannot be decoded/,
  )
})

void t.test('late readings, a third member and readings without member are counted, not applied', async (t) => {
  const rs = pairSeries(1, 19)
  const extra: Reading[] = [
    { ts: T0 + 30 * MIN + 1, fields: { member: 'bio-do-01c', value: 9 } },
    { ts: T0 + 30 * MIN + 2, fields: { value: 9 } },
    { ts: T0 + 1000, fields: { member: 'bio-do-01a', value: 9 } },
  ]
  const all = [...rs.filter((r) => r.ts <= T0 + 30 * MIN), ...extra, ...rs.filter((r) => r.ts > T0 + 30 * MIN)]
  const r = runActor(processPairProfile, entity, msgs(all))
  const q = r.cell.query() as { lateCount: number; foreignCount: number; members: string[] }
  t.equal(q.lateCount, 1)
  t.equal(q.foreignCount, 2)
  t.same(q.members, ['bio-do-01a', 'bio-do-01b'])
})

void t.test('pair ids and config validation', async (t) => {
  t.equal(pairEntityId('bio-do-01b', 'bio-do-01a'), 'bio-do-01')
  t.equal(pairEntityId('ft-101', 'ft-201'), 'ft-101--ft-201')
  const bad = (over: Partial<PairConfig>, setting: RegExp): void => {
    let err: unknown
    try {
      validatePairConfig({ ...PAIR_DEFAULTS, ...over })
    } catch (e) {
      err = e
    }
    t.ok(
      err instanceof ConfigError && err.code === 'PW_CONFIG_INVALID' && setting.test(err.message),
      `${JSON.stringify(over)}: ${String(err)}`,
    )
  }
  bad({ malfunctionZ: -1 }, /process-pair\.malfunctionZ/)
  bad({ confirmMinutes: 1.5 }, /process-pair\.confirmMinutes/)
  bad({ allowedLatenessMs: 60_000 }, /process-pair\.allowedLatenessMs/)
  bad({ clearZ: 9 }, /process-pair\.clearZ/)
  bad({ levelScale: 'yes' as unknown as boolean }, /process-pair\.levelScale/)
  bad({ levelScaleAbove: 0.5 }, /process-pair\.levelScaleAbove/)
  bad({ severities: { process_malfunction: 'loud' as 'critical', sensor_drift: 'warning' } }, /severities/)
  t.doesNotThrow(() => validatePairConfig(PAIR_DEFAULTS))
})

/**
 * A storm on a relative-noise pair (turbidity, flow): from 8 h the level rises three-fold over 30 min and holds for
 * an hour; each probe's own variability and noise are a share of the level, and probe b's lag is a minute, so the
 * difference's noise grows with the level. `fault` adds to one probe as in pairSeries.
 */
function stormSeries(seed: number, fault?: Fault): Reading[] {
  const rnd = rng(seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
  const k = Math.exp(-P / (2 * MIN))
  const ar = (x: number, sd: number): number => k * x + Math.sqrt(1 - k * k) * sd * normal()
  const lag = Math.exp(-P / MIN)
  let ownA = 0,
    ownB = 0,
    seenB = 10
  const out: Reading[] = []
  for (let i = 0; i < (11 * HOUR) / P; i++) {
    const tMs = i * P
    const h = tMs / HOUR
    const surge = h < 8 ? 1 : h < 8.5 ? 1 + 4 * (h - 8) : h < 9.5 ? 3 : h < 10 ? 3 - 4 * (h - 9.5) : 1
    const x = 10 * surge * (1 + 0.1 * Math.sin((2 * Math.PI * tMs) / (6 * HOUR)))
    ownA = ar(ownA, 0.03)
    ownB = ar(ownB, 0.03)
    seenB = lag * seenB + (1 - lag) * x
    const a = x * (1 + ownA + 0.015 * normal()) + (fault?.('a', tMs) ?? 0)
    const b = 1.05 * seenB * (1 + ownB + 0.015 * normal()) + (fault?.('b', tMs) ?? 0)
    out.push({ ts: T0 + tMs, fields: { member: 'sec-turbidity-01a', value: Math.round(a * 10) / 10 } })
    out.push({ ts: T0 + tMs + 2500, fields: { member: 'sec-turbidity-01b', value: Math.round(b * 10) / 10 } })
  }
  return out
}

void t.test(
  'levelScale: a storm tripling both probes is no malfunction; a probe leaving in it still is one',
  async (t) => {
    const turb = { kind: 'sensor', id: 'sec-turbidity-01' } as const
    const off = { ...PAIR_DEFAULTS, levelScale: false }
    const mal = (os: EmittedOutput[]): string[] =>
      opened(os)
        .filter((a) => a.type === 'process_malfunction')
        .map((a) => `${(a.start - T0) / MIN} min`)
    let without = 0
    for (const seed of [1, 2, 3, 4, 5]) {
      const healthy = msgs(stormSeries(seed))
      const r = runActor(processPairProfile, turb, healthy)
      // The malfunction rule is the one a storm set off (its 3 min fast mean); the 30 min drift rule may still take
      // a storm's tail for a creeping offset (plant7: 2 storm drifts on the tuning seeds), not asserted here.
      t.same(mal(r.outputs), [], `seed ${seed}: no malfunction with the default levelScale`)
      without += mal(runActor(processPairProfile, turb, healthy, { config: off }).outputs).length
    }
    // The same storms with the scales of ordinary weather: the case the setting is for.
    t.ok(without > 0, `without levelScale the storms raise ${without} malfunctions`)
    // Probe a loses a third of its reading at the storm's height (a fouled window): found, on probe a.
    const fault: Fault = (m, tMs) => (m === 'a' && tMs >= 8.75 * HOUR && tMs < 9.5 * HOUR ? -10 : 0)
    const r = runActor(processPairProfile, turb, msgs(stormSeries(6, fault)))
    const found = opened(r.outputs).filter((a) => a.type === 'process_malfunction')
    t.equal(found.length, 1, 'one malfunction')
    t.equal(found[0]?.details?.['sensor'], 'sec-turbidity-01a')
    t.ok(
      (found[0]?.start ?? 0) >= T0 + 8.75 * HOUR && (found[0]?.start ?? 0) <= T0 + 9 * HOUR,
      'within 15 min of the departure',
    )
  },
)
