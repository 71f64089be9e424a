/**
 * Filter backwash recognised from the plant's own signals: ISA-18.2 "designed suppression" (state-based
 * alarming) for the `process` profile (issue 17; docs/profiles.md "Designed suppression: filter backwash").
 *
 * WHY: a filter backwash is an automatic process step nobody announces. For its 10-20 minutes one filter goes out
 * of service while its partner carries all the flow, the backwash pump runs, head loss resets and the filter
 * stage's level rises; for a quarter of an hour after it a turbidity ripple runs downstream. On each sensor's
 * own data that is a step or a front, which is what a malfunction or a pollution spike looks like: about a third
 * of the profile's false alerts on the independent plant scenario fell in backwashes. One sensor cannot tell, but
 * the stage's equipment says it plainly: the backwash pump on AND one filter's flow near zero while the others
 * carry the stage. Two independent instruments must agree, so a pump toggled by an attacker, or a filter flow
 * transmitter failing on its own, suppresses nothing.
 *
 * HOW the signals reach the sensor's actor (ARCHITECTURE.md: an actor sees only its own input log): the way the
 * PLC already sends the stage `flow` and `temp` with every sample, the edge that knows the P&ID attaches the
 * filter group's signals (the backwash pump and the filter flows, as its data table last read them) to every
 * reading of the sensors a backwash affects: the filter stage's own instruments and the turbidity/solids analysers
 * downstream of it. Fields `backwash_pump` and `filter_flow_1` .. `filter_flow_4` (BACKWASH_FIELDS). No extra
 * message, and the view below depends only on the sensor's own readings, so replay and snapshots are exact. A
 * sensor whose readings carry no such fields never suppresses anything.
 *
 * The view, per reading (pure; state: BACKWASH_SLOTS numbers in the actor's snapshot):
 *   - pump on: its value above lo + pumpOnRel x (hi - lo), lo/hi the lowest and highest value the signal had
 *     (a status 0/1 or a motor current alike; before the pump has ever run, hi = lo and it is not on);
 *   - a filter out: the lowest filter flow under filterOutShare of the highest (and the highest above zero);
 *   - BACKWASH after both held confirmReadings readings in a row; it ends after endReadings readings in a row
 *     where they do not (readings whose signals are older than staleMs or missing keep the phase as it is);
 *   - then RIPPLE: the process profile keeps the sensor suppressed while the wash water passes (chemistry: until its
 *     value is back within rippleClearZ of the level it had before the backwash (REF) for rippleClearReadings, at
 *     most rippleMaxMs; equipment: settleMs).
 */
import type { Reading } from '../../types.js'

/** Fields the edge attaches to the readings of the sensors a backwash affects. */
export const BACKWASH_FIELDS = {
  pump: 'backwash_pump',
  filters: ['filter_flow_1', 'filter_flow_2', 'filter_flow_3', 'filter_flow_4'],
} as const

export interface BackwashConfig {
  /** The pump is on above lo + pumpOnRel x (hi - lo) of the values its signal had. */
  pumpOnRel: number
  /** A filter is out of service when its flow is under this share of the highest filter flow. */
  filterOutShare: number
  /** Readings in a row the backwash condition must hold to start it, and fail to end it. */
  confirmReadings: number
  endReadings: number
  /** A signal older than this (event time) is unknown: the phase stays as it is. */
  staleMs: number
  /** Equipment sensors: suppressed this long after the backwash, then their level restarts. */
  settleMs: number
  /** Chemistry sensors: the ripple is over when |baseline z| < rippleClearZ for rippleClearReadings, at most rippleMaxMs. */
  rippleClearZ: number
  rippleClearReadings: number
  rippleMaxMs: number
}

/** Phases of the view. */
export const PHASE = { NONE: 0, BACKWASH: 1, RIPPLE: 2 } as const

/** Slots of the view's state. */
export const B = {
  PHASE: 0,
  /** When the suppression started (the first reading the backwash was confirmed at), when the backwash ended. */
  SINCE: 1,
  ENDED: 2,
  /** Readings in a row the condition held (BACKWASH pending) or failed (BACKWASH ending). */
  RUN: 3,
  /** Lowest and highest pump signal seen, last pump signal and its time. */
  PLO: 4,
  PHI: 5,
  PUMP: 6,
  PUMPTS: 7,
  /** Filter out of service (1-based index, 0 = none) when the backwash was confirmed, and its flow then. */
  OUT: 8,
  OUTFLOW: 9,
  /** Ripple: readings in a row back near the pre-backwash level. */
  CLEAR: 10,
  /** Backwashes recognised. */
  COUNT: 11,
  /** The sensor's own level (its rolling baseline) when the suppression started: the ripple is over back there. */
  REF: 12,
  /** Last value and time of each filter flow (FLOWS + 2 i, FLOWS + 2 i + 1). */
  FLOWS: 13,
} as const
export const BACKWASH_SLOTS = B.FLOWS + 2 * BACKWASH_FIELDS.filters.length

/** A blank view: never fed, not suppressing. */
export function blankBackwash(): number[] {
  const b = new Array<number>(BACKWASH_SLOTS).fill(NaN)
  b[B.PHASE] = PHASE.NONE
  b[B.RUN] = 0
  b[B.OUT] = 0
  b[B.CLEAR] = 0
  b[B.COUNT] = 0
  return b
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined)

/** Reads the reading's stage signals into the view; returns whether the reading carried any. */
function take(b: number[], f: Reading['fields'], ts: number): boolean {
  let any = false
  const p = num(f[BACKWASH_FIELDS.pump])
  if (p !== undefined) {
    any = true
    b[B.PUMP] = p
    b[B.PUMPTS] = ts
    if (!(p >= (b[B.PLO] as number))) b[B.PLO] = p
    if (!(p <= (b[B.PHI] as number))) b[B.PHI] = p
  }
  for (let i = 0; i < BACKWASH_FIELDS.filters.length; i++) {
    const q = num(f[BACKWASH_FIELDS.filters[i] as string])
    if (q === undefined) continue
    any = true
    b[B.FLOWS + 2 * i] = q
    b[B.FLOWS + 2 * i + 1] = ts
  }
  return any
}

/**
 * The backwash condition from the latest signals: 1 (pump on and a filter out), 0 (not), NaN (signals unknown).
 * Sets OUT/OUTFLOW to the filter out when it holds.
 */
function condition(b: number[], ts: number, c: BackwashConfig): number {
  const fresh = (t: number): boolean => ts - t <= c.staleMs
  if (!fresh(b[B.PUMPTS] as number)) return NaN
  let lo = Infinity,
    hi = -Infinity,
    at = 0,
    n = 0
  for (let i = 0; i < BACKWASH_FIELDS.filters.length; i++) {
    if (!fresh(b[B.FLOWS + 2 * i + 1] as number)) continue
    const q = b[B.FLOWS + 2 * i] as number
    n++
    if (q < lo) {
      lo = q
      at = i + 1
    }
    if (q > hi) hi = q
  }
  if (n < 2) return NaN
  const plo = b[B.PLO] as number,
    phi = b[B.PHI] as number
  const pumpOn = phi > plo && (b[B.PUMP] as number) > plo + c.pumpOnRel * (phi - plo)
  const filterOut = hi > 0 && lo < c.filterOutShare * hi
  if (pumpOn && filterOut) {
    b[B.OUT] = at
    b[B.OUTFLOW] = lo
    return 1
  }
  return 0
}

/**
 * Feeds one reading's stage signals to the view and moves its phase (NONE -> BACKWASH -> RIPPLE; the process
 * profile ends the ripple with `endRipple`). Returns the phase after this reading.
 */
export function observeStage(b: number[], f: Reading['fields'], ts: number, c: BackwashConfig): number {
  if (!take(b, f, ts)) return b[B.PHASE] as number
  const cond = condition(b, ts, c)
  if (Number.isNaN(cond)) return b[B.PHASE] as number
  const phase = b[B.PHASE] as number
  if (phase === PHASE.BACKWASH) {
    b[B.RUN] = cond === 0 ? (b[B.RUN] as number) + 1 : 0
    if ((b[B.RUN] as number) >= c.endReadings) {
      b[B.PHASE] = PHASE.RIPPLE
      b[B.ENDED] = ts
      b[B.RUN] = 0
      b[B.CLEAR] = 0
    }
  } else {
    // A new backwash (also during the ripple of the last one) starts when the condition held long enough.
    b[B.RUN] = cond === 1 ? (b[B.RUN] as number) + 1 : 0
    if ((b[B.RUN] as number) >= c.confirmReadings) {
      if (phase === PHASE.NONE) b[B.SINCE] = ts
      b[B.PHASE] = PHASE.BACKWASH
      b[B.ENDED] = NaN
      b[B.RUN] = 0
      b[B.COUNT] = (b[B.COUNT] as number) + 1
    }
  }
  return b[B.PHASE] as number
}

/**
 * During RIPPLE: whether the suppression ends at this reading. `back`: the sensor's value is back near its
 * pre-backwash level (chemistry; undefined for equipment, which only waits settleMs). Returns 'returned' (back
 * to its level), 'timeout' (the level must restart) or undefined (still suppressed).
 */
export function endRipple(
  b: number[],
  ts: number,
  c: BackwashConfig,
  back: boolean | undefined,
): 'returned' | 'timeout' | undefined {
  if ((b[B.PHASE] as number) !== PHASE.RIPPLE) return undefined
  const since = ts - (b[B.ENDED] as number)
  let end: 'returned' | 'timeout' | undefined
  if (back === undefined) end = since >= c.settleMs ? 'timeout' : undefined
  else {
    b[B.CLEAR] = back ? (b[B.CLEAR] as number) + 1 : 0
    if ((b[B.CLEAR] as number) >= c.rippleClearReadings) end = 'returned'
    else if (since >= c.rippleMaxMs) end = 'timeout'
  }
  if (end) {
    b[B.PHASE] = PHASE.NONE
    b[B.SINCE] = NaN
    b[B.ENDED] = NaN
    b[B.CLEAR] = 0
    b[B.OUT] = 0
    b[B.REF] = NaN
  }
  return end
}

/** Why the sensor is suppressed, in words (alert close reasons, live state). */
export function backwashReason(b: number[]): string {
  const out = b[B.OUT] as number
  const filter =
    out > 0 ? `filter ${out} out of service (flow ${fmt(b[B.OUTFLOW] as number)})` : 'a filter out of service'
  return (b[B.PHASE] as number) === PHASE.RIPPLE
    ? `designed suppression: wash water passing after a filter backwash (${filter}, backwash pump on)`
    : `designed suppression: filter backwash (backwash pump on, ${filter})`
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(Math.round(x * 1000) / 1000) : '?'
}

/** The view for the live state: null when the sensor is not suppressed. */
export function backwashState(b: number[]): unknown {
  const phase = b[B.PHASE] as number
  const fin = (x: number): number | null => (Number.isFinite(x) ? x : null)
  const fedAt = b[B.PUMPTS] as number
  return {
    fed: Number.isFinite(fedAt),
    backwashes: b[B.COUNT],
    suppression:
      phase === PHASE.NONE
        ? null
        : {
            state: phase === PHASE.BACKWASH ? 'backwash' : 'ripple',
            kind: 'designed',
            reason: backwashReason(b),
            since: fin(b[B.SINCE] as number),
            backwashEnded: fin(b[B.ENDED] as number),
            filterOut: (b[B.OUT] as number) || null,
          },
  }
}

/** Checks a backwash config; `bad(setting, why)` throws the caller's config error. */
export function validateBackwashConfig(c: BackwashConfig, bad: (setting: string, why: string) => never): void {
  for (const [k, v] of Object.entries(c)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(`backwash.${k}`, `must be a finite number >= 0`)
  }
  if (c.pumpOnRel <= 0 || c.pumpOnRel >= 1) bad('backwash.pumpOnRel', 'must be > 0 and < 1')
  if (c.filterOutShare >= 1) bad('backwash.filterOutShare', 'must be < 1')
  for (const k of ['confirmReadings', 'endReadings', 'rippleClearReadings'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1) bad(`backwash.${k}`, 'must be an integer >= 1')
}
