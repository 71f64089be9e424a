/**
 * Crash test of the production `race` profile (issue 13 part 5), modelled on test/integration/crash-environment.test.ts:
 * 3 worker processes running the real profile list (test/fixtures/worker-prod-main.ts), a deterministic trace of
 * ~40 cars (brake and tyre temperatures over their thresholds for longer and shorter than the 2 s duration, one
 * corner at a time; laps; readings a little out of order and late; re-sends with the same `rid` and no message
 * id, which JetStream's duplicate window cannot catch), a random worker killed with -9 at random moments (>= 6
 * times) and restarted. At the end OUT (fence rule, highest token per id) equals the independent, docs-only
 * reference test/helpers/ref-race.ts over the stream as stored: every brake_overheat and tire_overheat alert
 * (start, the reading that opened it, end), every late reading (and the watermark it missed), every finished lap
 * (times, speeds, maxima, samples). PITWALL_CRASH_RACE_READINGS / _CARS / _SEED / _RATE vary it.
 */
import t from 'tap'
import { jetstream, type JetStreamClient } from '@nats-io/jetstream'
import { parsePartitioned, partitionOf, readingMsgId, tlmSubject } from '../../actors/subjects.js'
import type { AlertBody, LapBody, LateBody, Output, Reading } from '../../actors/types.js'
import { killLoop, sleep, startProdWorkers } from '../helpers/cluster.js'
import { CORNERS, RACE_RULES, type RaceMsg, alertKey, lapKey, referenceRace } from '../helpers/ref-race.js'
import { fencedOutputs, readAll } from '../helpers/streams.js'
import { interleaveResends, rng } from '../helpers/trace.js'

const N = Number(process.env.PITWALL_CRASH_RACE_READINGS ?? 24_000)
const CARS = Number(process.env.PITWALL_CRASH_RACE_CARS ?? 40)
const P = 8
const SITE = 'a'
const STEP_MS = 200
const LAP_MS = 20_000
const BASE = 1_800_000_000_000

interface Send {
  id: string
  reading: Reading
  resend: boolean
}
/** [start, end) over the threshold and [end, tail) inside the hysteresis band, in event time, and the corner. */
type Episode = [number, number, number, number]

/**
 * Episodes of one corner over a threshold, in event time. Lengths straddle the 2 s duration; a third of them
 * cool down through the hysteresis band for 1 s (an open alert stays open there, a pending run ends).
 */
function episodes(r: () => number, from: number, to: number, lengths: number[], gapMs: number): Episode[] {
  const out: Episode[] = []
  let at = from + Math.floor(r() * gapMs)
  while (at < to) {
    const len = lengths[Math.floor(r() * lengths.length)] as number
    const tail = r() < 0.33 ? 1_000 : 0
    out.push([at, at + len, at + len + tail, Math.floor(r() * CORNERS.length)])
    at += len + tail + 3_000 + Math.floor(r() * gapMs)
  }
  return out
}
/** The episode corner at `ts` and whether it is over (2) or in the band (1); -1 outside every episode. */
function heat(eps: Episode[], ts: number): { corner: number; level: number } {
  const e = eps.find(([a, , c]) => ts >= a && ts < c)
  return e ? { corner: e[3], level: ts < e[1] ? 2 : 1 } : { corner: -1, level: 0 }
}
/** A value on a 1/4 grid: sums of these are exact in any order, so lap sums compare exactly. */
const q = (r: () => number, lo: number, span: number): number => lo + Math.floor(r() * span * 4) / 4

/**
 * The send plan: per reading a car is drawn and its clock advances 200 ms; 3 % of readings are 250-1,500 ms
 * behind (out of order), 1 % 5-20 s behind (late). 1.5 % are re-sent later (same rid, no message id). The lap
 * number follows event time (a 20 s lap, each car starting at its own point of it); 0.5 % of readings repeat the
 * car's previous event time, 1 % carry no lap number and 0.3 % the previous one. Each car ends with one
 * reading of the next lap, with every temperature normal, which finishes its last lap and closes its alerts.
 */
function makePlan(seed: number, n: number, cars: number): { plan: Send[]; resends: number } {
  const r = rng(seed)
  const clock = Array.from({ length: cars }, () => BASE + Math.floor(r() * 60_000))
  const lapOffset = Array.from({ length: cars }, () => Math.floor(r() * LAP_MS))
  const span = Math.ceil(n / cars) * STEP_MS
  const brake = clock.map((c) => episodes(r, c, c + span, [800, 1_600, 2_400, 3_000, 6_000], 12_000))
  const tyre = clock.map((c) => episodes(r, c, c + span, [1_000, 2_600, 4_000], 30_000))
  const lapOf = (e: number, ts: number): number => Math.floor((ts - BASE + (lapOffset[e] as number)) / LAP_MS) + 1
  const reading = (e: number, ts: number, i: number, lap: number | undefined = lapOf(e, ts), calm = false): Reading => {
    const hb = calm ? { corner: -1, level: 0 } : heat(brake[e] as Episode[], ts)
    const ht = calm ? { corner: -1, level: 0 } : heat(tyre[e] as Episode[], ts)
    const fields: Reading['fields'] = {
      driver: `D${e}`,
      ...(lap === undefined ? {} : { lap }),
      lap_distance: Math.round((((ts - BASE + (lapOffset[e] as number)) % LAP_MS) / LAP_MS) * 5_850),
      sector: 1 + Math.floor((((ts - BASE + (lapOffset[e] as number)) % LAP_MS) / LAP_MS) * 3),
      speed: q(r, 240, 60),
      rpm: 10_000 + Math.floor(r() * 1_500),
      gear: 7,
      throttle: 100,
      brake: 0,
      drs: false,
      ers_deploy: 0,
      ers_store: 0.5,
      fuel: 100 - Math.floor((ts - BASE) / 1_000) / 100,
      tyre_wear: 10,
      engine_temp: 105,
      oil_temp: 110,
      oil_pressure: 4.5,
      g_lat: 1.5,
      g_lon: 0.5,
      pit: false,
    }
    CORNERS.forEach((c, k) => {
      fields[`brake_temp_${c}`] =
        k !== hb.corner ? q(r, 300, 500) : hb.level === 2 ? q(r, 950.25, 80) : q(r, 925.25, 24.75)
      fields[`tyre_temp_${c}`] = k !== ht.corner ? q(r, 85, 30) : ht.level === 2 ? q(r, 130.25, 10) : q(r, 125.25, 4.75)
      fields[`tyre_pressure_${c}`] = 21
    })
    return { ts, rid: `r${i}`, profile: 'race', fields }
  }
  const plan: Send[] = []
  for (let i = 0; i < n; i++) {
    const e = Math.floor(r() * cars)
    clock[e] = (clock[e] as number) + STEP_MS
    let ts = clock[e] as number
    let lap: number | undefined = lapOf(e, ts)
    const u = r()
    if (u < 0.01) ts -= 5_000 + Math.floor(r() * 15_000)
    else if (u < 0.04) ts -= 250 + Math.floor(r() * 1_250)
    else if (u < 0.045)
      ts -= STEP_MS // the same event time as the car's previous reading: not late
    else if (u < 0.055) lap = undefined
    else if (u < 0.058) lap -= 1
    plan.push({ id: `car-${e}`, reading: reading(e, ts, i, u < 0.04 ? lapOf(e, ts) : lap), resend: false })
  }
  const { plan: withResends, resends } = interleaveResends(plan, r, 0.015, 2_000)
  for (let e = 0; e < cars; e++) {
    const ts = (clock[e] as number) + STEP_MS
    withResends.push({ id: `car-${e}`, reading: reading(e, ts, n + e, lapOf(e, ts) + 1, true), resend: false })
  }
  return { plan: withResends, resends }
}

/** Publishes the plan at about `ratePerS`: first copies with the entity-scoped message id, re-sends without. */
async function feedPlan(js: JetStreamClient, plan: Send[], ratePerS: number): Promise<number> {
  const batch = Math.max(1, Math.round(ratePerS / 20))
  const started = Date.now()
  let sent = 0
  for (let i = 0; i < plan.length; i += batch) {
    const chunk = plan.slice(i, i + batch)
    await Promise.all(
      chunk.map((s) =>
        js.publish(
          tlmSubject(SITE, partitionOf('vehicle', s.id, P), 'vehicle', s.id),
          JSON.stringify(s.reading),
          s.resend
            ? { timeout: 30_000 }
            : { msgID: readingMsgId('vehicle', s.id, s.reading.rid as string), timeout: 30_000 },
        ),
      ),
    )
    sent += chunk.length
    const ahead = (sent / ratePerS) * 1000 - (Date.now() - started)
    if (ahead > 0) await sleep(ahead)
  }
  return sent
}

interface Got {
  alerts: Map<string, { open?: Output<'alert'>; close?: Output<'alert'> }>
  otherAlerts: Map<string, number>
  laps: Map<string, Output<'lap'>>
  late: Map<string, LateBody>
}

function summarize(accepted: Map<string, Output>): Got {
  const got: Got = { alerts: new Map(), otherAlerts: new Map(), laps: new Map(), late: new Map() }
  const types = new Set(RACE_RULES.map((x) => x.type))
  for (const o of accepted.values()) {
    const entity = `${o.kind}:${o.entity}`
    if (o.type === 'lap') got.laps.set(lapKey(entity, (o.body as LapBody).lap), o as Output<'lap'>)
    else if (o.type === 'late') got.late.set(`${entity}|${(o.body as LateBody).readingSeq}`, o.body as LateBody)
    else if (o.type === 'alert') {
      const b = o.body as AlertBody
      if (!types.has(b.type)) {
        if (b.state === 'open') got.otherAlerts.set(b.type, (got.otherAlerts.get(b.type) ?? 0) + 1)
        continue
      }
      const k = alertKey(entity, b.type, b.start)
      const a = got.alerts.get(k) ?? {}
      if (b.state === 'open') a.open = o as Output<'alert'>
      if (b.state === 'close') a.close = o as Output<'alert'>
      got.alerts.set(k, a)
    }
  }
  return got
}

t.test(
  'race profile, kill -9 workers at random moments: alerts, late readings and laps equal the docs-based reference',
  async (t) => {
    const { nc, workers, respawn } = await startProdWorkers(t, SITE, P)

    const seed = Number(process.env.PITWALL_CRASH_RACE_SEED ?? 11)
    const { plan, resends } = makePlan(seed, N, CARS)
    t.comment(`seed ${seed}: ${plan.length} sends (${resends} re-sends) over ${CARS} cars`)
    let done = false
    const started = Date.now()
    const feeding = feedPlan(jetstream(nc), plan, Number(process.env.PITWALL_CRASH_RACE_RATE ?? 1_000)).then((n) => {
      done = true
      return n
    })
    const kills = await killLoop(workers, respawn, rng(seed + 1), () => done)
    t.equal(await feeding, plan.length, 'whole plan published')

    const dec = new TextDecoder()
    const stream = await readAll<RaceMsg>(nc, 'TLM', (subject, seq, data) => {
      const p = parsePartitioned(subject)
      if (!p || p.kind === '_sys') return undefined
      const b = JSON.parse(dec.decode(data)) as Reading
      return { seq, kind: p.kind, id: p.id, ts: b.ts, fields: b.fields, rid: b.rid }
    })
    t.equal(
      stream.length,
      plan.length,
      'every send is stored (re-sends without message id are not caught by JetStream)',
    )
    const ref = referenceRace(stream)
    t.equal(ref.duplicates, resends, 'the reference drops exactly the re-sends')

    const closed = [...ref.alerts.values()].filter((a) => a.end !== undefined).length
    let res = await fencedOutputs(nc)
    let got = summarize(res.accepted)
    for (let i = 0; i < 30; i++) {
      const lapsIn = [...ref.laps.keys()].every((k) => got.laps.has(k))
      const lateIn = ref.late.every((l) => got.late.has(`${l.entity}|${l.seq}`))
      const closesIn = [...got.alerts.values()].filter((a) => a.close).length >= closed
      if (lapsIn && lateIn && closesIn) break
      await sleep(2000)
      res = await fencedOutputs(nc)
      got = summarize(res.accepted)
    }
    const settledS = (Date.now() - started) / 1000
    const examples: string[] = []

    // Alerts: the same (car, type, start), opened at the same reading, closed at the same event time.
    let alertWrong = 0
    for (const [k, a] of ref.alerts) {
      const o = got.alerts.get(k)
      const ok =
        o?.open?.ts === a.openedAt && (a.end === undefined ? o.close === undefined : o.close?.body.end === a.end)
      if (!ok) {
        alertWrong++
        if (examples.length < 15)
          examples.push(
            `alert ${k}: expected open at ${a.openedAt}${a.end !== undefined ? `, close at ${a.end}` : ', still open'}; got ${o?.open ? `open at ${o.open.ts}` : 'no open'}, ${o?.close ? `close at ${o.close.body.end}` : 'no close'}`,
          )
      }
    }
    const alertExtra = [...got.alerts.keys()].filter((k) => !ref.alerts.has(k))
    for (const k of alertExtra.slice(0, 5)) examples.push(`extra alert ${k} open at ${got.alerts.get(k)?.open?.ts}`)
    t.equal(
      alertWrong,
      0,
      'every reference brake_overheat / tire_overheat opened at the same reading and closed at the same event time',
    )
    t.equal(alertExtra.length, 0, 'no brake or tyre alert the reference does not have')

    // Late readings: the same (car, stream sequence) set, each with the watermark it missed.
    const lateIds = new Map(ref.late.map((l) => [`${l.entity}|${l.seq}`, l]))
    const lateMissing = [...lateIds.keys()].filter((k) => !got.late.has(k))
    const lateExtra = [...got.late.keys()].filter((k) => !lateIds.has(k))
    const lateWm = [...lateIds].filter(([k, l]) => got.late.has(k) && got.late.get(k)?.watermark !== l.watermark)
    for (const k of [...lateMissing.slice(0, 3), ...lateExtra.slice(0, 3)])
      examples.push(
        `late ${lateIds.has(k) ? 'missing' : 'extra'} ${k} ${JSON.stringify(got.late.get(k) ?? lateIds.get(k))}`,
      )
    for (const [k, l] of lateWm.slice(0, 3))
      examples.push(`late ${k}: expected watermark ${l.watermark} got ${got.late.get(k)?.watermark}`)
    t.equal(lateMissing.length, 0, 'every late reading recorded')
    t.equal(
      lateExtra.length,
      0,
      'no late record the reference does not have (a re-sent late reading is not recorded twice)',
    )
    t.equal(lateWm.length, 0, 'each late record names the watermark it missed')

    // Laps: every finished lap, exactly; none the reference does not have.
    let lapWrong = 0
    for (const [k, l] of ref.laps) {
      const b = got.laps.get(k)?.body
      const ok =
        b !== undefined &&
        b.start === l.start &&
        b.end === l.end &&
        b.lapTimeMs === l.lapTimeMs &&
        b.samples === l.samples &&
        b.minSpeed === l.minSpeed &&
        b.maxSpeed === l.maxSpeed &&
        Math.abs(b.avgSpeed - l.avgSpeed) <= 1e-9 &&
        b.maxBrakeTemp === l.maxBrakeTemp &&
        b.maxTyreTemp === l.maxTyreTemp
      if (!ok) {
        lapWrong++
        const { speedSum: _s, speeds: _n, entity: _e, ...want } = l
        if (examples.length < 25) examples.push(`lap ${k}: expected ${JSON.stringify(want)} got ${JSON.stringify(b)}`)
      }
    }
    const lapExtra = [...got.laps.keys()].filter((k) => !ref.laps.has(k))
    for (const k of lapExtra.slice(0, 5)) examples.push(`extra lap ${k} ${JSON.stringify(got.laps.get(k)?.body)}`)
    t.equal(
      lapWrong,
      0,
      'every finished lap: start, end, lap time, samples, min/max speed and maxima exact, mean speed within 1e-9',
    )
    t.equal(lapExtra.length, 0, 'no lap the reference does not have (the lap each car is still on is not emitted)')

    const lateNear = ref.late.filter((l) => l.watermark - l.ts < 2_000).length
    t.ok(
      ref.shortRuns > 0 &&
        closed > 0 &&
        ref.duplicates > 0 &&
        lateNear > 0 &&
        ref.late.length > lateNear &&
        ref.strayLap > 0,
      'the trace has runs shorter and longer than the duration, re-sends, readings a little and far behind, readings without or with a lower lap',
    )
    t.same(Object.fromEntries(got.otherAlerts), {}, 'no oil, speed or fuel alert: the trace keeps those fields healthy')
    t.equal(
      res.conflicts,
      0,
      'no output id with two different bodies (alerts, laps, late records, scores, recommendations)',
    )
    if (examples.length > 0) t.comment(`differences:\n  ${examples.join('\n  ')}`)

    const byType = (ty: string): string => {
      const all = [...ref.alerts.values()].filter((a) => a.type === ty)
      return `${ty}=${all.length}(${all.filter((a) => a.end !== undefined).length} closed)`
    }
    const counts = new Map<string, number>()
    for (const o of res.accepted.values()) counts.set(o.type, (counts.get(o.type) ?? 0) + 1)
    t.comment(
      `readings=${stream.length} cars=${CARS} laps checked=${ref.laps.size} late=${ref.late.length} (${lateNear} less than 2 s behind) ` +
        `alerts ${RACE_RULES.map((x) => byType(x.type)).join(' ')} shorter runs (no alert)=${ref.shortRuns} readings without or with a lower lap=${ref.strayLap} kills=${kills} re-sends dropped=${ref.duplicates} ` +
        `staleRejected=${res.stale} outputs ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')} other alerts ${JSON.stringify(Object.fromEntries(got.otherAlerts))} ` +
        `settled after ${settledS.toFixed(1)} s`,
    )
  },
)
