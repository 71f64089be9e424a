// A worker's stats subject (pw.<site>.stats.<worker>): event-loop delay, GC pauses and the stored -> emitted time
// of alerts per interval, reset on request. Shape and reset semantics only; the figures depend on the machine.
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { environment } from '../../actors/kinds/sensor/environment.js'
import { partitionOf, statsSubject, tlmSubject } from '../../actors/subjects.js'
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
  const w = new Worker({ cfg, profiles: [sumProfile, environment], log: () => undefined })
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

t.test('alert_ms: the stored -> emitted time of the alerts this worker emitted in the interval', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 2, heartbeatMs: 100, leaseTtlMs: 1000, workerId: 'ws2' })
  const w = new Worker({ cfg, profiles: [environment], log: () => undefined })
  await w.start()
  t.teardown(() => w.stop())
  const ask = async (reset: boolean): Promise<WorkerStatsReply> =>
    (await nc.request(statsSubject('a', 'ws2'), JSON.stringify({ reset }), { timeout: 5_000 })).json<WorkerStatsReply>()
  for (let i = 0; i < 50 && w.owned().length < 2; i++) await new Promise((r) => setTimeout(r, 100))
  t.equal((await ask(true)).alert_ms, undefined, 'no alert yet: no figure')
  // Battery under 15 % opens `battery_low` at once; back above 17 % closes it: 3 sensors x open + close.
  const js = jetstream(nc)
  const now = Date.now()
  for (const id of ['s1', 's2', 's3'])
    for (const [k, battery] of [10, 80].entries())
      await js.publish(
        tlmSubject('a', partitionOf('sensor', id, 2), 'sensor', id),
        JSON.stringify({ ts: now + k * 1000, fields: { battery } }),
      )
  let r = await ask(false)
  for (let i = 0; i < 50 && (r.alert_ms?.count ?? 0) < 6; i++) {
    await new Promise((res) => setTimeout(res, 100))
    r = await ask(false)
  }
  const a = r.alert_ms
  t.equal(a?.count, 6, 'one sample per alert output (3 opens, 3 closes)')
  t.ok(a && a.p50 >= 0 && a.p50 <= a.p99 && a.p99 <= a.max, 'percentiles are ordered')
  t.ok(a && a.max < 5_000, `stored -> emitted within the test's wait (max ${a?.max} ms)`)
  const wait = r.alert_wait_ms
  t.equal(wait?.count, 6, 'stored -> taken by the runner: one sample per alert too')
  t.ok(
    wait && a && wait.p50 <= a.p99 + 1 && wait.max <= a.max + 1,
    `taken before emitted (max ${wait?.max} <= ${a?.max} ms)`,
  )
  const recv = r.alert_recv_ms
  t.equal(recv?.count, 6, 'stored -> read off the socket: one sample per alert too')
  t.ok(
    recv && wait && recv.p50 <= wait.p50 + 1 && recv.max <= wait.max + 1,
    `read before taken (max ${recv?.max} <= ${wait?.max} ms)`,
  )
  await ask(true)
  const cleared = await ask(false)
  t.same(
    [cleared.alert_ms, cleared.alert_wait_ms, cleared.alert_recv_ms],
    [undefined, undefined, undefined],
    'a reset clears all three',
  )
})
