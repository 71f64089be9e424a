/**
 * The operator's procedure of docs/sites.md ("Procedure: failover, restart, failback"), run step by step as
 * printed: the `$ pitwall site ...` commands are read from the document and run through the CLI's exported
 * `siteMain` with the site definition file (`--topology sites.json --site <s>`) against two local sites (real
 * nats-servers from the rendered configs, a worker process per site; the leafnode link is cut one second before
 * site a is killed with -9, so a acks readings b never mirrors). Between the commands
 * the test does what the steps say (kill a, restart a's servers, start a's worker) while a producer routes
 * readings by the site map at a steady rate.
 *
 * Measured and printed: RTO (kill -> a new output, from a reading sent after the kill, of every moved partition
 * at b), the failback's duration, and the RPO (readings acked at a that never reached b's mirror, from the
 * producer's acks), which `site status` at a must then count exactly as not yet applied; after the failback
 * they are applied (a's new segments read them: no controller, so no relay, runs in this test) and none is left.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import type { RuntimeConfig } from '../../actors/config.js'
import { epochOf, peerStreams, SiteMapView } from '../../actors/sitemap.js'
import { partitionOf, tlmSubject } from '../../actors/subjects.js'
import type { Output } from '../../actors/types.js'
import { waitForLink } from '../../sites/servers.js'
import { siteMain } from '../../sites/site-cli.js'
import { distPath, kill, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { readAll } from '../helpers/failover.js'
import type { CuttableProxy } from '../helpers/proxy.js'
import { startTwoSites } from '../helpers/two-sites.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const P = 8
const RATE = 200
const E = 100

/** The `$ pitwall site ...` lines of the procedure section of docs/sites.md, in order. */
async function procedure(): Promise<string[]> {
  const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'sites.md'), 'utf8')
  const start = doc.indexOf('## Procedure: failover, restart, failback')
  const end = doc.indexOf('\n## ', start + 1)
  if (start < 0) throw new Error('docs/sites.md has no procedure section')
  return [...doc.slice(start, end < 0 ? undefined : end).matchAll(/^\s*\$ (pitwall site .+?)\s*$/gm)].map(
    (m) => m[1] as string,
  )
}

t.test('the documented failover, restart and failback procedure, step by step as printed', async (t) => {
  const steps = await procedure()
  const at = (site: string): string => `--topology sites.json --site ${site}`
  t.same(
    steps,
    [
      `pitwall site status ${at('b')}`,
      `pitwall site status ${at('b')}`,
      `pitwall site failover ${at('b')}`,
      `pitwall site status ${at('b')}`,
      `pitwall site status ${at('a')}`,
      `pitwall site failback ${at('a')} --grace-s 3`,
      `pitwall site status ${at('a')}`,
    ],
    'the procedure has the commands this test runs between its actions',
  )

  let topoFile = ''
  const {
    proxy: px,
    sites,
    nc,
    cfg,
    conn,
    envOf,
    cleanups,
  } = await startTwoSites(t, {
    partitions: P,
    tmpPrefix: 'pw-procedure-',
    proxy: true,
    // b dials a through a proxy: the link is cut a moment before a is lost, so a acks readings b never mirrors.
    beforeStart: async (topo, dir) => {
      topoFile = join(dir, 'sites.json')
      await writeFile(topoFile, JSON.stringify(topo, null, 2))
    },
  })
  const proxy = px as CuttableProxy
  let ncA = nc.a
  const ncB = nc.b
  const cfgA = cfg.a
  const cfgB = cfg.b
  const script = distPath('test/fixtures/worker-main.js')
  const startWorker = (c: RuntimeConfig): WorkerProc => {
    const w = spawnWorker(script, `${c.site}-1`, envOf(c))
    cleanups.push(() => kill(w, 'SIGKILL'))
    return w
  }
  let workerA = startWorker(cfgA)
  startWorker(cfgB)

  // The operator's commands: exactly the documented line, the site definition file at its place.
  let stepNo = 0
  const step = async (): Promise<{ code: number; out: string }> => {
    const line = steps[stepNo++] as string
    const args = line
      .split(/\s+/)
      .slice(2)
      .map((a) => (a === 'sites.json' ? topoFile : a))
    const lines: string[] = []
    const started = Date.now()
    const code = await siteMain(args, {}, { out: (l) => lines.push(l), err: (l) => lines.push(l) })
    const out = lines.join('\n')
    t.comment(`$ ${line}   (exit ${code}, ${Date.now() - started} ms)\n${out}`)
    return { code, out }
  }

  // A producer routing by the site map (as a gateway does, read at b), with a probe entity per partition of a
  // whose readings jump 20 s of event time: each one closes the previous window, an output per reading.
  const kvB = await new Kvm(ncB).open(cfgB.streams.stateBucket)
  const router = new SiteMapView(cfgB, kvB, await jetstreamManager(ncB))
  const refresh = setInterval(() => void router.refresh().catch(() => undefined), 200)
  cleanups.push(async () => clearInterval(refresh))
  const homeA = cfgA.homePartitions
  const probes = new Map<number, string>()
  for (let i = 0; probes.size < homeA.length; i++) {
    const p = partitionOf('sensor', `probe-${i}`, P)
    if (homeA.includes(p) && !probes.has(p)) probes.set(p, `probe-${i}`)
  }
  const aliveA = { v: true }
  const acked: Array<{ rid: string; site: string; at: number }> = []
  const queue: Array<{ rid: string; id: string; ts: number; v: number }> = []
  // Publishes to a not answered yet: at the kill, a may have stored some whose ack never came back.
  const inFlightA = new Set<string>()
  const publish = async (r: { rid: string; id: string; ts: number; v: number }): Promise<void> => {
    const p = partitionOf('sensor', r.id, P)
    const site = router.ownerOf(p)
    if (site === 'a' && !aliveA.v) {
      queue.push(r)
      return
    }
    if (site === 'a') inFlightA.add(r.rid)
    try {
      await jetstream(site === 'a' ? ncA : ncB).publish(
        tlmSubject(site, p, 'sensor', r.id),
        JSON.stringify({ ts: r.ts, fields: { v: r.v }, profile: 'testsum', rid: r.rid }),
        { msgID: r.rid, timeout: 2_000 },
      )
      inFlightA.delete(r.rid)
      acked.push({ rid: r.rid, site, at: Date.now() })
    } catch {
      inFlightA.delete(r.rid)
      queue.push(r)
    }
  }
  let stop = false
  const producer = (async () => {
    const started = Date.now()
    let sent = 0
    let n = 0
    let probeN = 0
    let retryAt = 0
    const clock = new Array<number>(E).fill(1_700_000_000_000)
    while (!stop) {
      const batch: Array<Promise<void>> = []
      if (queue.length > 0 && Date.now() - retryAt > 250) {
        retryAt = Date.now()
        for (const r of queue.splice(0, queue.length)) batch.push(publish(r))
      }
      const due = Math.min(RATE / 20, Math.floor(((Date.now() - started) / 1000) * RATE) - sent)
      for (let i = 0; i < due; i++) {
        const e = (n * 7919) % E
        clock[e] = (clock[e] as number) + 1_000
        batch.push(publish({ rid: `r${n}`, id: `s${e}`, ts: clock[e] as number, v: n % 100 }))
        n++
      }
      sent += Math.max(0, due)
      if (probeN * 100 < Date.now() - started) {
        for (const [p, id] of probes)
          batch.push(publish({ rid: `p${probeN}-${p}`, id, ts: 1_700_000_000_000 + probeN * 20_000, v: 1 }))
        probeN++
      }
      void Promise.all(batch)
      await sleep(10)
    }
  })()
  cleanups.push(async () => {
    stop = true
    await producer
  })
  // New outputs at b of a's partitions, from readings b received itself (their position is in b's epoch).
  const firstOutput = new Map<number, number>()
  let failoverEpoch = Number.POSITIVE_INFINITY
  const sub = ncB.subscribe('out.b.*.sensor.*', {
    callback: (_err, m) => {
      const o = JSON.parse(new TextDecoder().decode(m.data)) as Output
      if (homeA.includes(o.partition) && epochOf(o.seq) >= failoverEpoch && !firstOutput.has(o.partition))
        firstOutput.set(o.partition, Date.now())
    },
  })
  cleanups.push(async () => sub.unsubscribe())
  await sleep(4_000)

  // 1. Both sites up.
  let r = await step()
  t.equal(r.code, 0, 'status at b')
  t.match(r.out, 'link UP', 'the link is up')
  t.match(r.out, 'role: NORMAL', 'b is NORMAL')
  t.match(r.out, /readings TLM\s+\d+ readings \(\+ \d+ _sys.tick messages\)/, 'readings and ticks counted apart')
  t.match(
    r.out,
    /RPO now: \d+ readings acknowledged at a \(up to its TLM sequence \d+\) are not yet in TLM_a \(exact/,
    'RPO now, exact while linked',
  )

  // The link is cut, then a second later site a is lost: servers and worker killed with -9.
  proxy.split()
  await sleep(1_000)
  const ackedBefore = acked.length
  aliveA.v = false
  const killAt = Date.now()
  const inFlightAtKill = inFlightA.size
  await Promise.all([sites.kill('a'), kill(workerA, 'SIGKILL')])
  void ncA.close().catch(() => undefined)
  const ackedAtA = acked.filter((x) => x.site === 'a' && x.at <= killAt)
  t.ok(ackedAtA.length > 300, `readings were acked at a before the kill (${ackedAtA.length} of ${ackedBefore})`)

  // 2. The operator sees a lost.
  r = await step()
  t.match(r.out, 'link DOWN', 'link DOWN')
  t.match(r.out, /RPO now: a's TLM was at sequence \d+ when last heard/, 'the RPO as last known')
  // 3. Failover at b: it reports when every moved partition is processed again, not the time to write records.
  const foStart = Date.now()
  failoverEpoch = 1
  r = await step()
  const foMs = Date.now() - foStart
  t.equal(r.code, 0, 'failover at b')
  t.match(r.out, `partitions ${homeA[0]}-${homeA.at(-1)} of a now owned by b`, 'names the moved partitions')
  t.match(r.out, /^RPO: /m, 'reports the RPO')
  for (const p of homeA)
    t.match(
      r.out,
      new RegExp(`partition ${p} processing again \\d+\\.\\d s after the failover began`),
      `partition ${p} is processed again`,
    )
  t.match(r.out, `all ${homeA.length} partitions processing again`, 'and all of them')
  // RTO: a new output of every moved partition at b.
  for (let i = 0; i < 300 && firstOutput.size < homeA.length; i++) await sleep(100)
  t.equal(firstOutput.size, homeA.length, 'every moved partition produced new outputs at b')
  const rtoMs = Math.max(...firstOutput.values()) - killAt
  // 4. b holds a's partitions.
  r = await step()
  t.match(r.out, 'role: SURVIVOR', 'b is SURVIVOR')
  t.match(r.out, `partitions owned here: 0-${P - 1}`, 'b owns every partition')

  // RPO: what a acked that b's mirror never got (read before a comes back: then the mirror catches up).
  const mirrored = new Set((await readAll(ncB, peerStreams(cfgB, 'a').tlm)).map((m) => m.rid))
  const lost = ackedAtA.filter((x) => !mirrored.has(x.rid)).length
  // a's servers come back (and the link with them); the operator waits for the link (status at a: link UP, mirror lag 0).
  proxy.heal()
  await sites.start('a')
  ncA = await conn('a')
  await waitForLink(ncA, 'b')
  await waitForLink(ncB, 'a')
  // 5. Status at a: DEGRADED, and the readings a acked that never reached b, counted exactly.
  for (let i = 0; i < 50; i++) {
    const info = await (await jetstreamManager(ncA)).streams.info(peerStreams(cfgA, 'b').state)
    if (info.mirror?.lag === 0 && info.mirror.active >= 0) break
    await sleep(200)
  }
  r = await step()
  t.match(r.out, 'link UP', 'a sees the link')
  t.match(r.out, 'role: DEGRADED', 'a is DEGRADED')
  // Exact up to the publishes a stored whose ack the kill cut off (the producer never learnt of them).
  const reported = Number(/not yet applied: (\d+) readings/.exec(r.out)?.[1] ?? -1)
  t.ok(
    reported >= lost && reported <= lost + inFlightAtKill,
    `status at a counts the ${lost} readings a acked and b never mirrored (${reported}; + up to ${inFlightAtKill} publishes unanswered at the kill)`,
  )
  t.match(r.out, `: ${reported} at a, 0 at b`, 'all of them at a')
  // a's workers start: the peer-map gate opens on b's map, they take nothing.
  workerA = startWorker(cfgA)
  await sleep(2_000)
  // 6. Failback at a, with progress.
  aliveA.v = true
  const fbStart = Date.now()
  r = await step()
  const fbMs = Date.now() - fbStart
  t.equal(r.code, 0, 'failback at a')
  for (const what of [
    'producers (gateways, simulators) must route by the site map within the grace period (3.0 s)',
    'map written: epoch 2',
    `b released ${homeA.length}/${homeA.length} partitions`,
    'grace period: ',
    "seals: b's segments",
    `records written: ${homeA.length}/${homeA.length}`,
    'lag TLM_b',
    `all ${homeA.length} partitions processing again`,
  ]) {
    t.match(r.out, what, `failback shows: ${what}`)
  }
  // 7. Back to normal.
  r = await step()
  t.match(r.out, 'role: NORMAL', 'a is NORMAL again')
  t.match(
    r.out,
    'not yet applied: 0 readings',
    "a's unmirrored tail is applied now (read by a's new segments, or forwarded by a relay), nothing left",
  )
  t.equal(stepNo, steps.length, 'every step of the procedure ran')
  const measured = {
    rto_ms: rtoMs,
    failover_command_ms: foMs,
    failback_ms: fbMs,
    rpo_readings: lost,
    acked_at_a_before_kill: ackedAtA.length,
  }
  t.comment(`measured: ${JSON.stringify(measured)}`)
  t.ok(rtoMs > 0 && rtoMs < 20_000, `RTO ${rtoMs} ms: every moved partition has new outputs at b`)
  t.ok(
    lost > 0,
    `the cut before the loss left readings acked at a and never mirrored (${lost}), counted exactly by status`,
  )
})
