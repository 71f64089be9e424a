// Checkpoint snapshots on their own connection (RuntimeConfig.snapshotConnection): with `own` (the default) a
// worker that opens its connection opens a second one, and every snapshot put travels on it, never on the one that
// carries readings and outputs; with `shared` there is one connection. Counted by the server (monitoring connz),
// and the snapshots written are read back from the state bucket either way.
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { compileConfig, optionsFromEnv, type RuntimeOptions } from '../../actors/config.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import { Worker } from '../../actors/worker.js'
import { connectTo, freePort, startNats } from '../helpers/nats.js'
import { sumProfile } from '../fixtures/sum-profile.js'

interface Conn {
  name?: string
  in_msgs: number
  in_bytes: number
}

async function connz(monUrl: string): Promise<Conn[]> {
  const res = await fetch(`${monUrl}/connz?limit=1024`)
  return ((await res.json()) as { connections?: Conn[] }).connections ?? []
}

for (const mode of ['own', 'shared'] as const) {
  t.test(`snapshotConnection ${mode}`, async (t) => {
    const monPort = await freePort()
    const srv = await startNats({ config: `http: "127.0.0.1:${monPort}"` })
    t.teardown(() => srv.stop())
    const monUrl = `http://127.0.0.1:${monPort}`
    const nc = await connectTo(srv.url)
    t.teardown(() => nc.close())
    const workerId = `snap-${mode}`
    const opts: RuntimeOptions = {
      natsUrl: srv.url,
      partitions: 2,
      heartbeatMs: 100,
      leaseTtlMs: 1000,
      checkpointIntervalMs: 200,
      workerId,
      snapshotConnection: mode,
    }
    const cfg = compileConfig(opts)
    const w = new Worker({ cfg, profiles: [sumProfile], log: () => undefined })
    await w.start()
    let stopped = false
    t.teardown(async () => {
      if (!stopped) await w.stop()
    })
    for (let i = 0; i < 50 && w.owned().length < 2; i++) await new Promise((r) => setTimeout(r, 100))
    t.equal(w.owned().length, 2, 'the worker owns both partitions')

    const js = jetstream(nc)
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`)
    const now = Date.now()
    for (const id of ids)
      await js.publish(
        tlmSubject('a', partitionOf('sensor', id, 2), 'sensor', id),
        JSON.stringify({ ts: now, profile: 'testsum', fields: { v: 1 } }),
      )
    const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
    const snapshotKeys = async (): Promise<string[]> => {
      const keys: string[] = []
      for await (const k of await kv.keys()) if (ids.some((id) => k.endsWith(`.${id}`))) keys.push(k)
      return keys
    }
    let keys = await snapshotKeys()
    for (let i = 0; i < 100 && keys.length < ids.length; i++) {
      await new Promise((r) => setTimeout(r, 100))
      keys = await snapshotKeys()
    }
    t.equal(keys.length, ids.length, 'every actor has a snapshot in the state bucket')

    const conns = (await connz(monUrl)).filter((c) => c.name?.startsWith(`pitwall-worker-${workerId}`))
    const names = conns.map((c) => c.name).sort()
    if (mode === 'own') {
      t.same(names, [`pitwall-worker-${workerId}`, `pitwall-worker-${workerId}-snapshots`], 'two connections')
      const snap = conns.find((c) => c.name?.endsWith('-snapshots'))
      const main = conns.find((c) => c.name === `pitwall-worker-${workerId}`)
      // One put per snapshot, ~100+ bytes each; the main connection sent only records, acks and consumer calls.
      t.ok(snap && snap.in_msgs >= ids.length, `the snapshot connection sent the puts (${snap?.in_msgs} messages)`)
      t.ok(main && snap && snap.in_bytes > 0, 'both connections are live')
    } else {
      t.same(names, [`pitwall-worker-${workerId}`], 'one connection')
    }
    await w.stop()
    stopped = true
    // The server notices a closed socket a moment after the client's drain resolves: poll briefly.
    const mine = async (): Promise<Conn[]> =>
      (await connz(monUrl)).filter((c) => c.name?.startsWith(`pitwall-worker-${workerId}`))
    let left = await mine()
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      left = await mine()
    }
    t.same(left, [], 'stop closes every connection the worker opened')
  })
}

t.test('snapshotConnection: from PITWALL_SNAPSHOT_CONNECTION, own by default, validated', async (t) => {
  t.equal(compileConfig({}).snapshotConnection, 'own')
  t.equal(compileConfig(optionsFromEnv({ PITWALL_SNAPSHOT_CONNECTION: 'shared' })).snapshotConnection, 'shared')
  t.throws(() => compileConfig(optionsFromEnv({ PITWALL_SNAPSHOT_CONNECTION: 'one' })), /snapshotConnection/)
  t.throws(() => compileConfig({ snapshotConnection: 'both' as unknown as 'own' }), /snapshotConnection.*own or shared/)
})
