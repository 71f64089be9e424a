/**
 * Readings that reach the "wrong" site (issue 13 part 3, actors/relay.ts, docs/sites.md "Readings that reach the
 * other site"). A device cannot know its home site: here every reading goes to a site picked at random, over NATS
 * (`tlm.<site>.<kind>.<id>`, the server's mapping adds the partition) or MQTT QoS 1 (`tlm/<site>/<kind>/<id>`),
 * for entities of every partition, WITHOUT a `rid` (so no actor dedupe can hide a reading read twice).
 *
 * Epochs: normal (both sites up); after failover (a killed with -9, b fails over; traffic to b only while a is
 * down, then a's servers come back and devices reach both again while b still owns everything); after failback
 * (`takeBack` at a; traffic to both). Site a's controller (with its relay) stops with a; a's readings not yet
 * forwarded or not yet mirrored at the kill are still in a's TLM when it comes back.
 *
 * Checked exactly, from the producer's own log of acknowledged readings: per entity the number of applied
 * readings (in windows or late, the owner's live state) and their sum equal what was acknowledged at either
 * site. Real nats-servers (rendered configs, MQTT listeners), real workers as processes, the real `mqtt` client.
 */
import { jetstream } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import mqtt, { type MqttClient } from 'mqtt'
import t from 'tap'
import { takeBack } from '../../actors/handover.js'
import { queryDeps, queryEntity } from '../../actors/query.js'
import { buildProfiles } from '../../actors/runtime.js'
import { deviceSubject, partitionOf } from '../../actors/subjects.js'
import { SiteController } from '../../sites/controller.js'
import { waitForLink } from '../../sites/servers.js'
import { validateTopology } from '../../sites/topology.js'
import { sumProfile } from '../fixtures/sum-profile.js'
import { distPath, kill, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { readAll, waitQuiet, waitRelays } from '../helpers/failover.js'
import { startTwoSites } from '../helpers/two-sites.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const P = 8
const E = 48
const RATE = 150

type Epoch = 'normal' | 'failover' | 'failover+a-back' | 'failback'
type Transport = 'nats' | 'mqtt'
interface Acked {
  id: string
  v: number
  site: string
  transport: Transport
  epoch: Epoch
  stray: boolean
}

t.test('a reading acknowledged at either site is applied once, whatever site the device reached', async (t) => {
  const {
    ports,
    sites,
    nc: first,
    cfg,
    conn,
    envOf,
    cleanups,
  } = await startTwoSites(t, {
    partitions: P,
    tmpPrefix: 'pw-strays-',
    tickIntervalMs: 1_000,
    extraPorts: ['mqtt'],
    shape: (base, ports) =>
      validateTopology({
        ...base,
        sites: base.sites.map((s) => ({
          ...s,
          members: s.members.map((m) => ({ ...m, mqttPort: ports.get(`${s.name}/mqtt`) as number })),
        })) as typeof base.sites,
      }),
  })
  let ncA = first.a
  const ncB = first.b
  const cfgA = cfg.a
  const cfgB = cfg.b
  const script = distPath('test/fixtures/worker-main.js')
  let workerA: WorkerProc = spawnWorker(script, 'a-1', envOf(cfgA))
  cleanups.push(() => kill(workerA, 'SIGKILL'))
  const workerB = spawnWorker(script, 'b-1', envOf(cfgB))
  cleanups.push(() => kill(workerB, 'SIGTERM'))
  const logs: string[] = []
  const log = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`)
  }
  let ctlA = new SiteController({ nc: ncA, cfg: cfgA, checkMs: 250, failoverAfterMs: 0, log })
  const ctlB = new SiteController({ nc: ncB, cfg: cfgB, checkMs: 250, failoverAfterMs: 0, log })
  await ctlA.start()
  await ctlB.start()
  cleanups.push(() => ctlB.stop())
  cleanups.push(() => ctlA.stop())

  const mqttOf = (site: string): Promise<MqttClient> =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${ports.get(`${site}/mqtt`)}`, {
      clientId: `dev-${site}-${Date.now()}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    })
  const mq: Record<string, MqttClient | undefined> = { a: await mqttOf('a'), b: await mqttOf('b') }
  cleanups.push(async () => {
    for (const c of Object.values(mq)) await c?.endAsync(true).catch(() => undefined)
  })
  const nc: Record<string, NatsConnection> = { a: ncA, b: ncB }
  const up: Record<string, boolean> = { a: true, b: true }

  // Ownership as the producer sees it (to label readings "stray"; devices do not use it).
  const ownerNow = (p: number): string => (ctlB.status().owned.includes(p) ? 'b' : 'a')
  const acked: Acked[] = []
  let failed = 0
  let epoch: Epoch = 'normal'
  const clock = new Array<number>(E).fill(1_700_000_000_000)
  let n = 0
  const send = async (): Promise<void> => {
    const e = n++ % E
    const id = `s${e}`
    clock[e] = (clock[e] as number) + 500
    const v = (n * 37) % 101
    const candidates = ['a', 'b'].filter((s) => up[s])
    const site = candidates[Math.floor(Math.random() * candidates.length)] as string
    const transport: Transport = Math.random() < 0.5 ? 'nats' : 'mqtt'
    const body = JSON.stringify({ ts: clock[e], fields: { v }, profile: 'testsum' })
    const stray = ownerNow(partitionOf('sensor', id, P)) !== site
    const ep = epoch
    try {
      if (transport === 'nats')
        await jetstream(nc[site] as NatsConnection).publish(deviceSubject(site, 'sensor', id), body, { timeout: 2_000 })
      else await (mq[site] as MqttClient).publishAsync(`tlm/${site}/sensor/${id}`, body, { qos: 1 })
      acked.push({ id, v, site, transport, epoch: ep, stray })
    } catch {
      failed++
    }
  }
  let producing = true
  const producer = (async () => {
    while (producing) {
      const batch: Array<Promise<void>> = []
      for (let i = 0; i < RATE / 20; i++) batch.push(send())
      await Promise.all(batch)
      await sleep(50)
    }
  })()
  cleanups.push(async () => {
    producing = false
    await producer
  })

  await sleep(5_000)
  // Site a lost: its controller (and relay) and worker with it; servers killed with -9.
  epoch = 'failover'
  up.a = false
  await ctlA.stop()
  await Promise.all([sites.kill('a'), kill(workerA, 'SIGKILL')])
  await mq.a?.endAsync(true).catch(() => undefined)
  mq.a = undefined
  const closing = Promise.race([ncA.close().catch(() => undefined), sleep(1_000)])
  const fo = await ctlB.failover()
  await closing
  t.same(fo.partitions, cfgA.homePartitions, "b took a's partitions")
  await sleep(4_000)

  // a's servers come back (its TLM still holds what was not mirrored or forwarded); devices reach both sites.
  await sites.start('a')
  ncA = await conn('a')
  nc.a = ncA
  await waitForLink(ncB, 'a')
  await waitForLink(ncA, 'b')
  ctlA = new SiteController({ nc: ncA, cfg: cfgA, checkMs: 250, failoverAfterMs: 0, log })
  await ctlA.start()
  mq.a = await mqttOf('a')
  epoch = 'failover+a-back'
  up.a = true
  await sleep(5_000)

  // Failback at a: its worker first (the peer-map gate opens on b's map), then the handover.
  workerA = spawnWorker(script, 'a-1', envOf(cfgA))
  await sleep(1_000)
  const fb = await takeBack(ncA, cfgA, { graceMs: 3_000, timeoutMs: 60_000 })
  t.same(fb.partitions, cfgA.homePartitions, 'a took its partitions back')
  epoch = 'failback'
  await sleep(5_000)
  producing = false
  await producer

  // Everything forwarded and applied: relays caught up, partition consumers idle.
  await waitRelays(
    [
      { nc: ncA, cfg: cfgA },
      { nc: ncB, cfg: cfgB },
    ],
    90_000,
  )
  await waitQuiet(
    [
      { nc: ncA, cfg: cfgA },
      { nc: ncB, cfg: cfgB },
    ],
    90_000,
  )
  await sleep(1_500)

  const want = new Map<string, { count: number; sum: number }>()
  for (const r of acked) {
    const w = want.get(r.id) ?? { count: 0, sum: 0 }
    w.count++
    w.sum += r.v
    want.set(r.id, w)
  }
  const qd = await queryDeps(ncA, cfgA, buildProfiles([sumProfile], cfgA))
  let missing = 0
  let extra = 0
  const wrong: string[] = []
  for (const [id, w] of want) {
    const s = (await queryEntity(qd, 'sensor', id, 5_000)).state as { total: number; late: number; vsum: number }
    const got = s.total + s.late
    if (got < w.count) missing += w.count - got
    if (got > w.count) extra += got - w.count
    if (got !== w.count || s.vsum !== w.sum)
      wrong.push(`${id}: applied ${got} (sum ${s.vsum}), acked ${w.count} (sum ${w.sum})`)
  }
  const cell = (ep: Epoch, tr: Transport): number =>
    acked.filter((r) => r.epoch === ep && r.transport === tr && r.stray).length
  const table = (['normal', 'failover', 'failover+a-back', 'failback'] as Epoch[]).map(
    (ep) => `${ep}: nats ${cell(ep, 'nats')}, mqtt ${cell(ep, 'mqtt')}`,
  )
  t.comment(
    `acked ${acked.length} readings (${failed} publishes failed and were not counted), strays (acked at the site not owning the partition) per epoch: ${table.join('; ')}`,
  )
  t.comment(
    `relay forwarded: a ${ctlA.status().relay?.forwarded ?? 0} (since its restart), b ${ctlB.status().relay?.forwarded ?? 0}; failover strays in a's new segments: ${JSON.stringify(fb.strays ?? {})}`,
  )
  for (const ep of ['normal', 'failover+a-back', 'failback'] as Epoch[]) {
    for (const tr of ['nats', 'mqtt'] as Transport[])
      t.ok(cell(ep, tr) > 0, `readings sent to the wrong site in epoch ${ep} over ${tr}`)
  }
  t.equal(missing, 0, 'no reading acknowledged at either site is missing')
  t.equal(extra, 0, 'no reading is applied twice')
  t.same(wrong.slice(0, 10), [], "count and sum per entity equal the producer's log")
  if (wrong.length > 0) {
    t.comment(wrong.slice(0, 5).join('\n'))
    // Where the extra copies are: every message of the first wrong entity in both sites' TLM (and mirrors).
    const id = (wrong[0] as string).split(':')[0] as string
    const p = partitionOf('sensor', id, P)
    for (const [label, ncx, stream, subj] of [
      ['a TLM', ncA, cfgA.streams.tlm, `tlm.a.${p}.sensor.${id}`],
      ['b TLM', ncB, cfgB.streams.tlm, `tlm.b.${p}.sensor.${id}`],
    ] as const) {
      const msgs = await readAll(ncx, stream, subj)
      t.comment(
        `${label} ${id}: ${msgs.map((m) => `${m.seq}${m.relayedFrom ? `<${m.relayedFrom}` : ''}[${new TextDecoder().decode(m.data).slice(6, 19)}]`).join(' ')}`,
      )
    }
    const { readRecord } = await import('../../actors/placement.js')
    const { Kvm } = await import('@nats-io/kv')
    for (const [site, ncx, cfg] of [
      ['a', ncA, cfgA],
      ['b', ncB, cfgB],
    ] as const) {
      const rec = (await readRecord(await new Kvm(ncx).open(cfg.streams.stateBucket), p))?.record
      t.comment(`${site} record p${p}: ${JSON.stringify(rec?.segments)} cursor ${rec?.cursor}`)
    }
    t.comment(logs.slice(-30).join('\n'))
  }
})
