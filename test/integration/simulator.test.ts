// The telemetry simulator: determinism, delivery order, plausible ranges, injected episodes that cross the
// thresholds for the durations in their ground truth (checked on the readings and through the real race
// actor), and publishing to a real nats-server.
import t from 'tap'
import fc from 'fast-check'
import { jetstreamManager } from '@nats-io/jetstream'
import { ActorCell } from '../../actors/cell.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import type { AlertBody, FieldValue, Output, Reading } from '../../actors/types.js'
import { RACE_DEFAULTS, race } from '../../actors/kinds/vehicle/race.js'
import {
  SIM_EPISODES,
  SIM_EPOCH,
  Simulator,
  carId,
  runSimulator,
  sensorId,
  simulate,
  type SimItem,
  type SimOptions,
} from '../../simulators/simulator.js'
import { connectTo, startNats } from '../helpers/nats.js'

const BASE: SimOptions = { seed: 42, sensors: 3, cars: 2, sensorHz: 1, carHz: 10, site: 'a', partitions: 4 }

/** Items delivered before `startTs + spanMs`. */
function until(opts: SimOptions, spanMs: number): SimItem[] {
  const sim = new Simulator(opts)
  const end = (opts.startTs ?? SIM_EPOCH) + spanMs
  const out: SimItem[] = []
  for (let it = sim.next(); it.at < end; it = sim.next()) out.push(it)
  return out
}
const take = (opts: SimOptions, n: number): SimItem[] => {
  const g = simulate(opts)
  return Array.from({ length: n }, () => g.next().value)
}
const byEntity = (items: SimItem[]): Map<string, SimItem[]> => {
  const m = new Map<string, SimItem[]>()
  for (const it of items) {
    const l = m.get(it.id) ?? []
    l.push(it)
    m.set(it.id, l)
  }
  return m
}
const num = (f: Record<string, FieldValue>, k: string): number => {
  const v = f[k]
  if (typeof v !== 'number') throw new TypeError(`field ${k} is ${typeof v}`)
  return v
}
const corners = (f: Record<string, FieldValue>, prefix: string): number =>
  Math.max(...['fl', 'fr', 'rl', 'rr'].map((c) => num(f, `${prefix}${c}`)))

void t.test('determinism: same seed, same items; another seed, other items', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 0, max: 3 }),
      fc.constantFrom(0.2, 1, 3),
      fc.constantFrom(1, 10, 25),
      fc.boolean(),
      (seed, sensors, cars, sensorHz, carHz, anomalies) => {
        fc.pre(sensors + cars > 0)
        const o: SimOptions = { ...BASE, seed, sensors, cars, sensorHz, carHz, anomalies, startTs: 1_700_000_000_000 }
        const a = take(o, 400)
        const b = take(o, 400)
        if (JSON.stringify(a) !== JSON.stringify(b)) return false
        return JSON.stringify(take({ ...o, seed: seed + 1 }, 400)) !== JSON.stringify(a)
      },
    ),
    { numRuns: 40 },
  )
  t.pass('40 random configurations reproduce exactly')

  // Each entity has its own PRNG: adding entities leaves the others' streams as they were.
  const small = byEntity(until({ ...BASE, sensors: 2, cars: 1, anomalies: true }, 120_000))
  const big = byEntity(until({ ...BASE, sensors: 5, cars: 3, anomalies: true }, 120_000))
  for (const id of [sensorId(0), sensorId(1), carId(0)]) t.same(big.get(id), small.get(id), `${id} unchanged`)
  t.equal(sensorId(0), 'env-0001')
  t.equal(carId(11), 'car-12')
})

void t.test('delivery: time order, late sensor readings, unique message ids', async (t) => {
  const items = until({ ...BASE, sensors: 20, cars: 2, sensorHz: 1, carHz: 5 }, 30 * 60_000)
  let prevAt = -Infinity
  const rids = new Set<string>()
  const lastTs = new Map<string, number>()
  const bad: string[] = []
  let late = 0
  let long = 0
  let outOfOrder = 0
  let sensorN = 0
  for (const it of items) {
    const r = it.reading
    const d = it.at - r.ts
    if (it.at < prevAt) bad.push(`delivery went back at ${r.rid}`)
    if (r.rid !== `${it.id}:${r.ts}`) bad.push(`rid ${r.rid}`)
    if (r.profile !== (it.kind === 'sensor' ? 'environment' : 'race')) bad.push(`profile ${r.profile}`)
    if (it.kind === 'vehicle' && d !== 0) bad.push(`car reading late: ${r.rid}`)
    if (d < 0 || d > 45_000) bad.push(`delay ${d}`)
    prevAt = it.at
    rids.add(r.rid as string)
    if (it.kind === 'sensor') {
      sensorN++
      if (d > 0) late++
      if (d > 30_000) long++
    }
    const prev = lastTs.get(it.id)
    if (prev !== undefined && r.ts < prev) outOfOrder++
    lastTs.set(it.id, Math.max(prev ?? -Infinity, r.ts))
  }
  t.same(bad, [], 'delivery times never go back; ids, profiles, delays as documented; cars never late')
  t.equal(rids.size, items.length, 'message ids are unique')
  t.ok(late / sensorN > 0.03 && late / sensorN < 0.08, `~5 % of sensor readings late (${late}/${sensorN})`)
  t.ok(long > 0 && long / sensorN < 0.005, `a few are > 30 s late (${long})`)
  t.ok(outOfOrder > 0, 'some arrive after a newer reading of the same sensor')
  // Rate: sensors * sensorHz + cars * carHz per second of event time.
  t.ok(Math.abs(items.length - 1800 * (20 + 10)) < 1800 * 30 * 0.01, `count ${items.length}`)
})

void t.test('environment sensors: plausible ranges, daily cycle, correlations', async (t) => {
  const items = until({ ...BASE, sensors: 4, cars: 0, sensorHz: 0.2 }, 48 * 3_600_000)
  const day: number[] = []
  const night: number[] = []
  const temp: number[] = []
  const hum: number[] = []
  for (const it of items) {
    const f = it.reading.fields
    if (it.truth) t.fail(`ground truth without anomalies: ${JSON.stringify(it.truth)}`)
    const T = num(f, 'temperature')
    const H = num(f, 'humidity')
    const ok =
      T >= 5 &&
      T <= 35 &&
      H >= 15 &&
      H <= 95 &&
      num(f, 'co2') >= 400 &&
      num(f, 'co2') <= 900 &&
      num(f, 'pressure') >= 985 &&
      num(f, 'pressure') <= 1040 &&
      num(f, 'battery') > 0 &&
      num(f, 'battery') <= 100 &&
      (f.status === 'ok' || f.status === 'warning') &&
      it.reading.loc !== undefined
    if (!ok) t.fail(`out of range: ${JSON.stringify(it.reading)}`)
    const hour = new Date(it.reading.ts).getUTCHours()
    if (hour >= 13 && hour < 17) day.push(T)
    if (hour >= 1 && hour < 5) night.push(T)
    temp.push(T)
    hum.push(H)
  }
  const mean = (a: number[]): number => a.reduce((s, x) => s + x, 0) / a.length
  t.ok(
    mean(day) - mean(night) > 5,
    `afternoon warmer than night (${mean(day).toFixed(1)} vs ${mean(night).toFixed(1)})`,
  )
  const mt = mean(temp)
  const mh = mean(hum)
  let cov = 0
  let vt = 0
  let vh = 0
  for (let i = 0; i < temp.length; i++) {
    const a = (temp[i] as number) - mt
    const b = (hum[i] as number) - mh
    cov += a * b
    vt += a * a
    vh += b * b
  }
  t.ok(cov / Math.sqrt(vt * vh) < -0.5, 'humidity falls as temperature rises')
  const co2 = items.map((it) => num(it.reading.fields, 'co2'))
  t.ok(co2.reduce((a, b) => Math.max(a, b)) - co2.reduce((a, b) => Math.min(a, b)) > 150, 'occupancy moves CO2')
})

void t.test('race cars: plausible ranges, laps, wear, fuel, pit stops', async (t) => {
  const items = until({ ...BASE, cars: 3, sensors: 0, carHz: 10 }, 60 * 60_000)
  for (const [id, list] of byEntity(items)) {
    const laps = new Map<number, { max: number; start: number; pit: boolean }>()
    let prevFuel = Infinity
    let prevPit = false
    let pitStops = 0
    for (const it of list) {
      const f = it.reading.fields
      const speed = num(f, 'speed')
      const pit = f.pit === true
      if (it.truth && it.truth.type !== 'pit_stop') t.fail(`unexpected truth ${JSON.stringify(it.truth)}`)
      if (pit !== (it.truth?.type === 'pit_stop')) t.fail('pit samples and pit_stop ground truth agree')
      const ok =
        speed >= 0 &&
        speed <= 320 &&
        corners(f, 'brake_temp_') <= 900 &&
        Math.min(num(f, 'brake_temp_fl'), num(f, 'brake_temp_rr')) >= 200 &&
        corners(f, 'tyre_temp_') <= 120 &&
        Math.min(num(f, 'tyre_temp_fl'), num(f, 'tyre_temp_rr')) >= 80 &&
        num(f, 'tyre_wear') >= 0 &&
        num(f, 'tyre_wear') <= 100 &&
        num(f, 'throttle') >= 0 &&
        num(f, 'throttle') <= 100 &&
        num(f, 'brake') >= 0 &&
        num(f, 'brake') <= 100 &&
        [1, 2, 3].includes(num(f, 'sector')) &&
        Number.isInteger(num(f, 'gear')) &&
        num(f, 'gear') <= 8 &&
        num(f, 'lap_distance') >= 0 &&
        num(f, 'oil_pressure') >= (pit ? 3 : 4) &&
        num(f, 'oil_pressure') <= 5 &&
        typeof f.driver === 'string'
      if (!ok) t.fail(`out of range: ${JSON.stringify(it.reading)}`)
      const fuel = num(f, 'fuel')
      if (!pit && fuel > prevFuel) t.fail(`fuel rose outside the pit lane: ${prevFuel} -> ${fuel}`)
      prevFuel = fuel
      if (pit && !prevPit) pitStops++
      prevPit = pit
      const lap = num(f, 'lap')
      const l = laps.get(lap) ?? { max: 0, start: it.reading.ts, pit: false }
      l.max = Math.max(l.max, speed)
      l.pit ||= pit
      laps.set(lap, l)
    }
    t.ok(pitStops >= 1, `${id} pitted (${pitStops})`)
    const nums = [...laps.keys()]
    for (const lap of nums.slice(1, -1)) {
      const l = laps.get(lap)
      const next = laps.get(lap + 1)
      if (!l || !next || l.pit || next.pit) continue
      const ms = next.start - l.start
      if (!(ms > 80_000 && ms < 100_000 && l.max >= 250 && l.max <= 320))
        t.fail(`${id} lap ${lap}: ${ms} ms, max ${l.max} km/h`)
    }
    const first = list[0]?.reading.fields
    const mid = list[Math.floor(list.length / 4)]?.reading.fields
    t.ok(first && mid && num(mid, 'tyre_wear') !== num(first, 'tyre_wear'), `${id} tyres wear`)
  }
})

void t.test('injected sensor episodes cross their thresholds for the ground-truth duration', async (t) => {
  const items = until({ ...BASE, seed: 3, sensors: 5, cars: 0, sensorHz: 1, anomalies: true }, 6 * 3_600_000)
  const seen = new Map<string, { type: string; start: number; end: number; first: number; last: number }>()
  for (const it of items) {
    const f = it.reading.fields
    const tr = it.truth
    const type = tr?.type
    if (!tr) {
      if (num(f, 'temperature') > 40 || num(f, 'co2') > 1500 || f.status === 'failure')
        t.fail(`anomalous without truth: ${JSON.stringify(f)}`)
      continue
    }
    if (it.reading.ts < tr.start || it.reading.ts > tr.end) t.fail(`reading outside its truth: ${JSON.stringify(it)}`)
    const crosses =
      type === 'high_temperature'
        ? num(f, 'temperature') > SIM_EPISODES.high_temperature.above
        : type === 'high_co2'
          ? num(f, 'co2') > SIM_EPISODES.high_co2.above
          : type === 'sensor_failure' && f.status === 'failure'
    if (!crosses) t.fail(`${String(type)} reading does not cross: ${JSON.stringify(f)}`)
    const k = `${it.id}:${tr.start}`
    const s = seen.get(k) ?? { ...tr, first: it.reading.ts, last: it.reading.ts }
    s.first = Math.min(s.first, it.reading.ts)
    s.last = Math.max(s.last, it.reading.ts)
    seen.set(k, s)
  }
  const types = new Set<string>()
  for (const s of seen.values()) {
    types.add(s.type)
    const minMs = SIM_EPISODES[s.type as 'high_temperature' | 'high_co2' | 'sensor_failure'].minMs
    if (!(s.end - s.start > minMs && s.last - s.first > minMs)) t.fail(`${s.type} lasts ${s.last - s.first} ms`)
  }
  t.ok(seen.size >= 10, `${seen.size} episodes`)
  t.same([...types].sort(), ['high_co2', 'high_temperature', 'sensor_failure'])
})

type Out = Omit<Output, 'site' | 'partition' | 'token'>

for (const carHz of [4, 10, 25]) {
  void t.test(
    `injected race episodes cross RACE_DEFAULTS and the race actor finds exactly them (${carHz} Hz)`,
    async (t) => {
      const items = until({ ...BASE, seed: 11, sensors: 0, cars: 3, carHz, anomalies: true }, 60 * 60_000)
      const truths = new Map<string, { type: string; start: number; end: number; first: number; last: number }>()
      const cells = new Map<string, ActorCell>()
      const out: Out[] = []
      let seq = 0
      for (const it of items) {
        const f = it.reading.fields
        const brake = corners(f, 'brake_temp_')
        const tyre = corners(f, 'tyre_temp_')
        const tr = it.truth
        if (tr?.type === 'brake_overheat' || tr?.type === 'tire_overheat') {
          const k = `${it.id}:${tr.type}:${tr.start}`
          const s = truths.get(k) ?? { ...tr, first: it.reading.ts, last: it.reading.ts }
          s.last = it.reading.ts
          truths.set(k, s)
          const over =
            tr.type === 'brake_overheat' ? brake > RACE_DEFAULTS.brake.overheatC : tyre > RACE_DEFAULTS.tyre.overheatC
          if (!over) t.fail(`${tr.type} sample below the threshold: ${JSON.stringify(f)}`)
        } else {
          // Outside an episode, below the hysteresis band too, so the actor's alert closes right after it.
          if (brake > RACE_DEFAULTS.brake.overheatC - RACE_DEFAULTS.brake.hysteresisC)
            t.fail(`brake ${brake} outside an episode`)
          if (tyre > RACE_DEFAULTS.tyre.overheatC - RACE_DEFAULTS.tyre.hysteresisC)
            t.fail(`tyre ${tyre} outside an episode`)
        }
        let c = cells.get(it.id)
        if (!c) {
          c = new ActorCell(race, RACE_DEFAULTS, { kind: 'vehicle', id: it.id })
          cells.set(it.id, c)
        }
        c.applyReading(++seq, it.reading.ts + 5, it.reading as Reading, (o) => out.push(o))
      }
      for (const s of truths.values()) {
        const dur = s.type === 'brake_overheat' ? RACE_DEFAULTS.brake.durationMs : RACE_DEFAULTS.tyre.durationMs
        if (!(s.end - s.start >= 3_000 && s.last - s.first >= dur && s.first === s.start)) {
          t.fail(`${s.type} at ${s.start}: truth ${s.end - s.start} ms, samples over ${s.last - s.first} ms`)
        }
      }
      const types = new Set([...truths.values()].map((s) => s.type))
      t.same([...types].sort(), ['brake_overheat', 'tire_overheat'])
      t.ok(truths.size >= 10, `${truths.size} episodes`)

      const alerts = out.filter((o) => o.type === 'alert').map((o) => ({ entity: o.entity, ...(o.body as AlertBody) }))
      const opened = alerts
        .filter((a) => a.state === 'open')
        .map((a) => `${a.entity}:${a.type}:${a.start}`)
        .sort()
      t.same(
        opened,
        [...truths.keys()].sort(),
        'one alert per episode, opened at its start; no false alerts of any type',
      )
      t.equal(alerts.filter((a) => a.state === 'close').length, opened.length, 'every alert closes')
      const recs = out.filter((o) => o.type === 'recommendation')
      t.ok(recs.length >= 1, `pit_now recommended (${recs.length}) as tyres wear`)
    },
  )
}

void t.test('options are validated with ConfigError', async (t) => {
  const bad: Array<[Partial<SimOptions>, string]> = [
    [{ sensors: -1 }, 'sim.sensors'],
    [{ sensors: 0, cars: 0 }, 'sim.sensors'],
    [{ carHz: 0 }, 'sim.carHz'],
    [{ sensorHz: 2000 }, 'sim.sensorHz'],
    [{ partitions: 0 }, 'sim.partitions'],
    [{ site: 'A.b' }, 'sim.site'],
    [{ seed: 1.5 }, 'sim.seed'],
    [{ startTs: Number.NaN }, 'sim.startTs'],
  ]
  for (const [o, setting] of bad)
    t.throws(
      () => new Simulator({ ...BASE, ...o }),
      { name: 'ConfigError', code: 'PW_CONFIG_INVALID', setting },
      setting,
    )
  await t.rejects(runSimulator({} as never, { ...BASE, ratePerS: 0 }), { name: 'ConfigError', setting: 'sim.ratePerS' })
  // A kind with no entities needs no rate.
  t.doesNotThrow(() => new Simulator({ ...BASE, cars: 0, carHz: 0 }))
})

void t.test('runSimulator publishes to JetStream: counts, subjects, dedup, rate, abort, errors', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: 'TLM', subjects: ['tlm.a.*.*.*'] })

  const opts = { ...BASE, sensors: 10, cars: 2, sensorHz: 2, carHz: 10, anomalies: true, startTs: 1_750_000_000_000 }
  const expected = until(opts, 30_000)
  let progress = 0
  const t0 = Date.now()
  const r = await runSimulator(nc, {
    ...opts,
    durationS: 30,
    ratePerS: 2_000,
    maxInFlight: 100,
    onProgress: () => {
      progress++
    },
  })
  const took = Date.now() - t0
  t.equal(r.sent, expected.length, `${expected.length} readings acknowledged`)
  t.equal((await jsm.streams.info('TLM')).state.messages, expected.length, 'all landed in the stream')
  t.ok(took >= ((expected.length - 1) / 2_000) * 1000 * 0.9, `paced by ratePerS (${took} ms)`)
  t.ok(progress >= 1, 'progress reported')

  // Subjects are partitioned as the runtime expects and bodies are the simulated readings.
  for (const idx of [0, Math.floor(expected.length / 2), expected.length - 1]) {
    const it = expected[idx] as SimItem
    const m = await jsm.streams.getMessage('TLM', { seq: idx + 1 })
    t.equal(m?.subject, tlmSubject('a', partitionOf(it.kind, it.id, 4), it.kind, it.id))
    t.same(m?.json(), it.reading)
  }

  // Same seed and start again: message ids repeat, the stream deduplicates.
  const again = await runSimulator(nc, { ...opts, durationS: 30 })
  t.equal(again.sent, expected.length)
  t.equal((await jsm.streams.info('TLM')).state.messages, expected.length, 'a re-run is deduplicated')

  // Real time: stops on abort, everything it sent was acknowledged and stored.
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 700)
  const rt = await runSimulator(nc, { ...opts, seed: 9, realtime: true, signal: ac.signal })
  const rate = 10 * 2 + 2 * 10
  t.ok(rt.sent > 0 && rt.sent <= rate * 1.5, `real time sent ${rt.sent} in 0.7 s at ${rate}/s`)
  t.equal((await jsm.streams.info('TLM')).state.messages, expected.length + rt.sent)

  // No stream for the site: the publish failure comes back, not swallowed.
  // Small in-flight window: the failure surfaces while newer publishes are still pending, and none of those is
  // left to reject unhandled (tap fails the test on an unhandled rejection).
  await t.rejects(runSimulator(nc, { ...opts, site: 'nostream', durationS: 5, maxInFlight: 4 }))
  await new Promise((r) => setTimeout(r, 100))
})
