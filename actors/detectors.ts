/**
 * Detector primitives shared by every profile: threshold-for-duration with hysteresis, range check, rate of
 * change, flatline and staleness. All of them are pure state machines fed samples in arrival order.
 *
 * Common rules:
 * - A sample whose `ts` is older than the last accepted sample's `ts` is ignored and counted in `ignored`
 *   (equal timestamps are accepted). Samples with a non-finite `ts` or value are ignored and counted too.
 *   Detectors never reorder: the caller decides what order means (event time for readings).
 * - Every detector emits at most one `DetectorEvent` per sample, always in the order open -> update* -> close.
 * - State lives in a small `number[]` of slots (unboxed doubles, NaN = "none"), so a detector costs a few dozen
 *   bytes. A profile may keep the slots of all its detectors in one array of its state and wrap a slice in a
 *   detector on demand (`new X(opts, buf, offset)`): the wrapper holds no state of its own.
 * - `toJSON()` gives the slots with `null` for NaN; `fromJSON(opts, data)` restores exactly.
 */
import type { AlertState } from './alerts.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from './errors.js'

/** What a detector reports. Fields have the same meaning for every detector unless its doc says otherwise. */
export interface DetectorEvent {
  state: AlertState
  /** Time the condition began (for ThresholdForDuration: the first sample of the run that opened it). */
  start: number
  /** On close: time of the sample that closed it. */
  end?: number
  /** The sample value that produced the event. */
  value: number
  /** The most extreme value seen since `start` (in the direction of the condition). */
  peak: number
  /** The threshold the condition is measured against. */
  threshold: number
}

/** A detector fed `(ts, value)` samples. */
export interface SampleDetector {
  update(ts: number, value: number): DetectorEvent | undefined
  readonly active: boolean
  readonly ignored: number
  toJSON(): unknown
}

const IDLE = 0
const PENDING = 1
const OPEN = 2

/** Slots to JSON: NaN/±Infinity are not JSON, they become null (all "none" markers are NaN). */
function encodeSlots(b: readonly number[], off: number, n: number): Array<number | null> {
  const out = new Array<number | null>(n)
  for (let i = 0; i < n; i++) {
    const v = b[off + i] as number
    out[i] = Number.isFinite(v) ? v : null
  }
  return out
}

function decodeSlots(what: string, data: unknown, n: number): number[] {
  if (!Array.isArray(data) || data.length !== n) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `${what} snapshot is not an array of ${n} slots`)
  }
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    const v: unknown = data[i]
    if (v === null) out[i] = NaN
    else if (typeof v === 'number' && Number.isFinite(v)) out[i] = v
    else throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `${what} snapshot slot ${i} is not a number`)
  }
  return out
}

function checkFinite(setting: string, v: number | undefined, min: number, required: boolean): void {
  if (v === undefined) {
    if (required) throw new ConfigError(setting, 'is required')
    return
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new ConfigError(setting, `must be a finite number >= ${min}, got ${String(v)}`)
  }
}

/** Base of the slot detectors: a view over `SLOTS` numbers at `off` in `b`. */
abstract class SlotView {
  protected readonly b: number[]
  protected readonly o: number
  constructor(blank: readonly number[], buf: number[] | undefined, off: number) {
    if (buf === undefined) {
      this.b = blank.slice()
      this.o = 0
    } else {
      if (!Number.isInteger(off) || off < 0 || off + blank.length > buf.length) {
        throw new ConfigError(
          'detector.offset',
          `slots ${off}..${off + blank.length} are outside a buffer of ${buf.length}`,
        )
      }
      this.b = buf
      this.o = off
    }
  }
  /** Out-of-order or non-finite samples ignored so far. */
  abstract get ignored(): number
}

// ---- ThresholdForDuration --------------------------------------------------------------------------------

export interface ThresholdOptions {
  /** Condition: value > above. Exactly one of `above` / `below`. */
  above?: number
  /** Condition: value < below. */
  below?: number
  /** The condition must hold continuously for at least this much time (0: opens on the first hot sample). */
  durationMs: number
  /** Clears at value <= above - hysteresis (>= below + hysteresis). Default 0. */
  hysteresis?: number
  /** The clear condition must hold this long before it closes (default 0: the first clear sample closes). */
  clearMs?: number
  /** While open, emit `update` when the peak grew by at least this much since the last open/update. Default: never. */
  updateDelta?: number
  /** At most one update per this much time since the last open/update. Default 0. */
  updateIntervalMs?: number
}

// Slots: phase, start of the hot run, peak, start of the clear run, last ts, ts of the last open/update,
// peak reported by the last open/update, ignored count.
const T_PHASE = 0,
  T_START = 1,
  T_PEAK = 2,
  T_CLEAR = 3,
  T_LAST = 4,
  T_EMIT = 5,
  T_REPORTED = 6,
  T_IGNORED = 7
const T_BLANK: readonly number[] = [IDLE, NaN, NaN, NaN, NaN, NaN, NaN, 0]

// Options objects already validated: profiles wrap their slots in a new detector per message, and options are
// shared configuration, so each is checked once.
const validThresholds = new WeakSet<ThresholdOptions>()

function validateThreshold(o: ThresholdOptions): void {
  if (validThresholds.has(o)) return
  if ((o.above === undefined) === (o.below === undefined)) {
    throw new ConfigError('threshold.above/below', 'exactly one of above and below must be set')
  }
  checkFinite('threshold.above', o.above, -Infinity, false)
  checkFinite('threshold.below', o.below, -Infinity, false)
  checkFinite('threshold.durationMs', o.durationMs, 0, true)
  checkFinite('threshold.hysteresis', o.hysteresis, 0, false)
  checkFinite('threshold.clearMs', o.clearMs, 0, false)
  checkFinite('threshold.updateDelta', o.updateDelta, 0, false)
  checkFinite('threshold.updateIntervalMs', o.updateIntervalMs, 0, false)
  // Frozen options cannot change after the check; others are checked every time.
  if (Object.isFrozen(o)) validThresholds.add(o)
}

/**
 * Opens when `value > above` (or `< below`) has held continuously for >= `durationMs`: at the first sample
 * whose ts is >= durationMs after the first sample of the hot run (`start`). A sample that is not hot before
 * that resets the run. While open: `update` when the peak grew by >= `updateDelta` since the last open/update
 * and >= `updateIntervalMs` passed since it. Closes when value <= above - hysteresis (>= below + hysteresis)
 * has held for `clearMs` (end = that sample's ts); a sample in the hysteresis band restarts the clear run.
 * `peak` is the extreme value since the hot run began.
 */
export class ThresholdForDuration extends SlotView implements SampleDetector {
  /** Number of state slots (for profiles that keep detector slots in one array). */
  static readonly SLOTS = T_BLANK.length
  private readonly opts: ThresholdOptions

  /** `buf`/`offset`: use SLOTS numbers of an external array as state (initialise them with `blank()`). */
  constructor(opts: ThresholdOptions, buf?: number[], offset = 0) {
    super(T_BLANK, buf, offset)
    validateThreshold(opts)
    this.opts = opts
  }

  /** Initial slot values. */
  static blank(): number[] {
    return T_BLANK.slice()
  }

  /** Restores a detector from `toJSON()` output. */
  static fromJSON(opts: ThresholdOptions, data: unknown): ThresholdForDuration {
    return new ThresholdForDuration(opts, decodeSlots('threshold detector', data, T_BLANK.length), 0)
  }

  /** Feeds one sample; returns the event it causes, if any. */
  update(ts: number, value: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    if (!Number.isFinite(ts) || !Number.isFinite(value) || ts < (b[o + T_LAST] as number)) {
      b[o + T_IGNORED] = (b[o + T_IGNORED] as number) + 1
      return undefined
    }
    b[o + T_LAST] = ts
    const { above, below, durationMs } = this.opts
    const up = above !== undefined
    const threshold = (up ? above : below) as number
    // Signed distance past the threshold: > 0 is hot, whatever the direction.
    const d = up ? value - threshold : threshold - value
    const phase = b[o + T_PHASE] as number
    if (phase !== OPEN) {
      if (d <= 0) {
        b[o + T_PHASE] = IDLE
        return undefined
      }
      if (phase === IDLE) {
        b[o + T_PHASE] = PENDING
        b[o + T_START] = ts
        b[o + T_PEAK] = value
      } else if (up ? value > (b[o + T_PEAK] as number) : value < (b[o + T_PEAK] as number)) {
        b[o + T_PEAK] = value
      }
      const start = b[o + T_START] as number
      if (ts - start < durationMs) return undefined
      const peak = b[o + T_PEAK] as number
      b[o + T_PHASE] = OPEN
      b[o + T_CLEAR] = NaN
      b[o + T_EMIT] = ts
      b[o + T_REPORTED] = peak
      return { state: 'open', start, value, peak, threshold }
    }
    const start = b[o + T_START] as number
    if (up ? value > (b[o + T_PEAK] as number) : value < (b[o + T_PEAK] as number)) b[o + T_PEAK] = value
    const peak = b[o + T_PEAK] as number
    if (d <= -(this.opts.hysteresis ?? 0)) {
      let clear = b[o + T_CLEAR] as number
      if (Number.isNaN(clear)) b[o + T_CLEAR] = clear = ts
      if (ts - clear >= (this.opts.clearMs ?? 0)) {
        b[o + T_PHASE] = IDLE
        b[o + T_START] = NaN
        b[o + T_PEAK] = NaN
        b[o + T_CLEAR] = NaN
        b[o + T_EMIT] = NaN
        b[o + T_REPORTED] = NaN
        return { state: 'close', start, end: ts, value, peak, threshold }
      }
    } else {
      b[o + T_CLEAR] = NaN
    }
    const delta = this.opts.updateDelta
    if (delta === undefined) return undefined
    const grown = up ? peak - (b[o + T_REPORTED] as number) : (b[o + T_REPORTED] as number) - peak
    if (grown < delta || grown <= 0 || ts - (b[o + T_EMIT] as number) < (this.opts.updateIntervalMs ?? 0))
      return undefined
    b[o + T_EMIT] = ts
    b[o + T_REPORTED] = peak
    return { state: 'update', start, value, peak, threshold }
  }

  /** True while the alert is open. */
  get active(): boolean {
    return this.b[this.o + T_PHASE] === OPEN
  }
  /** True while the condition holds but has not lasted `durationMs` yet. */
  get pending(): boolean {
    return this.b[this.o + T_PHASE] === PENDING
  }
  /** Start of the current hot run (pending or open), else undefined. */
  get start(): number | undefined {
    const v = this.b[this.o + T_START] as number
    return this.b[this.o + T_PHASE] === IDLE || Number.isNaN(v) ? undefined : v
  }
  /** Peak of the current hot run, else undefined. */
  get peak(): number | undefined {
    const v = this.b[this.o + T_PEAK] as number
    return this.b[this.o + T_PHASE] === IDLE || Number.isNaN(v) ? undefined : v
  }
  get ignored(): number {
    return this.b[this.o + T_IGNORED] as number
  }
  /** The state slots, JSON-able. */
  toJSON(): unknown {
    return encodeSlots(this.b, this.o, T_BLANK.length)
  }
}

// ---- RangeCheck -------------------------------------------------------------------------------------------

export interface RangeOptions {
  min: number
  max: number
}

const R_PHASE = 0,
  R_START = 1,
  R_PEAK = 2,
  R_THRESHOLD = 3,
  R_LAST = 4,
  R_IGNORED = 5
const R_BLANK: readonly number[] = [IDLE, NaN, NaN, NaN, NaN, 0]

/**
 * Opens at the first sample outside [min, max] (threshold = the bound it crossed), closes at the first sample
 * back inside (end = its ts). `peak` is the sample farthest outside the range since it opened (the first wins
 * on ties). No updates.
 */
export class RangeCheck extends SlotView implements SampleDetector {
  static readonly SLOTS = R_BLANK.length
  private readonly opts: RangeOptions

  constructor(opts: RangeOptions, buf?: number[], offset = 0) {
    super(R_BLANK, buf, offset)
    checkFinite('range.min', opts.min, -Infinity, true)
    checkFinite('range.max', opts.max, -Infinity, true)
    if (opts.min > opts.max) throw new ConfigError('range.min', `must be <= range.max (${opts.max}), got ${opts.min}`)
    this.opts = opts
  }

  /** Initial slot values. */
  static blank(): number[] {
    return R_BLANK.slice()
  }

  /** Restores a detector from `toJSON()` output. */
  static fromJSON(opts: RangeOptions, data: unknown): RangeCheck {
    return new RangeCheck(opts, decodeSlots('range detector', data, R_BLANK.length), 0)
  }

  /** Feeds one sample; returns the event it causes, if any. */
  update(ts: number, value: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    if (!Number.isFinite(ts) || !Number.isFinite(value) || ts < (b[o + R_LAST] as number)) {
      b[o + R_IGNORED] = (b[o + R_IGNORED] as number) + 1
      return undefined
    }
    b[o + R_LAST] = ts
    const { min, max } = this.opts
    const outside = value < min || value > max
    const dist = value < min ? min - value : value - max
    if (b[o + R_PHASE] !== OPEN) {
      if (!outside) return undefined
      const threshold = value < min ? min : max
      b[o + R_PHASE] = OPEN
      b[o + R_START] = ts
      b[o + R_PEAK] = value
      b[o + R_THRESHOLD] = threshold
      return { state: 'open', start: ts, value, peak: value, threshold }
    }
    const p = b[o + R_PEAK] as number
    if (outside && dist > (p < min ? min - p : p - max)) b[o + R_PEAK] = value
    if (outside) return undefined
    const ev: DetectorEvent = {
      state: 'close',
      start: b[o + R_START] as number,
      end: ts,
      value,
      peak: b[o + R_PEAK] as number,
      threshold: b[o + R_THRESHOLD] as number,
    }
    b[o + R_PHASE] = IDLE
    b[o + R_START] = NaN
    b[o + R_PEAK] = NaN
    b[o + R_THRESHOLD] = NaN
    return ev
  }

  get active(): boolean {
    return this.b[this.o + R_PHASE] === OPEN
  }
  get ignored(): number {
    return this.b[this.o + R_IGNORED] as number
  }
  /** The state slots, JSON-able. */
  toJSON(): unknown {
    return encodeSlots(this.b, this.o, R_BLANK.length)
  }
}

// ---- RateOfChange -----------------------------------------------------------------------------------------

export interface RateOptions {
  /** Largest allowed |dv/dt|, in value units per second. */
  maxPerSecond: number
}

const C_PHASE = 0,
  C_START = 1,
  C_PEAK = 2,
  C_LAST = 3,
  C_VALUE = 4,
  C_IGNORED = 5
const C_BLANK: readonly number[] = [IDLE, NaN, NaN, NaN, NaN, 0]

/**
 * Rate between consecutive samples: (v - vPrev) / ((ts - tsPrev) / 1000). Opens at the first sample whose rate
 * exceeds `maxPerSecond` in absolute value (start = that sample's ts), closes at the first later sample whose
 * rate is within it. `value` and `peak` are rates (peak: the largest |rate| since open, signed). A sample with
 * the same ts as the previous one has no rate: it only replaces the previous value.
 */
export class RateOfChange extends SlotView implements SampleDetector {
  static readonly SLOTS = C_BLANK.length
  private readonly opts: RateOptions

  constructor(opts: RateOptions, buf?: number[], offset = 0) {
    super(C_BLANK, buf, offset)
    checkFinite('rate.maxPerSecond', opts.maxPerSecond, 0, true)
    this.opts = opts
  }

  /** Initial slot values. */
  static blank(): number[] {
    return C_BLANK.slice()
  }

  /** Restores a detector from `toJSON()` output. */
  static fromJSON(opts: RateOptions, data: unknown): RateOfChange {
    return new RateOfChange(opts, decodeSlots('rate detector', data, C_BLANK.length), 0)
  }

  /** Feeds one sample; returns the event it causes, if any. */
  update(ts: number, value: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    const last = b[o + C_LAST] as number
    if (!Number.isFinite(ts) || !Number.isFinite(value) || ts < last) {
      b[o + C_IGNORED] = (b[o + C_IGNORED] as number) + 1
      return undefined
    }
    const prev = b[o + C_VALUE] as number
    b[o + C_LAST] = ts
    b[o + C_VALUE] = value
    if (Number.isNaN(last) || ts === last) return undefined
    const rate = (value - prev) / ((ts - last) / 1000)
    const threshold = this.opts.maxPerSecond
    const hot = Math.abs(rate) > threshold
    if (b[o + C_PHASE] !== OPEN) {
      if (!hot) return undefined
      b[o + C_PHASE] = OPEN
      b[o + C_START] = ts
      b[o + C_PEAK] = rate
      return { state: 'open', start: ts, value: rate, peak: rate, threshold }
    }
    if (Math.abs(rate) > Math.abs(b[o + C_PEAK] as number)) b[o + C_PEAK] = rate
    if (hot) return undefined
    const ev: DetectorEvent = {
      state: 'close',
      start: b[o + C_START] as number,
      end: ts,
      value: rate,
      peak: b[o + C_PEAK] as number,
      threshold,
    }
    b[o + C_PHASE] = IDLE
    b[o + C_START] = NaN
    b[o + C_PEAK] = NaN
    return ev
  }

  get active(): boolean {
    return this.b[this.o + C_PHASE] === OPEN
  }
  get ignored(): number {
    return this.b[this.o + C_IGNORED] as number
  }
  /** The state slots, JSON-able. */
  toJSON(): unknown {
    return encodeSlots(this.b, this.o, C_BLANK.length)
  }
}

// ---- Flatline ---------------------------------------------------------------------------------------------

export interface FlatlineOptions {
  /** Values within this distance of the run's reference value count as unchanged. */
  epsilon: number
  /** Opens when the value stayed unchanged for at least this long. */
  durationMs: number
}

const F_PHASE = 0,
  F_REF_TS = 1,
  F_REF = 2,
  F_DEV = 3,
  F_LAST = 4,
  F_IGNORED = 5
const F_BLANK: readonly number[] = [IDLE, NaN, NaN, NaN, NaN, 0]

/**
 * A stuck sensor. The first sample of a run is its reference; each sample with |v - reference| <= epsilon
 * extends the run, and the run opens an alert at the first sample >= durationMs after the reference sample
 * (start = the reference sample's ts). A sample farther than epsilon closes it (end = its ts) and starts a new
 * run. `value` is the sample, `peak` the largest |v - reference| in the run, `threshold` is epsilon.
 */
export class Flatline extends SlotView implements SampleDetector {
  static readonly SLOTS = F_BLANK.length
  private readonly opts: FlatlineOptions

  constructor(opts: FlatlineOptions, buf?: number[], offset = 0) {
    super(F_BLANK, buf, offset)
    checkFinite('flatline.epsilon', opts.epsilon, 0, true)
    checkFinite('flatline.durationMs', opts.durationMs, 0, true)
    this.opts = opts
  }

  /** Initial slot values. */
  static blank(): number[] {
    return F_BLANK.slice()
  }

  /** Restores a detector from `toJSON()` output. */
  static fromJSON(opts: FlatlineOptions, data: unknown): Flatline {
    return new Flatline(opts, decodeSlots('flatline detector', data, F_BLANK.length), 0)
  }

  /** Feeds one sample; returns the event it causes, if any. */
  update(ts: number, value: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    if (!Number.isFinite(ts) || !Number.isFinite(value) || ts < (b[o + F_LAST] as number)) {
      b[o + F_IGNORED] = (b[o + F_IGNORED] as number) + 1
      return undefined
    }
    b[o + F_LAST] = ts
    const ref = b[o + F_REF] as number
    const eps = this.opts.epsilon
    const dev = Math.abs(value - ref)
    if (Number.isNaN(ref) || dev > eps) {
      const wasOpen = b[o + F_PHASE] === OPEN
      const ev: DetectorEvent | undefined = wasOpen
        ? {
            state: 'close',
            start: b[o + F_REF_TS] as number,
            end: ts,
            value,
            peak: b[o + F_DEV] as number,
            threshold: eps,
          }
        : undefined
      b[o + F_PHASE] = IDLE
      b[o + F_REF_TS] = ts
      b[o + F_REF] = value
      b[o + F_DEV] = 0
      // A zero duration opens on the run's first sample.
      return ev ?? this.maybeOpen(ts, value)
    }
    if (dev > (b[o + F_DEV] as number)) b[o + F_DEV] = dev
    if (b[o + F_PHASE] === OPEN) return undefined
    return this.maybeOpen(ts, value)
  }

  private maybeOpen(ts: number, value: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    const start = b[o + F_REF_TS] as number
    if (ts - start < this.opts.durationMs) return undefined
    b[o + F_PHASE] = OPEN
    return { state: 'open', start, value, peak: b[o + F_DEV] as number, threshold: this.opts.epsilon }
  }

  get active(): boolean {
    return this.b[this.o + F_PHASE] === OPEN
  }
  /** Reference value of the current run, else undefined. */
  get reference(): number | undefined {
    const v = this.b[this.o + F_REF] as number
    return Number.isNaN(v) ? undefined : v
  }
  get ignored(): number {
    return this.b[this.o + F_IGNORED] as number
  }
  /** The state slots, JSON-able. */
  toJSON(): unknown {
    return encodeSlots(this.b, this.o, F_BLANK.length)
  }
}

// ---- Staleness --------------------------------------------------------------------------------------------

export interface StalenessOptions {
  /** Silence (in the caller's clock, normally processing time) after which the entity is stale. */
  timeoutMs: number
}

const S_PHASE = 0,
  S_SEEN = 1,
  S_EVENT = 2,
  S_IGNORED = 3
const S_BLANK: readonly number[] = [IDLE, NaN, NaN, 0]

/**
 * Absence of data. The caller reports each reading with `seen(now, eventTs)` and arms a timer at `deadline()`
 * (in the `now` clock, normally processing time, so it is deterministic on replay); when the timer fires it
 * calls `fire(now)`, which opens (start = event time of the last reading, value = peak = silence so far,
 * threshold = timeoutMs) unless a reading came in since. The next `seen` closes it (end = that reading's
 * event time, value = the silence it ended).
 */
export class Staleness extends SlotView {
  static readonly SLOTS = S_BLANK.length
  private readonly opts: StalenessOptions

  constructor(opts: StalenessOptions, buf?: number[], offset = 0) {
    super(S_BLANK, buf, offset)
    checkFinite('staleness.timeoutMs', opts.timeoutMs, 0, true)
    this.opts = opts
  }

  /** Initial slot values. */
  static blank(): number[] {
    return S_BLANK.slice()
  }

  /** Restores a detector from `toJSON()` output. */
  static fromJSON(opts: StalenessOptions, data: unknown): Staleness {
    return new Staleness(opts, decodeSlots('staleness detector', data, S_BLANK.length), 0)
  }

  /** Records a reading at clock time `now` (event time `eventTs`); closes an open staleness alert. */
  seen(now: number, eventTs: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    const last = b[o + S_SEEN] as number
    if (!Number.isFinite(now) || !Number.isFinite(eventTs) || now < last) {
      b[o + S_IGNORED] = (b[o + S_IGNORED] as number) + 1
      return undefined
    }
    const start = b[o + S_EVENT] as number
    b[o + S_SEEN] = now
    b[o + S_EVENT] = eventTs
    if (b[o + S_PHASE] !== OPEN) return undefined
    b[o + S_PHASE] = IDLE
    const silence = now - last
    return { state: 'close', start, end: eventTs, value: silence, peak: silence, threshold: this.opts.timeoutMs }
  }

  /** When the entity becomes stale if nothing arrives (in the `now` clock); undefined before any reading. */
  deadline(): number | undefined {
    const last = this.b[this.o + S_SEEN] as number
    return Number.isNaN(last) ? undefined : last + this.opts.timeoutMs
  }

  /** The deadline timer fired at `now`: opens when the deadline has really passed and it is not open yet. */
  fire(now: number): DetectorEvent | undefined {
    const b = this.b,
      o = this.o
    const due = this.deadline()
    if (due === undefined || now < due || b[o + S_PHASE] === OPEN) return undefined
    b[o + S_PHASE] = OPEN
    const silence = now - (b[o + S_SEEN] as number)
    return {
      state: 'open',
      start: b[o + S_EVENT] as number,
      value: silence,
      peak: silence,
      threshold: this.opts.timeoutMs,
    }
  }

  get active(): boolean {
    return this.b[this.o + S_PHASE] === OPEN
  }
  get ignored(): number {
    return this.b[this.o + S_IGNORED] as number
  }
  /** The state slots, JSON-able. */
  toJSON(): unknown {
    return encodeSlots(this.b, this.o, S_BLANK.length)
  }
}
