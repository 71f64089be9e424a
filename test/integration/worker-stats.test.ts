// A worker's stats subject (pw.<site>.stats.<worker>): event-loop delay and GC pauses per interval, reset on
// request. Shape and reset semantics only; the figures themselves depend on the machine.
import t from 'tap'
import { compileConfig } from '../../actors/config.js'
import { statsSubject } from '../../actors/subjects.js'
import { Worker, type WorkerStatsReply } from '../../actors/worker.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { sumProfile } from '../fixtures/sum-profile.js'

t.test('a worker answers its stats subject and resets the interval on request', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 2,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'ws1',
  })
  const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined })
  await w.start()
  t.teardown(() => w.stop())
  await new Promise((r) => setTimeout(r, 300))

  const ask = async (body: string): Promise<WorkerStatsReply> =>
    (await nc.request(statsSubject('a', 'ws1'), body, { timeout: 5_000 })).json<WorkerStatsReply>()
  const first = await ask('{"reset":true}')
  t.equal(first.worker, 'ws1')
  t.type(first.processed, 'number')
  t.ok(first.loop_ms.count > 0, 'the loop was sampled since start')
  for (const k of ['mean', 'p50', 'p90', 'p99', 'p999', 'max'] as const)
    t.ok(Number.isFinite(first.loop_ms[k]) && first.loop_ms[k] >= 0, `loop_ms.${k} is a delay in ms`)
  t.ok(first.loop_ms.p50 <= first.loop_ms.p99 && first.loop_ms.p99 <= first.loop_ms.max, 'percentiles are ordered')
  t.same(Object.keys(first.gc).sort(), ['by_kind', 'count', 'max_ms', 'total_ms'])

  const after = await ask('')
  t.ok(after.interval_ms < first.interval_ms, 'the reset started a new interval')
  const again = await ask('not json')
  t.ok(again.interval_ms >= after.interval_ms, 'a body that is not a reset request only reads')
})
