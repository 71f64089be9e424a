/**
 * A partition's snapshot store: which snapshot an actor starts from, and where checkpoints write them.
 *
 * The rule (one place, used by the partition's owner on activation and by the live-query fallback when no owner
 * answers, actors/query.ts):
 * - a snapshot is valid for a tenure when its position is on the partition's chain (not past a seal), it was not
 *   written by an owner that a newer claim had already replaced (a stale owner that woke up: `isStaleWrite`), and
 *   its token is not newer than the current owner's;
 * - from our own bucket the latest valid revision is used (the key's history when the latest is not valid);
 * - when the chain has segments read at the peer site, the peer's snapshot (our mirror of its bucket) is a
 *   candidate too, with the same validity; the one further along the chain wins (positions compare as numbers).
 *
 * On the owner, a starting partition first reads every snapshot in one pass per source (actors/prefetch.ts); an
 * actor's first activation takes its entry from there instead of making a request.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream'
import type { KV } from '@nats-io/kv'
import type { SnapshotRecord } from './cell.js'
import type { RuntimeConfig } from './config.js'
import { FencedError, PitwallError, RuntimeErrorCodes } from './errors.js'
import { isStaleWrite, type PartitionRecord } from './placement.js'
import { publishBatch, type AckPublisher } from './publish.js'
import { prefetchLastPerSubject, SnapshotPrefetch } from './prefetch.js'
import type { LogFn } from './log.js'
import { defaultChain, inChain, peerStreams, readPeerHistory, readPeerKey, type Segment } from './sitemap.js'
import { snapshotFilter, snapshotKey } from './subjects.js'

/** Snapshot puts in flight at once during a checkpoint. */
const SNAPSHOT_PUT_CHUNK = 1_000
/** How long a chunk of snapshot puts may wait for its acks before the checkpoint fails. */
const SNAPSHOT_PUT_TIMEOUT_MS = 10_000

const td = new TextDecoder()
const decode = (data: Uint8Array): SnapshotRecord => JSON.parse(td.decode(data)) as SnapshotRecord

/** The tenure snapshots are judged against. `chain` undefined: any position is valid (the chain is not known). */
export interface SnapshotScope {
  partition: number
  token: number
  chain: readonly Segment[] | undefined
  claims: ReadonlyArray<readonly [number, number]>
}

/** The scope of the tenure a partition record describes (the record's owner, or its last one). */
export function scopeOfRecord(
  partition: number,
  site: string,
  rec: PartitionRecord | undefined,
  revision: number | undefined,
): SnapshotScope {
  if (!rec) return { partition, token: Number.POSITIVE_INFINITY, chain: undefined, claims: [] }
  return {
    partition,
    token: rec.token,
    chain: rec.segments ?? defaultChain(site),
    claims: [...(rec.claims ?? []), ...(revision === undefined ? [] : [[rec.token, revision] as [number, number]])],
  }
}

/** Reads of our mirror of the peer site's bucket (latest value of a key, and its history oldest first). */
export interface PeerSnapshots {
  latest(key: string): Promise<Uint8Array | undefined>
  history(key: string): Promise<SnapshotRecord[]>
}

export interface SnapshotDeps {
  kv: KV
  cfg: Pick<RuntimeConfig, 'site' | 'peer' | 'streams'>
  log?: LogFn
  /** Our mirror of the peer's bucket; absent with one site. */
  peer?: PeerSnapshots | undefined
  /** Checkpoints' puts go through it (one ack subscription) when given; else one `kv.put` request each. */
  acks?: AckPublisher | undefined
}

/** The peer reads of a worker (JetStream access to our mirror of the peer's bucket). */
export function mirrorPeerSnapshots(
  js: JetStreamClient,
  jsm: JetStreamManager,
  cfg: Pick<RuntimeConfig, 'streams' | 'peer'>,
): PeerSnapshots {
  return {
    latest: async (key) => (await readPeerKey(jsm, cfg, key))?.data,
    history: async (key) => (await readPeerHistory(js, jsm, cfg, key)).flatMap((h) => (h.data ? [decode(h.data)] : [])),
  }
}

export class SnapshotStore {
  private ownPrefetch = SnapshotPrefetch.empty()
  private peerPrefetch = SnapshotPrefetch.empty()
  /** Snapshots skipped because a stale owner wrote them or they lie off the chain. */
  staleIgnored = 0

  constructor(
    private readonly deps: SnapshotDeps,
    private readonly scope: SnapshotScope,
  ) {}

  private get usesPeer(): boolean {
    const chain = this.scope.chain
    return this.deps.peer !== undefined && (chain === undefined || chain.some((s) => s.site !== this.deps.cfg.site))
  }

  private subject(key: string): string {
    return `$KV.${this.deps.cfg.streams.stateBucket}.${key}`
  }

  private valid(rec: SnapshotRecord): boolean {
    return (this.scope.chain === undefined || inChain(this.scope.chain, rec.lastSeq)) && rec.token <= this.scope.token
  }

  /** Snapshots prefetched and not yet taken by an activation (ours and the peer's). */
  get prefetched(): number {
    return this.ownPrefetch.size + this.peerPrefetch.size
  }

  /**
   * Reads every snapshot of the partition in one pass from our bucket and, if the chain has peer segments, from
   * our mirror of the peer's; peer snapshots in the chain are then copied into our bucket (`adopt`).
   */
  async prefetch(js: JetStreamClient, jsm: JetStreamManager, live: () => boolean): Promise<void> {
    const { cfg } = this.deps
    const subjects = this.subject(snapshotFilter(this.scope.partition))
    const peer = cfg.peer && this.usesPeer ? peerStreams(cfg, cfg.peer.site).state : undefined
    const t0 = performance.now()
    const [own, theirs] = await Promise.all([
      prefetchLastPerSubject(js, jsm, `KV_${cfg.streams.stateBucket}`, subjects),
      peer ? prefetchLastPerSubject(js, jsm, peer, subjects) : Promise.resolve(SnapshotPrefetch.empty()),
    ])
    this.ownPrefetch = own
    this.peerPrefetch = theirs
    if (theirs.size > 0) void this.adopt(theirs.pending(), own, live)
    this.deps.log?.('debug', 'snapshots prefetched', {
      partition: this.scope.partition,
      own: own.size,
      ownComplete: own.complete,
      peer: theirs.size,
      peerComplete: theirs.complete,
      bytes: own.bytes + theirs.bytes,
      ms: Math.round(performance.now() - t0),
    })
  }

  /** Forgets the prefetch (caught up: actors that show up from now on load from the bucket). */
  dropPrefetch(): void {
    this.ownPrefetch = SnapshotPrefetch.empty()
    this.peerPrefetch = SnapshotPrefetch.empty()
  }

  /**
   * Copies the peer's snapshots of this partition that are in our chain into our own bucket (with our token),
   * where an actor that first shows up later finds them. The peer's mirror is no place to keep them: a site that
   * lost a split goes on writing snapshots past the seal, and once the link heals they push the valid revisions
   * out of the mirror's history (5 per key). Only keys we have no newer snapshot of are written (create, or a
   * CAS over our older one), so a live actor's own checkpoint always wins.
   */
  private async adopt(
    entries: Array<[string, { data: Uint8Array; op: string | undefined }]>,
    own: SnapshotPrefetch,
    live: () => boolean,
  ): Promise<void> {
    const kv = this.deps.kv
    const prefix = this.subject('')
    const token = this.scope.token
    let adopted = 0
    const one = async ([subject, e]: [string, { data: Uint8Array; op: string | undefined }]): Promise<void> => {
      if (e.op !== undefined || !live()) return
      const rec = decode(e.data)
      if (!this.valid(rec)) return
      const key = subject.slice(prefix.length)
      const data = JSON.stringify({ ...rec, token })
      try {
        if (!own.has(subject)) await kv.create(key, data)
        else {
          const cur = await kv.get(key)
          const mine = cur && cur.operation === 'PUT' ? decode(cur.value) : undefined
          if (!cur || (mine && mine.lastSeq >= rec.lastSeq)) return
          await kv.update(key, data, cur.revision)
        }
        adopted++
      } catch {
        // Written meanwhile (the actor checkpointed, or another copy): ours is at least as new.
      }
    }
    for (let i = 0; i < entries.length; i += SNAPSHOT_PUT_CHUNK)
      await Promise.all(entries.slice(i, i + SNAPSHOT_PUT_CHUNK).map(one))
    this.deps.log?.('debug', 'peer snapshots adopted', { partition: this.scope.partition, adopted, of: entries.length })
  }

  /** The snapshot an actor starts from (see the rule above), or undefined for a new actor. */
  async load(kind: string, id: string): Promise<SnapshotRecord | undefined> {
    const own = await this.loadOwn(kind, id)
    if (!this.usesPeer) return own
    const peer = await this.loadPeer(snapshotKey(this.scope.partition, kind, id))
    if (!peer) return own
    return !own || peer.lastSeq > own.lastSeq ? peer : own
  }

  private async loadPeer(key: string): Promise<SnapshotRecord | undefined> {
    const peer = this.deps.peer
    if (!peer) return undefined
    const pre = this.peerPrefetch.take(this.subject(key))
    const data =
      pre === 'absent'
        ? undefined
        : pre === 'unknown'
          ? await peer.latest(key)
          : pre.found.op === undefined
            ? pre.found.data
            : undefined
    if (!data) return undefined
    const rec = decode(data)
    if (this.valid(rec)) return rec
    // Written past the seal (the state mirror ran ahead of the readings mirror): the newest revision still in
    // the chain, from the mirror's history (see handover.ts recordAtSeal).
    this.staleIgnored++
    return (await peer.history(key)).filter((r) => this.valid(r)).at(-1)
  }

  private async loadOwn(kind: string, id: string): Promise<SnapshotRecord | undefined> {
    const kv = this.deps.kv
    const key = snapshotKey(this.scope.partition, kind, id)
    const pre = this.ownPrefetch.take(this.subject(key))
    const e =
      pre === 'absent'
        ? null
        : pre === 'unknown'
          ? await kv.get(key)
          : { value: pre.found.data, revision: pre.found.seq, operation: pre.found.op === undefined ? 'PUT' : 'DEL' }
    if (!e || e.operation !== 'PUT') return undefined
    const snap = decode(e.value)
    if (
      !isStaleWrite(this.scope.claims, snap.token, e.revision) &&
      (this.scope.chain === undefined || inChain(this.scope.chain, snap.lastSeq))
    ) {
      if (snap.token > this.scope.token)
        throw new FencedError(`snapshot of ${kind}/${id} has token ${snap.token} > ours ${this.scope.token}`)
      return snap
    }
    this.staleIgnored++
    let best: SnapshotRecord | undefined
    for await (const h of await kv.history({ key })) {
      if (h.operation !== 'PUT') continue
      const rec = decode(h.value)
      if (
        !isStaleWrite(this.scope.claims, rec.token, h.revision) &&
        (this.scope.chain === undefined || inChain(this.scope.chain, rec.lastSeq))
      )
        best = rec
    }
    return best
  }

  /**
   * Writes serialised snapshots (a checkpoint's dirty actors), a bounded number in flight. With `acks`, each put is
   * a plain JetStream publish to the key's subject answered on the shared ack subscription: a `kv.put` is a request
   * with its own reply subscription lookup, timer and (nats.js) a cancelled-request error object with a stack
   * trace, which at thousands of snapshots a second cost the worker more than serialising them (bench/runtime.ts,
   * CPU profile). Any failed put fails the checkpoint (it is retried with the cells dirty again).
   */
  async put(snaps: ReadonlyArray<{ key: string; data: string | Uint8Array }>): Promise<void> {
    const { kv, acks } = this.deps
    for (let i = 0; i < snaps.length; i += SNAPSHOT_PUT_CHUNK) {
      const chunk = snaps.slice(i, i + SNAPSHOT_PUT_CHUNK)
      if (!acks) {
        await Promise.all(chunk.map((s) => kv.put(s.key, s.data)))
        continue
      }
      const results = await publishBatch(
        acks,
        chunk.map((s) => ({ subject: this.subject(s.key), data: s.data })),
        SNAPSHOT_PUT_TIMEOUT_MS,
      )
      const failed = results.findIndex((r) => !r.ok)
      if (failed >= 0) {
        const r = results[failed] as { error: string }
        throw new PitwallError(
          RuntimeErrorCodes.CHECKPOINT_FAILED,
          `snapshot ${chunk[failed]?.key} not stored: ${r.error}`,
          { retryable: true },
        )
      }
    }
  }
}
