/**
 * Seeded simulator of the wastewater treatment plant (DOMAIN.md section 3): 127 sensors in 8 stages, one reading
 * every 5 s each, for the `process` profile.
 *
 * Physics (linear around the operating point, on purpose simple and written down):
 * - Plant inflow follows a daily cycle (+-30 %, peak late morning); rain events (about one a day, start gaps
 *   exponential) raise it by 30-100 % over ~30 min and decay over hours. Each stage sees the inflow scaled to its
 *   size, the sludge line a fraction of it. Water temperature: 15 °C +- 1.5 daily (peak mid afternoon) plus a
 *   multi-day weather swing, cooled a little by rain.
 * - A sensor's value = base(type, stage) * (1 + kFlow * (flow / mean flow - 1)) + kTemp * (temp - 15) + an AR(1)
 *   process wander + white measurement noise; concentrations fall through the stages and are diluted by rain,
 *   DO falls with temperature, energy and pumps follow the flow. Each reading carries value, the stage flow, the
 *   water temperature, the sensor type and stage; outlet analysers also carry the influent value (`inlet`).
 * - Anomalies (about 2 % of each sensor's time after a warm-up, one type at a time, at least 2 h apart):
 *   sensor_failure (stuck at its last value, or dropout: no value), sensor_drift (offset ramping to 5-10 sigma over
 *   1-2.5 h, removed at recalibration), pollution_spike (concentration types only: a front of +10-25 sigma decaying
 *   over 5-30 min), process_malfunction (the value leaves what flow and temperature imply by 8-15 sigma, built up
 *   over 3-10 min, held 15-60 min), cyber_attack (values outside the physical range, physically impossible
 *   jumps, or a replay of the sensor's own readings from 30-50 min before, 5-20 min).
 *   Every episode is recorded as ground truth {entity, type, start, end, mode}.
 */
import type { Reading } from '../actors/mod.js'
import { ConfigError } from '../actors/mod.js'
import { Rng, clipEpisodes, entitySeed, round } from './truth.js'
import type { DomainItem, DomainSimulator, Episode } from './truth.js'

export const PLANT_STAGES = [
  ['pretreatment', 'pre', 15],
  ['primary', 'pri', 18],
  ['biological', 'bio', 35],
  ['secondary', 'sec', 16],
  ['tertiary', 'ter', 12],
  ['disinfection', 'dis', 8],
  ['sludge', 'slu', 10],
  ['outlet', 'out', 13],
] as const

/** Sensor types per stage, assigned in turn to the stage's sensors. */
const STAGE_TYPES: Record<string, readonly string[]> = {
  pretreatment: ['flow', 'ph', 'turbidity', 'cod', 'conductivity', 'temperature', 'pump', 'level', 'tss', 'energy'],
  primary: ['tss', 'turbidity', 'cod', 'bod5', 'flow', 'ph', 'pump', 'level', 'sludge'],
  biological: [
    'do',
    'ammonia',
    'nitrate',
    'nitrite',
    'ph',
    'temperature',
    'tss',
    'energy',
    'do',
    'cod',
    'nitrogen',
    'phosphorus',
    'pressure',
  ],
  secondary: ['turbidity', 'tss', 'sludge', 'flow', 'pump', 'level', 'phosphorus', 'cod'],
  tertiary: ['turbidity', 'phosphorus', 'nitrogen', 'metals', 'pressure', 'flow'],
  disinfection: ['chlorine', 'flow', 'turbidity', 'ph'],
  sludge: ['sludge', 'pump', 'energy', 'level', 'temperature', 'metals'],
  outlet: [
    'cod',
    'bod5',
    'tss',
    'nitrogen',
    'phosphorus',
    'ammonia',
    'ph',
    'flow',
    'turbidity',
    'metals',
    'chlorine',
    'temperature',
    'conductivity',
  ],
}

interface TypePhysics {
  /** Value at stage factor 1, mean flow, 15 °C. */
  base: number
  /** True for concentrations: scaled by the stage factor, can carry a pollution spike. */
  pollutant: boolean
  /** Relative change per relative flow change; absolute change per °C. */
  kFlow: number
  kTemp: number
  /** White noise and AR(1) wander, relative to base (pollutants) or absolute. */
  noise: number
  relative: boolean
  /** Physical range (cyber injection goes outside it). */
  lo: number
  hi: number
}

export const PLANT_PHYSICS: Record<string, TypePhysics> = {
  ph: { base: 7.3, pollutant: false, kFlow: 0, kTemp: -0.01, noise: 0.03, relative: false, lo: 0, hi: 14 },
  do: { base: 2.2, pollutant: false, kFlow: -0.2, kTemp: -0.08, noise: 0.05, relative: false, lo: 0, hi: 20 },
  turbidity: { base: 150, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 4000 },
  flow: { base: 1, pollutant: false, kFlow: 1, kTemp: 0, noise: 0.01, relative: true, lo: 0, hi: 20000 },
  temperature: { base: 15, pollutant: false, kFlow: 0, kTemp: 1, noise: 0.04, relative: false, lo: -5, hi: 60 },
  pressure: { base: 3, pollutant: false, kFlow: 0.3, kTemp: 0, noise: 0.02, relative: false, lo: 0, hi: 16 },
  conductivity: { base: 1100, pollutant: true, kFlow: -0.25, kTemp: 8, noise: 0.01, relative: true, lo: 0, hi: 20000 },
  nitrogen: { base: 55, pollutant: true, kFlow: -0.3, kTemp: -0.2, noise: 0.02, relative: true, lo: 0, hi: 300 },
  phosphorus: { base: 9, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 60 },
  tss: { base: 300, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 20000 },
  cod: { base: 450, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 5000 },
  bod5: { base: 220, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 2000 },
  metals: { base: 0.3, pollutant: true, kFlow: -0.3, kTemp: 0, noise: 0.02, relative: true, lo: 0, hi: 20 },
  chlorine: { base: 1.2, pollutant: false, kFlow: -0.2, kTemp: -0.02, noise: 0.01, relative: false, lo: 0, hi: 10 },
  ammonia: { base: 38, pollutant: true, kFlow: -0.3, kTemp: -0.3, noise: 0.02, relative: true, lo: 0, hi: 200 },
  nitrate: { base: 12, pollutant: true, kFlow: -0.2, kTemp: 0.1, noise: 0.02, relative: true, lo: 0, hi: 200 },
  nitrite: { base: 0.6, pollutant: true, kFlow: -0.2, kTemp: 0.01, noise: 0.02, relative: true, lo: 0, hi: 20 },
  energy: { base: 420, pollutant: false, kFlow: 0.6, kTemp: -2, noise: 0.01, relative: true, lo: 0, hi: 5000 },
  pump: { base: 95, pollutant: false, kFlow: 0.7, kTemp: 0, noise: 0.01, relative: true, lo: 0, hi: 400 },
  level: { base: 3.5, pollutant: false, kFlow: 0.4, kTemp: 0, noise: 0.01, relative: true, lo: 0, hi: 12 },
  sludge: { base: 6, pollutant: false, kFlow: -0.1, kTemp: 0, noise: 0.01, relative: true, lo: 0, hi: 80 },
}

/** Concentration factor of each stage (1 at the inlet); sludge concentrates, the outlet is clean. */
const STAGE_FACTOR: Record<string, number> = {
  pretreatment: 1,
  primary: 0.7,
  biological: 0.3,
  secondary: 0.12,
  tertiary: 0.07,
  disinfection: 0.05,
  sludge: 2.5,
  outlet: 0.045,
}
/** Mean flow of each stage, m³/h. */
const STAGE_FLOW: Record<string, number> = {
  pretreatment: 2400,
  primary: 2380,
  biological: 2350,
  secondary: 2300,
  tertiary: 2280,
  disinfection: 2280,
  sludge: 120,
  outlet: 2270,
}

export const PLANT_ANOMALY_TYPES = [
  'sensor_failure',
  'sensor_drift',
  'pollution_spike',
  'process_malfunction',
  'cyber_attack',
] as const

export interface PlantSimOptions {
  seed: number
  /** Sensors (default 127: the plant); more repeat the layout with new ids, fewer take the first ones. */
  sensors?: number
  periodMs?: number
  startTs?: number
  anomalies?: boolean
  /** No episode starts before startTs + warmupMs (default 6 h). */
  warmupMs?: number
  /** Fraction of a sensor's time in an episode (default 0.02). */
  anomalyShare?: number
}

export const PLANT_EPOCH = Date.UTC(2025, 0, 6, 0, 0, 0)
const HOUR = 3_600_000
const MIN = 60_000

interface Sensor {
  id: string
  stage: string
  type: string
  phys: TypePhysics
  base: number
  /** Absolute white-noise sigma and AR wander state. */
  sigma: number
  ar: number
  rng: Rng
  /** Ring of recent (value, flow, temp) for replays. */
  hist: Float64Array
  histN: number
  /** Current or next episode. */
  ep: Episode | undefined
  epParam: number[]
  nextStart: number
  lastValue: number
}

const HIST = 720

/** The plant's shared weather: rain events drawn lazily in time order. */
class Weather {
  private readonly rng: Rng
  private readonly events: Array<{ start: number; peak: number; rise: number; tau: number }> = []
  private nextRain: number
  constructor(seed: number, start: number) {
    this.rng = new Rng(entitySeed(seed, 7, 0))
    this.nextRain = start + this.rng.exp(20 * HOUR)
  }
  /** Rain factor (0 = dry) at `ts` (called with non-decreasing ts). */
  rain(ts: number): number {
    while (this.nextRain <= ts + HOUR) {
      this.events.push({
        start: this.nextRain,
        peak: this.rng.range(0.3, 1),
        rise: this.rng.range(20, 40) * MIN,
        tau: this.rng.range(2, 4) * HOUR,
      })
      this.nextRain += this.rng.exp(24 * HOUR) + 4 * HOUR
    }
    while (this.events.length > 0 && ts - (this.events[0] as { start: number }).start > 30 * HOUR) this.events.shift()
    let r = 0
    for (const e of this.events) {
      if (ts < e.start) continue
      const t = ts - e.start
      r += t < e.rise ? e.peak * (t / e.rise) : e.peak * Math.exp(-(t - e.rise) / e.tau)
    }
    return r
  }
}

function checkOptions(o: PlantSimOptions): void {
  if (!Number.isSafeInteger(o.seed)) throw new ConfigError('sim.seed', `must be an integer, got ${o.seed}`)
  const n = o.sensors ?? 127
  if (!Number.isInteger(n) || n < 1 || n > 100_000)
    throw new ConfigError('sim.sensors', `must be an integer 1..100000, got ${n}`)
  const p = o.periodMs ?? 5000
  if (!Number.isInteger(p) || p < 100) throw new ConfigError('sim.periodMs', `must be an integer >= 100, got ${p}`)
  const share = o.anomalyShare ?? 0.02
  if (!(share > 0 && share < 0.5)) throw new ConfigError('sim.anomalyShare', `must be in (0, 0.5), got ${share}`)
}

/** The plant layout: id, stage and type of each sensor (127 by default). */
export function plantLayout(n = 127): Array<{ id: string; stage: string; type: string }> {
  const out: Array<{ id: string; stage: string; type: string }> = []
  for (let round_ = 0; out.length < n; round_++) {
    for (const [stage, prefix, count] of PLANT_STAGES) {
      const types = STAGE_TYPES[stage] as readonly string[]
      for (let i = 0; i < count && out.length < n; i++) {
        const type = types[i % types.length] as string
        const num = round_ * count + i + 1
        out.push({ id: `${prefix}-${type}-${String(num).padStart(2, '0')}`, stage, type })
      }
    }
  }
  return out
}

/** Produces every sensor's reading for one 5 s tick after another (sensors in layout order). */
export class PlantSimulator implements DomainSimulator {
  readonly startTs: number
  private readonly sensors: Sensor[]
  private readonly weather: Weather
  private readonly period: number
  private readonly anomalies: boolean
  private readonly warmupEnd: number
  private readonly gapMean: number
  private readonly all: Episode[] = []
  private tick = 0
  private idx = 0
  private flowMult = 1
  private temp = 15
  private rainNow = 0

  constructor(readonly opts: PlantSimOptions) {
    checkOptions(opts)
    this.startTs = opts.startTs ?? PLANT_EPOCH
    this.period = opts.periodMs ?? 5000
    this.anomalies = opts.anomalies ?? false
    this.warmupEnd = this.startTs + (opts.warmupMs ?? 6 * HOUR)
    // Mean episode ~35 min; the gap between episodes sets the share.
    this.gapMean = (35 * MIN) / (opts.anomalyShare ?? 0.02)
    this.weather = new Weather(opts.seed, this.startTs)
    this.sensors = plantLayout(opts.sensors ?? 127).map((l, i) => {
      const phys = PLANT_PHYSICS[l.type] as TypePhysics
      const base =
        l.type === 'flow'
          ? (STAGE_FLOW[l.stage] as number)
          : phys.pollutant
            ? phys.base * (STAGE_FACTOR[l.stage] as number)
            : l.type === 'chlorine' && l.stage !== 'disinfection'
              ? phys.base * 0.1
              : phys.base
      const rng = new Rng(entitySeed(opts.seed, 8, i))
      const sigma = (phys.relative ? base * phys.noise : phys.noise) * rng.range(0.8, 1.2)
      const s: Sensor = {
        ...l,
        phys,
        base,
        sigma,
        ar: 0,
        rng,
        hist: new Float64Array(HIST * 3),
        histN: 0,
        ep: undefined,
        epParam: [],
        nextStart: this.warmupEnd + rng.exp(this.gapMean),
        lastValue: NaN,
      }
      return s
    })
  }

  /** Noise scale (white + wander) of a sensor: the unit anomaly sizes are given in. */
  private scale(s: Sensor): number {
    return s.sigma * Math.sqrt(1 + 0.25)
  }

  /**
   * An offset of `size` noise scales in direction `sign`, kept inside physics: downward only when that leaves at
   * least half of the way to the range's floor (a drifting chlorine probe at 0.1 mg/l does not read negative;
   * only a cyber attack sends impossible values), upward otherwise.
   */
  private signed(s: Sensor, sign: number, size: number): number {
    const room = (0.5 * (s.base - s.phys.lo)) / this.scale(s)
    return sign > 0 || room < size ? size : -size
  }

  private plan(s: Sensor, ts: number): void {
    const r = s.rng
    const types = PLANT_ANOMALY_TYPES.filter((t) => t !== 'pollution_spike' || s.phys.pollutant)
    const type = r.pick(types)
    let dur: number, mode: string
    let param: number[] = []
    switch (type) {
      case 'sensor_failure':
        dur = r.range(10, 40) * MIN
        mode = r.next() < 0.5 ? 'stuck' : 'dropout'
        break
      case 'sensor_drift':
        dur = r.range(60, 150) * MIN
        mode = 'ramp'
        param = [this.signed(s, r.next() < 0.5 ? -1 : 1, r.range(5, 10))]
        break
      case 'pollution_spike':
        dur = r.range(5, 30) * MIN
        mode = 'front'
        param = [r.range(10, 25)]
        break
      case 'process_malfunction':
        dur = r.range(15, 60) * MIN
        mode = 'decoupled'
        param = [this.signed(s, r.next() < 0.5 ? -1 : 1, r.range(8, 15)), r.range(3, 10) * MIN]
        break
      default: {
        dur = r.range(5, 20) * MIN
        mode = r.pick(['out_of_range', 'impossible_rate', 'replay'])
        param = [r.range(30, 50) * MIN]
        // A sensor-level replay needs that much history of the sensor itself.
        if (mode === 'replay' && s.histN < HIST) mode = 'out_of_range'
      }
    }
    const ep: Episode = {
      kind: 'sensor',
      entity: s.id,
      type,
      start: ts,
      end: ts + Math.round(dur / this.period) * this.period,
      mode,
    }
    s.ep = ep
    s.epParam = param
    this.all.push(ep)
  }

  next(): DomainItem {
    const ts = this.startTs + this.tick * this.period
    if (this.idx === 0) {
      const hourOfDay = (ts % (24 * HOUR)) / HOUR
      this.rainNow = this.weather.rain(ts)
      this.flowMult = (1 + 0.3 * Math.sin((2 * Math.PI * (hourOfDay - 5)) / 24)) * (1 + this.rainNow)
      const days = (ts - PLANT_EPOCH) / (24 * HOUR)
      this.temp =
        15 +
        1.5 * Math.sin((2 * Math.PI * (hourOfDay - 9)) / 24) +
        1.2 * Math.sin((2 * Math.PI * days) / 3.3) -
        0.6 * this.rainNow
    }
    const s = this.sensors[this.idx] as Sensor
    const item = this.sample(s, ts)
    this.idx++
    if (this.idx === this.sensors.length) {
      this.idx = 0
      this.tick++
    }
    return item
  }

  private sample(s: Sensor, ts: number): DomainItem {
    const p = s.phys
    const r = s.rng
    const flow = round((STAGE_FLOW[s.stage] as number) * this.flowMult, 2)
    const temp = round(this.temp, 3)
    s.ar = 0.9 * s.ar + Math.sqrt(1 - 0.81) * 0.5 * s.sigma * r.normal()
    const rel = this.flowMult - 1
    // The temperature effect scales with the level, like the flow effect (a diluted parameter moves less per °C).
    let clean = s.base * (1 + p.kFlow * rel) + p.kTemp * (s.base / p.base) * (temp - 15) + s.ar + s.sigma * r.normal()
    if (s.type === 'flow') clean = flow + s.sigma * r.normal() + s.ar
    const decimals = Math.max(0, Math.ceil(-Math.log10(s.sigma / 200)))
    if (this.anomalies && !s.ep && ts >= s.nextStart) this.plan(s, ts)
    let value: number | undefined = clean
    let rFlow = flow,
      rTemp = temp
    const ep = s.ep
    if (ep && ts <= ep.end) {
      const t = ts - ep.start
      const sc = this.scale(s)
      switch (ep.type) {
        case 'sensor_failure':
          value = ep.mode === 'stuck' ? s.lastValue : undefined
          break
        case 'sensor_drift':
          value = clean + (s.epParam[0] as number) * sc * (t / (ep.end - ep.start))
          break
        case 'pollution_spike':
          value = clean + (s.epParam[0] as number) * sc * Math.exp(-t / ((ep.end - ep.start) / 2))
          break
        case 'process_malfunction':
          value = clean + (s.epParam[0] as number) * sc * Math.min(1, t / (s.epParam[1] as number))
          break
        default:
          if (ep.mode === 'out_of_range') {
            value =
              Math.floor(t / this.period) % 2 === 0
                ? p.hi * r.range(1.1, 1.5)
                : p.lo - (p.hi - p.lo) * r.range(0.01, 0.1)
          } else if (ep.mode === 'impossible_rate') {
            value =
              p.lo + (p.hi - p.lo) * (Math.floor(t / this.period) % 2 === 0 ? r.range(0.85, 0.95) : r.range(0.02, 0.1))
          } else {
            // Replay: the sensor's own readings from `param` ago, bit for bit.
            const back = Math.round((s.epParam[0] as number) / this.period)
            const j = (((s.histN - back) % HIST) + HIST) % HIST
            value = s.hist[j * 3] as number
            rFlow = s.hist[j * 3 + 1] as number
            rTemp = s.hist[j * 3 + 2] as number
          }
      }
    } else if (ep && ts > ep.end) {
      s.ep = undefined
      s.nextStart = ts + 2 * HOUR + s.rng.exp(this.gapMean)
    }
    const replayed = ep !== undefined && ts <= ep.end && ep.mode === 'replay'
    if (value !== undefined && !replayed && !(ep && ts <= ep.end && ep.mode === 'stuck')) value = round(value, decimals)
    const fields: Reading['fields'] = { type: s.type, stage: s.stage, flow: rFlow, temp: rTemp }
    if (value !== undefined && Number.isFinite(value)) fields['value'] = value
    if (s.stage === 'outlet' && p.pollutant) fields['inlet'] = round(p.base * (1 + p.kFlow * rel), 3)
    // History of what was sent (replays replay sent readings), and the stuck value.
    const j = s.histN % HIST
    s.hist[j * 3] = value ?? NaN
    s.hist[j * 3 + 1] = rFlow
    s.hist[j * 3 + 2] = rTemp
    s.histN++
    if (value !== undefined) s.lastValue = value
    return { kind: 'sensor', id: s.id, reading: { ts, fields, profile: 'process', rid: `${s.id}:${ts}` }, at: ts }
  }

  episodes(untilTs: number): Episode[] {
    return clipEpisodes(this.all, untilTs)
  }
}

/** The plant simulator as an endless generator. */
export function* simulatePlant(opts: PlantSimOptions): Generator<DomainItem, never, undefined> {
  const sim = new PlantSimulator(opts)
  for (;;) yield sim.next()
}
