/**
 * One owned partition: a private pull consumer on TLM starting after the checkpointed cursor, dispatch of
 * messages to actor cells in stream order, outputs to OUT, and checkpoints.
 *
 * Checkpoint order (docs/runtime.md): (1) await every output published so far, (2) write dirty snapshots,
 * (3) CAS the partition record with the new cursor (fails if another owner took over: fenced), (4) AckAll the
 * message at the cursor. A crash anywhere replays from the old cursor; each cell skips what it already applied
 * (its snapshot's lastSeq), and outputs carry deterministic ids, so state effects happen exactly once.
 */
import { AckPolicy, DeliverPolicy, type Consumer, type ConsumerMessages, type JsMsg, type PubAck } from '@nats-io/jetstream'
import { headers, nanos, type Msg, type Subscription } from '@nats-io/transport-node'
import { ActorCell, type SnapshotRecord } from './cell.js'
import { FencedError, PitwallError, RuntimeErrorCodes } from './errors.js'
import { type HeldRecord, isStaleWrite, type PartitionRecord, writeHeld } from './placement.js'
import { prefetchLastPerSubject, SnapshotPrefetch } from './prefetch.js'
import type { RuntimeDeps, RuntimeStats } from './runtime-types.js'
import {
  defaultChain, epochOf, inChain, peerStreams, position, readPeerHistory, readPeerKey, type Segment, segmentOf, segmentStream, seqOf,
} from './sitemap.js'
import {
  fenceSubject, isEntityKind, outSubject, parsePartitioned, querySubject, snapshotFilter, snapshotKey, SYS_KIND, tickSubject, tlmPartitionFilter,
} from './subjects.js'
import type { EntityKind } from './subjects.js'
import type { FenceBody, Output, Reading } from './types.js'

export const ERROR_HEADER = 'Pitwall-Error-Code'
/** Snapshot puts in flight at once during a checkpoint. */
const SNAPSHOT_PUT_CHUNK = 1_000

const te = new TextEncoder()
const td = new TextDecoder()

export type RunnerState = 'starting' | 'running' | 'stopping' | 'stopped' | 'fenced'

export class PartitionRunner {
  readonly partition: number
  state: RunnerState = 'starting'
  private held: HeldRecord
  /** Claims known to this owner, its own included (see PartitionRecord.claims). */
  private readonly claims: Array<[number, number]>
  private readonly deps: RuntimeDeps
  private readonly stats: RuntimeStats
  private readonly cells = new Map<string, ActorCell>()
  private dormant = new Map<string, number>()
  private pending: Array<Promise<PubAck>> = []
  /** Every output batch taken so far: a checkpoint waits for all of them, not only for its own. */
  private flushChain: Promise<unknown> = Promise.resolve()
  /** Share of the worker's active-actor bound this partition may hold (set by the worker). */
  activeBound: () => number
  private lastMsg: JsMsg | undefined
  private lastSeq: number
  private lastProcTime = 0
  /** Event time (NaN for ticks) and JetStream timestamp of the message being handled: output latency metrics. */
  private curEventTs = Number.NaN
  private curIngestTs = 0
  private msgsSinceCheckpoint = 0
  private lastCheckpointAt = Date.now()
  /** Local time the last successful record write was sent: our lease is safe until this + ttl. */
  private leaseSentAt: number
  private checkpointing: Promise<void> | undefined
  private iter: ConsumerMessages | undefined
  private consumer: Consumer | undefined
  private loop: Promise<void> | undefined
  private timers: NodeJS.Timeout[] = []
  private querySub: Subscription | undefined
  private tickCount = 0
  /** The input chain (one segment unless the partition moved between sites) and the segment being read. */
  private readonly chain: Segment[]
  private seg: Segment
  private stream: string
  private consumerName: string
  /** Set when a sealed segment has been read to its end: the run loop moves to the next segment. */
  private segmentDone = false
  /** Messages of the current consumer the loop has finished with (handled or skipped). */
  private segHandled = 0
  /** Messages of this partition still waiting in the stream behind the last one received (consumer lag). */
  lag = 0
  private sealTimer: NodeJS.Timeout | undefined
  /** Snapshots of this partition's actors as they were at start, ours and the peer's (actors/prefetch.ts). */
  private ownPrefetch = SnapshotPrefetch.empty()
  private peerPrefetch = SnapshotPrefetch.empty()
  /** Called once when the runner stops on its own (fenced or failed). */
  onExit: ((r: PartitionRunner, err?: unknown) => void) | undefined

  constructor(deps: RuntimeDeps, stats: RuntimeStats, partition: number, held: HeldRecord, acquiredAt: number) {
    this.deps = deps
    this.stats = stats
    this.partition = partition
    this.held = held
    this.claims = [...(held.record.claims ?? []), [held.record.token, held.revision]]
    this.lastSeq = held.record.cursor
    this.leaseSentAt = acquiredAt
    this.chain = held.record.segments ?? defaultChain(deps.cfg.site)
    this.seg = this.segmentAt(this.lastSeq)
    this.stream = segmentStream(deps.cfg, this.seg)
    this.consumerName = this.nameFor(this.seg)
    this.activeBound = () => deps.cfg.maxActiveActors
    for (const [k, at] of Object.entries(held.record.dormant ?? {})) this.dormant.set(k, at)
  }

  get token(): number {
    return this.held.record.token
  }
  get activeActors(): number {
    return this.cells.size
  }
  get cursor(): number {
    return this.held.record.cursor
  }

  private nameFor(seg: Segment): string {
    return `pw_${this.deps.cfg.site}_${this.partition}_${this.token}_${seg.epoch}`
  }

  /**
   * The segment to read from position `pos` on: the one holding it, or the next one when that one is sealed
   * at or before `pos`. Moving on sets lastSeq to just before the next segment's first position.
   */
  private segmentAt(pos: number): Segment {
    let i = pos === 0 ? 0 : this.chain.findIndex((s) => s === segmentOf(this.chain, pos))
    if (i < 0) {
      throw new PitwallError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `partition ${this.partition}: cursor ${pos} (epoch ${epochOf(pos)}) is in no segment of its chain`)
    }
    let seg = this.chain[i] as Segment
    while (seg.to !== undefined && pos !== 0 && epochOf(pos) === seg.epoch && seqOf(pos) >= seg.to && i + 1 < this.chain.length) {
      seg = this.chain[++i] as Segment
      pos = position(seg.epoch, seg.from - 1)
      this.lastSeq = Math.max(this.lastSeq, pos)
    }
    return seg
  }

  /** A private pull consumer on the current segment, from the message after lastSeq. */
  private async openConsumer(): Promise<void> {
    const { js, jsm, cfg } = this.deps
    const seg = this.seg
    this.stream = segmentStream(cfg, seg)
    this.consumerName = this.nameFor(seg)
    const start = Math.max(seg.from, epochOf(this.lastSeq) === seg.epoch ? seqOf(this.lastSeq) + 1 : seg.from)
    await jsm.consumers.add(this.stream, {
      name: this.consumerName,
      filter_subject: tlmPartitionFilter(seg.site, this.partition),
      ack_policy: AckPolicy.All,
      ...(start > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start } : { deliver_policy: DeliverPolicy.All }),
      max_ack_pending: cfg.maxInFlight,
      ack_wait: nanos(Math.max(30_000, cfg.leaseTtlMs * 2)),
      inactive_threshold: nanos(Math.max(30_000, cfg.leaseTtlMs * 5)),
    })
    this.consumer = await js.consumers.get(this.stream, this.consumerName)
    // Abort (and let the worker reacquire) rather than wait forever for a consumer that a server restart or the
    // inactivity threshold removed.
    this.iter = await this.consumer.consume({ max_messages: Math.min(2_000, cfg.maxInFlight), abort_on_missing_resource: true })
    this.segmentDone = false
    this.segHandled = 0
    if (this.sealTimer) clearInterval(this.sealTimer)
    this.sealTimer = seg.to === undefined ? undefined : setInterval(() => void this.checkSealed(), 200)
  }

  /**
   * A sealed segment is done when its stream (a mirror may still be catching up) has reached the seal and
   * everything the consumer delivered has been handled with nothing pending.
   */
  private async checkSealed(): Promise<void> {
    const seg = this.seg
    const consumer = this.consumer
    if (seg.to === undefined || !consumer || this.segmentDone || this.state !== 'running') return
    try {
      const si = await this.deps.jsm.streams.info(this.stream)
      if (si.state.last_seq < seg.to) return
      const ci = await consumer.info()
      // (A filtered consumer's delivered stream sequence runs ahead over other partitions' messages: count
      // deliveries instead.)
      if (ci.num_pending > 0 || this.seg !== seg || this.segHandled < ci.delivered.consumer_seq) return
      this.segmentDone = true
      this.iter?.stop()
    } catch (err) {
      this.deps.log('debug', 'seal check failed', { partition: this.partition, err: String(err) })
    }
  }

  /** Reads every snapshot of the partition in one pass each from our bucket and, if the chain has peer segments, our mirror of the peer's. */
  private async prefetchSnapshots(): Promise<void> {
    const { js, jsm, cfg } = this.deps
    const subjects = `$KV.${cfg.streams.stateBucket}.${snapshotFilter(this.partition)}`
    const peer = cfg.peer && this.chain.some((s) => s.site !== cfg.site) ? peerStreams(cfg, cfg.peer.site).state : undefined
    const t0 = performance.now()
    const [own, theirs] = await Promise.all([
      prefetchLastPerSubject(js, jsm, `KV_${cfg.streams.stateBucket}`, subjects),
      peer ? prefetchLastPerSubject(js, jsm, peer, subjects) : Promise.resolve(SnapshotPrefetch.empty()),
    ])
    this.ownPrefetch = own
    this.peerPrefetch = theirs
    if (theirs.size > 0) void this.adoptPeerSnapshots(theirs.pending(), own)
    this.deps.log('debug', 'snapshots prefetched', {
      partition: this.partition, own: own.size, ownComplete: own.complete, peer: theirs.size, peerComplete: theirs.complete,
      bytes: own.bytes + theirs.bytes, ms: Math.round(performance.now() - t0),
    })
  }

  /**
   * Copies the peer's snapshots of this partition that are in our chain into our own bucket (with our token),
   * where an actor that first shows up later finds them. The peer's mirror is no place to keep them: a site that
   * lost a split goes on writing snapshots past the seal, and once the link heals they push the valid revisions
   * out of the mirror's history (5 per key). Only keys we have no newer snapshot of are written (create, or a
   * CAS over our older one), so a live actor's own checkpoint always wins.
   */
  private async adoptPeerSnapshots(entries: Array<[string, { data: Uint8Array; op: string | undefined }]>, own: SnapshotPrefetch): Promise<void> {
    const kv = this.deps.kv
    const prefix = `$KV.${this.deps.cfg.streams.stateBucket}.`
    let adopted = 0
    const one = async ([subject, e]: [string, { data: Uint8Array; op: string | undefined }]): Promise<void> => {
      if (e.op !== undefined || this.state === 'stopped' || this.state === 'fenced') return
      const rec = JSON.parse(td.decode(e.data)) as SnapshotRecord
      if (!inChain(this.chain, rec.lastSeq) || rec.token > this.token) return
      const key = subject.slice(prefix.length)
      const data = JSON.stringify({ ...rec, token: this.token })
      try {
        if (!own.has(subject)) await kv.create(key, data)
        else {
          const cur = await kv.get(key)
          const mine = cur && cur.operation === 'PUT' ? (JSON.parse(td.decode(cur.value)) as SnapshotRecord) : undefined
          if (!cur || (mine && mine.lastSeq >= rec.lastSeq)) return
          await kv.update(key, data, cur.revision)
        }
        adopted++
      } catch {
        // Written meanwhile (the actor checkpointed, or another copy): ours is at least as new.
      }
    }
    for (let i = 0; i < entries.length; i += SNAPSHOT_PUT_CHUNK) await Promise.all(entries.slice(i, i + SNAPSHOT_PUT_CHUNK).map(one))
    this.deps.log('debug', 'peer snapshots adopted', { partition: this.partition, adopted, of: entries.length })
  }

  /** Moves from a finished sealed segment to the next one of the chain. */
  private async advance(): Promise<void> {
    const i = this.chain.indexOf(this.seg)
    const next = this.chain[i + 1]
    if (!next) throw new PitwallError(RuntimeErrorCodes.SHUTTING_DOWN, `partition ${this.partition}: sealed segment ${this.seg.epoch} has no successor`)
    const old = { stream: this.stream, name: this.consumerName }
    this.seg = next
    this.lastSeq = Math.max(this.lastSeq, position(next.epoch, next.from - 1))
    this.lastMsg = undefined
    this.deps.log('info', 'partition moves to the next segment', { partition: this.partition, epoch: next.epoch, site: next.site, from: next.from })
    await this.deps.jsm.consumers.delete(old.stream, old.name).catch(() => undefined)
    await this.openConsumer()
  }

  /** Fence marker, consumer from cursor + 1, message loop, tick and renewal timers, query endpoint. */
  async start(): Promise<void> {
    const { js, cfg } = this.deps
    const fence: Output<'fence'> = {
      id: `${SYS_KIND}:fence:${this.partition}:${this.token}`, type: 'fence', kind: SYS_KIND, entity: 'fence',
      profile: SYS_KIND, ts: Date.now(), seq: this.lastSeq, site: cfg.site, partition: this.partition, token: this.token,
      body: {
        partition: this.partition, token: this.token, owner: cfg.workerId,
        // A moved partition's chain: projectors learn from it which positions are off the chain (seals).
        ...(this.chain.length > 1 ? { segments: this.chain } : {}),
      } satisfies FenceBody,
    }
    await js.publish(fenceSubject(cfg.site, this.partition), JSON.stringify(fence), { msgID: fence.id })
    await this.prefetchSnapshots()
    await this.openConsumer()
    this.querySub = this.deps.nc.subscribe(querySubject(cfg.site, this.partition), {
      callback: (err, msg) => {
        if (!err) void this.answerQuery(msg)
      },
    })
    this.state = 'running'
    this.loop = this.run().catch((err: unknown) => this.fail(err))
    this.timers.push(setInterval(() => void this.renewTick(), Math.min(cfg.heartbeatMs, cfg.checkpointIntervalMs)))
    this.timers.push(setInterval(() => void this.publishTick(), cfg.tickIntervalMs))
  }

  private async run(): Promise<void> {
    for (;;) {
      await this.runSegment()
      if (this.state !== 'running' || !this.segmentDone) break
      await this.advance()
      // A stop that came while the next consumer was being opened stopped the old iterator only.
      if (this.state !== 'running') {
        this.iter?.stop()
        break
      }
    }
    if (this.state === 'running') {
      throw new PitwallError(RuntimeErrorCodes.SHUTTING_DOWN, `partition ${this.partition}: the consumer ended unexpectedly`, { retryable: true })
    }
  }

  private async runSegment(): Promise<void> {
    const iter = this.iter
    if (!iter) return
    const cfg = this.deps.cfg
    const seg = this.seg
    for await (const m of iter) {
      if (this.state !== 'running') break
      if (seg.to !== undefined && m.seq > seg.to) {
        // Past the seal: the rest of this stream belongs to no chain position (a later owner took over).
        this.segmentDone = true
        iter.stop()
        break
      }
      this.lag = m.info.pending
      // Caught up on the open segment: actors that have not shown up by now load from the bucket when they do.
      if (this.lag === 0 && seg.to === undefined && this.ownPrefetch.size + this.peerPrefetch.size > 0) {
        this.ownPrefetch = SnapshotPrefetch.empty()
        this.peerPrefetch = SnapshotPrefetch.empty()
      }
      const pos = position(seg.epoch, m.seq)
      // An ack_wait redelivery of something already handled: the cells would skip it anyway.
      if (pos <= this.lastSeq) {
        this.segHandled++
        continue
      }
      await this.handle(m, pos)
      this.segHandled++
      this.lastMsg = m
      this.lastSeq = pos
      this.msgsSinceCheckpoint++
      if (this.pending.length >= cfg.maxPendingOutputs) await this.flushOutputs()
      // Due by count (half the intake bound unacknowledged) or memory (active actors over the bound): these make
      // intake wait for a checkpoint already running. Due by time only: start one if none runs, else go on (the
      // next message starts it). Waiting on time alone made a replay crawl at one message per checkpoint
      // round trip whenever checkpoints took longer than their interval (a loaded machine, bench:failover).
      const mustWait = this.msgsSinceCheckpoint >= cfg.maxInFlight / 2 || this.cells.size > this.activeBound()
      if (mustWait || Date.now() - this.lastCheckpointAt >= cfg.checkpointIntervalMs) {
        // Checkpoints are pipelined: what they write is captured synchronously, so processing goes on while
        // snapshots and the cursor are in flight.
        if (this.checkpointing) {
          if (mustWait) await this.checkpointing
        } else void this.checkpoint().catch((err: unknown) => this.fail(err))
      }
    }
  }

  /** Applies one message at chain position `pos`. */
  private async handle(m: JsMsg, pos: number): Promise<void> {
    const parsed = parsePartitioned(m.subject)
    const procTime = Math.floor(m.info.timestampNanos / 1e6)
    this.lastProcTime = procTime
    this.curIngestTs = procTime
    this.curEventTs = Number.NaN
    if (!parsed) {
      this.stats.invalid++
      return
    }
    if (parsed.kind === SYS_KIND) {
      this.stats.ticks++
      await this.fireTick(pos, procTime)
      return
    }
    let reading: Reading
    try {
      reading = m.json<Reading>()
    } catch {
      // A malformed message in the log must not block the partition: counted and skipped.
      this.stats.invalid++
      return
    }
    if (!isEntityKind(parsed.kind) || !reading || typeof reading.ts !== 'number' || !Number.isFinite(reading.ts) ||
      typeof reading.fields !== 'object' || reading.fields === null) {
      this.stats.invalid++
      return
    }
    const cell = await this.activate(parsed.kind, parsed.id, reading.profile)
    if (!cell) {
      this.stats.invalid++
      return
    }
    this.curEventTs = reading.ts
    if (cell.applyReading(pos, procTime, reading, this.emit, this.deps.refs)) {
      this.stats.processed++
      this.deps.observe?.reading?.(cell.def.profile)
    } else this.stats.skippedReplay++
  }

  private async fireTick(seq: number, procTime: number): Promise<void> {
    for (const cell of this.cells.values()) {
      const next = cell.nextProcTimer()
      if (next !== undefined && next <= procTime) cell.applyTick(seq, procTime, this.emit, this.deps.refs)
    }
    for (const [key, at] of this.dormant) {
      if (at > procTime) continue
      const dot = key.indexOf('.')
      const kind = key.slice(0, dot)
      if (!isEntityKind(kind)) {
        this.dormant.delete(key)
        continue
      }
      // activate() removes the entry once the cell is live; until then a checkpoint still records it.
      const cell = await this.activate(kind, key.slice(dot + 1), undefined)
      if (!cell) this.dormant.delete(key)
      cell?.applyTick(seq, procTime, this.emit, this.deps.refs)
    }
  }

  private readonly emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => {
    const cfg = this.deps.cfg
    const out: Output = { ...o, site: cfg.site, partition: this.partition, token: this.token } as Output
    this.stats.outputs++
    this.deps.observe?.output?.(this.partition, o, this.curEventTs, this.curIngestTs)
    // The message id carries the token: a replay by the same owner dedups, a new owner's version is not
    // mistaken for a stale owner's duplicate.
    const p = this.deps.js.publish(outSubject(cfg.site, this.partition, o.kind, o.entity), JSON.stringify(out),
      { msgID: `${o.id}@${this.token}` })
    // Handled here so a failure cannot crash the process before the next flush; that flush still sees it.
    p.catch(() => undefined)
    this.pending.push(p)
  }

  /** Returns the live cell, loading it from its snapshot on first use (virtual actor activation). */
  private async activate(kind: EntityKind, id: string, profile: string | undefined): Promise<ActorCell | undefined> {
    const key = `${kind}.${id}`
    const live = this.cells.get(key)
    if (live) return live
    const snap = await this.loadSnapshot(kind, id)
    const name = snap?.profile ?? profile ?? this.deps.cfg.defaultProfiles[kind]
    const entry = this.deps.profiles.get(name)
    if (!entry || entry.def.kind !== kind) {
      if (!snap) return undefined
      throw new PitwallError(RuntimeErrorCodes.PROFILE_UNKNOWN, `snapshot of ${key} names profile ${name}, which this worker does not have`)
    }
    const cell = new ActorCell(entry.def, entry.config, { kind, id }, snap)
    this.cells.set(key, cell)
    this.dormant.delete(key)
    this.stats.activations++
    return cell
  }

  /**
   * Reads the latest snapshot, ignoring any that an older owner wrote after a newer one claimed the partition
   * (a stale owner that woke up): for those the newest valid revision in the key's history is used instead.
   */
  private async loadSnapshot(kind: string, id: string): Promise<SnapshotRecord | undefined> {
    const own = await this.loadOwnSnapshot(kind, id)
    if (!this.chain.some((s) => s.site !== this.deps.cfg.site)) return own
    // The chain has segments read at the peer site: its snapshots (in our mirror of its bucket) may be newer.
    const key = snapshotKey(this.partition, kind, id)
    const pre = this.peerPrefetch.take(`$KV.${this.deps.cfg.streams.stateBucket}.${key}`)
    const data = pre === 'absent' ? undefined
      : pre === 'unknown' ? (await readPeerKey(this.deps.jsm, this.deps.cfg, key))?.data
        : pre.found.op === undefined ? pre.found.data : undefined
    if (!data) return own
    let peer: SnapshotRecord | undefined = JSON.parse(td.decode(data)) as SnapshotRecord
    const valid = (r: SnapshotRecord): boolean => inChain(this.chain, r.lastSeq) && r.token <= this.token
    if (!valid(peer)) {
      // Written past the seal (the state mirror ran ahead of the readings mirror): the newest revision still in
      // the chain, from the mirror's history (see handover.ts recordAtSeal).
      this.stats.staleSnapshotsIgnored++
      const history = await readPeerHistory(this.deps.js, this.deps.jsm, this.deps.cfg, key)
      peer = history.flatMap((h) => (h.data ? [JSON.parse(td.decode(h.data)) as SnapshotRecord] : [])).filter(valid).at(-1)
      if (!peer) return own
    }
    return !own || peer.lastSeq > own.lastSeq ? peer : own
  }

  /** Our site's snapshot, skipping writes of replaced owners and positions off the chain (see loadSnapshot). */
  private async loadOwnSnapshot(kind: string, id: string): Promise<SnapshotRecord | undefined> {
    const kv = this.deps.kv
    const k = snapshotKey(this.partition, kind, id)
    const pre = this.ownPrefetch.take(`$KV.${this.deps.cfg.streams.stateBucket}.${k}`)
    const e = pre === 'absent' ? null
      : pre === 'unknown' ? await kv.get(k)
        : { value: pre.found.data, revision: pre.found.seq, operation: pre.found.op === undefined ? 'PUT' : 'DEL' }
    if (!e || e.operation !== 'PUT') return undefined
    const snap = JSON.parse(td.decode(e.value)) as SnapshotRecord
    if (!isStaleWrite(this.claims, snap.token, e.revision) && inChain(this.chain, snap.lastSeq)) {
      if (snap.token > this.token) throw new FencedError(`snapshot of ${kind}/${id} has token ${snap.token} > ours ${this.token}`)
      return snap
    }
    this.stats.staleSnapshotsIgnored++
    let best: SnapshotRecord | undefined
    const hist = await kv.history({ key: k })
    for await (const h of hist) {
      if (h.operation !== 'PUT') continue
      const rec = JSON.parse(td.decode(h.value)) as SnapshotRecord
      if (!isStaleWrite(this.claims, rec.token, h.revision) && inChain(this.chain, rec.lastSeq)) best = rec
    }
    return best
  }

  private async flushOutputs(): Promise<void> {
    const batch = this.pending
    this.pending = []
    const all = Promise.all([this.flushChain, ...batch])
    this.flushChain = all
    await all
  }

  private leaseSafe(): boolean {
    // A margin of a quarter TTL: a paused process that wakes up near expiry does not write.
    return Date.now() < this.leaseSentAt + this.deps.cfg.leaseTtlMs * 0.75
  }

  /** Outputs, then dirty snapshots, then the cursor (CAS, fenced), then AckAll. Serialised. */
  checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing
    this.checkpointing = this.doCheckpoint().finally(() => {
      this.checkpointing = undefined
    })
    return this.checkpointing
  }

  private async doCheckpoint(): Promise<void> {
    if (this.state === 'fenced' || this.state === 'stopped') return
    const started = Date.now()
    const cursor = this.lastSeq
    const ackMsg = this.lastMsg
    const dirty: ActorCell[] = []
    for (const c of this.cells.values()) if (c.dirty) dirty.push(c)
    const snaps = dirty.map((c) => {
      c.dirty = false
      return { key: snapshotKey(this.partition, c.entity.kind, c.entity.id), data: JSON.stringify(c.snapshot(this.token)) }
    })
    const victims = this.passivationCandidates()
    const dormant: Record<string, number> = {}
    for (const [k, at] of this.dormant) dormant[k] = at
    // Live cells' processing-time timers too: a new owner after a crash or handover must wake them.
    for (const [k, c] of this.cells) {
      const t = c.nextProcTimer()
      if (t !== undefined) dormant[k] = t
    }
    try {
      await this.flushOutputs()
      const kv = this.deps.kv
      // A lease that may have run out (a slow start, a long pause) is renewed by CAS before anything is written:
      // if another owner took the partition meanwhile, its acquisition moved the revision and this fences us.
      if (!this.leaseSafe()) {
        const sentAt = Date.now()
        this.held = await writeHeld(kv, this.partition, this.held, { ...this.held.record, renewedAt: sentAt }, this.deps.cfg.peer !== null)
        this.leaseSentAt = sentAt
        this.deps.log('info', 'lease renewed late', { partition: this.partition, token: this.token })
      }
      for (let i = 0; i < snaps.length; i += SNAPSHOT_PUT_CHUNK) {
        await Promise.all(snaps.slice(i, i + SNAPSHOT_PUT_CHUNK).map((s) => kv.put(s.key, s.data)))
      }
      this.stats.snapshotsWritten += snaps.length
      let bytes = 0
      for (const s of snaps) bytes += s.data.length
      this.stats.snapshotBytes += bytes
      // Our claim goes into the record so later owners can recognise stale snapshots too (last 16 kept).
      const next: PartitionRecord = { ...this.held.record, cursor, renewedAt: Date.now(), dormant, claims: this.claims.slice(-16) }
      const sentAt = Date.now()
      this.held = await writeHeld(kv, this.partition, this.held, next, this.deps.cfg.peer !== null)
      this.leaseSentAt = sentAt
      ackMsg?.ack()
      this.stats.checkpoints++
      this.deps.observe?.checkpoint((Date.now() - started) / 1000)
      this.deps.observe?.checkpointBytes?.(bytes)
      this.msgsSinceCheckpoint = 0
      this.lastCheckpointAt = started
      this.passivate(victims)
    } catch (err) {
      // Dirty cells whose snapshot did not land are dirty again; a fenced runner stops.
      for (const c of dirty) c.dirty = true
      this.stats.checkpointFailures++
      throw err
    }
  }

  /** Cells to passivate at this checkpoint: idle ones, and the least recently used above the bound. */
  private passivationCandidates(): Array<[string, ActorCell]> {
    const cfg = this.deps.cfg
    const idleBefore = this.lastProcTime - cfg.idlePassivateMs
    const out: Array<[string, ActorCell]> = []
    for (const e of this.cells) if (e[1].lastActive < idleBefore) out.push(e)
    const over = this.cells.size - out.length - this.activeBound()
    if (over > 0) {
      const rest = [...this.cells].filter((e) => e[1].lastActive >= idleBefore)
      rest.sort((a, b) => a[1].lastActive - b[1].lastActive)
      out.push(...rest.slice(0, over))
    }
    return out
  }

  /** Drops cells whose snapshot just landed, unless a message touched them meanwhile; keeps their timers. */
  private passivate(victims: Array<[string, ActorCell]>): void {
    for (const [k, c] of victims) {
      if (c.dirty || this.cells.get(k) !== c) continue
      const t = c.nextProcTimer()
      if (t !== undefined) this.dormant.set(k, t)
      this.cells.delete(k)
      this.stats.passivations++
    }
  }

  private async renewTick(): Promise<void> {
    if (this.state !== 'running') return
    try {
      await this.checkpoint()
    } catch (err) {
      this.fail(err)
    }
  }

  private async publishTick(): Promise<void> {
    if (this.state !== 'running') return
    const { js, cfg } = this.deps
    try {
      await js.publish(tickSubject(cfg.site, this.partition), '', { msgID: `tick:${this.partition}:${this.token}:${this.tickCount++}` })
    } catch (err) {
      this.deps.log('warn', 'tick publish failed', { partition: this.partition, err: String(err) })
    }
  }

  private async answerQuery(msg: Msg): Promise<void> {
    const h = headers()
    try {
      const q = JSON.parse(td.decode(msg.data)) as { kind?: string; id?: string }
      if (typeof q.kind !== 'string' || !isEntityKind(q.kind) || typeof q.id !== 'string') {
        throw new PitwallError(RuntimeErrorCodes.QUERY_FAILED, 'query needs {kind, id}')
      }
      const live = this.cells.get(`${q.kind}.${q.id}`)
      let body: unknown
      if (live) {
        body = { source: 'live', kind: q.kind, id: q.id, profile: live.def.profile, lastSeq: live.lastSeq, watermark: live.watermark, state: live.query() }
      } else {
        const snap = await this.loadSnapshot(q.kind, q.id)
        const entry = snap ? this.deps.profiles.get(snap.profile) : undefined
        if (!snap || !entry) throw new PitwallError(RuntimeErrorCodes.ENTITY_UNKNOWN, `no actor ${q.kind}/${q.id}`)
        const cell = new ActorCell(entry.def, entry.config, { kind: q.kind, id: q.id }, snap)
        body = { source: 'snapshot', kind: q.kind, id: q.id, profile: snap.profile, lastSeq: cell.lastSeq, watermark: cell.watermark, state: cell.query() }
      }
      msg.respond(te.encode(JSON.stringify(body)))
    } catch (err) {
      const e = err instanceof PitwallError ? err : new PitwallError(RuntimeErrorCodes.QUERY_FAILED, String(err), { cause: err })
      h.set(ERROR_HEADER, e.code)
      msg.respond(te.encode(JSON.stringify(e.toWire())), { headers: h })
    }
  }

  private fail(err: unknown): void {
    if (this.state === 'stopped' || this.state === 'fenced') return
    const fenced = err instanceof FencedError
    this.deps.log(fenced ? 'warn' : 'error', fenced ? 'partition fenced' : 'partition runner failed',
      { partition: this.partition, token: this.token, err: String(err) })
    this.state = 'fenced'
    if (fenced) this.stats.leaseLost++
    void this.teardown(false).then(async () => {
      // Not fenced: we still own the record; release it so a peer (or we) can retry without waiting a TTL.
      if (!fenced) await writeHeld(this.deps.kv, this.partition, this.held, { ...this.held.record, owner: null, renewedAt: Date.now() }, this.deps.cfg.peer !== null)
    }).catch((e: unknown) => this.deps.log('warn', 'release after failure failed', { partition: this.partition, err: String(e) }))
      .finally(() => this.onExit?.(this, err))
  }

  /** Graceful: stop intake, finish the current message, checkpoint, release the record. */
  async stop(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'starting') return
    this.state = 'stopping'
    this.iter?.stop()
    await this.loop
    try {
      // An in-flight checkpoint captured its state before the last messages: wait for it, then take a fresh one.
      if (this.checkpointing) await this.checkpointing
      await this.checkpoint()
      const released: PartitionRecord = { ...this.held.record, owner: null, renewedAt: Date.now() }
      this.held = await writeHeld(this.deps.kv, this.partition, this.held, released, this.deps.cfg.peer !== null)
      this.stats.leaseReleased++
    } finally {
      await this.teardown(true)
      this.state = 'stopped'
    }
  }

  private async teardown(deleteConsumer: boolean): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    if (this.sealTimer) clearInterval(this.sealTimer)
    this.iter?.stop()
    this.querySub?.unsubscribe()
    this.cells.clear()
    this.deps.observe?.partitionClosed?.(this.partition)
    if (deleteConsumer) {
      try {
        await this.deps.jsm.consumers.delete(this.stream, this.consumerName)
      } catch (err) {
        // The consumer also expires by itself (inactive_threshold); log and move on.
        this.deps.log('debug', 'consumer delete failed', { partition: this.partition, err: String(err) })
      }
    }
  }
}
