// Pure planning rules of the projector (no servers): decoding, redelivery skip, fencing, in-batch dedup.
import t from 'tap'
import type { Output } from '../../actors/types.js'
import { decodeOutput, planBatch, type StreamMessage } from '../../projector/mod.js'
import { alertOut, fence, scoreOut, subjectOf, T0, windowOut } from '../projector-fixtures.js'

const enc = new TextEncoder()
function msgs(outs: Array<Output | string>, first = 1): StreamMessage[] {
  return outs.map((o, i) => ({
    seq: first + i,
    subject: typeof o === 'string' ? 'out.a.0.sensor.x' : subjectOf(o),
    data: enc.encode(typeof o === 'string' ? o : JSON.stringify(o)),
  }))
}

void t.test('decodeOutput names what is wrong', async (t) => {
  const good = windowOut('s1', T0, { seq: 1 })
  t.ok(decodeOutput(enc.encode(JSON.stringify(good))).ok)
  const bad = (patch: Record<string, unknown>, body?: Record<string, unknown>): string => {
    const d = decodeOutput(enc.encode(JSON.stringify({ ...good, ...patch, body: { ...good.body, ...body } })))
    return d.ok ? 'ok' : d.reason
  }
  t.match(bad({ type: 'nope' }), /type: unknown output type/)
  t.match(bad({ seq: -1 }), /seq: must be an integer/)
  t.match(bad({ token: 1.5 }), /token/)
  t.match(bad({ entity: '' }), /entity: must be a non-empty string/)
  t.match(bad({ ts: 3e14 }), /ts: epoch milliseconds out of range/)
  t.match(bad({}, { idleClosed: 'yes' }), /idleClosed/)
  t.match(bad({}, { fields: [] }), /body.fields: must be an object/)
  t.match(bad({ id: 'a\u0000b' }), /NUL/)
  const d = decodeOutput(enc.encode('{"x": 1e400}'))
  t.notOk(d.ok)
  const inf = decodeOutput(
    enc.encode(JSON.stringify(alertOut('s1', T0, 'open', { seq: 1, value: 1 })).replace('"value":1', '"value":1e400')),
  )
  t.match(inf, { ok: false, reason: /value: must be a finite number/ })
})

void t.test('redeliveries at or below the cursor are skipped', async (t) => {
  const outs = [windowOut('s1', T0, { seq: 1 }), windowOut('s2', T0, { seq: 2 })]
  const p = planBatch([...msgs(outs, 10), ...msgs(outs, 10)], 10, new Map())
  t.equal(p.lastSeq, 11)
  t.match(p.counts, { applied: 1, duplicates: 3 })
  t.same(
    p.rows.windows.map((w) => w.entity),
    ['s2'],
  )
})

void t.test('fencing within one batch follows stream order', async (t) => {
  const p = planBatch(
    msgs([
      windowOut('s1', T0, { seq: 1, token: 3 }), // no fence known yet: applied
      fence(0, 4),
      windowOut('s2', T0, { seq: 2, token: 3 }), // stale
      fence(0, 2), // stale fence
      windowOut('s3', T0, { seq: 3, token: 4 }),
      fence(0, 5),
    ]),
    0,
    new Map([['a/0', 1]]),
  )
  t.same(
    p.rows.windows.map((w) => w.entity),
    ['s1', 's3'],
  )
  t.match(p.counts, { applied: 4, stale: 2 })
  t.same(
    p.fences.map((f) => f.token),
    [5],
    'one fence row per partition, the highest',
  )
  t.same(
    p.stale.map((s) => s.fence),
    [4, 4],
  )
  const mismatch = planBatch(msgs([{ ...fence(0, 4), token: 3 }]), 0, new Map())
  t.match(mismatch, { counts: { malformed: 1 }, rejects: [{ reason: /disagrees with the envelope/ }] })
})

void t.test('outputs for the same key fold into one row', async (t) => {
  const p = planBatch(
    msgs([
      windowOut('s1', T0, { seq: 5, mean: 5 }),
      windowOut('s1', T0, { seq: 9, mean: 9 }),
      windowOut('s1', T0, { seq: 7, mean: 7 }),
      windowOut('s1', T0, { seq: 9, mean: 10 }), // same seq: the later one
      scoreOut('c1', { seq: 3, value: 3 }),
      scoreOut('c1', { seq: 2, value: 2 }),
      alertOut('s1', T0, 'open', { seq: 1, value: 31 }),
      alertOut('s1', T0, 'close', { seq: 4, value: 29, end: T0 + 10 }),
      alertOut('s1', T0, 'update', { seq: 3, value: 40 }), // older: does not reopen, but is the peak
    ]),
    0,
    new Map(),
  )
  t.same(
    p.rows.windows.map((w) => [w.seq, w.fields.temperature?.mean]),
    [[9, 10]],
  )
  t.same(
    p.rows.scoresLatest.map((s) => s.value),
    [3],
  )
  t.equal(p.rows.scoreHistory.length, 2)
  t.match(p.rows.alerts, [
    { state: 'closed', last_event: 'close', last_seq: 4, value: 29, peak_value: 40, end_ms: T0 + 10 },
  ])
  t.equal(p.rows.alertEvents.length, 3)
})

void t.test('peak follows the actor when it reports one, and works for low-side alerts', async (t) => {
  const low = planBatch(
    msgs([
      alertOut('s1', T0, 'open', { seq: 1, value: 1.5, threshold: 2 }),
      alertOut('s1', T0, 'update', { seq: 2, value: 0.5, threshold: 2 }),
      alertOut('s1', T0, 'update', { seq: 3, value: 1.8, threshold: 2 }),
    ]),
    0,
    new Map(),
  )
  t.equal(low.rows.alerts[0]?.peak_value, 0.5, 'furthest below the threshold')
  const reported = planBatch(msgs([alertOut('s1', T0, 'update', { seq: 1, value: 31, peak: 44 })]), 0, new Map())
  t.equal(reported.rows.alerts[0]?.peak_value, 44)
})

void t.test('undecodable messages become reject rows and still move the cursor', async (t) => {
  const p = planBatch(msgs(['{', windowOut('s1', T0, { seq: 1 })]), 0, new Map())
  t.equal(p.lastSeq, 2)
  t.match(p.rejects, [{ stream_seq: 1, reason: /not JSON/, payload: '{' }])
  t.equal(p.rows.windows.length, 1)
})
