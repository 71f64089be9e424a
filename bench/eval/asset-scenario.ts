/**
 * Locomotive fleet generator for the independent evaluation of asset risk detectors (issue 20).
 *
 * Written apart from the project's asset simulator and model (it shares no constant with either, and was designed
 * without reading them), from DOMAIN.md section 4 and the usual physics of rolling-stock condition monitoring:
 * - each unit follows a duty cycle (in service under a varying notch/load, idling, shut down in the depot, in the
 *   workshop with its telemetry off), freight units round the clock, passenger units by day;
 * - ambient temperature follows the season (the run starts on a seed-dependent day of the year), the time of day,
 *   and a regional weather pattern over days; temperature and pressure respond to it;
 * - failure modes with ground truth: bearing wear (vibration level and impulsiveness rising over days), cooling
 *   faults (temperature rising against load), hydraulic leaks (pressure falling, flow rising, faster bleed-down
 *   when shut down), and sudden failures with no precursor; each failure takes the unit to the workshop and ends
 *   with a `repair` entry in the maintenance log;
 * - healthy units that run rough (high vibration, more impulsive) or hot all their life and never fail;
 * - slow general wear between routine exams (a few tenths of a percent of vibration per day) that a routine exam
 *   resets (`routine` entries), plus sensor noise, rare glitches and telemetry outages.
 *
 * Readings are produced lazily in global time order (one `{entity, reading}` at a time, never the whole fleet in
 * memory); the whole run is a pure function of the options. Each unit draws from its own random stream, so a
 * change to one unit's physics does not reshuffle the others.
 */
import { createWriteStream, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import { ConfigError } from '../../actors/errors.js'
import type { Reading } from '../../actors/types.js'

export const FAILURE_MODES = ['bearing', 'cooling', 'hydraulic', 'sudden'] as const
export type FailureMode = (typeof FAILURE_MODES)[number]
/** Modes with a precursor a model can learn; `sudden` is reported apart. */
export const PREDICTABLE_MODES = ['bearing', 'cooling', 'hydraulic'] as const satisfies readonly FailureMode[]

/** Documented precursor lengths (onset of the degradation to the scheduled failure), days. */
export const PRECURSOR_DAYS = {
  bearing: { min: 4, max: 10 },
  cooling: { min: 1.5, max: 5 },
  hydraulic: { min: 3, max: 9 },
} as const satisfies Record<Exclude<FailureMode, 'sudden'>, { min: number; max: number }>

/**
 * The failure fires at the first in-service minute at or after its scheduled time (a cooling failure also needs
 * load), after a short terminal phase; a unit parked in the depot at the scheduled time fails when it next runs.
 * So the observed onset-to-failure time is the precursor length plus at most this slip.
 */
export const MAX_FAILURE_SLIP_MS = 2 * 86_400_000

export const DAY_MS = 86_400_000
export const HOUR_MS = 3_600_000
const MIN_MS = 60_000

export type UnitCharacter = 'normal' | 'rough' | 'hot'
export type Duty = 'service' | 'idle' | 'depot' | 'workshop'

export interface FleetOptions {
  seed: number
  /** Number of locomotives (60). */
  units?: number
  /** Length of the run in days (72). */
  days?: number
  /** Reading interval per unit, ms (60,000). */
  intervalMs?: number
}

export interface FleetReading {
  entity: string
  reading: Reading
}

/** Ground truth of one failure that happened. */
export interface FailureTruth {
  entity: string
  mode: FailureMode
  /** Failure time: the unit stopped working and was withdrawn; the time the scorer scores against. */
  ts: number
  /** Start of the degradation (equals `ts` for sudden failures). */
  onset: number
  /** Repair finished; the unit's telemetry resumes after this. */
  completed: number
}

/** One maintenance-log row. `ts` is when the unit was withdrawn (the failure time for a repair), not completion. */
export interface MaintenanceEntry {
  entity: string
  ts: number
  action: 'repair' | 'routine'
  completed: number
}

export interface UnitInfo {
  entity: string
  character: UnitCharacter
  service: 'freight' | 'passenger'
}

/** What the generator knows about a unit at its last reading (for tests and reports, never for detectors). */
export interface UnitTruth {
  duty: Duty
  load: number
  ambient: number
  character: UnitCharacter
  fault?: { mode: FailureMode; severity: number }
}

// ---------------------------------------------------------------------------------------------------------------
// Random numbers: sfc32 seeded through splitmix32, one stream per (seed, purpose, unit).

function splitmix32(x: number): () => number {
  let s = x | 0
  return () => {
    s = (s + 0x9e3779b9) | 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spare: number | undefined
  constructor(seed: number, stream: number, sub = 0) {
    const sm = splitmix32(
      Math.imul(seed | 0, 0x27d4eb2d) ^ Math.imul(stream + 1, 0x165667b1) ^ Math.imul(sub + 7, 0x61c88647),
    )
    this.a = sm()
    this.b = sm()
    this.c = sm()
    this.d = sm()
    for (let i = 0; i < 12; i++) this.next()
  }
  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return (t >>> 0) / 4294967296
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  /** Standard normal (Box-Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare
      this.spare = undefined
      return s
    }
    let u = this.next()
    while (u <= 1e-12) u = this.next()
    const r = Math.sqrt(-2 * Math.log(u))
    const th = 2 * Math.PI * this.next()
    this.spare = r * Math.sin(th)
    return r * Math.cos(th)
  }
  exp(mean: number): number {
    return -mean * Math.log(1 - this.next())
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The plan: unit characters and parameters, scheduled faults and routine exams, fixed before the run starts.

interface FaultPlan {
  mode: FailureMode
  /** Scheduled failure time and precursor onset. */
  due: number
  onset: number
  /** Shape exponent of severity ((t - onset) / (due - onset)) ^ shape. */
  shape: number
  /** Magnitudes at severity 1 (per mode; unused ones are 0). */
  vibMult: number
  spikeP: number
  spikeAmp: number
  bearingHeat: number
  coolGain: number
  coolIdle: number
  pDrop: number
  qRise: number
  /** Length of the terminal phase just before the failure, ms. */
  terminalMs: number
  workshopMs: number
}

interface UnitPlan {
  index: number
  info: UnitInfo
  region: number
  climate: number
  phaseMs: number
  meanLoad: number
  vib0: number
  vibNoise: number
  spikeP: number
  spikeAmp: number
  kLoad: number
  idleRise: number
  p0: number
  q0: number
  wearPerDay: number
  faults: FaultPlan[]
  routines: number[]
}

/** Fault counts on the full fleet (60 units x 72 days); scaled with units x days, at least one of each. */
const BASE_COUNTS: Record<FailureMode, number> = { bearing: 8, cooling: 12, hydraulic: 8, sudden: 10 }
const BASE_UNIT_DAYS = 60 * 72
const REGION_CLIMATE = [0, -4, 5] as const
const EPOCH_2026 = Date.UTC(2026, 0, 1)

function entityName(i: number): string {
  return `loco-${String(i + 1).padStart(3, '0')}`
}

function planFleet(seed: number, units: number, days: number, startTs: number, intervalMs: number): UnitPlan[] {
  const rng = new Rng(seed, 0x5eed)
  const endTs = startTs + days * DAY_MS
  const nRough = Math.max(1, Math.round(units * 0.05))
  const nHot = Math.max(1, Math.round(units * 0.05))
  // Characters drawn by a shuffled index so the odd units are not always the first ones.
  const order = Array.from({ length: units }, (_, i) => i)
  for (let i = units - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[order[i], order[j]] = [order[j] as number, order[i] as number]
  }
  const character = new Map<number, UnitCharacter>()
  order.forEach((u, k) => character.set(u, k < nRough ? 'rough' : k < nRough + nHot ? 'hot' : 'normal'))
  const plans: UnitPlan[] = []
  for (let i = 0; i < units; i++) {
    const ch = character.get(i) ?? 'normal'
    const service = rng.next() < 0.6 ? 'freight' : 'passenger'
    const rough = ch === 'rough'
    const hot = ch === 'hot'
    const p: UnitPlan = {
      index: i,
      info: { entity: entityName(i), character: ch, service },
      region: rng.int(REGION_CLIMATE.length),
      climate: rng.normal() * 1.5,
      phaseMs: Math.floor(rng.next() * (intervalMs / 1000)) * 1000,
      meanLoad: (service === 'freight' ? 0.6 : 0.45) + rng.uniform(-0.08, 0.08),
      vib0: rough ? rng.uniform(5.5, 7.5) : 2.9 * Math.exp(0.15 * rng.normal()),
      vibNoise: rng.next() < 0.2 ? 0.14 : 0.08,
      spikeP: rough ? rng.uniform(0.015, 0.03) : rng.uniform(0.002, 0.006),
      spikeAmp: rough ? rng.uniform(1.2, 2.0) : rng.uniform(0.6, 1.0),
      kLoad: (34 + 3 * rng.normal()) * (hot ? rng.uniform(1.35, 1.55) : 1),
      idleRise: 18 + 1.5 * rng.normal() + (hot ? rng.uniform(5, 8) : 0),
      p0: 180 + 6 * rng.normal(),
      q0: 60 + 4 * rng.normal(),
      wearPerDay: rng.uniform(0.002, 0.006),
      faults: [],
      routines: [],
    }
    let r = Math.round(startTs + rng.uniform(2, 28) * DAY_MS)
    while (r < endTs) {
      p.routines.push(r)
      r += Math.round(rng.uniform(24, 32) * DAY_MS)
    }
    plans.push(p)
  }
  const normal = plans.filter((p) => p.info.character === 'normal')
  const scale = (units * days) / BASE_UNIT_DAYS
  for (const mode of FAILURE_MODES) {
    const n = Math.max(1, Math.round(BASE_COUNTS[mode] * scale))
    for (let k = 0; k < n; k++) placeFault(rng, normal, mode, startTs, endTs)
  }
  for (const p of plans) {
    p.faults.sort((a, b) => a.due - b.due)
    p.routines = resolveRoutines(p, endTs)
  }
  return plans
}

function placeFault(rng: Rng, units: UnitPlan[], mode: FailureMode, startTs: number, endTs: number): void {
  for (let attempt = 0; attempt < 200; attempt++) {
    const u = units[rng.int(units.length)]
    if (!u) return
    const L = mode === 'sudden' ? 0 : rng.uniform(PRECURSOR_DAYS[mode].min, PRECURSOR_DAYS[mode].max) * DAY_MS
    const lo = startTs + L + DAY_MS
    const hi = endTs - 2 * HOUR_MS
    if (hi <= lo) continue
    const due = Math.round(lo + rng.next() * (hi - lo))
    const onset = Math.round(due - L)
    // One fault at a time per unit, with room for the slip, the workshop and a quiet day either side.
    const busy = (f: { onset: number; due: number }): [number, number] => [
      f.onset - DAY_MS,
      f.due + MAX_FAILURE_SLIP_MS + 5 * DAY_MS,
    ]
    const [a0, a1] = busy({ onset, due })
    if (
      u.faults.some((f) => {
        const [b0, b1] = busy(f)
        return a0 < b1 && b0 < a1
      })
    )
      continue
    const f: FaultPlan = {
      mode,
      due,
      onset,
      shape: 1,
      vibMult: 1,
      spikeP: 0,
      spikeAmp: 0,
      bearingHeat: 0,
      coolGain: 0,
      coolIdle: 0,
      pDrop: 0,
      qRise: 0,
      terminalMs: 0,
      workshopMs: Math.round(rng.uniform(12, 60) * HOUR_MS),
    }
    if (mode === 'bearing') {
      f.shape = rng.uniform(1.6, 2.4)
      f.vibMult = rng.uniform(1.8, 2.8)
      f.spikeP = rng.uniform(0.08, 0.2)
      f.spikeAmp = rng.uniform(2, 5)
      f.bearingHeat = rng.uniform(3, 7)
      f.terminalMs = rng.uniform(15, 45) * MIN_MS
    } else if (mode === 'cooling') {
      f.shape = rng.uniform(1.2, 2.0)
      f.coolGain = rng.uniform(0.8, 1.5)
      f.coolIdle = rng.uniform(2, 5)
      f.terminalMs = rng.uniform(20, 50) * MIN_MS
    } else if (mode === 'hydraulic') {
      f.shape = rng.uniform(1.0, 1.6)
      f.pDrop = rng.uniform(0.15, 0.3)
      f.qRise = rng.uniform(0.15, 0.35)
      f.terminalMs = rng.uniform(10, 30) * MIN_MS
    } else {
      f.workshopMs = Math.round(rng.uniform(24, 96) * HOUR_MS)
    }
    u.faults.push(f)
    return
  }
}

/** Routine exams never fall inside a fault's precursor or repair: such an exam is moved past the repair. */
function resolveRoutines(p: UnitPlan, endTs: number): number[] {
  const out: number[] = []
  for (let r of p.routines) {
    for (let guard = 0; guard < 4; guard++) {
      const clash = p.faults.find((f) => r > f.onset - 2 * DAY_MS && r < f.due + MAX_FAILURE_SLIP_MS + 5 * DAY_MS)
      if (!clash) break
      r = clash.due + MAX_FAILURE_SLIP_MS + 5 * DAY_MS
    }
    const clash = p.faults.some((f) => r > f.onset - 2 * DAY_MS && r < f.due + MAX_FAILURE_SLIP_MS + 5 * DAY_MS)
    if (!clash && r < endTs && (out.length === 0 || r - (out[out.length - 1] as number) > 5 * DAY_MS)) out.push(r)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Ambient temperature: season (coldest around 20 January), time of day, regional weather over days.

interface Weather {
  amp: number[]
  period: number[]
  phase: number[]
}

function makeWeather(seed: number): Weather[] {
  const rng = new Rng(seed, 0xa11b)
  return REGION_CLIMATE.map(() => {
    const w: Weather = { amp: [], period: [], phase: [] }
    for (let k = 0; k < 4; k++) {
      w.amp.push(rng.uniform(0.8, 2.2))
      w.period.push(rng.uniform(2.5, 11) * DAY_MS)
      w.phase.push(rng.uniform(0, 2 * Math.PI))
    }
    return w
  })
}

function ambientAt(ts: number, region: number, climate: number, weather: Weather): number {
  const doy = (ts - EPOCH_2026) / DAY_MS
  const season = 10 - 11 * Math.cos((2 * Math.PI * (doy - 20)) / 365.25)
  const hour = (ts % DAY_MS) / HOUR_MS
  const diurnal = 4.5 * Math.cos((2 * Math.PI * (hour - 15)) / 24)
  let wx = 0
  for (let k = 0; k < weather.amp.length; k++) {
    wx +=
      (weather.amp[k] as number) *
      Math.sin((2 * Math.PI * ts) / (weather.period[k] as number) + (weather.phase[k] as number))
  }
  return season + diurnal + wx + (REGION_CLIMATE[region] ?? 0) + climate
}

// ---------------------------------------------------------------------------------------------------------------
// One unit's running state.

class UnitSim {
  readonly plan: UnitPlan
  private readonly rng: Rng
  private readonly weather: Weather
  private readonly dt: number
  duty: Duty = 'depot'
  private dutyEnd: number
  private load = 0
  private loadEnd = 0
  private loadEff = 0
  private temp: number
  private pressure = 2
  private wear = 0
  private vib0: number
  private p0: number
  private faultIdx = 0
  private terminalStart: number | undefined
  private workshopUntil = 0
  private routineIdx = 0
  private outageUntil = 0
  ambient = 0
  severity = 0
  readonly failures: FailureTruth[] = []
  readonly maintenance: MaintenanceEntry[] = []

  constructor(plan: UnitPlan, seed: number, weather: Weather, startTs: number, intervalMs: number) {
    this.plan = plan
    this.rng = new Rng(seed, 0x1000 + plan.index)
    this.weather = weather
    this.dt = intervalMs
    this.vib0 = plan.vib0
    this.p0 = plan.p0
    this.dutyEnd = startTs + this.rng.uniform(0, 8) * HOUR_MS
    this.temp = ambientAt(startTs, plan.region, plan.climate, weather)
  }

  get fault(): FaultPlan | undefined {
    return this.plan.faults[this.faultIdx]
  }

  get loadNow(): number {
    return this.duty === 'service' || this.duty === 'idle' ? this.load : 0
  }

  private localHour(ts: number): number {
    return ((ts % DAY_MS) / HOUR_MS + 24) % 24
  }

  /** Moves the duty cycle on to `ts`. */
  private advanceDuty(ts: number): void {
    const r = this.rng
    while (ts >= this.dutyEnd) {
      const at = this.dutyEnd
      const passenger = this.plan.info.service === 'passenger'
      if (this.duty === 'workshop' || this.duty === 'depot') {
        // Leave the depot through a warm-up at idle.
        this.duty = 'idle'
        this.dutyEnd = at + r.uniform(0.3, 1) * HOUR_MS
      } else if (this.duty === 'idle') {
        this.duty = 'service'
        this.dutyEnd = at + (passenger ? r.uniform(0.6, 2.5) : r.uniform(2, 9)) * HOUR_MS
        this.loadEnd = at
      } else {
        const h = this.localHour(at)
        const night = passenger && (h >= 22 || h < 5)
        if (night || (!passenger && r.next() < 0.3)) {
          this.duty = 'depot'
          let stay = passenger ? (((29 - h) % 24) + r.uniform(-0.5, 1)) * HOUR_MS : r.uniform(4, 14) * HOUR_MS
          if (r.next() < 0.06) stay += DAY_MS // stands spare for a day
          this.dutyEnd = at + Math.max(stay, HOUR_MS)
        } else {
          this.duty = 'idle'
          this.dutyEnd = at + (passenger ? r.uniform(0.15, 1.2) : r.uniform(0.25, 3)) * HOUR_MS
        }
      }
    }
    if (this.duty === 'service') {
      while (ts >= this.loadEnd) {
        this.load =
          r.next() < 0.15 ? r.uniform(0.02, 0.08) : Math.min(1, Math.max(0.1, this.plan.meanLoad + 0.22 * r.normal()))
        this.loadEnd += r.uniform(3, 20) * MIN_MS
      }
    } else {
      this.load = this.duty === 'idle' ? 0.03 : 0
    }
  }

  /** The reading at `ts`, or undefined when the unit sends none (workshop, telemetry outage). */
  step(ts: number): Reading | undefined {
    const r = this.rng
    const plan = this.plan
    this.ambient = ambientAt(ts, plan.region, plan.climate, this.weather)
    if (ts < this.workshopUntil) {
      this.duty = 'workshop'
      this.temp = this.ambient
      this.pressure = 1
      return undefined
    }
    if (this.duty === 'workshop') this.duty = 'depot' // back from the workshop, shut down until it leaves
    this.advanceDuty(ts)

    // Routine exam: taken at the first stop (depot or idle) after it is due; resets general wear.
    const routine = plan.routines[this.routineIdx]
    if (routine !== undefined && ts >= routine && this.duty !== 'service' && this.terminalStart === undefined) {
      const len = Math.round(r.uniform(6, 10) * HOUR_MS)
      this.maintenance.push({ entity: plan.info.entity, ts, action: 'routine', completed: ts + len })
      this.routineIdx++
      this.wear = 0
      this.enterWorkshop(ts + len)
      return undefined
    }

    // Fault progression and the failure itself.
    const f = this.fault
    this.severity = 0
    if (f && ts >= f.onset) {
      this.severity = f.mode === 'sudden' ? 0 : Math.min(1, (ts - f.onset) / Math.max(1, f.due - f.onset)) ** f.shape
      const ready =
        ts >= f.due - f.terminalMs &&
        this.duty === 'service' &&
        (f.mode !== 'cooling' || this.load >= 0.45 || ts > f.due + DAY_MS)
      if (this.terminalStart === undefined && ready) this.terminalStart = ts
      if (this.terminalStart !== undefined) {
        // Hold the unit in service through the terminal phase: it is working hard when it fails.
        if (this.duty !== 'service') this.duty = 'service'
        this.dutyEnd = Math.max(this.dutyEnd, this.terminalStart + f.terminalMs + HOUR_MS)
        if (ts >= this.terminalStart + f.terminalMs) {
          this.fail(ts, f)
          return undefined
        }
      }
    }
    const term =
      f && this.terminalStart !== undefined ? Math.min(1, (ts - this.terminalStart) / Math.max(1, f.terminalMs)) : 0
    const sev = this.severity
    const bearing = f?.mode === 'bearing' ? sev : 0
    const cooling = f?.mode === 'cooling' ? sev : 0
    const hydraulic = f?.mode === 'hydraulic' ? sev : 0

    const running = this.duty === 'service' || this.duty === 'idle'
    const dt = this.dt
    this.wear += plan.wearPerDay * (dt / DAY_MS)
    this.loadEff += (this.load - this.loadEff) * (1 - Math.exp(-dt / (8 * MIN_MS)))
    if (!running) this.loadEff = 0

    // Temperature: ambient plus the heat of running, which grows with (smoothed) load; a cooling fault raises the
    // heat per unit of load; a failing bearing adds its own heat; the last minutes of a bearing or cooling
    // failure run away.
    let teq = this.ambient
    if (running) {
      const k = plan.kLoad * (1 + (f?.coolGain ?? 0) * cooling)
      teq +=
        plan.idleRise +
        (f?.coolIdle ?? 0) * cooling +
        k * this.loadEff +
        (f?.bearingHeat ?? 0) * bearing * (0.3 + 0.7 * this.loadEff)
      if (f && term > 0 && (f.mode === 'bearing' || f.mode === 'cooling')) teq += 35 * term
    }
    const tauT = running ? 20 * MIN_MS : 70 * MIN_MS
    this.temp += (teq - this.temp) * (1 - Math.exp(-dt / tauT))

    // Hydraulic pressure: pump-held while running (a little lower under demand, higher with cold oil); bleeds
    // down when shut, faster through a leak. A leak lowers the held pressure and makes it less steady.
    let peq = 1.5
    let tauP = (25 * MIN_MS) / (1 + 5 * hydraulic)
    if (running) {
      peq = this.p0 * (1 - (f?.pDrop ?? 0) * hydraulic) - 8 * this.loadEff + 0.25 * (12 - this.ambient)
      if (f?.mode === 'hydraulic' && term > 0) peq *= 1 - 0.6 * term
      tauP = 1.5 * MIN_MS
    }
    this.pressure += (peq - this.pressure) * (1 - Math.exp(-dt / tauP))

    // Outages: the unit runs but its telemetry is silent for a while.
    if (ts < this.outageUntil) return undefined
    if (r.next() < 0.003 * (dt / HOUR_MS)) {
      this.outageUntil = ts + r.uniform(5, 90) * MIN_MS
      return undefined
    }

    let vib: number
    let flow: number
    let pressure = this.pressure
    if (running) {
      const loadShape = this.duty === 'service' ? 0.35 + 0.65 * this.loadEff : 0.3
      const mult = 1 + ((f?.vibMult ?? 1) - 1) * bearing
      vib = this.vib0 * (1 + this.wear) * loadShape * mult * Math.exp(plan.vibNoise * r.normal())
      const sp = plan.spikeP + (f?.spikeP ?? 0) * bearing
      if (r.next() < sp) vib += r.exp(plan.spikeAmp + (f?.spikeAmp ?? 0) * bearing) * loadShape
      if (f?.mode === 'bearing' && term > 0) vib *= 1 + 2.5 * term
      flow = plan.q0 * (0.5 + 0.5 * this.loadEff) * (1 + (f?.qRise ?? 0) * hydraulic) + 0.8 * r.normal()
      pressure += 1.2 * (1 + 2 * hydraulic) * r.normal()
    } else {
      vib = 0.06 + 0.03 * Math.abs(r.normal())
      flow = Math.max(0, 0.05 * r.normal())
      pressure += 0.3 * r.normal()
    }
    let temperature = this.temp + 0.3 * r.normal()
    // Rare sensor glitches: a knocked accelerometer cable, an open thermocouple.
    if (r.next() < 3e-5) vib *= 8
    if (r.next() < 1e-5) temperature = -40
    return {
      ts,
      profile: 'asset',
      fields: {
        vibration: Math.round(Math.max(0, vib) * 100) / 100,
        temperature: Math.round(temperature * 10) / 10,
        pressure: Math.round(Math.max(0, pressure) * 10) / 10,
        flow: Math.round(Math.max(0, flow) * 10) / 10,
      },
    }
  }

  private fail(ts: number, f: FaultPlan): void {
    const entity = this.plan.info.entity
    const completed = ts + f.workshopMs
    this.failures.push({ entity, mode: f.mode, ts, onset: f.mode === 'sudden' ? ts : f.onset, completed })
    this.maintenance.push({ entity, ts, action: 'repair', completed })
    this.faultIdx++
    this.terminalStart = undefined
    this.severity = 0
    // The repaired part is new: a new bearing sits a little differently, a new seal holds a slightly other pressure.
    if (f.mode === 'bearing') {
      this.vib0 = this.plan.vib0 * Math.exp(0.06 * this.rng.normal())
      this.wear = 0
    }
    if (f.mode === 'hydraulic') this.p0 = this.plan.p0 + 2 * this.rng.normal()
    this.enterWorkshop(completed)
  }

  private enterWorkshop(until: number): void {
    this.workshopUntil = until
    this.duty = 'workshop'
    this.dutyEnd = until + this.rng.uniform(1, 4) * HOUR_MS
    this.load = 0
    this.loadEff = 0
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** A generated fleet; `readings()` streams it once, in time order. */
export class AssetFleet {
  readonly seed: number
  readonly units: number
  readonly days: number
  readonly intervalMs: number
  readonly startTs: number
  readonly endTs: number
  private readonly sims: UnitSim[]
  private readonly byEntity = new Map<string, UnitSim>()
  private started = false

  constructor(o: FleetOptions) {
    const units = o.units ?? 60
    const days = o.days ?? 72
    const intervalMs = o.intervalMs ?? 60_000
    if (!Number.isInteger(o.seed)) throw new ConfigError('fleet.seed', `must be an integer, got ${o.seed}`)
    if (!Number.isInteger(units) || units < 4)
      throw new ConfigError('fleet.units', `must be an integer >= 4, got ${units}`)
    if (!(days >= 12))
      throw new ConfigError(
        'fleet.days',
        `must be >= 12 (the longest precursor is ${PRECURSOR_DAYS.bearing.max} days), got ${days}`,
      )
    if (!Number.isInteger(intervalMs) || intervalMs < 1_000 || intervalMs > 10 * MIN_MS)
      throw new ConfigError('fleet.intervalMs', `must be an integer in [1000, 600000], got ${intervalMs}`)
    this.seed = o.seed
    this.units = units
    this.days = days
    this.intervalMs = intervalMs
    // Each seed starts on its own day of the year, 97 days on from the previous seed's, so any four consecutive
    // seeds cover the four seasons.
    this.startTs = EPOCH_2026 + ((((o.seed * 97 + 11) % 365) + 365) % 365) * DAY_MS
    this.endTs = this.startTs + days * DAY_MS
    const weather = makeWeather(o.seed)
    const plans = planFleet(o.seed, units, days, this.startTs, intervalMs)
    this.sims = plans.map((p) => new UnitSim(p, o.seed, weather[p.region] as Weather, this.startTs, intervalMs))
    this.sims.sort((a, b) => a.plan.phaseMs - b.plan.phaseMs || a.plan.index - b.plan.index)
    for (const s of this.sims) this.byEntity.set(s.plan.info.entity, s)
  }

  /** The units, in entity order. */
  unitInfo(): UnitInfo[] {
    return [...this.byEntity.values()].map((s) => s.plan.info).sort((a, b) => a.entity.localeCompare(b.entity))
  }

  /** Readings in time order up to (excluding) `untilTs` (the end of the run by default). Once per fleet. */
  *readings(untilTs = this.endTs): Generator<FleetReading> {
    if (this.started)
      throw new ConfigError('fleet.readings', 'a fleet streams once; build a new AssetFleet to read it again')
    this.started = true
    const end = Math.min(untilTs, this.endTs)
    for (let base = this.startTs; base < end; base += this.intervalMs) {
      for (const s of this.sims) {
        const ts = base + s.plan.phaseMs
        if (ts >= end) continue
        const reading = s.step(ts)
        if (reading) yield { entity: s.plan.info.entity, reading }
      }
    }
  }

  /** Failures that have happened so far, in time order. */
  failures(): FailureTruth[] {
    return this.sims.flatMap((s) => s.failures).sort((a, b) => a.ts - b.ts || a.entity.localeCompare(b.entity))
  }

  /** Maintenance log so far (repairs and routine exams), in time order. */
  maintenance(): MaintenanceEntry[] {
    return this.sims.flatMap((s) => s.maintenance).sort((a, b) => a.ts - b.ts || a.entity.localeCompare(b.entity))
  }

  /** Ground truth of a unit at its last step (tests and reports; a detector must never see it). */
  truth(entity: string): UnitTruth {
    const s = this.byEntity.get(entity)
    if (!s) throw new ConfigError('fleet.entity', `no unit ${entity}`)
    const f = s.fault
    const t: UnitTruth = { duty: s.duty, load: s.loadNow, ambient: s.ambient, character: s.plan.info.character }
    if (f && s.severity > 0) t.fault = { mode: f.mode, severity: s.severity }
    return t
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The two CSVs `pitwall train` reads.

export const READINGS_CSV_HEADER = 'entity,ts,vibration,temperature,pressure,flow'
/** `ts`: when the unit was withdrawn (repair: the failure time); `completed`: when the job was finished. */
export const MAINTENANCE_CSV_HEADER = 'entity,ts,action,completed'

async function write(out: WriteStream, s: string): Promise<void> {
  if (!out.write(s)) await once(out, 'drain')
}

async function finish(out: WriteStream): Promise<void> {
  out.end()
  await once(out, 'finish')
}

/** Streams readings into the history CSV (`entity,ts,vibration,temperature,pressure,flow`, ts in ms). */
export async function writeReadingsCsv(readings: Iterable<FleetReading>, path: string): Promise<number> {
  const out = createWriteStream(path)
  const failed = once(out, 'error').then(([e]) => {
    throw e
  })
  failed.catch(() => undefined)
  let n = 0
  let buf = `${READINGS_CSV_HEADER}\n`
  for (const { entity, reading } of readings) {
    const f = reading.fields
    buf += `${entity},${reading.ts},${String(f['vibration'])},${String(f['temperature'])},${String(f['pressure'])},${String(f['flow'])}\n`
    n++
    if (buf.length > 1 << 16) {
      await Promise.race([write(out, buf), failed])
      buf = ''
    }
  }
  await Promise.race([write(out, buf), failed])
  await Promise.race([finish(out), failed])
  return n
}

/** Writes the maintenance log CSV (`entity,ts,action,completed`, ts in ms). */
export async function writeMaintenanceCsv(entries: readonly MaintenanceEntry[], path: string): Promise<number> {
  const out = createWriteStream(path)
  const failed = once(out, 'error').then(([e]) => {
    throw e
  })
  failed.catch(() => undefined)
  const body = entries.map((m) => `${m.entity},${m.ts},${m.action},${m.completed}\n`).join('')
  await Promise.race([write(out, `${MAINTENANCE_CSV_HEADER}\n${body}`), failed])
  await Promise.race([finish(out), failed])
  return entries.length
}

/**
 * Writes the training CSVs of a fleet: every reading before `untilTs`, and the maintenance entries withdrawn
 * before it (a repair that finishes after `untilTs` is still listed, with its completion time).
 */
export async function writeTrainingCsvs(
  o: FleetOptions & { untilTs: number; readingsPath: string; maintenancePath: string },
): Promise<{ readings: number; maintenance: number }> {
  const fleet = new AssetFleet(o)
  const readings = await writeReadingsCsv(fleet.readings(o.untilTs), o.readingsPath)
  const maintenance = await writeMaintenanceCsv(
    fleet.maintenance().filter((m) => m.ts < o.untilTs),
    o.maintenancePath,
  )
  return { readings, maintenance }
}
