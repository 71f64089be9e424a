/** Race cars (DOMAIN.md section 1): `car-01`.. on a track, with laps, sectors, brakes, tyres, fuel and pit stops. */
import type { FieldValue } from '../actors/mod.js'
import type { Rng } from './truth.js'
import { carId, clamp, Entity, r1, r2, SIM_RATES, type Sample } from './entity.js'

// The circuit: a 5.85 km lap with nine corners (position m, apex speed km/h, direction); speed comes from a
// braking envelope into each apex and an acceleration limit out of it, which gives ~90 s laps, 300+ km/h
// straights and short, hard braking zones.
const TRACK = {
  lengthM: 5850,
  corners: [
    [936, 95, 1],
    [1346, 175, -1],
    [1872, 230, 1],
    [2691, 85, -1],
    [3159, 140, 1],
    [3569, 200, -1],
    [4446, 110, 1],
    [4856, 160, -1],
    [5441, 125, 1],
  ],
  topKmh: 318,
  /** Deceleration of a full braking zone, m/s². */
  brakeDecel: 38,
  pitKmh: 80,
  pitInM: 300,
  pitOutM: 300,
  pitStopMs: 2_500,
  drs: [
    [5560, 5850],
    [0, 760],
    [1990, 2570],
  ],
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

export class CarSim extends Entity {
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
    return ((ENVELOPE[Math.floor(this.s)] as number) * 3.6 * this.skill) / (1 + 0.18 * w * w)
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
      if (e < PIT_A) {
        this.v = pk
        throttle = 25
      } else if (e < PIT_B) {
        this.v = pk * Math.max(0, PIT_B - e)
        brake = 70
      } else if (e < PIT_C) {
        this.v = 0
        if (!P.serviced) {
          P.serviced = true
          this.wear = 0
          this.tyreT.fill(85) // from the blankets
          // No refuelling in a real race; here it keeps an endless simulation going.
          if (this.fuel < 40) this.fuel = 100
        }
      } else if (e < PIT_D) {
        this.v = (pk * (e - PIT_C)) / (PIT_D - PIT_C)
        throttle = 40
      } else {
        this.v = pk
        throttle = 25
      }
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
    this.wear = Math.min(
      100,
      this.wear + WEAR_PER_M * this.wearRate * (this.v / 3.6) * h * (1 + Math.abs(this.gLat) / 4),
    )
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
      for (let g = 1; g < GEAR_TOP.length; g++)
        if (v <= (GEAR_TOP[g] as number)) {
          gear = g
          break
        }
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
