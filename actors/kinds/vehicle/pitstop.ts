/**
 * The pit-stop score of a race car: a pure function of the car's current inputs, kept apart from the actor so
 * it can be checked against a naive reference (test/unit/pitstop.test.ts) and reused by tools.
 *
 *   score = 100 * (wTyreWear * tyre_wear + wSpeedLoss * speed_loss + wBrake * brake_degradation
 *                  + wAnomaly * anomaly_penalty), each factor in 0..1, rounded to 0.01.
 *
 * - tyre_wear: tyre wear % mapped linearly from tyreWearLowPct (0) to tyreWearHighPct (1).
 * - speed_loss: last valid lap time vs the reference lap time; 0 at no loss, 1 at >= speedLossFullPct slower.
 * - brake_degradation: from `brake_wear` % (low..high, like tyres) when the car sends it; otherwise the last
 *   lap's mean peak-corner brake temperature vs the reference laps' (worn pads run hotter), 1 at
 *   >= brakeRiseFullPct hotter.
 * - anomaly_penalty: open anomalies / anomalyCap.
 * A missing input contributes 0: the score never invents a reason to pit.
 */

/** Pit-stop settings (part of the race profile's config; every number is a default, overridable). */
export interface PitStopConfig {
  wTyreWear: number
  wSpeedLoss: number
  wBrake: number
  wAnomaly: number
  tyreWearLowPct: number
  tyreWearHighPct: number
  speedLossFullPct: number
  brakeRiseFullPct: number
  brakeWearLowPct: number
  brakeWearHighPct: number
  /** Open anomalies that give the full anomaly penalty. */
  anomalyCap: number
  /** Valid laps whose median is the car's reference pace (and brake temperature). */
  referenceLaps: number
  /** A `pit_now` recommendation fires when the score goes above this... */
  recommendAbove: number
  /** ...and re-arms once the score falls below recommendAbove - rearmHysteresis (or after a pit stop). */
  rearmHysteresis: number
  /** A tyre wear drop larger than this (percentage points) means new tyres: a pit stop. */
  wearDropPct: number
  /** Event-time period of score outputs between lap ends; 0 = at lap ends only. */
  intervalMs: number
}

export const PIT_STOP_DEFAULTS: PitStopConfig = {
  wTyreWear: 0.4,
  wSpeedLoss: 0.3,
  wBrake: 0.2,
  wAnomaly: 0.1,
  tyreWearLowPct: 20,
  tyreWearHighPct: 80,
  speedLossFullPct: 5,
  brakeRiseFullPct: 15,
  brakeWearLowPct: 20,
  brakeWearHighPct: 80,
  anomalyCap: 2,
  referenceLaps: 3,
  recommendAbove: 70,
  rearmHysteresis: 5,
  wearDropPct: 5,
  intervalMs: 5_000,
}

/** What the score is computed from; `undefined` = not known yet. */
export interface PitStopInputs {
  tyreWearPct?: number | undefined
  lastLapMs?: number | undefined
  refLapMs?: number | undefined
  /** Mean peak-corner brake temperature of the last valid lap and of the reference laps (°C). */
  lapBrakeTemp?: number | undefined
  refBrakeTemp?: number | undefined
  /** Brake wear %, when the car sends it; takes precedence over temperatures. */
  brakeWearPct?: number | undefined
  openAnomalies: number
}

export interface PitStopFactors {
  tyre_wear: number
  speed_loss: number
  brake_degradation: number
  anomaly_penalty: number
}

export interface PitStopScore {
  /** 0..100, rounded to 0.01. */
  value: number
  /** Factor values, 0..1. */
  factors: PitStopFactors
  /** Weighted contributions in score points (100 * weight * factor). */
  points: PitStopFactors
}

const clamp01 = (x: number): number => (x <= 0 ? 0 : x >= 1 ? 1 : x)
const known = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x)

/** Linear map of `x` from [lo, hi] to [0, 1], clamped; 0 when unknown. */
export function ramp(x: number | undefined, lo: number, hi: number): number {
  return known(x) ? clamp01((x - lo) / (hi - lo)) : 0
}

/** Relative excess of `x` over `ref`, as a fraction of `fullPct` %, clamped to 0..1; 0 when unknown. */
export function relativeRise(x: number | undefined, ref: number | undefined, fullPct: number): number {
  if (!known(x) || !known(ref) || ref <= 0) return 0
  return clamp01((x / ref - 1) / (fullPct / 100))
}

/** Computes the pit-stop score and its factors. */
export function pitStopScore(i: PitStopInputs, c: PitStopConfig): PitStopScore {
  const factors: PitStopFactors = {
    tyre_wear: ramp(i.tyreWearPct, c.tyreWearLowPct, c.tyreWearHighPct),
    speed_loss: relativeRise(i.lastLapMs, i.refLapMs, c.speedLossFullPct),
    brake_degradation: known(i.brakeWearPct)
      ? ramp(i.brakeWearPct, c.brakeWearLowPct, c.brakeWearHighPct)
      : relativeRise(i.lapBrakeTemp, i.refBrakeTemp, c.brakeRiseFullPct),
    anomaly_penalty: c.anomalyCap > 0 ? clamp01(i.openAnomalies / c.anomalyCap) : 0,
  }
  const points: PitStopFactors = {
    tyre_wear: 100 * c.wTyreWear * factors.tyre_wear,
    speed_loss: 100 * c.wSpeedLoss * factors.speed_loss,
    brake_degradation: 100 * c.wBrake * factors.brake_degradation,
    anomaly_penalty: 100 * c.wAnomaly * factors.anomaly_penalty,
  }
  const raw = points.tyre_wear + points.speed_loss + points.brake_degradation + points.anomaly_penalty
  return { value: Math.round(raw * 100) / 100, factors, points }
}

/** Flattens a score for ScoreBody/RecommendationBody: the four factors and their `<factor>_pts` contributions. */
export function factorRecord(s: PitStopScore): Record<string, number> {
  const f = s.factors
  const p = s.points
  return {
    tyre_wear: f.tyre_wear,
    speed_loss: f.speed_loss,
    brake_degradation: f.brake_degradation,
    anomaly_penalty: f.anomaly_penalty,
    tyre_wear_pts: p.tyre_wear,
    speed_loss_pts: p.speed_loss,
    brake_degradation_pts: p.brake_degradation,
    anomaly_penalty_pts: p.anomaly_penalty,
  }
}

/**
 * One step of the once-per-crossing gate: fires when armed and the score is above `recommendAbove`, then stays
 * quiet until the score has fallen below `recommendAbove - rearmHysteresis` (a pit stop re-arms it too, in the
 * actor), so a score hovering around the threshold does not repeat the recommendation.
 */
export function recommendStep(armed: boolean, score: number, c: PitStopConfig): { fire: boolean; armed: boolean } {
  if (armed && score > c.recommendAbove) return { fire: true, armed: false }
  if (!armed && score < c.recommendAbove - c.rearmHysteresis) return { fire: false, armed: true }
  return { fire: false, armed }
}

/** Median of a non-empty list (mean of the two middle values for even lengths); undefined when empty. */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined
  const s = xs.slice().sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** The reason string of a `pit_now` recommendation: the factors ranked by contribution. */
export function pitReason(s: PitStopScore, threshold: number): string {
  const labels: Record<keyof PitStopFactors, string> = {
    tyre_wear: 'tyre wear',
    speed_loss: 'pace loss',
    brake_degradation: 'brake degradation',
    anomaly_penalty: 'open anomalies',
  }
  const parts = (Object.keys(labels) as Array<keyof PitStopFactors>)
    .filter((k) => s.points[k] > 0)
    .sort((a, b) => s.points[b] - s.points[a])
    .map((k) => `${labels[k]} ${s.points[k].toFixed(1)} pts (factor ${s.factors[k].toFixed(2)})`)
  return `pit-stop score ${s.value.toFixed(2)} > ${threshold}: ${parts.join(', ')}`
}
