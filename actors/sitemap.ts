/**
 * Two sites: positions, segment chains, the site map, and the peer's mirrored state (docs/sites.md).
 *
 * - A partition's input is a chain of segments. A segment is a run of one site's TLM stream for that partition
 *   (`tlm.<site>.<p>.*.*`) that began at an epoch: `{epoch, site, from, to?}`; `to` is set when it is sealed (a
 *   failover or a handover ended it). The chain is carried in the partition record and grows by one segment
 *   per move between sites.
 * - A position is `epoch * 2^40 + seq`: one number that orders every message of the chain. Mirrors keep the
 *   origin's sequence numbers, so a message has the same position at both sites; epoch 0 positions are plain
 *   stream sequences (a single site never leaves epoch 0). Actors record the last position they applied, so a
 *   replay on the other site skips exactly what was already applied.
 * - The site map `{epoch, owners[p], since[p]}` says which site owns each partition. Each site writes its own
 *   (key `site.map` in its state bucket) and reads the peer's through the mirror of the peer's bucket; the map
 *   with the higher epoch wins. Epochs are strided by site (site i only writes epochs = i mod 2), so two maps
 *   never tie. A worker takes partition p only when the map gives p to its site and its site's record of p has
 *   `epoch >= since[p]` (the controller wrote the record for this tenure).
 * - Fencing tokens are strided the same way, so tokens of one partition never collide across sites.
 */
import { jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { type KV, Kvm } from '@nats-io/kv'
import type { RuntimeConfig } from './config.js'
import { PitwallError, RuntimeErrorCodes } from './errors.js'
import { exportKey } from './subjects.js'

/** Sequence numbers below 2^40 (10^12) per stream; epochs up to 8191 keep positions exact in a double. */
export const POS_SHIFT = 2 ** 40
export const position = (epoch: number, seq: number): number => epoch * POS_SHIFT + seq
export const epochOf = (pos: number): number => Math.floor(pos / POS_SHIFT)
export const seqOf = (pos: number): number => pos - epochOf(pos) * POS_SHIFT

export interface Segment {
  epoch: number
  /** Site whose TLM holds this segment (read locally from that site's stream or its mirror). */
  site: string
  /** First stream sequence of the segment (inclusive). */
  from: number
  /** Last stream sequence (inclusive) once sealed; messages after it are not part of the chain. */
  to?: number
}

export interface SiteMap {
  epoch: number
  /** Owning site per partition. */
  owners: string[]
  /** Epoch at which each partition's owner last changed. */
  since: number[]
  at: number
  /** Why this epoch began (failover, failback, initial). */
  reason: string
}

export const SITE_MAP_KEY = 'site.map'

/**
 * What a site is doing in the site map (docs/sites.md): `survivor` when it owns a partition of the peer's home,
 * `degraded` when the peer owns one of its own home, else `normal`. The controller's /status and metric and
 * `pitwall site status` all say this; the rule is here once.
 */
export const SITE_ROLES = ['normal', 'survivor', 'degraded'] as const
export type SiteRole = (typeof SITE_ROLES)[number]

/** The role of `site`, whose home partitions are `home`, in map `m`. */
export function siteRole(m: Pick<SiteMap, 'owners'>, site: string, home: Iterable<number>): SiteRole {
  const h = new Set(home)
  if (m.owners.some((s, p) => s === site && !h.has(p))) return 'survivor'
  return m.owners.some((s, p) => s !== site && h.has(p)) ? 'degraded' : 'normal'
}

export function defaultChain(site: string): Segment[] {
  return [{ epoch: 0, site, from: 1 }]
}

/** The segment a position belongs to (undefined when the chain has no segment of that epoch). */
export function segmentOf(chain: readonly Segment[], pos: number): Segment | undefined {
  const e = epochOf(pos)
  return chain.find((s) => s.epoch === e)
}

/**
 * True when `pos` is a position of the chain: 0, or inside a segment (not past its seal). Snapshots written
 * by an owner that went on past a seal (a stale site in a split, or the unmirrored tail of a lost site) are not.
 */
export function inChain(chain: readonly Segment[], pos: number): boolean {
  if (pos === 0) return true
  const s = segmentOf(chain, pos)
  return s !== undefined && (s.to === undefined || seqOf(pos) <= s.to)
}

/** The site index (0 or 1: the sites' names sorted) and the stride of epochs and tokens. */
export function siteSlot(cfg: Pick<RuntimeConfig, 'site' | 'peer'>): { index: number; stride: number } {
  if (!cfg.peer) return { index: 0, stride: 1 }
  return { index: [cfg.site, cfg.peer.site].sort().indexOf(cfg.site), stride: 2 }
}

/** The smallest number above `after` that belongs to this site's slot. */
export function nextInSlot(after: number, slot: { index: number; stride: number }): number {
  let n = after + 1
  while (n % slot.stride !== slot.index) n++
  return n
}

/** Names of the local mirrors of the peer's assets (created by provisioning when a peer is configured). */
export function peerStreams(
  cfg: Pick<RuntimeConfig, 'streams'>,
  peer: string,
): { tlm: string; out: string; state: string } {
  return { tlm: `${cfg.streams.tlm}_${peer}`, out: `${cfg.streams.out}_${peer}`, state: `STATE_${peer}` }
}

/** The stream (in this site's domain) that holds a segment: our own TLM, or our mirror of the peer's. */
export function segmentStream(cfg: Pick<RuntimeConfig, 'site' | 'peer' | 'streams'>, seg: Segment): string {
  if (seg.site === cfg.site) return cfg.streams.tlm
  if (cfg.peer && seg.site === cfg.peer.site) return peerStreams(cfg, seg.site).tlm
  throw new PitwallError(
    RuntimeErrorCodes.STREAM_INCOMPATIBLE,
    `segment of site ${seg.site} is neither this site (${cfg.site}) nor its peer`,
  )
}

/** The initial map: each site owns its home partitions at epoch 0. */
export function initialMap(cfg: Pick<RuntimeConfig, 'site' | 'peer' | 'partitions' | 'homePartitions'>): SiteMap {
  const home = new Set(cfg.homePartitions)
  const owners = Array.from({ length: cfg.partitions }, (_, p) => (home.has(p) || !cfg.peer ? cfg.site : cfg.peer.site))
  return { epoch: 0, owners, since: owners.map(() => 0), at: 0, reason: 'initial' }
}

const td = new TextDecoder()

function decodeMap(data: Uint8Array): SiteMap | undefined {
  try {
    const m = JSON.parse(td.decode(data)) as SiteMap
    return typeof m.epoch === 'number' && Array.isArray(m.owners) && Array.isArray(m.since) ? m : undefined
  } catch {
    return undefined
  }
}

/** Our own map (undefined when never written). */
export async function readOwnMap(kv: KV): Promise<{ map: SiteMap; revision: number } | undefined> {
  const e = await kv.get(SITE_MAP_KEY)
  if (!e || e.operation !== 'PUT') return undefined
  const map = decodeMap(e.value)
  return map ? { map, revision: e.revision } : undefined
}

/**
 * A key of the peer's state bucket, read from our mirror of it (undefined when absent or deleted). Snapshots
 * are mirrored as written; partition records and the site map through their exported copies (exportKey).
 */
export async function readPeerKey(
  jsm: JetStreamManager,
  cfg: Pick<RuntimeConfig, 'streams' | 'peer'>,
  key: string,
): Promise<StoredMsg | undefined> {
  if (!cfg.peer) return undefined
  const stored = key.startsWith('snap.') ? key : exportKey(key)
  try {
    const m = await jsm.streams.getMessage(peerStreams(cfg, cfg.peer.site).state, {
      last_by_subj: `$KV.${cfg.streams.stateBucket}.${stored}`,
    })
    if (!m) return undefined
    const op = m.header?.get('KV-Operation')
    return op === 'DEL' || op === 'PURGE' ? undefined : m
  } catch (err) {
    if (/no message found|not found|10037/i.test(String(err))) return undefined
    throw err
  }
}

/**
 * Every revision of a key the mirror of the peer's bucket still holds (the bucket's history, 5), oldest first,
 * deletes included (`data` undefined). For a state cut: the newest revision that is still in a chain.
 */
export async function readPeerHistory(
  js: JetStreamClient,
  jsm: JetStreamManager,
  cfg: Pick<RuntimeConfig, 'streams' | 'peer'>,
  key: string,
): Promise<Array<{ seq: number; data: Uint8Array | undefined }>> {
  if (!cfg.peer) return []
  const stream = peerStreams(cfg, cfg.peer.site).state
  const subject = `$KV.${cfg.streams.stateBucket}.${key.startsWith('snap.') ? key : exportKey(key)}`
  let last: StoredMsg | null
  try {
    last = await jsm.streams.getMessage(stream, { last_by_subj: subject })
  } catch (err) {
    if (/no message found|not found|10037/i.test(String(err))) return []
    throw err
  }
  if (!last) return []
  const out: Array<{ seq: number; data: Uint8Array | undefined }> = []
  // (One subject as a string: a list needs nats-server 2.10.)
  const c = await js.consumers.get(stream, { filter_subjects: subject })
  const it = await c.consume({ max_messages: 16 })
  const idle = setTimeout(() => it.stop(), 10_000)
  try {
    for await (const m of it) {
      const op = m.headers?.get('KV-Operation')
      out.push({ seq: m.seq, data: op === 'DEL' || op === 'PURGE' ? undefined : m.data })
      if (m.seq >= last.seq) break
    }
  } finally {
    clearTimeout(idle)
    it.stop()
  }
  return out
}

export async function readPeerMap(
  jsm: JetStreamManager,
  cfg: Pick<RuntimeConfig, 'streams' | 'peer'>,
): Promise<SiteMap | undefined> {
  const m = await readPeerKey(jsm, cfg, SITE_MAP_KEY)
  return m ? decodeMap(m.data) : undefined
}

/** The map that holds: the higher epoch of ours, the peer's (mirrored) and the initial one. */
export function effectiveMap(initial: SiteMap, own: SiteMap | undefined, peer: SiteMap | undefined): SiteMap {
  let best = initial
  for (const m of [own, peer]) if (m && m.epoch > best.epoch && m.owners.length === initial.owners.length) best = m
  return best
}

/**
 * Reads and caches the effective map; `refresh()` re-reads (workers and gateways call it about once per
 * heartbeat). Without a peer the map is the initial one and never changes.
 */
export class SiteMapView {
  private current: SiteMap
  private readonly initial: SiteMap
  constructor(
    private readonly cfg: RuntimeConfig,
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
  ) {
    this.initial = initialMap(cfg)
    this.current = this.initial
  }
  get map(): SiteMap {
    return this.current
  }
  ownerOf(partition: number): string {
    return this.current.owners[partition] ?? this.cfg.site
  }
  async refresh(): Promise<SiteMap> {
    if (!this.cfg.peer) return this.current
    const [own, peer] = await Promise.all([readOwnMap(this.kv), readPeerMap(this.jsm, this.cfg).catch(() => undefined)])
    this.current = effectiveMap(this.initial, own?.map, peer)
    return this.current
  }
}

/** True when the peer's JetStream API answers within `timeoutMs` (the leafnode link and the peer are up). */
export async function peerReachable(nc: NatsConnection, peerDomain: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const jsm = await jetstreamManager(nc, { domain: peerDomain, timeout: timeoutMs, checkAPI: false })
    return (await jsm.getAccountInfo()).domain === peerDomain
  } catch {
    return false
  }
}

/** How long the gate waits for the peer's JetStream to answer over the link. */
const PEER_REQUEST_TIMEOUT_MS = 3_000

/**
 * Before a worker takes partitions: when the peer is reachable, waits until our mirror of its state bucket has
 * caught up (a site coming back must see the peer's newer map before it acts on its own old one). When the
 * peer is unreachable there is nothing newer to learn (the split rules in docs/sites.md apply).
 */
export async function syncPeerState(
  nc: NatsConnection,
  jsm: JetStreamManager,
  cfg: RuntimeConfig,
  timeoutMs = 10_000,
): Promise<'synced' | 'peer-unreachable' | 'timeout'> {
  if (!cfg.peer) return 'synced'
  const deadline = Date.now() + timeoutMs
  const name = peerStreams(cfg, cfg.peer.site).state
  // A request over the link: a WAN's round trip (hundreds of ms) on a loaded machine can pass 1 s, and a cut link
  // answers at once (no responders), so the wait only costs a slow link.
  if (!(await peerReachable(nc, cfg.peer.domain, PEER_REQUEST_TIMEOUT_MS))) return 'peer-unreachable'
  // The peer keeps writing (checkpoints): wait for what it had when we asked, not for a moving end. Our mirror
  // carries only `snap.>` (records and the map as exported copies): wait for the peer's last message there, not
  // for its bucket's end, which other keys (`deployment`) may hold and the mirror never receives.
  let target: number
  try {
    const j = await jetstreamManager(nc, { domain: cfg.peer.domain, timeout: PEER_REQUEST_TIMEOUT_MS, checkAPI: false })
    const last = await j.streams.getMessage(`KV_${cfg.streams.stateBucket}`, {
      last_by_subj: `$KV.${cfg.streams.stateBucket}.snap.>`,
    })
    if (!last) return 'synced'
    target = last.seq
  } catch {
    // The peer's bucket may not exist yet (it never started) or holds no snapshot yet: nothing to wait for.
    return 'synced'
  }
  for (;;) {
    const mine = await jsm.streams.info(name).catch(() => undefined)
    if (mine && mine.state.last_seq >= target) return 'synced'
    if (Date.now() > deadline) return 'timeout'
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Key (this site's state bucket) of the operator's override `pitwall site assume-peer-lost`: this site's
 * workers may take partitions without the peer's map. Written with a plain put, so the bucket's history (5
 * revisions) is the audit trail of who said so, when and why.
 */
export const SITE_OVERRIDE_KEY = 'site.override'
/** How long an override lets workers start without the peer's map unless the operator says otherwise. */
export const OVERRIDE_DEFAULT_MS = 60 * 60_000

export interface SiteOverride {
  /** The site the override is for (a bucket copied to the wrong site does not open its gate). */
  site: string
  by: string
  host: string
  at: number
  /** Workers starting after this no longer open on it (a forgotten override must not hide the next outage). */
  until: number
  reason: string
}

/** The override in force for `site` (undefined when absent, unreadable, for another site or expired). */
export async function readOverride(kv: KV, site: string, now = Date.now()): Promise<SiteOverride | undefined> {
  const e = await kv.get(SITE_OVERRIDE_KEY)
  if (!e || e.operation !== 'PUT') return undefined
  try {
    const o = JSON.parse(td.decode(e.value)) as SiteOverride
    return o.site === site && typeof o.until === 'number' && o.until > now ? o : undefined
  } catch {
    return undefined
  }
}

export async function writeOverride(kv: KV, o: SiteOverride): Promise<number> {
  return await kv.put(SITE_OVERRIDE_KEY, JSON.stringify(o))
}

export type GateReason = 'synced' | 'first-start' | 'override' | 'moved' | 'peer-unreachable' | 'timeout'
export interface GateState {
  open: boolean
  reason: GateReason
  override?: SiteOverride
}

/**
 * The peer-map gate: may this site's workers take partitions? A site that ran before may hold a stale map (the
 * peer may have failed over while it was gone, and a restarted site cannot tell a dead link from a dead peer),
 * so it waits for the peer's map. Open when:
 * - synced: the peer's JetStream answers over the link and our mirror of its state bucket caught up with it
 *   (so the next map refresh sees the peer's epoch);
 * - first-start: nothing of either site's state exists here (no own map, no partition record, no mirrored map
 *   of the peer): a new deployment, nothing to be stale about;
 * - override: the operator's `pitwall site assume-peer-lost` is in force (a peer gone for good);
 * - moved: this site's own map was rewritten since the wait began (`ownAtStart`, its revision then) at an epoch
 *   above our mirror of the peer's map, e.g. a failover by this site's controller or operator: the site acted
 *   on what it knows, and a worker held at the gate would leave the partitions it took with no owner. A map that
 *   was already newer when the wait began does not count: a site coming back must not act on it.
 * Otherwise closed, with why (the link or peer is down, or the mirror did not catch up in time).
 */
export async function peerMapGate(
  nc: NatsConnection,
  jsm: JetStreamManager,
  kv: KV,
  cfg: RuntimeConfig,
  syncTimeoutMs = 5_000,
  ownAtStart?: number,
): Promise<GateState> {
  if (!cfg.peer) return { open: true, reason: 'synced' }
  const sync = await syncPeerState(nc, jsm, cfg, syncTimeoutMs)
  if (sync === 'synced') return { open: true, reason: 'synced' }
  const override = await readOverride(kv, cfg.site)
  if (override) return { open: true, reason: 'override', override }
  if (!(await ranBefore(kv, jsm, cfg))) return { open: true, reason: 'first-start' }
  if (ownAtStart !== undefined && (await movedSince(kv, jsm, cfg, ownAtStart))) return { open: true, reason: 'moved' }
  return { open: false, reason: sync }
}

/** True when this site's map was rewritten since revision `ownAtStart` at an epoch above the mirrored peer map. */
async function movedSince(kv: KV, jsm: JetStreamManager, cfg: RuntimeConfig, ownAtStart: number): Promise<boolean> {
  const own = await readOwnMap(kv)
  if (!own || own.revision === ownAtStart) return false
  const peer = await readPeerMap(jsm, cfg).catch(() => undefined)
  return own.map.epoch > (peer?.epoch ?? 0)
}

/** True when this site (or its mirror of the peer) holds any map or partition record: not a first start. */
async function ranBefore(kv: KV, jsm: JetStreamManager, cfg: RuntimeConfig): Promise<boolean> {
  if (await readOwnMap(kv)) return true
  if (await readPeerMap(jsm, cfg).catch(() => undefined)) return true
  const keys = await kv.keys('part.>')
  for await (const _ of keys) return true
  return false
}

/**
 * Where a producer (the gateway, the simulator) sends a reading of partition p: the site owning p in the
 * effective map, refreshed every `refreshMs`. One site: always this site. A gateway at either site publishes
 * to `tlm.<owner>.<p>...`; the leafnode link carries it to the owner's stream.
 */
export class SiteRouter {
  private view: SiteMapView | undefined
  private timer: NodeJS.Timeout | undefined
  constructor(
    private readonly nc: NatsConnection,
    private readonly cfg: RuntimeConfig,
  ) {}

  async start(refreshMs = 1_000): Promise<void> {
    if (!this.cfg.peer) return
    const jsm = await jetstreamManager(this.nc)
    const kv = await new Kvm(this.nc).open(this.cfg.streams.stateBucket)
    this.view = new SiteMapView(this.cfg, kv, jsm)
    await this.view.refresh().catch(() => undefined)
    this.timer = setInterval(() => void this.view?.refresh().catch(() => undefined), refreshMs)
    this.timer.unref()
  }

  siteFor(partition: number): string {
    return this.view ? this.view.ownerOf(partition) : this.cfg.site
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }
}
