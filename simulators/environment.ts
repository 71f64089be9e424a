/** Environment sensors (DOMAIN.md section 2): `env-0001`.. with temperature, humidity, CO2 and their episodes. */
import type { Rng } from './truth.js'
import { clamp, Entity, sensorId, r1, r2, SIM_RATES, type Sample } from './entity.js'

const HOUR = 3_600_000

export class SensorSim extends Entity {
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
      return u < 0.4
        ? { type: 'high_temperature', durMs: rng.range(75, 240) * 1000 }
        : u < 0.8
          ? { type: 'high_co2', durMs: rng.range(150, 600) * 1000 }
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
    this.pressure = clamp(
      1013 + (this.pressure - 1013) * decay + 5 * Math.sqrt(1 - decay * decay) * rng.normal(),
      985,
      1040,
    )

    this.battery -= this.drainPerH * dtH
    if (this.battery < 5) this.battery = 100 // a technician swapped it
    const status = ep?.type === 'sensor_failure' ? 'failure' : this.battery < 15 ? 'warning' : 'ok'

    // Most readings arrive on time; a few are held back by the radio link, rarely for long.
    const u = rng.next()
    const delayMs =
      u < SIM_RATES.lateLong
        ? Math.round(rng.range(30_000, 45_000))
        : u < SIM_RATES.lateLong + SIM_RATES.lateShort
          ? Math.round(rng.range(500, 5_000))
          : 0

    const s: Sample = {
      fields: {
        temperature: r2(temperature),
        humidity: r1(humidity),
        co2: Math.round(co2),
        pressure: r1(this.pressure),
        battery: r2(this.battery),
        status,
      },
      delayMs,
      loc: { lat: this.lat, lon: this.lon },
    }
    if (ep) s.truth = { type: ep.type, start: ep.start, end: ep.end }
    return s
  }
}
