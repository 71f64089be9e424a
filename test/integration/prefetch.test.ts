import t from 'tap'
import fc from 'fast-check'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { prefetchLastPerSubject } from '../../actors/prefetch.js'
import { snapshotFilter, snapshotKey } from '../../actors/subjects.js'
import { connectTo, startNats } from '../helpers/nats.js'

const td = new TextDecoder()

t.test('snapshot prefetch: one pass equals a get per key, for random histories of puts and deletes', async (t) => {
  const srv = await startNats()
  const nc = await connectTo(srv.url)
  t.teardown(async () => {
    await nc.close()
    await srv.stop()
  })
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  let run = 0
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          p: fc.integer({ min: 0, max: 3 }),
          id: fc.integer({ min: 0, max: 40 }),
          del: fc.boolean(),
          v: fc.integer(),
        }),
        { maxLength: 300 },
      ),
      fc.integer({ min: 0, max: 3 }),
      async (ops, p) => {
        const bucket = `pf${run++}`
        const kv = await new Kvm(js).create(bucket, { history: 5 })
        for (const o of ops) {
          const k = snapshotKey(o.p, 'sensor', `s${o.id}`)
          if (o.del) await kv.delete(k)
          else await kv.put(k, JSON.stringify({ v: o.v }))
        }
        const pre = await prefetchLastPerSubject(js, jsm, `KV_${bucket}`, `$KV.${bucket}.${snapshotFilter(p)}`)
        if (!pre.complete) return false
        for (let id = 0; id <= 40; id++) {
          const k = snapshotKey(p, 'sensor', `s${id}`)
          const e = await kv.get(k)
          const got = pre.take(`$KV.${bucket}.${k}`)
          if (!e) {
            if (got !== 'absent') return false
          } else {
            if (got === 'absent' || got === 'unknown') return false
            if (got.found.seq !== e.revision) return false
            if ((got.found.op === undefined) !== (e.operation === 'PUT')) return false
            if (e.operation === 'PUT' && td.decode(got.found.data) !== td.decode(e.value)) return false
          }
          // Answered once: the actor's own writes are the truth after its first activation.
          if (pre.take(`$KV.${bucket}.${k}`) !== 'unknown') return false
        }
        await kv.destroy()
        return true
      },
    ),
    { numRuns: 25 },
  )
  t.pass(`25 random histories of up to 300 puts/deletes over 4 partitions: prefetch equals kv.get for every key`)
})

t.test(
  'snapshot prefetch: limits make it incomplete (misses are unknown), a missing stream gives an empty one',
  async (t) => {
    const srv = await startNats()
    const nc = await connectTo(srv.url)
    t.teardown(async () => {
      await nc.close()
      await srv.stop()
    })
    const js = jetstream(nc)
    const jsm = await jetstreamManager(nc)
    const kv = await new Kvm(js).create('pflim')
    for (let i = 0; i < 2_500; i++) await kv.put(snapshotKey(1, 'vehicle', `v${i}`), JSON.stringify({ i }))
    const all = await prefetchLastPerSubject(js, jsm, 'KV_pflim', `$KV.pflim.${snapshotFilter(1)}`)
    t.ok(all.complete, 'complete over 2,500 keys (three fetches)')
    t.equal(all.size, 2_500)
    const capped = await prefetchLastPerSubject(js, jsm, 'KV_pflim', `$KV.pflim.${snapshotFilter(1)}`, {
      maxEntries: 1_000,
      maxBytes: 1e9,
    })
    t.notOk(capped.complete, 'capped at 1,000 entries: incomplete')
    t.equal(capped.size, 1_000)
    t.equal(
      capped.take(`$KV.pflim.${snapshotKey(1, 'vehicle', 'nope')}`),
      'unknown',
      'a miss of an incomplete prefetch is unknown',
    )
    const none = await prefetchLastPerSubject(js, jsm, 'KV_pflim', `$KV.pflim.${snapshotFilter(2)}`)
    t.ok(none.complete, 'no keys: complete')
    t.equal(none.take(`$KV.pflim.${snapshotKey(2, 'vehicle', 'v1')}`), 'absent')
    const missing = await prefetchLastPerSubject(js, jsm, 'NO_SUCH_STREAM', '$KV.x.>')
    t.notOk(missing.complete, 'a missing stream: incomplete, so every read goes to the bucket')
    const consumers = await jsm.consumers.list('KV_pflim').next()
    let left = consumers.length
    for (let i = 0; i < 20 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      left = (await jsm.consumers.list('KV_pflim').next()).length
    }
    t.equal(left, 0, 'its consumers are deleted')
  },
)
