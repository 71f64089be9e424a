/**
 * Reading-id dedupe inside the actor (actors/dedupe.ts through ActorCell), judged by the rule written in
 * docs/runtime.md ("Reading ids: applied once per entity"), not by the code:
 * - a rid never applied before is never called a duplicate (no good reading is dropped);
 * - a re-send is never applied silently: it is a duplicate, or applied and counted as unverifiable;
 * - a re-send is a duplicate when its first copy's event time is within the horizon of the newest event time
 *   seen and fewer than 3/4 of maxIds other applied rids have an event time at or after it;
 * - readings without a rid are applied as before;
 * - the outcome does not depend on where snapshots were taken (the set travels in the snapshot).
 */
import fc from 'fast-check'
import t from 'tap'
import { defineActor } from '../../actors/actor.js'
import { ActorCell, type SnapshotRecord } from '../../actors/cell.js'
import { ridHash, type DedupeLimits } from '../../actors/dedupe.js'
import { environment } from '../../actors/kinds/sensor/environment.js'
import type { Reading } from '../../actors/types.js'
import { runActor, type HarnessMessage } from '../helpers/harness.js'

interface S {
  n: number
  sum: number
}
const counter = defineActor<S, Record<string, never>>({
  kind: 'sensor',
  profile: 'dedupe-counter',
  defaults: {},
  allowedLatenessMs: () => 0,
  init: () => ({ n: 0, sum: 0 }),
  codec: { version: 1, encode: (s) => s, decode: (d) => d as S },
  onReading(s, r) {
    s.n++
    s.sum += Number(r.fields.v)
  },
})
const entity = { kind: 'sensor' as const, id: 'd1' }
const noop = (): void => undefined

t.test('outcomes: applied, duplicate, no-rid, replay, unverifiable', async (t) => {
  const limits: DedupeLimits = { horizonMs: 10_000, maxIds: 8 }
  const c = new ActorCell(counter, {}, entity, undefined, limits)
  t.equal(c.applyReading(1, 1, { ts: 100_000, fields: { v: 1 }, rid: 'a' }, noop), 'applied')
  t.equal(c.applyReading(2, 2, { ts: 100_000, fields: { v: 1 }, rid: 'a' }, noop), 'duplicate')
  t.equal(c.applyReading(3, 3, { ts: 100_500, fields: { v: 2 } }, noop), 'no-rid')
  t.equal(c.applyReading(3, 3, { ts: 100_500, fields: { v: 2 } }, noop), 'replay')
  t.equal(c.applyReading(4, 4, { ts: 120_000, fields: { v: 3 }, rid: 'b' }, noop), 'applied')
  // 'a' is still held (nothing pruned yet: under maxIds), so its re-send is a duplicate even past the horizon.
  t.equal(c.applyReading(5, 5, { ts: 100_000, fields: { v: 1 }, rid: 'a' }, noop), 'duplicate')
  // A new rid 20 s behind the newest reading: beyond the horizon, it may be a re-send whose id was dropped.
  t.equal(c.applyReading(6, 6, { ts: 100_100, fields: { v: 4 }, rid: 'c' }, noop), 'unverifiable')
  t.same(c.state, { n: 4, sum: 10 }, 'duplicates changed nothing; the others were applied')
  t.equal(c.lastSeq, 6)
})

t.test('a snapshot with a malformed id set is refused with PW_SNAPSHOT_CORRUPT', async (t) => {
  const c = new ActorCell(counter, {}, entity)
  c.applyReading(1, 1, { ts: 1, fields: { v: 1 }, rid: 'a' }, noop)
  const snap = JSON.parse(JSON.stringify(c.snapshot(1))) as SnapshotRecord
  t.same(snap.rids, { f: null, h: [ridHash('a')], ts: [1] })
  t.throws(() => new ActorCell(counter, {}, entity, { ...snap, rids: { f: null, h: [1, 2], ts: [1] } }), {
    code: 'PW_SNAPSHOT_CORRUPT',
  })
  t.throws(() => new ActorCell(counter, {}, entity, { ...snap, rids: { f: null, h: ['a'], ts: [1] } as never }), {
    code: 'PW_SNAPSHOT_CORRUPT',
  })
  t.throws(() => new ActorCell(counter, {}, entity, { ...snap, rids: 'x' as never }), { code: 'PW_SNAPSHOT_CORRUPT' })
  const none = new ActorCell(counter, {}, entity)
  none.applyReading(1, 1, { ts: 1, fields: { v: 1 } }, noop)
  t.notOk('rids' in none.snapshot(1), 'an actor that never saw a rid stores no id set')
})

/** One message of a generated trace: a fresh reading, or a re-send of an earlier one. */
type Step = { fresh: true; dt: number; withRid: boolean } | { fresh: false; pick: number }

t.test(
  'property: never a false duplicate, never a silent re-send, always recognised within the guarantee',
  async (t) => {
    const arb = fc.record({
      horizonMs: fc.integer({ min: 1_000, max: 60_000 }),
      maxIds: fc.integer({ min: 4, max: 40 }),
      steps: fc.array(
        fc.oneof(
          {
            weight: 4,
            arbitrary: fc.record({
              fresh: fc.constant(true as const),
              dt: fc.integer({ min: -20_000, max: 5_000 }),
              withRid: fc.boolean(),
            }),
          },
          { weight: 1, arbitrary: fc.record({ fresh: fc.constant(false as const), pick: fc.nat() }) },
        ),
        { minLength: 1, maxLength: 300 },
      ),
      snapEvery: fc.integer({ min: 0, max: 50 }),
    })
    fc.assert(
      fc.property(arb, ({ horizonMs, maxIds, steps, snapEvery }) => {
        const limits: DedupeLimits = { horizonMs, maxIds }
        const keep = Math.floor((maxIds * 3) / 4)
        let cell = new ActorCell(counter, {}, entity, undefined, limits)
        // Reference state, from the documented rule only.
        const applied = new Map<string, number>() // rid -> event time of its applied copy
        const sent: Reading[] = []
        let newest = -Infinity
        let clock = 1_000_000
        let nextId = 0
        let expectN = 0
        for (let i = 0; i < steps.length; i++) {
          const s = steps[i] as Step
          if (snapEvery > 0 && i % snapEvery === 0) {
            cell = new ActorCell(
              counter,
              {},
              entity,
              JSON.parse(JSON.stringify(cell.snapshot(1))) as SnapshotRecord,
              limits,
            )
          }
          let r: Reading
          if (s.fresh || sent.length === 0) {
            const f = s.fresh ? s : { dt: 1000, withRid: true }
            clock += f.dt
            r = { ts: clock, fields: { v: 1 }, ...(f.withRid ? { rid: `r${nextId++}` } : {}) }
            sent.push(r)
          } else r = sent[s.pick % sent.length] as Reading
          const outcome = cell.applyReading(i + 1, i + 1, r, noop)
          if (r.rid === undefined) {
            if (outcome !== 'no-rid') return false
          } else if (applied.has(r.rid)) {
            if (outcome === 'applied') return false // a re-send applied silently
            const first = applied.get(r.rid) as number
            let later = 0
            for (const [rid, ts] of applied) if (rid !== r.rid && ts >= first) later++
            if (first > newest - horizonMs && later < keep && outcome !== 'duplicate') return false
          } else if (outcome === 'duplicate') return false // a false duplicate would drop a good reading
          if (outcome !== 'duplicate') {
            expectN++
            if (r.rid !== undefined && !applied.has(r.rid)) applied.set(r.rid, r.ts)
          }
          if (outcome !== 'duplicate' && r.ts > newest) newest = r.ts
        }
        return (cell.state as S).n === expectN
      }),
      { numRuns: 300 },
    )
    t.pass('300 random traces')
  },
)

t.test('environment profile: a trace with re-sent readings gives the windows of the trace without them', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (seed) => {
      let x = seed
      const rnd = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const base: HarnessMessage[] = []
      const T0 = 1_700_000_000_000
      for (let i = 0; i < 400; i++) {
        // Out of order by up to 20 s; one reading every ~2 s.
        const ts = T0 + i * 2_000 - Math.floor(rnd() * 20_000)
        base.push({
          reading: { ts, fields: { temperature: 20 + rnd() * 5, humidity: 40 + rnd() * 10 }, rid: `e:${i}` },
          procTime: T0 + i * 2_000,
        })
      }
      // Re-sends of ~5 % of readings, at random later positions (up to 3 minutes later), with their own processing time.
      const withResends = [...base]
      for (let i = 0; i < base.length; i++) {
        if (rnd() >= 0.05) continue
        const orig = base[i] as { reading: Reading }
        // Always after the first copy (earlier insertions moved it).
        const at = Math.min(withResends.length, withResends.indexOf(orig) + 1 + Math.floor(rnd() * 90))
        withResends.splice(at, 0, { reading: orig.reading })
      }
      // Processing time never goes backwards in a stream: re-sends take the processing time of their neighbour.
      let p = 0
      const msgs = withResends.map((m) => {
        p = Math.max(p, m.procTime ?? p)
        return { ...m, procTime: p }
      })
      const ref = runActor(environment, entity, base, {})
      const got = runActor(environment, entity, msgs, { snapshotBefore: [50, 200, 333] })
      const key = (o: { id: string; body: unknown }): string => `${o.id} ${JSON.stringify(o.body)}`
      const a = new Set(ref.outputs.map(key))
      const b = new Set(got.outputs.map(key))
      return a.size === b.size && [...a].every((k) => b.has(k))
    }),
    { numRuns: 20 },
  )
  t.pass('20 random traces')
})

t.test('ridHash: 52-bit integers, no collision among 1,000,000 sequential and random ids', async (t) => {
  const seen = new Set<number>()
  let bad = 0
  for (let i = 0; i < 500_000; i++) {
    for (const rid of [`r-${i}`, `${(i * 2654435761) >>> 0}-${i % 97}`]) {
      const h = ridHash(rid)
      if (!Number.isSafeInteger(h) || h < 0 || h >= 2 ** 52) bad++
      seen.add(h)
    }
  }
  t.equal(bad, 0, 'every hash is an integer in [0, 2^52)')
  t.equal(seen.size, 1_000_000, 'no two ids share a hash')
})
