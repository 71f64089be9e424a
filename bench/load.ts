/**
 * Load generation for the benchmarks: a raw JetStream publisher (core publish with a reply inbox, acks counted
 * on one wildcard subscription, a bounded window in flight). The same publisher is the baseline (readings into
 * a bare stream) and the load of the end-to-end run, so the ratio compares like with like.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node'

export class RawPublisher {
  private readonly nc: NatsConnection
  private readonly prefix: string
  private readonly sub: Subscription
  private readonly window: number
  private n = 0
  inFlight = 0
  acked = 0
  errors = 0
  /** Send time (ms, performance.now) by message number, and stream seq -> send time once acked. */
  private readonly sentAt = new Map<number, number>()
  readonly seqSentAt = new Map<number, number>()
  recordSeqs = false
  private waiters: Array<() => void> = []

  constructor(nc: NatsConnection, window = 2_000) {
    this.nc = nc
    this.window = window
    this.prefix = `_bench.${Math.random().toString(36).slice(2)}`
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (_err, msg) => {
        this.inFlight--
        const num = Number(msg.subject.slice(this.prefix.length + 1))
        const t = this.sentAt.get(num)
        this.sentAt.delete(num)
        try {
          const ack = msg.json<{ seq?: number; error?: unknown }>()
          if (ack.error || ack.seq === undefined) this.errors++
          else {
            this.acked++
            if (this.recordSeqs && t !== undefined) this.seqSentAt.set(ack.seq, t)
          }
        } catch {
          this.errors++
        }
        const w = this.waiters.shift()
        if (w) w()
      },
    })
  }

  /** Publishes one message; waits while the window is full. */
  async publish(subject: string, data: string): Promise<void> {
    while (this.inFlight >= this.window) await new Promise<void>((r) => this.waiters.push(r))
    const num = this.n++
    if (this.recordSeqs) this.sentAt.set(num, performance.now())
    this.inFlight++
    this.nc.publish(subject, data, { reply: `${this.prefix}.${num}` })
  }

  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => this.waiters.push(r))
  }

  close(): void {
    this.sub.unsubscribe()
  }
}

/** Environment readings: `sensors` sensors, event time advancing `stepMs` per reading of a sensor. */
export class EnvReadings {
  private i = 0
  private readonly sensors: number
  private readonly base: number
  private readonly stepMs: number
  private readonly alertEvery: number

  /** `alertEvery` > 0: the battery of each sensor alternates low/high every `alertEvery` of its readings. */
  constructor(sensors: number, opts: { base?: number; stepMs?: number; alertEvery?: number } = {}) {
    this.sensors = sensors
    this.base = opts.base ?? 1_700_000_000_000
    this.stepMs = opts.stepMs ?? 1_000
    this.alertEvery = opts.alertEvery ?? 0
  }

  next(): { id: string; data: string } {
    const i = this.i++
    const s = i % this.sensors
    const k = Math.floor(i / this.sensors)
    const low = this.alertEvery > 0 && Math.floor(k / this.alertEvery) % 2 === 1
    const ts = this.base + k * this.stepMs
    const id = `env-${s}`
    const data = JSON.stringify({
      ts,
      fields: {
        temperature: 20 + ((s + k) % 7), humidity: 40 + (k % 10), co2: 450 + ((s * 7 + k) % 50), pressure: 1013,
        battery: low ? 10 : 80, status: 'ok',
      },
    })
    return { id, data }
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i] as number
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? (s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2) : NaN
}
