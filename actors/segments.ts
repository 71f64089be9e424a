/**
 * A partition's input: its chain of stream segments, read in order through one private pull consumer at a time.
 *
 * A partition that never moved has one open segment (this site's TLM from sequence 1). A partition that moved
 * between sites (failover, failback) has a chain: sealed segments (a stream read up to the seal, `to`) followed
 * by the open one; positions are `position(epoch, seq)`, so they compare across segments (actors/sitemap.ts).
 * The source yields each message with its chain position, moves to the next segment when a sealed one is done,
 * and reports the consumer's lag. What to do with a message, and what was applied, is the runner's business.
 */
import { AckPolicy, DeliverPolicy, type Consumer, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream'
import { nanos } from '@nats-io/transport-node'
import { PitwallError, RuntimeErrorCodes } from './errors.js'
import type { RuntimeDeps } from './runtime.js'
import { epochOf, position, type Segment, segmentOf, segmentStream, seqOf } from './sitemap.js'
import { tlmPartitionFilter } from './subjects.js'

/**
 * A message at chain position `pos` (`receivedAt`: when the client read it off the socket, Date.now(), where
 * known), or the move to the next segment (everything before `floor` is done).
 */
export type SourceItem = { m: JsMsg; pos: number; receivedAt?: number } | { advanced: Segment; floor: number }

/**
 * Stamps each message as the client reads it off the socket, for the stats' `alert_recv_ms`. The consumer stays in
 * iterator mode: there the client sends its next pull request only when the reader reaches it in the queue, which
 * is the runner's backpressure; callback mode (tried for this stamp) pulls on receipt, so a slow runner would let
 * up to max_ack_pending messages per partition pile up in the worker. The iterator has no public hook for the
 * moment of receipt, so this wraps its internal `_push` (called from the subscription's callback), guarded:
 * without it no stamp is taken and `alert_recv_ms` is not reported (test/integration/worker-stats.test.ts fails).
 */
function stampReceipt(iter: ConsumerMessages, stamps: WeakMap<JsMsg, number>): void {
  const target = iter as unknown as { _push?: (r: unknown) => void }
  const push = target._push
  if (typeof push !== 'function') return
  target._push = function (this: unknown, r: unknown): void {
    if (typeof r === 'object' && r !== null) stamps.set(r as JsMsg, Date.now())
    push.call(this, r)
  }
}

export class SegmentSource {
  readonly chain: readonly Segment[]
  private seg: Segment
  private stream = ''
  private consumerName = ''
  private iter: ConsumerMessages | undefined
  /** When the client read each message off the socket (Date.now()). */
  private readonly receivedAt = new WeakMap<JsMsg, number>()
  private consumer: Consumer | undefined
  /** Set when a sealed segment has been read to its end: the reader moves to the next segment. */
  private segmentDone = false
  /** Messages of the current consumer the reader has finished with (handled or skipped). */
  private segHandled = 0
  private sealTimer: NodeJS.Timeout | undefined
  /** The position just before the next message to read (the cursor, moved to a segment start when sealed). */
  floor: number
  /** Messages of this partition still waiting in the stream behind the last one received (consumer lag). */
  lag = 0

  constructor(
    private readonly deps: Pick<RuntimeDeps, 'js' | 'jsm' | 'cfg' | 'log'>,
    private readonly partition: number,
    private readonly token: number,
    chain: readonly Segment[],
    cursor: number,
  ) {
    this.chain = chain
    this.floor = cursor
    this.seg = this.segmentAt(cursor)
  }

  get segment(): Segment {
    return this.seg
  }

  /**
   * The segment to read from position `pos` on: the one holding it, or the next one when that one is sealed
   * at or before `pos`. Moving on sets `floor` to just before the next segment's first position.
   */
  private segmentAt(pos: number): Segment {
    let i = pos === 0 ? 0 : this.chain.findIndex((s) => s === segmentOf(this.chain, pos))
    if (i < 0) {
      throw new PitwallError(
        RuntimeErrorCodes.SNAPSHOT_CORRUPT,
        `partition ${this.partition}: cursor ${pos} (epoch ${epochOf(pos)}) is in no segment of its chain`,
      )
    }
    let seg = this.chain[i] as Segment
    while (
      seg.to !== undefined &&
      pos !== 0 &&
      epochOf(pos) === seg.epoch &&
      seqOf(pos) >= seg.to &&
      i + 1 < this.chain.length
    ) {
      seg = this.chain[++i] as Segment
      pos = position(seg.epoch, seg.from - 1)
      this.floor = Math.max(this.floor, pos)
    }
    return seg
  }

  private nameFor(seg: Segment): string {
    return `pw_${this.deps.cfg.site}_${this.partition}_${this.token}_${seg.epoch}`
  }

  /** A private pull consumer on the current segment, from the message after `floor`. */
  async open(): Promise<void> {
    const { js, jsm, cfg } = this.deps
    const seg = this.seg
    this.stream = segmentStream(cfg, seg)
    this.consumerName = this.nameFor(seg)
    const start = Math.max(seg.from, epochOf(this.floor) === seg.epoch ? seqOf(this.floor) + 1 : seg.from)
    await jsm.consumers.add(this.stream, {
      name: this.consumerName,
      filter_subject: tlmPartitionFilter(seg.site, this.partition),
      ack_policy: AckPolicy.All,
      ...(start > 1
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }
        : { deliver_policy: DeliverPolicy.All }),
      max_ack_pending: cfg.maxInFlight,
      ack_wait: nanos(Math.max(30_000, cfg.leaseTtlMs * 2)),
      inactive_threshold: nanos(Math.max(30_000, cfg.leaseTtlMs * 5)),
    })
    this.consumer = await js.consumers.get(this.stream, this.consumerName)
    // Abort (and let the worker reacquire) rather than wait forever for a consumer that a server restart or the
    // inactivity threshold removed.
    this.iter = await this.consumer.consume({
      max_messages: Math.min(2_000, cfg.maxInFlight),
      abort_on_missing_resource: true,
    })
    stampReceipt(this.iter, this.receivedAt)
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
    if (seg.to === undefined || !consumer || this.segmentDone) return
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

  /** Moves from a finished sealed segment to the next one of the chain. */
  private async advance(): Promise<void> {
    const i = this.chain.indexOf(this.seg)
    const next = this.chain[i + 1]
    if (!next)
      throw new PitwallError(
        RuntimeErrorCodes.SHUTTING_DOWN,
        `partition ${this.partition}: sealed segment ${this.seg.epoch} has no successor`,
      )
    const old = { stream: this.stream, name: this.consumerName }
    this.seg = next
    this.floor = Math.max(this.floor, position(next.epoch, next.from - 1))
    this.deps.log('info', 'partition moves to the next segment', {
      partition: this.partition,
      epoch: next.epoch,
      site: next.site,
      from: next.from,
    })
    await this.deps.jsm.consumers.delete(old.stream, old.name).catch(() => undefined)
    await this.open()
  }

  /**
   * Messages in chain order while `running()`; the reader's work on an item is done when it asks for the next.
   * Ends when `running()` turns false or the consumer ends; a finished sealed segment moves on to the next.
   */
  async *messages(running: () => boolean): AsyncGenerator<SourceItem> {
    for (;;) {
      const iter = this.iter
      if (!iter) return
      const seg = this.seg
      for await (const m of iter) {
        if (!running()) break
        if (seg.to !== undefined && m.seq > seg.to) {
          // Past the seal: the rest of this stream belongs to no chain position (a later owner took over).
          this.segmentDone = true
          iter.stop()
          break
        }
        this.lag = m.info.pending
        const pos = position(seg.epoch, m.seq)
        yield { m, pos, receivedAt: this.receivedAt.get(m) }
        if (pos > this.floor) this.floor = pos
        this.segHandled++
      }
      if (!running() || !this.segmentDone) return
      await this.advance()
      yield { advanced: this.seg, floor: this.floor }
      // A stop that came while the next consumer was being opened stopped the old iterator only.
      if (!running()) {
        this.iter?.stop()
        return
      }
    }
  }

  /** Stops reading (the reader's loop ends after the message in hand). */
  stop(): void {
    this.iter?.stop()
  }

  /** Stops reading and timers; deletes the consumer when asked (it also expires by itself). */
  async close(deleteConsumer: boolean): Promise<void> {
    if (this.sealTimer) clearInterval(this.sealTimer)
    this.sealTimer = undefined
    this.iter?.stop()
    if (!deleteConsumer) return
    try {
      await this.deps.jsm.consumers.delete(this.stream, this.consumerName)
    } catch (err) {
      this.deps.log('debug', 'consumer delete failed', { partition: this.partition, err: String(err) })
    }
  }
}
