/**
 * The production `environment` profile checked end to end (issue 13 part 5), shared by the crash, rebalance and
 * fencing tests: a deterministic send plan for a few hundred sensors (out of order, behind the watermark, late,
 * values over the alert thresholds for longer and shorter than their duration, re-sends with the same `rid` and
 * no message id, which JetStream's duplicate window cannot catch), its feeder, and the comparison of OUT (fence
 * rule, highest token per id) with the independent, docs-only reference test/helpers/ref-environment.ts over the
 * stream as stored: every window (count, sum, min, max exact, mean within 1e-9), every late reading, every
 * duration alert's open and close, nothing extra.
 */
import { writeFileSync } from 'node:fs'
import type { Test } from 'tap'
import type { JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { parsePartitioned, partitionOf, readingMsgId, tlmSubject } from '../../actors/subjects.js'
import type { AlertBody, LateBody, Output, Reading, WindowBody } from '../../actors/types.js'
import { sleep } from './cluster.js'
import { ENV_FIELDS, ENV_RULES, type EnvMsg, referenceEnvironment, windowKey } from './ref-environment.js'
import { fencedOutputs as outputs, readAll } from './streams.js'
import { interleaveResends, rng } from './trace.js'

const STEP_MS = 10_000
const BASE = 1_800_000_000_000

export interface EnvPlan {
  plan: Send[]
  resends: number
}

export interface Send {
  id: string
  reading: Reading
  resend: boolean
}

/** Episodes over a threshold, per sensor, in event time: [start, end). Lengths straddle each rule's duration. */
function episodes(r: () => number, from: number, to: number, lengths: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let at = from + Math.floor(r() * 300_000)
  while (at < to) {
    const len = lengths[Math.floor(r() * lengths.length)] as number
    out.push([at, at + len])
    at += len + 120_000 + Math.floor(r() * 600_000)
  }
  return out
}
const inside = (eps: Array<[number, number]>, ts: number): boolean => eps.some(([a, b]) => ts >= a && ts < b)
/** A value on a 1/4 grid: sums of these are exact in any order, so window sums compare exactly. */
const q = (r: () => number, lo: number, span: number): number => lo + Math.floor(r() * span * 4) / 4

/**
 * The send plan: per reading a sensor is drawn, its clock advances 10 s; event time is jittered back up to 20 s
 * (out of order within the lateness), 1.5 % of readings 60-200 s behind (behind the watermark: their tumbling
 * window may be closed, their sliding windows open), 1 % 310-400 s behind (late: every window closed). 1.5 % are
 * re-sent later (same rid, no message id). Each sensor ends with one reading an hour ahead that closes its windows.
 */
export function makeEnvPlan(seed: number, n: number, sensors: number): EnvPlan {
  const r = rng(seed)
  const clock = Array.from({ length: sensors }, () => BASE + Math.floor(r() * 60_000))
  const span = Math.ceil(n / sensors) * STEP_MS
  const temp = clock.map((c) => episodes(r, c, c + span, [30_000, 50_000, 90_000, 150_000, 300_000]))
  const co2 = clock.map((c) => episodes(r, c, c + span, [60_000, 100_000, 180_000, 400_000]))
  const batt = clock.map((c) => episodes(r, c, c + span, [40_000, 200_000]).filter(() => r() < 0.3))
  const reading = (e: number, ts: number, i: number): Reading => ({
    ts,
    rid: `r${i}`,
    profile: 'environment',
    fields: {
      temperature: inside(temp[e] as Array<[number, number]>, ts) ? q(r, 40.25, 15) : q(r, 15, 15),
      humidity: q(r, 30, 40),
      co2: inside(co2[e] as Array<[number, number]>, ts) ? q(r, 1500.25, 900) : q(r, 400, 800),
      pressure: q(r, 990, 40),
      battery: inside(batt[e] as Array<[number, number]>, ts) ? q(r, 5, 9) : q(r, 30, 70),
      status: 'ok',
    },
  })
  const plan: Send[] = []
  for (let i = 0; i < n; i++) {
    const e = Math.floor(r() * sensors)
    clock[e] = (clock[e] as number) + STEP_MS
    let ts = (clock[e] as number) - Math.floor(r() * 2 * STEP_MS)
    const u = r()
    if (u < 0.01) ts -= 310_000 + Math.floor(r() * 90_000)
    else if (u < 0.025) ts -= 60_000 + Math.floor(r() * 140_000)
    plan.push({ id: `s${e}`, reading: reading(e, ts, i), resend: false })
  }
  const { plan: withResends, resends } = interleaveResends(plan, r, 0.015, 3_000)
  for (let e = 0; e < sensors; e++)
    withResends.push({ id: `s${e}`, reading: reading(e, (clock[e] as number) + 3_600_000, n + e), resend: false })
  return { plan: withResends, resends }
}

/** Publishes the plan at about `ratePerS`: first copies with the entity-scoped message id, re-sends without. */
export async function feedEnvPlan(
  js: JetStreamClient,
  site: string,
  P: number,
  plan: Send[],
  ratePerS: number,
  stop: () => boolean = () => false,
): Promise<number> {
  const batch = Math.max(1, Math.round(ratePerS / 20))
  const started = Date.now()
  let sent = 0
  for (let i = 0; i < plan.length && !stop(); i += batch) {
    const chunk = plan.slice(i, i + batch)
    await Promise.all(
      chunk.map((s) =>
        js.publish(
          tlmSubject(site, partitionOf('sensor', s.id, P), 'sensor', s.id),
          JSON.stringify(s.reading),
          s.resend
            ? { timeout: 30_000 }
            : { msgID: readingMsgId('sensor', s.id, s.reading.rid as string), timeout: 30_000 },
        ),
      ),
    )
    sent += chunk.length
    const ahead = (sent / ratePerS) * 1000 - (Date.now() - started)
    if (ahead > 0) await sleep(ahead)
  }
  return sent
}

/** What the stream must hold and a note for the summary line (e.g. the kills). */
export interface EnvExpect {
  sends: number
  resends: number
  note?: string
}

/**
 * Reads TLM as stored, computes the reference, waits (up to 60 s) until OUT has every reference window, late
 * record and alert close, then asserts equality. Returns the number of stale outputs the fence rule rejected.
 */
export async function checkEnvironment(t: Test, nc: NatsConnection, expect: EnvExpect): Promise<number> {
  const dec = new TextDecoder()
  const stream = await readAll<EnvMsg>(nc, 'TLM', (subject, seq, data) => {
    const p = parsePartitioned(subject)
    if (!p || p.kind === '_sys') return undefined
    const b = JSON.parse(dec.decode(data)) as Reading
    return { seq, kind: p.kind, id: p.id, ts: b.ts, fields: b.fields, rid: b.rid }
  })
  t.equal(stream.length, expect.sends, 'every send is stored (re-sends without message id are not caught by JetStream)')
  const ref = referenceEnvironment(stream)
  t.equal(ref.duplicates, expect.resends, 'the reference drops exactly the re-sends')

  const lateIds = new Set(ref.late.map((l) => `${l.entity}|${l.seq}`))
  const closedAlerts = [...ref.alerts.values()].filter((a) => a.end !== undefined).length
  let res = await outputs(nc)
  const summarize = (): {
    windows: Map<string, Output<'window'>>
    late: Set<string>
    alerts: Map<string, { open?: Output<'alert'>; close?: Output<'alert'> }>
  } => {
    const windows = new Map<string, Output<'window'>>()
    const late = new Set<string>()
    const alerts = new Map<string, { open?: Output<'alert'>; close?: Output<'alert'> }>()
    for (const o of res.accepted.values()) {
      const entity = `${o.kind}:${o.entity}`
      if (o.type === 'window') {
        const b = o.body as WindowBody
        windows.set(windowKey(entity, b.window, b.start), o as Output<'window'>)
      } else if (o.type === 'late') late.add(`${entity}|${(o.body as LateBody).readingSeq}`)
      else if (o.type === 'alert') {
        const b = o.body as AlertBody
        const a = alerts.get(b.alertId) ?? {}
        if (b.state === 'open') a.open = o as Output<'alert'>
        if (b.state === 'close') a.close = o as Output<'alert'>
        alerts.set(b.alertId, a)
      }
    }
    return { windows, late, alerts }
  }
  let got = summarize()
  for (let i = 0; i < 30; i++) {
    const windowsIn = [...ref.windows.keys()].every((k) => got.windows.has(k))
    const lateIn = [...lateIds].every((k) => got.late.has(k))
    const closesIn = [...got.alerts.values()].filter((a) => a.close).length >= closedAlerts
    if (windowsIn && lateIn && closesIn) break
    await sleep(2000)
    res = await outputs(nc)
    got = summarize()
  }

  // Windows: every reference window, exactly; no window the reference does not have (the last reading of each
  // sensor, an hour ahead, leaves its own windows open: neither side closes them unless idle-closed).
  let missing = 0
  let wrong = 0
  const examples: string[] = []
  for (const [k, w] of ref.windows) {
    const o = got.windows.get(k)
    if (!o) {
      missing++
      if (examples.length < 5) examples.push(`missing ${k} readings=${w.readings}`)
      continue
    }
    const b = o.body
    if (b.counts.readings !== w.readings || (b.counts.alerts ?? 0) !== w.alerts) {
      wrong++
      if (examples.length < 10)
        examples.push(`${k} counts: expected readings=${w.readings} alerts=${w.alerts} got ${JSON.stringify(b.counts)}`)
      continue
    }
    for (const f of ENV_FIELDS) {
      const want = w.fields[f]
      const have = b.fields[f]
      const ok =
        want === undefined
          ? have === undefined
          : have !== undefined &&
            have.count === want.count &&
            have.sum === want.sum &&
            have.min === want.min &&
            have.max === want.max &&
            Math.abs(have.mean - want.sum / want.count) <= 1e-9
      if (!ok) {
        wrong++
        if (examples.length < 10)
          examples.push(
            `${k} ${f}: expected ${JSON.stringify(want)} got ${JSON.stringify(have && { count: have.count, sum: have.sum, min: have.min, max: have.max, mean: have.mean })}`,
          )
        break
      }
    }
  }
  const otherFields = [...got.windows.values()].filter((o) =>
    Object.keys(o.body.fields).some((f) => !(ENV_FIELDS as readonly string[]).includes(f)),
  )
  t.equal(otherFields.length, 0, 'windows aggregate temperature, humidity, co2 and battery only (docs/profiles.md)')
  const extra = [...got.windows.entries()].filter(
    ([k, o]) => !ref.windows.has(k) && !(o.body.idleClosed && ref.open.has(k)),
  )
  for (const [k, o] of extra.slice(0, 5))
    examples.push(`extra ${k} idleClosed=${o.body.idleClosed} count=${o.body.fields.temperature?.count}`)
  t.equal(missing, 0, 'no window lost')
  t.equal(
    wrong,
    0,
    'every window: count, sum, min, max exact and mean within 1e-9 for temperature, humidity, co2, battery; counters readings and alerts',
  )
  t.equal(extra.length, 0, 'no window the reference does not have')

  // Late readings: the same (entity, stream sequence) set.
  const lateMissing = [...lateIds].filter((k) => !got.late.has(k))
  const lateExtra = [...got.late].filter((k) => !lateIds.has(k))
  for (const k of [...lateMissing.slice(0, 3), ...lateExtra.slice(0, 3)])
    examples.push(`late ${lateIds.has(k) ? 'missing' : 'extra'} ${k}`)
  t.equal(lateMissing.length, 0, 'every late reading recorded')
  t.equal(
    lateExtra.length,
    0,
    'no late record the reference does not have (a re-sent late reading is not recorded twice)',
  )

  // Duration alerts: the same ids (start), opened, and closed at the same event time. `stale` is processing time.
  const types = new Set(ENV_RULES.map((x) => x.type))
  let alertWrong = 0
  for (const a of ref.alerts.values()) {
    const o = got.alerts.get(a.alertId)
    const ok = o?.open?.ts === a.openedAt && (a.end === undefined ? o.close === undefined : o.close?.body.end === a.end)
    if (!ok) {
      alertWrong++
      if (examples.length < 20)
        examples.push(
          `alert ${a.alertId}: expected open at ${a.openedAt}${a.end !== undefined ? `, close at ${a.end}` : ', still open'}; got ${o?.open ? `open at ${o.open.ts}` : 'no open'}, ${o?.close ? `close at ${o.close.body.end}` : 'no close'}`,
        )
    }
  }
  const alertExtra = [...got.alerts.entries()].filter(
    ([id, o]) => types.has((o.open ?? o.close)?.body.type ?? '') && !ref.alerts.has(id),
  )
  for (const [id] of alertExtra.slice(0, 5)) examples.push(`extra alert ${id}`)
  t.equal(alertWrong, 0, 'every reference alert opened at the same reading, and closed at the same event time')
  t.equal(alertExtra.length, 0, 'no alert the reference does not have')
  t.ok(
    ref.shortRuns > 0 &&
      closedAlerts > 0 &&
      ref.duplicates > 0 &&
      ref.counted.size > 0 &&
      ref.late.length > ref.counted.size,
    'the trace has runs shorter and longer than the durations, re-sends, and readings late for one and for every definition',
  )
  t.equal(res.conflicts, 0, 'no output id with two different bodies')
  if (process.env.PITWALL_CRASH_ENV_DUMP) {
    // For looking into a difference offline: the stream as stored and the accepted outputs.
    writeFileSync(
      process.env.PITWALL_CRASH_ENV_DUMP,
      JSON.stringify({ stream, outputs: [...res.accepted.values()].filter((o) => o.type !== 'window') }),
    )
  }
  if (examples.length > 0) t.comment(`differences:\n  ${examples.join('\n  ')}`)

  const byType = (ty: string): string => {
    const all = [...ref.alerts.values()].filter((a) => a.type === ty)
    return `${ty}=${all.length}(${all.filter((a) => a.end !== undefined).length} closed)`
  }
  const lateEverywhere = ref.late.filter((l) => !ref.counted.has(`${l.entity}|${l.seq}`)).length
  t.comment(
    `readings=${stream.length} counted=${ref.applied} windows checked=${ref.windows.size} ` +
      `late=${ref.late.length} (${lateEverywhere} in no window, ${ref.late.length - lateEverywhere} still in sliding windows) ` +
      `alerts ${ENV_RULES.map((x) => byType(x.type)).join(' ')} shorter runs (no alert)=${ref.shortRuns} ${expect.note ?? ''} re-sends dropped=${ref.duplicates} ` +
      `staleRejected=${res.stale} stale alerts=${[...got.alerts.values()].filter((a) => (a.open ?? a.close)?.body.type === 'stale').length}`,
  )
  return res.stale
}
