/**
 * One owned partition: a private pull consumer on TLM starting after the checkpointed cursor, dispatch of
 * messages to actor cells in stream order, outputs to OUT, and checkpoints.
 *
 * Its parts: `SegmentSource` (actors/segments.ts) reads the partition's chain of stream segments; `SnapshotStore`
 * (actors/snapshots.ts) decides which snapshot an actor starts from and writes checkpoints' snapshots;
 * `OutputSink` (actors/outputs.ts) publishes outputs and waits for their acks at a checkpoint. The runner keeps
 * dispatch, the checkpoint and fencing protocol, passivation, processing-time ticks and live queries.
 *
 * Checkpoint order (docs/runtime.md): (1) await every output published so far, (2) write dirty snapshots,
 * (3) CAS the partition record with the new cursor (fails if another owner took over: fenced), (4) AckAll the
 * message at the cursor. A crash anywhere replays from the old cursor; each cell skips what it already applied
 * (its snapshot's lastSeq), and outputs carry deterministic ids, so state effects happen exactly once.
 */
import type { JsMsg } from '@nats-io/jetstream'
import { headers, type Msg, type Subscription } from '@nats-io/transport-node'
import { ActorCell, type SnapshotRecord } from './cell.js'
import { ReadingOutcome } from './dedupe.js'
import { FencedError, PitwallError, RuntimeErrorCodes } from './errors.js'
import { OutputSink } from './outputs.js'
import { type HeldRecord, type PartitionRecord, writeHeld } from './placement.js'
import { AckPublisher } from './publish.js'
import type { RuntimeDeps, RuntimeStats } from './runtime.js'
import { SegmentSource } from './segments.js'
import { defaultChain } from './sitemap.js'
import { mirrorPeerSnapshots, SnapshotStore } from './snapshots.js'
import {
  fenceSubject,
  isEntityKind,
  parsePartitioned,
  querySubject,
  snapshotKey,
  SYS_KIND,
  tickSubject,
} from './subjects.js'
import type { EntityKind } from './subjects.js'
import type { FenceBody, Output, Reading } from './types.js'

export const ERROR_HEADER = 'Pitwall-Error-Code'

/** Longest run of snapshot serialisation before a checkpoint lets intake go on (ms). */
const CAPTURE_SLICE_MS = 2

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
  /** Share of the worker's active-actor bound this partition may hold (set by the worker). */
  activeBound: () => number
  private lastMsg: JsMsg | undefined
  private lastSeq: number
  private lastProcTime = 0
  /** Event time (NaN for ticks) and JetStream timestamp of the message being handled: output latency metrics. */
  private curEventTs = Number.NaN
  private curIngestTs = 0
  /** When the message being handled was taken from the consumer (Date.now()), for the stats' alert_wait_ms. */
  private curTakenAt = 0
  /** When the client read that message off the socket (Date.now()), for the stats' alert_recv_ms. */
  private curReceivedAt: number | undefined
  private msgsSinceCheckpoint = 0
  private lastCheckpointAt = Date.now()
  /** Local time the last successful record write was sent: our lease is safe until this + ttl. */
  private leaseSentAt: number
  private checkpointing: Promise<void> | undefined
  /** A lease renewal in flight (record CAS); a checkpoint waits for it, never writes the record beside it. */
  private renewing: Promise<void> | undefined
  private loop: Promise<void> | undefined
  private timers: NodeJS.Timeout[] = []
  private querySub: Subscription | undefined
  private tickCount = 0
  private readonly source: SegmentSource
  private readonly snapshots: SnapshotStore
  private readonly acks: AckPublisher
  /** Snapshot puts' acks: on RuntimeDeps.snapshotNc when there is one, else `acks`. */
  private readonly snapshotAcks: AckPublisher
  private readonly sink: OutputSink
  /** Called once when the runner stops on its own (fenced or failed). */
  onExit: ((r: PartitionRunner, err?: unknown) => void) | undefined

  constructor(deps: RuntimeDeps, stats: RuntimeStats, partition: number, held: HeldRecord, acquiredAt: number) {
    this.deps = deps
    this.stats = stats
    this.partition = partition
    this.held = held
    this.claims = [...(held.record.claims ?? []), [held.record.token, held.revision]]
    this.leaseSentAt = acquiredAt
    const chain = held.record.segments ?? defaultChain(deps.cfg.site)
    this.source = new SegmentSource(deps, partition, held.record.token, chain, held.record.cursor)
    this.lastSeq = this.source.floor
    this.acks = new AckPublisher(deps.nc, `out${partition}`)
    this.snapshotAcks = deps.snapshotNc ? new AckPublisher(deps.snapshotNc, `snap${partition}`) : this.acks
    this.snapshots = new SnapshotStore(
      {
        kv: deps.kv,
        cfg: deps.cfg,
        log: deps.log,
        peer: deps.cfg.peer ? mirrorPeerSnapshots(deps.js, deps.jsm, deps.cfg) : undefined,
        acks: this.snapshotAcks,
      },
      { partition, token: held.record.token, chain, claims: this.claims },
    )
    this.sink = new OutputSink(this.acks, { site: deps.cfg.site, partition, token: held.record.token }, deps.observe)
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
  /** Messages of this partition still waiting in the stream behind the last one received (consumer lag). */
  get lag(): number {
    return this.source.lag
  }

  /** Fence marker, snapshot prefetch, consumer from cursor + 1, message loop, tick and renewal timers, query endpoint. */
  async start(): Promise<void> {
    const { js, cfg } = this.deps
    const chain = this.source.chain
    const fence: Output<'fence'> = {
      id: `${SYS_KIND}:fence:${this.partition}:${this.token}`,
      type: 'fence',
      kind: SYS_KIND,
      entity: 'fence',
      profile: SYS_KIND,
      ts: Date.now(),
      seq: this.lastSeq,
      site: cfg.site,
      partition: this.partition,
      token: this.token,
      body: {
        partition: this.partition,
        token: this.token,
        owner: cfg.workerId,
        // A moved partition's chain: projectors learn from it which positions are off the chain (seals).
        ...(chain.length > 1 ? { segments: [...chain] } : {}),
      } satisfies FenceBody,
    }
    await js.publish(fenceSubject(cfg.site, this.partition), JSON.stringify(fence), { msgID: fence.id })
    await this.snapshots.prefetch(js, this.deps.jsm, () => this.state !== 'stopped' && this.state !== 'fenced')
    await this.source.open()
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
    const cfg = this.deps.cfg
    for await (const item of this.source.messages(() => this.state === 'running')) {
      if ('advanced' in item) {
        this.lastSeq = Math.max(this.lastSeq, item.floor)
        this.lastMsg = undefined
        continue
      }
      const { m, pos, receivedAt } = item
      // Caught up on the open segment: actors that have not shown up by now load from the bucket when they do.
      if (this.source.lag === 0 && this.source.segment.to === undefined && this.snapshots.prefetched > 0)
        this.snapshots.dropPrefetch()
      // An ack_wait redelivery of something already handled: the cells would skip it anyway.
      if (pos <= this.lastSeq) continue
      this.curReceivedAt = receivedAt
      this.curTakenAt = Date.now()
      await this.handle(m, pos)
      this.lastMsg = m
      this.lastSeq = pos
      this.msgsSinceCheckpoint++
      if (this.sink.inFlight >= cfg.maxPendingOutputs) await this.sink.flush()
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
    if (this.state === 'running') {
      throw new PitwallError(
        RuntimeErrorCodes.SHUTTING_DOWN,
        `partition ${this.partition}: the consumer ended unexpectedly`,
        { retryable: true },
      )
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
    if (
      !isEntityKind(parsed.kind) ||
      !reading ||
      typeof reading.ts !== 'number' ||
      !Number.isFinite(reading.ts) ||
      typeof reading.fields !== 'object' ||
      reading.fields === null
    ) {
      this.stats.invalid++
      return
    }
    const cell = await this.activate(parsed.kind, parsed.id, reading.profile)
    if (!cell) {
      this.stats.invalid++
      return
    }
    this.curEventTs = reading.ts
    const outcome = cell.applyReading(pos, procTime, reading, this.emit, this.deps.refs)
    if (outcome === ReadingOutcome.REPLAY) this.stats.skippedReplay++
    else if (outcome === ReadingOutcome.DUPLICATE) this.stats.duplicates++
    else {
      if (outcome === ReadingOutcome.UNVERIFIABLE) this.stats.ridUnverifiable++
      this.stats.processed++
      this.deps.observe?.reading?.(cell.def.profile)
    }
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
    this.stats.outputs++
    this.sink.emit(o, this.curEventTs, this.curIngestTs, this.curTakenAt, this.curReceivedAt)
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
      throw new PitwallError(
        RuntimeErrorCodes.PROFILE_UNKNOWN,
        `snapshot of ${key} names profile ${name}, which this worker does not have`,
      )
    }
    const cell = new ActorCell(entry.def, entry.config, { kind, id }, snap, this.deps.cfg.dedupe)
    this.cells.set(key, cell)
    this.dormant.delete(key)
    this.stats.activations++
    return cell
  }

  /** The snapshot an actor starts from (actors/snapshots.ts), counting the stale ones skipped. */
  private async loadSnapshot(kind: string, id: string): Promise<SnapshotRecord | undefined> {
    const before = this.snapshots.staleIgnored
    const snap = await this.snapshots.load(kind, id)
    this.stats.staleSnapshotsIgnored += this.snapshots.staleIgnored - before
    return snap
  }

  private leaseSafe(): boolean {
    // A margin of a quarter TTL: a paused process that wakes up near expiry does not write.
    return Date.now() < this.leaseSentAt + this.deps.cfg.leaseTtlMs * 0.75
  }

  /** Outputs, then dirty snapshots, then the cursor (CAS, fenced), then AckAll. Serialised. */
  checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing
    const renewing = this.renewing
    this.checkpointing = (
      renewing ? renewing.catch(() => undefined).then(() => this.doCheckpoint()) : this.doCheckpoint()
    ).finally(() => {
      this.checkpointing = undefined
    })
    return this.checkpointing
  }

  /**
   * Snapshots of every cell dirty now, taken a few milliseconds at a time (`CAPTURE_SLICE_MS`) with intake
   * running in between: serialising a thousand 2 KB snapshots in one go stalled every reading behind it. A cell
   * is captured as it is when its turn comes; what it applies after that makes it dirty again from that position
   * (`dirtyFrom`), which the cursor of this checkpoint stays below (see doCheckpoint).
   */
  private async captureDirty(): Promise<Array<{ cell: ActorCell; from: number; key: string; data: string }>> {
    const todo: ActorCell[] = []
    for (const c of this.cells.values()) if (c.dirty) todo.push(c)
    const out: Array<{ cell: ActorCell; from: number; key: string; data: string }> = []
    let sliceStart = performance.now()
    for (const c of todo) {
      if (performance.now() - sliceStart >= CAPTURE_SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (this.state === 'fenced' || this.state === 'stopped')
          throw new PitwallError(
            RuntimeErrorCodes.SHUTTING_DOWN,
            `partition ${this.partition}: stopped during a checkpoint`,
          )
        sliceStart = performance.now()
      }
      if (!c.dirty) continue
      out.push({
        cell: c,
        from: c.dirtyFrom,
        key: snapshotKey(this.partition, c.entity.kind, c.entity.id),
        data: JSON.stringify(c.snapshot(this.token)),
      })
      c.dirty = false
    }
    return out
  }

  /**
   * The cursor a checkpoint may record: every message up to it has its outputs acked (`flushedUpto`) and its
   * effect in a stored snapshot, i.e. it lies below the first unsnapshotted change of every cell that is dirty now.
   * A replay from there re-applies only what some cell has not stored; cells skip what their snapshot holds.
   */
  private safeCursor(flushedUpto: number): number {
    let cursor = flushedUpto
    for (const c of this.cells.values()) if (c.dirty && c.dirtyFrom - 1 < cursor) cursor = c.dirtyFrom - 1
    return cursor
  }

  private async doCheckpoint(): Promise<void> {
    if (this.state === 'fenced' || this.state === 'stopped') return
    const started = Date.now()
    const victims = this.passivationCandidates()
    const dormant: Record<string, number> = {}
    for (const [k, at] of this.dormant) dormant[k] = at
    // Live cells' processing-time timers too: a new owner after a crash or handover must wake them.
    for (const [k, c] of this.cells) {
      const t = c.nextProcTimer()
      if (t !== undefined) dormant[k] = t
    }
    let snaps: Array<{ cell: ActorCell; from: number; key: string; data: string }> = []
    try {
      snaps = await this.captureDirty()
      // Everything applied so far has emitted its outputs: once they are acked, the cursor may reach this far.
      const flushedUpto = this.lastSeq
      const ackMsg = this.lastMsg
      await this.sink.flush()
      const kv = this.deps.kv
      // A lease that may have run out (a slow start, a long pause) is renewed by CAS before anything is written:
      // if another owner took the partition meanwhile, its acquisition moved the revision and this fences us.
      if (!this.leaseSafe()) {
        const sentAt = Date.now()
        this.held = await writeHeld(
          kv,
          this.partition,
          this.held,
          { ...this.held.record, renewedAt: sentAt },
          this.deps.cfg.peer !== null,
        )
        this.leaseSentAt = sentAt
        this.deps.log('info', 'lease renewed late', { partition: this.partition, token: this.token })
      }
      await this.snapshots.put(snaps)
      this.stats.snapshotsWritten += snaps.length
      let bytes = 0
      for (const s of snaps) bytes += s.data.length
      this.stats.snapshotBytes += bytes
      // Our claim goes into the record so later owners can recognise stale snapshots too (last 16 kept).
      const cursor = this.safeCursor(flushedUpto)
      const next: PartitionRecord = {
        ...this.held.record,
        cursor,
        renewedAt: Date.now(),
        dormant,
        claims: this.claims.slice(-16),
      }
      const sentAt = Date.now()
      this.held = await writeHeld(kv, this.partition, this.held, next, this.deps.cfg.peer !== null)
      this.leaseSentAt = sentAt
      // AckAll past the cursor is safe: acks only stop redelivery to this consumer; a new owner starts a consumer
      // of its own from the recorded cursor.
      ackMsg?.ack()
      this.stats.checkpoints++
      this.deps.observe?.checkpoint((Date.now() - started) / 1000)
      this.deps.observe?.checkpointBytes?.(bytes)
      this.msgsSinceCheckpoint = 0
      this.lastCheckpointAt = started
      this.passivate(victims)
    } catch (err) {
      // Cells whose snapshot did not land are dirty again, from where they were; a fenced runner stops.
      for (const s of snaps) {
        if (!s.cell.dirty) s.cell.dirtyFrom = s.from
        else s.cell.dirtyFrom = Math.min(s.cell.dirtyFrom, s.from)
        s.cell.dirty = true
      }
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

  /**
   * Every heartbeat: a checkpoint when one is due by time, else a lease renewal alone (the record as the last
   * checkpoint wrote it, with a new `renewedAt`). Keeping the lease apart lets checkpoints be rarer than
   * heartbeats (fewer snapshot writes under load) without the lease running out between them.
   */
  private async renewTick(): Promise<void> {
    if (this.state !== 'running') return
    try {
      if (this.checkpointing || this.renewing) return
      if (Date.now() - this.lastCheckpointAt >= this.deps.cfg.checkpointIntervalMs) await this.checkpoint()
      else await this.renewLease()
    } catch (err) {
      this.fail(err)
    }
  }

  /** Renews the lease by CAS on the record (fenced if another owner took it); serialised with checkpoints. */
  private renewLease(): Promise<void> {
    if (this.checkpointing) return this.checkpointing
    if (this.renewing) return this.renewing
    const renew = async (): Promise<void> => {
      if (this.state === 'fenced' || this.state === 'stopped') return
      const sentAt = Date.now()
      this.held = await writeHeld(
        this.deps.kv,
        this.partition,
        this.held,
        { ...this.held.record, renewedAt: sentAt },
        this.deps.cfg.peer !== null,
      )
      this.leaseSentAt = sentAt
    }
    this.renewing = renew().finally(() => {
      this.renewing = undefined
    })
    return this.renewing
  }

  private async publishTick(): Promise<void> {
    if (this.state !== 'running') return
    const { js, cfg } = this.deps
    try {
      await js.publish(tickSubject(cfg.site, this.partition), '', {
        msgID: `tick:${this.partition}:${this.token}:${this.tickCount++}`,
      })
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
        body = {
          source: 'live',
          kind: q.kind,
          id: q.id,
          profile: live.def.profile,
          lastSeq: live.lastSeq,
          watermark: live.watermark,
          state: live.query(),
        }
      } else {
        const snap = await this.loadSnapshot(q.kind, q.id)
        const entry = snap ? this.deps.profiles.get(snap.profile) : undefined
        if (!snap || !entry) throw new PitwallError(RuntimeErrorCodes.ENTITY_UNKNOWN, `no actor ${q.kind}/${q.id}`)
        const cell = new ActorCell(entry.def, entry.config, { kind: q.kind, id: q.id }, snap, this.deps.cfg.dedupe)
        body = {
          source: 'snapshot',
          kind: q.kind,
          id: q.id,
          profile: snap.profile,
          lastSeq: cell.lastSeq,
          watermark: cell.watermark,
          state: cell.query(),
        }
      }
      msg.respond(te.encode(JSON.stringify(body)))
    } catch (err) {
      const e =
        err instanceof PitwallError
          ? err
          : new PitwallError(RuntimeErrorCodes.QUERY_FAILED, String(err), { cause: err })
      h.set(ERROR_HEADER, e.code)
      msg.respond(te.encode(JSON.stringify(e.toWire())), { headers: h })
    }
  }

  private fail(err: unknown): void {
    if (this.state === 'stopped' || this.state === 'fenced') return
    const fenced = err instanceof FencedError
    this.deps.log(fenced ? 'warn' : 'error', fenced ? 'partition fenced' : 'partition runner failed', {
      partition: this.partition,
      token: this.token,
      err: String(err),
    })
    this.state = 'fenced'
    if (fenced) this.stats.leaseLost++
    void this.teardown(false)
      .then(async () => {
        // Not fenced: we still own the record; release it so a peer (or we) can retry without waiting a TTL.
        if (!fenced)
          await writeHeld(
            this.deps.kv,
            this.partition,
            this.held,
            { ...this.held.record, owner: null, renewedAt: Date.now() },
            this.deps.cfg.peer !== null,
          )
      })
      .catch((e: unknown) =>
        this.deps.log('warn', 'release after failure failed', { partition: this.partition, err: String(e) }),
      )
      .finally(() => this.onExit?.(this, err))
  }

  /** Graceful: stop intake, finish the current message, checkpoint, release the record. */
  async stop(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'starting') return
    this.state = 'stopping'
    this.source.stop()
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
    this.querySub?.unsubscribe()
    this.cells.clear()
    this.deps.observe?.partitionClosed?.(this.partition)
    this.sink.close()
    this.acks.close()
    if (this.snapshotAcks !== this.acks) this.snapshotAcks.close()
    // The consumer also expires by itself (inactive_threshold).
    await this.source.close(deleteConsumer)
  }
}
