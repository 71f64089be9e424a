/**
 * Seeded simulator of the multi-brand vehicle fleet (DOMAIN.md section 5) for the `road` profile: vehicles
 * identified by VIN (17 characters, valid check digit) drive trips on a street grid (about 550 m blocks around
 * Lyon), with GPS noise (~5 m), traffic-light stops, OBD-2 values (speed, rpm, coolant warming up from ambient,
 * fuel burnt per km, engine load), and parked periods in which the unit is off and sends nothing. A reading every
 * 10 s while the engine runs.
 *
 * Injected events (with `anomalies`), each recorded as ground truth {entity, type, start, end}:
 * - engine_overheat: a thermostat fault drives coolant to 115-125 °C for 2-8 min while driving;
 * - dtc: a trouble code (e.g. P0301) is reported for 5-60 min of engine time;
 * - low_fuel: the driver skips refuels until the tank has been below 10 % (the domain's low-fuel level) for at
 *   least 5 minutes of driving (start = first reading below 10 %, end = the refuel).
 * Otherwise drivers refuel at 20-30 %, and no trip burns that much.
 */
import type { Reading } from '../actors/mod.js'
import { ConfigError } from '../actors/mod.js'
import { Rng, clipEpisodes, entitySeed, round } from './truth.js'
import type { DomainItem, DomainSimulator, Episode } from './truth.js'

export const ROAD_TRUTH_TYPES = ['engine_overheat', 'dtc', 'low_fuel'] as const
export const ROAD_EPOCH = Date.UTC(2025, 0, 6, 0, 0, 0)
const LAT0 = 45.74,
  LON0 = 4.82,
  DLAT = 0.005,
  DLON = 0.007,
  GRID = 12
const MIN = 60_000

export interface RoadSimOptions {
  seed: number
  vehicles?: number
  periodMs?: number
  startTs?: number
  anomalies?: boolean
}

const VIN_CHARS = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789'
const VIN_VALUES: Record<string, number> = {
  A: 1,
  B: 2,
  C: 3,
  D: 4,
  E: 5,
  F: 6,
  G: 7,
  H: 8,
  J: 1,
  K: 2,
  L: 3,
  M: 4,
  N: 5,
  P: 7,
  R: 9,
  S: 2,
  T: 3,
  U: 4,
  V: 5,
  W: 6,
  X: 7,
  Y: 8,
  Z: 9,
}
const VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]

/** The check digit (position 9) of a VIN, per ISO 3779 / 49 CFR 565. */
export function vinCheckDigit(vin: string): string {
  let sum = 0
  for (let i = 0; i < 17; i++) {
    const ch = vin[i] as string
    const v = /[0-9]/.test(ch) ? Number(ch) : (VIN_VALUES[ch] ?? 0)
    sum += v * (VIN_WEIGHTS[i] as number)
  }
  const r = sum % 11
  return r === 10 ? 'X' : String(r)
}

/** A deterministic valid VIN for vehicle `i`. */
export function makeVin(rng: Rng): string {
  const chars = Array.from({ length: 17 }, () => VIN_CHARS[rng.int(VIN_CHARS.length)] as string)
  chars[8] = '0'
  const vin = chars.join('')
  return vin.slice(0, 8) + vinCheckDigit(vin) + vin.slice(9)
}

interface Vehicle {
  id: string
  rng: Rng
  /** Next reading time; while parked, the time the engine starts. */
  nextTs: number
  driving: boolean
  tripEnd: number
  /** Position on the grid (fractional along the current edge). */
  gi: number
  gj: number
  ti: number
  tj: number
  frac: number
  speed: number
  stopUntil: number
  fuel: number
  coolant: number
  skipRefuel: boolean
  lowStart: number
  overheat: { start: number; end: number; peak: number } | undefined
  dtc: { start: number; end: number; code: string } | undefined
  nextOverheat: number
  nextDtc: number
  engineMs: number
}

const DTC_CODES = ['P0301', 'P0420', 'P0171', 'P0128', 'P0442', 'P0455']

/** Readings of all vehicles in event-time order (ties by vehicle index). */
export class RoadSimulator implements DomainSimulator {
  readonly startTs: number
  produced = 0
  private readonly vs: Vehicle[]
  private readonly period: number
  private readonly anomalies: boolean
  private readonly all: Episode[] = []

  constructor(readonly opts: RoadSimOptions) {
    if (!Number.isSafeInteger(opts.seed)) throw new ConfigError('sim.seed', `must be an integer, got ${opts.seed}`)
    const n = opts.vehicles ?? 40
    if (!Number.isInteger(n) || n < 1 || n > 10_000)
      throw new ConfigError('sim.vehicles', `must be an integer 1..10000, got ${n}`)
    this.period = opts.periodMs ?? 10_000
    if (!Number.isInteger(this.period) || this.period < 100)
      throw new ConfigError('sim.periodMs', `must be an integer >= 100, got ${this.period}`)
    this.startTs = opts.startTs ?? ROAD_EPOCH
    this.anomalies = opts.anomalies ?? false
    this.vs = Array.from({ length: n }, (_, i) => {
      const rng = new Rng(entitySeed(opts.seed, 30, i))
      const gi = rng.int(GRID),
        gj = rng.int(GRID)
      return {
        id: makeVin(rng),
        rng,
        nextTs: this.startTs + Math.round((rng.range(0, 60) * MIN) / 1000) * 1000,
        driving: false,
        tripEnd: 0,
        gi,
        gj,
        ti: gi,
        tj: gj,
        frac: 0,
        speed: 0,
        stopUntil: 0,
        fuel: rng.range(11, 40),
        coolant: 10,
        skipRefuel: false,
        lowStart: NaN,
        overheat: undefined,
        dtc: undefined,
        nextOverheat: rng.exp(600 * MIN),
        nextDtc: rng.exp(500 * MIN),
        engineMs: 0,
      }
    })
  }

  next(): DomainItem {
    let best = this.vs[0] as Vehicle
    for (const v of this.vs) if (v.nextTs < best.nextTs) best = v
    this.produced++
    return this.sample(best)
  }

  private pickTarget(v: Vehicle): void {
    const r = v.rng
    // Move one block along a street: change i or j by one, staying on the grid.
    if (r.next() < 0.5) {
      v.ti = Math.max(0, Math.min(GRID - 1, v.gi + (r.next() < 0.5 ? -1 : 1)))
      v.tj = v.gj
    } else {
      v.tj = Math.max(0, Math.min(GRID - 1, v.gj + (r.next() < 0.5 ? -1 : 1)))
      v.ti = v.gi
    }
    v.frac = 0
  }

  private sample(v: Vehicle): DomainItem {
    const r = v.rng
    const ts = v.nextTs
    const dtS = this.period / 1000
    if (!v.driving) {
      // Engine start: a trip of 10-60 min; the coolant is at ambient after a long park.
      v.driving = true
      v.tripEnd = ts + r.range(10, 60) * MIN
      v.coolant = Math.min(v.coolant, r.range(8, 20))
      this.pickTarget(v)
    }
    // Motion.
    if (ts < v.stopUntil) v.speed = 0
    else {
      const target = r.range(30, 60)
      v.speed = Math.max(0, v.speed + (target - v.speed) * 0.5 + 3 * r.normal())
      const blockM = 550
      v.frac += ((v.speed / 3.6) * dtS) / blockM
      if (v.frac >= 1) {
        v.gi = v.ti
        v.gj = v.tj
        this.pickTarget(v)
        if (r.next() < 0.3) v.stopUntil = ts + r.range(10, 40) * 1000
      }
    }
    v.fuel = Math.max(0, v.fuel - (((v.speed / 3.6) * dtS) / 1000) * 0.12)
    v.engineMs += this.period
    // Coolant warms to ~90 °C.
    v.coolant += (90 - v.coolant) * 0.05 + 0.3 * r.normal()
    if (this.anomalies) {
      if (!v.overheat && v.engineMs >= v.nextOverheat && ts + 8 * MIN < v.tripEnd) {
        v.overheat = { start: ts, end: ts + Math.round(r.range(2, 8) * 6) * 10_000, peak: r.range(115, 125) }
        this.all.push({
          kind: 'vehicle',
          entity: v.id,
          type: 'engine_overheat',
          start: v.overheat.start,
          end: v.overheat.end,
          mode: 'thermostat',
        })
      }
      if (!v.dtc && v.engineMs >= v.nextDtc) {
        v.dtc = { start: ts, end: ts + Math.round(r.range(5, 60)) * MIN, code: r.pick(DTC_CODES) }
      }
    }
    let coolant = v.coolant
    const oh = v.overheat
    if (oh) {
      if (ts > oh.end) {
        v.overheat = undefined
        v.nextOverheat = v.engineMs + r.exp(600 * MIN)
      } else coolant = Math.min(oh.peak, 92 + (oh.peak - 92) * Math.min(1, (ts - oh.start) / 60_000)) + 0.3 * r.normal()
    }
    let dtc = ''
    const d = v.dtc
    if (d) {
      if (ts > d.end) {
        // The episode ends at the last reading that still carried the code.
        this.all.push({ kind: 'vehicle', entity: v.id, type: 'dtc', start: d.start, end: d.end, mode: d.code })
        v.dtc = undefined
        v.nextDtc = v.engineMs + r.exp(500 * MIN)
      } else dtc = d.code
    }
    // On the value sent (rounded), which is what anyone downstream sees.
    const fuel = round(v.fuel, 1)
    if (fuel < 10 && Number.isNaN(v.lowStart)) v.lowStart = ts
    const lat = LAT0 + DLAT * (v.gi + (v.ti - v.gi) * v.frac) + 0.000045 * r.normal()
    const lon = LON0 + DLON * (v.gj + (v.tj - v.gj) * v.frac) + 0.000064 * r.normal()
    const fields: Reading['fields'] = {
      lat: round(lat, 6),
      lon: round(lon, 6),
      speed: round(v.speed, 1),
      heading: round(v.ti !== v.gi ? (v.ti > v.gi ? 0 : 180) : v.tj > v.gj ? 90 : 270, 0),
      obd_speed: round(v.speed, 0),
      rpm: Math.round(v.speed > 0 ? 900 + v.speed * 35 + 50 * r.normal() : 800 + 20 * r.normal()),
      coolant_temp: round(coolant, 1),
      fuel_level: fuel,
      engine_load: round(Math.min(100, 20 + v.speed * 0.6 + 3 * r.normal()), 1),
      dtc,
    }
    const item: DomainItem = {
      kind: 'vehicle',
      id: v.id,
      reading: { ts, fields, profile: 'road', rid: `${v.id}:${ts}` },
      at: ts,
    }
    // Trip end: park 20 min - 3 h; refuel before the next trip unless this driver skips it.
    if (ts >= v.tripEnd && !v.overheat) {
      v.driving = false
      v.speed = 0
      v.coolant = 60
      v.nextTs = ts + Math.round(r.range(20, 180) * 60) * 1000
      const want = r.range(20, 30)
      if (v.fuel < want) {
        // A skipping driver keeps skipping until the tank has been below 10 % for 5 minutes of driving, so every
        // low-fuel episode is a sustained one (a trip burns at most ~7 %: careful drivers never get there).
        const lowLongEnough = !Number.isNaN(v.lowStart) && ts - v.lowStart >= 5 * MIN
        if (this.anomalies && !lowLongEnough && (v.skipRefuel || r.next() < 0.5)) v.skipRefuel = true
        else {
          if (!Number.isNaN(v.lowStart))
            this.all.push({
              kind: 'vehicle',
              entity: v.id,
              type: 'low_fuel',
              start: v.lowStart,
              end: ts,
              mode: 'no_refuel',
            })
          v.lowStart = NaN
          v.skipRefuel = false
          v.fuel = r.range(85, 100)
        }
      }
      // A DTC can outlive the trip (it is reported again at the next engine start).
    } else {
      v.nextTs = ts + this.period
    }
    return item
  }

  episodes(untilTs: number): Episode[] {
    const open: Episode[] = []
    for (const v of this.vs) {
      if (v.dtc)
        open.push({ kind: 'vehicle', entity: v.id, type: 'dtc', start: v.dtc.start, end: v.dtc.end, mode: v.dtc.code })
      if (!Number.isNaN(v.lowStart))
        open.push({
          kind: 'vehicle',
          entity: v.id,
          type: 'low_fuel',
          start: v.lowStart,
          end: untilTs,
          mode: 'no_refuel',
        })
    }
    return clipEpisodes([...this.all, ...open], untilTs)
  }
}
