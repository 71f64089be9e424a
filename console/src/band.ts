/**
 * The plant's expected band: the process profile's live state carries its covariate model now (`model.expected`
 * at the last flow and temperature, `model.sigma`, `model.perFlow`, `model.perDegree`). The API keeps no history
 * of the model, so the band is drawn from the current model across the visible readings: at each reading the
 * expected value is moved along the model's slopes by that reading's own flow and temperature (when it carried
 * them), +- K sigma. K is 3: the state does not expose an alert threshold in sigma.
 */
import type { Json } from './api.js'

export const BAND_K = 3

export interface ProcessModel {
  expected: number
  sigma: number
  warm: boolean
  readings: number
  perFlow: number
  perDegree: number
  flow: number | null
  temp: number | null
}

const finite = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null)

/** The model out of a `GET /v1/entities/sensor/:id/state` reply, or null when it has no expected value yet. */
export function processModel(reply: Json | null): ProcessModel | null {
  const state = (reply?.state ?? null) as Json | null
  const m = (state?.model ?? null) as Json | null
  const last = (state?.last ?? {}) as Json
  const expected = finite(m?.expected),
    sigma = finite(m?.sigma)
  if (expected === null || sigma === null) return null
  return {
    expected,
    sigma,
    warm: m?.warm === true,
    readings: finite(m?.readings) ?? 0,
    perFlow: finite(m?.perFlow) ?? 0,
    perDegree: finite(m?.perDegree) ?? 0,
    flow: finite(last.flow),
    temp: finite(last.temp),
  }
}

/** Expected value at each reading, and the band edges expected +- K sigma. */
export function expectedBand(
  m: ProcessModel,
  flow: readonly (number | null)[] | undefined,
  temp: readonly (number | null)[] | undefined,
  n: number,
): { exp: number[]; hi: number[]; lo: number[] } {
  const exp: number[] = []
  for (let i = 0; i < n; i++) {
    const f = flow?.[i] ?? null,
      t = temp?.[i] ?? null
    const df = f !== null && m.flow !== null ? f - m.flow : 0
    const dt = t !== null && m.temp !== null ? t - m.temp : 0
    exp.push(m.expected + m.perFlow * df + m.perDegree * dt)
  }
  const w = BAND_K * m.sigma
  return { exp, hi: exp.map((e) => e + w), lo: exp.map((e) => e - w) }
}
