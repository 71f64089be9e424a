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
  /** Called with the stream sequence and message number (publish's return value) of every acked message. */
  onAck: ((seq: number, num: number) => void) | undefined
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
            this.onAck?.(ack.seq, num)
          }
        } catch {
          this.errors++
        }
        const w = this.waiters.shift()
        if (w) w()
      },
    })
  }

  /** Publishes one message; waits while the window is full. Resolves to the message's number (see onAck). */
  async publish(subject: string, data: string): Promise<number> {
    while (this.inFlight >= this.window) await new Promise<void>((r) => this.waiters.push(r))
    const num = this.n++
    if (this.recordSeqs) this.sentAt.set(num, performance.now())
    this.inFlight++
    this.nc.publish(subject, data, { reply: `${this.prefix}.${num}` })
    return num
  }

  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => this.waiters.push(r))
  }

  close(): void {
    this.sub.unsubscribe()
  }
}

/** One generated reading: entity id, payload, and whether it must produce the alert output the bench times. */
export interface Generated {
  kind: 'sensor' | 'vehicle'
  id: string
  data: string
  expectAlert: boolean
}

/**
 * Environment readings: `sensors` sensors in turn, event time advancing `stepMs` per reading of a sensor.
 * With `alertEvery` > 0 each sensor's battery flips between 80 % and 10 % every `alertEvery` of its readings,
 * so `battery_low` (below 15 %, no duration) opens on the first low reading and closes on the first high one:
 * exactly the flipping readings produce an alert output (`expectAlert`). Flips are staggered across sensors
 * (sensor s first flips after s mod alertEvery + 1 readings), so alerts arrive evenly rather than in bursts of
 * every sensor at once. The period may change between calls (`setAlertEvery`).
 */
export class EnvReadings {
  private i = 0
  private readonly sensors: number
  private readonly base: number
  private readonly stepMs: number
  private readonly prefix: string
  private alertEvery: number
  private readonly low: Uint8Array
  private readonly left: Int32Array

  constructor(sensors: number, opts: { base?: number; stepMs?: number; alertEvery?: number; prefix?: string } = {}) {
    this.sensors = sensors
    this.base = opts.base ?? 1_700_000_000_000
    this.stepMs = opts.stepMs ?? 1_000
    this.alertEvery = opts.alertEvery ?? 0
    this.prefix = opts.prefix ?? 'env-'
    this.low = new Uint8Array(sensors)
    this.left = new Int32Array(sensors)
    this.setAlertEvery(this.alertEvery)
  }

  /** Changes the flip period; countdowns are staggered afresh so the flips stay evenly spread. */
  setAlertEvery(n: number): void {
    this.alertEvery = n
    for (let s = 0; s < this.sensors; s++) this.left[s] = n > 0 ? (s % n) + 1 : 0
  }

  next(): Generated {
    const i = this.i++
    const s = i % this.sensors
    const k = Math.floor(i / this.sensors)
    let flip = false
    if (this.alertEvery > 0) {
      const left = (this.left[s] as number) - 1
      if (left <= 0) {
        flip = true
        this.low[s] = this.low[s] ? 0 : 1
        this.left[s] = this.alertEvery
      } else this.left[s] = left
    }
    const ts = this.base + k * this.stepMs
    const data = JSON.stringify({
      ts,
      fields: {
        temperature: 20 + ((s + k) % 7),
        humidity: 40 + (k % 10),
        co2: 450 + ((s * 7 + k) % 50),
        pressure: 1013,
        battery: this.low[s] ? 10 : 80,
        status: 'ok',
      },
    })
    return { kind: 'sensor', id: `${this.prefix}${s}`, data, expectAlert: flip }
  }
}

/**
 * Race cars (vehicle kind, `race` profile), 10 samples per second of event time each. Every car runs a cycle of
 * `cycle` samples: brakes at 600 °C, then from sample `cycle - heat` on the hottest corner at 980 °C (over the
 * 950 °C threshold). `brake_overheat` needs 2 s of heat: it opens on the hot sample whose event time is 2,000 ms
 * after the first hot one (the 21st at 100 ms spacing), and that reading is the one marked `expectAlert`; the
 * alert closes when the brakes cool at the start of the next cycle. Every other field stays steady so no other
 * alert fires.
 */
export class RaceReadings {
  private i = 0
  private readonly cars: number
  private readonly base: number
  private readonly prefix: string
  static readonly STEP_MS = 100
  static readonly CYCLE = 60
  static readonly HEAT = 30

  constructor(cars: number, opts: { base?: number; prefix?: string } = {}) {
    this.cars = cars
    this.base = opts.base ?? 1_700_000_000_000
    this.prefix = opts.prefix ?? 'car-'
  }

  next(): Generated {
    const i = this.i++
    const c = i % this.cars
    const k = Math.floor(i / this.cars)
    // Cars are staggered through the cycle so openings arrive evenly.
    const inCycle = (k + c * 7) % RaceReadings.CYCLE
    const hot = inCycle >= RaceReadings.CYCLE - RaceReadings.HEAT
    const data = JSON.stringify({
      ts: this.base + k * RaceReadings.STEP_MS,
      profile: 'race',
      fields: {
        speed: 250,
        rpm: 11_000,
        gear: 7,
        throttle: 90,
        brake: 0,
        fuel: 80,
        oil_pressure: 4.5,
        brake_temp_fl: hot ? 980 : 600,
        brake_temp_fr: 590,
        brake_temp_rl: 500,
        brake_temp_rr: 500,
        tyre_temp_fl: 100,
        tyre_temp_fr: 100,
        tyre_temp_rl: 100,
        tyre_temp_rr: 100,
        tyre_wear: 10,
      },
    })
    // The heat run as the car's actor sees it starts at its first hot sample, which for a car whose first
    // sample fell inside a run is that first sample; the alert opens 2 s of event time after it.
    const heatStartK = Math.max(0, k - (inCycle - (RaceReadings.CYCLE - RaceReadings.HEAT)))
    const expectAlert = hot && (k - heatStartK) * RaceReadings.STEP_MS === 2_000
    return { kind: 'vehicle', id: `${this.prefix}${c}`, data, expectAlert }
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  // Nearest rank; the epsilon keeps 99.9 % of 1,000 at rank 999 (99.9 / 100 * 1000 is 999.0000000000001).
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length - 1e-9) - 1))
  return sorted[i] as number
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length
    ? s.length % 2
      ? (s[(s.length - 1) / 2] as number)
      : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2
    : NaN
}
