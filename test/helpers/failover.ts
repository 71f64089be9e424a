/**
 * The two-site scenario behind test/integration/failover.test.ts and `npm run bench:failover`: two local sites (one
 * nats-server each, from the rendered configs), a worker per site (site a's as a child process so it can be
 * killed with -9, site b's in process), b's failover controller, and a producer that routes each reading to
 * the site owning its partition at a steady rate. Site a is killed (servers and worker, kill -9); b fails over
 * (automatically or by the operator's command); optionally a comes back and takes its partitions back.
 *
 * Measured exactly, from the streams themselves:
 * - rto_ms: kill -> b has applied a reading published after the kill in every one of a's partitions (a probe
 *   entity per partition; the slowest partition counts);
 * - rpo_readings / rpo_ms: readings acked at a that never reached b's mirror (the producer's log against b's
 *   mirror read while a is down), and how long before the kill the oldest of them was acked;
 * - rpo_reported: what the system itself reports once a's servers are back (with failback): the readings of
 *   a's TLM no segment covers and no relay forwarded, counted by sequence (`pendingStrays`, the 'not yet
 *   applied ... at a' of `pitwall site status`). It equals rpo_readings plus, at most, the publishes still in
 *   flight at the kill (stored at a, their ack lost with it: `in_flight_at_kill`);
 * - lost_after_mirror / duplicates / failback_lost: every window output (merged over both sites' OUT as the
 *   projector merges them: positions off the chain dropped, the one furthest along the chain winning; see
 *   `chainOutputs`) compared with the reference computation over the partition chains (every reading that is in a
 *   chain counted once).
 */
import type pg from 'pg'
import type { Test } from 'tap'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { RuntimeConfig } from '../../actors/config.js'
import { takeBack } from '../../actors/handover.js'
import { readRecord } from '../../actors/placement.js'
import { readRelay } from '../../actors/relay.js'
import { queryDeps, queryEntity } from '../../actors/query.js'
import { buildProfiles } from '../../actors/runtime.js'
import { epochOf, inChain, peerStreams, type Segment, SiteMapView } from '../../actors/sitemap.js'
import { parsePartitioned, partitionOf, tlmSubject } from '../../actors/subjects.js'
import type { Output, WindowBody } from '../../actors/types.js'
import { SiteController } from '../../sites/controller.js'
import { silentLog } from '../../actors/log.js'
import { TABLES } from '../../projector/mod.js'
import { pendingStrays } from '../../sites/site-cli.js'
import { PROFILES } from '../../actors/kinds/registry.js'
import { waitForLink } from '../../sites/servers.js'
import { sumProfile } from '../fixtures/sum-profile.js'
import { distPath, kill, spawnWorker, type WorkerProc } from './cluster.js'
import { siteDatabase, type SiteProjector, startProjectorPair, startTwoSites } from './two-sites.js'
import { ENV_FIELDS, referenceEnvironment, windowKey } from './ref-environment.js'
import { referenceSum, type StreamMsg } from './trace.js'

export interface ScenarioOptions {
  ratePerS: number
  partitions?: number
  entities?: number
  beforeS: number
  afterS: number
  /** Automatic detection after this long (ms), or 0 for an operator-triggered failover right after the kill. */
  failoverAfterMs: number
  failback: boolean
  failbackS?: number
  /** WAN latency (and jitter) on the leafnode link, through a proxy (test/helpers/proxy.ts): a lagging mirror. */
  linkLatencyMs?: number
  linkJitterMs?: number
  /** A slow link: the leafnode link carries at most this many kilobits per second each way (0: no limit). */
  linkRateKbps?: number
  /**
   * 'production': the workers run the production profile list (test/fixtures/worker-prod-main.ts) and the
   * readings are the `environment` profile's; windows are compared with the docs-only reference
   * (test/helpers/ref-environment.ts) over each partition's chain instead of the test profile's sums, and the
   * live-state check of the producer's log becomes "every acked reading is in a chain". Default 'testsum'.
   */
  profiles?: 'testsum' | 'production'
  log?: (msg: string) => void
}

export interface ScenarioResult {
  rate_per_s: number
  rto_ms: number
  rpo_readings: number
  rpo_ms: number
  lost_after_mirror: number
  duplicates: number
  failback_lost: number
  /** Production profiles: windows whose reading count is right but a field's count, sum, min or max is not. */
  windows_wrong: number
  acked: number
  acked_at_a_before_kill: number
  windows_checked: number
  failover_ms: number
  detection: 'automatic' | 'operator'
  /** Readings acked per second before the kill (the producer's achieved rate). */
  achieved_rate_per_s: number
  /** Readings acked at a just before the kill and re-sent (same rid) to b after the failover, acked there too. */
  straddled_resends: number
  /**
   * Of the rpo_readings (acked at a, not mirrored at the kill), those applied after all: a's disk kept them, and
   * the failback's new segment at a starts after the seal, so they are read when a takes its partitions back.
   */
  rpo_recovered: number
  link_latency_ms: number
  link_rate_kbps: number
  /** The system's own count of the recovery point once a's servers are back (failback runs only; else -1). */
  rpo_reported: number
  /** Publishes to a in flight at the kill that were never answered: stored or not, the producer cannot know. */
  in_flight_at_kill: number
  /** b's mirror of a's TLM behind a's stream at the kill, as b's stream info last reported it (messages). */
  mirror_lag_at_kill: number
  /** What the failover reported (MoveResult): how long before it a stored the newest mirrored message, and last heard of a. */
  seal_age_ms: number
  last_heard_ms: number
  /** When the failover began, after the kill. */
  failover_after_kill_ms: number
  /**
   * Checked against the producer's log of acknowledged readings (not the system's records): readings missing or
   * applied more than once over all entities (a wrong sum counts as extra). The recovery point is excluded only
   * when the lost site never came back.
   */
  producer_log: { entities: number; readings: number; missing: number; extra: number }
  /**
   * Production profiles: what users see. Each site's projectors (its OUT and its mirror of the peer's, into the
   * site's own PostgreSQL; a's die with it at the kill and start again with it) against the docs-only reference
   * over the chains: window rows missing, with another reading count or temperature count/sum, or not in the
   * reference (a row a seal should have retracted). Sites not running at the end are not checked.
   */
  databases?: Record<string, { rows: number; missing: number; wrong: number; extra: number; retracted: number }>
}

/** Re-sends of readings acked at a just before the kill, sent to b after the failover. */
const STRADDLE = 100

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
export const WINDOW_MS = 10_000
export const LATENESS_MS = 5_000

interface Acked {
  rid: string
  site: string
  at: number
  r: { rid: string; id: string; ts: number; v: number }
}

/** All messages of a stream (ordered consumer), with their sequence and message id. */
export async function readAll(
  nc: NatsConnection,
  stream: string,
  filter?: string,
): Promise<Array<{ seq: number; subject: string; rid: string; data: Uint8Array; relayedFrom?: string }>> {
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(stream)
  const out: Array<{ seq: number; subject: string; rid: string; data: Uint8Array; relayedFrom?: string }> = []
  if (info.state.messages === 0) return out
  const c = await jetstream(nc).consumers.get(stream, filter ? { filter_subjects: filter } : {})
  const last = info.state.last_seq
  const it = await c.consume({ max_messages: 5_000 })
  const idle = setTimeout(() => it.stop(), 10_000)
  for await (const m of it) {
    const relayedFrom = m.headers?.get('Pw-Relayed-From')
    out.push({
      seq: m.seq,
      subject: m.subject,
      rid: m.headers?.get('Nats-Msg-Id') ?? '',
      data: m.data,
      ...(relayedFrom ? { relayedFrom } : {}),
    })
    idle.refresh()
    if (m.info.pending === 0 || m.seq >= last) break
  }
  clearTimeout(idle)
  it.stop()
  return out
}

/** The readings of a partition chain, in chain order, read from the streams local to `nc`'s site. */
export async function chainMessages(
  nc: NatsConnection,
  cfg: RuntimeConfig,
  p: number,
  chain: Segment[],
): Promise<StreamMsg[]> {
  const out: StreamMsg[] = []
  for (const seg of chain) {
    const stream = seg.site === cfg.site ? cfg.streams.tlm : peerStreams(cfg, seg.site).tlm
    const msgs = await readAll(nc, stream, `tlm.${seg.site}.${p}.*.*`)
    for (const m of msgs) {
      if (m.seq < seg.from || (seg.to !== undefined && m.seq > seg.to)) continue
      const sp = parsePartitioned(m.subject)
      if (!sp || sp.kind === '_sys') continue
      const r = JSON.parse(new TextDecoder().decode(m.data)) as {
        ts: number
        fields: { v: number } & Record<string, number | string>
        rid?: string
      }
      out.push({
        seq: seg.epoch * 2 ** 40 + m.seq,
        kind: sp.kind,
        id: sp.id,
        ts: r.ts,
        v: r.fields.v,
        fields: r.fields,
        ...(r.rid === undefined ? {} : { rid: r.rid }),
      })
    }
  }
  return out
}

/** The window outputs of a stream. */
async function windowOutputs(nc: NatsConnection, stream: string, into: Output[]): Promise<void> {
  for (const m of await readAll(nc, stream)) {
    const o = JSON.parse(new TextDecoder().decode(m.data)) as Output
    if (o.type === 'window') into.push(o)
  }
}

/**
 * The window outputs of partition `p` as the projector keeps them (docs/sites.md, seals): an output whose position
 * a seal put off the partition's chain is dropped (the killed site wrote it past what its successor read), and of
 * the copies of one output id the one furthest along the chain wins (tokens order owners within a site only).
 */
export function chainOutputs(all: readonly Output[], p: number, chain: readonly Segment[]): Map<string, Output> {
  const out = new Map<string, Output>()
  for (const o of all) {
    if (o.partition !== p || !inChain(chain, o.seq)) continue
    const prev = out.get(o.id)
    if (!prev || prev.seq < o.seq || (prev.seq === o.seq && prev.token <= o.token)) out.set(o.id, o)
  }
  return out
}

/** Each site's database (ScenarioResult.databases) equals the reference: no window missing, wrong or off the chain. */
export function assertDatabases(t: Test, r: ScenarioResult, sites: readonly string[]): void {
  for (const site of sites) {
    const d = r.databases?.[site]
    t.same(
      d && { missing: d.missing, wrong: d.wrong, extra: d.extra },
      { missing: 0, wrong: 0, extra: 0 },
      `${site}'s PostgreSQL (its projectors: own OUT and the peer's mirror): ${d?.rows} window rows, each equal to the reference; none off the chain (${d?.retracted} rows retracted by seals)`,
    )
  }
}

/** What a window row is compared by: reading count, temperature count and sum. */
export const envValue = (readings: number, t: { count: number; sum: number } | undefined): string =>
  `${readings}:${t?.count ?? 0}:${t?.sum ?? 0}`

/** The environment profile's window rows: `<kind>:<id>|<window>|<start ms>` -> `readings:count:sum@site/token` (temperature). */
export async function envRows(pool: pg.Pool): Promise<Map<string, string>> {
  const rows = (
    await pool.query<{
      kind: string
      entity: string
      window_name: string
      start: string
      readings: number
      tc: number
      ts: number
      site: string
      token: string
    }>(
      `SELECT kind, entity, window_name, (extract(epoch FROM window_start) * 1000)::bigint AS start, (counts->>'readings')::int AS readings,
       (fields->'temperature'->>'count')::int AS tc, (fields->'temperature'->>'sum')::float8 AS ts, site, token FROM ${TABLES.windows}`,
    )
  ).rows
  return new Map(
    rows.map((r) => [
      windowKey(`${r.kind}:${r.entity}`, r.window_name, Number(r.start)),
      `${envValue(r.readings, { count: r.tc, sum: r.ts })}@${r.site}/${r.token}`,
    ]),
  )
}

/** Waits until no partition consumer (`pw_*`) on the sites' TLM streams and mirrors has messages pending. */
export async function waitQuiet(
  sites: Array<{ nc: NatsConnection; cfg: RuntimeConfig }>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let quietRounds = 0
  while (quietRounds < 2 && Date.now() < deadline) {
    let pending = 0
    for (const { nc, cfg } of sites) {
      const jsm = await jetstreamManager(nc, { timeout: 10_000 })
      for (const stream of [cfg.streams.tlm, peerStreams(cfg, cfg.peer?.site ?? '').tlm]) {
        for await (const ci of jsm.consumers.list(stream)) if (ci?.name?.startsWith('pw_')) pending += ci.num_pending
      }
    }
    quietRounds = pending === 0 ? quietRounds + 1 : 0
    await sleep(1_000)
  }
}

/**
 * Waits until every site's stray relay has forwarded what it holds: for each partition the site does not own,
 * the relay's record (`relay.<p>`) is at or past the last message of that partition in the site's TLM.
 */
export async function waitRelays(
  sites: Array<{ nc: NatsConnection; cfg: RuntimeConfig }>,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let lag = 0
    for (const { nc, cfg } of sites) {
      const jsm = await jetstreamManager(nc)
      const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
      const map = await new SiteMapView(cfg, kv, jsm).refresh()
      for (let p = 0; p < cfg.partitions; p++) {
        if (map.owners[p] === cfg.site) continue
        const last =
          (
            await jsm.streams
              .getMessage(cfg.streams.tlm, { last_by_subj: `tlm.${cfg.site}.${p}.>` })
              .catch(() => undefined)
          )?.seq ?? 0
        if (last === 0) continue
        if (((await readRelay(kv, p))?.state.last ?? 0) < last) lag++
      }
    }
    if (lag === 0 || Date.now() > deadline) return lag
    await sleep(500)
  }
}

/** A reading's body: the test profile's single field, or an `environment` reading (values from `v`). */
export function payload(r: { rid: string; ts: number; v: number }, production: boolean): Record<string, unknown> {
  if (!production) return { ts: r.ts, fields: { v: r.v }, profile: 'testsum', rid: r.rid }
  return {
    ts: r.ts,
    rid: r.rid,
    profile: 'environment',
    fields: {
      temperature: 15 + (r.v % 20),
      humidity: 30 + (r.v % 40),
      co2: 400 + r.v * 5,
      pressure: 1000,
      battery: 50 + (r.v % 50),
      status: 'ok',
    },
  }
}

export async function runFailoverScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const log = o.log ?? ((): void => undefined)
  const P = o.partitions ?? 8
  const E = o.entities ?? 200
  const latency = o.linkLatencyMs ?? 0
  const rateKbps = o.linkRateKbps ?? 0
  const production = o.profiles === 'production'
  // Teardown in the scenario's own `finally` (it also serves the benchmark, which has no tap test).
  const teardowns: Array<() => unknown> = []
  const two = await startTwoSites(
    { teardown: (fn) => teardowns.push(fn) },
    { partitions: P, tmpPrefix: 'pw-failover-', proxy: latency > 0 || rateKbps > 0, tickIntervalMs: 1_000 },
  ).catch(async (e: unknown) => {
    for (const fn of teardowns) await fn()
    throw e
  })
  const { sites, proxy, cleanups } = two
  proxy?.latency(latency, o.linkJitterMs ?? 0)
  proxy?.throttle(rateKbps)
  try {
    const conn = two.conn
    let ncA = two.nc.a
    const ncB = two.nc.b
    const cfgA = two.cfg.a
    const cfgB = two.cfg.b
    // Each site's worker is its own process (site a's is killed with -9; each gets a core of its own).
    const envOf = (c: RuntimeConfig): Record<string, string> => ({
      ...two.envOf(c),
      // The production run's event time goes 10 s per reading (about 20x real time), so a re-send straddling the
      // failover can arrive more than the default 10 minutes of event time after its first copy, where a re-send
      // is applied and counted as unverifiable (docs/runtime.md, "Reading ids"). The guarantee under test is
      // within the horizon: keep an hour of ids.
      ...(production ? { PITWALL_DEDUPE_HORIZON_MS: '3600000' } : {}),
    })
    const envA = envOf(cfgA)
    const script = distPath(production ? 'test/fixtures/worker-prod-main.js' : 'test/fixtures/worker-main.js')
    const profiles = production ? PROFILES : [sumProfile]
    let workerA: WorkerProc = spawnWorker(script, 'a-1', envA)
    cleanups.push(() => kill(workerA, 'SIGKILL'))
    const workerB = spawnWorker(script, 'b-1', envOf(cfgB))
    cleanups.push(() => kill(workerB, 'SIGTERM'))
    // Production: a projector pair per site (its OUT and its mirror of the peer's), each site its own database.
    const pools = new Map<string, pg.Pool>()
    const projectors = new Map<string, SiteProjector[]>()
    const startProjectors = async (site: string, nc: NatsConnection, cfg: RuntimeConfig): Promise<void> => {
      let pool = pools.get(site)
      if (!pool) pools.set(site, (pool = await siteDatabase(cleanups)))
      const log = process.env.PITWALL_TEST_LOGS ? undefined : silentLog
      projectors.set(site, await startProjectorPair(cleanups, nc, cfg, pool, log))
    }
    if (production) {
      await startProjectors('a', ncA, cfgA)
      await startProjectors('b', ncB, cfgB)
    }
    const controller = new SiteController({
      nc: ncB,
      cfg: cfgB,
      checkMs: 250,
      failoverAfterMs: o.failoverAfterMs > 0 ? o.failoverAfterMs : 0,
    })
    await controller.start()
    cleanups.push(() => controller.stop())

    // Routing as a gateway does it: the effective site map, read at b (its own map and its mirror of a's).
    const kvB = await new Kvm(ncB).open(cfgB.streams.stateBucket)
    const router = new SiteMapView(cfgB, kvB, await jetstreamManager(ncB))
    const refresh = setInterval(() => void router.refresh().catch(() => undefined), 200)
    cleanups.push(async () => clearInterval(refresh))
    const aliveA = { v: true }
    const acked: Acked[] = []
    const retry: Array<{ rid: string; id: string; ts: number; v: number }> = []
    // A probe entity in each of a's partitions: their readings show when b processes all of them again.
    const probes: Array<{ id: string; p: number }> = []
    for (const p of cfgA.homePartitions) {
      let i = 0
      while (partitionOf('sensor', `probe-${i}`, P) !== p) i++
      probes.push({ id: `probe-${i}`, p })
    }
    let stop = false
    let n = 0
    let probeN = 0
    const clock = new Array<number>(E).fill(1_700_000_000_000)
    const inFlightA = new Set<string>()
    const publish = async (r: { rid: string; id: string; ts: number; v: number }): Promise<void> => {
      const p = partitionOf('sensor', r.id, P)
      const site = router.ownerOf(p)
      const nc = site === 'a' ? ncA : ncB
      if (site === 'a' && !aliveA.v) {
        retry.push(r)
        return
      }
      if (site === 'a') inFlightA.add(r.rid)
      try {
        await jetstream(nc).publish(tlmSubject(site, p, 'sensor', r.id), JSON.stringify(payload(r, production)), {
          msgID: r.rid,
          timeout: 2_000,
        })
        acked.push({ rid: r.rid, site, at: Date.now(), r })
      } catch {
        retry.push(r)
      } finally {
        if (site === 'a') inFlightA.delete(r.rid)
      }
    }
    cleanups.push(async () => {
      stop = true
    })
    let retryEpoch = 0
    let retryAt = 0
    let straddleSent = false
    let straddled = 0
    let killedAt = Number.POSITIVE_INFINITY
    const producer = (async () => {
      const started = Date.now()
      const tickMs = 10
      let sent = 0
      while (!stop) {
        // At most 50 ms worth per tick: a producer that fell behind does not flood (it reports what it achieved).
        const due = Math.min(
          Math.ceil(o.ratePerS / 20),
          Math.floor(((Date.now() - started) / 1000) * o.ratePerS) - sent,
        )
        const batch: Array<Promise<void>> = []
        // Readings whose partition is still routed to the dead site wait in the queue; it is looked at again
        // when the map changes or every half second (no busy retry storm).
        // Devices re-send what they last sent to the lost site once the map points them at b: the first copies
        // were acked at a just before the kill (and mostly mirrored), the copies are acked at b as new (b's
        // duplicate window does not know a's stream). Sent before the queued readings, so their windows are open:
        // applied twice, a window would count one more than the reference.
        if (
          !aliveA.v &&
          !straddleSent &&
          router.map.epoch > 0 &&
          router.ownerOf(cfgA.homePartitions[0] as number) === 'b'
        ) {
          straddleSent = true
          const lastAtA = acked.filter((x) => x.site === 'a' && x.at <= killedAt).slice(-STRADDLE)
          for (const x of lastAtA)
            batch.push(
              publish(x.r).then(() => {
                straddled++
              }),
            )
        }
        if (retry.length > 0 && (router.map.epoch !== retryEpoch || Date.now() - retryAt > 500)) {
          retryEpoch = router.map.epoch
          retryAt = Date.now()
          const keep: typeof retry = []
          for (const r of retry.splice(0, retry.length)) {
            if (!aliveA.v && router.ownerOf(partitionOf('sensor', r.id, P)) === 'a') keep.push(r)
            else batch.push(publish(r))
          }
          for (const r of keep) retry.push(r)
        }
        for (let i = 0; i < due; i++) {
          const e = (n * 7919) % E
          // 10 s of event time per reading on the production profile, so its 1-minute windows close during the run.
          clock[e] = (clock[e] as number) + (production ? 10_000 : 1_000)
          batch.push(publish({ rid: `r${n}`, id: `s${e}`, ts: (clock[e] as number) - (n % 3) * 400, v: n % 100 }))
          n++
        }
        sent += due
        if (probeN * 50 < Date.now() - started) {
          for (const pr of probes)
            batch.push(publish({ rid: `p${probeN}-${pr.p}`, id: pr.id, ts: 1_700_000_000_000 + probeN * 50, v: 1 }))
          probeN++
        }
        void Promise.all(batch)
        await sleep(tickMs)
      }
    })()

    await sleep(o.beforeS * 1000)
    log(`killing site a (servers and worker) after ${acked.length} acked readings`)
    aliveA.v = false
    const killAt = Date.now()
    killedAt = killAt
    const inFlightAtKill = new Set(inFlightA)
    const lagAtKill = (await (await jetstreamManager(ncB)).streams.info(peerStreams(cfgB, 'a').tlm)).mirror?.lag ?? 0
    // The datacenter's end of the link dies with it: what was still in its buffers (the proxy's queue) is lost.
    proxy?.split()
    // a's projectors die with its datacenter (whatever they had not committed is read again when they restart).
    const deadProjectors = (projectors.get('a') ?? []).map(({ p }) =>
      Promise.race([p.stop().catch(() => undefined), sleep(2_000)]),
    )
    projectors.delete('a')
    await Promise.all([sites.kill('a'), kill(workerA, 'SIGKILL'), ...deadProjectors])
    log('site a killed')
    let ackedAtA = acked.filter((x) => x.site === 'a' && x.at <= killAt)
    let failoverMs = 0
    // The operator's command right away; closing the connection to the dead server (which may wait for
    // requests in flight) goes on meanwhile and is not part of the RTO.
    const closingA = Promise.race([ncA.close().catch(() => undefined), sleep(1_000)])
    if (o.failoverAfterMs === 0) {
      const r = await controller.failover()
      failoverMs = r.ms
    }
    await closingA
    log("waiting for b to process a's partitions")
    const qd = await queryDeps(ncB, cfgB, buildProfiles(profiles, cfgB))
    let rtoMs = -1
    let firstMs = -1
    const waiting = new Set(probes)
    for (let i = 0; i < 1200 && waiting.size > 0; i++) {
      await Promise.all(
        [...waiting].map(async (pr) => {
          const since = router.map.since[pr.p] ?? 0
          if (since === 0) return
          try {
            const s = await queryEntity(qd, 'sensor', pr.id)
            if (s.source === 'live' && epochOf(s.lastSeq) >= since) {
              waiting.delete(pr)
              if (firstMs < 0) firstMs = Date.now() - killAt
            }
          } catch {
            // Not yet owned.
          }
        }),
      )
      if (waiting.size === 0) rtoMs = Date.now() - killAt
      else await sleep(50)
      if (i % 100 === 99)
        log(
          `... ${Date.now() - killAt} ms after the kill: epoch ${router.map.epoch}, ${waiting.size} partitions to go, retry queue ${retry.length}`,
        )
    }
    if (failoverMs === 0) failoverMs = controller.status().lastMove?.ms ?? 0
    const move = controller.status().lastMove
    log(`b processes a's partitions again after ${rtoMs} ms (the first after ${firstMs} ms)`)
    await sleep(o.afterS * 1000)
    // What reached b of a's acked readings (b's mirror of a's TLM), read while a is still down: once a comes back
    // the mirror catches up with what a's disk kept.
    const mirrored = new Set((await readAll(ncB, peerStreams(cfgB, 'a').tlm)).map((m) => m.rid))
    // Publishes in flight at the kill whose ack still came (a stored them before it died) were acked at a too;
    // the others are unknown to the producer (stored or not).
    ackedAtA = ackedAtA.concat(acked.filter((x) => x.site === 'a' && x.at > killAt && inFlightAtKill.has(x.rid)))
    const unanswered = [...inFlightAtKill].filter((rid) => !ackedAtA.some((x) => x.rid === rid)).length

    let failbackDone = false
    let rpoReported = -1
    if (o.failback) {
      log('restarting site a and failing back')
      // a's datacenter is back on a link of normal speed.
      proxy?.throttle(0)
      proxy?.latency(0, 0)
      proxy?.heal()
      await sites.start('a')
      ncA = await conn('a')
      await waitForLink(ncB, 'a')
      await waitForLink(ncA, 'b')
      // What the operator sees at b before a's workers start ('not yet applied ... at a' in `site status`).
      rpoReported =
        (await pendingStrays(ncB, await jetstreamManager(ncB), kvB, cfgB, await router.refresh(), true)).bySite.a ?? 0
      log(`a is back: the system reports ${rpoReported} readings acknowledged at a and not applied (pendingStrays)`)
      workerA = spawnWorker(script, 'a-1', envA)
      if (production) await startProjectors('a', ncA, cfgA)
      // The operator runs failback at the home site once its mirrors caught up.
      await sleep(1_000)
      aliveA.v = true
      // Grace: longer than a producer's publish timeout (2 s) plus its map refresh (0.2 s), so nothing lands after the seal.
      const fb = await takeBack(ncA, cfgA, { graceMs: 3_000, timeoutMs: 60_000, log })
      log(`failback: epoch ${fb.epoch}, partitions ${fb.partitions.join(',')} in ${fb.ms} ms`)
      failbackDone = true
      await sleep((o.failbackS ?? 3) * 1000)
    }
    stop = true
    await producer
    for (let i = 0; i < 50 && retry.length > 0; i++) {
      for (const r of retry.splice(0, retry.length)) await publish(r)
    }
    // Let the owners apply everything: every partition consumer at both sites has nothing pending, twice.
    await waitQuiet([{ nc: ncB, cfg: cfgB }, ...(failbackDone ? [{ nc: ncA, cfg: cfgA }] : [])], 120_000)
    await sleep(1_000)
    // Each running projector caught up with its stream.
    for (const list of projectors.values()) {
      for (const { p, nc, stream } of list) {
        const last = (await (await jetstreamManager(nc)).streams.info(stream)).state.last_seq
        for (let i = 0; i < 600 && p.stats().lastSeq < last; i++) await sleep(100)
        if (p.stats().lastSeq < last) log(`projector of ${stream} behind: ${p.stats().lastSeq}/${last}`)
      }
    }

    const lost = [...new Map(ackedAtA.filter((x) => !mirrored.has(x.rid)).map((x) => [x.rid, x])).values()]
    const rpoMs = lost.length === 0 ? 0 : killAt - Math.min(...lost.map((x) => x.at))

    // Results vs the reference over each partition's chain, read where the partition now lives.
    const reader = failbackDone ? { nc: ncA, cfg: cfgA } : { nc: ncB, cfg: cfgB }
    const kvR = await new Kvm(reader.nc).open(reader.cfg.streams.stateBucket)
    const allOutputs: Output[] = []
    await windowOutputs(reader.nc, reader.cfg.streams.out, allOutputs)
    await windowOutputs(reader.nc, peerStreams(reader.cfg, reader.cfg.site === 'a' ? 'b' : 'a').out, allOutputs)
    let windowsWrong = 0
    let lostAfterMirror = 0
    let duplicates = 0
    let failbackLost = 0
    let checked = 0
    const lostRids = new Set(lost.map((x) => x.rid))
    const inChains = new Set<string>()
    let recovered = 0
    /** Production: the reference's closed windows, as the databases are compared. */
    const expected = new Map<string, string>()
    const viewR = new SiteMapView(reader.cfg, kvR, await jetstreamManager(reader.nc))
    const map = await viewR.refresh()
    if (process.env.PITWALL_TEST_LOGS) {
      const j = await jetstreamManager(reader.nc)
      for (const st of Object.values(peerStreams(reader.cfg, reader.cfg.site === 'a' ? 'b' : 'a'))) {
        const i = await j.streams.info(st)
        log(`${st}: last ${i.state.last_seq} msgs ${i.state.messages} lag ${i.mirror?.lag} active ${i.mirror?.active}`)
      }
    }
    for (let p = 0; p < P; p++) {
      // The chain as the current owner's record has it (the other site's record when it owns p).
      const owner = map.owners[p] as string
      const rec =
        owner === reader.cfg.site
          ? (await readRecord(kvR, p))?.record
          : (
              await readRecord(
                await new Kvm(jetstream(reader.nc, { domain: owner })).open(reader.cfg.streams.stateBucket),
                p,
              )
            )?.record
      const chain = rec?.segments ?? [{ epoch: 0, site: owner, from: 1 }]
      const msgs = await chainMessages(reader.nc, reader.cfg, p, chain)
      const outputs = chainOutputs(allOutputs, p, chain)
      // Production: the same outputs by window (entity, window, start), as the reference keys them.
      const envWindows = new Map<string, Output>()
      for (const o of outputs.values()) {
        const b = o.body as WindowBody
        envWindows.set(windowKey(`${o.kind}:${o.entity}`, b.window, b.start), o)
      }
      // Read from a's own TLM in a later tenure of a (not b's copy of a straddling re-send with the same rid).
      const aTenures = new Set(chain.filter((seg) => seg.site === 'a' && seg.epoch > 0).map((seg) => seg.epoch))
      for (const m of msgs) if (m.rid !== undefined && lostRids.has(m.rid) && aTenures.has(epochOf(m.seq))) recovered++
      for (const m of msgs) if (m.rid !== undefined) inChains.add(m.rid)
      if (production) {
        // The `environment` profile's windows against the docs-only reference over the chain (count, sum, min and
        // max of every field; a count short is a lost reading, a count over a duplicate, the rest wrong).
        const ref = referenceEnvironment(
          msgs.map((m) => ({
            seq: m.seq,
            kind: m.kind,
            id: m.id,
            ts: m.ts,
            fields: m.fields ?? {},
            ...(m.rid === undefined ? {} : { rid: m.rid }),
          })),
        )
        for (const [key, w] of ref.windows) {
          checked++
          expected.set(key, envValue(w.readings, w.fields.temperature))
          const body = envWindows.get(key)?.body as WindowBody | undefined
          const count = body?.fields.temperature?.count ?? 0
          const want = w.fields.temperature?.count ?? 0
          if (count < want) {
            if (failbackDone && chain.length > 2) failbackLost += want - count
            else lostAfterMirror += want - count
          } else if (count > want) duplicates += count - want
          else if (
            !body ||
            ENV_FIELDS.some((f) => {
              const a = body.fields[f]
              const b = w.fields[f]
              return (
                (a === undefined) !== (b === undefined) ||
                (a !== undefined &&
                  b !== undefined &&
                  (a.count !== b.count || a.sum !== b.sum || a.min !== b.min || a.max !== b.max))
              )
            })
          )
            windowsWrong++
        }
        continue
      }
      const ref = referenceSum(msgs, WINDOW_MS, LATENESS_MS)
      let missing = 0
      let wrong = 0
      for (const [key, w] of ref.windows) {
        checked++
        const got = outputs.get(key)
        const count = got ? (got.body as unknown as { fields: { v: { count: number } } }).fields.v.count : 0
        if (!got) missing++
        else if (count !== w.count) wrong++
        if (count < w.count) {
          if (failbackDone && chain.length > 2) failbackLost += w.count - count
          else lostAfterMirror += w.count - count
        }
        if (count > w.count) duplicates += count - w.count
      }
      if (process.env.PITWALL_TEST_LOGS)
        log(
          `p${p} owner ${owner} chain ${JSON.stringify(chain)} cursor ${rec?.cursor} windows ${ref.windows.size} missing ${missing} wrong ${wrong}`,
        )
    }
    // The producer's own log, independent of partition records and chains: per entity, every reading acked at
    // either site (once per rid; re-sends share it), less the recovery point when a never came back, must be
    // applied exactly once (count and sum in the owner's live state: in windows or late).
    const want = new Map<string, { count: number; sum: number }>()
    const seen = new Set<string>()
    for (const x of acked) {
      if (seen.has(x.rid) || (!failbackDone && lostRids.has(x.rid))) continue
      seen.add(x.rid)
      const w = want.get(x.r.id) ?? { count: 0, sum: 0 }
      w.count++
      w.sum += x.r.v
      want.set(x.r.id, w)
    }
    const qdR = await queryDeps(reader.nc, reader.cfg, buildProfiles(profiles, reader.cfg))
    let logMissing = 0
    let logExtra = 0
    // Production profiles: every reading of the log is in a partition's chain (read by its owner; the profile's
    // own tests check what the actor makes of it).
    if (production) logMissing = [...seen].filter((rid) => !inChains.has(rid)).length
    for (const [id, w] of production ? [] : want) {
      const st = (await queryEntity(qdR, 'sensor', id, 5_000)).state as { total: number; late: number; vsum: number }
      const got = st.total + st.late
      if (got < w.count) logMissing += w.count - got
      if (got > w.count) logExtra += got - w.count
      if (got === w.count && st.vsum !== w.sum) logExtra++
    }
    let databases: ScenarioResult['databases']
    for (const [site, pool] of production ? pools : []) {
      if (!projectors.has(site)) continue
      const rows = await envRows(pool)
      const d = { rows: rows.size, missing: 0, wrong: 0, extra: 0, retracted: 0 }
      for (const [k, v] of expected) {
        const got = rows.get(k)
        if (got === undefined) d.missing++
        else if (got.split('@')[0] !== v) {
          d.wrong++
          if (d.wrong <= 3) log(`${site}'s database: ${k} is ${got}, the reference says ${v}`)
        }
      }
      for (const k of rows.keys()) if (!expected.has(k)) d.extra++
      d.retracted = Number(
        (await pool.query<{ n: string }>(`SELECT coalesce(sum(retracted), 0) AS n FROM ${TABLES.seals}`)).rows[0]?.n ??
          0,
      )
      ;(databases ??= {})[site] = d
    }
    return {
      ...(databases ? { databases } : {}),
      producer_log: { entities: want.size, readings: seen.size, missing: logMissing, extra: logExtra },
      rate_per_s: o.ratePerS,
      rto_ms: rtoMs,
      rpo_readings: lost.length,
      rpo_ms: rpoMs,
      lost_after_mirror: lostAfterMirror,
      duplicates,
      failback_lost: failbackLost,
      windows_wrong: windowsWrong,
      acked: acked.length,
      acked_at_a_before_kill: ackedAtA.length,
      windows_checked: checked,
      failover_ms: failoverMs,
      detection: o.failoverAfterMs > 0 ? 'automatic' : 'operator',
      straddled_resends: straddled,
      rpo_recovered: recovered,
      link_latency_ms: latency,
      link_rate_kbps: rateKbps,
      rpo_reported: rpoReported,
      in_flight_at_kill: unanswered,
      mirror_lag_at_kill: lagAtKill,
      seal_age_ms: move?.sealAgeMs ?? -1,
      last_heard_ms: move?.lastHeardMs ?? -1,
      failover_after_kill_ms: move ? move.at - move.ms - killAt : -1,
      achieved_rate_per_s: Math.round(acked.filter((x) => x.at <= killAt).length / o.beforeS),
    }
  } finally {
    if (process.env.PITWALL_TEST_LOGS) {
      for (const r of sites.servers())
        log(
          `--- ${r.config.server}\n${r
            .log()
            .split('\n')
            .filter((l) => /WRN|ERR|irror/.test(l))
            .slice(-30)
            .join('\n')}`,
        )
    }
    for (const fn of teardowns) await fn()
  }
}
