/**
 * A partition's output sink: actor outputs go to the site's OUT stream as they are emitted, stamped with site,
 * partition and the owner's fencing token, each with a deterministic message id (`<output id>@<token>`: a replay
 * by the same owner dedups, a new owner's version is not mistaken for a stale owner's duplicate).
 *
 * Publishing does not wait: a message is on the wire when `emit` returns, and its ack is counted on the shared
 * inbox subscription of `AckPublisher`. A checkpoint calls `flush()`, which waits for the ack of everything emitted
 * before it (its cursor must not pass an output that JetStream has not stored). This replaced one `js.publish`
 * promise per output, whose request objects and timers the event loop paid for on every reading that alerted.
 */
import { PitwallError, RuntimeErrorCodes } from './errors.js'
import type { AckPublisher, PublishResult } from './publish.js'
import type { RuntimeObserver } from './runtime.js'
import { outSubject } from './subjects.js'
import type { Output } from './types.js'

/** How long a flush waits for an output's ack before the checkpoint fails (and the partition is released). */
const ACK_TIMEOUT_MS = 10_000

export interface OutputStamp {
  site: string
  partition: number
  token: number
}

export class OutputSink {
  /** Ids of outputs sent and not acked, in sending order (a Set iterates in insertion order). */
  private readonly outstanding = new Set<number>()
  private lastId = -1
  private failure: string | undefined
  private waiters: Array<{ upto: number; resolve: () => void }> = []
  outputs = 0

  constructor(
    private readonly acks: AckPublisher,
    private readonly stamp: OutputStamp,
    private readonly observe?: RuntimeObserver | undefined,
  ) {}

  /** Outputs sent and not acknowledged yet. */
  get inFlight(): number {
    return this.outstanding.size
  }

  /**
   * Publishes one output now. `eventMs` is the event time of the reading being handled (NaN for ticks) and
   * `ingestMs` its JetStream timestamp, `takenMs` when the runner took it from its consumer and `receivedMs` when
   * the client read it off the socket, for the output latency metrics.
   */
  emit(
    o: Omit<Output, 'site' | 'partition' | 'token'>,
    eventMs: number,
    ingestMs: number,
    takenMs?: number,
    receivedMs?: number,
  ): void {
    const { site, partition, token } = this.stamp
    const out = { ...o, site, partition, token } as Output
    this.outputs++
    this.observe?.output?.(partition, o, eventMs, ingestMs, takenMs, receivedMs)
    const id = this.acks.send(
      { subject: outSubject(site, partition, o.kind, o.entity), data: JSON.stringify(out), msgID: `${o.id}@${token}` },
      (r, sent) => this.settle(sent, r),
    )
    this.lastId = id
    // `send` may have answered synchronously (a closed connection): settle() then ran before the id was known.
    if (!this.settled.delete(id)) this.outstanding.add(id)
  }

  /** Ids answered before `emit` recorded them (synchronous failures). */
  private readonly settled = new Set<number>()

  private settle(id: number, r: PublishResult): void {
    if (!r.ok && this.failure === undefined) this.failure = `output not stored in OUT: ${r.error}`
    if (!this.outstanding.delete(id)) this.settled.add(id)
    this.wake()
  }

  private oldest(): number {
    for (const id of this.outstanding) return id
    return Number.POSITIVE_INFINITY
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const oldest = this.oldest()
    this.waiters = this.waiters.filter((w) => {
      if (w.upto >= oldest) return true
      w.resolve()
      return false
    })
  }

  /** Waits until everything emitted so far is acknowledged; throws if any output failed or timed out. */
  async flush(timeoutMs = ACK_TIMEOUT_MS): Promise<void> {
    const upto = this.lastId
    if (this.oldest() > upto) return this.check()
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      this.waiters.push({ upto, resolve })
      timer = setTimeout(() => {
        for (const id of [...this.outstanding])
          if (id <= upto) this.acks.expire(id, `no JetStream ack within ${timeoutMs} ms`)
      }, timeoutMs)
    })
    clearTimeout(timer)
    this.check()
  }

  private check(): void {
    if (this.failure !== undefined) {
      throw new PitwallError(RuntimeErrorCodes.OUTPUT_FAILED, `partition ${this.stamp.partition}: ${this.failure}`, {
        retryable: true,
      })
    }
  }

  /** Stops waiting: pending flushes resolve (and throw if anything failed). */
  close(): void {
    for (const id of [...this.outstanding]) this.acks.expire(id, 'partition closed')
  }
}
