/**
 * JetStream publishing without a request per message: each message is a core NATS publish with a reply subject
 * under one inbox prefix, and every ack arrives on one wildcard subscription. This is what `js.publish` does per
 * message (request, reply, ack) without a request object, a subscription lookup, a timer and an error object
 * with a stack trace for each message, which made the gateway spend more time publishing than JetStream spent
 * storing (bench/gateway.ts) and made every actor output cost a promise chain on the worker's event loop
 * (bench/runtime.ts). The ack is JetStream's PubAck `{stream, seq, duplicate?}`, or `{error: {code,
 * description}}`, or a 503 status when no stream captures the subject.
 *
 * Three users: the gateway publishes an ingest batch and waits for its acks (`BatchPublisher`); a partition runner
 * publishes outputs as it goes and waits for all of them only at a checkpoint (`actors/outputs.ts`), and writes a
 * checkpoint's snapshots as one batch of KV puts (`actors/snapshots.ts`).
 */
import { randomBytes } from 'node:crypto'
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node'

export interface PublishItem {
  subject: string
  data: string | Uint8Array
  /** JetStream message id (deduplication within the stream's window). */
  msgID?: string | undefined
}

/** `seconds`: from publish to ack (or to the failure being known). */
export type PublishResult =
  { ok: true; duplicate: boolean; seq: number; seconds: number } | { ok: false; error: string; seconds: number }

type Done = (r: PublishResult, id: number) => void

interface Pending {
  t0: number
  done: Done
}

/** Sends messages to JetStream and calls each one's `done` with its ack, once. */
export class AckPublisher {
  private readonly prefix: string
  private readonly pending = new Map<number, Pending>()
  private readonly sub: Subscription
  private n = 0

  constructor(
    private readonly nc: NatsConnection,
    tag = 'pw',
  ) {
    this.prefix = `_INBOX.${tag}${randomBytes(8).toString('hex')}`
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (_err, msg) => {
        this.onAck(msg)
      },
    })
  }

  /** Messages sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size
  }

  private onAck(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length + 1))
    const p = this.pending.get(id)
    if (!p) return // answered after it was expired
    this.pending.delete(id)
    const seconds = (performance.now() - p.t0) / 1000
    if (msg.headers?.code === 503 || msg.data.length === 0) {
      p.done({ ok: false, error: 'no stream captures this subject (no responders)', seconds }, id)
      return
    }
    try {
      const ack = msg.json<{ seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } }>()
      if (ack.error || typeof ack.seq !== 'number')
        p.done({ ok: false, error: ack.error?.description ?? 'JetStream refused the message', seconds }, id)
      else p.done({ ok: true, duplicate: ack.duplicate === true, seq: ack.seq, seconds }, id)
    } catch (err) {
      p.done({ ok: false, error: `unreadable ack: ${err instanceof Error ? err.message : String(err)}`, seconds }, id)
    }
  }

  /** Publishes one message now; returns its id (for `expire`). `done` is called exactly once. */
  send(it: PublishItem, done: Done, t0 = performance.now()): number {
    const id = this.n++
    this.pending.set(id, { t0, done })
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
      done({ ok: false, error: err instanceof Error ? err.message : String(err), seconds: 0 }, id)
    }
    return id
  }

  /** Gives up waiting for message `id`: its `done` gets a timeout failure (no-op when already answered). */
  expire(id: number, why: string): void {
    const p = this.pending.get(id)
    if (!p) return
    this.pending.delete(id)
    p.done({ ok: false, error: why, seconds: (performance.now() - p.t0) / 1000 }, id)
  }

  close(): void {
    this.sub.unsubscribe()
    const left = [...this.pending]
    this.pending.clear()
    for (const [id, p] of left)
      p.done({ ok: false, error: 'publisher closed', seconds: (performance.now() - p.t0) / 1000 }, id)
  }
}

/**
 * Publishes every item on `acks` and resolves with one result per item, failures included, within `timeoutMs`
 * (what was not answered by then is expired). Used for the gateway's ingest batches and checkpoints' snapshots.
 */
export async function publishBatch(
  acks: AckPublisher,
  items: readonly PublishItem[],
  timeoutMs: number,
): Promise<PublishResult[]> {
  const results: PublishResult[] = new Array<PublishResult>(items.length)
  let left = items.length
  if (left === 0) return results
  let finish: () => void = () => undefined
  const all = new Promise<void>((resolve) => {
    finish = resolve
  })
  const t0 = performance.now()
  const ids = items.map((it, i) =>
    acks.send(
      it,
      (r) => {
        results[i] = r
        if (--left === 0) finish()
      },
      t0,
    ),
  )
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    all,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs)
    }),
  ])
  clearTimeout(timer)
  for (const id of ids) acks.expire(id, `no JetStream ack within ${timeoutMs} ms`)
  return results
}

/** Publishes batches to JetStream and waits for every ack, or for the batch's timeout (the gateway's ingest). */
export class BatchPublisher {
  private readonly acks: AckPublisher

  constructor(nc: NatsConnection) {
    this.acks = new AckPublisher(nc, 'gw')
  }

  /** Publishes every item; resolves with one result per item, failures included, within `timeoutMs`. */
  publish(items: readonly PublishItem[], timeoutMs: number): Promise<PublishResult[]> {
    return publishBatch(this.acks, items, timeoutMs)
  }

  close(): void {
    this.acks.close()
  }
}
