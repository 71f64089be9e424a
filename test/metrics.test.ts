import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { compileConfig } from '../actors/config.js'
import { METRICS, projectorRegistry, serveMetrics, workerRegistry } from '../actors/metrics.js'
import { partitionOf, tlmSubject } from '../actors/subjects.js'
import { Worker } from '../actors/worker.js'
import { connectTo, startNats } from './helpers/nats.js'
import { sumProfile } from './fixtures/sum-profile.js'

t.test('a worker serves /metrics with its counters, bounded labels', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 4, heartbeatMs: 100, leaseTtlMs: 1000, checkpointIntervalMs: 200, workerId: 'm1', metricsPort: 0 })
  let observe = (_s: number): void => undefined
  const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined, observe: { checkpoint: (s) => observe(s) } })
  await w.start()
  t.teardown(() => w.stop())
  const { registry, checkpointSeconds } = workerRegistry(w, { site: 'a', worker: 'm1' })
  observe = (s) => checkpointSeconds.observe(s)
  const { server, port } = await serveMetrics(registry, 0)
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const js = jetstream(nc)
  for (let i = 0; i < 500; i++) {
    const id = `m${i % 50}`
    await js.publish(tlmSubject('a', partitionOf('sensor', id, 4), 'sensor', id), JSON.stringify({ ts: 1_700_000_000_000 + i * 1000, fields: { v: 1 }, profile: 'testsum' }))
  }
  for (let i = 0; i < 100 && w.stats.processed < 500; i++) await new Promise((r) => setTimeout(r, 50))
  await new Promise((r) => setTimeout(r, 500))
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.match(body, new RegExp(`${METRICS.processed}\\{site="a",worker="m1"\\} 500`), 'processed counter')
  t.match(body, new RegExp(`${METRICS.partitionsOwned}\\{site="a",worker="m1"\\} 4`), 'partitions owned')
  t.match(body, new RegExp(`${METRICS.activeActors}\\{site="a",worker="m1"\\} 50`), 'active actors')
  t.match(body, new RegExp(`${METRICS.leaseChanges}\\{change="acquired",site="a",worker="m1"\\} 4`), 'lease changes by kind')
  t.match(body, new RegExp(`${METRICS.checkpointSeconds}_count\\{site="a",worker="m1"\\} [1-9]`), 'checkpoint histogram observed')
  t.match(body, /process_cpu_user_seconds_total/, 'default process metrics')
  t.notMatch(body, /entity=|id="m\d/, 'no per-entity labels')
  const again = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.match(again, new RegExp(`${METRICS.processed}\\{site="a",worker="m1"\\} 500\\n`), 'a second scrape does not double-count')
})

t.test('projector registry mirrors its stats without double counting', async (t) => {
  const stats = { applied: 10, rejectedStale: 2, rejectedMalformed: 0, duplicates: 1, batches: 3, lastSeq: 42 }
  const reg = projectorRegistry({ stats: () => stats }, { site: 'a', service: 'projector' })
  let body = await reg.metrics()
  t.match(body, new RegExp(`${METRICS.projectorApplied}\\{site="a",service="projector"\\} 10`))
  t.match(body, new RegExp(`${METRICS.projectorRejectedStale}\\{site="a",service="projector"\\} 2`))
  stats.applied = 15
  body = await reg.metrics()
  t.match(body, new RegExp(`${METRICS.projectorApplied}\\{site="a",service="projector"\\} 15`))
  t.match(body, new RegExp(`${METRICS.projectorLastSeq}\\{site="a",service="projector"\\} 42`))
})

t.test('series per process stay bounded with 100,000 entities', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 8, heartbeatMs: 200, leaseTtlMs: 2000, checkpointIntervalMs: 500, workerId: 'card1' })
  const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined })
  await w.start()
  t.teardown(() => w.stop())
  const { registry } = workerRegistry(w, { site: 'a', worker: 'card1' })
  const lines = async (): Promise<string[]> => (await registry.metrics()).split('\n').filter((l) => l && !l.startsWith('#'))
  const ours = async (): Promise<number> => (await lines()).filter((l) => l.startsWith('pitwall_')).length
  const before = await ours()
  const js = jetstream(nc)
  const N = 100_000
  for (let i = 0; i < N; i += 1000) {
    await Promise.all(Array.from({ length: 1000 }, (_, k) => {
      const id = `c${i + k}`
      return js.publish(tlmSubject('a', partitionOf('sensor', id, 8), 'sensor', id), JSON.stringify({ ts: 1_700_000_000_000, fields: { v: 1 }, profile: 'testsum' }))
    }))
  }
  for (let i = 0; i < 600 && w.stats.processed < N; i++) await new Promise((r) => setTimeout(r, 100))
  t.equal(w.stats.processed, N, '100,000 distinct entities processed')
  t.equal(w.activeActors(), N, 'all active')
  const after = await ours()
  const total = (await lines()).length
  t.comment(`pitwall series: ${before} before, ${after} after 100,000 entities; ${total} series in all with the default process metrics`)
  // Bound: one series per counter and gauge, three lease-change labels, 13 lines of the checkpoint histogram,
  // one consumer-lag series per owned partition (P = 8 here).
  t.ok(after <= 32 + 8, `pitwall series bounded by 32 + P, independent of entities (${after})`)
  t.ok(after - before <= 3 + 8, 'only the lease-change labels and the per-partition lag appear after start')
  t.ok(total < 200, `under 200 series per worker process in all (${total})`)
})
