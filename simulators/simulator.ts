/**
 * Deterministic, seeded telemetry simulator for the two first profiles (DOMAIN.md sections 1 and 2): environment
 * sensors (`env-0001`..) and race cars (`car-01`..). Used by the local launcher and by benchmarks.
 *
 * - `Simulator` (and the `simulate()` generator over it) is pure: the same options give the same items, in the
 *   same order, whatever the machine. Each entity has its own PRNG seeded from (seed, kind, index), so adding
 *   entities does not change the stream of the others.
 * - Items come in delivery order (`at`); a reading's event time is `reading.ts`. Sensors deliver some readings
 *   late (a few seconds, rarely > 30 s), so their delivery order is not event-time order; cars never do (a car
 *   streams over one link in order, which is what the race profile expects).
 * - With `anomalies`, episodes are injected and every reading inside one carries its ground truth. Pit stops
 *   happen with or without `anomalies` (worn tyres must be changed for the race to go on) and are reported as
 *   ground truth `pit_stop`.
 * - `runSimulator()` publishes the items to JetStream, in real time or as fast as a rate allows.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { jetstream, type PubAck } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { ConfigError, SITE_PATTERN, partitionOf, readingMsgId, tlmSubject } from '../actors/mod.js'
import type { EntityKind, Reading } from '../actors/mod.js'
import { entitySeed, Rng } from './truth.js'
import { type Entity, SIM_EPOCH, type SimItem, type SimOptions } from './entity.js'
import { SensorSim } from './environment.js'
import { CarSim } from './race.js'
export { carId, SIM_EPISODES, SIM_EPOCH, SIM_RATES, sensorId } from './entity.js'
export type { GroundTruth, SimEpisode, SimItem, SimOptions } from './entity.js'

// ---- min-heap ---------------------------------------------------------------------------------------------

class Heap<T> {
  private readonly a: T[] = []
  constructor(private readonly less: (x: T, y: T) => boolean) {}
  get size(): number {
    return this.a.length
  }
  top(): T | undefined {
    return this.a[0]
  }
  push(x: T): void {
    const a = this.a
    a.push(x)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(a[i] as T, a[p] as T)) break
      ;[a[i], a[p]] = [a[p] as T, a[i] as T]
      i = p
    }
  }
  pop(): T | undefined {
    const a = this.a
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      this.down()
    }
    return top
  }
  /** Restores the order after the top's key grew (cheaper than pop + push). */
  down(): void {
    const a = this.a
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= a.length) return
      const r = l + 1
      const c = r < a.length && this.less(a[r] as T, a[l] as T) ? r : l
      if (!this.less(a[c] as T, a[i] as T)) return
      ;[a[i], a[c]] = [a[c] as T, a[i] as T]
      i = c
    }
  }
}

// ---- the simulator ----------------------------------------------------------------------------------------

function checkOptions(o: SimOptions): void {
  const int = (k: 'sensors' | 'cars' | 'partitions', min: number): void => {
    if (!Number.isInteger(o[k]) || o[k] < min)
      throw new ConfigError(`sim.${k}`, `must be an integer >= ${min}, got ${o[k]}`)
  }
  if (!Number.isSafeInteger(o.seed)) throw new ConfigError('sim.seed', `must be a safe integer, got ${o.seed}`)
  int('sensors', 0)
  int('cars', 0)
  int('partitions', 1)
  if (o.sensors + o.cars === 0) throw new ConfigError('sim.sensors', 'sensors + cars must be at least 1')
  // Above 1 kHz two samples of one entity could share a millisecond, and with it a message id.
  if (o.sensors > 0 && !(o.sensorHz > 0 && o.sensorHz <= 1000))
    throw new ConfigError('sim.sensorHz', `must be in (0, 1000], got ${o.sensorHz}`)
  if (o.cars > 0 && !(o.carHz > 0 && o.carHz <= 1000))
    throw new ConfigError('sim.carHz', `must be in (0, 1000], got ${o.carHz}`)
  if (!SITE_PATTERN.test(o.site))
    throw new ConfigError('sim.site', `must match ${SITE_PATTERN}, got ${JSON.stringify(o.site)}`)
  if (o.startTs !== undefined && !Number.isSafeInteger(o.startTs))
    throw new ConfigError('sim.startTs', `must be an integer ms time, got ${o.startTs}`)
}

const PROFILE: Record<EntityKind, string> = { sensor: 'environment', vehicle: 'race' }

/**
 * Produces the readings of all entities in delivery order, one `next()` at a time. Memory is bounded: one
 * state per entity plus the readings held back as late (at most ~45 s worth of a few % of the traffic).
 */
export class Simulator {
  readonly startTs: number
  private readonly due: Heap<Entity>
  private readonly held: Heap<SimItem & { n: number }>
  private n = 0

  constructor(readonly opts: SimOptions) {
    checkOptions(opts)
    this.startTs = opts.startTs ?? SIM_EPOCH
    const anomalies = opts.anomalies ?? false
    this.due = new Heap<Entity>(
      (a, b) =>
        a.nextTs < b.nextTs || (a.nextTs === b.nextTs && (a.kind < b.kind || (a.kind === b.kind && a.order < b.order))),
    )
    this.held = new Heap((a, b) => a.at < b.at || (a.at === b.at && a.n < b.n))
    for (let i = 0; i < opts.sensors; i++) {
      this.due.push(
        new SensorSim(i, new Rng(entitySeed(opts.seed, 0, i)), 1000 / opts.sensorHz, this.startTs, anomalies),
      )
    }
    for (let i = 0; i < opts.cars; i++) {
      this.due.push(new CarSim(i, new Rng(entitySeed(opts.seed, 1, i)), 1000 / opts.carHz, this.startTs, anomalies))
    }
  }

  /** The next reading to deliver; readings held back as late come out once their delivery time is reached. */
  next(): SimItem {
    for (;;) {
      const e = this.due.top() as Entity
      const h = this.held.top()
      if (h && h.at <= e.nextTs) {
        this.held.pop()
        const { n: _n, ...item } = h
        return item
      }
      const ts = e.nextTs
      const smp = e.sample(ts)
      e.advance()
      this.due.down()
      const rid = `${e.id}:${ts}`
      const reading: Reading = { ts, fields: smp.fields, profile: PROFILE[e.kind], rid }
      if (smp.loc) reading.loc = smp.loc
      const item: SimItem = { kind: e.kind, id: e.id, reading, at: ts + smp.delayMs }
      if (smp.truth) item.truth = smp.truth
      if (smp.delayMs === 0) return item
      this.held.push({ ...item, n: this.n++ })
    }
  }
}

/** The simulator as an endless generator (deterministic from `opts.seed`). */
export function* simulate(opts: SimOptions): Generator<SimItem, never, undefined> {
  const sim = new Simulator(opts)
  for (;;) yield sim.next()
}

// ---- publishing -------------------------------------------------------------------------------------------

export interface RunSimulatorOptions extends SimOptions {
  /** Readings per second when not `realtime`; unset = as fast as acks come back. */
  ratePerS?: number
  /** Span of event time to simulate, in seconds (in real time it is also the wall-clock run time); unset = until aborted. */
  durationS?: number
  /** Event time = wall clock: each reading is published when it is due (startTs is then now). */
  realtime?: boolean
  /** Publishes awaiting their ack at most; default 1,000. */
  maxInFlight?: number
  onProgress?: (s: { sent: number; perS: number }) => void
  signal?: AbortSignal
}

/** Waits `ms`; false when `signal` aborted the wait. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await sleep(ms, undefined, signal ? { signal } : undefined)
    return true
  } catch (err) {
    if (signal?.aborted) return false
    throw err
  }
}

/**
 * Publishes the simulated readings to `tlm.<site>.<partition>.<kind>.<id>` with JetStream (message id = the
 * reading's `rid`, `<id>:<ts>`, so a re-run deduplicates). Resolves with the number of acknowledged readings when
 * the duration is over or `signal` aborts; rejects with the first failed publish.
 */
export async function runSimulator(nc: NatsConnection, opts: RunSimulatorOptions): Promise<{ sent: number }> {
  const realtime = opts.realtime ?? false
  if (opts.ratePerS !== undefined && !(opts.ratePerS > 0))
    throw new ConfigError('sim.ratePerS', `must be > 0, got ${opts.ratePerS}`)
  if (opts.durationS !== undefined && !(opts.durationS >= 0))
    throw new ConfigError('sim.durationS', `must be >= 0, got ${opts.durationS}`)
  const maxInFlight = opts.maxInFlight ?? 1_000
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
    throw new ConfigError('sim.maxInFlight', `must be an integer >= 1, got ${maxInFlight}`)
  const startTs = realtime || opts.startTs === undefined ? Date.now() : opts.startTs
  const sim = new Simulator({ ...opts, startTs })
  const endTs = opts.durationS === undefined ? Infinity : startTs + opts.durationS * 1000
  const js = jetstream(nc)
  const signal = opts.signal
  const partitionCache = new Map<string, string>()
  const subjectOf = (kind: EntityKind, id: string): string => {
    // Entity count is bounded, so is the cache; it saves hashing every id on every reading.
    let s = partitionCache.get(id)
    if (s === undefined) {
      s = tlmSubject(opts.site, partitionOf(kind, id, opts.partitions), kind, id)
      partitionCache.set(id, s)
    }
    return s
  }

  let pending: Array<Promise<PubAck>> = []
  let sent = 0
  /** Awaits the acks of all but the newest `keep` publishes; the first failure rejects. */
  const drain = async (keep: number): Promise<void> => {
    if (pending.length <= keep) return
    const batch = pending.slice(0, pending.length - keep)
    pending = pending.slice(pending.length - keep)
    const res = await Promise.allSettled(batch)
    for (const r of res) {
      if (r.status === 'rejected') {
        // Settle the newer ones too before rejecting: none is left to fail unhandled behind the first error.
        const rest = pending
        pending = []
        await Promise.allSettled(rest)
        throw r.reason
      }
      sent++
    }
  }
  // Awaiting the older half while the newer half is in flight keeps the connection busy.
  const keep = Math.floor(maxInFlight / 2)

  const wall0 = Date.now()
  let queued = 0
  let progT = wall0
  let progSent = 0
  const progress = (final = false): void => {
    if (!opts.onProgress) return
    const now = Date.now()
    if (now - progT < 1_000 && !(final && now > progT)) return
    opts.onProgress({ sent, perS: Math.round(((sent - progSent) * 1000) / (now - progT)) })
    progT = now
    progSent = sent
  }

  while (!signal?.aborted) {
    const item = sim.next()
    if (item.at >= endTs) break
    if (realtime) {
      // A few ms early is harmless (event time is in the reading) and lets publishes go out in small batches.
      const wait = item.at - Date.now()
      if (wait > 5) {
        await drain(0)
        progress()
        if (!(await pause(wait, signal))) break
      }
    } else if (opts.ratePerS !== undefined) {
      const wait = wall0 + (queued * 1000) / opts.ratePerS - Date.now()
      if (wait > 5 && !(await pause(wait, signal))) break
    }
    pending.push(
      js.publish(subjectOf(item.kind, item.id), JSON.stringify(item.reading), {
        msgID: readingMsgId(item.kind, item.id, item.reading.rid as string),
      }),
    )
    queued++
    if (pending.length >= maxInFlight) {
      await drain(keep)
      progress()
    }
  }
  await drain(0)
  progress(true)
  return { sent }
}
