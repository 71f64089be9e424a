import t from 'tap'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../actors/config.js'
import { Worker } from '../actors/worker.js'
import { partitionOf, tlmSubject } from '../actors/subjects.js'
import { connectTo, startNats } from './helpers/nats.js'
import { makeTrace, readOutputs, readStream, referenceSum } from './helpers/trace.js'
import { sumProfile } from './fixtures/sum-profile.js'

const quiet = (): void => undefined

t.test('one worker processes a trace; outputs equal the reference', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 8, heartbeatMs: 100, leaseTtlMs: 1000, checkpointIntervalMs: 200, workerId: 'w1' })
  const w = new Worker({ cfg, profiles: [sumProfile], log: quiet })
  await w.start()
  t.teardown(() => w.stop())
  const js = jetstream(nc)
  const trace = makeTrace(7, 5000, 50)
  await Promise.all(trace.map((r) => js.publish(tlmSubject('a', partitionOf(r.kind, r.id, 8), r.kind, r.id),
    JSON.stringify({ ts: r.ts, fields: { v: r.v }, profile: 'testsum' }), { msgID: r.rid })))
  const unique = trace.filter((r) => !r.dup).length
  for (let i = 0; i < 200 && w.stats.processed < unique; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(w.stats.processed, unique, 'every unique reading processed once')
  t.same(w.owned(), [0, 1, 2, 3, 4, 5, 6, 7])
  await new Promise((r) => setTimeout(r, 400))
  const jsm = await jetstreamManager(nc)
  const ref = referenceSum(await readStream(jsm, 'TLM'), 10_000, 5_000)
  const { accepted, stale, conflicts } = await readOutputs(nc, 'OUT')
  t.equal(stale, 0)
  t.equal(conflicts, 0)
  const windows = [...accepted.values()].filter((o) => o.type === 'window')
  t.equal(windows.length, ref.windows.size, 'window count')
  let mismatch = 0
  for (const o of windows) {
    const r = ref.windows.get(o.id)
    const b = o.body as unknown as { fields: { v: { count: number; sum: number } } }
    if (!r || r.count !== b.fields.v.count || r.sum !== b.fields.v.sum) mismatch++
  }
  t.equal(mismatch, 0, 'every window equals the reference')
  t.equal([...accepted.values()].filter((o) => o.type === 'late').length, ref.late.size, 'late outputs')
  // live query answered by the owner
  const res = await nc.request(`pw.a.q.${partitionOf('sensor', 's3', 8)}`, JSON.stringify({ kind: 'sensor', id: 's3' }))
  const body = res.json<{ source: string; state: { total: number } }>()
  t.equal(body.source, 'live')
  t.ok(body.state.total > 0)
})
