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
import type { EntityKind, FieldValue, Reading } from '../actors/mod.js'
import { entitySeed, Rng } from './truth.js'

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

// ---- randomness -------------------------------------------------------------------------------------------

// The PRNG and per-entity seeding are shared with the domain simulators (sites/simulate/truth.ts).

const r1 = (x: number): number => Math.round(x * 10) / 10
const r2 = (x: number): number => Math.round(x * 100) / 100
const clamp = (x: number, a: number, b: number): number => (x < a ? a : x > b ? b : x)

// ---- min-heap ---------------------------------------------------------------------------------------------

class Heap<T> {
  private readonly a: T[] = []
  constructor(private readonly less: (x: T, y: T) => boolean) {}
  get size(): number { return this.a.length }
  top(): T | undefined { return this.a[0] }
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

// ---- entities ---------------------------------------------------------------------------------------------

interface Sample { fields: Record<string, FieldValue>; truth?: GroundTruth; delayMs: number; loc?: { lat: number; lon: number } }

interface Episode { type: SimEpisode; start: number; end: number; corner: number }

abstract class Entity {
  /** Sample k is due at t0 + round(k * periodMs): integer, strictly increasing event times for Hz <= 1000. */
  nextTs: number
  private k = 0
  private readonly t0: number
  protected nextEpisode: number
  protected episode: Episode | null = null
  constructor(readonly kind: EntityKind, readonly id: string, readonly order: number, readonly rng: Rng,
    readonly periodMs: number, startTs: number, anomalies: boolean, gapMs: number) {
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
  protected episodeAt(ts: number, gapMs: number, canStart: boolean, pick: () => { type: SimEpisode; durMs: number; corner?: number }): Episode | null {
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

const HOUR = 3_600_000

class SensorSim extends Entity {
  private readonly lat: number
  private readonly lon: number
  private readonly tOffset: number
  private readonly hOffset: number
  private readonly occScale: number
  private tNoise = 0
  private pressure: number
  private battery: number
  private readonly drainPerH: number
  private meetingAt: number
  private meeting: { start: number; end: number; amp: number } | null = null
  private lastTs: number | null = null

  constructor(index: number, rng: Rng, periodMs: number, startTs: number, anomalies: boolean) {
    super('sensor', sensorId(index), index, rng, periodMs, startTs, anomalies, SIM_RATES.sensorEpisodeGapMs)
    this.lat = Math.round((48.8566 + rng.range(-0.05, 0.05)) * 1e5) / 1e5
    this.lon = Math.round((2.3522 + rng.range(-0.08, 0.08)) * 1e5) / 1e5
    this.tOffset = rng.range(-1.5, 1.5)
    this.hOffset = rng.range(-5, 5)
    this.occScale = rng.range(0.4, 1)
    this.pressure = 1013 + rng.normal() * 3
    this.battery = rng.range(60, 100)
    this.drainPerH = rng.range(0.3, 0.8)
    this.meetingAt = startTs + rng.exp(4 * HOUR)
  }

  sample(ts: number): Sample {
    const rng = this.rng
    const dtH = this.lastTs === null ? 0 : (ts - this.lastTs) / HOUR
    this.lastTs = ts
    const hour = (((ts / HOUR) % 24) + 24) % 24
    const ep = this.episodeAt(ts, SIM_RATES.sensorEpisodeGapMs, true, () => {
      const u = rng.next()
      return u < 0.4 ? { type: 'high_temperature', durMs: rng.range(75, 240) * 1000 }
        : u < 0.8 ? { type: 'high_co2', durMs: rng.range(150, 600) * 1000 }
          : { type: 'sensor_failure', durMs: rng.range(60, 600) * 1000 }
    })

    // Daily cycle peaking mid-afternoon, plus a slow AR(1) noise.
    this.tNoise = clamp(0.9 * this.tNoise + 0.3 * rng.normal(), -2, 2)
    let temperature = 18 + 6 * Math.sin((2 * Math.PI * (hour - 9)) / 24) + this.tOffset + this.tNoise
    if (ep?.type === 'high_temperature') temperature = 42 + 5 * rng.next()
    // Warm air holds more water: relative humidity falls as temperature rises.
    const humidity = clamp(55 - 2.2 * (temperature - 18) + this.hOffset + rng.normal(), 15, 95)

    // Occupancy over working hours plus occasional meetings raise CO2 above the outdoor ~420 ppm.
    const occ = hour >= 8 && hour <= 18 ? Math.sin((Math.PI * (hour - 8)) / 10) * this.occScale : 0
    if (!this.meeting && ts >= this.meetingAt) {
      this.meeting = { start: ts, end: ts + rng.range(20, 60) * 60_000, amp: rng.range(60, 150) }
    }
    let bump = 0
    if (this.meeting) {
      const m = this.meeting
      if (ts > m.end) {
        this.meeting = null
        this.meetingAt = ts + rng.exp(4 * HOUR)
      } else {
        bump = m.amp * Math.sin((Math.PI * (ts - m.start)) / (m.end - m.start))
      }
    }
    let co2 = clamp(420 + 280 * occ + bump + clamp(8 * rng.normal(), -25, 25), 400, 900)
    if (ep?.type === 'high_co2') co2 = 1600 + 600 * rng.next()

    // Ornstein-Uhlenbeck around 1013 hPa (6 h relaxation, 5 hPa spread), exact for any step.
    const decay = Math.exp(-dtH / 6)
    this.pressure = clamp(1013 + (this.pressure - 1013) * decay + 5 * Math.sqrt(1 - decay * decay) * rng.normal(), 985, 1040)

    this.battery -= this.drainPerH * dtH
    if (this.battery < 5) this.battery = 100 // a technician swapped it
    const status = ep?.type === 'sensor_failure' ? 'failure' : this.battery < 15 ? 'warning' : 'ok'

    // Most readings arrive on time; a few are held back by the radio link, rarely for long.
    const u = rng.next()
    const delayMs = u < SIM_RATES.lateLong ? Math.round(rng.range(30_000, 45_000))
      : u < SIM_RATES.lateLong + SIM_RATES.lateShort ? Math.round(rng.range(500, 5_000)) : 0

    const s: Sample = {
      fields: {
        temperature: r2(temperature), humidity: r1(humidity), co2: Math.round(co2), pressure: r1(this.pressure),
        battery: r2(this.battery), status,
      },
      delayMs,
      loc: { lat: this.lat, lon: this.lon },
    }
    if (ep) s.truth = { type: ep.type, start: ep.start, end: ep.end }
    return s
  }
}

// The circuit: a 5.85 km lap with nine corners (position m, apex speed km/h, direction); speed comes from a
// braking envelope into each apex and an acceleration limit out of it, which gives ~90 s laps, 300+ km/h
// straights and short, hard braking zones.
const TRACK = {
  lengthM: 5850,
  corners: [
    [936, 95, 1], [1346, 175, -1], [1872, 230, 1], [2691, 85, -1], [3159, 140, 1],
    [3569, 200, -1], [4446, 110, 1], [4856, 160, -1], [5441, 125, 1],
  ],
  topKmh: 318,
  /** Deceleration of a full braking zone, m/s². */
  brakeDecel: 38,
  pitKmh: 80,
  pitInM: 300,
  pitOutM: 300,
  pitStopMs: 2_500,
  drs: [[5560, 5850], [0, 760], [1990, 2570]],
} as const
const L = TRACK.lengthM
const PIT_ENTRY = L - TRACK.pitInM
const PIT_A = TRACK.pitInM / (TRACK.pitKmh / 3.6)
const PIT_B = PIT_A + 1
const PIT_C = PIT_B + TRACK.pitStopMs / 1000
const PIT_D = PIT_C + 1.5
const PIT_TOTAL_S = PIT_D + TRACK.pitOutM / (TRACK.pitKmh / 3.6)
const GEAR_TOP = [0, 95, 135, 170, 205, 240, 270, 300, 335] as const
const CORNERS = ['fl', 'fr', 'rl', 'rr'] as const
const BRAKE_HOT = [835, 828, 705, 700] as const
const BRAKE_COOL = [320, 318, 292, 290] as const
/** Tyre wear, % per metre at 0 g (about 4 % per lap). */
const WEAR_PER_M = 3.9e-4
/** Longest physics step: sample periods are cut into steps of at most this, so any carHz integrates alike. */
const MAX_STEP_MS = 50

/** Fastest speed (m/s) at each metre of the lap: the lowest braking curve towards any apex ahead, capped. */
const ENVELOPE: Float64Array = (() => {
  const env = new Float64Array(L)
  for (let i = 0; i < L; i++) {
    let v = TRACK.topKmh / 3.6
    for (const [pos, apex] of TRACK.corners) {
      const d = (pos - i + L) % L
      v = Math.min(v, Math.sqrt((apex / 3.6) ** 2 + 2 * TRACK.brakeDecel * d))
    }
    env[i] = v
  }
  return env
})()

/** Lateral g from the nearest corner: full at the apex, fading out 150 m away. */
function lateralG(s: number, vKmh: number): number {
  let best = 0
  for (const [pos, apex, dir] of TRACK.corners) {
    let d = Math.abs(s - pos)
    if (d > L / 2) d = L - d
    if (d >= 150) continue
    const w = d < 30 ? 1 : (150 - d) / 120
    // The apex is taken at 4 g: that fixes the corner radius.
    const radius = (apex / 3.6) ** 2 / (4 * 9.81)
    const g = ((vKmh / 3.6) ** 2 / (9.81 * radius)) * w * dir
    if (Math.abs(g) > Math.abs(best)) best = g
  }
  return clamp(best, -5.5, 5.5)
}

const DRIVERS = ['VER', 'HAM', 'LEC', 'NOR', 'ALO', 'RUS', 'SAI', 'PIA', 'GAS', 'OCO', 'ALB', 'STR'] as const

class CarSim extends Entity {
  private readonly driver: string
  private readonly skill: number
  private readonly wearRate: number
  private readonly pitWearAt: number
  private s: number
  private lap = 1
  private v: number
  private wear: number
  private fuel: number
  private ers = 2
  private engineT = 110
  private oilT = 118
  private readonly brakeT: number[]
  private readonly tyreT: number[]
  private gLat = 0
  private gLon = 0
  private throttle = 100
  private peakBrake = 0
  private plannedPit = false
  private pit: { start: number; end: number; serviced: boolean } | null = null
  private lastT: number | null = null

  constructor(index: number, rng: Rng, periodMs: number, startTs: number, anomalies: boolean) {
    super('vehicle', carId(index), index, rng, periodMs, startTs, anomalies, SIM_RATES.carEpisodeGapMs)
    this.driver = `${DRIVERS[index % DRIVERS.length] as string}${index >= DRIVERS.length ? Math.floor(index / DRIVERS.length) : ''}`
    this.skill = rng.range(0.985, 1)
    this.wearRate = rng.range(0.85, 1.15)
    this.pitWearAt = rng.range(72, 82)
    // A flying start spread around the lap, with tyres of different ages so that pit stops do not coincide.
    this.s = (index * 577 + rng.range(0, 100)) % L
    this.wear = rng.range(0, 35)
    this.v = this.target()
    this.fuel = rng.range(95, 105)
    this.brakeT = [...BRAKE_COOL].map((x) => x + 80)
    this.tyreT = [92, 92, 90, 90]
  }

  /** Speed the car can carry here (km/h): the envelope scaled by driver skill and slowed by tyre wear. */
  private target(): number {
    const w = this.wear / 100
    return (ENVELOPE[Math.floor(this.s)] as number) * 3.6 * this.skill / (1 + 0.18 * w * w)
  }

  private step(t: number, h: number): void {
    if (this.pit && t >= this.pit.end) {
      this.pit = null
      this.plannedPit = false
    }
    if (!this.pit && this.plannedPit && this.s >= PIT_ENTRY) {
      this.pit = { start: t, end: t + PIT_TOTAL_S * 1000, serviced: false }
    }
    const v0 = this.v
    let brake = 0
    let throttle = 0
    const P = this.pit
    if (P) {
      const e = (t - P.start) / 1000 + h
      const pk = TRACK.pitKmh
      if (e < PIT_A) { this.v = pk; throttle = 25 }
      else if (e < PIT_B) { this.v = pk * Math.max(0, PIT_B - e); brake = 70 }
      else if (e < PIT_C) {
        this.v = 0
        if (!P.serviced) {
          P.serviced = true
          this.wear = 0
          this.tyreT.fill(85) // from the blankets
          // No refuelling in a real race; here it keeps an endless simulation going.
          if (this.fuel < 40) this.fuel = 100
        }
      } else if (e < PIT_D) { this.v = (pk * (e - PIT_C)) / (PIT_D - PIT_C); throttle = 40 }
      else { this.v = pk; throttle = 25 }
    } else {
      let tgt = this.target()
      if (this.plannedPit && this.s < PIT_ENTRY) {
        tgt = Math.min(tgt, Math.sqrt((TRACK.pitKmh / 3.6) ** 2 + 2 * TRACK.brakeDecel * (PIT_ENTRY - this.s)) * 3.6)
      }
      if (tgt >= this.v) {
        const ms = this.v / 3.6
        const accel = Math.max(1, 11 * (1 - (ms / 95.8) ** 2))
        this.v = Math.min(tgt, this.v + accel * 3.6 * h)
        throttle = this.v < tgt || tgt >= TRACK.topKmh * this.skill * 0.97 ? 100 : 55
      } else {
        // Following the braking curve: the pedal follows the deceleration asked for.
        const decel = (this.v - tgt) / 3.6 / h
        brake = Math.min(100, Math.round((100 * decel) / TRACK.brakeDecel))
        this.v = tgt
      }
    }
    this.throttle = throttle
    if (brake > this.peakBrake) this.peakBrake = brake
    this.gLon = (this.v - v0) / 3.6 / h / 9.81
    this.gLat = this.pit ? 0 : lateralG(this.s, this.v)

    const w = this.wear / 100
    const braking = brake > 50
    for (let c = 0; c < 4; c++) {
      // Worn tyres slide and lock: brakes work harder, a little hotter per braking zone.
      const bt = braking ? (BRAKE_HOT[c] as number) * (1 + 0.05 * w * w) : (BRAKE_COOL[c] as number)
      const bT = this.brakeT[c] as number
      this.brakeT[c] = bT + (bt - bT) * (1 - Math.exp(-h / (braking ? 0.9 : 5)))
      const tt = Math.min(112, 88 + 4 * Math.abs(this.gLat) + 6 * w + (c < 2 ? 2 : 0))
      const tT = this.tyreT[c] as number
      this.tyreT[c] = tT + (tt - tT) * (1 - Math.exp(-h / 8))
    }
    this.wear = Math.min(100, this.wear + WEAR_PER_M * this.wearRate * (this.v / 3.6) * h * (1 + Math.abs(this.gLat) / 4))
    this.fuel = Math.max(0, this.fuel - (0.004 + (0.026 * throttle) / 100) * h)
    const deploy = throttle === 100 && this.v > 120 && this.ers > 0.3
    this.ers = clamp(this.ers + (braking ? 0.12 * h : 0) - (deploy ? 0.12 * h : 0), 0, 4)
    const relax = 1 - Math.exp(-h / 20)
    this.engineT += (100 + (15 * throttle) / 100 - this.engineT) * relax
    this.oilT += (110 + (12 * throttle) / 100 - this.oilT) * relax

    this.s += (this.v / 3.6) * h
    if (this.s >= L) {
      this.s -= L
      this.lap++
      // Decide at the line so the whole in-lap brakes for the pit entry in time.
      if (!this.pit && !this.plannedPit && this.wear >= this.pitWearAt) this.plannedPit = true
    }
  }

  sample(ts: number): Sample {
    const rng = this.rng
    if (this.lastT !== null) {
      const n = Math.ceil((ts - this.lastT) / MAX_STEP_MS)
      const h = (ts - this.lastT) / n
      for (let j = 0; j < n; j++) this.step(this.lastT + j * h, h / 1000)
    }
    this.lastT = ts
    const inPit = this.pit !== null && ts < this.pit.end
    const ep = this.episodeAt(ts, SIM_RATES.carEpisodeGapMs, !inPit && !this.plannedPit, () => ({
      type: rng.next() < 0.5 ? 'brake_overheat' : 'tire_overheat',
      durMs: rng.range(3_000, 6_000),
      corner: rng.int(4),
    }))

    const v = this.v
    let gear = 0
    if (v > 0.5) {
      gear = GEAR_TOP.length - 1
      for (let g = 1; g < GEAR_TOP.length; g++) if (v <= (GEAR_TOP[g] as number)) { gear = g; break }
    }
    const rpm = gear === 0 ? 4000 : Math.max(4000, (12000 * v) / (GEAR_TOP[gear] as number))
    const drs = !this.pit && v > 250 && TRACK.drs.some(([a, b]) => this.s >= a && this.s < b)
    const f: Record<string, FieldValue> = {
      driver: this.driver,
      lap: this.lap,
      lap_distance: r1(this.s),
      sector: this.s < L / 3 ? 1 : this.s < (2 * L) / 3 ? 2 : 3,
      speed: r1(v),
      rpm: Math.round(rpm + rng.range(-40, 40)),
      gear,
      throttle: this.throttle,
      // Peak over the sample period, as a logger's peak-hold channel: a braking zone between two samples shows.
      brake: this.peakBrake,
      drs,
      ers_deploy: this.throttle === 100 && v > 120 && this.ers > 0.3 ? 120 : 0,
      ers_store: r2(this.ers),
      fuel: r2(this.fuel),
      tyre_wear: r2(this.wear),
      engine_temp: r1(this.engineT + rng.range(-0.5, 0.5)),
      oil_temp: r1(this.oilT + rng.range(-0.5, 0.5)),
      oil_pressure: r2(2.2 + 2.6 * Math.min(1, rpm / 11000) + rng.range(-0.05, 0.05)),
      g_lat: r2(this.gLat),
      g_lon: r2(clamp(this.gLon, -6, 3)),
      pit: inPit,
    }
    this.peakBrake = 0
    for (let c = 0; c < 4; c++) {
      const corner = CORNERS[c] as string
      let bt = (this.brakeT[c] as number) + rng.range(-8, 8)
      let tt = (this.tyreT[c] as number) + rng.range(-1.5, 1.5)
      if (ep?.corner === c && ep.type === 'brake_overheat') bt = 960 + 40 * rng.next()
      if (ep?.corner === c && ep.type === 'tire_overheat') tt = 134 + 8 * rng.next()
      f[`brake_temp_${corner}`] = r1(bt)
      f[`tyre_temp_${corner}`] = r1(tt)
      f[`tyre_pressure_${corner}`] = r2(21 + 0.05 * (tt - 100))
    }
    const s: Sample = { fields: f, delayMs: 0 }
    if (ep) s.truth = { type: ep.type, start: ep.start, end: ep.end }
    else if (this.pit && inPit) {
      // Samples at integer ts with start <= ts < end are in the pit lane.
      s.truth = { type: 'pit_stop', start: Math.ceil(this.pit.start), end: Math.ceil(this.pit.end) - 1 }
    }
    return s
  }
}

// ---- the simulator ----------------------------------------------------------------------------------------

function checkOptions(o: SimOptions): void {
  const int = (k: 'sensors' | 'cars' | 'partitions', min: number): void => {
    if (!Number.isInteger(o[k]) || o[k] < min) throw new ConfigError(`sim.${k}`, `must be an integer >= ${min}, got ${o[k]}`)
  }
  if (!Number.isSafeInteger(o.seed)) throw new ConfigError('sim.seed', `must be a safe integer, got ${o.seed}`)
  int('sensors', 0)
  int('cars', 0)
  int('partitions', 1)
  if (o.sensors + o.cars === 0) throw new ConfigError('sim.sensors', 'sensors + cars must be at least 1')
  // Above 1 kHz two samples of one entity could share a millisecond, and with it a message id.
  if (o.sensors > 0 && !(o.sensorHz > 0 && o.sensorHz <= 1000)) throw new ConfigError('sim.sensorHz', `must be in (0, 1000], got ${o.sensorHz}`)
  if (o.cars > 0 && !(o.carHz > 0 && o.carHz <= 1000)) throw new ConfigError('sim.carHz', `must be in (0, 1000], got ${o.carHz}`)
  if (!SITE_PATTERN.test(o.site)) throw new ConfigError('sim.site', `must match ${SITE_PATTERN}, got ${JSON.stringify(o.site)}`)
  if (o.startTs !== undefined && !Number.isSafeInteger(o.startTs)) throw new ConfigError('sim.startTs', `must be an integer ms time, got ${o.startTs}`)
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
    this.due = new Heap<Entity>((a, b) => a.nextTs < b.nextTs || (a.nextTs === b.nextTs && (a.kind < b.kind || (a.kind === b.kind && a.order < b.order))))
    this.held = new Heap((a, b) => a.at < b.at || (a.at === b.at && a.n < b.n))
    for (let i = 0; i < opts.sensors; i++) {
      this.due.push(new SensorSim(i, new Rng(entitySeed(opts.seed, 0, i)), 1000 / opts.sensorHz, this.startTs, anomalies))
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
  if (opts.ratePerS !== undefined && !(opts.ratePerS > 0)) throw new ConfigError('sim.ratePerS', `must be > 0, got ${opts.ratePerS}`)
  if (opts.durationS !== undefined && !(opts.durationS >= 0)) throw new ConfigError('sim.durationS', `must be >= 0, got ${opts.durationS}`)
  const maxInFlight = opts.maxInFlight ?? 1_000
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new ConfigError('sim.maxInFlight', `must be an integer >= 1, got ${maxInFlight}`)
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
    pending.push(js.publish(subjectOf(item.kind, item.id), JSON.stringify(item.reading), { msgID: readingMsgId(item.kind, item.id, item.reading.rid as string) }))
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
