/**
 * The peer-map gate (docs/sites.md, "Restarting a site"; issue 21 part 1): a restarted site must not act on its
 * old map. Two local sites from the rendered configs (b dials a through a proxy the test cuts), the production
 * worker (`dist/cmd/worker.js`, every production profile) as a process per site.
 * 1. Site a is killed with -9 (servers and worker); b fails over (as `pitwall site failover` does).
 * 2. The link is cut; a's servers and worker restart. Readings are published to a's TLM for a's partitions (a's
 *    own gateway routes by a's stale map). a takes no partition: its partition records and its OUT stay as
 *    they were, the gauge pitwall_site_awaiting_peer_map is 1, b still holds a's partitions.
 * 3. The link heals: the gate opens (synced), a follows b's map (same epoch) and still takes nothing b owns.
 * 4. b is gone for good (its servers killed) and a restarts once more: it waits again; `pitwall site
 *    assume-peer-lost` (bad flags refused with a coded error first) opens the gate with an audited record, and
 *    `pitwall site failover` at a then lets a's worker take every partition: a acts with the link down.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { RuntimeConfig } from '../../actors/config.js'
import { takeOver } from '../../actors/handover.js'
import { readRecord } from '../../actors/placement.js'
import { SITE_OVERRIDE_KEY, SiteMapView } from '../../actors/sitemap.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import { waitForLink } from '../../sites/servers.js'
import { distPath, kill, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { freePort } from '../helpers/nats.js'
import type { CuttableProxy } from '../helpers/proxy.js'
import { awaitingPeerMap, startTwoSites } from '../helpers/two-sites.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const run = promisify(execFile)
const P = 8

t.test("a restarted site takes no partition before it has the peer's map, unless the operator overrides", async (t) => {
  const {
    proxy: px,
    sites,
    nc,
    cfg,
    conn,
    envOf,
    cleanups,
  } = await startTwoSites(t, { partitions: P, tmpPrefix: 'pw-restart-gate-', proxy: true })
  const proxy = px as CuttableProxy
  let ncA = nc.a
  const ncB = nc.b
  // The production worker with every production profile; a's serves metrics for the gauge.
  const script = distPath('cmd/worker.js')
  const metricsPort = await freePort()
  const startA = (): WorkerProc => {
    const w = spawnWorker(script, 'a-1', { ...envOf(cfg.a), PITWALL_METRICS_PORT: String(metricsPort) })
    cleanups.push(() => kill(w, 'SIGKILL'))
    return w
  }
  let workerA = startA()
  const workerB = spawnWorker(script, 'b-1', envOf(cfg.b))
  cleanups.push(() => kill(workerB, 'SIGKILL'))
  const gauge = (): Promise<number | undefined> => awaitingPeerMap(metricsPort)
  const kvOf = async (nc: NatsConnection, c: RuntimeConfig): Promise<KV> =>
    await new Kvm(nc).open(c.streams.stateBucket)
  const recordsOf = async (
    kv: KV,
    ps: readonly number[],
  ): Promise<Map<number, { owner: string | null; revision: number; epoch: number }>> =>
    new Map(
      await Promise.all(
        ps.map(async (p) => {
          const h = await readRecord(kv, p)
          return [
            p,
            { owner: h?.record.owner ?? null, revision: h?.revision ?? 0, epoch: h?.record.epoch ?? 0 },
          ] as const
        }),
      ),
    )
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 30_000): Promise<void> => {
    const deadline = Date.now() + ms
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(200)
    }
  }
  // Environment readings (a production profile) for one sensor per partition, published to `site`'s TLM.
  const sensorOf = new Map<number, string>()
  for (let i = 0; sensorOf.size < P; i++) {
    const p = partitionOf('sensor', `env-${i}`, P)
    if (!sensorOf.has(p)) sensorOf.set(p, `env-${i}`)
  }
  let n = 0
  const publish = async (nc: NatsConnection, site: string, ps: readonly number[], count: number): Promise<void> => {
    const js = jetstream(nc)
    for (let k = 0; k < count; k++) {
      for (const p of ps) {
        n++
        await js.publish(
          tlmSubject(site, p, 'sensor', sensorOf.get(p) as string),
          JSON.stringify({
            ts: 1_700_000_000_000 + n * 1_000,
            fields: { temperature: 20 + (n % 7) },
            profile: 'environment',
          }),
          { msgID: `g${n}` },
        )
      }
    }
  }
  const homeA = cfg.a.homePartitions
  const homeB = cfg.b.homePartitions
  let kvA = await kvOf(ncA, cfg.a)
  const kvB = await kvOf(ncB, cfg.b)

  // Both sites at work: a owns its home partitions and processes readings.
  await waitFor("a's worker to own its home partitions", async () =>
    [...(await recordsOf(kvA, homeA)).values()].every((r) => r.owner === 'a-1'),
  )
  await publish(ncA, 'a', homeA, 20)
  await publish(ncB, 'b', homeB, 20)
  await sleep(2_000)
  t.equal(await gauge(), 0, "a's worker started with the link up: the gate is open (gauge 0)")

  // 1. Site a lost (kill -9 of its servers and worker); b fails over.
  await Promise.all([sites.kill('a'), kill(workerA, 'SIGKILL')])
  await ncA.close().catch(() => undefined)
  const move = await takeOver(ncB, cfg.b, 'test: site a lost')
  t.same(move.partitions, [...homeA], "b took a's partitions")
  await waitFor("b's worker to own a's partitions", async () =>
    [...(await recordsOf(kvB, homeA)).values()].every((r) => r.owner === 'b-1' && r.epoch >= move.epoch),
  )

  // 2. a comes back while the link is still down.
  proxy.split()
  await sites.start('a')
  ncA = await conn('a')
  kvA = await kvOf(ncA, cfg.a)
  const outA = async (): Promise<number> =>
    (await (await jetstreamManager(ncA)).streams.info(cfg.a.streams.out)).state.last_seq
  const before = await recordsOf(kvA, [...Array(P).keys()])
  const outBefore = await outA()
  workerA = startA()
  await waitFor("a's metrics", async () => (await gauge()) !== undefined)
  // a's own gateway still routes a's partitions to a (its map is stale): readings land in a's TLM.
  await publish(ncA, 'a', homeA, 10)
  await sleep(6_000) // three lease TTLs, 24 heartbeats
  t.equal(await gauge(), 1, "link down: a's worker waits for b's map (gauge 1)")
  t.same(
    await recordsOf(kvA, [...Array(P).keys()]),
    before,
    'a took no partition: every partition record of a is unchanged',
  )
  t.equal(await outA(), outBefore, "a processed nothing: no output in a's OUT")
  t.ok(
    [...(await recordsOf(kvB, homeA)).values()].every((r) => r.owner === 'b-1'),
    "b still holds a's partitions",
  )

  // 3. The link heals: the gate opens on b's map and a follows it.
  proxy.heal()
  await waitForLink(ncA, 'b', 30_000)
  await waitFor('the gate to open', async () => (await gauge()) === 0)
  const viewA = new SiteMapView(cfg.a, kvA, await jetstreamManager(ncA))
  await waitFor("a to see b's epoch", async () => (await viewA.refresh()).epoch === move.epoch)
  t.same(viewA.map.owners, Array(P).fill('b'), "a follows b's map: every partition at b")
  await sleep(2_000)
  t.same(
    await recordsOf(kvA, [...Array(P).keys()]),
    before,
    "a took none of b's partitions after the heal (records unchanged)",
  )
  t.equal(await outA(), outBefore, 'a still processed nothing')

  // 4. b gone for good: a restarts with no link and waits; the operator's override lets it act.
  await Promise.all([sites.kill('b'), kill(workerB, 'SIGKILL'), kill(workerA, 'SIGKILL')])
  workerA = startA()
  await waitFor("a's metrics", async () => (await gauge()) !== undefined)
  await sleep(3_000)
  t.equal(await gauge(), 1, 'b gone: the restarted a waits again')
  const cli = async (...args: string[]): Promise<{ code: number; out: string }> => {
    try {
      const r = await run(process.execPath, [distPath('cmd/pitwall.js'), 'site', ...args], {
        env: { ...process.env, ...envOf(cfg.a) },
      })
      return { code: 0, out: r.stdout }
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string }
      return { code: e.code, out: `${e.stdout}${e.stderr}` }
    }
  }
  for (const [args, setting] of [
    [['assume-peer-lost', '--site', 'a', '--reason', 'dc-b flooded'], '--confirm'],
    [['assume-peer-lost', '--site', 'b', '--confirm', '--reason', 'dc-b flooded'], '--site'],
    [['assume-peer-lost', '--site', 'a', '--confirm'], '--reason'],
    [['assume-peer-lost', '--site', 'a', '--confirm', '--reason', 'x', '--for-min', '0'], '--for-min'],
  ] as const) {
    const r = await cli(...args)
    t.ok(
      r.code !== 0 && r.out.includes('PW_CONFIG_INVALID') && r.out.includes(setting),
      `refused without a valid ${setting}: ${r.out.trim().split('\n')[0]}`,
    )
  }
  t.equal(await gauge(), 1, 'still waiting after the refused overrides')
  const ov = await cli('assume-peer-lost', '--site', 'a', '--confirm', '--reason', 'dc-b flooded')
  t.equal(ov.code, 0, `override recorded: ${ov.out.trim().split('\n')[0]}`)
  const audit = await kvA.get(SITE_OVERRIDE_KEY)
  const rec = JSON.parse(new TextDecoder().decode(audit?.value)) as {
    site: string
    by: string
    at: number
    until: number
    reason: string
  }
  t.match(rec, { site: 'a', reason: 'dc-b flooded' }, 'the override names the site and why')
  t.ok(rec.by.length > 0 && rec.until > rec.at && Math.abs(rec.at - Date.now()) < 60_000, 'and who and when')
  await waitFor('the gate to open on the override', async () => (await gauge()) === 0)
  const fo = await cli('failover')
  t.equal(fo.code, 0, `failover at a: ${fo.out.trim().split('\n')[0]}`)
  await waitFor('a to take every partition', async () =>
    [...(await recordsOf(kvA, [...Array(P).keys()])).values()].every((r) => r.owner === 'a-1'),
  )
  // New readings at a, for every partition (a's gateway routes them all to a now).
  await publish(ncA, 'a', [...Array(P).keys()], 20)
  await waitFor('a to process readings', async () => (await outA()) > outBefore)
  t.pass('with the override and the link down, a acts: it owns every partition and writes outputs')
})
