import t from 'tap'
import fc from 'fast-check'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { FencedError } from '../../actors/errors.js'
import {
  assignment,
  isStaleWrite,
  ownerFor,
  placementTable,
  readRecord,
  tryAcquire,
  writeHeld,
} from '../../actors/placement.js'
import { provision } from '../../actors/provision.js'
import { connectTo, startNats } from '../helpers/nats.js'

t.test('placement: one owner per partition, balanced within one, a join moves few partitions', async (t) => {
  let moved = 0
  let ideal = 0
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 256 }),
      fc.stringMatching(/^[A-Z]{1,6}$/),
      (workers, P, joiner) => {
        const owners = placementTable(P, workers)
        const loads = workers.map((w) => assignment(P, workers, w).length)
        if (loads.reduce((a, b) => a + b, 0) !== P || owners.some((o) => !workers.includes(o))) return false
        if (Math.max(...loads) - Math.min(...loads) > 1 && P >= workers.length) return false
        const after = placementTable(P, [...workers, joiner])
        moved += after.filter((o, p) => o !== owners[p]).length
        ideal += P / (workers.length + 1)
        return after.every((o, p) => ownerFor(p, P, [...workers, joiner]) === o)
      },
    ),
  )
  t.comment(`a join moved ${moved} partitions where ${Math.round(ideal)} is the minimum`)
  t.ok(moved <= ideal * 2.5, 'joins move at most 2.5x the minimum')
  const spread = Array.from(
    { length: 3 },
    (_, i) => assignment(48, ['a', 'b', 'c'], ['a', 'b', 'c'][i] as string).length,
  )
  t.comment(`48 partitions over 3 workers: ${spread.join(' / ')}`)
  t.ok(Math.min(...spread) >= 8, 'no worker starves')
})

t.test('partition records: acquire bumps the token, a stale holder is fenced', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const { state: kv } = await provision(
    nc,
    await jetstreamManager(nc),
    compileConfig({ natsUrl: srv.url, partitions: 4 }),
  )
  const a = await tryAcquire(kv, 0, 'A', 1000, 1_000_000)
  t.equal(a?.record.token, 1)
  t.equal(await tryAcquire(kv, 0, 'B', 1000, 1_000_500), undefined, 'a live lease is not free')
  const b = await tryAcquire(kv, 0, 'B', 1000, 1_002_000)
  t.equal(b?.record.token, 2, 'an expired lease is taken with a new token')
  await t.rejects(
    writeHeld(kv, 0, a as NonNullable<typeof a>, { ...(a as NonNullable<typeof a>).record, cursor: 99 }),
    FencedError,
    'the stale owner cannot checkpoint',
  )
  t.equal((await readRecord(kv, 0))?.record.cursor, 0, 'cursor unchanged')
  const [x, y] = await Promise.all([tryAcquire(kv, 1, 'X', 1000), tryAcquire(kv, 1, 'Y', 1000)])
  t.equal([x, y].filter(Boolean).length, 1, 'of two racing acquirers exactly one wins')
})

t.test('stale snapshot writes are recognised through any number of later owners', async (t) => {
  // A (token 1) claimed at rev 10, B (token 2) at rev 50, C (token 3) at rev 90.
  const claims: Array<[number, number]> = [
    [1, 10],
    [2, 50],
    [3, 90],
  ]
  t.equal(isStaleWrite(claims, 1, 40), false, "A's write while A owned it")
  t.equal(isStaleWrite(claims, 1, 60), true, "A's write after B claimed (seen by C, which never met A)")
  t.equal(isStaleWrite(claims, 2, 70), false, "B's write while B owned it")
  t.equal(isStaleWrite(claims, 2, 95), true, "B's write after C claimed")
  t.equal(isStaleWrite(claims, 3, 200), false, "C's own writes")
})
