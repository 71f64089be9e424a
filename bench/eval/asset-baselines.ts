/**
 * The naive baseline of issue 20, the bar any asset risk model has to clear: per unit, the hourly mean of
 * vibration and of temperature against that unit's own median over its last 30 days of hourly means, with 4 robust
 * sigmas (1.4826 x MAD). An hour above the line opens an alert (`naive_vibration` or `naive_temperature`), three
 * hours in a row back under it close it: one alert per excursion (an hour's dip does not split it). It knows nothing of duty cycles, load, seasons or
 * pressure and flow; it is meant to be simple, not good.
 *
 * Details: an hour is judged when the unit's first reading of a later hour arrives (so an alert opens at that
 * reading's time); hours with fewer than `minSamples` readings are skipped; the history holds the last
 * `windowDays x 24` hourly means the unit actually sent (hours in the workshop have none); no alert before
 * `minHistoryHours` of history. Risk, for the AUC, is the larger robust z-score of the unit's last judged hour.
 */
import type { Reading } from '../../actors/types.js'
import type { AlertEvent } from './asset-score.js'
import type { Detector, DetectorInstance } from './asset-eval.js'

export interface NaiveOptions {
  fields?: readonly string[]
  windowDays?: number
  sigmas?: number
  minHistoryHours?: number
  minSamples?: number
  /** Judged hours in a row under the line that end an excursion (3). */
  closeAfterHours?: number
}

const HOUR_MS = 3_600_000
const MAD_TO_SIGMA = 1.4826

/** k-th smallest of a[0..n) (in place, Hoare's selection). */
function select(a: Float64Array, n: number, k: number): number {
  let lo = 0
  let hi = n - 1
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1] as number
    let i = lo
    let j = hi
    while (i <= j) {
      while ((a[i] as number) < pivot) i++
      while ((a[j] as number) > pivot) j--
      if (i <= j) {
        const t = a[i] as number
        a[i] = a[j] as number
        a[j] = t
        i++
        j--
      }
    }
    if (k <= j) hi = j
    else if (k >= i) lo = i
    else break
  }
  return a[k] as number
}

/** Median of a[0..n), reordering a. */
export function medianInPlace(a: Float64Array, n: number): number {
  const hi = select(a, n, n >> 1)
  if (n % 2 === 1) return hi
  let lo = -Infinity
  for (let i = 0; i < n >> 1; i++) if ((a[i] as number) > lo) lo = a[i] as number
  return (lo + hi) / 2
}

class FieldTrack {
  hour = -1
  sum = 0
  count = 0
  readonly ring: Float64Array
  size = 0
  next = 0
  open = false
  under = 0
  z: number | undefined
  constructor(cap: number) {
    this.ring = new Float64Array(cap)
  }
}

/** The naive baseline as a detector. */
export function naiveBaseline(o: NaiveOptions = {}): Detector {
  const fields = o.fields ?? ['vibration', 'temperature']
  const cap = Math.round((o.windowDays ?? 30) * 24)
  const sigmas = o.sigmas ?? 4
  const minHistory = o.minHistoryHours ?? 72
  const minSamples = o.minSamples ?? 10
  const closeAfter = o.closeAfterHours ?? 3
  const types = fields.map((f) => `naive_${f}`)
  return {
    name: 'naive',
    alertTypes: types,
    create(): DetectorInstance {
      const units = new Map<string, FieldTrack[]>()
      const scratch = new Float64Array(cap)
      /** Judges a finished hour against the history, then adds it to the history. */
      const judge = (entity: string, k: number, tr: FieldTrack, ts: number, out: AlertEvent[]): void => {
        const m = tr.sum / tr.count
        if (tr.size >= minHistory) {
          scratch.set(tr.ring.subarray(0, tr.size))
          const med = medianInPlace(scratch, tr.size)
          for (let i = 0; i < tr.size; i++) scratch[i] = Math.abs((tr.ring[i] as number) - med)
          const scale = Math.max(MAD_TO_SIGMA * medianInPlace(scratch, tr.size), 1e-6)
          tr.z = (m - med) / scale
          const above = tr.z > sigmas
          tr.under = above ? 0 : tr.under + 1
          if (above && !tr.open) {
            out.push({ entity, type: types[k] as string, state: 'open', ts })
            tr.open = true
          } else if (tr.open && tr.under >= closeAfter) {
            out.push({ entity, type: types[k] as string, state: 'close', ts })
            tr.open = false
          }
        }
        tr.ring[tr.next] = m
        tr.next = (tr.next + 1) % cap
        if (tr.size < cap) tr.size++
      }
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          let tracks = units.get(entity)
          if (!tracks) units.set(entity, (tracks = fields.map(() => new FieldTrack(cap))))
          const hour = Math.floor(r.ts / HOUR_MS)
          const out: AlertEvent[] = []
          for (let k = 0; k < fields.length; k++) {
            const v = r.fields[fields[k] as string]
            const tr = tracks[k] as FieldTrack
            if (hour !== tr.hour) {
              if (tr.count >= minSamples) judge(entity, k, tr, r.ts, out)
              tr.hour = hour
              tr.sum = 0
              tr.count = 0
            }
            if (typeof v === 'number' && Number.isFinite(v)) {
              tr.sum += v
              tr.count++
            }
          }
          return out
        },
        risk(entity: string): number | undefined {
          const tracks = units.get(entity)
          if (!tracks) return undefined
          let best: number | undefined
          for (const tr of tracks) if (tr.z !== undefined && (best === undefined || tr.z > best)) best = tr.z
          return best
        },
      }
    },
  }
}
