/**
 * A seeded bus-like trace for the road profile's accuracy tests: a path of straights and curves (radius 15-80 m),
 * stop-to-stop driving (accelerate, cruise 25-50 km/h, brake, dwell 10-45 s at stops and lights), GPS fixes with
 * correlated noise of a few metres, single-reading jumps of 200-900 m and dropouts of 30-120 s, GPS speed with
 * a little noise. The truth is the arc length driven. This is the profile's own test bench; the independent
 * evaluation on real GTFS geometry lives on the fleet-eval branch (bench/eval/fleet-*.ts).
 */
import type { Reading } from '../../actors/types.js'

export interface TraceOptions {
  seed: number
  /** Reading period (ms). */
  periodMs: number
  /** Driving distance of the trip (m). */
  lengthM: number
  noiseM?: number
  /** Probability per fix of a single-reading jump. */
  jumpP?: number
  /** Dropouts per hour of driving (half of them GPS only, half the whole unit silent). */
  dropoutsPerHour?: number
  startTs?: number
}

export interface Trace {
  readings: Reading[]
  /** True distance driven (m), start and end of the motion. */
  trueM: number
  startTs: number
  endTs: number
  jumps: number
  dropouts: number
}

/** mulberry32: small, seeded, good enough for test data. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const LAT0 = 40.75
const LON0 = -73.98
const M_PER_DEG_LAT = 111_195
const M_PER_DEG_LON = 111_195 * Math.cos((LAT0 * Math.PI) / 180)

/** The path as points every metre of arc length (x east, y north, metres). */
function buildPath(r: () => number, lengthM: number): Float64Array {
  const pts: number[] = []
  let x = 0,
    y = 0,
    h = r() * 2 * Math.PI
  let s = 0
  const total = lengthM + 2_000
  while (s < total) {
    const straight = 80 + r() * 400
    for (let i = 0; i < straight && s < total; i++, s++) {
      pts.push(x, y)
      x += Math.cos(h)
      y += Math.sin(h)
    }
    const radius = 15 + r() * 65
    const angle = (((20 + r() * 70) * Math.PI) / 180) * (r() < 0.5 ? -1 : 1)
    const arc = Math.abs(angle) * radius
    for (let i = 0; i < arc && s < total; i++, s++) {
      pts.push(x, y)
      h += angle / arc
      x += Math.cos(h)
      y += Math.sin(h)
    }
  }
  return Float64Array.from(pts)
}

export function makeTrace(o: TraceOptions): Trace {
  const r = rng(o.seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
  const path = buildPath(r, o.lengthM)
  const at = (s: number): [number, number] => {
    const i = Math.min(Math.floor(s), path.length / 2 - 2)
    const f = s - i
    return [
      (path[2 * i] as number) * (1 - f) + (path[2 * i + 2] as number) * f,
      (path[2 * i + 1] as number) * (1 - f) + (path[2 * i + 3] as number) * f,
    ]
  }
  const noise = o.noiseM ?? 4
  const startTs = o.startTs ?? Date.UTC(2026, 0, 5, 7, 0, 0)
  const dtS = 0.1
  // Simulated at 100 ms; readings every periodMs.
  let t = 0,
    s = 0,
    v = 0
  let nextStop = 200 + r() * 600
  let cruise = (25 + r() * 25) / 3.6
  let dwellUntil = -1
  let ex = 0,
    ey = 0
  let dropUntil = -1
  let silent = false
  let jumps = 0,
    dropouts = 0
  const readings: Reading[] = []
  let nextRead = 0
  // 60 s standing with the engine on before leaving.
  const leaveAt = 60
  let done = false
  let endT = 0
  while (!done) {
    if (t >= leaveAt && dwellUntil < t) {
      const toStop = Math.min(nextStop, o.lengthM) - s
      const brakeDist = (v * v) / (2 * 1.2)
      if (toStop <= brakeDist + 0.5) v = Math.max(0, v - 1.2 * dtS)
      else if (v < cruise) v = Math.min(cruise, v + 1.0 * dtS)
      if (v === 0 && toStop < 3) {
        if (s >= o.lengthM - 3) {
          done = true
          endT = t
          break
        }
        dwellUntil = t + 10 + r() * 35
        nextStop = s + 200 + r() * 600
        cruise = (25 + r() * 25) / 3.6
      }
      s += v * dtS
    } else if (dwellUntil >= t) v = 0
    if (t + 1e-9 >= nextRead) {
      const per = o.periodMs / 1000
      // GPS error: AR(1) per axis, correlation ~0.6 over a second, stationary sigma `noise`.
      const rho = Math.pow(0.6, per)
      ex = rho * ex + Math.sqrt(1 - rho * rho) * noise * normal()
      ey = rho * ey + Math.sqrt(1 - rho * rho) * noise * normal()
      const ts = startTs + Math.round(t * 1000)
      const fields: Reading['fields'] = {
        speed: Math.max(0, Math.round((v * 3.6 + 0.3 * normal()) * 10) / 10),
        ignition: true,
        rpm: v > 0 ? 1200 : 750,
      }
      if (t >= dropUntil) {
        // At least a minute of fixes between two dropouts (two in a row would be one silence of >= 3 min: the
        // end of a trip by rule).
        if (t > leaveAt && t > dropUntil + 60 && r() < ((o.dropoutsPerHour ?? 4) / 3600) * per) {
          dropUntil = t + 30 + r() * 90
          dropouts++
          silent = r() < 0.5
        } else {
          let [x, y] = at(s)
          x += ex
          y += ey
          if (r() < (o.jumpP ?? 0.01)) {
            const d = 200 + r() * 700,
              a = r() * 2 * Math.PI
            x += d * Math.cos(a)
            y += d * Math.sin(a)
            jumps++
          }
          fields['lat'] = Math.round((LAT0 + y / M_PER_DEG_LAT) * 1e6) / 1e6
          fields['lon'] = Math.round((LON0 + x / M_PER_DEG_LON) * 1e6) / 1e6
        }
      }
      // During a silent dropout the whole unit sends nothing (modem lost); otherwise readings without a fix.
      if (t >= dropUntil || !silent) readings.push({ ts, fields })
      nextRead += per
    }
    t += dtS
  }
  // Parked: 4 more minutes of readings standing with the engine on, then ignition off.
  for (let k = 1; k * o.periodMs <= 240_000; k++) {
    const [x, y] = at(s)
    const ts = startTs + Math.round(endT * 1000) + k * o.periodMs
    readings.push({
      ts,
      fields: {
        speed: 0,
        ignition: true,
        rpm: 750,
        lat: Math.round((LAT0 + (y + noise * normal()) / M_PER_DEG_LAT) * 1e6) / 1e6,
        lon: Math.round((LON0 + (x + noise * normal()) / M_PER_DEG_LON) * 1e6) / 1e6,
      },
    })
  }
  // The driver switches off: the trip ends (at the start of its last stop).
  readings.push({
    ts: startTs + Math.round(endT * 1000) + 240_000 + o.periodMs,
    fields: { speed: 0, ignition: false, rpm: 0 },
  })
  return {
    readings,
    trueM: s,
    startTs: startTs + leaveAt * 1000,
    endTs: startTs + Math.round(endT * 1000),
    jumps,
    dropouts,
  }
}
