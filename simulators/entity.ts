/**
 * What the simulated profiles share: options, ground truth, episode guarantees, rates, ids and the entity base
 * class (one sample period, one PRNG, episodes).
 */
import type { EntityKind, FieldValue, Reading } from '../actors/mod.js'
import type { Rng } from './truth.js'

export interface SimOptions {
  seed: number
  sensors: number
  cars: number
  sensorHz: number
  carHz: number
  /** Event time of the first samples (ms); default SIM_EPOCH for `Simulator`, now for `runSimulator`. */
  startTs?: number
  site: string
  partitions: number
  anomalies?: boolean
}

/** An injected episode: every reading with `start <= ts <= end` of that entity is part of it. */
export interface GroundTruth {
  type: string
  start: number
  end: number
}

export interface SimItem {
  kind: EntityKind
  id: string
  reading: Reading
  truth?: GroundTruth
  /** Delivery time (ms, same clock as event time): `reading.ts` plus the transport delay of a late reading. */
  at: number
}

/** Default start of event time when none is given: fixed, so that `simulate()` stays a pure function. */
export const SIM_EPOCH = Date.UTC(2025, 0, 6, 0, 0, 0)

/**
 * What the injected episodes guarantee for every reading inside them (tests check these; the race numbers sit
 * above RACE_DEFAULTS, the environment ones are the domain's usual alert levels).
 */
export const SIM_EPISODES = {
  high_temperature: { kind: 'sensor', field: 'temperature', above: 40, minMs: 60_000 },
  high_co2: { kind: 'sensor', field: 'co2', above: 1500, minMs: 120_000 },
  sensor_failure: { kind: 'sensor', field: 'status', equals: 'failure', minMs: 60_000 },
  brake_overheat: { kind: 'vehicle', field: 'brake_temp_*', above: 950, minMs: 3_000 },
  tire_overheat: { kind: 'vehicle', field: 'tyre_temp_*', above: 130, minMs: 3_000 },
  pit_stop: { kind: 'vehicle', field: 'pit', equals: true, minMs: 0 },
} as const
export type SimEpisode = keyof typeof SIM_EPISODES

/** Injection and delivery rates (per entity). */
export const SIM_RATES = {
  sensorEpisodeGapMs: 40 * 60_000,
  carEpisodeGapMs: 6 * 60_000,
  /** Fraction of sensor readings delivered 0.5-5 s late, and 30-45 s late. */
  lateShort: 0.05,
  lateLong: 0.002,
} as const

export const sensorId = (i: number): string => `env-${String(i + 1).padStart(4, '0')}`
export const carId = (i: number): string => `car-${String(i + 1).padStart(2, '0')}`

export const r1 = (x: number): number => Math.round(x * 10) / 10
export const r2 = (x: number): number => Math.round(x * 100) / 100
export const clamp = (x: number, a: number, b: number): number => (x < a ? a : x > b ? b : x)

// ---- entities ---------------------------------------------------------------------------------------------

export interface Sample {
  fields: Record<string, FieldValue>
  truth?: GroundTruth
  delayMs: number
  loc?: { lat: number; lon: number }
}

export interface Episode {
  type: SimEpisode
  start: number
  end: number
  corner: number
}

export abstract class Entity {
  /** Sample k is due at t0 + round(k * periodMs): integer, strictly increasing event times for Hz <= 1000. */
  nextTs: number
  private k = 0
  private readonly t0: number
  protected nextEpisode: number
  protected episode: Episode | null = null
  constructor(
    readonly kind: EntityKind,
    readonly id: string,
    readonly order: number,
    readonly rng: Rng,
    readonly periodMs: number,
    startTs: number,
    anomalies: boolean,
    gapMs: number,
  ) {
    // A random phase spreads entities over the period instead of publishing them in bursts.
    this.t0 = startTs + Math.floor(rng.next() * periodMs)
    this.nextTs = this.t0
    this.nextEpisode = anomalies ? startTs + rng.exp(gapMs) : Infinity
  }
  advance(): void {
    this.k++
    this.nextTs = this.t0 + Math.round(this.k * this.periodMs)
  }
  abstract sample(ts: number): Sample
  /** Ends the finished episode and starts the next one when it is due and `canStart`. */
  protected episodeAt(
    ts: number,
    gapMs: number,
    canStart: boolean,
    pick: () => { type: SimEpisode; durMs: number; corner?: number },
  ): Episode | null {
    if (this.episode && ts > this.episode.end) {
      this.nextEpisode = this.episode.end + this.rng.exp(gapMs)
      this.episode = null
    }
    if (!this.episode && ts >= this.nextEpisode && canStart) {
      const p = pick()
      // Two sample periods of margin: the readings inside must span the guaranteed duration at any rate.
      const dur = Math.max(p.durMs, SIM_EPISODES[p.type].minMs + 2 * this.periodMs + 1)
      this.episode = { type: p.type, start: ts, end: ts + Math.ceil(dur), corner: p.corner ?? 0 }
    }
    return this.episode
  }
}
