/**
 * Seeded simulator of rolling stock (DOMAIN.md section 4) for the `asset` profile: one sensor unit per
 * locomotive (`loco-001`..), a reading every minute with vibration (mm/s), temperature (°C), pressure (bar) and
 * flow (l/min), plus a maintenance log.
 *
 * - Healthy: vibration ~2 mm/s and temperature ~45 °C with noise, duty cycles (climbs warm the unit up to
 *   ~60 °C for tens of minutes) and a daily ambient swing.
 * - Degradation (with `anomalies`, after one day, gaps of ~4 days): over 6-24 h vibration and temperature trend
 *   up toward failure (vibration to 7-9.5 mm/s, temperature to 85-95 °C: the danger zone of DOMAIN.md), with
 *   growing vibration variance; it ends with a repair in the maintenance log. Ground truth: `degradation`
 *   {entity, start = onset, end = repair}.
 * - Routine maintenance (every ~3 days, any locomotive) is logged too: a training set needs negatives.
 *
 * With `fleet: true` (a harder, mixed fleet for tuning and training the risk model; written from issue 20's
 * description, not from any other generator): a seasonal ambient swing, about one unit in six healthy but
 * running rough (vibration x1.6-2.2) or hot (+8-14 °C) for life, and four failure modes instead of the
 * degradation above, one every ~25 days per unit, each ending in a failure that the maintenance log records as
 * a `repair` at the failure time (episode end):
 *   bearing    2-6 days: vibration level, spread and spikes grow, a few °C late;
 *   cooling    1-3 days: temperature rises at load (climbs) far more than at rest;
 *   hydraulic  2-5 days: pressure bleeds down (to 55-75 % of nominal), flow wanders up;
 *   sudden     no precursor.
 * Episodes carry `mode`; the unit is healthy again after the repair.
 */
import type { Reading } from '../actors/mod.js'
import { ConfigError } from '../actors/mod.js'
import { Rng, clipEpisodes, entitySeed, round } from './truth.js'
import type { DomainItem, DomainSimulator, Episode } from './truth.js'

export const ASSET_TRUTH_TYPES = ['degradation'] as const
export const ASSET_EPOCH = Date.UTC(2025, 0, 6, 0, 0, 0)

export interface AssetSimOptions {
  seed: number
  locomotives?: number
  periodMs?: number
  startTs?: number
  anomalies?: boolean
  /** Mixed fleet: failure modes, rough and hot healthy units, seasons (see the header). */
  fleet?: boolean
}

export const ASSET_FAILURE_MODES = ['bearing', 'cooling', 'hydraulic', 'sudden'] as const
export type AssetFailureMode = (typeof ASSET_FAILURE_MODES)[number]

/** One maintenance log entry. */
export interface MaintenanceEntry {
  entity: string
  ts: number
  action: 'repair' | 'routine'
}

const HOUR = 3_600_000
export const locoId = (i: number): string => `loco-${String(i + 1).padStart(3, '0')}`

interface Loco {
  id: string
  rng: Rng
  vib0: number
  temp0: number
  /** Current degradation: onset, repair time, final vibration and temperature. */
  deg: { start: number; end: number; vib: number; temp: number; mode: AssetFailureMode } | undefined
  nextDeg: number
  nextRoutine: number
  /** Duty: end of the current climb (ms), 0 = none. */
  climbEnd: number
  /** Fleet mode: the unit's lifelong character (rough, hot) and nominal pressure and flow. */
  character: { vibMul: number; hot: number; p0: number; q0: number }
}

function characterOf(seed: number, i: number): Loco['character'] {
  const ch = new Rng(entitySeed(seed, 21, i))
  const kind = ch.next()
  return {
    vibMul: kind < 0.09 ? ch.range(1.6, 2.2) : 1,
    hot: kind >= 0.09 && kind < 0.17 ? ch.range(8, 14) : 0,
    p0: 5 * ch.range(0.9, 1.1),
    q0: 12 * ch.range(0.85, 1.15),
  }
}

/** Readings of all locomotives, one period after another. */
export class AssetSimulator implements DomainSimulator {
  readonly startTs: number
  produced = 0
  private readonly locos: Loco[]
  private readonly period: number
  private readonly anomalies: boolean
  private readonly fleet: boolean
  private readonly all: Episode[] = []
  private readonly log: MaintenanceEntry[] = []
  private tick = 0
  private idx = 0

  constructor(readonly opts: AssetSimOptions) {
    if (!Number.isSafeInteger(opts.seed)) throw new ConfigError('sim.seed', `must be an integer, got ${opts.seed}`)
    const n = opts.locomotives ?? 40
    if (!Number.isInteger(n) || n < 1 || n > 100_000)
      throw new ConfigError('sim.locomotives', `must be an integer 1..100000, got ${n}`)
    this.period = opts.periodMs ?? 60_000
    if (!Number.isInteger(this.period) || this.period < 100)
      throw new ConfigError('sim.periodMs', `must be an integer >= 100, got ${this.period}`)
    this.startTs = opts.startTs ?? ASSET_EPOCH
    this.anomalies = opts.anomalies ?? false
    this.fleet = opts.fleet ?? false
    this.locos = Array.from({ length: n }, (_, i) => {
      const rng = new Rng(entitySeed(opts.seed, 20, i))
      return {
        id: locoId(i),
        rng,
        vib0: rng.range(1.6, 2.4),
        temp0: rng.range(42, 48),
        deg: undefined,
        nextDeg: opts.fleet
          ? this.startTs + 72 * HOUR + rng.exp(20 * 24 * HOUR)
          : this.startTs + 24 * HOUR + rng.exp(96 * HOUR),
        nextRoutine: this.startTs + rng.exp(72 * HOUR),
        climbEnd: 0,
        character: characterOf(opts.seed, i),
      }
    })
  }

  next(): DomainItem {
    const ts = this.startTs + this.tick * this.period
    const l = this.locos[this.idx] as Loco
    const item = this.sample(l, ts)
    if (++this.idx === this.locos.length) {
      this.idx = 0
      this.tick++
    }
    this.produced++
    return item
  }

  private sample(l: Loco, ts: number): DomainItem {
    if (this.fleet) return this.fleetSample(l, ts)
    const r = l.rng
    if (this.anomalies && !l.deg && ts >= l.nextDeg) {
      const end = ts + Math.round((r.range(6, 24) * HOUR) / this.period) * this.period
      l.deg = { start: ts, end, vib: r.range(7.2, 9.5), temp: r.range(86, 95), mode: 'bearing' }
      this.all.push({ kind: 'sensor', entity: l.id, type: 'degradation', start: ts, end, mode: 'bearing' })
    }
    if (ts >= l.nextRoutine) {
      this.log.push({ entity: l.id, ts, action: 'routine' })
      l.nextRoutine = ts + 24 * HOUR + r.exp(72 * HOUR)
    }
    if (l.climbEnd === 0 && r.next() < this.period / (6 * HOUR)) l.climbEnd = ts + r.range(10, 40) * 60_000
    const climbing = l.climbEnd > ts
    if (!climbing) l.climbEnd = 0
    const hod = (ts % (24 * HOUR)) / HOUR
    let vib = l.vib0 * (climbing ? 1.25 : 1) + 0.25 * r.normal()
    let temp = l.temp0 + 3 * Math.sin((2 * Math.PI * (hod - 14)) / 24) + (climbing ? 12 : 0) + 1.2 * r.normal()
    const d = l.deg
    if (d) {
      if (ts > d.end) {
        this.log.push({ entity: l.id, ts: d.end, action: 'repair' })
        l.deg = undefined
        l.nextDeg = ts + 24 * HOUR + r.exp(96 * HOUR)
      } else {
        const p = (ts - d.start) / (d.end - d.start)
        vib += (d.vib - l.vib0) * p * p + 0.4 * p * r.normal()
        temp += (d.temp - l.temp0) * p ** 1.5
      }
    }
    const fields: Reading['fields'] = {
      vibration: round(Math.max(0, vib), 3),
      temperature: round(temp, 2),
      pressure: round(5 + 0.2 * r.normal(), 3),
      flow: round(12 + 0.5 * r.normal(), 2),
    }
    return { kind: 'sensor', id: l.id, reading: { ts, fields, profile: 'asset', rid: `${l.id}:${ts}` }, at: ts }
  }

  /** Mixed fleet (opts.fleet). Per unit: rough/hot character from its own generator, so it is stable per seed. */
  private fleetSample(l: Loco, ts: number): DomainItem {
    const r = l.rng
    const { vibMul, hot, p0, q0 } = l.character
    if (this.anomalies && !l.deg && ts >= l.nextDeg) {
      const u = r.next()
      const mode: AssetFailureMode = u < 0.3 ? 'bearing' : u < 0.6 ? 'cooling' : u < 0.8 ? 'hydraulic' : 'sudden'
      const days =
        mode === 'bearing'
          ? r.range(2, 6)
          : mode === 'cooling'
            ? r.range(1, 3)
            : mode === 'hydraulic'
              ? r.range(2, 5)
              : r.range(0.2, 1)
      const end = ts + Math.round((days * 24 * HOUR) / this.period) * this.period
      l.deg = { start: ts, end, vib: r.range(3, 6), temp: r.range(25, 45), mode }
      if (mode !== 'sudden') this.all.push({ kind: 'sensor', entity: l.id, type: 'degradation', start: ts, end, mode })
    }
    if (ts >= l.nextRoutine) {
      this.log.push({ entity: l.id, ts, action: 'routine' })
      l.nextRoutine = ts + 24 * HOUR + r.exp(10 * 24 * HOUR)
    }
    if (l.climbEnd === 0 && r.next() < this.period / (3 * HOUR)) l.climbEnd = ts + r.range(15, 90) * 60_000
    const climbing = l.climbEnd > ts
    if (!climbing) l.climbEnd = 0
    const hod = (ts % (24 * HOUR)) / HOUR
    const season = 8 * Math.sin((2 * Math.PI * (ts - this.startTs)) / (120 * 24 * HOUR))
    let vib = l.vib0 * vibMul * (climbing ? 1.3 : 1) + 0.3 * vibMul * r.normal()
    let temp =
      l.temp0 + hot + season + 4 * Math.sin((2 * Math.PI * (hod - 14)) / 24) + (climbing ? 14 : 0) + 1.5 * r.normal()
    let pres = p0 * (climbing ? 1.05 : 1) + 0.12 * r.normal()
    let flow = q0 * (climbing ? 1.2 : 1) + 0.5 * r.normal()
    const d = l.deg
    if (d) {
      if (ts > d.end) {
        this.log.push({ entity: l.id, ts: d.end, action: 'repair' })
        if (d.mode === 'sudden')
          this.all.push({ kind: 'sensor', entity: l.id, type: 'degradation', start: d.end, end: d.end, mode: 'sudden' })
        l.deg = undefined
        l.nextDeg = ts + 24 * HOUR + r.exp(25 * 24 * HOUR)
      } else {
        const p = (ts - d.start) / (d.end - d.start)
        if (d.mode === 'bearing') {
          vib += d.vib * p * p + 0.6 * p * r.normal() + (r.next() < 0.05 * p ? r.range(2, 6) * p : 0)
          temp += 6 * p ** 3
        } else if (d.mode === 'cooling') {
          temp += d.temp * p ** 1.5 * (climbing ? 1 : 0.35)
        } else if (d.mode === 'hydraulic') {
          pres -= p0 * (d.vib / 13) * p
          flow += 2 * p * r.normal()
        }
      }
    }
    const fields: Reading['fields'] = {
      vibration: round(Math.max(0, vib), 3),
      temperature: round(temp, 2),
      pressure: round(Math.max(0, pres), 3),
      flow: round(Math.max(0, flow), 2),
    }
    return { kind: 'sensor', id: l.id, reading: { ts, fields, profile: 'asset', rid: `${l.id}:${ts}` }, at: ts }
  }

  episodes(untilTs: number): Episode[] {
    return clipEpisodes(this.all, untilTs)
  }

  /** Maintenance log entries up to `untilTs` (repairs close degradation episodes). */
  maintenance(untilTs: number): MaintenanceEntry[] {
    return this.log.filter((e) => e.ts <= untilTs).sort((a, b) => a.ts - b.ts || (a.entity < b.entity ? -1 : 1))
  }
}
