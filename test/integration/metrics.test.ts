import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import {
  LATENCY_BUCKETS,
  MAX_ALERT_LABEL_SETS,
  METRICS,
  projectorRegistry,
  serveMetrics,
  WorkerObserver,
  workerRegistry,
} from '../../actors/metrics.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import { newStats } from '../../actors/runtime.js'
import { Worker } from '../../actors/worker.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { sumProfile } from '../fixtures/sum-profile.js'

t.test('a worker serves /metrics with its counters, bounded labels', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 4,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'm1',
    metricsPort: 0,
  })
  const observer = new WorkerObserver()
  const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined, observe: observer })
  await w.start()
  t.teardown(() => w.stop())
  const { registry } = workerRegistry(w, { site: 'a', worker: 'm1' }, observer)
  const { server, port } = await serveMetrics(registry, 0)
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const js = jetstream(nc)
  for (let i = 0; i < 500; i++) {
    const id = `m${i % 50}`
    await js.publish(
      tlmSubject('a', partitionOf('sensor', id, 4), 'sensor', id),
      JSON.stringify({ ts: 1_700_000_000_000 + i * 1000, fields: { v: 1 }, profile: 'testsum' }),
    )
  }
  // One reading of m0 for a window its watermark has long passed: a late output.
  await js.publish(
    tlmSubject('a', partitionOf('sensor', 'm0', 4), 'sensor', 'm0'),
    JSON.stringify({ ts: 1_699_999_000_000, fields: { v: 1 }, profile: 'testsum' }),
  )
  for (let i = 0; i < 600 && w.stats.processed < 501; i++) await new Promise((r) => setTimeout(r, 50))
  // Wait for several checkpoints per partition after the last reading: nothing dirty is left in flight.
  const c0 = w.stats.checkpoints
  for (let i = 0; i < 600 && w.stats.checkpoints < c0 + 16; i++) await new Promise((r) => setTimeout(r, 50))
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const sample = (re: string): number => Number(new RegExp(`^${re} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN)
  const labels = 'profile="testsum",site="a",worker="m1"'
  t.equal(sample(`${METRICS.profileProcessed}\\{${labels}\\}`), 501, 'readings processed by profile')
  t.equal(sample(`${METRICS.lateReadings}\\{${labels}\\}`), 1, 'one late reading counted for its profile')
  const outputs = w.stats.outputs
  t.ok(outputs > 1, `windows closed and the late reading emitted outputs (${outputs})`)
  t.equal(
    sample(`${METRICS.ingestToOutputSeconds}_count\\{${labels}\\}`),
    outputs,
    'every output observed ingest -> output',
  )
  t.equal(
    sample(`${METRICS.eventToOutputSeconds}_count\\{${labels}\\}`),
    outputs,
    'every output of a reading observed event time -> output',
  )
  // Event times are from 2023: years old, beyond the last finite bucket; ingest happened seconds ago.
  t.equal(
    sample(`${METRICS.eventToOutputSeconds}_bucket\\{profile="testsum",le="600",site="a",worker="m1"\\}`),
    0,
    'years-old event times fall past the 600 s bucket',
  )
  t.equal(
    sample(`${METRICS.eventToOutputSeconds}_bucket\\{profile="testsum",le="\\+Inf",site="a",worker="m1"\\}`),
    outputs,
    '... into +Inf',
  )
  t.equal(
    sample(`${METRICS.ingestToOutputSeconds}_bucket\\{profile="testsum",le="600",site="a",worker="m1"\\}`),
    outputs,
    'ingest -> output within 600 s',
  )
  t.equal(
    body.split('\n').filter((l) => l.startsWith(`${METRICS.ingestToOutputSeconds}_bucket{`)).length,
    LATENCY_BUCKETS.length + 1,
    'one line per latency bucket and +Inf',
  )
  t.ok(sample(`${METRICS.checkpointBytes}_count\\{site="a",worker="m1"\\}`) >= 1, 'checkpoint size observed')
  t.ok(sample(`${METRICS.checkpointBytes}_sum\\{site="a",worker="m1"\\}`) > 0, 'checkpoints wrote snapshot bytes')
  t.equal(
    sample(`${METRICS.checkpointBytes}_sum\\{site="a",worker="m1"\\}`),
    w.stats.snapshotBytes,
    'checkpoint bytes sum equals the snapshot bytes counter',
  )
  t.equal(sample(`${METRICS.alertsUntracked}\\{site="a",worker="m1"\\}`), 0, 'no alert dropped')
  t.match(body, new RegExp(`${METRICS.processed}\\{site="a",worker="m1"\\} 501`), 'processed counter')
  t.match(body, new RegExp(`${METRICS.partitionsOwned}\\{site="a",worker="m1"\\} 4`), 'partitions owned')
  t.match(body, new RegExp(`${METRICS.activeActors}\\{site="a",worker="m1"\\} 50`), 'active actors')
  t.match(
    body,
    new RegExp(`${METRICS.leaseChanges}\\{change="acquired",site="a",worker="m1"\\} 4`),
    'lease changes by kind',
  )
  t.match(
    body,
    new RegExp(`${METRICS.checkpointSeconds}_count\\{site="a",worker="m1"\\} [1-9]`),
    'checkpoint histogram observed',
  )
  t.match(body, /process_cpu_user_seconds_total/, 'default process metrics')
  t.notMatch(body, /entity=|id="m\d/, 'no per-entity labels')
  const again = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.match(
    again,
    new RegExp(`${METRICS.processed}\\{site="a",worker="m1"\\} 501\\n`),
    'a second scrape does not double-count',
  )
  t.match(again, new RegExp(`${METRICS.profileProcessed}\\{${labels}\\} 501\\n`), 'nor the per-profile counter')
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
  // A long lease: on a loaded machine a 100,000-actor checkpoint must not lose its partitions (not under test here).
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 8,
    heartbeatMs: 200,
    leaseTtlMs: 10_000,
    checkpointIntervalMs: 500,
    workerId: 'card1',
  })
  const observer = new WorkerObserver()
  const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined, observe: observer })
  await w.start()
  t.teardown(() => w.stop())
  const { registry } = workerRegistry(w, { site: 'a', worker: 'card1' }, observer)
  const lines = async (): Promise<string[]> =>
    (await registry.metrics()).split('\n').filter((l) => l && !l.startsWith('#'))
  const ours = async (): Promise<number> => (await lines()).filter((l) => l.startsWith('pitwall_')).length
  const before = await ours()
  const js = jetstream(nc)
  const N = 100_000
  for (let i = 0; i < N; i += 1000) {
    await Promise.all(
      Array.from({ length: 1000 }, (_, k) => {
        const id = `c${i + k}`
        return js.publish(
          tlmSubject('a', partitionOf('sensor', id, 8), 'sensor', id),
          JSON.stringify({ ts: 1_700_000_000_000, fields: { v: 1 }, profile: 'testsum' }),
        )
      }),
    )
  }
  // The last 1,000 entities get a reading a minute later (closes their window: an output) and one for the
  // closed window (a late output): outputs and late readings from many entities add no series either.
  const M = 1_000
  for (const ts of [1_700_000_060_000, 1_700_000_000_000]) {
    await Promise.all(
      Array.from({ length: M }, (_, k) => {
        const id = `c${N - M + k}`
        return js.publish(
          tlmSubject('a', partitionOf('sensor', id, 8), 'sensor', id),
          JSON.stringify({ ts, fields: { v: 1 }, profile: 'testsum' }),
        )
      }),
    )
  }
  for (let i = 0; i < 1800 && w.stats.processed < N + 2 * M; i++) await new Promise((r) => setTimeout(r, 100))
  // Exactly once each, unless a partition restarted on the loaded machine (a checkpoint that failed, a lease lost):
  // its new runner re-applies what no snapshot held yet, and counts it again. That is recovery, not this test's
  // subject; the count must then still cover everything, and the restart must show in the stats.
  const st = w.stats
  const restarts = st.checkpointFailures + st.leaseLost + Math.max(0, st.leaseAcquired - cfg.partitions)
  if (restarts === 0) t.equal(st.processed, N + 2 * M, '100,000 distinct entities processed')
  else
    t.ok(st.processed >= N + 2 * M, `100,000 distinct entities processed (and replays after ${restarts} restarts)`, {
      stats: st,
    })
  t.comment(
    `processed ${st.processed}, checkpoint failures ${st.checkpointFailures}, leases acquired ${st.leaseAcquired}, lost ${st.leaseLost}`,
  )
  t.equal(w.activeActors(), N, 'all active')
  t.equal(observer.profiles.get('testsum')?.late, M, 'late readings of 1,000 entities counted')
  t.equal(
    observer.profiles.get('testsum')?.ingestToOutput.count,
    2 * M,
    'a window and a late output per entity observed',
  )
  const after = await ours()
  const total = (await lines()).length
  t.comment(
    `pitwall series: ${before} before, ${after} after 100,000 entities; ${total} series in all with the default process metrics`,
  )
  // Bound (docs/metrics.md): 45 fixed lines (one per counter and gauge, three lease-change labels, 13 lines of
  // the checkpoint duration histogram, 12 of the checkpoint size histogram), one consumer-lag series per owned
  // partition (P = 8 here), 44 lines per profile Q (two counters, two 21-line latency histograms; Q = 1 here),
  // and at most 64 open-alert label sets (none here: the test profile raises no alerts).
  const bound = 45 + 8 + 44 * 1
  t.ok(after <= bound, `pitwall series bounded by 45 + P + 44 Q + A, independent of entities (${after} <= ${bound})`)
  t.ok(
    after - before <= 3 + 8 + 44,
    "only the lease-change labels, the per-partition lag and the profile's series appear after start",
  )
  t.ok(total < 200, `under 200 series per worker process in all (${total})`)
})

t.test(
  'open alerts by profile, type and severity: opens, updates, replays, closes, partition moves, caps',
  async (t) => {
    const o = new WorkerObserver({ now: () => 10_000 })
    const alert = (id: string, state: 'open' | 'update' | 'close', type = 'overheat', severity = 'critical') => ({
      type: 'alert',
      profile: 'race',
      body: { alertId: id, type, severity, state, start: 0, value: 1, threshold: 0, explanation: '' },
    })
    const open = (type = 'overheat', severity = 'critical'): number | undefined =>
      o.alertSets.get(`race\n${type}\n${severity}`)?.open
    o.output(1, alert('a1', 'open'), 9_000, 9_990)
    o.output(1, alert('a1', 'open'), 9_000, 9_990)
    t.equal(open(), 1, 'an open replayed with the same alert id counts once')
    o.output(1, alert('a1', 'update'), 9_000, 9_990)
    t.equal(open(), 1, 'an update of a known alert changes nothing')
    o.output(2, alert('b1', 'update'), 9_000, 9_990)
    t.equal(open(), 2, 'an update of an alert opened before this worker owned the partition counts it as open')
    o.output(1, alert('zz', 'close'), 9_000, 9_990)
    t.equal(open(), 2, 'a close of an alert this worker never saw open is ignored (never negative)')
    o.output(1, alert('a1', 'close'), 9_000, 9_990)
    o.output(1, alert('a1', 'close'), 9_000, 9_990)
    t.equal(open(), 1, 'a close (and its replay) ends it once')
    o.output(3, alert('c1', 'open', 'low_fuel', 'warning'), Number.NaN, 9_990)
    t.equal(open('low_fuel', 'warning'), 1, 'a separate label set per (profile, type, severity)')
    o.partitionClosed(2)
    t.equal(open(), 0, 'alerts of a partition this worker released are no longer counted')
    t.equal(o.alertSets.size, 2, 'label sets stay (at 0) once seen')
    const p = o.profiles.get('race')
    t.equal(p?.ingestToOutput.count, 8, 'every output observed ingest -> output')
    t.equal(p?.eventToOutput.count, 7, 'outputs of ticks (event time NaN) are not observed event time -> output')
    t.equal(p?.eventToOutput.sum, 7, 'event time 9,000 ms, emitted at 10,000 ms: 1 s each')
    t.equal(p?.ingestToOutput.counts[0], 0, '10 ms is above the 1 ms bucket')
    t.equal(p?.ingestToOutput.counts[3], 8, '... and in the 10 ms one (le is inclusive)')
    o.output(1, { type: 'window', profile: 'race', body: {} }, 20_000, 9_990)
    t.equal(p?.eventToOutput.counts[0], 1, 'an event time ahead of the clock counts as 0 s, not dropped')

    // 100,000 alerts with distinct types: the label sets stop at the cap and the rest are counted as untracked.
    for (let i = 0; i < 100_000; i++) o.output(i % 16, alert(`x${i}`, 'open', `t${i % 500}`), 9_000, 9_990)
    t.equal(o.alertSets.size, MAX_ALERT_LABEL_SETS, `at most ${MAX_ALERT_LABEL_SETS} label sets`)
    const counted = [...o.alertSets.values()].reduce((n, s) => n + s.open, 0)
    t.equal(
      counted + o.alertsUntracked,
      100_000 + 1,
      'every open alert is either counted or untracked (plus the one still open)',
    )
    t.ok(o.alertsUntracked > 0, `alerts past the cap counted (${o.alertsUntracked})`)
    const reg = workerRegistry(
      { stats: newStats(), owned: () => [], activeActors: () => 0 },
      { site: 'a', worker: 'u' },
      o,
    ).registry
    const body = await reg.metrics()
    t.equal(
      body.split('\n').filter((l) => l.startsWith(`${METRICS.alertsOpen}{`)).length,
      MAX_ALERT_LABEL_SETS,
      'one gauge series per label set',
    )
    t.match(
      body,
      new RegExp(`${METRICS.alertsOpen}\\{profile="race",type="low_fuel",severity="warning",site="a",worker="u"\\} 1`),
      'gauge rendered with its labels',
    )
    t.match(
      body,
      new RegExp(`${METRICS.alertsUntracked}\\{site="a",worker="u"\\} ${o.alertsUntracked}\\n`),
      'untracked counter rendered',
    )
    t.match(body, new RegExp(`# TYPE ${METRICS.eventToOutputSeconds} histogram`), 'latency exported as a histogram')
  },
)
