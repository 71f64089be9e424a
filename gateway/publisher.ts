/**
 * JetStream publishing for ingest, a batch at a time: each reading is a core NATS publish with a reply subject
 * under one inbox prefix, and every ack arrives on one wildcard subscription; one timer per batch. This is what
 * `js.publish` does per message (request, reply, ack), without a request object, a subscription lookup and a
 * timer for each of the 500 readings of a batch, which made the gateway spend more time publishing than JetStream
 * spent storing (bench/gateway.ts). The ack is JetStream's PubAck `{stream, seq, duplicate?}`, or
 * `{error: {code, description}}`, or a 503 status when no stream captures the subject.
 */
import { randomBytes } from 'node:crypto'
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node'

export interface PublishItem {
  subject: string
  data: string
  /** JetStream message id (deduplication within the stream's window). */
  msgID?: string | undefined
}

/** `seconds`: from publish to ack (or to the failure being known). */
export type PublishResult = { ok: true; duplicate: boolean; seconds: number } | { ok: false; error: string; seconds: number }

interface Pending {
  t0: number
  done: (r: PublishResult) => void
}

/** Publishes batches to JetStream and waits for every ack, or for the batch's timeout. */
export class BatchPublisher {
  private readonly prefix = `_INBOX.gw${randomBytes(8).toString('hex')}`
  private readonly pending = new Map<number, Pending>()
  private readonly sub: Subscription
  private n = 0

  constructor(private readonly nc: NatsConnection) {
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => { this.onAck(msg) } })
  }

  private onAck(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length + 1))
    const p = this.pending.get(id)
    if (!p) return // answered after its batch timed out
    this.pending.delete(id)
    const seconds = (performance.now() - p.t0) / 1000
    if (msg.headers?.code === 503 || msg.data.length === 0) {
      p.done({ ok: false, error: 'no stream captures this subject (no responders)', seconds })
      return
    }
    try {
      const ack = msg.json<{ seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } }>()
      if (ack.error || typeof ack.seq !== 'number') p.done({ ok: false, error: ack.error?.description ?? 'JetStream refused the message', seconds })
      else p.done({ ok: true, duplicate: ack.duplicate === true, seconds })
    } catch (err) {
      p.done({ ok: false, error: `unreadable ack: ${err instanceof Error ? err.message : String(err)}`, seconds })
    }
  }

  /** Publishes every item; resolves with one result per item, failures included, within `timeoutMs`. */
  async publish(items: readonly PublishItem[], timeoutMs: number): Promise<PublishResult[]> {
    const results: PublishResult[] = new Array<PublishResult>(items.length)
    let left = items.length
    if (left === 0) return results
    let finish: () => void = () => undefined
    const all = new Promise<void>((resolve) => { finish = resolve })
    const ids: number[] = []
    const t0 = performance.now()
    items.forEach((it, i) => {
      const id = this.n++
      ids.push(id)
      this.pending.set(id, { t0, done: (r) => { results[i] = r; if (--left === 0) finish() } })
      try {
        if (it.msgID === undefined) {
          this.nc.publish(it.subject, it.data, { reply: `${this.prefix}.${id}` })
        } else {
          const h = natsHeaders()
          h.set('Nats-Msg-Id', it.msgID)
          this.nc.publish(it.subject, it.data, { reply: `${this.prefix}.${id}`, headers: h })
        }
      } catch (err) {
        this.pending.delete(id)
        results[i] = { ok: false, error: err instanceof Error ? err.message : String(err), seconds: 0 }
        if (--left === 0) finish()
      }
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([all, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
    clearTimeout(timer)
    ids.forEach((id, i) => {
      if (this.pending.delete(id)) results[i] = { ok: false, error: `no JetStream ack within ${timeoutMs} ms`, seconds: (performance.now() - t0) / 1000 }
    })
    return results
  }

  close(): void {
    this.sub.unsubscribe()
    for (const p of this.pending.values()) p.done({ ok: false, error: 'publisher closed', seconds: (performance.now() - p.t0) / 1000 })
    this.pending.clear()
  }
}
