/**
 * Moving partitions between the two sites (docs/sites.md): failover (the survivor takes the lost site's
 * partitions from its mirrors) and failback (a controlled handover back to the home site). Both only write
 * partition records and the site map; workers at each site follow the map (actors/worker.ts).
 *
 * Failover at S for lost site L, from S's own domain only (L is unreachable):
 *   1. epoch' = the next epoch in S's slot above the effective map's epoch;
 *   2. for each partition L owns: L's record from S's mirror of L's bucket; its chain sealed at the last
 *      sequence of S's mirror of L's TLM (what reached S); a new segment of S's own TLM from its next sequence;
 *      S's record written with that chain, L's cursor, a token above both sites' tokens, epoch';
 *   3. S's map: those partitions owned by S since epoch'. S's workers take them; gateways route to S.
 *   Readings L acked that never reached the mirror are the recovery point (counted by the failover test).
 *
 * Failback to home site H from S (both reachable; run at H):
 *   1. epoch'; H's map gives H's home partitions back to H since epoch' (S's workers release them, gateways
 *      route to H); H's workers wait: H's records are older than epoch';
 *   2. wait until S released them and a grace period for gateways passed, then seal S's segments at S's TLM
 *      end, and wait until H's mirror of S's bucket has S's final records (so S's snapshots are there too);
 *   3. H's records with the chain + a segment of H's TLM from the sequence it had at step 1, epoch'.
 *   No partition is processed by both sites: S released before H's record exists. No reading is lost: every
 *   reading routed to S is before the seal, every reading routed to H is after H's segment start.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { RuntimeConfig } from './config.js'
import { ConfigError, PitwallError, RuntimeErrorCodes } from './errors.js'
import { isCasConflict, type PartitionRecord, readRecord } from './placement.js'
import {
  defaultChain,
  nextInSlot,
  peerStreams,
  position,
  readOwnMap,
  readPeerHistory,
  readPeerKey,
  type Segment,
  SITE_MAP_KEY,
  type SiteMap,
  SiteMapView,
  siteSlot,
  syncPeerState,
} from './sitemap.js'
import { closeRelay, segmentStart } from './relay.js'
import { exportKey, partitionKey } from './subjects.js'

export interface MoveResult {
  epoch: number
  partitions: number[]
  /**
   * Failover: partitions whose latest mirrored record had a cursor past the seal (the state mirror was ahead of
   * the readings mirror), taken from an older revision of the record instead (a consistent cut).
   */
  rewound?: number[]
  /** Last sequence of the sealed segments' stream. */
  sealedAt: number
  /**
   * First sequence of new readings in the receiving site's TLM. A partition's segment starts earlier when this
   * site held readings of it that its stray relay had not forwarded yet (`strays`).
   */
  from: number
  /** Partitions whose new segment starts before `from`: how many sequences earlier (unforwarded strays). */
  strays?: Record<number, number>
  /**
   * Failover: messages of the peer's TLM past the seal that the mirror knew of but never received (the mirror's
   * lag as last reported by the server, `_sys.tick` messages included): readings acked at the lost site and not
   * replayed (the recovery point; the lost site's relay forwards them if it comes back, docs/sites.md).
   */
  unmirrored?: number
  /** Failover: how long before the move the mirror of the peer's TLM last heard from the peer. */
  lastHeardMs?: number
  /**
   * Failover: how long before the move the peer stored the newest message the mirror holds (the seal; mirrors
   * keep the origin's timestamps, so clocks of the two sites are compared). Over a slow link the mirror keeps
   * hearing from the peer while it is seconds behind, and what is on the wire is not in `unmirrored`: when this
   * is well above `lastHeardMs`, readings the peer stored in between may be missing (the RPO in time, an upper
   * bound if the peer was storing until it was lost; the exact count is known once it is back).
   */
  sealAgeMs?: number
  /** Time to write the records and the map; the moved partitions are processed again a heartbeat or more later. */
  ms: number
}

const td = new TextDecoder()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function peerOf(cfg: RuntimeConfig): { site: string; domain: string } {
  if (!cfg.peer) throw new ConfigError('peer.site', 'failover and failback need a peer site (PITWALL_PEER_SITE)')
  return cfg.peer
}

function sealChain(chain: readonly Segment[], to: number): Segment[] {
  const out = chain.map((s) => ({ ...s }))
  const last = out[out.length - 1]
  if (last && last.to === undefined) last.to = to
  return out
}

/** Writes (CAS) our record of p for a new tenure. */
async function writeTenure(kv: KV, p: number, rec: PartitionRecord): Promise<void> {
  const cur = await readRecord(kv, p)
  const claims = cur?.record.claims
  const next: PartitionRecord = {
    ...rec,
    ...(claims ? { claims } : {}),
    token: Math.max(rec.token, cur?.record.token ?? 0),
  }
  if (cur) await kv.update(partitionKey(p), JSON.stringify(next), cur.revision)
  else await kv.create(partitionKey(p), JSON.stringify(next))
  await kv.put(exportKey(partitionKey(p)), JSON.stringify(next))
}

async function writeMap(kv: KV, map: SiteMap): Promise<void> {
  const cur = await readOwnMap(kv)
  try {
    if (cur) await kv.update(SITE_MAP_KEY, JSON.stringify(map), cur.revision)
    else await kv.create(SITE_MAP_KEY, JSON.stringify(map))
    await kv.put(exportKey(SITE_MAP_KEY), JSON.stringify(map))
  } catch (err) {
    if (isCasConflict(err))
      throw new PitwallError(
        RuntimeErrorCodes.FENCED,
        'the site map changed while this move was being prepared; run it again',
      )
    throw err
  }
}

/**
 * The peer's record of p to take over from: the newest revision our mirror holds whose cursor is at or before
 * the seal. The latest one may be past it when the state mirror ran ahead of the readings mirror (a link cut
 * or a loss while TLM was lagging): its cursor and the snapshots written with it reflect readings this site
 * does not have. An older revision is a consistent cut: every actor's newest snapshot at or before the seal
 * (the partition runner picks those, `inChain`) plus the readings after its cursor, which the mirror holds.
 */
async function recordAtSeal(
  js: JetStreamClient,
  jsm: JetStreamManager,
  cfg: RuntimeConfig,
  p: number,
  sealedAt: number,
): Promise<{ record: PartitionRecord | undefined; rewound: boolean }> {
  const m = await readPeerKey(jsm, cfg, partitionKey(p))
  const latest = m ? (JSON.parse(td.decode(m.data)) as PartitionRecord) : undefined
  const bound = (r: PartitionRecord): number =>
    position((r.segments ?? defaultChain(cfg.peer?.site ?? '')).at(-1)?.epoch ?? 0, sealedAt)
  if (!latest || latest.cursor <= bound(latest)) return { record: latest, rewound: false }
  const revisions = (await readPeerHistory(js, jsm, cfg, partitionKey(p))).flatMap((h) =>
    h.data ? [JSON.parse(td.decode(h.data)) as PartitionRecord] : [],
  )
  const fit = revisions.filter((r) => r.cursor <= bound(r)).at(-1)
  // None left in the history (5 revisions): the oldest is the least wrong; its actors past the seal replay from nothing.
  return { record: fit ?? revisions[0] ?? latest, rewound: true }
}

/** "0-7,12": a sorted list of partitions as ranges. */
export function ranges(ps: readonly number[]): string {
  const out: string[] = []
  const sorted = [...ps].sort((a, b) => a - b)
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i] as number
    let b = a
    while (sorted[i + 1] === b + 1) b = sorted[++i] as number
    out.push(a === b ? String(a) : `${a}-${b}`)
  }
  return out.join(',')
}

/** True at most once per `ms` (progress lines while a wait goes on). */
function throttle(ms: number): () => boolean {
  let last = Date.now()
  return () => {
    if (Date.now() - last < ms) return false
    last = Date.now()
    return true
  }
}

/** Messages each local mirror of the peer's streams is behind, as last reported by the server. */
export async function mirrorLags(
  jsm: JetStreamManager,
  cfg: RuntimeConfig,
  peer: string,
): Promise<Record<string, number | undefined>> {
  const out: Record<string, number | undefined> = {}
  for (const name of Object.values(peerStreams(cfg, peer)))
    out[name] = (await jsm.streams.info(name).catch(() => undefined))?.mirror?.lag
  return out
}

function lagText(lags: Record<string, number | undefined>): string {
  return `lag ${Object.entries(lags)
    .map(([k, v]) => `${k} ${v ?? '?'}`)
    .join(', ')}`
}

async function lastSeq(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.last_seq
}

/** Failover: this site takes every partition the effective map gives to the peer. */
export async function takeOver(nc: NatsConnection, cfg: RuntimeConfig, reason = 'failover'): Promise<MoveResult> {
  const started = Date.now()
  const peer = peerOf(cfg)
  const jsm = await jetstreamManager(nc, { timeout: 10_000 })
  const js = jetstream(nc, { timeout: 10_000 })
  const kv = await new Kvm(js).open(cfg.streams.stateBucket)
  const map = await new SiteMapView(cfg, kv, jsm).refresh()
  const parts = map.owners.flatMap((o, p) => (o === peer.site ? [p] : []))
  const epoch = nextInSlot(map.epoch, siteSlot(cfg))
  // Our relay stops forwarding them BEFORE the seal is read: a stray it forwarded is then either in the peer's
  // stream up to what our mirror holds (before the seal) or in its unmirrored tail (counted in `unmirrored`), and
  // what it did not forward is read by our new segments (actors/relay.ts).
  const unforwarded = new Map<number, number>()
  await Promise.all(
    parts.map(async (p) => {
      unforwarded.set(p, await closeRelay(kv, p))
    }),
  )
  const [mirror, ownLast] = await Promise.all([
    jsm.streams.info(peerStreams(cfg, peer.site).tlm),
    lastSeq(jsm, cfg.streams.tlm),
  ])
  const sealedAt = mirror.state.last_seq
  // What the mirror last heard of the peer's TLM: readings past the seal were acked there and never reached us.
  const unmirrored = mirror.mirror?.lag ?? 0
  const lastHeardMs = mirror.mirror && mirror.mirror.active >= 0 ? Math.round(mirror.mirror.active / 1e6) : undefined
  const from = ownLast + 1
  const newest = mirror.state.messages > 0 ? Date.parse(mirror.state.last_ts) : Number.NaN
  const heard = {
    ...(lastHeardMs === undefined ? {} : { lastHeardMs }),
    ...(Number.isFinite(newest) ? { sealAgeMs: Math.max(0, started - newest) } : {}),
  }
  if (parts.length === 0)
    return { epoch: map.epoch, partitions: [], sealedAt, from, ms: Date.now() - started, unmirrored, ...heard }
  // One record per partition, independent keys: written concurrently (a failover's time is its RTO).
  const rewound: number[] = []
  const strays: Record<number, number> = {}
  await Promise.all(
    parts.map(async (p) => {
      const cut = await recordAtSeal(js, jsm, cfg, p, sealedAt)
      if (cut.rewound) rewound.push(p)
      const theirs = cut.record
      const chain = sealChain(theirs?.segments ?? defaultChain(peer.site), sealedAt)
      // Readings of p that devices sent to this site while the peer owned it and that our relay did not forward:
      // the new segment starts at the first of them, so they are read once, here.
      const start = segmentStart(cfg.site, chain, unforwarded.get(p) ?? from)
      if (start < from) strays[p] = from - start
      const segments = [...chain, { epoch, site: cfg.site, from: start }]
      await writeTenure(kv, p, {
        owner: null,
        token: theirs?.token ?? 0,
        cursor: theirs?.cursor ?? 0,
        renewedAt: Date.now(),
        ttlMs: cfg.leaseTtlMs,
        ...(theirs?.dormant ? { dormant: theirs.dormant } : {}),
        epoch,
        segments,
      })
    }),
  )
  const owners = [...map.owners]
  const since = [...map.since]
  for (const p of parts) {
    owners[p] = cfg.site
    since[p] = epoch
  }
  await writeMap(kv, { epoch, owners, since, at: Date.now(), reason })
  return {
    epoch,
    partitions: parts,
    sealedAt,
    from,
    ms: Date.now() - started,
    unmirrored,
    ...heard,
    ...(rewound.length > 0 ? { rewound: rewound.sort((a, b) => a - b) } : {}),
    ...(Object.keys(strays).length > 0 ? { strays } : {}),
  }
}

export interface FailbackOptions {
  /**
   * How long after the map changed a reading may still land in the old site's stream: a producer's map
   * refresh (1 s for gateways) plus its publish timeout (5 s for gateways). Default 6.5 s.
   */
  graceMs?: number
  /** Give up waiting for the peer to release or for mirrors after this long. */
  timeoutMs?: number
  log?: (msg: string) => void
}

/** Failback: this (home) site takes its home partitions back from the peer, in a controlled handover. */
export async function takeBack(
  nc: NatsConnection,
  cfg: RuntimeConfig,
  opts: FailbackOptions = {},
): Promise<MoveResult> {
  const started = Date.now()
  const peer = peerOf(cfg)
  const graceMs = opts.graceMs ?? 6_500
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  const log = opts.log ?? ((): void => undefined)
  const jsm = await jetstreamManager(nc, { timeout: 10_000 })
  const kv = await new Kvm(jetstream(nc, { timeout: 10_000 })).open(cfg.streams.stateBucket)
  // The peer's own domain, over the leafnode link: its records are read directly, not from our mirror.
  const peerJsm = await jetstreamManager(nc, { domain: peer.domain, timeout: 10_000 })
  const peerKv = await new Kvm(jetstream(nc, { domain: peer.domain, timeout: 10_000 })).open(cfg.streams.stateBucket)
  // Decide on the peer's latest map: our mirror of its bucket must have caught up first.
  const sync = await syncPeerState(nc, jsm, cfg, opts.timeoutMs ?? 60_000)
  if (sync !== 'synced') {
    throw new PitwallError(
      RuntimeErrorCodes.NATS_UNREACHABLE,
      `failback needs the peer site ${peer.site} reachable and our mirror of its state current (${sync})`,
      { retryable: true },
    )
  }
  const map = await new SiteMapView(cfg, kv, jsm).refresh()
  const home = new Set(cfg.homePartitions)
  const parts = map.owners.flatMap((o, p) => (o === peer.site && home.has(p) ? [p] : []))
  const from = (await lastSeq(jsm, cfg.streams.tlm)) + 1
  if (parts.length === 0) return { epoch: map.epoch, partitions: [], sealedAt: 0, from, ms: Date.now() - started }
  const epoch = nextInSlot(map.epoch, siteSlot(cfg))
  const owners = [...map.owners]
  const since = [...map.since]
  for (const p of parts) {
    owners[p] = cfg.site
    since[p] = epoch
  }
  await writeMap(kv, { epoch, owners, since, at: Date.now(), reason: 'failback' })
  // Our relay stops forwarding them; what it did not forward is read by our new segments.
  const unforwarded = new Map<number, number>()
  for (const p of parts) unforwarded.set(p, await closeRelay(kv, p))
  const mapAt = Date.now()
  const M = parts.length
  log(
    `map written: epoch ${epoch} gives partitions ${ranges(parts)} back to ${cfg.site} (${M} partitions); producers now route them to ${cfg.site}`,
  )
  log(
    `new readings of these partitions start at ${cfg.site}'s TLM sequence ${from}; waiting for ${peer.site} to release them`,
  )
  const tick = throttle(1_000)
  let releasedBefore = -1
  for (;;) {
    const recs = await Promise.all(parts.map((p) => readRecord(peerKv, p)))
    const released = parts.filter((_, i) => {
      const r = recs[i]
      return !r || r.record.owner === null || r.record.renewedAt + r.record.ttlMs < Date.now()
    })
    if (released.length !== releasedBefore || tick()) {
      log(
        `${peer.site} released ${released.length}/${M} partitions${released.length > 0 && released.length < M ? ` (${ranges(released)})` : ''}`,
      )
      releasedBefore = released.length
    }
    if (released.length === M) break
    if (Date.now() > deadline)
      throw new PitwallError(
        RuntimeErrorCodes.SHUTTING_DOWN,
        `${peer.site} did not release partitions in time (released ${released.length}/${M})`,
        { retryable: true },
      )
    await sleep(100)
  }
  // The grace period: producers still routing by the old map may land readings in the peer's TLM until then.
  for (let left = mapAt + graceMs - Date.now(); left > 0; left = mapAt + graceMs - Date.now()) {
    log(
      `grace period: ${(left / 1000).toFixed(1)} s left for producers to follow the map (readings sent to ${peer.site} until the seal are kept)`,
    )
    await sleep(Math.min(left, 1_000))
  }
  const sealedAt = await lastSeq(peerJsm, cfg.streams.tlm)
  log(
    `seals: ${peer.site}'s segments of ${M} partitions sealed at ${peer.site}'s TLM sequence ${sealedAt}; ${lagText(await mirrorLags(jsm, cfg, peer.site))}`,
  )
  let written = 0
  const strays: Record<number, number> = {}
  for (const p of parts) {
    const theirs = await readRecord(peerKv, p)
    // Our mirror of the peer's bucket must hold this revision (and so every snapshot written before it).
    const wait = throttle(1_000)
    for (;;) {
      const m = await readPeerKey(jsm, cfg, partitionKey(p))
      // (Compared by content: the peer's final record, once it is here, follows every snapshot it wrote.)
      if (!theirs || (m && td.decode(m.data) === JSON.stringify(theirs.record))) break
      if (Date.now() > deadline) {
        const info = await jsm.streams.info(peerStreams(cfg, peer.site).state).catch(() => undefined)
        throw new PitwallError(
          RuntimeErrorCodes.SHUTTING_DOWN,
          `mirror of ${peer.site}'s state did not catch up in time ` +
            `(partition ${p}: mirror at ${info?.state.last_seq ?? '?'} lag ${info?.mirror?.lag ?? '?'}, has ${m ? td.decode(m.data) : 'nothing'}, want ${JSON.stringify(theirs.record)} rev ${theirs.revision})`,
          { retryable: true },
        )
      }
      if (wait())
        log(
          `partition ${p}: waiting for ${peer.site}'s final record in our mirror; ${lagText(await mirrorLags(jsm, cfg, peer.site))}`,
        )
      await sleep(50)
    }
    const chain = sealChain(theirs?.record.segments ?? defaultChain(peer.site), sealedAt)
    const start = segmentStart(cfg.site, chain, unforwarded.get(p) ?? from)
    if (start < from) strays[p] = from - start
    const segments = [...chain, { epoch, site: cfg.site, from: start }]
    await writeTenure(kv, p, {
      owner: null,
      token: theirs?.record.token ?? 0,
      cursor: theirs?.record.cursor ?? 0,
      renewedAt: Date.now(),
      ttlMs: cfg.leaseTtlMs,
      ...(theirs?.record.dormant ? { dormant: theirs.record.dormant } : {}),
      epoch,
      segments,
    })
    written++
    if (written === M || tick())
      log(`records written: ${written}/${M} (${cfg.site}'s workers take each partition at their next heartbeat)`)
  }
  log(`${lagText(await mirrorLags(jsm, cfg, peer.site))}`)
  return {
    epoch,
    partitions: parts,
    sealedAt,
    from,
    ms: Date.now() - started,
    ...(Object.keys(strays).length > 0 ? { strays } : {}),
  }
}
