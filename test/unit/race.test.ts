// The race profile over the real ActorCell: anomaly boundaries, laps vs a naive reference, the pit-stop
// recommendation gate, and snapshot/restore giving identical outputs.
import t from 'tap'
import fc from 'fast-check'
import { ActorCell, type SnapshotRecord } from '../../actors/cell.js'
import { ConfigError } from '../../actors/errors.js'
import type {
  AlertBody,
  FieldValue,
  LapBody,
  Output,
  Reading,
  RecommendationBody,
  ScoreBody,
} from '../../actors/types.js'
import { RACE_DEFAULTS, race, validateRaceConfig, type RaceConfig } from '../../actors/kinds/vehicle/race.js'

type Out = Omit<Output, 'site' | 'partition' | 'token'>
type Fields = Record<string, FieldValue>
const ENTITY = { kind: 'vehicle' as const, id: 'car44' }

/** Config = defaults with one-level group overrides (as the runtime merges deployment config). */
function cfg(over: { [G in keyof RaceConfig]?: Partial<RaceConfig[G]> } = {}): RaceConfig {
  const c = structuredClone(RACE_DEFAULTS)
  for (const [g, v] of Object.entries(over)) Object.assign((c as unknown as Record<string, object>)[g] as object, v)
  return c
}

/** A tiny driver: readings get stream sequences 1..n and processing time = event time + 5 ms. */
class Driver {
  cell: ActorCell
  seq = 0
  out: Out[] = []
  constructor(readonly config: RaceConfig = cfg()) {
    this.cell = new ActorCell(race, config, ENTITY)
  }
  feed(ts: number, fields: Fields): Out[] {
    const from = this.out.length
    this.seq++
    this.cell.applyReading(this.seq, ts + 5, { ts, fields }, (o) => this.out.push(o))
    return this.out.slice(from)
  }
  /** Round-trips the cell through a JSON snapshot into a fresh cell (as a passivation + activation would). */
  restore(): void {
    const snap = JSON.parse(JSON.stringify(this.cell.snapshot(7))) as SnapshotRecord
    this.cell = new ActorCell(race, this.config, ENTITY, snap)
  }
  of<T extends Output['type']>(type: T): Array<Out & { body: Output<T>['body'] }> {
    return this.out.filter((o) => o.type === type) as Array<Out & { body: Output<T>['body'] }>
  }
  alerts(type?: string): AlertBody[] {
    return this.of('alert')
      .map((o) => o.body)
      .filter((b) => type === undefined || b.type === type)
  }
}

const brakes = (fl: number, fr = 500, rl = 400, rr = 400): Fields => ({
  brake_temp_fl: fl,
  brake_temp_fr: fr,
  brake_temp_rl: rl,
  brake_temp_rr: rr,
})
const tyres = (fl: number, fr = 100, rl = 100, rr = 100): Fields => ({
  tyre_temp_fl: fl,
  tyre_temp_fr: fr,
  tyre_temp_rl: rl,
  tyre_temp_rr: rr,
})

void t.test('brake_overheat: exactly 2 s opens, 1.99 s does not, hysteresis band, close', async (t) => {
  const short = new Driver()
  for (let ts = 0; ts <= 1990; ts += 10) short.feed(ts, brakes(960))
  short.feed(2000, brakes(950)) // not above 950: the run ends at 1.99 s
  short.feed(2100, brakes(960))
  t.same(short.alerts(), [], '1.99 s over the threshold is not an alert')

  const d = new Driver()
  for (let ts = 0; ts < 2000; ts += 100) t.same(d.feed(ts, brakes(951)), [], `pending at ${ts}`)
  const open = d.feed(2000, brakes(951, 990, 400, 970))
  t.equal(open.length, 1)
  const o = open[0] as Out
  t.equal(o.id, 'vehicle:car44:alert:vehicle:car44:brake_overheat:0:open:21')
  t.equal(o.ts, 2000)
  t.match(o.body, {
    alertId: 'vehicle:car44:brake_overheat:0',
    type: 'brake_overheat',
    severity: 'critical',
    state: 'open',
    start: 0,
    value: 990,
    threshold: 950,
    details: { corner: 'fr', corners: ['fl', 'fr', 'rr'], peak: 990 },
  })
  t.notOk('end' in o.body)
  // Inside the hysteresis band (925, 950]: stays open.
  for (let ts = 2100; ts <= 4000; ts += 100) d.feed(ts, brakes(926 + (ts % 3)))
  t.equal(d.alerts().length, 1, 'still open inside the hysteresis band')
  t.equal((d.cell.query() as { openAlerts: unknown[] }).openAlerts.length, 1)
  const close = d.feed(4100, brakes(925))
  t.equal(close.length, 1)
  t.match(close[0]?.body, {
    state: 'close',
    start: 0,
    end: 4100,
    value: 925,
    alertId: 'vehicle:car44:brake_overheat:0',
  })
  t.equal(close[0]?.ts, 4100)
  t.equal(close[0]?.id, 'vehicle:car44:alert:vehicle:car44:brake_overheat:0:close:42')
  // A new episode gets a new id (its own start).
  for (let ts = 5000; ts <= 7000; ts += 500) d.feed(ts, brakes(400, 400, 400, 1000))
  t.match(d.alerts().at(-1), {
    state: 'open',
    start: 5000,
    alertId: 'vehicle:car44:brake_overheat:5000',
    details: { corner: 'rr', corners: ['rr'] },
  })
})

void t.test('tire_overheat: 130 °C for >= 2 s, warning, band 125..130', async (t) => {
  const d = new Driver()
  d.feed(1000, tyres(131))
  d.feed(2999, tyres(135))
  t.same(d.alerts(), [], '1.999 s')
  d.feed(3000, tyres(129, 133)) // fl dips but the max corner (fr) still holds
  t.match(d.alerts(), [
    { type: 'tire_overheat', severity: 'warning', state: 'open', start: 1000, value: 133, threshold: 130 },
  ])
  d.feed(3500, tyres(125.5))
  t.equal(d.alerts().length, 1)
  d.feed(4000, tyres(125))
  t.match(d.alerts()[1], { state: 'close', end: 4000, details: { corners: ['fl', 'fr'], peak: 135 } })
  // Missing tyre fields leave the detector untouched.
  d.feed(5000, { speed: 100 })
  t.equal(d.alerts().length, 2)
})

void t.test('oil_pressure_drop: < 1.5 bar for >= 1 s above 4000 rpm', async (t) => {
  const d = new Driver()
  d.feed(0, { rpm: 9000, oil_pressure: 1.4 })
  d.feed(999, { oil_pressure: 1.3 }) // rpm carries over from the last reading
  t.same(d.alerts(), [], '0.999 s')
  d.feed(1000, { oil_pressure: 1.45 })
  t.match(d.alerts(), [
    {
      type: 'oil_pressure_drop',
      severity: 'critical',
      state: 'open',
      start: 0,
      value: 1.45,
      threshold: 1.5,
      details: { peak: 1.3, rpm: 9000 },
    },
  ])
  d.feed(1100, { oil_pressure: 1.74 })
  t.equal(d.alerts().length, 1, 'inside the band [1.5, 1.75)')
  d.feed(1200, { oil_pressure: 1.75 })
  t.match(d.alerts()[1], { state: 'close', end: 1200, value: 1.75 })

  const idle = new Driver()
  for (let ts = 0; ts <= 5000; ts += 100) idle.feed(ts, { rpm: 4000, oil_pressure: 0.5 })
  t.same(idle.alerts(), [], 'at or below 4000 rpm low pressure is expected')
  for (let ts = 5100; ts <= 6100; ts += 100) idle.feed(ts, { rpm: 4001, oil_pressure: 0.5 })
  t.match(idle.alerts(), [{ state: 'open', start: 5100 }])
  idle.feed(6200, { rpm: 3000, oil_pressure: 0.4 })
  t.match(
    idle.alerts()[1],
    { state: 'close', end: 6200, value: 0.4 },
    'rpm falling below the gate ends it, real value reported',
  )
})

void t.test('sudden_speed_loss: > 80 km/h within 1 s without brake > 50 %', async (t) => {
  const exact = new Driver()
  exact.feed(0, { speed: 300, brake: 0 })
  exact.feed(500, { speed: 260 })
  exact.feed(1000, { speed: 220 })
  t.same(exact.alerts(), [], 'exactly 80 km/h is not more than 80')

  const slow = new Driver()
  slow.feed(0, { speed: 300, brake: 0 })
  slow.feed(500, { speed: 260 })
  slow.feed(1001, { speed: 219 })
  t.same(slow.alerts(), [], '81 km/h but over 1.001 s')

  const braking = new Driver()
  braking.feed(0, { speed: 300, brake: 0 })
  braking.feed(500, { speed: 240, brake: 51 })
  braking.feed(900, { speed: 150, brake: 0 })
  t.same(braking.alerts(), [], 'a braking zone')
  const light = new Driver()
  light.feed(0, { speed: 300, brake: 0 })
  light.feed(500, { speed: 240, brake: 50 })
  light.feed(900, { speed: 150, brake: 0 })
  t.match(
    light.alerts(),
    [{ state: 'open', start: 900, value: 150, threshold: 80, details: { fromSpeed: 300, speed: 150, fromTs: 0 } }],
    'brake at exactly 50 % does not excuse it',
  )

  const d = new Driver()
  d.feed(0, { speed: 300, brake: 0 })
  d.feed(1000, { speed: 219 })
  t.match(d.alerts(), [{ type: 'sudden_speed_loss', severity: 'warning', state: 'open', start: 1000, value: 81 }])
  d.feed(1500, { speed: 200 }) // drop vs the window max (219 at 1000): 19
  t.match(d.alerts()[1], { state: 'close', start: 1000, end: 1500, details: { peak: 81 } })
})

/** Readings of one lap: `n` samples `step` ms apart starting at `ts`, with per-sample fields. */
function lap(d: Driver, lapNo: number, ts: number, n: number, step: number, fields: (i: number) => Fields): number {
  for (let i = 0; i < n; i++) d.feed(ts + i * step, { lap: lapNo, ...fields(i) })
  return ts + n * step
}

void t.test('fuel_anomaly: consumption vs the median of previous laps, and fuel rising outside the pit', async (t) => {
  const d = new Driver(cfg({ pitStop: { intervalMs: 0 } }))
  let ts = 0
  let fuel = 100
  // lap 1 is the first seen (not a reference), laps 2..4 use 2 kg each: the baseline (3 laps).
  const use = [2, 2, 2, 2, 3, 3.01, 2.6, 2]
  for (let l = 0; l < use.length; l++) {
    const per = (use[l] as number) / 9
    const f0 = fuel
    ts = lap(d, l + 1, ts, 10, 1000, (i) => ({ fuel: f0 - per * i }))
    fuel -= use[l] as number
  }
  d.feed(ts, { lap: use.length + 1, fuel })
  const fa = d.alerts('fuel_anomaly')
  // Lap 5 uses 3 kg = exactly 1.5 x 2: not above. Lap 6 uses 3.01: opens at its end. Lap 7 uses 2.6 = 1.3 x
  // median(2,2,2,3) = 2: at the hysteresis bound, closes.
  t.equal(fa.length, 2)
  t.match(fa[0], { state: 'open', start: 60_000, threshold: 3, details: { reason: 'consumption', medianKg: 2 } })
  t.ok(Math.abs((fa[0]?.value ?? 0) - 3.01) < 1e-9)
  t.match(fa[1], { state: 'close', end: 70_000 })

  const inc = new Driver()
  inc.feed(0, { fuel: 50, pit: false })
  inc.feed(100, { fuel: 49.9 })
  inc.feed(200, { fuel: 50.5 }) // +0.6 kg over the minimum
  inc.feed(1199, { fuel: 50.5 })
  t.same(inc.alerts(), [], 'under 1 s')
  inc.feed(1200, { fuel: 50.6 })
  t.match(inc.alerts(), [
    {
      type: 'fuel_anomaly',
      state: 'open',
      start: 200,
      threshold: 0.5,
      details: { reason: 'increase', baseline: 49.9 },
    },
  ])
  inc.feed(1300, { fuel: 50.2 })
  t.equal(inc.alerts().length, 1, 'band (0.25, 0.5]')
  inc.feed(1400, { fuel: 50.15 })
  t.match(inc.alerts()[1], { state: 'close', end: 1400 })
  // Refuelling in the pit lane is not an anomaly, and the baseline follows it.
  inc.feed(2000, { fuel: 50, pit: true })
  for (let ts = 2100; ts < 6000; ts += 100) inc.feed(ts, { fuel: 50 + (ts - 2000) / 100 })
  inc.feed(6000, { fuel: 90, pit: false })
  for (let ts = 6100; ts < 9000; ts += 100) inc.feed(ts, { fuel: 90 - (ts - 6000) / 10_000 })
  t.equal(inc.alerts().length, 2)
})

/** Naive lap statistics from the input list: group by lap number, emit when the number goes up. */
function naiveLaps(rs: Array<{ ts: number; fields: Fields }>): LapBody[] {
  const out: LapBody[] = []
  let cur: Array<{ ts: number; fields: Fields }> = []
  let curLap: number | undefined
  const flush = (end: number): void => {
    const n = (k: string) => cur.map((r) => r.fields[k]).filter((v): v is number => typeof v === 'number')
    const sp = n('speed')
    const corner = (p: string): number[] =>
      cur
        .map((r) =>
          Math.max(
            ...['fl', 'fr', 'rl', 'rr']
              .map((c) => r.fields[`${p}_${c}`])
              .filter((v): v is number => typeof v === 'number'),
          ),
        )
        .filter(Number.isFinite)
    const br = corner('brake_temp')
    const ty = corner('tyre_temp')
    out.push({
      lap: curLap as number,
      start: (cur[0] as { ts: number }).ts,
      end,
      lapTimeMs: end - (cur[0] as { ts: number }).ts,
      minSpeed: sp.length ? Math.min(...sp) : 0,
      avgSpeed: sp.length ? sp.reduce((a, b) => a + b, 0) / sp.length : 0,
      maxSpeed: sp.length ? Math.max(...sp) : 0,
      maxBrakeTemp: br.length ? Math.max(0, ...br) : 0,
      maxTyreTemp: ty.length ? Math.max(0, ...ty) : 0,
      samples: cur.length,
    })
  }
  for (const r of rs) {
    const l = r.fields.lap
    if (typeof l === 'number' && curLap !== undefined && l > curLap) {
      flush(r.ts)
      cur = []
    }
    if (typeof l === 'number' && (curLap === undefined || l > curLap)) curLap = l
    if (curLap !== undefined) cur.push(r)
  }
  return out
}

void t.test('lap statistics match a naive reference (random runs)', async (t) => {
  const reading = fc.record(
    {
      dt: fc.integer({ min: 0, max: 200 }),
      dl: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 1, 2, -1),
      speed: fc.option(fc.integer({ min: 0, max: 340 }), { nil: undefined }),
      b: fc.option(fc.tuple(fc.integer({ min: 100, max: 1000 }), fc.integer({ min: 100, max: 1000 })), {
        nil: undefined,
      }),
      ty: fc.option(fc.integer({ min: 60, max: 140 }), { nil: undefined }),
      hasLap: fc.boolean(),
    },
    { requiredKeys: ['dt', 'dl', 'hasLap'] },
  )
  fc.assert(
    fc.property(fc.array(reading, { maxLength: 300 }), (spec) => {
      let ts = 1_700_000_000_000
      let lapNo = 1
      const rs = spec.map((x) => {
        ts += x.dt
        lapNo += x.dl
        const fields: Fields = {}
        if (x.hasLap || x.dl > 0) fields.lap = lapNo
        if (x.speed !== undefined) fields.speed = x.speed
        if (x.b) {
          fields.brake_temp_fl = x.b[0]
          fields.brake_temp_rr = x.b[1]
        }
        if (x.ty !== undefined) fields.tyre_temp_rl = x.ty
        return { ts, fields }
      })
      const d = new Driver(cfg({ pitStop: { intervalMs: 0 } }))
      for (const r of rs) d.feed(r.ts, r.fields)
      const got = d.of('lap').map((o) => o.body)
      return (
        JSON.stringify(got) === JSON.stringify(naiveLaps(rs)) &&
        d.of('lap').every((o) => o.id === `vehicle:car44:lap:lap:${o.body.lap}` && o.ts === o.body.end)
      )
    }),
    { numRuns: 300 },
  )
  t.pass('property held')
})

void t.test('a lap counter that goes back counts in the lap in progress: no lap is emitted twice', async (t) => {
  const d = new Driver(cfg({ pitStop: { intervalMs: 0 } }))
  for (let ts = 0; ts < 1000; ts += 100) d.feed(ts, { lap: 1, speed: 200 })
  for (let ts = 1000; ts < 2000; ts += 100) d.feed(ts, { lap: 2, speed: 210 })
  d.feed(2000, { lap: 1, speed: 100 }) // a glitch: the counter one lower for one reading
  for (let ts = 2100; ts < 3000; ts += 100) d.feed(ts, { lap: 2, speed: 210 })
  d.feed(3000, { lap: 3, speed: 220 })
  const laps = d.of('lap')
  t.same(
    laps.map((o) => o.id),
    ['vehicle:car44:lap:lap:1', 'vehicle:car44:lap:lap:2'],
    'each lap once',
  )
  t.match(laps[1]?.body, { lap: 2, start: 1000, end: 3000, lapTimeMs: 2000, samples: 20, minSpeed: 100, maxSpeed: 210 })
  t.equal(laps[1]?.body.avgSpeed, (19 * 210 + 100) / 20)
})

void t.test('pit_now: once per crossing, re-armed below 65 or by a pit stop', async (t) => {
  // Score = 40 (tyre wear 80 %) + 20 (brake wear 80 %) + 30 x speed loss; speed loss 1 at 5 % slower.
  const d = new Driver(cfg({ pitStop: { intervalMs: 0 } }))
  const base = { tyre_wear: 80, brake_wear: 80, speed: 200 }
  let ts = 0
  const lapMs = [60_000, 60_000, 60_000, 60_000, 61_200, 60_800, 61_200, 60_400, 61_200]
  for (let l = 0; l < lapMs.length; l++) ts = lap(d, l + 1, ts, (lapMs[l] as number) / 400, 400, () => base)
  d.feed(ts, { lap: lapMs.length + 1, ...base })
  const scores = d.of('score').map((o) => o.body)
  t.same(
    scores.map((s) => s.value),
    [60, 60, 60, 60, 72, 68, 72, 64, 72],
    'score at each lap end',
  )
  const recs = d.of('recommendation')
  t.equal(recs.length, 2, 'fires at 72, not again at 72 after 68, again after 64')
  const r0 = recs[0] as Out & { body: RecommendationBody }
  t.equal(r0.id, `vehicle:car44:recommendation:pit_now:${r0.seq}`)
  t.match(r0.body, {
    action: 'pit_now',
    score: 72,
    factors: { tyre_wear: 1, brake_degradation: 1, anomaly_penalty: 0 },
  })
  t.ok(Math.abs((r0.body.factors.speed_loss ?? 0) - 0.4) < 1e-9)
  t.ok(Math.abs((r0.body.factors.speed_loss_pts ?? 0) - 12) < 1e-9)
  t.match(
    r0.body.reason,
    /pit-stop score 72\.00 > 70: tyre wear 40\.0 pts.*brake degradation 20\.0 pts.*pace loss 12\.0 pts/,
  )
  const s0 = d.of('score')[0] as Out & { body: ScoreBody }
  t.equal(s0.id, `vehicle:car44:score:pit_stop:${s0.seq}`)
  t.equal(s0.body.name, 'pit_stop')
  t.same(Object.keys(s0.body.factors).sort(), [
    'anomaly_penalty',
    'anomaly_penalty_pts',
    'brake_degradation',
    'brake_degradation_pts',
    'speed_loss',
    'speed_loss_pts',
    'tyre_wear',
    'tyre_wear_pts',
  ])

  // Staying above: no repeat. A pit stop re-arms it; the next crossing fires again.
  const p = new Driver(cfg({ pitStop: { intervalMs: 0 } }))
  ts = 0
  const laps2 = [60_000, 60_000, 60_000, 60_000, 61_200, 61_600, 62_000]
  for (let l = 0; l < laps2.length; l++) ts = lap(p, l + 1, ts, (laps2[l] as number) / 400, 400, () => base)
  t.equal(p.of('recommendation').length, 1, 'one recommendation while the score stays above 70')
  ts = lap(p, 8, ts, 150, 400, (i) => ({ ...base, pit: i < 20, tyre_wear: i < 10 ? 80 : 0 }))
  t.same(p.of('recommendation').length, 1, 'none from the pit stop itself')
  ts = lap(p, 9, ts, 150, 400, (i) => ({ ...base, tyre_wear: i * 0.1 }))
  for (let l = 10; l < 13; l++) ts = lap(p, l, ts, 153, 400, () => base)
  p.feed(ts, { lap: 13, ...base })
  t.equal(p.of('recommendation').length, 2, 'fires again after the pit stop')
  t.match(p.cell.query(), {
    score: { armed: false, lastEmitted: 72 },
    laps: { referenceLapMs: 60_000, lastLapMs: 61_200 },
  })
})

void t.test('periodic score every intervalMs of event time, anomaly factor counts open alerts', async (t) => {
  const d = new Driver()
  for (let ts = 0; ts <= 12_000; ts += 500) d.feed(ts, { speed: 250, ...brakes(ts >= 2000 ? 990 : 600) })
  const sc = d.of('score')
  t.same(
    sc.map((o) => o.ts),
    [5000, 10_000],
  )
  t.same(
    sc.map((o) => o.body.value),
    [5, 5],
    'one open anomaly of cap 2 = 0.5 x 10 %',
  )
})

void t.test('late readings are written aside and change nothing', async (t) => {
  const d = new Driver()
  d.feed(1000, { speed: 100, lap: 1 })
  const before = JSON.stringify(d.cell.query())
  const late = d.feed(999, { speed: 5, lap: 7 })
  t.match(late, [
    {
      type: 'late',
      id: 'vehicle:car44:late:late:2',
      ts: 999,
      body: { readingTs: 999, watermark: 1000, readingSeq: 2 },
    },
  ])
  t.equal(JSON.stringify(d.cell.query()).replace('"late":1', '"late":0'), before)
  d.feed(1000, { speed: 120 })
  t.match(d.cell.query(), { lastTs: 1000, late: 1, last: { speed: 120, lap: 1 } })
})

/** A deterministic synthetic race: 12 laps of 20 s at 20 Hz with injected anomalies and a pit stop. */
function synthRace(): Array<{ ts: number; fields: Fields }> {
  let seed = 42
  const rnd = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    return seed / 2_147_483_648
  }
  const rs: Array<{ ts: number; fields: Fields }> = []
  const t0 = 1_700_000_000_000
  let fuel = 100
  let ts = t0
  for (let i = 0; i < 12 * 400 + 37; i++) {
    const lapNo = Math.floor(i / 400) + 1
    // From lap 5 each lap is 2 % slower than the last (tyres going off).
    ts += Math.round(50 * (1 + 0.02 * Math.max(0, lapNo - 4)))
    const ph = ((i % 400) / 400) * 2 * Math.PI
    const lapI = lapNo + (i % 400) / 400
    let speed = 220 + 90 * Math.sin(ph) + rnd() * 4 - lapNo
    const brake = Math.cos(ph) < -0.7 ? 80 : 0
    const pit = lapNo === 9 && i % 400 >= 100 && i % 400 < 200
    fuel -= lapNo === 6 ? 0.012 : 0.005
    if (pit) fuel = 100
    let bfl = 550 + 300 * Math.max(0, -Math.cos(ph)) + rnd() * 10 + lapNo * 5
    if (lapNo === 3 && i % 400 > 100 && i % 400 < 170) bfl = 980
    let tfr = 100 + rnd() * 5
    if (lapNo === 4 && i % 400 > 200 && i % 400 < 300) tfr = 140
    let oil = 4 + rnd() * 0.2
    if (lapNo === 5 && i % 400 > 50 && i % 400 < 90) oil = 1.0
    if (lapNo === 7 && i % 400 === 100) speed = 100
    if (lapNo === 7 && i % 400 > 100 && i % 400 < 120) speed = 90
    let fuelReported = fuel
    if (lapNo === 10 && i % 400 > 100 && i % 400 < 150) fuelReported = fuel + 3
    const wear = lapNo >= 10 || (lapNo === 9 && i % 400 >= 150) ? (lapI - 9.375) * 4 : lapI * 10
    const fields: Fields = {
      lap: lapNo,
      lap_distance: (i % 400) * 12.5,
      sector: 1 + Math.floor((i % 400) / 134),
      speed,
      rpm: 8000 + speed * 20,
      gear: Math.min(8, 1 + Math.floor(speed / 40)),
      throttle: brake ? 0 : 90,
      brake,
      drs: false,
      fuel: fuelReported,
      brake_temp_fl: bfl,
      brake_temp_fr: bfl - 20,
      brake_temp_rl: bfl - 200,
      brake_temp_rr: bfl - 210,
      tyre_temp_fl: 100,
      tyre_temp_fr: tfr,
      tyre_temp_rl: 95,
      tyre_temp_rr: 96,
      tyre_wear: wear,
      oil_pressure: oil,
      pit,
      driver: 'HAM',
    }
    if (i % 7 === 3) delete fields.oil_pressure
    rs.push({ ts, fields })
  }
  return rs
}

void t.test('a synthetic race: every anomaly type, laps, scores, recommendation', async (t) => {
  const d = new Driver()
  for (const r of synthRace()) d.feed(r.ts, r.fields)
  const types = new Set(d.alerts().map((a) => a.type))
  t.same([...types].sort(), [
    'brake_overheat',
    'fuel_anomaly',
    'oil_pressure_drop',
    'sudden_speed_loss',
    'tire_overheat',
  ])
  const opened = d
    .alerts()
    .filter((a) => a.state === 'open')
    .map((a) => a.alertId)
  const closed = d
    .alerts()
    .filter((a) => a.state === 'close')
    .map((a) => a.alertId)
  t.same(closed.sort(), opened.sort(), 'each alert opened once and closed once')
  t.same(
    d.of('lap').map((o) => o.body.lap),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  )
  t.ok(d.of('recommendation').length >= 1, 'a pit recommendation before the stop')
  const ids = d.out.map((o) => o.id)
  t.equal(new Set(ids).size, ids.length, 'output ids are unique')
  t.match(d.cell.query(), { driver: 'HAM', lap: 13, openAlerts: [], inPit: false })
})

void t.test('snapshot/restore mid-run (JSON round trip) gives identical outputs', async (t) => {
  const rs = synthRace()
  const straight = new Driver()
  for (const r of rs) straight.feed(r.ts, r.fields)
  for (const every of [1, 97, 401, 1333]) {
    const split = new Driver()
    rs.forEach((r, i) => {
      if (i % every === every - 1) split.restore()
      split.feed(r.ts, r.fields)
    })
    t.same(split.out, straight.out, `restored every ${every} readings`)
    t.same(split.cell.query(), straight.cell.query())
  }
  // every = 1 restores before each reading: inside pending and open alerts, the speed window, lap boundaries.
  const snapBytes = JSON.stringify(straight.cell.snapshot(1)).length
  t.ok(snapBytes < 4000, `compact snapshot (${snapBytes} bytes)`)
  t.throws(() => race.codec.decode({}, 1), { code: 'PW_SNAPSHOT_CORRUPT' })
  t.throws(() => race.codec.decode(race.codec.encode(race.init(ENTITY, RACE_DEFAULTS)), 2), {
    code: 'PW_SNAPSHOT_VERSION',
  })
})

void t.test('config validation names the setting', async (t) => {
  t.doesNotThrow(() => validateRaceConfig(RACE_DEFAULTS))
  const settingOf = (c: RaceConfig): string | undefined => {
    try {
      validateRaceConfig(c)
    } catch (err) {
      return err instanceof ConfigError ? err.setting : 'not a ConfigError'
    }
    return undefined
  }
  t.equal(settingOf(cfg({ pitStop: { wTyreWear: 0.5 } })), 'race.pitStop.wTyreWear', 'weights must sum to 1')
  t.equal(settingOf(cfg({ brake: { overheatC: Number.NaN } })), 'race.brake.overheatC')
  t.equal(settingOf(cfg({ pitStop: { tyreWearHighPct: 10 } })), 'race.pitStop.tyreWearHighPct')
  t.equal(settingOf({ ...RACE_DEFAULTS, oil: undefined } as unknown as RaceConfig), 'race.oil')
  const d = new Driver(cfg({ fuel: { rateFactor: 0.9 } }))
  t.throws(() => d.feed(0, { speed: 1 }), { code: 'PW_CONFIG_INVALID' }, 'checked at activation')
})

void t.test('throughput of the profile through the cell', async (t) => {
  const rs = synthRace()
  const d = new Driver()
  const n = 50_000
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const r = rs[i % rs.length] as Reading
    d.seq++
    d.cell.applyReading(d.seq, i, { ts: 1_700_000_000_000 + i * 50, fields: r.fields }, () => {})
  }
  const perSec = n / ((performance.now() - t0) / 1000)
  t.comment(`${Math.round(perSec)} readings/s`)
  t.ok(perSec > 10_000, 'tens of thousands per second on one core (loose bound: shared CI machines)')
})
