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
 */
import type { Reading } from '../../actors/mod.js'
import { ConfigError } from '../../actors/mod.js'
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
}

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
  deg: { start: number; end: number; vib: number; temp: number } | undefined
  nextDeg: number
  nextRoutine: number
  /** Duty: end of the current climb (ms), 0 = none. */
  climbEnd: number
}

/** Readings of all locomotives, one period after another. */
export class AssetSimulator implements DomainSimulator {
  readonly startTs: number
  produced = 0
  private readonly locos: Loco[]
  private readonly period: number
  private readonly anomalies: boolean
  private readonly all: Episode[] = []
  private readonly log: MaintenanceEntry[] = []
  private tick = 0
  private idx = 0

  constructor(readonly opts: AssetSimOptions) {
    if (!Number.isSafeInteger(opts.seed)) throw new ConfigError('sim.seed', `must be an integer, got ${opts.seed}`)
    const n = opts.locomotives ?? 40
    if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new ConfigError('sim.locomotives', `must be an integer 1..100000, got ${n}`)
    this.period = opts.periodMs ?? 60_000
    if (!Number.isInteger(this.period) || this.period < 100) throw new ConfigError('sim.periodMs', `must be an integer >= 100, got ${this.period}`)
    this.startTs = opts.startTs ?? ASSET_EPOCH
    this.anomalies = opts.anomalies ?? false
    this.locos = Array.from({ length: n }, (_, i) => {
      const rng = new Rng(entitySeed(opts.seed, 20, i))
      return { id: locoId(i), rng, vib0: rng.range(1.6, 2.4), temp0: rng.range(42, 48), deg: undefined,
        nextDeg: this.startTs + 24 * HOUR + rng.exp(96 * HOUR), nextRoutine: this.startTs + rng.exp(72 * HOUR), climbEnd: 0 }
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
    const r = l.rng
    if (this.anomalies && !l.deg && ts >= l.nextDeg) {
      const end = ts + Math.round((r.range(6, 24) * HOUR) / this.period) * this.period
      l.deg = { start: ts, end, vib: r.range(7.2, 9.5), temp: r.range(86, 95) }
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

  episodes(untilTs: number): Episode[] {
    return clipEpisodes(this.all, untilTs)
  }

  /** Maintenance log entries up to `untilTs` (repairs close degradation episodes). */
  maintenance(untilTs: number): MaintenanceEntry[] {
    return this.log.filter((e) => e.ts <= untilTs).sort((a, b) => a.ts - b.ts || (a.entity < b.entity ? -1 : 1))
  }
}
