/**
 * Exactly once at the device edge (issue 13, part 1), against a real nats-server with its MQTT listener, real
 * worker processes killed with -9, and the real `mqtt` client. Readings carry a `rid`; ~4 % of them are re-sent
 * at random later positions in ways JetStream's duplicate window does not catch: over NATS without a message id
 * (what a retry after the two-minute window amounts to: JetStream stores it again) and over MQTT QoS 1 (no
 * message id at all). Both copies are in TLM. The windows and late records in OUT must equal the independent
 * reference (test/helpers/trace.ts, written from the test profile's rule) over the stream with every
 * (entity, rid) after its first copy removed: docs/runtime.md, "Reading ids".
 */
import t from 'tap'
import mqtt from 'mqtt'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { compileConfig, mappingFor, partitionOf, provision, tlmSubject } from '../actors/mod.js'
import { parsePartitioned } from '../actors/subjects.js'
import { distPath, kill, sleep, spawnWorker, type WorkerProc } from './helpers/cluster.js'
import { connectTo, freePort, startNats } from './helpers/nats.js'
import { makeTrace, readOutputs, referenceSum, rng, type StreamMsg } from './helpers/trace.js'

const SITE = 'a'
const P = 8
const N = Number(process.env.PITWALL_EDGE_READINGS ?? 12_000)
const ENTITIES = 150

t.test('re-sent readings (no message id, MQTT QoS 1) are applied once through kill -9: results equal the reference', async (t) => {
  const mqttPort = await freePort()
  const map = mappingFor(SITE, P)
  const srv = await startNats({
    config: ['server_name: "pw-edge-test"', `mqtt { listen: "127.0.0.1:${mqttPort}" }`, `mappings { "${map.from}": "${map.to}" }`].join('\n'),
  })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  await provision(nc, jsm, compileConfig({ natsUrl: srv.url, site: SITE, partitions: P }))
  const env = {
    PITWALL_NATS_URL: srv.url, PITWALL_SITE: SITE, PITWALL_PARTITIONS: String(P), PITWALL_HEARTBEAT_MS: '200',
    PITWALL_LEASE_TTL_MS: '1500', PITWALL_CHECKPOINT_INTERVAL_MS: '300', PITWALL_MAX_IN_FLIGHT: '4000',
  }
  const script = distPath('test/fixtures/worker-main.js')
  let gen = 0
  const workers: WorkerProc[] = [0, 1].map((i) => spawnWorker(script, `w${i}-g${gen++}`, env))
  t.teardown(async () => {
    for (const w of workers) await kill(w, 'SIGKILL')
  })
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'edge-dev', clean: true, reconnectPeriod: 0, connectTimeout: 5_000 })
  t.teardown(() => client.endAsync())

  // The send plan: every reading once (over NATS with its rid as message id, or over MQTT), and re-sends of
  // ~4 % of them at a random later position, half over NATS without a message id, half over MQTT QoS 1.
  const seed = Number(process.env.PITWALL_EDGE_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const trace = makeTrace(seed, N, ENTITIES, { dupFrac: 0 })
  type Send = { i: number; via: 'nats-id' | 'nats' | 'mqtt' }
  const plan: Send[] = trace.map((_, i) => ({ i, via: r() < 0.3 ? 'mqtt' : 'nats-id' }))
  let resends = 0
  for (let i = 0; i < trace.length; i++) {
    if (r() >= 0.04) continue
    const at = plan.findIndex((s) => s.i === i) + 1 + Math.floor(r() * 3_000)
    plan.splice(Math.min(plan.length, at), 0, { i, via: r() < 0.5 ? 'nats' : 'mqtt' })
    resends++
  }

  let done = false
  const feeding = (async () => {
    for (let k = 0; k < plan.length; k += 200) {
      await Promise.all(plan.slice(k, k + 200).map(async (s) => {
        const it = trace[s.i] as (typeof trace)[number]
        const body = JSON.stringify({ ts: it.ts, fields: { v: it.v }, profile: 'testsum', rid: it.rid })
        if (s.via === 'mqtt') await client.publishAsync(`tlm/${SITE}/${it.kind}/${it.id}`, body, { qos: 1 })
        else {
          const subject = tlmSubject(SITE, partitionOf(it.kind, it.id, P), it.kind, it.id)
          await js.publish(subject, body, s.via === 'nats-id' ? { msgID: it.rid, timeout: 30_000 } : { timeout: 30_000 })
        }
      }))
      await sleep(40)
    }
    done = true
  })()
  let kills = 0
  while (!done || kills < 4) {
    await sleep(1200 + r() * 2000)
    const i = Math.floor(r() * workers.length)
    await kill(workers[i] as WorkerProc, 'SIGKILL')
    kills++
    await sleep(r() * 500)
    workers[i] = spawnWorker(script, `w${i}-g${gen++}`, env)
  }
  await feeding

  // The stream as stored: re-sends are in it twice. The reference keeps each (entity, rid)'s first copy.
  const stored: Array<StreamMsg & { rid: string }> = []
  const info = await jsm.streams.info('TLM')
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage('TLM', { seq }).catch(() => null)
    if (!m) continue
    const p = parsePartitioned(m.subject)
    if (!p || p.kind === '_sys') continue
    const b = m.json<{ ts: number; fields: { v: number }; rid: string }>()
    stored.push({ seq, kind: p.kind, id: p.id, ts: b.ts, v: b.fields.v, rid: b.rid })
  }
  const first = new Set<string>()
  const unique = stored.filter((m) => {
    const k = `${m.kind}.${m.id}:${m.rid}`
    if (first.has(k)) return false
    first.add(k)
    return true
  })
  t.equal(unique.length, trace.length, 'every reading stored at least once')
  t.equal(stored.length - unique.length, resends, `all ${resends} re-sends were stored by JetStream (its window did not catch them)`)
  const ref = referenceSum(unique, 10_000, 5_000)

  let res = await readOutputs(nc, 'OUT')
  for (let i = 0; i < 90; i++) {
    const have = [...ref.windows.keys()].filter((k) => res.accepted.has(k)).length
    if (have === ref.windows.size && [...ref.late].every((k) => res.accepted.has(k))) break
    await sleep(1000)
    res = await readOutputs(nc, 'OUT')
  }
  let wrong = 0
  let missing = 0
  for (const [id, w] of ref.windows) {
    const o = res.accepted.get(id)
    if (!o) { missing++; continue }
    const b = o.body as unknown as { fields: { v: { count: number; sum: number } } }
    if (b.fields.v.count !== w.count || b.fields.v.sum !== w.sum) wrong++
  }
  const windows = [...res.accepted.values()].filter((o) => o.type === 'window')
  const late = [...res.accepted.values()].filter((o) => o.type === 'late').map((o) => o.id).sort()
  t.equal(missing, 0, 'no window lost')
  t.equal(wrong, 0, 'no window counts a re-send twice (count and sum equal the reference)')
  t.equal(windows.length, ref.windows.size, 'no extra window')
  t.same(late, [...ref.late].sort(), 'late records equal the reference (a re-sent late reading is not recorded twice)')
  t.equal(res.conflicts, 0, 'no output id with two different bodies')
  t.comment(`readings=${trace.length} resends=${resends} windows=${ref.windows.size} late=${ref.late.size} kills=${kills} wrong=${wrong} missing=${missing}`)
})
