/**
 * Split and heal (docs/sites.md, "Split"), the scenario behind test/integration/split.test.ts and test/integration/split-loss.test.ts:
 * the leafnode link between two local sites runs through a proxy with a real network's faults
 * (test/helpers/proxy.ts); it is cut (or blackholed) while both sites stay up.
 * 1. No automatic failover while the peer's health answers (a link cut alone is not a loss).
 * 2. The operator forces a failover at b anyway (or b fails over by itself when its probes of a's health cross
 *    the same silent network): both sites process a's partitions for a while.
 * 3. The link heals: the higher epoch (b's) wins; a's workers release; a's outputs past the seal are retracted
 *    by both projectors (seals) and a's readings past the seal are forwarded to b by a's stray relay.
 * Checked exactly: both PostgreSQL databases hold the same window rows, each equal to the reference computation
 * over the winner's chains (nothing lost of the chain, nothing counted twice, one row per window), every reading
 * a accepted past the seal reached b, and every reading of the producers' log was applied.
 * `profiles: 'production'` runs the workers on the production profile list with `environment` readings and
 * checks windows against the docs-only reference test/helpers/ref-environment.ts.
 */
import type { Test } from 'tap'
import type pg from 'pg'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { RuntimeConfig } from '../../actors/config.js'
import { PROFILES } from '../../actors/kinds/registry.js'
import type { MoveResult } from '../../actors/handover.js'
import { readRecord } from '../../actors/placement.js'
import { TABLES } from '../../projector/mod.js'
import { queryDeps, queryEntity } from '../../actors/query.js'
import { buildProfiles } from '../../actors/runtime.js'
import { peerStreams, type Segment, SiteMapView } from '../../actors/sitemap.js'
import { parsePartitioned, partitionOf, tlmSubject } from '../../actors/subjects.js'
import { SiteController } from '../../sites/controller.js'
import { waitForLink } from '../../sites/servers.js'
import { sumProfile } from '../fixtures/sum-profile.js'
import { distPath, kill, spawnWorker } from './cluster.js'
import {
  chainMessages,
  envRows,
  envValue,
  LATENESS_MS,
  payload,
  readAll,
  waitQuiet,
  waitRelays,
  WINDOW_MS,
} from './failover.js'
import { CuttableProxy } from './proxy.js'
import { siteDatabase, type SiteProjector, startProjectorPair, startTwoSites } from './two-sites.js'
import { referenceEnvironment, type EnvMsg } from './ref-environment.js'
import { referenceSum } from './trace.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const P = 8
const E = 120
const RATE = 600

interface Reading {
  rid: string
  id: string
  ts: number
  v: number
}

/** A site's gateway, as far as routing goes: its own connection and its own view of the site map. */
class SiteProducer {
  readonly acked: Array<{ rid: string; site: string; p: number; at: number; id: string; v: number }> = []
  readonly retry: Reading[] = []
  /** Publishes not answered yet: a timed-out publish may still have been stored, so the device re-sends it. */
  private readonly inFlight = new Set<Promise<void>>()
  constructor(
    readonly site: string,
    private readonly nc: NatsConnection,
    readonly view: SiteMapView,
    private readonly production: boolean,
  ) {}

  publish(r: Reading): Promise<void> {
    this.attempted.set(r.rid, r)
    const pr = this.send(r).finally(() => this.inFlight.delete(pr))
    this.inFlight.add(pr)
    return pr
  }

  /** Every reading this producer ever tried, by rid: a device keeps re-sending one until it is acked. */
  readonly attempted = new Map<string, Reading>()

  /**
   * Waits for every publish in flight, then re-sends every reading ever tried and not acked (a timed-out publish
   * may still have been stored: the re-send is then a duplicate JetStream drops by message id, acked as such),
   * until all are acked or `rounds` run out. Returns how many are still not acked.
   */
  async drain(rounds: number): Promise<number> {
    let left = 0
    for (let i = 0; i < rounds; i++) {
      await Promise.all([...this.inFlight])
      const acked = new Set(this.acked.map((x) => x.rid))
      const todo = [...this.attempted.values()].filter((r) => !acked.has(r.rid))
      left = todo.length
      if (left === 0) return 0
      this.retry.length = 0
      await Promise.all(todo.map((r) => this.publish(r)))
      await new Promise((r) => setTimeout(r, 200))
    }
    return left
  }

  private async send(r: Reading): Promise<void> {
    const p = partitionOf('sensor', r.id, P)
    const owner = this.view.ownerOf(p)
    try {
      await jetstream(this.nc).publish(
        tlmSubject(owner, p, 'sensor', r.id),
        JSON.stringify(this.production ? payload(r, true) : { ts: r.ts, fields: { v: r.v }, profile: 'testsum' }),
        { msgID: r.rid, timeout: 1_500 },
      )
      this.acked.push({ rid: r.rid, site: owner, p, at: Date.now(), id: r.id, v: r.v })
    } catch {
      this.retry.push(r)
    }
  }

  async flushRetries(): Promise<void> {
    for (const r of this.retry.splice(0, this.retry.length)) await this.publish(r)
  }
}

export interface SplitOptions {
  /** 'cut': both sides see the link close at once; 'blackhole': packets stop, nothing closes (test/helpers/proxy.ts). */
  fault: 'cut' | 'blackhole'
  /**
   * Whether b's probe of a's controller health (`/healthz`, the real controller) crosses the same faulty network
   * as the leafnode link. false: it takes another path (a management network) and keeps answering.
   */
  healthOverLink: boolean
  /** WAN latency and jitter on the link (and the health path), from the start. */
  latencyMs: number
  jitterMs: number
  /** One-way loss on the link from the start (TCP retransmission stalls, test/helpers/proxy.ts `loss`). */
  loss?: { dir: 'up' | 'down'; rate: number }
  /** The workers' profiles: the test profile (default) or the production list with `environment` readings. */
  profiles?: 'testsum' | 'production'
}

export async function splitAndHeal(t: Test, o: SplitOptions): Promise<void> {
  const t0 = Date.now()
  const log = (s: string): void => {
    t.comment(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${s}`)
  }
  const production = o.profiles === 'production'
  // b dials a's leafnode through a proxy the test can cut.
  const two = await startTwoSites(t, { partitions: P, tmpPrefix: 'pw-split-', proxy: true, tickIntervalMs: 1_000 })
  const { cfg, nc, cleanups } = two
  const proxy = two.proxy as CuttableProxy
  proxy.latency(o.latencyMs, o.jitterMs)
  if (o.loss) proxy.loss(o.loss.dir, o.loss.rate)
  const ncA = nc.a
  const ncB = nc.b
  const script = distPath(production ? 'test/fixtures/worker-prod-main.js' : 'test/fixtures/worker-main.js')
  for (const s of ['a', 'b'] as const) {
    const w = spawnWorker(script, `${s}-1`, two.envOf(cfg[s]))
    cleanups.push(() => kill(w, 'SIGTERM'))
  }
  // A projector pair per site (its own OUT and its mirror of the peer's), each site its own database.
  const pools: Record<'a' | 'b', pg.Pool> = {} as Record<'a' | 'b', pg.Pool>
  const projectors: SiteProjector[] = []
  for (const s of ['a', 'b'] as const) {
    pools[s] = await siteDatabase(cleanups)
    projectors.push(...(await startProjectorPair(cleanups, nc[s], cfg[s], pools[s])))
  }
  // Both controllers run as in production (each with its stray relay). a's: operator failover only. b's:
  // automatic failover after 1.5 s with the peer down, probing the link and a's controller's /healthz through a
  // second proxy, faulted with the link when the health path crosses the same network.
  const controllerA = new SiteController({ nc: ncA, cfg: cfg.a, checkMs: 250, failoverAfterMs: 0, port: 0 })
  await controllerA.start()
  cleanups.push(() => controllerA.stop())
  const healthProxy = new CuttableProxy({ host: '127.0.0.1', port: controllerA.port })
  await healthProxy.start()
  healthProxy.latency(o.latencyMs, o.jitterMs)
  cleanups.push(() => healthProxy.stop())
  const controller = new SiteController({
    // A probe over the WAN needs two round trips (connect, request): up to 4 x (latency + jitter), loaded CI aside.
    nc: ncB,
    cfg: cfg.b,
    checkMs: 250,
    failoverAfterMs: 1_500,
    peerHealthUrl: `http://127.0.0.1:${healthProxy.port}/healthz`,
    probeTimeoutMs: Math.max(250, 4 * (o.latencyMs + o.jitterMs)),
  })
  await controller.start()
  cleanups.push(() => controller.stop())

  const views = {
    a: new SiteMapView(cfg.a, await new Kvm(ncA).open(cfg.a.streams.stateBucket), await jetstreamManager(ncA)),
    b: new SiteMapView(cfg.b, await new Kvm(ncB).open(cfg.b.streams.stateBucket), await jetstreamManager(ncB)),
  }
  const refresh = setInterval(() => {
    for (const v of Object.values(views)) void v.refresh().catch(() => undefined)
  }, 200)
  cleanups.push(async () => clearInterval(refresh))
  await views.a.refresh()
  await views.b.refresh()
  const producers = {
    a: new SiteProducer('a', ncA, views.a, production),
    b: new SiteProducer('b', ncB, views.b, production),
  }
  // Devices are spread over both sites' gateways (entity parity); event time 1 s per reading per entity.
  let stop = false
  let n = 0
  const clock = new Array<number>(E).fill(1_700_000_000_000)
  // Event time per reading per entity: 1 s for the test profile's 10 s windows; 10 s for the environment
  // profile's 1-minute windows (30 s lateness), so both sites close windows during the split.
  const stepMs = production ? 10_000 : 1_000
  const producing = (async () => {
    const started = Date.now()
    let sent = 0
    let retriedAt = 0
    while (!stop) {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE) - sent
      const batch: Array<Promise<void>> = []
      for (let i = 0; i < due; i++) {
        const e = (n * 7919) % E
        clock[e] = (clock[e] as number) + stepMs
        const r = { rid: `r${n}`, id: `s${e}`, ts: clock[e] as number, v: n % 100 }
        batch.push((e % 2 === 0 ? producers.a : producers.b).publish(r))
        n++
      }
      sent += Math.max(0, due)
      if (Date.now() - retriedAt > 1_000) {
        retriedAt = Date.now()
        for (const pr of Object.values(producers)) void pr.flushRetries()
      }
      await Promise.all(batch)
      await sleep(20)
    }
  })()

  await sleep(4_000)
  const epoch0 = views.b.map.epoch
  log(
    `${o.fault === 'cut' ? 'cutting' : 'blackholing'} the link${o.healthOverLink ? ' and the health path' : ''} after ${producers.a.acked.length + producers.b.acked.length} acked readings`,
  )
  const faultAt = Date.now()
  if (o.fault === 'cut') proxy.split()
  else proxy.blackhole()
  if (o.healthOverLink) {
    if (o.fault === 'cut') healthProxy.split()
    else healthProxy.blackhole()
  }
  let move: MoveResult
  if (!o.healthOverLink) {
    await sleep(4_000)
    t.equal(controller.status().peerLinkUp, false, 'b sees the link down')
    t.equal(views.b.map.epoch, epoch0, "no automatic failover while a's health answers")
    t.equal(controller.status().failovers, 0)
    move = await controller.failover('operator failover during a split')
  } else {
    // Nothing closes: b learns of the partition only from its probes timing out.
    for (let i = 0; i < 300 && !controller.status().lastMove; i++) await sleep(50)
    const last = controller.status().lastMove
    t.ok(last, "b failed over by itself once its probes of the link and of a's health timed out")
    if (!last) return
    move = last
    log(
      `automatic failover at b ${last.at - faultAt} ms after the partition began (failoverAfterMs 1500, probe every 250 ms)`,
    )
    await sleep(Math.max(0, 4_000 - (Date.now() - faultAt)))
  }
  log(
    `failover at b: epoch ${move.epoch}, partitions ${move.partitions.join(',')}, a's segments sealed at ${move.sealedAt}${move.rewound ? `; state cut rewound for ${move.rewound.join(',')}` : ''}`,
  )
  t.same(move.partitions, [...cfg.a.homePartitions], "b took a's partitions")
  await sleep(4_000)
  t.same(
    views.a.map.owners.filter((o) => o === 'a').length,
    cfg.a.homePartitions.length,
    'during the split a still owns its partitions (its view)',
  )
  const ackedAtAInSplit = producers.a.acked.filter((x) => x.site === 'a').length

  if (o.loss)
    t.ok(
      proxy.lost[o.loss.dir] > 0,
      `the link lost chunks ${o.loss.dir === 'down' ? 'a -> b' : 'b -> a'} before the cut (${proxy.lost[o.loss.dir]}, each held for a retransmission timeout)`,
    )
  log('healing the link')
  proxy.heal()
  healthProxy.heal()
  await waitForLink(ncB, 'a', 30_000)
  await waitForLink(ncA, 'b', 30_000)
  for (let i = 0; i < 100 && views.a.map.epoch !== move.epoch; i++) await sleep(100)
  t.equal(views.a.map.epoch, move.epoch, 'a follows the higher epoch after the heal')
  await sleep(3_000)
  stop = true
  await producing
  // Devices re-send what was not acked (a timed-out publish may still have been stored: the re-send is then a
  // duplicate JetStream drops by message id), until every reading is acked.
  const unacked = await Promise.all([producers.a.drain(40), producers.b.drain(40)])
  t.same(unacked, [0, 0], 'every reading was acked in the end')
  log('producers stopped; waiting for the relays')
  // a's relay forwards what a accepted past the seal once b's records are mirrored at a; then the owners apply it.
  t.equal(
    await waitRelays(
      [
        { nc: ncA, cfg: cfg.a },
        { nc: ncB, cfg: cfg.b },
      ],
      120_000,
    ),
    0,
    'both stray relays caught up',
  )
  log('relays caught up; waiting for the partition consumers')
  await waitQuiet(
    [
      { nc: ncA, cfg: cfg.a },
      { nc: ncB, cfg: cfg.b },
    ],
    120_000,
  )
  log('partition consumers idle')
  await sleep(1_000)
  // Projectors: each caught up with its stream.
  for (const { p, nc: ncx, stream } of projectors) {
    const last = (await (await jetstreamManager(ncx)).streams.info(stream)).state.last_seq
    for (let i = 0; i < 600 && p.stats().lastSeq < last; i++) await sleep(100)
    t.ok(p.stats().lastSeq >= last, `projector of ${stream} caught up (${p.stats().lastSeq}/${last})`)
  }

  log("projectors caught up; reading the winner's chains")
  // The winner's chains, read at b (which owns every partition now).
  const kvB = await new Kvm(ncB).open(cfg.b.streams.stateBucket)
  /** Window key -> what is compared: the test profile's count, or readings, temperature count and sum. */
  const expected = new Map<string, string>()
  let beyondSeal = 0
  for (let p = 0; p < P; p++) {
    const chain = (await readRecord(kvB, p))?.record.segments ?? [{ epoch: 0, site: 'b', from: 1 }]
    if (production) {
      for (const [k, w] of referenceEnvironment(await chainEnvMessages(ncB, cfg.b, p, chain)).windows)
        expected.set(k, envValue(w.readings, w.fields.temperature))
    } else {
      const ref = referenceSum(await chainMessages(ncB, cfg.b, p, chain), WINDOW_MS, LATENESS_MS)
      for (const [id, w] of ref.windows) expected.set(id, String(w.count))
    }
    const sealed = chain.find((s) => s.site === 'a' && s.to !== undefined)
    if (sealed?.to !== undefined) {
      // What a accepted for p past the seal: in a's TLM (now mirrored to b), off the winner's chain.
      beyondSeal += (await readAll(ncB, peerStreams(cfg.b, 'a').tlm, `tlm.a.${p}.*.*`)).filter(
        (m) => m.seq > (sealed.to as number) && !m.subject.includes('._sys.'),
      ).length
    }
  }
  // a's stray relay forwards what a accepted past the seal to b (after b's record with the seal reached a), with
  // the producer's message id: each is in b's TLM, as the forwarded copy or as the producer's own re-send to b
  // (a publish held by the blackhole, timed out, retried at b, then delivered to a on the heal).
  const atB = new Set<string>()
  let relayed = 0
  for (let p = 0; p < P; p++) {
    for (const m of await readAll(ncB, cfg.b.streams.tlm, `tlm.b.${p}.*.*`)) {
      atB.add(m.rid)
      if (m.relayedFrom?.startsWith('a:')) relayed++
    }
  }
  let pastSealIds: string[] = []
  for (let p = 0; p < P; p++) {
    const chain = (await readRecord(kvB, p))?.record.segments ?? []
    const sealed = chain.find((s) => s.site === 'a' && s.to !== undefined)
    if (sealed?.to === undefined) continue
    pastSealIds = pastSealIds.concat(
      (await readAll(ncB, peerStreams(cfg.b, 'a').tlm, `tlm.a.${p}.*.*`))
        .filter((m) => m.seq > (sealed.to as number) && !m.subject.includes('._sys.'))
        .map((m) => m.rid),
    )
  }
  const notAtB = pastSealIds.filter((id) => !atB.has(id)).length
  log(
    `a's TLM holds ${beyondSeal} readings of its partitions past the seal (a's gateway acked ${ackedAtAInSplit} readings for a in all); ${relayed} forwarded copies in b's TLM, ${beyondSeal - relayed} already there from the producer's re-send`,
  )
  t.ok(beyondSeal > 0, "a accepted readings during the split that are past the winner's seal")
  t.equal(
    notAtB,
    0,
    "every one of them reached the winner (forwarded by a's stray relay, or re-sent by the producer): the split loses nothing",
  )

  // The producers' own log, apart from any record of the system: every reading they ever tried is acked in the
  // end (re-sent until acked) and must be applied exactly once by the final owner (count and sum in its live
  // state, windows and late together).
  const want = new Map<string, { count: number; sum: number }>()
  const seen = new Set<string>()
  for (const x of [...producers.a.acked, ...producers.b.acked]) {
    if (seen.has(x.rid)) continue
    seen.add(x.rid)
    const w = want.get(x.id) ?? { count: 0, sum: 0 }
    w.count++
    w.sum += x.v
    want.set(x.id, w)
  }
  const qd = await queryDeps(ncB, cfg.b, buildProfiles(production ? PROFILES : [sumProfile], cfg.b))
  let logMissing = 0
  let logExtra = 0
  // Production profiles: every reading of the log is in the winner's chains (the windows below check what the
  // actors made of them against the docs-only reference).
  if (production) logMissing = await notInChains(ncB, cfg.b, kvB, seen)
  for (const [id, w] of production ? [] : want) {
    const st = (await queryEntity(qd, 'sensor', id, 5_000)).state as { total: number; late: number; vsum: number }
    const got = st.total + st.late
    if (got < w.count) logMissing += w.count - got
    if (got > w.count || (got === w.count && st.vsum !== w.sum)) logExtra += Math.max(1, got - w.count)
  }
  t.same(
    { missing: logMissing, extra: logExtra },
    { missing: 0, extra: 0 },
    production
      ? `every reading of the producers' log (${seen.size}) is in the winner's chains (the windows below check what the actors made of them)`
      : `every reading of the producers' log (${seen.size}) applied exactly once`,
  )

  const rowsOf = production ? envRows : sumRows
  const dbA = await rowsOf(pools.a)
  const dbB = await rowsOf(pools.b)
  t.same(
    [...dbA.entries()].sort(),
    [...dbB.entries()].sort(),
    `both databases hold the same ${dbA.size} window rows (converged)`,
  )
  let missing = 0
  let wrong = 0
  for (const [id, count] of expected) {
    const got = dbB.get(id)
    if (!got) missing++
    else if (got.split('@')[0] !== count) wrong++
  }
  const extra = [...dbB.keys()].filter((id) => !expected.has(id)).length
  if (missing > 0 && !production) {
    // Where the missing windows are: which streams hold an output for them, from which site and token.
    const want = new Set([...expected.keys()].filter((id) => !dbB.has(id)))
    for (const [label, ncx, stream] of [
      ['b OUT', ncB, cfg.b.streams.out],
      ['b OUT_a', ncB, peerStreams(cfg.b, 'a').out],
    ] as const) {
      for (const m of await readAll(ncx, stream)) {
        const o = JSON.parse(new TextDecoder().decode(m.data)) as {
          id: string
          site: string
          token: number
          seq: number
          partition: number
        }
        if (want.has(o.id))
          log(
            `missing ${o.id} is in ${label}: site ${o.site} p${o.partition} token ${o.token} seq ${o.seq} (epoch ${Math.floor(o.seq / 2 ** 40)})`,
          )
      }
    }
    log(`missing: ${[...want].slice(0, 12).join(' ')}`)
    const ent = [...want][0]?.split(':')[1] ?? ''
    for (const [label, ncx, stream] of [
      ['b OUT', ncB, cfg.b.streams.out],
      ['b OUT_a', ncB, peerStreams(cfg.b, 'a').out],
    ] as const) {
      const outs = (await readAll(ncx, stream)).map(
        (m) =>
          JSON.parse(new TextDecoder().decode(m.data)) as {
            id: string
            entity: string
            site: string
            token: number
            seq: number
          },
      )
      log(
        `${label} outputs of ${ent}: ${outs
          .filter((o) => o.entity === ent)
          .map((o) => `${o.id.split(':').at(-1)}@${o.site}/${o.token}/${o.seq}`)
          .join(' ')}`,
      )
    }
    const p = partitionOf('sensor', ent, P)
    const chain = (await readRecord(kvB, p))?.record.segments ?? []
    log(`chain of p${p}: ${JSON.stringify(chain)}; cursor ${(await readRecord(kvB, p))?.record.cursor}`)
    const msgs = (await chainMessages(ncB, cfg.b, p, chain)).filter((m) => m.id === ent)
    log(`chain readings of ${ent}: ${msgs.map((m) => `${m.ts - 1_700_000_000_000}@${m.seq}`).join(' ')}`)
  }
  t.equal(missing, 0, `every window of the winner's chains is in the databases (${expected.size})`)
  t.equal(wrong, 0, 'every window count equals the reference (nothing lost, nothing counted twice)')
  t.equal(extra, 0, "no row outside the winner's chains (the loser's were retracted)")
  const retracted = await pools.a.query<{ n: string }>(`SELECT coalesce(sum(retracted), 0) AS n FROM ${TABLES.seals}`)
  log(`rows retracted at a's database: ${retracted.rows[0]?.n}`)
  t.ok(Number(retracted.rows[0]?.n) > 0, "a's database retracted the rows a wrote past the seal during the split")
}

/** The test profile's window rows: output id -> `count@site/token`. */
async function sumRows(pool: pg.Pool): Promise<Map<string, string>> {
  const rows = (
    await pool.query<{ output_id: string; count: number; site: string; token: string }>(
      `SELECT output_id, (fields->'v'->>'count')::int AS count, site, token FROM ${TABLES.windows}`,
    )
  ).rows
  return new Map(rows.map((r) => [r.output_id, `${r.count}@${r.site}/${r.token}`]))
}

/** The readings of a partition chain with all their fields, in chain order (positions as epoch * 2^40 + seq). */
async function chainEnvMessages(
  nc: NatsConnection,
  cfg: RuntimeConfig,
  p: number,
  chain: Segment[],
): Promise<EnvMsg[]> {
  const out: EnvMsg[] = []
  for (const seg of chain) {
    const stream = seg.site === cfg.site ? cfg.streams.tlm : peerStreams(cfg, seg.site).tlm
    for (const m of await readAll(nc, stream, `tlm.${seg.site}.${p}.*.*`)) {
      if (m.seq < seg.from || (seg.to !== undefined && m.seq > seg.to)) continue
      const sp = parsePartitioned(m.subject)
      if (!sp || sp.kind === '_sys') continue
      const r = JSON.parse(new TextDecoder().decode(m.data)) as { ts: number; fields: EnvMsg['fields']; rid?: string }
      out.push({
        seq: seg.epoch * 2 ** 40 + m.seq,
        kind: sp.kind,
        id: sp.id,
        ts: r.ts,
        fields: r.fields,
        ...(r.rid === undefined ? {} : { rid: r.rid }),
      })
    }
  }
  return out
}

/** How many of `rids` no partition chain of the winner (read at `nc`'s site) holds. */
async function notInChains(nc: NatsConnection, cfg: RuntimeConfig, kv: KV, rids: Set<string>): Promise<number> {
  const found = new Set<string>()
  for (let p = 0; p < cfg.partitions; p++) {
    const chain = (await readRecord(kv, p))?.record.segments ?? [{ epoch: 0, site: cfg.site, from: 1 }]
    for (const m of await chainEnvMessages(nc, cfg, p, chain)) if (m.rid !== undefined) found.add(m.rid)
  }
  return [...rids].filter((r) => !found.has(r)).length
}
