/**
 * An independent wastewater-plant scenario for scoring anomaly detectors (issue 17).
 *
 * Why a second generator: the project's own plant simulator was written together with its detector, so a
 * detector tuned on it is scored on its own assumptions. This one was written from DOMAIN.md section 3, the
 * issue's list of failure modes and general knowledge of activated-sludge plants, without reading the detector
 * or the other simulator, and shares no constant with them.
 *
 * What it models (all seeded, deterministic, streamed in time order; nothing of the 4.4 M readings is held):
 * - 127 sensors in the 8 stages of DOMAIN.md, 21 types, one poll every 5 s per sensor at a fixed phase.
 * - A nonlinear plant: diurnal dry-weather flow, storms (first flush then dilution, cooling), a hydraulic cap on
 *   the biological line with a storm bypass mixed back at the outlet, flow-dependent residence times, Monod
 *   nitrification/denitrification with Arrhenius temperature terms, DO under PI control with saturating blowers,
 *   weir levels, lift pumps staged with hysteresis, batch sludge pumping, filter head loss and backwashes,
 *   pulse chlorine dosing, sample-and-hold wet-chemistry analysers.
 * - Instruments: gain/offset per sensor, probe lag, local variability (shared within a redundant pair), white
 *   noise, SCADA quantisation per type, 4-20 mA clamping, healthy missed polls, 2 % lost readings (bursts and
 *   PLC outages), noisy and sometimes missing flow/temp covariates.
 * - Anomalies after the warm-up, about 2 % of sensor-time, with ground truth; calibrations and backwashes as
 *   maintenance windows (not anomalies).
 */
import type { Reading } from '../../actors/types.js'

// ---------------------------------------------------------------------------------------------------------
// Public types

export const ANOMALY_TYPES = [
  'sensor_failure',
  'sensor_drift',
  'pollution_spike',
  'process_malfunction',
  'cyber_attack',
] as const
export type AnomalyType = (typeof ANOMALY_TYPES)[number]

export const STAGES = [
  'pretreatment',
  'primary',
  'biological',
  'secondary',
  'tertiary',
  'disinfection',
  'sludge',
  'outlet',
] as const
export type Stage = (typeof STAGES)[number]

export type SensorType =
  | 'ph'
  | 'do'
  | 'turbidity'
  | 'flow'
  | 'temperature'
  | 'pressure'
  | 'conductivity'
  | 'nitrogen'
  | 'phosphorus'
  | 'tss'
  | 'cod'
  | 'bod5'
  | 'metals'
  | 'chlorine'
  | 'ammonia'
  | 'nitrate'
  | 'nitrite'
  | 'energy'
  | 'pump'
  | 'level'
  | 'sludge'

/** One ground-truth anomaly on one sensor. `variant` is diagnostic only (how it was injected). */
export interface Episode {
  entity: string
  type: AnomalyType
  start: number
  end: number
  variant: string
}

/** A legitimate intervention: readings look odd but nothing is wrong. An alert here is a false alert. */
export interface MaintenanceWindow {
  entity: string
  kind: 'calibration' | 'backwash'
  start: number
  end: number
}

export interface SensorInfo {
  id: string
  type: SensorType
  stage: Stage
  /** The other sensor of a redundant pair (same tag number, suffix a/b). */
  pair?: string
  /** Outlet analysers carry the influent value of the same parameter in field `inlet`. */
  hasInlet: boolean
}

export interface PlantReading {
  entity: string
  reading: Reading
}

export interface PlantScenarioOptions {
  seed: number
  /** Length of the scenario (default 48). */
  hours?: number
  /** Anomaly-free start (default 6). */
  warmupHours?: number
}

export interface PlantScenario {
  seed: number
  hours: number
  warmupHours: number
  /** Event time of the first poll, and the end of the scenario (exclusive), ms. */
  start: number
  end: number
  /** End of the warm-up: anomalies only from here on. */
  evalStart: number
  periodMs: number
  sensors: readonly SensorInfo[]
  episodes: readonly Episode[]
  maintenance: readonly MaintenanceWindow[]
  /** Storm events driving the hydraulics (diagnostic). */
  storms: readonly { start: number; peakFactor: number }[]
  /** Share of post-warm-up sensor-time covered by episodes. */
  anomalousFraction: number
  /** The readings in event-time order. Each call starts a fresh, identical stream. */
  readings(): Generator<PlantReading>
}

export const DEFAULT_HOURS = 48
export const QUICK_HOURS = 10
export const DEFAULT_WARMUP_HOURS = 6
const PERIOD_MS = 5_000

// ---------------------------------------------------------------------------------------------------------
// PRNG: xoshiro128** seeded through splitmix32, with Box-Muller normals. Own implementation so the stream
// never depends on Math.random or on another module.

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spare: number | undefined

  constructor(seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  /** Uniform in [0, 1). */
  next(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = (this.b << 9) >>> 0
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return r / 4294967296
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }
  logUniform(lo: number, hi: number): number {
    return Math.exp(this.uniform(Math.log(lo), Math.log(hi)))
  }
  int(lo: number, hiIncl: number): number {
    return lo + Math.floor(this.next() * (hiIncl - lo + 1))
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  sign(): number {
    return this.next() < 0.5 ? -1 : 1
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T
  }

  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare
      this.spare = undefined
      return s
    }
    let u = this.next()
    if (u < 1e-12) u = 1e-12
    const v = this.next()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

// ---------------------------------------------------------------------------------------------------------
// Plant signals. The process writes one Float64Array per tick; each sensor reads one slot of it.

const SIG_NAMES = [
  'qIn',
  'qBio',
  'qBypass',
  'tW',
  'tBio',
  'tDig',
  // influent
  'phIn',
  'condIn',
  'turbIn',
  'tssIn',
  'codIn',
  'bodIn',
  'nhIn',
  'tnIn',
  'tpIn',
  'metIn',
  'no3In',
  // pretreatment
  'lvlWw',
  'pump1',
  'pump2',
  'pump3',
  'ePre',
  // primary
  'lvlPrim',
  'tssPe',
  'turbPe',
  'codPe',
  'bodPe',
  'tpPe',
  'phPe',
  'blanketP1',
  'blanketP2',
  'pumpP1',
  'pumpP2',
  'ePrim',
  // biological
  'do1',
  'do2',
  'do3',
  'do4',
  'phA',
  'phB',
  'nhA',
  'nhB',
  'no3A',
  'no3B',
  'no2A',
  'no2B',
  'mlssA',
  'mlssB',
  'pHdr',
  'pA',
  'pB',
  'eBl1',
  'eBl2',
  'eBl3',
  'qIrA',
  'qIrB',
  'tpBio',
  // secondary
  'turbS1',
  'turbS2',
  'tssSe',
  'blanketS1',
  'blanketS2',
  'lvlS1',
  'lvlS2',
  'rasPump1',
  'rasPump2',
  'qRas1',
  'qRas2',
  // tertiary
  'turbT',
  'tpT',
  'tssT',
  'dpF1',
  'dpF2',
  'qF1',
  'qF2',
  'lvlT',
  'bwPump',
  'eTert',
  // disinfection
  'cl',
  'phD',
  'turbD',
  'dosePump',
  'eDis',
  // sludge
  'dsThick',
  'dsDig',
  'qSl1',
  'qSl2',
  'lvlDig',
  'pGas',
  'slPump1',
  'slPump2',
  'eSl',
  'qSludge',
  // outlet
  'phO',
  'codO',
  'bodO',
  'tssO',
  'nhO',
  'no3O',
  'tnO',
  'tpO',
  'metO',
  'condO',
  'turbO',
  'tO',
] as const
type SigName = (typeof SIG_NAMES)[number]
type Signals = Record<SigName, number>
const sigIndex = new Map<string, number>(SIG_NAMES.map((n, i) => [n, i]))
/** The signal `offset` places after `first` in SIG_NAMES (for numbered equipment: pump1..3, do1..4). */
function sigAt(first: SigName, offset: number): SigName {
  const name = SIG_NAMES[(sigIndex.get(first) ?? 0) + offset]
  if (name === undefined) throw new RangeError(`no signal ${offset} after ${first}`)
  return name
}

/** Instrument description per type: SCADA decimals, instrument range, and the healthy local variability. */
interface TypeSpec {
  decimals: number
  /** Relative (fraction of level) or absolute local variability and white noise. */
  ar: number
  noise: number
  relative: boolean
  /** Local-variability correlation time, s. */
  arTau: number
  /** Probe response time, s (0 = none). */
  lag: number
  analyser: boolean
  chemistry: boolean
}

const TYPE_SPECS: Record<SensorType, TypeSpec> = {
  ph: { decimals: 2, ar: 0.022, noise: 0.006, relative: false, arTau: 240, lag: 20, analyser: true, chemistry: true },
  do: { decimals: 2, ar: 0.07, noise: 0.02, relative: false, arTau: 90, lag: 40, analyser: true, chemistry: false },
  turbidity: {
    decimals: 1,
    ar: 0.05,
    noise: 0.02,
    relative: true,
    arTau: 120,
    lag: 10,
    analyser: true,
    chemistry: true,
  },
  flow: { decimals: 0, ar: 0.02, noise: 0.008, relative: true, arTau: 60, lag: 0, analyser: false, chemistry: false },
  temperature: {
    decimals: 1,
    ar: 0.09,
    noise: 0.04,
    relative: false,
    arTau: 600,
    lag: 30,
    analyser: false,
    chemistry: false,
  },
  pressure: {
    decimals: 3,
    ar: 0.012,
    noise: 0.004,
    relative: true,
    arTau: 60,
    lag: 0,
    analyser: false,
    chemistry: false,
  },
  conductivity: {
    decimals: 0,
    ar: 0.015,
    noise: 0.004,
    relative: true,
    arTau: 300,
    lag: 10,
    analyser: true,
    chemistry: true,
  },
  nitrogen: {
    decimals: 1,
    ar: 0.04,
    noise: 0.015,
    relative: true,
    arTau: 600,
    lag: 0,
    analyser: true,
    chemistry: true,
  },
  phosphorus: {
    decimals: 2,
    ar: 0.05,
    noise: 0.02,
    relative: true,
    arTau: 600,
    lag: 0,
    analyser: true,
    chemistry: true,
  },
  tss: { decimals: 1, ar: 0.05, noise: 0.02, relative: true, arTau: 180, lag: 10, analyser: true, chemistry: true },
  cod: { decimals: 0, ar: 0.04, noise: 0.015, relative: true, arTau: 300, lag: 15, analyser: true, chemistry: true },
  bod5: { decimals: 1, ar: 0.05, noise: 0.02, relative: true, arTau: 600, lag: 0, analyser: true, chemistry: true },
  metals: { decimals: 3, ar: 0.06, noise: 0.02, relative: true, arTau: 900, lag: 0, analyser: true, chemistry: true },
  chlorine: {
    decimals: 2,
    ar: 0.035,
    noise: 0.01,
    relative: false,
    arTau: 180,
    lag: 20,
    analyser: true,
    chemistry: false,
  },
  ammonia: {
    decimals: 2,
    ar: 0.06,
    noise: 0.025,
    relative: true,
    arTau: 300,
    lag: 30,
    analyser: true,
    chemistry: true,
  },
  nitrate: {
    decimals: 1,
    ar: 0.04,
    noise: 0.015,
    relative: true,
    arTau: 300,
    lag: 30,
    analyser: true,
    chemistry: true,
  },
  nitrite: {
    decimals: 2,
    ar: 0.08,
    noise: 0.03,
    relative: true,
    arTau: 300,
    lag: 30,
    analyser: true,
    chemistry: false,
  },
  energy: {
    decimals: 1,
    ar: 0.015,
    noise: 0.006,
    relative: true,
    arTau: 60,
    lag: 0,
    analyser: false,
    chemistry: false,
  },
  pump: { decimals: 0, ar: 0, noise: 0, relative: false, arTau: 60, lag: 0, analyser: false, chemistry: false },
  level: {
    decimals: 2,
    ar: 0.012,
    noise: 0.004,
    relative: false,
    arTau: 120,
    lag: 0,
    analyser: false,
    chemistry: false,
  },
  sludge: {
    decimals: 2,
    ar: 0.025,
    noise: 0.01,
    relative: true,
    arTau: 300,
    lag: 0,
    analyser: false,
    chemistry: false,
  },
}

/** Calibration standards per analyser type: the values a technician puts the probe in (first, second). */
const CAL_STANDARDS: Partial<Record<SensorType, readonly [number, number]>> = {
  ph: [7.0, 4.01],
  do: [9.1, 0],
  turbidity: [0, 20],
  conductivity: [0, 1413],
  nitrogen: [0, 10],
  phosphorus: [0, 2],
  tss: [0, 100],
  cod: [0, 100],
  bod5: [0, 50],
  metals: [0, 0.5],
  chlorine: [0, 1],
  ammonia: [0, 10],
  nitrate: [0, 10],
  nitrite: [0, 1],
}

interface SensorSpec extends SensorInfo {
  sig: SigName
  lo: number
  hi: number
  /** Sample-and-hold cycle of wet-chemistry analysers, in polls (0 = continuous). */
  hold: number
  /** Value driven by on/off equipment (pumps, batch flows, sawtooth blankets): excluded from shape anomalies. */
  steppy: boolean
  /** Signal of the influent value (outlet analysers). */
  inletSig: SigName | undefined
  decimals: number
  /** Healthy short-term standard deviation (local variability + noise), at the nominal level. */
  sigma: number
  nominal: number
}

interface SensorDef {
  stage: Stage
  type: SensorType
  sig: SigName
  lo: number
  hi: number
  nominal: number
  pairTag?: boolean
  hold?: number
  steppy?: boolean
  inlet?: SigName
  decimals?: number
}

const STAGE_SHORT: Record<Stage, string> = {
  pretreatment: 'pre',
  primary: 'pri',
  biological: 'bio',
  secondary: 'sec',
  tertiary: 'ter',
  disinfection: 'dis',
  sludge: 'slu',
  outlet: 'out',
}

/** The plant's instrument list (127 sensors). A `pairTag` def yields two sensors, `a` and `b`. */
function plantDefs(): SensorDef[] {
  const d: SensorDef[] = []
  const add = (x: SensorDef, n = 1): void => {
    for (let i = 0; i < n; i++) d.push(x)
  }
  // pretreatment 15
  add({ stage: 'pretreatment', type: 'flow', sig: 'qIn', lo: 0, hi: 8000, nominal: 2000, pairTag: true })
  add({ stage: 'pretreatment', type: 'level', sig: 'lvlWw', lo: 0, hi: 5, nominal: 2.1, pairTag: true })
  add({ stage: 'pretreatment', type: 'pump', sig: 'pump1', lo: 0, hi: 1, nominal: 1, steppy: true })
  add({ stage: 'pretreatment', type: 'pump', sig: 'pump2', lo: 0, hi: 1, nominal: 1, steppy: true })
  add({ stage: 'pretreatment', type: 'pump', sig: 'pump3', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'pretreatment', type: 'energy', sig: 'ePre', lo: 0, hi: 400, nominal: 110, steppy: true })
  add({ stage: 'pretreatment', type: 'ph', sig: 'phIn', lo: 0, hi: 14, nominal: 7.5 })
  add({ stage: 'pretreatment', type: 'temperature', sig: 'tW', lo: 0, hi: 50, nominal: 16 })
  add({ stage: 'pretreatment', type: 'conductivity', sig: 'condIn', lo: 0, hi: 5000, nominal: 1100 })
  add({ stage: 'pretreatment', type: 'turbidity', sig: 'turbIn', lo: 0, hi: 1000, nominal: 180, decimals: 0 })
  add({ stage: 'pretreatment', type: 'tss', sig: 'tssIn', lo: 0, hi: 2000, nominal: 250, decimals: 0 })
  add({ stage: 'pretreatment', type: 'cod', sig: 'codIn', lo: 0, hi: 2000, nominal: 500 })
  add({ stage: 'pretreatment', type: 'ammonia', sig: 'nhIn', lo: 0, hi: 100, nominal: 38, decimals: 1 })
  // primary 18
  add({ stage: 'primary', type: 'flow', sig: 'qIn', lo: 0, hi: 8000, nominal: 2000, pairTag: true })
  add({ stage: 'primary', type: 'level', sig: 'lvlPrim', lo: 0, hi: 5, nominal: 3.3, pairTag: true })
  add({ stage: 'primary', type: 'tss', sig: 'tssPe', lo: 0, hi: 1000, nominal: 100, pairTag: true, decimals: 0 })
  add({ stage: 'primary', type: 'turbidity', sig: 'turbPe', lo: 0, hi: 1000, nominal: 80, pairTag: true, decimals: 0 })
  add({ stage: 'primary', type: 'sludge', sig: 'blanketP1', lo: 0, hi: 3, nominal: 1, steppy: true })
  add({ stage: 'primary', type: 'sludge', sig: 'blanketP2', lo: 0, hi: 3, nominal: 1, steppy: true })
  add({ stage: 'primary', type: 'pump', sig: 'pumpP1', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'primary', type: 'pump', sig: 'pumpP2', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'primary', type: 'cod', sig: 'codPe', lo: 0, hi: 2000, nominal: 320 })
  add({ stage: 'primary', type: 'bod5', sig: 'bodPe', lo: 0, hi: 1000, nominal: 150, hold: 180, decimals: 0 })
  add({ stage: 'primary', type: 'phosphorus', sig: 'tpPe', lo: 0, hi: 20, nominal: 6, hold: 120, decimals: 1 })
  add({ stage: 'primary', type: 'ph', sig: 'phPe', lo: 0, hi: 14, nominal: 7.4 })
  add({ stage: 'primary', type: 'temperature', sig: 'tW', lo: 0, hi: 50, nominal: 16 })
  add({ stage: 'primary', type: 'energy', sig: 'ePrim', lo: 0, hi: 100, nominal: 20, steppy: true })
  // biological 35
  add({ stage: 'biological', type: 'do', sig: 'do1', lo: 0, hi: 20, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'do', sig: 'do2', lo: 0, hi: 20, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'do', sig: 'do3', lo: 0, hi: 20, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'do', sig: 'do4', lo: 0, hi: 20, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'ph', sig: 'phA', lo: 0, hi: 14, nominal: 7.1, pairTag: true })
  add({ stage: 'biological', type: 'ph', sig: 'phB', lo: 0, hi: 14, nominal: 7.1, pairTag: true })
  add({ stage: 'biological', type: 'ammonia', sig: 'nhA', lo: 0, hi: 50, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'ammonia', sig: 'nhB', lo: 0, hi: 50, nominal: 2, pairTag: true })
  add({ stage: 'biological', type: 'nitrate', sig: 'no3A', lo: 0, hi: 50, nominal: 8, pairTag: true })
  add({ stage: 'biological', type: 'nitrate', sig: 'no3B', lo: 0, hi: 50, nominal: 8, pairTag: true })
  add({ stage: 'biological', type: 'nitrite', sig: 'no2A', lo: 0, hi: 5, nominal: 0.2 })
  add({ stage: 'biological', type: 'nitrite', sig: 'no2B', lo: 0, hi: 5, nominal: 0.2 })
  add({ stage: 'biological', type: 'temperature', sig: 'tBio', lo: 0, hi: 50, nominal: 17 })
  add({ stage: 'biological', type: 'temperature', sig: 'tBio', lo: 0, hi: 50, nominal: 17 })
  add({ stage: 'biological', type: 'sludge', sig: 'mlssA', lo: 0, hi: 10, nominal: 3.5 })
  add({ stage: 'biological', type: 'sludge', sig: 'mlssB', lo: 0, hi: 10, nominal: 3.5 })
  add({ stage: 'biological', type: 'pressure', sig: 'pHdr', lo: 0, hi: 1.5, nominal: 0.6 })
  add({ stage: 'biological', type: 'pressure', sig: 'pA', lo: 0, hi: 1.5, nominal: 0.58 })
  add({ stage: 'biological', type: 'pressure', sig: 'pB', lo: 0, hi: 1.5, nominal: 0.58 })
  add({ stage: 'biological', type: 'energy', sig: 'eBl1', lo: 0, hi: 300, nominal: 90, steppy: true })
  add({ stage: 'biological', type: 'energy', sig: 'eBl2', lo: 0, hi: 300, nominal: 90, steppy: true })
  add({ stage: 'biological', type: 'energy', sig: 'eBl3', lo: 0, hi: 300, nominal: 90, steppy: true })
  add({ stage: 'biological', type: 'flow', sig: 'qIrA', lo: 0, hi: 6000, nominal: 2400 })
  add({ stage: 'biological', type: 'flow', sig: 'qIrB', lo: 0, hi: 6000, nominal: 2400 })
  add({ stage: 'biological', type: 'phosphorus', sig: 'tpBio', lo: 0, hi: 10, nominal: 0.8 })
  // secondary 16
  add({ stage: 'secondary', type: 'turbidity', sig: 'turbS1', lo: 0, hi: 100, nominal: 5, pairTag: true })
  add({ stage: 'secondary', type: 'turbidity', sig: 'turbS2', lo: 0, hi: 100, nominal: 5, pairTag: true })
  add({ stage: 'secondary', type: 'tss', sig: 'tssSe', lo: 0, hi: 200, nominal: 10, pairTag: true })
  add({ stage: 'secondary', type: 'sludge', sig: 'blanketS1', lo: 0, hi: 5, nominal: 1.2, pairTag: true })
  add({ stage: 'secondary', type: 'sludge', sig: 'blanketS2', lo: 0, hi: 5, nominal: 1.2, pairTag: true })
  add({ stage: 'secondary', type: 'level', sig: 'lvlS1', lo: 0, hi: 6, nominal: 4.05 })
  add({ stage: 'secondary', type: 'level', sig: 'lvlS2', lo: 0, hi: 6, nominal: 4.05 })
  add({ stage: 'secondary', type: 'pump', sig: 'rasPump1', lo: 0, hi: 1, nominal: 1, steppy: true })
  add({ stage: 'secondary', type: 'pump', sig: 'rasPump2', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'secondary', type: 'flow', sig: 'qRas1', lo: 0, hi: 3000, nominal: 600, steppy: true })
  add({ stage: 'secondary', type: 'flow', sig: 'qRas2', lo: 0, hi: 3000, nominal: 600, steppy: true })
  // tertiary 12
  add({ stage: 'tertiary', type: 'turbidity', sig: 'turbT', lo: 0, hi: 50, nominal: 1.5, pairTag: true, decimals: 2 })
  add({ stage: 'tertiary', type: 'phosphorus', sig: 'tpT', lo: 0, hi: 5, nominal: 0.3, pairTag: true, hold: 120 })
  add({ stage: 'tertiary', type: 'tss', sig: 'tssT', lo: 0, hi: 100, nominal: 3 })
  add({ stage: 'tertiary', type: 'pressure', sig: 'dpF1', lo: 0, hi: 0.5, nominal: 0.12, steppy: true })
  add({ stage: 'tertiary', type: 'pressure', sig: 'dpF2', lo: 0, hi: 0.5, nominal: 0.12, steppy: true })
  add({ stage: 'tertiary', type: 'flow', sig: 'qF1', lo: 0, hi: 5000, nominal: 1000, steppy: true })
  add({ stage: 'tertiary', type: 'flow', sig: 'qF2', lo: 0, hi: 5000, nominal: 1000, steppy: true })
  add({ stage: 'tertiary', type: 'level', sig: 'lvlT', lo: 0, hi: 3, nominal: 1.3 })
  add({ stage: 'tertiary', type: 'pump', sig: 'bwPump', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'tertiary', type: 'energy', sig: 'eTert', lo: 0, hi: 150, nominal: 8, steppy: true })
  // disinfection 8
  add({ stage: 'disinfection', type: 'chlorine', sig: 'cl', lo: 0, hi: 5, nominal: 0.5, pairTag: true })
  add({ stage: 'disinfection', type: 'flow', sig: 'qIn', lo: 0, hi: 8000, nominal: 2000 })
  add({ stage: 'disinfection', type: 'ph', sig: 'phD', lo: 0, hi: 14, nominal: 7.3 })
  add({ stage: 'disinfection', type: 'turbidity', sig: 'turbD', lo: 0, hi: 100, nominal: 2, decimals: 2 })
  add({ stage: 'disinfection', type: 'temperature', sig: 'tO', lo: 0, hi: 50, nominal: 16 })
  add({ stage: 'disinfection', type: 'pump', sig: 'dosePump', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'disinfection', type: 'energy', sig: 'eDis', lo: 0, hi: 100, nominal: 30 })
  // sludge 10
  add({ stage: 'sludge', type: 'sludge', sig: 'dsThick', lo: 0, hi: 12, nominal: 5 })
  add({ stage: 'sludge', type: 'sludge', sig: 'dsDig', lo: 0, hi: 8, nominal: 2.8 })
  add({ stage: 'sludge', type: 'flow', sig: 'qSl1', lo: 0, hi: 60, nominal: 18, steppy: true, decimals: 1 })
  add({ stage: 'sludge', type: 'flow', sig: 'qSl2', lo: 0, hi: 60, nominal: 18, steppy: true, decimals: 1 })
  add({ stage: 'sludge', type: 'level', sig: 'lvlDig', lo: 0, hi: 12, nominal: 8.5 })
  add({ stage: 'sludge', type: 'temperature', sig: 'tDig', lo: 0, hi: 60, nominal: 36.8 })
  add({ stage: 'sludge', type: 'pump', sig: 'slPump1', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'sludge', type: 'pump', sig: 'slPump2', lo: 0, hi: 1, nominal: 0, steppy: true })
  add({ stage: 'sludge', type: 'pressure', sig: 'pGas', lo: 0, hi: 60, nominal: 22, decimals: 1 })
  add({ stage: 'sludge', type: 'energy', sig: 'eSl', lo: 0, hi: 100, nominal: 30, steppy: true })
  // outlet 13
  add({ stage: 'outlet', type: 'ph', sig: 'phO', lo: 0, hi: 14, nominal: 7.3, inlet: 'phIn' })
  add({ stage: 'outlet', type: 'cod', sig: 'codO', lo: 0, hi: 500, nominal: 40, hold: 120, inlet: 'codIn' })
  add({ stage: 'outlet', type: 'bod5', sig: 'bodO', lo: 0, hi: 200, nominal: 8, hold: 180, inlet: 'bodIn' })
  add({ stage: 'outlet', type: 'tss', sig: 'tssO', lo: 0, hi: 200, nominal: 6, inlet: 'tssIn' })
  add({ stage: 'outlet', type: 'ammonia', sig: 'nhO', lo: 0, hi: 50, nominal: 1.5, hold: 120, inlet: 'nhIn' })
  add({ stage: 'outlet', type: 'nitrate', sig: 'no3O', lo: 0, hi: 50, nominal: 8, inlet: 'no3In' })
  add({ stage: 'outlet', type: 'nitrogen', sig: 'tnO', lo: 0, hi: 100, nominal: 12, hold: 240, inlet: 'tnIn' })
  add({ stage: 'outlet', type: 'phosphorus', sig: 'tpO', lo: 0, hi: 10, nominal: 0.4, hold: 120, inlet: 'tpIn' })
  add({ stage: 'outlet', type: 'metals', sig: 'metO', lo: 0, hi: 2, nominal: 0.04, hold: 360, inlet: 'metIn' })
  add({ stage: 'outlet', type: 'conductivity', sig: 'condO', lo: 0, hi: 5000, nominal: 1050, inlet: 'condIn' })
  add({ stage: 'outlet', type: 'turbidity', sig: 'turbO', lo: 0, hi: 100, nominal: 2, decimals: 2, inlet: 'turbIn' })
  add({ stage: 'outlet', type: 'flow', sig: 'qIn', lo: 0, hi: 8000, nominal: 2000 })
  add({ stage: 'outlet', type: 'temperature', sig: 'tO', lo: 0, hi: 50, nominal: 16 })
  return d
}

function buildSensors(): SensorSpec[] {
  const out: SensorSpec[] = []
  const counters = new Map<string, number>()
  for (const def of plantDefs()) {
    const key = `${STAGE_SHORT[def.stage]}-${def.type}`
    // consecutive identical pair defs are the same tag; a def with pairTag produces a and b
    const n = (counters.get(key) ?? 0) + 1
    counters.set(key, n)
    const spec = TYPE_SPECS[def.type]
    const ar = spec.relative ? spec.ar * def.nominal : spec.ar
    const noise = spec.relative ? spec.noise * def.nominal : spec.noise
    const decimals = def.decimals ?? spec.decimals
    const q = 10 ** -decimals
    const sigma = def.type === 'pump' ? 1 : Math.max(Math.sqrt(ar * ar + noise * noise), q)
    const base = {
      type: def.type,
      stage: def.stage,
      sig: def.sig,
      lo: def.lo,
      hi: def.hi,
      hold: def.hold ?? 0,
      steppy: def.steppy ?? false,
      inletSig: def.inlet,
      hasInlet: def.inlet !== undefined,
      decimals,
      sigma,
      nominal: def.nominal,
    }
    const tag = `${key}-${String(n).padStart(2, '0')}`
    if (def.pairTag === true) {
      out.push({ ...base, id: `${tag}a`, pair: `${tag}b` })
      out.push({ ...base, id: `${tag}b`, pair: `${tag}a` })
    } else {
      out.push({ ...base, id: tag })
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Schedule: storms, backwashes, calibrations, anomaly episodes. Drawn up front (small), before any reading.

interface Storm {
  start: number
  ramp: number
  peak: number
  tau: number
  firstFlush: number
}
interface Backwash {
  filter: 0 | 1
  start: number
  end: number
  rippleEnd: number
}

interface InjectedEpisode extends Episode {
  /** Per-episode draws used while streaming. */
  mag: number
  dir: number
  front: number
  plateauEnd: number
  decayTau: number
  lag: number
  speed: number
  offset: number
  period: number
  frozenCovariates: boolean
}

interface Calibration {
  entity: string
  start: number
  end: number
  std1: number
  std2: number
  outMs: number
}

const MIN = 60_000
const HOUR = 3_600_000

/** Eligible variants per type, given the sensor. */
function eligible(type: AnomalyType, s: SensorSpec): boolean {
  const spec = TYPE_SPECS[s.type]
  switch (type) {
    case 'sensor_failure':
      return true
    case 'sensor_drift':
      return !s.steppy && s.type !== 'pump'
    case 'pollution_spike':
      return spec.chemistry && !s.steppy
    case 'process_malfunction':
      return !s.steppy && (s.pair !== undefined || s.hasInlet)
    case 'cyber_attack':
      return true
  }
}

class Busy {
  private readonly m = new Map<string, [number, number][]>()
  free(entity: string, s: number, e: number, margin: number): boolean {
    for (const [a, b] of this.m.get(entity) ?? []) if (s < b + margin && e + margin > a) return false
    return true
  }
  take(entity: string, s: number, e: number): void {
    const l = this.m.get(entity) ?? []
    l.push([s, e])
    this.m.set(entity, l)
  }
}

interface Schedule {
  storms: Storm[]
  backwashes: Backwash[]
  calibrations: Calibration[]
  maintenance: MaintenanceWindow[]
  episodes: InjectedEpisode[]
  anomalousFraction: number
}

const TYPE_WEIGHTS: readonly [AnomalyType, number][] = [
  ['sensor_failure', 0.22],
  ['sensor_drift', 0.15],
  ['pollution_spike', 0.2],
  ['process_malfunction', 0.2],
  ['cyber_attack', 0.23],
]

function makeSchedule(
  rng: Rng,
  sensors: SensorSpec[],
  start: number,
  end: number,
  evalStart: number,
  startHour: number,
): Schedule {
  const hours = (end - start) / HOUR
  // Storms: about one every 30 h on average, any time, with a first flush then dilution.
  const storms: Storm[] = []
  let t = start + rng.uniform(0, 30) * HOUR
  while (t < end) {
    storms.push({
      start: t,
      ramp: rng.uniform(20, 60) * MIN,
      peak: rng.uniform(0.4, 2.4),
      tau: rng.uniform(1.5, 4) * HOUR,
      firstFlush: rng.uniform(0.4, 1.5),
    })
    t += rng.uniform(14, 46) * HOUR
  }
  const busy = new Busy()
  const maintenance: MaintenanceWindow[] = []
  const byId = new Map(sensors.map((s) => [s.id, s]))
  const idsOf = (stage: Stage, type: SensorType): string[] =>
    sensors.filter((s) => s.stage === stage && s.type === type).map((s) => s.id)
  // Backwashes: timer-driven, each filter every 10-14 h, staggered.
  const backwashes: Backwash[] = []
  for (const filter of [0, 1] as const) {
    let b = start + rng.uniform(1, 10) * HOUR + filter * 5 * HOUR
    while (b < end - 40 * MIN) {
      const dur = rng.uniform(10, 18) * MIN
      const ripple = rng.uniform(10, 20) * MIN
      // one filter at a time: the PLC holds a backwash while the other filter is in one (or rippling)
      const clash = backwashes.find((o) => b < o.rippleEnd + 5 * MIN && b + dur + ripple + 5 * MIN > o.start)
      if (clash !== undefined) {
        b = clash.rippleEnd + 5 * MIN
        continue
      }
      backwashes.push({ filter, start: b, end: b + dur, rippleEnd: b + dur + ripple })
      const affected = [
        ...idsOf('tertiary', 'pressure').slice(filter, filter + 1),
        ...idsOf('tertiary', 'flow'),
        ...idsOf('tertiary', 'level'),
        ...idsOf('tertiary', 'pump'),
        ...idsOf('tertiary', 'energy'),
      ]
      for (const id of affected) {
        maintenance.push({ entity: id, kind: 'backwash', start: b, end: b + dur + 2 * MIN })
        busy.take(id, b, b + dur + 2 * MIN)
      }
      for (const id of [
        ...idsOf('tertiary', 'turbidity'),
        ...idsOf('tertiary', 'tss'),
        ...idsOf('disinfection', 'turbidity'),
        ...idsOf('outlet', 'turbidity'),
      ]) {
        maintenance.push({ entity: id, kind: 'backwash', start: b, end: b + dur + ripple })
        busy.take(id, b, b + dur + ripple)
      }
      b += rng.uniform(10, 14) * HOUR
    }
  }
  // Calibrations: analysers, in working hours (08-16 local), about one in three analysers per day.
  const calibrations: Calibration[] = []
  const days = Math.ceil(hours / 24) + 1
  for (const s of sensors) {
    const stds = CAL_STANDARDS[s.type]
    if (stds === undefined) continue
    for (let day = 0; day < days; day++) {
      if (!rng.chance(0.33)) continue
      const dayStart = start - startHour * HOUR + day * 24 * HOUR
      const cs = dayStart + rng.uniform(8, 15.5) * HOUR
      const dur = rng.uniform(15, 40) * MIN
      if (cs < start || cs + dur > end) continue
      if (!busy.free(s.id, cs, cs + dur, 30 * MIN)) continue
      const std1 =
        s.type === 'do' ? 14.62 - 0.3898 * 20 + 0.006969 * 400 - 0.00005897 * 8000 + rng.uniform(-0.2, 0.2) : stds[0]
      const std2 = s.type === 'ph' ? rng.pick([4.01, 10.01]) : stds[1]
      calibrations.push({ entity: s.id, start: cs, end: cs + dur, std1, std2, outMs: rng.uniform(0.5, 2.5) * MIN })
      maintenance.push({ entity: s.id, kind: 'calibration', start: cs, end: cs + dur })
      busy.take(s.id, cs, cs + dur)
    }
  }
  // Anomalies: drawn until 2 % of post-warm-up sensor-time is covered.
  const episodes: InjectedEpisode[] = []
  const span = end - evalStart
  const budget = 0.02 * sensors.length * span
  let used = 0
  const weightSum = TYPE_WEIGHTS.reduce((a, [, w]) => a + w, 0)
  const candidates = new Map<AnomalyType, SensorSpec[]>(
    ANOMALY_TYPES.map((ty) => [ty, sensors.filter((s) => eligible(ty, s))]),
  )
  const margin = 30 * MIN
  for (let attempt = 0; used < budget && attempt < 20_000; attempt++) {
    let r = rng.next() * weightSum
    let type: AnomalyType = 'sensor_failure'
    for (const [ty, w] of TYPE_WEIGHTS) {
      if (r < w) {
        type = ty
        break
      }
      r -= w
    }
    const s = rng.pick(candidates.get(type) ?? [])
    const ep = drawEpisode(rng, type, s)
    const dur = Math.min(ep.duration, span - 20 * MIN)
    const st = evalStart + 5 * MIN + rng.next() * (span - dur - 20 * MIN)
    const en = st + dur
    const partner = s.pair === undefined ? undefined : byId.get(s.pair)
    if (!busy.free(s.id, st, en, margin)) continue
    // a disagreement needs a healthy partner; a pollution front reaches both probes of a pair
    const needPartner = partner !== undefined && (type === 'process_malfunction' || type === 'pollution_spike')
    if (needPartner && !busy.free(partner.id, st, en, margin)) continue
    if (type === 'process_malfunction' && partner === undefined && !s.hasInlet) continue
    const base = { type, start: Math.round(st), end: Math.round(en), ...ep.params }
    episodes.push({ ...base, entity: s.id, variant: ep.variant })
    busy.take(s.id, st, en)
    used += en - st
    if (needPartner && type === 'pollution_spike') {
      // the partner sees the same front a few seconds later
      const lagMs = rng.uniform(0, 20_000)
      episodes.push({
        ...base,
        entity: partner.id,
        variant: 'spike_partner',
        start: Math.round(st + lagMs),
        end: Math.round(en + lagMs),
      })
      busy.take(partner.id, st, en + lagMs)
      used += en - st
    } else if (needPartner) {
      busy.take(partner.id, st, en)
    }
  }
  episodes.sort((a, b) => a.start - b.start || (a.entity < b.entity ? -1 : 1))
  maintenance.sort((a, b) => a.start - b.start || (a.entity < b.entity ? -1 : 1))
  calibrations.sort((a, b) => a.start - b.start)
  return { storms, backwashes, calibrations, maintenance, episodes, anomalousFraction: used / (sensors.length * span) }
}

interface Drawn {
  duration: number
  variant: string
  params: Omit<InjectedEpisode, keyof Episode>
}

function drawEpisode(rng: Rng, type: AnomalyType, s: SensorSpec): Drawn {
  const p = {
    mag: 0,
    dir: rng.sign(),
    front: 0,
    plateauEnd: 0,
    decayTau: 0,
    lag: 0,
    speed: 1,
    offset: 0,
    period: 1,
    frozenCovariates: false,
  }
  const holdMs = s.hold * PERIOD_MS
  switch (type) {
    case 'sensor_failure': {
      const variant =
        s.type === 'pump' ? rng.pick(['stuck', 'dropout']) : rng.pick(['stuck', 'stuck', 'dropout', 'loop_break'])
      const duration = variant === 'dropout' ? rng.logUniform(5, 60) * MIN : rng.logUniform(15, 120) * MIN
      p.frozenCovariates = variant === 'stuck' && rng.chance(0.3)
      p.mag = rng.uniform(0.02, 0.05) // loop break: fraction of span below the range
      return { duration: Math.max(duration, 3 * holdMs), variant, params: p }
    }
    case 'sensor_drift': {
      p.mag = rng.uniform(1, 3)
      return { duration: rng.uniform(90, 300) * MIN, variant: 'drift', params: p }
    }
    case 'pollution_spike': {
      p.mag = rng.uniform(3, 6)
      // pollutants rise; pH can go either way (acid or alkaline discharge)
      if (s.type !== 'ph') p.dir = 1
      p.front = rng.uniform(30, 120) * 1000
      const plateau = rng.uniform(2, 10) * MIN + holdMs * 2
      p.plateauEnd = p.front + plateau
      p.decayTau = rng.uniform(1, 4) * MIN
      // the episode ends when the excess has decayed below a tenth of its peak
      return { duration: p.plateauEnd + p.decayTau * Math.log(10), variant: 'spike', params: p }
    }
    case 'process_malfunction': {
      p.mag = rng.uniform(3, 5)
      p.front = rng.uniform(1, 5) * MIN
      const variant = s.pair !== undefined ? 'pair_disagree' : 'treatment_loss'
      if (variant === 'treatment_loss') p.dir = s.type === 'ph' ? p.dir : 1
      return { duration: Math.max(rng.uniform(15, 90) * MIN, 3 * holdMs), variant, params: p }
    }
    case 'cyber_attack': {
      const r = rng.next()
      if (s.type === 'pump' || s.steppy) {
        p.period = rng.int(1, 2)
        p.mag = rng.uniform(2, 4)
        return {
          duration: rng.uniform(3, 20) * MIN,
          variant: r < 0.8 ? 'toggle' : 'replay',
          params: {
            ...p,
            lag: rng.uniform(1, 6) * HOUR,
            speed: rng.uniform(0.9, 1.1),
            frozenCovariates: rng.chance(0.5),
          },
        }
      }
      if (r < 0.55) {
        p.lag = rng.uniform(1, 6) * HOUR
        p.speed = rng.uniform(0.9, 1.1)
        p.offset = rng.uniform(-0.5, 0.5)
        p.frozenCovariates = rng.chance(0.5) // the whole PLC frame replayed, covariates included
        return { duration: rng.uniform(15, 75) * MIN, variant: 'replay', params: p }
      }
      if (r < 0.88) {
        p.mag = rng.uniform(2, 4)
        p.period = rng.int(1, 3)
        return { duration: rng.uniform(3, 20) * MIN, variant: 'toggle', params: p }
      }
      p.mag = rng.uniform(0.1, 1)
      return { duration: rng.uniform(5, 30) * MIN, variant: 'impossible', params: p }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The process

const dryWeather = (h: number): number =>
  1 + 0.32 * Math.cos((2 * Math.PI * (h - 11)) / 24) + 0.12 * Math.cos((4 * Math.PI * (h - 9.5)) / 24)

const doSat = (t: number): number => 14.62 - 0.3898 * t + 0.006969 * t * t - 0.00005897 * t * t * t

class Ar {
  x = 0
  constructor(
    private readonly rho: number,
    private readonly sd: number,
  ) {}
  step(rng: Rng): number {
    this.x = this.rho * this.x + Math.sqrt(1 - this.rho * this.rho) * this.sd * rng.normal()
    return this.x
  }
}
const arOf = (tauS: number, sd: number): Ar => new Ar(Math.exp(-PERIOD_MS / 1000 / tauS), sd)

/** The plant state machine; `step` advances it by one poll period and fills `sig`. */
class Plant {
  readonly sig = Object.fromEntries(SIG_NAMES.map((n) => [n, 0])) as Signals
  private readonly qm: number
  private readonly tSeason: number
  private readonly arQ = arOf(1200, 0.04)
  private readonly arConc = Array.from({ length: 10 }, () => arOf(1500, 0.07))
  private readonly arPh = arOf(1800, 0.05)
  private readonly arT = arOf(3600, 0.15)
  private readonly arMlss = arOf(7200, 0.05)
  private readonly arDs = arOf(7200, 0.05)
  // states
  private prim = new Float64Array(10)
  private tStorm = 0
  private nhL = [1.5, 1.5]
  private no3L = [8, 8]
  private codL = [40, 40]
  private doB = [2, 2, 2, 2]
  private uB = [0.5, 0.5, 0.5, 0.5]
  private readonly kla: number[]
  private mlss = [3.5, 3.5]
  private nPumps = 2
  private lvlWw = 2.1
  private blanketP = [0.9, 1.1]
  private blanketS = [1.1, 1.2]
  private rasTwo = false
  private nBlowers = 2
  private dp = [0.08, 0.1]
  private ripple = 0
  private lastBw: [number, number] = [-1, -1]
  private clDemandLag = 0.6
  private clRes = 0.5
  private dosePhase = 0
  private outMix = new Float64Array(12)
  private primed = false

  constructor(
    private readonly rng: Rng,
    private readonly schedule: Schedule,
    private readonly startHour: number,
    private readonly start: number,
  ) {
    this.qm = rng.uniform(1500, 2600)
    this.tSeason = rng.uniform(11, 22)
    this.kla = [rng.uniform(11, 14), rng.uniform(9, 12), rng.uniform(11, 14), rng.uniform(9, 12)]
  }

  step(t: number): void {
    const g = this.sig
    const rng = this.rng
    const dtH = PERIOD_MS / HOUR
    const h = (this.startHour + (t - this.start) / HOUR) % 24
    // --- influent hydraulics and storms
    let excess = 0,
      ff = 0
    for (const s of this.schedule.storms) {
      const u = t - s.start
      if (u < 0 || u > s.ramp + 8 * s.tau) continue
      const shape = u < s.ramp ? 0.5 - 0.5 * Math.cos((Math.PI * u) / s.ramp) : Math.exp(-(u - s.ramp) / s.tau)
      excess += s.peak * shape
      ff += s.firstFlush * Math.exp(-(((u - 25 * MIN) / (15 * MIN)) ** 2))
    }
    const qDw = this.qm * dryWeather(h) * (1 + this.arQ.step(rng))
    const qIn = qDw + this.qm * excess
    const dil = qDw / qIn
    const qCap = 2.2 * this.qm
    const qBio = Math.min(qIn, qCap)
    g.qIn = qIn
    g.qBio = qBio
    g.qBypass = qIn - qBio
    this.tStorm += ((1 - dil - this.tStorm) * dtH) / 0.5
    const tW = this.tSeason + 0.6 * Math.sin((2 * Math.PI * (h - 10)) / 24) - 2.2 * this.tStorm + this.arT.step(rng)
    g.tW = tW
    g.tBio = tW + 0.4
    g.tO = tW - 0.2
    // --- influent quality: load peaks an hour after flow, storms dilute after a first flush of particulates
    const conc = 0.72 + 0.28 * dryWeather(h - 1)
    const c = this.arConc.map((a) => 1 + a.step(rng))
    const part = dil * (1 + ff)
    const solu = dil * (1 + 0.25 * ff)
    g.tssIn = 250 * conc * (c[0] ?? 1) * part
    g.turbIn = 0.72 * g.tssIn * (c[1] ?? 1)
    g.codIn = 520 * conc * (c[2] ?? 1) * (0.55 * part + 0.45 * solu)
    g.bodIn = 0.46 * g.codIn * (c[3] ?? 1)
    g.nhIn = 38 * (0.85 + 0.15 * dryWeather(h - 2)) * (c[4] ?? 1) * solu
    g.tnIn = g.nhIn * 1.38 * (c[5] ?? 1)
    g.tpIn = 7 * conc * (c[6] ?? 1) * (0.6 * solu + 0.4 * part)
    g.metIn = 0.22 * (c[7] ?? 1) * part
    g.no3In = 1 + 1.5 * (1 - dil) * (c[8] ?? 1)
    g.condIn = 1150 * (0.85 + 0.15 * conc) * (0.25 + 0.75 * dil) * (c[9] ?? 1)
    g.phIn = 7.55 + 0.1 * (dryWeather(h) - 1) - 0.3 * (1 - dil) + this.arPh.step(rng)
    // --- lift station: pumps staged with hysteresis, lead pump rotating every 12 h
    const qPump = 1.15 * this.qm
    if (qIn > this.nPumps * qPump * 0.92 && this.nPumps < 3) {
      this.nPumps++
      this.lvlWw -= 0.12
    } else if (this.nPumps > 1 && qIn < (this.nPumps - 1) * qPump * 0.78) {
      this.nPumps--
      this.lvlWw += 0.1
    }
    const lead = Math.floor((this.startHour + (t - this.start) / HOUR) / 12) % 3
    for (let i = 0; i < 3; i++) g[sigAt('pump1', i)] = (i - lead + 3) % 3 < this.nPumps ? 1 : 0
    const lvlTarget = 1.9 + 0.35 * (qIn / (this.nPumps * qPump))
    this.lvlWw += (lvlTarget - this.lvlWw) * (1 - Math.exp(-PERIOD_MS / (4 * MIN)))
    g.lvlWw = this.lvlWw
    g.ePre = 6 + this.nPumps * 38 * (qIn / (this.nPumps * qPump)) ** 1.6
    // --- primary settling: CSTR mixing with a flow-dependent residence time, removal falling with it
    const tauP = (2 * this.qm) / qIn
    const influent = [
      g.tssIn,
      g.turbIn,
      g.codIn,
      g.bodIn,
      g.tpIn,
      g.phIn,
      g.nhIn,
      g.tnIn,
      g.metIn,
      g.condIn,
    ] as number[]
    if (!this.primed) {
      this.prim.set(influent)
      this.outMix.fill(0)
    }
    const kp = 1 - Math.exp(-dtH / tauP)
    for (let i = 0; i < 10; i++) this.prim[i] = (this.prim[i] ?? 0) + ((influent[i] ?? 0) - (this.prim[i] ?? 0)) * kp
    const eta = Math.min(0.7, (0.62 * (1 - Math.exp(-tauP / 1.1))) / (1 - Math.exp(-2 / 1.1)))
    const pr = this.prim
    g.tssPe = (pr[0] ?? 0) * (1 - eta)
    g.turbPe = (pr[1] ?? 0) * (1 - 0.9 * eta)
    g.codPe = (pr[2] ?? 0) * (1 - 0.55 * eta)
    g.bodPe = (pr[3] ?? 0) * (1 - 0.5 * eta)
    g.tpPe = (pr[4] ?? 0) * (1 - 0.18 * eta)
    g.phPe = (pr[5] ?? 7.5) - 0.05
    g.lvlPrim = 3.2 + 0.09 * (qIn / this.qm) ** (2 / 3)
    const minuteOfDay = (((this.startHour * 60 + (t - this.start) / MIN) % 1440) + 1440) % 1440
    for (let j = 0; j < 2; j++) {
      const on = (minuteOfDay + j * 25) % 50 < 6
      g[sigAt('pumpP1', j)] = on ? 1 : 0
      const bl = this.blanketP[j] ?? 1
      this.blanketP[j] = Math.max(
        0.3,
        bl + dtH * ((0.35 * (qIn / this.qm) * (g.tssIn / 250) * eta) / 0.6 - (on ? 6 : 0)),
      )
      g[sigAt('blanketP1', j)] = this.blanketP[j] ?? 1
    }
    g.ePrim = 9 + 11 * (g.pumpP1 + g.pumpP2)
    // --- biological: two lanes, Monod nitrification/denitrification, DO under PI control
    const lanes = [0, 1]
    let airTotal = 0
    const theta = 1.07 ** (tW + 0.4 - 20)
    for (const L of lanes) {
      const dil1 = qBio / 2 / (4 * this.qm) // per hour
      const doAvg = ((this.doB[2 * L] ?? 2) + (this.doB[2 * L + 1] ?? 2)) / 2
      const nh = this.nhL[L] ?? 1.5
      const no3 = this.no3L[L] ?? 8
      const cod = this.codL[L] ?? 40
      const mlssF = (this.mlss[L] ?? 3.5) / 3.5
      const rN = 11 * theta * mlssF * (nh / (0.8 + nh)) * (doAvg / (0.6 + doAvg))
      const rDN = 5.5 * 1.06 ** (tW - 20) * mlssF * (no3 / (1 + no3)) * (g.codPe / (g.codPe + 200))
      const bio = Math.max(0, cod - 28)
      const rC = 70 * theta * mlssF * (bio / (bio + 25))
      this.nhL[L] = Math.max(0.02, nh + dtH * (dil1 * (pr[6] ?? 30) - dil1 * nh - rN))
      this.no3L[L] = Math.max(0.05, no3 + dtH * (dil1 * (g.no3In - no3) + rN - rDN))
      this.codL[L] = Math.max(20, cod + dtH * (dil1 * (g.codPe - cod) - rC))
      const our = 0.55 * rC + 4.57 * rN + 9 * mlssF
      const sat = doSat(tW + 0.4)
      for (let b = 0; b < 2; b++) {
        const i = 2 * L + b
        const share = b === 0 ? 1.25 : 0.75
        const dO = this.doB[i] ?? 2
        const u = this.uB[i] ?? 0.5
        this.doB[i] = Math.max(0, dO + dtH * ((this.kla[i] ?? 12) * u * (sat - dO) - our * share))
        // PI (velocity form) with saturation: the blowers cannot give more than full air
        const err = 2.0 - (this.doB[i] ?? 2)
        const prevErr = 2.0 - dO
        this.uB[i] = Math.min(1, Math.max(0.12, u + 0.06 * (err - prevErr) + 0.9 * err * dtH))
        g[sigAt('do1', i)] = this.doB[i] ?? 0
        airTotal += this.uB[i] ?? 0
      }
      g[sigAt('nhA', L)] = this.nhL[L] ?? 0
      g[sigAt('no3A', L)] = this.no3L[L] ?? 0
      g[sigAt('no2A', L)] =
        0.04 + (0.6 * (0.6 / (0.6 + doAvg)) * ((this.nhL[L] ?? 0) / ((this.nhL[L] ?? 0) + 1.5))) / theta
      g[sigAt('phA', L)] = (pr[5] ?? 7.5) - 0.28 - 0.035 * rN + 0.015 * rDN
      const mlssTarget = 3.6 * (1 + this.arMlss.step(rng)) * (1 - 0.12 * (qBio / qCap) ** 2)
      this.mlss[L] = (this.mlss[L] ?? 3.5) + ((mlssTarget - (this.mlss[L] ?? 3.5)) * dtH) / 1.5
      g[sigAt('mlssA', L)] = this.mlss[L] ?? 3.5
      g[sigAt('qIrA', L)] = (qBio > 1.6 * this.qm ? 0.8 : 1.2) * this.qm
    }
    if (airTotal > this.nBlowers * 1.45 && this.nBlowers < 3) this.nBlowers++
    else if (this.nBlowers > 1 && airTotal < (this.nBlowers - 1) * 1.2) this.nBlowers--
    for (let k = 0; k < 3; k++)
      g[sigAt('eBl1', k)] = k < this.nBlowers ? 28 + 62 * (airTotal / this.nBlowers / 1.45) ** 2 : 0
    g.pHdr = 0.54 + 0.09 * (airTotal / 4) ** 2
    g.pA = g.pHdr - (0.02 * ((this.uB[0] ?? 0) + (this.uB[1] ?? 0))) / 2
    g.pB = g.pHdr - (0.02 * ((this.uB[2] ?? 0) + (this.uB[3] ?? 0))) / 2
    g.tpBio = 0.75 * (g.tpPe / 6) ** 0.7 * (1 + 0.4 * (qBio / qCap) ** 3)
    // --- secondary clarifiers: blanket rises with the solids loading rate (squared), effluent solids jump
    //     when the blanket nears the weir
    const rasNeed = qBio > 1.35 * this.qm
    if (rasNeed !== this.rasTwo && (rasNeed || qBio < 1.15 * this.qm)) this.rasTwo = rasNeed
    g.rasPump1 = 1
    g.rasPump2 = this.rasTwo ? 1 : 0
    const qRas = ((this.rasTwo ? 0.75 : 0.55) * qBio) / 2
    g.qRas1 = qRas
    g.qRas2 = qRas * 1.03
    let tssSe = 0
    for (let j = 0; j < 2; j++) {
      const slr = ((qBio / 2 + qRas) * (this.mlss[j] ?? 3.5)) / (this.qm * 0.5 * 1.55 * 3.5)
      const target = 0.8 + 0.55 * slr * slr
      this.blanketS[j] = (this.blanketS[j] ?? 1) + ((target - (this.blanketS[j] ?? 1)) * dtH) / 0.8
      const bl = this.blanketS[j] ?? 1
      g[sigAt('blanketS1', j)] = bl
      const tss = 5 + 2.5 * (qBio / this.qm) + 55 / (1 + Math.exp(-(bl - 2.9) / 0.18))
      g[sigAt('turbS1', j)] = 0.42 * tss ** 0.92
      g[sigAt('lvlS1', j)] = 4.0 + 0.05 * (qBio / 2 / (this.qm / 2)) ** (2 / 3)
      tssSe += tss / 2
    }
    g.tssSe = tssSe
    // --- tertiary filters: head loss builds with the solids they hold; backwash resets it
    const bwActive = this.schedule.backwashes.find((b) => t >= b.start && t < b.end)
    let bwFilter = -1
    if (bwActive !== undefined) bwFilter = bwActive.filter
    for (const b of this.schedule.backwashes) {
      if (t >= b.end && this.lastBw[b.filter] !== b.start && t < b.end + PERIOD_MS * 2) {
        this.lastBw[b.filter] = b.start
        this.ripple = 1
      }
    }
    const shareF = [0.5, 0.5]
    if (bwFilter >= 0) {
      shareF[bwFilter] = 0
      shareF[1 - bwFilter] = 1
    } else {
      const w0 = 1 / (this.dp[0] ?? 0.1) ** 0.3,
        w1 = 1 / (this.dp[1] ?? 0.1) ** 0.3
      shareF[0] = w0 / (w0 + w1)
      shareF[1] = w1 / (w0 + w1)
    }
    for (let f = 0; f < 2; f++) {
      const qf = qBio * (shareF[f] ?? 0.5)
      if (f === bwFilter) this.dp[f] = Math.max(0.03, (this.dp[f] ?? 0.1) - dtH * 2)
      else this.dp[f] = (this.dp[f] ?? 0.1) + dtH * 0.0021 * (qf / (this.qm / 2)) * (tssSe / 10)
      g[sigAt('qF1', f)] = qf
      g[sigAt('dpF1', f)] = (this.dp[f] ?? 0.1) * (0.6 + (0.4 * qf) / (this.qm / 2))
    }
    this.ripple *= Math.exp(-PERIOD_MS / (6 * MIN))
    g.turbT = 0.32 * g.turbS1 ** 0.75 + 1.6 * this.ripple
    g.tssT = 1.1 * g.turbT + 0.8
    g.tpT = 0.32 * g.tpBio ** 0.8
    g.lvlT = 1.2 + 0.08 * (qBio / this.qm) ** (2 / 3) + (bwFilter >= 0 ? 0.22 : 0)
    g.bwPump = bwFilter >= 0 ? 1 : 0
    g.eTert = 7 + (bwFilter >= 0 ? 48 : 0)
    // --- outlet: treated water mixed with the storm bypass, through a short contact-tank lag
    const w = (qIn - qBio) / qIn
    const nhT = ((this.nhL[0] ?? 0) + (this.nhL[1] ?? 0)) / 2
    const no3T = ((this.no3L[0] ?? 0) + (this.no3L[1] ?? 0)) / 2
    const codT = ((this.codL[0] ?? 0) + (this.codL[1] ?? 0)) / 2 + 4
    const treated = [
      (g.phA + g.phB) / 2 + 0.18,
      codT,
      0.14 * (codT - 20) + 2,
      g.tssT,
      nhT + 0.1,
      no3T,
      nhT + no3T + (g.no2A + g.no2B) / 2 + 1.6,
      g.tpT,
      0.22 * (pr[8] ?? 0.2) + 0.004,
      (pr[9] ?? 1100) * 0.97,
      g.turbT,
      tW - 0.2,
    ]
    const bypass = [
      g.phPe,
      g.codPe,
      g.bodPe,
      g.tssPe,
      pr[6] ?? 30,
      g.no3In,
      pr[7] ?? 45,
      g.tpPe,
      pr[8] ?? 0.2,
      pr[9] ?? 1100,
      g.turbPe,
      tW,
    ]
    const ko = 1 - Math.exp(-PERIOD_MS / (20 * MIN))
    for (let i = 0; i < 12; i++) {
      const target = (1 - w) * (treated[i] ?? 0) + w * (bypass[i] ?? 0)
      this.outMix[i] = this.primed ? (this.outMix[i] ?? 0) + (target - (this.outMix[i] ?? 0)) * ko : target
    }
    const o = this.outMix
    g.phO = o[0] ?? 7
    g.codO = o[1] ?? 0
    g.bodO = o[2] ?? 0
    g.tssO = o[3] ?? 0
    g.nhO = o[4] ?? 0
    g.no3O = o[5] ?? 0
    g.tnO = o[6] ?? 0
    g.tpO = o[7] ?? 0
    g.metO = o[8] ?? 0
    g.condO = o[9] ?? 0
    g.turbO = o[10] ?? 0
    // --- disinfection: chlorine demand follows ammonia and organics; the controller catches up in ~20 min;
    //     the dosing pump pulses with a duty cycle set by the dose
    const demand = 0.25 + 0.35 * g.nhO + 0.008 * g.codO + 0.1 * w
    this.clDemandLag += (demand - this.clDemandLag) * (1 - Math.exp(-PERIOD_MS / (20 * MIN)))
    const clTarget = 0.55 - 0.9 * (demand - this.clDemandLag)
    this.clRes += (clTarget - this.clRes) * (1 - Math.exp(-PERIOD_MS / (4 * MIN)))
    g.cl = Math.max(0, this.clRes)
    const duty = Math.min(0.9, Math.max(0.15, ((0.3 * demand) / 0.6) * (qIn / this.qm)))
    this.dosePhase = (this.dosePhase + PERIOD_MS / 150_000) % 1
    g.dosePump = this.dosePhase < duty ? 1 : 0
    g.phD = g.phO - 0.05
    g.turbD = g.turbO
    g.eDis = 12 + 20 * (qIn / (2 * this.qm)) ** 0.8
    // --- sludge line: batch feeds, digester at mesophilic temperature with on/off heating
    const m = minuteOfDay
    const feed1 = m % 120 < 20,
      feed2 = (m + 50) % 180 < 15
    g.slPump1 = feed1 ? 1 : 0
    g.slPump2 = feed2 ? 1 : 0
    g.qSl1 = feed1 ? 18 : 0
    g.qSl2 = feed2 ? 14 : 0
    g.qSludge = g.qSl1 + g.qSl2
    const ds = this.arDs.step(rng)
    g.dsThick = 5.1 * (1 + ds) - (feed1 ? 0.25 : 0)
    g.dsDig = 2.8 * (1 + 0.5 * ds)
    g.lvlDig = 8.5 + 0.18 * Math.sin((2 * Math.PI * m) / 120) + (feed2 ? 0.05 : 0)
    g.tDig = 36.8 + 0.25 * Math.sin((2 * Math.PI * m) / 95)
    g.pGas = 22 + 3 * Math.sin((2 * Math.PI * (m - 200)) / 360) + 2 * Math.exp(-((m % 120) / 45))
    g.eSl = 11 + 8 * g.slPump1 + 6 * g.slPump2 + 9
    this.primed = true
  }
}

// ---------------------------------------------------------------------------------------------------------
// The scenario

const STAGE_FLOW: Record<Stage, SigName> = {
  pretreatment: 'qIn',
  primary: 'qIn',
  biological: 'qBio',
  secondary: 'qBio',
  tertiary: 'qBio',
  disinfection: 'qIn',
  sludge: 'qSludge',
  outlet: 'qIn',
}
const STAGE_TEMP: Record<Stage, SigName> = {
  pretreatment: 'tW',
  primary: 'tW',
  biological: 'tBio',
  secondary: 'tW',
  tertiary: 'tW',
  disinfection: 'tO',
  sludge: 'tDig',
  outlet: 'tO',
}

/** Build the plant scenario of one seed. Cheap: readings are produced only when `readings()` is iterated. */
export function plantScenario(opts: PlantScenarioOptions): PlantScenario {
  const seed = opts.seed
  const hours = opts.hours ?? DEFAULT_HOURS
  const warmupHours = opts.warmupHours ?? DEFAULT_WARMUP_HOURS
  if (!(hours > warmupHours + 1))
    throw new RangeError(`plant scenario: hours (${hours}) must exceed warmupHours (${warmupHours}) by more than 1`)
  const sched = new Rng(seed * 2654435761 + 17)
  // a seeded start hour, so the warm-up is not always the night
  const startHour = sched.int(0, 23)
  const start = Date.UTC(2026, 2, 2 + (Math.abs(seed) % 20)) + startHour * HOUR
  const end = start + hours * HOUR
  const evalStart = start + warmupHours * HOUR
  const sensors = buildSensors()
  const schedule = makeSchedule(sched, sensors, start, end, evalStart, startHour)
  const pub = (e: InjectedEpisode): Episode => ({
    entity: e.entity,
    type: e.type,
    start: e.start,
    end: e.end,
    variant: e.variant,
  })
  return {
    seed,
    hours,
    warmupHours,
    start,
    end,
    evalStart,
    periodMs: PERIOD_MS,
    sensors: sensors.map((s) => ({
      id: s.id,
      type: s.type,
      stage: s.stage,
      hasInlet: s.hasInlet,
      ...(s.pair === undefined ? {} : { pair: s.pair }),
    })),
    episodes: schedule.episodes.map(pub),
    maintenance: schedule.maintenance,
    storms: schedule.storms.map((s) => ({ start: Math.round(s.start), peakFactor: s.peak })),
    anomalousFraction: schedule.anomalousFraction,
    readings: () => stream(seed, sensors, schedule, start, end, startHour),
  }
}

const quant = (x: number, decimals: number): number => {
  const f = 10 ** decimals
  return Math.round(x * f) / f
}

interface SensorState {
  ar: Ar
  pairAr: Ar | undefined
  noise: number
  gain: number
  bias: number
  lagK: number
  lagY: number
  holdPhase: number
  held: number
  phase: number
  losing: number
  // anomaly/maintenance progress
  epIdx: number
  calIdx: number
  frozen: number | undefined
  frozenFlow: number | undefined
  frozenTemp: number | undefined
  frozenInlet: number | undefined
  calY: number
  lastEmitted: number
  lastFlow: number | undefined
  lastTemp: number | undefined
}

function* stream(
  seed: number,
  sensors: SensorSpec[],
  schedule: Schedule,
  start: number,
  end: number,
  startHour: number,
): Generator<PlantReading> {
  const rng = new Rng(seed * 40503 + 99991)
  const plant = new Plant(new Rng(seed * 69069 + 1234567), schedule, startHour, start)
  const n = sensors.length
  const idx = new Map(sensors.map((s, i) => [s.id, i]))
  // shared local variability of a redundant pair: both probes see the same water
  const pairAr = new Map<string, Ar>()
  const states: SensorState[] = sensors.map((s) => {
    const spec = TYPE_SPECS[s.type]
    const arSd = spec.relative ? spec.ar * s.nominal : spec.ar
    const key = s.pair === undefined ? undefined : [s.id, s.pair].sort().join('|')
    let shared: Ar | undefined
    if (key !== undefined) {
      shared = pairAr.get(key) ?? arOf(spec.arTau, arSd * Math.sqrt(0.7))
      pairAr.set(key, shared)
    }
    return {
      ar: arOf(spec.arTau, shared === undefined ? arSd : arSd * Math.sqrt(0.3)),
      pairAr: shared,
      noise: spec.relative ? spec.noise * s.nominal : spec.noise,
      gain: 1 + rng.normal() * 0.015,
      bias: rng.normal() * 0.3 * s.sigma,
      lagK: spec.lag > 0 ? 1 - Math.exp(-PERIOD_MS / 1000 / spec.lag) : 1,
      lagY: Number.NaN,
      holdPhase: s.hold > 0 ? rng.int(0, s.hold - 1) : 0,
      held: Number.NaN,
      phase: Math.floor(rng.uniform(0, 4_500)),
      losing: 0,
      epIdx: 0,
      calIdx: 0,
      frozen: undefined,
      frozenFlow: undefined,
      frozenTemp: undefined,
      frozenInlet: undefined,
      calY: Number.NaN,
      lastEmitted: Number.NaN,
      lastFlow: undefined,
      lastTemp: undefined,
    }
  })
  const pairSeen = new WeakMap<Ar, number>()
  const order = sensors.map((_, i) => i).sort((a, b) => (states[a]?.phase ?? 0) - (states[b]?.phase ?? 0))
  const epsBy: InjectedEpisode[][] = sensors.map(() => [])
  for (const e of schedule.episodes) epsBy[idx.get(e.entity) ?? 0]?.push(e)
  const calsBy: Calibration[][] = sensors.map(() => [])
  for (const c of schedule.calibrations) calsBy[idx.get(c.entity) ?? 0]?.push(c)
  // 24 h ring of what each sensor sent, for replays of earlier data
  const ringLen = Math.min(Math.ceil((end - start) / PERIOD_MS), (24 * HOUR) / PERIOD_MS)
  const ringV = new Float32Array(ringLen * n).fill(Number.NaN)
  const ringF = new Float32Array(ringLen * n).fill(Number.NaN)
  const ringT = new Float32Array(ringLen * n).fill(Number.NaN)
  // PLC-wide communication outages per stage (part of the 2 % lost readings), and covariate tag outages
  const stageOut = new Map<Stage, number>()
  const covOut = new Map<Stage, number>()
  const ticks = Math.floor((end - start) / PERIOD_MS)
  for (let k = 0; k < ticks; k++) {
    const t0 = start + k * PERIOD_MS
    plant.step(t0)
    const g = plant.sig
    for (const st of STAGES) {
      if ((stageOut.get(st) ?? 0) > 0) stageOut.set(st, (stageOut.get(st) ?? 0) - 1)
      else if (rng.chance(0.6 / (24 * 720))) stageOut.set(st, rng.int(6, 36))
      if ((covOut.get(st) ?? 0) > 0) covOut.set(st, (covOut.get(st) ?? 0) - 1)
      else if (rng.chance(3 / (24 * 720))) covOut.set(st, rng.int(60, 360))
    }
    const ring = k % ringLen
    for (const i of order) {
      const s = sensors[i] as SensorSpec
      const st = states[i] as SensorState
      const ts = t0 + st.phase
      const spec = TYPE_SPECS[s.type]
      // healthy process value as the instrument sees it
      let x: number
      // relative instruments scatter in proportion to the level: sigma (and so anomaly sizes) follow it
      let scale = 1
      if (s.type === 'pump') x = g[s.sig]
      else {
        const local = st.ar.step(rng) + (st.pairAr === undefined ? 0 : pairValue(st.pairAr, k, rng, pairSeen))
        const level = g[s.sig]
        scale = spec.relative ? Math.max(level, 0.05 * s.nominal) / s.nominal : 1
        const truth = level + local * scale
        st.lagY = Number.isNaN(st.lagY) ? truth : st.lagY + (truth - st.lagY) * st.lagK
        x = st.gain * st.lagY + st.bias + st.noise * scale * rng.normal()
      }
      // sample-and-hold analysers publish a new value once per cycle
      if (s.hold > 0) {
        if (Number.isNaN(st.held) || (k + st.holdPhase) % s.hold === 0) st.held = x
        x = st.held
      }
      let value: number | undefined = x
      let flow: number | undefined = g[STAGE_FLOW[s.stage]] * (1 + 0.02 * rng.normal())
      let temp: number | undefined = g[STAGE_TEMP[s.stage]] + 0.12 * rng.normal()
      let inlet: number | undefined = s.inletSig !== undefined ? g[s.inletSig] * (1 + 0.02 * rng.normal()) : undefined
      // maintenance: calibration sequence (probe out, first standard, second standard, back)
      const cals = calsBy[i] as Calibration[]
      while (st.calIdx < cals.length && (cals[st.calIdx] as Calibration).end <= ts) {
        st.calIdx++
        st.calY = Number.NaN
        st.bias = rng.normal() * 0.15 * s.sigma
      }
      const cal = cals[st.calIdx]
      if (cal !== undefined && ts >= cal.start) {
        const u = ts - cal.start
        const dur = cal.end - cal.start
        if (u < cal.outMs) value = undefined
        else {
          const target = u < cal.outMs + (dur - cal.outMs) * 0.45 ? cal.std1 : u < dur - 2 * MIN ? cal.std2 : x
          st.calY = Number.isNaN(st.calY) ? target : st.calY + (target - st.calY) * (1 - Math.exp(-PERIOD_MS / 15_000))
          value = st.calY + 0.3 * st.noise * rng.normal()
        }
      }
      // anomalies
      const eps = epsBy[i] as InjectedEpisode[]
      while (st.epIdx < eps.length && (eps[st.epIdx] as InjectedEpisode).end <= ts) {
        st.epIdx++
        st.frozen = undefined
        st.frozenFlow = undefined
        st.frozenTemp = undefined
        st.frozenInlet = undefined
      }
      const ep = eps[st.epIdx]
      if (ep !== undefined && ts >= ep.start && value !== undefined) {
        const u = ts - ep.start
        const dur = ep.end - ep.start
        const sig = Math.max(s.sigma * scale, 10 ** -s.decimals)
        switch (ep.variant) {
          case 'stuck':
            if (st.frozen === undefined) {
              st.frozen = Number.isNaN(st.lastEmitted) ? quant(x, s.decimals) : st.lastEmitted
              st.frozenFlow = st.lastFlow
              st.frozenTemp = st.lastTemp
            }
            value = st.frozen
            if (ep.frozenCovariates) {
              flow = st.frozenFlow
              temp = st.frozenTemp
            }
            break
          case 'dropout':
            value = undefined
            break
          case 'loop_break':
            value = s.lo - ep.mag * (s.hi - s.lo)
            break
          case 'drift':
            value = x + ep.dir * ep.mag * sig * (u / dur)
            break
          case 'spike':
          case 'spike_partner': {
            const shape =
              u < ep.front
                ? 0.5 - 0.5 * Math.cos((Math.PI * u) / ep.front)
                : u < ep.plateauEnd
                  ? 1 + 0.08 * rng.normal()
                  : Math.exp(-(u - ep.plateauEnd) / ep.decayTau)
            value = x + ep.dir * ep.mag * sig * shape
            // the same pollution passed the inlet analyser upstream
            if (inlet !== undefined) inlet *= 1 + 0.06 * ep.mag * shape
            break
          }
          case 'pair_disagree':
          case 'treatment_loss': {
            const ramp = Math.min(1, u / ep.front, (dur - u) / ep.front)
            value = x + ep.dir * ep.mag * sig * Math.max(0, ramp)
            break
          }
          case 'replay': {
            const back = Math.round((ep.lag - u * (ep.speed - 1)) / PERIOD_MS)
            const j = (((k - back) % ringLen) + ringLen) % ringLen
            const rv = back < ringLen && k - back >= 0 ? ringV[j * n + i] : Number.NaN
            if (rv === undefined || Number.isNaN(rv)) value = undefined
            else value = s.type === 'pump' ? rv : rv + (ep.offset + 0.3 * rng.normal()) * sig
            if (ep.frozenCovariates && k - back >= 0 && back < ringLen) {
              const rf = ringF[j * n + i],
                rt = ringT[j * n + i]
              flow = rf === undefined || Number.isNaN(rf) ? undefined : rf
              temp = rt === undefined || Number.isNaN(rt) ? undefined : rt
            }
            break
          }
          case 'toggle': {
            const up = Math.floor(u / (ep.period * PERIOD_MS)) % 2 === 0
            if (s.type === 'pump') value = up ? 1 : 0
            else {
              if (st.frozen === undefined) st.frozen = x
              value = st.frozen + (up ? 1 : -1) * ep.mag * Math.max(sig, 0.01 * (s.hi - s.lo))
            }
            break
          }
          case 'impossible':
            value = s.type === 'ph' ? 14.3 + ep.mag : s.hi + ep.mag * (s.hi - s.lo)
            break
        }
      }
      // 4-20 mA transmitters clamp at the range ends; only a broken loop or a forged value leaves the range
      if (value !== undefined) {
        const broken =
          ep !== undefined && ts >= ep.start && (ep.variant === 'loop_break' || ep.variant === 'impossible')
        if (!broken) value = Math.min(s.hi, Math.max(s.lo, value))
        value = quant(value, s.decimals)
      }
      if (flow !== undefined) flow = quant(flow, s.stage === 'sludge' ? 1 : 0)
      if (temp !== undefined) temp = quant(temp, 1)
      if (inlet !== undefined) inlet = quant(Math.max(0, inlet), s.decimals)
      // covariate tags sometimes bad (stage-wide outage) or missing from a single frame
      if ((covOut.get(s.stage) ?? 0) > 0 && !(ep?.frozenCovariates === true && ts >= ep.start)) {
        flow = undefined
        temp = undefined
      }
      if (rng.chance(0.03)) flow = undefined
      if (rng.chance(0.03)) temp = undefined
      // healthy missed polls
      if (value !== undefined && rng.chance(0.003)) value = undefined
      // record what was sent (replays draw on it)
      const ri = ring * n + i
      ringV[ri] = value ?? Number.NaN
      ringF[ri] = flow ?? Number.NaN
      ringT[ri] = temp ?? Number.NaN
      st.lastEmitted = value ?? st.lastEmitted
      st.lastFlow = flow ?? st.lastFlow
      st.lastTemp = temp ?? st.lastTemp
      // lost readings: short per-sensor bursts and stage-wide PLC outages, about 2 % in all
      if (st.losing > 0) {
        st.losing--
        continue
      }
      if (rng.chance(0.009)) {
        st.losing = rng.int(0, 2)
        continue
      }
      if ((stageOut.get(s.stage) ?? 0) > 0) continue
      const fields: Reading['fields'] = { type: s.type, stage: s.stage }
      if (value !== undefined) fields['value'] = value
      if (flow !== undefined) fields['flow'] = flow
      if (temp !== undefined) fields['temp'] = temp
      if (inlet !== undefined) fields['inlet'] = inlet
      yield { entity: s.id, reading: { ts, fields } }
    }
  }
}

/** The shared component of a pair advances once per tick, whichever probe is polled first. */
function pairValue(a: Ar, k: number, rng: Rng, seen: WeakMap<Ar, number>): number {
  if (seen.get(a) !== k) {
    seen.set(a, k)
    a.step(rng)
  }
  return a.x
}
