/**
 * Event-time windows: tumbling and sliding (`EventWindows`, several definitions sharing one store) and session
 * windows (`SessionWindows`). Pure, no I/O; the crash test's reference computation follows the semantics below.
 *
 * Windows (all intervals half-open, times in ms of event time):
 * - Tumbling, size W: [floor(ts/W)*W, +W). Sliding, size W, slide S (W a multiple of S): every [k*S, k*S+W)
 *   with k*S <= ts < k*S+W, i.e. W/S windows per reading. A tumbling window is a sliding one with S = W.
 * - Each definition i has a horizon `closedThrough[i]` = max(every watermark passed to `advance`, end of every
 *   window `flushAll` closed); it starts at -Infinity and never decreases. A window with end <= closedThrough
 *   is CLOSED and never reopens; a window with end > closedThrough is OPEN.
 * - `add(ts, fields, counts)`: the reading goes into each of its windows that is open. Bit i of the result is
 *   set when the reading is LATE for definition i: all of its windows of that definition are closed (its last
 *   window, start floor(ts/S)*S, has end <= closedThrough[i]; a non-finite ts is late everywhere). The caller
 *   calls `advance(watermark)` before `add` with the watermark that includes the reading (the runtime raises
 *   max event time before the handler runs), so "closed" means exactly "end <= current watermark, or flushed".
 * - `advance(wm)`: closes, per definition, every window with closedThrough < end <= wm that holds at least one
 *   accepted reading, and returns them (idleClosed false). `flushAll()` closes every open window holding a
 *   reading (idleClosed true). Both return windows sorted by (end, start, definition order), each exactly once.
 *   Windows without readings are never emitted.
 * - Aggregates per configured numeric field over the window's accepted readings: count, sum, min, max, mean =
 *   sum/count, population variance, stddev, first/last by event time (ties: the earlier arrival is first, the
 *   later arrival is last). A value that is not a finite number is skipped for that field only. Counts: `readings`
 *   (accepted readings) plus each configured counter (the sum of what `add` was given for it).
 *
 * Store: readings are aggregated into panes of P = gcd of all slides; a window is the merge of its W/P panes,
 * so a reading costs one pane update whatever the number of windows, and a 5-minute sliding window costs five
 * 1-minute panes, not five window copies. A pane is dropped when every window containing it is closed. Panes
 * live in one flat `number[]` (unboxed doubles): [start, readings, counters..., fields x 9 slots], or, when every
 * reading of the pane carried every field, a compact record with one first/last time per pane, counters only when
 * non-zero, and no last values once no open window can end on the pane (see "compact pane records").
 */
import { ConfigError, RuntimeErrorCodes, SnapshotError } from './errors.js'
import type { FieldAggregate, FieldValue, WindowBody } from './types.js'

/** A tumbling (no `slideMs`, or slide = size) or sliding window definition. */
export interface WindowSpec {
  name: string
  sizeMs: number
  slideMs?: number
}

export interface WindowOptions {
  windows: readonly WindowSpec[]
  /** Numeric fields to aggregate (others in a reading are ignored). */
  fields: readonly string[]
  /** Extra per-window counters, summed from what `add` is given (e.g. `alerts`, `failures`). */
  counts?: readonly string[]
}

// Per-field slots in a record.
const F_COUNT = 0, F_SUM = 1, F_M2 = 2, F_MIN = 3, F_MAX = 4, F_FIRST = 5, F_FIRST_TS = 6, F_LAST = 7, F_LAST_TS = 8
const FIELD_SLOTS = 9

/** The compiled, frozen form of `WindowOptions`, shared by every actor of a profile configuration. */
export interface WindowLayout {
  readonly specs: readonly { readonly name: string; readonly size: number; readonly slide: number }[]
  readonly fields: readonly string[]
  readonly counts: readonly string[]
  /** Pane size: gcd of the slides. */
  readonly pane: number
  /** Numbers per pane record. */
  readonly stride: number
  /** Offset of the first field's slots in a record. */
  readonly fieldBase: number
  /** Signature of the window definitions, checked on restore. */
  readonly signature: string
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

function checkNames(setting: string, names: readonly string[]): void {
  const seen = new Set<string>()
  for (const n of names) {
    if (typeof n !== 'string' || n.length === 0) throw new ConfigError(setting, 'names must be non-empty strings')
    if (seen.has(n)) throw new ConfigError(setting, `duplicate name ${n}`)
    seen.add(n)
  }
}

/** Validates window options and compiles them into a layout (compile once per configuration). */
export function compileWindows(opts: WindowOptions): WindowLayout {
  if (!Array.isArray(opts.windows) || opts.windows.length === 0) throw new ConfigError('windows', 'at least one window is required')
  // Late results are a bit mask per definition.
  if (opts.windows.length > 30) throw new ConfigError('windows', 'at most 30 window definitions')
  checkNames('windows[].name', opts.windows.map((w) => w.name))
  const counts = opts.counts ?? []
  checkNames('fields', opts.fields)
  checkNames('counts', ['readings', ...counts])
  let pane = 0
  const specs = opts.windows.map((w) => {
    const size = w.sizeMs
    const slide = w.slideMs ?? w.sizeMs
    if (!Number.isSafeInteger(size) || size <= 0) throw new ConfigError(`windows.${w.name}.sizeMs`, `must be a positive integer, got ${size}`)
    if (!Number.isSafeInteger(slide) || slide <= 0 || size % slide !== 0) {
      throw new ConfigError(`windows.${w.name}.slideMs`, `must be a positive integer dividing sizeMs (${size}), got ${slide}`)
    }
    pane = gcd(slide, pane)
    return Object.freeze({ name: w.name, size, slide })
  })
  const fieldBase = 2 + counts.length
  return Object.freeze({
    specs: Object.freeze(specs),
    fields: Object.freeze([...opts.fields]),
    counts: Object.freeze([...counts]),
    pane,
    stride: fieldBase + FIELD_SLOTS * opts.fields.length,
    fieldBase,
    signature: specs.map((s) => `${s.name}:${s.size}:${s.slide}`).join(','),
  })
}

// ---- field records (shared by panes and sessions) ---------------------------------------------------------

/** Adds value x at event time ts to the field slots at `b` (sum-based Welford: exact sums, stable M2). */
function accumulate(r: number[], b: number, x: number, ts: number): void {
  const c = r[b + F_COUNT] as number
  if (c === 0) {
    r[b + F_COUNT] = 1
    r[b + F_SUM] = x
    r[b + F_M2] = 0
    r[b + F_MIN] = x
    r[b + F_MAX] = x
    r[b + F_FIRST] = x
    r[b + F_FIRST_TS] = ts
    r[b + F_LAST] = x
    r[b + F_LAST_TS] = ts
    return
  }
  const sum = r[b + F_SUM] as number
  const sum1 = sum + x
  r[b + F_M2] = (r[b + F_M2] as number) + (x - sum / c) * (x - sum1 / (c + 1))
  r[b + F_COUNT] = c + 1
  r[b + F_SUM] = sum1
  if (x < (r[b + F_MIN] as number)) r[b + F_MIN] = x
  if (x > (r[b + F_MAX] as number)) r[b + F_MAX] = x
  // Strict for first, non-strict for last: on equal event time the earlier arrival is first, the later last.
  if (ts < (r[b + F_FIRST_TS] as number)) {
    r[b + F_FIRST] = x
    r[b + F_FIRST_TS] = ts
  }
  if (ts >= (r[b + F_LAST_TS] as number)) {
    r[b + F_LAST] = x
    r[b + F_LAST_TS] = ts
  }
}

/**
 * Merges the field slots at `sb` of `s` into those at `db` of `d` (Chan et al.). `s` holds readings that
 * arrived after or lie in time after those of `d`, so on equal times `d` keeps first and `s` wins last.
 */
function mergeField(d: number[], db: number, s: readonly number[], sb: number): void {
  const nb = s[sb + F_COUNT] as number
  if (nb === 0) return
  const na = d[db + F_COUNT] as number
  if (na === 0) {
    for (let k = 0; k < FIELD_SLOTS; k++) d[db + k] = s[sb + k] as number
    return
  }
  const sa = d[db + F_SUM] as number, sbm = s[sb + F_SUM] as number
  const n = na + nb
  const delta = sbm / nb - sa / na
  d[db + F_M2] = (d[db + F_M2] as number) + (s[sb + F_M2] as number) + delta * delta * (na * nb / n)
  d[db + F_COUNT] = n
  d[db + F_SUM] = sa + sbm
  if ((s[sb + F_MIN] as number) < (d[db + F_MIN] as number)) d[db + F_MIN] = s[sb + F_MIN] as number
  if ((s[sb + F_MAX] as number) > (d[db + F_MAX] as number)) d[db + F_MAX] = s[sb + F_MAX] as number
  if ((s[sb + F_FIRST_TS] as number) < (d[db + F_FIRST_TS] as number)) {
    d[db + F_FIRST] = s[sb + F_FIRST] as number
    d[db + F_FIRST_TS] = s[sb + F_FIRST_TS] as number
  }
  if ((s[sb + F_LAST_TS] as number) >= (d[db + F_LAST_TS] as number)) {
    d[db + F_LAST] = s[sb + F_LAST] as number
    d[db + F_LAST_TS] = s[sb + F_LAST_TS] as number
  }
}

function fieldAggregate(r: readonly number[], b: number): FieldAggregate {
  const count = r[b + F_COUNT] as number
  const sum = r[b + F_SUM] as number
  const m2 = r[b + F_M2] as number
  // Rounding can leave M2 a hair below zero for constant series.
  const variance = m2 > 0 ? m2 / count : 0
  return {
    count, sum, min: r[b + F_MIN] as number, max: r[b + F_MAX] as number, mean: sum / count, variance,
    stddev: Math.sqrt(variance), first: r[b + F_FIRST] as number, last: r[b + F_LAST] as number,
  }
}

/** Adds one reading's fields and counters to a record whose counters start at `cb` and fields at `fb`. */
function addReading(l: WindowLayout, r: number[], at: number, ts: number,
  fields: Readonly<Record<string, FieldValue | undefined>>, counts: Readonly<Record<string, number>> | undefined): void {
  r[at + 1] = (r[at + 1] as number) + 1
  if (counts !== undefined) {
    for (let i = 0; i < l.counts.length; i++) {
      const v = counts[l.counts[i] as string]
      if (typeof v === 'number' && Number.isFinite(v)) r[at + 2 + i] = (r[at + 2 + i] as number) + v
    }
  }
  for (let i = 0; i < l.fields.length; i++) {
    const x = fields[l.fields[i] as string]
    if (typeof x === 'number' && Number.isFinite(x)) accumulate(r, at + l.fieldBase + i * FIELD_SLOTS, x, ts)
  }
}

/** Merges record `s` at `sa` into record `d` at `da` (counters and fields; not the start slot). */
function mergeRecord(l: WindowLayout, d: number[], da: number, s: readonly number[], sa: number): void {
  for (let k = 1; k < l.fieldBase; k++) d[da + k] = (d[da + k] as number) + (s[sa + k] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const off = l.fieldBase + i * FIELD_SLOTS
    mergeField(d, da + off, s, sa + off)
  }
}

function emptyRecord(l: WindowLayout, start: number): number[] {
  const r = new Array<number>(l.stride).fill(0)
  r[0] = start
  return r
}

// ---- compact pane records (EventWindows only) --------------------------------------------------------------
//
// A pane in which every reading carried every field (each field's count equals `readings`, so all fields share
// the first and last event time) is stored compactly: [start, tag, firstTs, lastTs, counters (only when one is
// non-zero)..., fields x 6 (sum, M2, min, max, first, last)], tag = -1 - (readings * 4 + noLast * 2 +
// hasCounters). A full record has tag = readings >= 0. Both give the same aggregates bit for bit: the compact
// update runs the same arithmetic as `accumulate` with count = readings, and `expandRecord` rebuilds the full
// record exactly. `noLast` (lastTs and the last values dropped, see `EventWindows.prune`) marks a pane whose
// last values no open window can use any more: every open window holding it also holds the next pane, which
// has every field; its full form then carries last = first, lastTs = firstTs (later panes win last anyway).
const C_SUM = 0, C_M2 = 1, C_MIN = 2, C_MAX = 3, C_FIRST = 4, C_LAST = 5

interface CompactShape { readings: number; noLast: number; hasCounts: number; slots: number; fieldsAt: number }

function compactShape(l: WindowLayout, p: readonly number[], at: number): CompactShape {
  const v = -1 - (p[at + 1] as number)
  const hasCounts = v % 2, noLast = ((v - hasCounts) / 2) % 2
  return { readings: (v - hasCounts - 2 * noLast) / 4, noLast, hasCounts, slots: 6 - noLast,
    fieldsAt: at + 4 - noLast + hasCounts * l.counts.length }
}

function compactTag(readings: number, noLast: number, hasCounts: number): number {
  return -1 - (readings * 4 + noLast * 2 + hasCounts)
}

/** Length of the record at `at` (full or compact). */
function recordLength(l: WindowLayout, p: readonly number[], at: number): number {
  if ((p[at + 1] as number) >= 0) return l.stride
  const c = compactShape(l, p, at)
  return c.fieldsAt - at + c.slots * l.fields.length
}

/** Writes the full form of the record at `at` of `p` into `d` at `da`. */
function expandRecord(l: WindowLayout, p: readonly number[], at: number, d: number[], da: number): void {
  if ((p[at + 1] as number) >= 0) {
    for (let k = 0; k < l.stride; k++) d[da + k] = p[at + k] as number
    return
  }
  const c = compactShape(l, p, at)
  const firstTs = p[at + 2] as number, lastTs = c.noLast === 1 ? firstTs : p[at + 3] as number
  d[da] = p[at] as number
  d[da + 1] = c.readings
  for (let i = 0; i < l.counts.length; i++) d[da + 2 + i] = c.hasCounts === 1 ? p[at + 4 - c.noLast + i] as number : 0
  for (let i = 0; i < l.fields.length; i++) {
    const s = c.fieldsAt + i * c.slots, b = da + l.fieldBase + i * FIELD_SLOTS
    d[b + F_COUNT] = c.readings
    d[b + F_SUM] = p[s + C_SUM] as number
    d[b + F_M2] = p[s + C_M2] as number
    d[b + F_MIN] = p[s + C_MIN] as number
    d[b + F_MAX] = p[s + C_MAX] as number
    d[b + F_FIRST] = p[s + C_FIRST] as number
    d[b + F_FIRST_TS] = firstTs
    d[b + F_LAST] = p[s + (c.noLast === 1 ? C_FIRST : C_LAST)] as number
    d[b + F_LAST_TS] = lastTs
  }
}

/** The shortest exact form of full record `r` at `at`: compact when every field counted every reading. */
function compactRecord(l: WindowLayout, r: readonly number[], at: number): number[] {
  const readings = r[at + 1] as number
  const fb = at + l.fieldBase
  let ok = readings > 0 && readings < 2 ** 50 && Number.isSafeInteger(readings) && l.fields.length > 0
  for (let i = 0; ok && i < l.fields.length; i++) {
    const b = fb + i * FIELD_SLOTS
    ok = r[b + F_COUNT] === readings && Object.is(r[b + F_FIRST_TS], r[fb + F_FIRST_TS]) && Object.is(r[b + F_LAST_TS], r[fb + F_LAST_TS])
  }
  if (!ok) return r.slice(at, at + l.stride)
  let hasCounts = 0
  for (let i = 0; i < l.counts.length; i++) if (!Object.is(r[at + 2 + i], 0)) hasCounts = 1
  const out = [r[at] as number, compactTag(readings, 0, hasCounts), r[fb + F_FIRST_TS] as number, r[fb + F_LAST_TS] as number]
  if (hasCounts === 1) for (let i = 0; i < l.counts.length; i++) out.push(r[at + 2 + i] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const b = fb + i * FIELD_SLOTS
    out.push(r[b + F_SUM] as number, r[b + F_M2] as number, r[b + F_MIN] as number, r[b + F_MAX] as number,
      r[b + F_FIRST] as number, r[b + F_LAST] as number)
  }
  return out
}

/** The compact record at `at` without its last values (lastTs and each field's last). */
function dropLast(l: WindowLayout, p: readonly number[], at: number): number[] {
  const c = compactShape(l, p, at)
  const out = [p[at] as number, compactTag(c.readings, 1, c.hasCounts), p[at + 2] as number]
  for (let i = at + 4; i < c.fieldsAt; i++) out.push(p[i] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const s = c.fieldsAt + i * c.slots
    for (let k = 0; k < C_LAST; k++) out.push(p[s + k] as number)
  }
  return out
}

/**
 * Adds a reading to the compact record at `at` in place when it keeps the record compact (every field a finite
 * number, and counters either all zero or already stored); returns false (changing nothing) otherwise.
 */
function addCompact(l: WindowLayout, p: number[], at: number, ts: number,
  fields: Readonly<Record<string, FieldValue | undefined>>, counts: Readonly<Record<string, number>> | undefined): boolean {
  if ((p[at + 1] as number) >= 0) return false
  const { readings: c, noLast, hasCounts, slots, fieldsAt } = compactShape(l, p, at)
  for (let i = 0; i < l.fields.length; i++) {
    const x = fields[l.fields[i] as string]
    if (!(typeof x === 'number' && Number.isFinite(x))) return false
  }
  if (hasCounts === 0 && counts !== undefined) {
    for (let i = 0; i < l.counts.length; i++) {
      const x = counts[l.counts[i] as string]
      if (typeof x === 'number' && Number.isFinite(x) && !Object.is(0 + x, 0)) return false
    }
  }
  if (c + 1 >= 2 ** 50) return false
  p[at + 1] = compactTag(c + 1, noLast, hasCounts)
  if (hasCounts === 1 && counts !== undefined) {
    const cb = at + 4 - noLast
    for (let i = 0; i < l.counts.length; i++) {
      const x = counts[l.counts[i] as string]
      if (typeof x === 'number' && Number.isFinite(x)) p[cb + i] = (p[cb + i] as number) + x
    }
  }
  // Strict for first, non-strict for last (as in `accumulate`); every field shares the reading's time.
  const upFirst = ts < (p[at + 2] as number), upLast = noLast === 0 && ts >= (p[at + 3] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const x = fields[l.fields[i] as string] as number
    const b = fieldsAt + i * slots
    const sum = p[b + C_SUM] as number
    const sum1 = sum + x
    p[b + C_M2] = (p[b + C_M2] as number) + (x - sum / c) * (x - sum1 / (c + 1))
    p[b + C_SUM] = sum1
    if (x < (p[b + C_MIN] as number)) p[b + C_MIN] = x
    if (x > (p[b + C_MAX] as number)) p[b + C_MAX] = x
    if (upFirst) p[b + C_FIRST] = x
    if (upLast) p[b + C_LAST] = x
  }
  if (upFirst) p[at + 2] = ts
  if (upLast) p[at + 3] = ts
  return true
}

function body(l: WindowLayout, name: string, start: number, end: number, r: readonly number[], at: number, idleClosed: boolean): WindowBody {
  const fields: Record<string, FieldAggregate> = {}
  for (let i = 0; i < l.fields.length; i++) {
    const b = at + l.fieldBase + i * FIELD_SLOTS
    if ((r[b + F_COUNT] as number) > 0) fields[l.fields[i] as string] = fieldAggregate(r, b)
  }
  const counts: Record<string, number> = { readings: r[at + 1] as number }
  for (let i = 0; i < l.counts.length; i++) counts[l.counts[i] as string] = r[at + 2 + i] as number
  return { window: name, start, end, fields, counts, idleClosed }
}

// ---- snapshot helpers -------------------------------------------------------------------------------------

function corrupt(what: string): SnapshotError {
  return new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `window snapshot: ${what}`)
}

/** A number for JSON: non-finite values (an overflowing sum) become strings so they survive exactly. */
function num(v: number): number | string {
  return Number.isFinite(v) ? v : String(v)
}

function unnum(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v
  if (v === 'Infinity') return Infinity
  if (v === '-Infinity') return -Infinity
  if (v === 'NaN') return NaN
  throw corrupt(`${what} is not a number`)
}

/**
 * Encodes records (flat, `stride` each) compactly: first/last event times as offsets from the record's start
 * (13-digit timestamps become short numbers); an offset that would not add back exactly is kept as `[ts]`.
 */
function encodeRecords(l: WindowLayout, recs: readonly number[]): Array<number | string | number[]> {
  const out: Array<number | string | number[]> = new Array(recs.length)
  for (let at = 0; at < recs.length; at += l.stride) {
    const start = recs[at] as number
    for (let k = 0; k < l.stride; k++) {
      const v = recs[at + k] as number
      const rel = (k - l.fieldBase) % FIELD_SLOTS
      if (k >= l.fieldBase && (rel === F_FIRST_TS || rel === F_LAST_TS)) {
        const off = v - start
        // An empty field's times are unused and zero: keep them zero.
        if (recs[at + k - rel + F_COUNT] === 0) out[at + k] = 0
        else out[at + k] = start + off === v ? off : [v]
      } else {
        out[at + k] = num(v)
      }
    }
  }
  return out
}

/** Decodes `encodeRecords` output written with fields `fields` / counters `counts`, remapped to layout `l`. */
function decodeRecords(l: WindowLayout, data: unknown, fields: readonly string[], counts: readonly string[]): number[] {
  const fieldBase = 2 + counts.length
  const stride = fieldBase + FIELD_SLOTS * fields.length
  if (!Array.isArray(data) || data.length % stride !== 0) throw corrupt('records are not a multiple of the record size')
  const out: number[] = []
  for (let at = 0; at < data.length; at += stride) {
    const start = unnum(data[at], 'record start')
    const src = new Array<number>(stride)
    src[0] = start
    for (let k = 1; k < stride; k++) {
      const v: unknown = data[at + k]
      const rel = (k - fieldBase) % FIELD_SLOTS
      if (k >= fieldBase && (rel === F_FIRST_TS || rel === F_LAST_TS)) {
        if (Array.isArray(v) && v.length === 1) src[k] = unnum(v[0], 'event time')
        else if (src[k - rel + F_COUNT] === 0) src[k] = 0
        else src[k] = start + unnum(v, 'event time offset')
      } else {
        src[k] = unnum(v, 'aggregate')
      }
    }
    // Remap by name: fields or counters added to the configuration start empty, removed ones are dropped.
    const rec = emptyRecord(l, start)
    rec[1] = src[1] as number
    l.counts.forEach((c, i) => {
      const j = counts.indexOf(c)
      if (j >= 0) rec[2 + i] = src[2 + j] as number
    })
    l.fields.forEach((f, i) => {
      const j = fields.indexOf(f)
      if (j < 0) return
      for (let k = 0; k < FIELD_SLOTS; k++) rec[l.fieldBase + i * FIELD_SLOTS + k] = src[fieldBase + j * FIELD_SLOTS + k] as number
    })
    for (const v of rec) out.push(v)
  }
  return out
}

function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw corrupt(`${what} is not a list of names`)
  return v as string[]
}

// ---- EventWindows -----------------------------------------------------------------------------------------

/** JSON form of `EventWindows`. */
export interface EventWindowsJSON {
  /** Window definitions signature (`name:size:slide,...`). */
  k: string
  f: string[]
  c: string[]
  /** closedThrough per definition (null = -Infinity). */
  h: Array<number | null>
  /** Pane records, flat. */
  p: Array<number | string | number[]>
}

/** Tumbling and sliding windows of one entity, several definitions sharing one pane store. */
export class EventWindows {
  private readonly l: WindowLayout
  /**
   * closedThrough per definition (`specs.length` numbers), then the pane records sorted by start, `l.stride`
   * numbers each: one array per entity, as every array costs a header and a pointer on top of its numbers.
   */
  private p: number[]

  /** `layout`: from `compileWindows` (or options, compiled here; prefer sharing one layout). */
  constructor(layout: WindowLayout | WindowOptions) {
    this.l = 'stride' in layout ? layout : compileWindows(layout)
    this.p = new Array<number>(this.l.specs.length).fill(-Infinity)
  }

  get layout(): WindowLayout {
    return this.l
  }

  /** The horizon of definition `i` (index or name): windows ending at or before it are closed. */
  closedThrough(i: number | string): number {
    const idx = typeof i === 'number' ? i : this.l.specs.findIndex((s) => s.name === i)
    const v = idx >= 0 && idx < this.l.specs.length ? this.p[idx] : undefined
    if (v === undefined) throw new ConfigError('windows', `no window definition ${String(i)}`)
    return v
  }

  /** Number of panes held (memory and tests). */
  get paneCount(): number {
    let n = 0
    for (let at = this.l.specs.length; at < this.p.length; at += recordLength(this.l, this.p, at)) n++
    return n
  }

  /**
   * Adds a reading to each of its open windows. Returns a bit mask: bit i set = late for definition i (all its
   * windows there are closed). 0 = accepted by every definition.
   */
  add(ts: number, fields: Readonly<Record<string, FieldValue | undefined>>, counts?: Readonly<Record<string, number>>): number {
    const l = this.l
    let late = 0
    for (let i = 0; i < l.specs.length; i++) {
      const s = l.specs[i] as WindowLayout['specs'][number]
      // The reading's last window ends latest: if that one is closed, all of them are.
      if (Math.floor(ts / s.slide) * s.slide + s.size <= (this.p[i] as number)) late |= 1 << i
    }
    if (late === (1 << l.specs.length) - 1 || !Number.isFinite(ts)) return (1 << l.specs.length) - 1
    // Shared panes are safe: every window of a pane that is closed has already been emitted, so data added now
    // only reaches windows that are still open, and those contain the reading.
    const start = Math.floor(ts / l.pane) * l.pane
    const p = this.p
    let at = l.specs.length
    while (at < p.length && (p[at] as number) < start) at += recordLength(l, p, at)
    if (at < p.length && p[at] === start) {
      if (addCompact(l, p, at, ts, fields, counts)) return late
      if ((p[at + 1] as number) >= 0) {
        addReading(l, p, at, ts, fields, counts)
        return late
      }
      // A compact pane that this reading does not fit: rebuild it in full (or compact with counters).
      const full = emptyRecord(l, start)
      expandRecord(l, p, at, full, 0)
      addReading(l, full, 0, ts, fields, counts)
      this.p = p.slice(0, at).concat(compactRecord(l, full, 0), p.slice(at + recordLength(l, p, at)))
      return late
    }
    // A new pane; a new array of exact size: push/splice would leave spare capacity in every actor.
    const rec = emptyRecord(l, start)
    addReading(l, rec, 0, ts, fields, counts)
    this.p = p.slice(0, at).concat(compactRecord(l, rec, 0), p.slice(at))
    return late
  }

  /** Closes the windows the watermark passed; returns them sorted by (end, start, definition). */
  advance(watermark: number): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) {
      const h0 = this.p[i] as number
      if (!(watermark > h0)) continue
      this.collect(i, h0, watermark, false, out)
      this.p[i] = watermark
    }
    if (out.length === 0) return out
    this.prune()
    return sortWindows(out, this.l)
  }

  /** Closes every open window that holds a reading (idle timeout); returns them sorted like `advance`. */
  flushAll(): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) {
      const before = out.length
      this.collect(i, this.p[i] as number, Infinity, true, out)
      for (let j = before; j < out.length; j++) {
        const end = (out[j] as WindowBody).end
        if (end > (this.p[i] as number)) this.p[i] = end
      }
    }
    this.prune()
    return sortWindows(out, this.l)
  }

  /** The open windows with their partial aggregates (for live queries); changes nothing. */
  openWindows(): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) this.collect(i, this.p[i] as number, Infinity, false, out)
    return sortWindows(out, this.l)
  }

  /** Windows of definition i with h0 < end <= h1 that contain at least one pane, appended to `out`. */
  private collect(i: number, h0: number, h1: number, idle: boolean, out: WindowBody[]): void {
    const l = this.l, p = this.p
    const { name, size, slide } = l.specs[i] as WindowLayout['specs'][number]
    // Window ends are multiples of the slide (size is one). For a pane at ps the windows containing it end in
    // [ceil((ps + P - size) / slide) * slide + size, floor(ps / slide) * slide + size].
    const lowest = Math.floor(h0 / slide) * slide + slide
    const highest = Math.floor(h1 / slide) * slide
    // The common case on every reading: the watermark moved but crossed no slide boundary.
    if (lowest > highest) return
    let ends: number[] | undefined
    for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
      const ps = p[at] as number
      const lo = Math.max(Math.ceil((ps + l.pane - size) / slide) * slide + size, lowest)
      const hi = Math.min(Math.floor(ps / slide) * slide + size, highest)
      for (let e = lo; e <= hi; e += slide) {
        ends ??= []
        if (!ends.includes(e)) ends.push(e)
      }
    }
    if (ends === undefined) return
    ends.sort((a, b) => a - b)
    const acc = emptyRecord(l, 0)
    const full = emptyRecord(l, 0)
    for (const end of ends) {
      const start = end - size
      acc.fill(0)
      for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
        const ps = p[at] as number
        if (ps < start || ps >= end) continue
        if ((p[at + 1] as number) >= 0) {
          mergeRecord(l, acc, 0, p, at)
        } else {
          expandRecord(l, p, at, full, 0)
          mergeRecord(l, acc, 0, full, 0)
        }
      }
      out.push(body(l, name, start, end, acc, 0, idle))
    }
  }

  /**
   * Drops panes whose every window is closed in every definition, and the last values of each compact pane P
   * followed by a compact pane Q once every window holding P but not Q is closed (for each definition, the
   * window end floor(Q.start / slide) * slide, the latest such end, is at or below its horizon): every open
   * window holding P then holds Q, whose every field has a later reading, so P's last values are never used.
   */
  private prune(): void {
    const l = this.l, p = this.p, first = l.specs.length
    let keep = first
    while (keep < p.length && this.paneClosed(p[keep] as number)) keep += recordLength(l, p, keep)
    let parts: number[][] | undefined
    let from = keep
    for (let at = keep; at < p.length;) {
      const next = at + recordLength(l, p, at)
      if (next >= p.length) break
      if ((p[at + 1] as number) < 0 && compactShape(l, p, at).noLast === 0 && (p[next + 1] as number) < 0 && this.lastUnused(p[next] as number)) {
        parts ??= [p.slice(0, first)]
        parts.push(p.slice(from, at), dropLast(l, p, at))
        from = next
      }
      at = next
    }
    if (parts) {
      parts.push(p.slice(from))
      this.p = ([] as number[]).concat(...parts)
    } else if (keep > first) {
      this.p = p.slice(0, first).concat(p.slice(keep))
    }
  }

  /** True when every window ending at or before `qs` is closed in every definition. */
  private lastUnused(qs: number): boolean {
    const specs = this.l.specs
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i] as WindowLayout['specs'][number]
      if (Math.floor(qs / s.slide) * s.slide > (this.p[i] as number)) return false
    }
    return true
  }

  private paneClosed(ps: number): boolean {
    const specs = this.l.specs
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i] as WindowLayout['specs'][number]
      if (Math.floor(ps / s.slide) * s.slide + s.size > (this.p[i] as number)) return false
    }
    return true
  }

  /** The pane records in full form, flat (`stride` each). */
  private fullRecords(): number[] {
    const l = this.l, p = this.p
    const out: number[] = []
    for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
      const at2 = out.length
      for (let k = 0; k < l.stride; k++) out.push(0)
      expandRecord(l, p, at, out, at2)
    }
    return out
  }

  /** Compact JSON form (restores exactly with `fromJSON`). */
  toJSON(): EventWindowsJSON {
    return {
      k: this.l.signature,
      f: [...this.l.fields],
      c: [...this.l.counts],
      h: this.p.slice(0, this.l.specs.length).map((v) => (Number.isFinite(v) ? v : null)),
      p: encodeRecords(this.l, this.fullRecords()),
    }
  }

  /**
   * Restores from `toJSON()` output. The window definitions must be the same (else SnapshotError); fields and
   * counters are matched by name, so adding or removing one in the configuration keeps the others.
   */
  static fromJSON(layout: WindowLayout | WindowOptions, data: unknown): EventWindows {
    const w = new EventWindows(layout)
    const l = w.l
    const d = data as Partial<EventWindowsJSON> | null
    if (d === null || typeof d !== 'object') throw corrupt('not an object')
    if (d.k !== l.signature) {
      throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_VERSION,
        `window snapshot has definitions ${String(d.k)}, the configuration has ${l.signature}`)
    }
    if (!Array.isArray(d.h) || d.h.length !== l.specs.length) throw corrupt('horizons do not match the definitions')
    d.h.forEach((v, i) => {
      if (v !== null && !(typeof v === 'number' && Number.isFinite(v))) throw corrupt('horizon is not a number')
      w.p[i] = v ?? -Infinity
    })
    const recs = decodeRecords(l, d.p, stringList(d.f, 'fields'), stringList(d.c, 'counts'))
    for (let at = 0; at < recs.length; at += l.stride) {
      const ps = recs[at] as number
      if (ps % l.pane !== 0 || (at > 0 && ps <= (recs[at - l.stride] as number))) throw corrupt('panes are not aligned and sorted')
    }
    const parts: number[][] = [w.p]
    for (let at = 0; at < recs.length; at += l.stride) parts.push(compactRecord(l, recs, at))
    w.p = ([] as number[]).concat(...parts)
    w.prune()
    return w
  }
}

function sortWindows(out: WindowBody[], l: WindowLayout): WindowBody[] {
  if (out.length < 2) return out
  const order = new Map(l.specs.map((s, i) => [s.name, i]))
  return out.sort((a, b) => a.end - b.end || a.start - b.start || (order.get(a.window) ?? 0) - (order.get(b.window) ?? 0))
}

// ---- SessionWindows ---------------------------------------------------------------------------------------

/**
 * Session windows with gap G. Semantics:
 * - A session holds readings chained by event-time gaps < G; its window is [first ts, last ts + G).
 * - `closedThrough` = max(every watermark passed to `advance`, end of every session `flushAll` closed). A
 *   session whose end <= closedThrough is closed and never reopens.
 * - `add(ts)`: the reading joins every open session with start - G < ts < end, merging them into one; if it
 *   joins none it starts a new session, unless ts + G <= closedThrough, in which case it is LATE (returns true).
 *   A reading within G of a session that is already closed starts a new session: closed sessions stay closed.
 * - `advance(wm)` closes sessions with end <= wm; `flushAll()` closes all; both sorted by (end, start).
 * - Aggregates and counters: as for `EventWindows`.
 * Records: [start, readings, counters..., fields x 9, last ts] (the session's end is last ts + G).
 */
export class SessionWindows {
  private readonly l: WindowLayout
  private readonly gap: number
  private readonly name: string
  private h = -Infinity
  /** Session records sorted by start; each is `stride + 1` numbers (the last one is the session's last ts). */
  private s: number[] = []

  constructor(opts: { name: string; gapMs: number; fields: readonly string[]; counts?: readonly string[] }) {
    if (!Number.isFinite(opts.gapMs) || opts.gapMs <= 0) throw new ConfigError(`sessions.${opts.name}.gapMs`, `must be > 0, got ${opts.gapMs}`)
    const base = compileWindows({ windows: [{ name: opts.name, sizeMs: 1 }], fields: opts.fields, counts: opts.counts ?? [] })
    this.l = Object.freeze({ ...base, stride: base.stride + 1, signature: `${opts.name}:session:${opts.gapMs}` })
    this.gap = opts.gapMs
    this.name = opts.name
  }

  get closedThrough(): number {
    return this.h
  }
  /** Number of open sessions. */
  get sessionCount(): number {
    return this.s.length / this.l.stride
  }

  /** Adds a reading; returns true when it is late (see the class doc) and was not added. */
  add(ts: number, fields: Readonly<Record<string, FieldValue | undefined>>, counts?: Readonly<Record<string, number>>): boolean {
    if (!Number.isFinite(ts)) return true
    const l = this.l, st = l.stride, g = this.gap
    let first = -1, last = -1
    for (let at = 0; at < this.s.length; at += st) {
      const start = this.s[at] as number, end = (this.s[at + st - 1] as number) + g
      if (start - g < ts && ts < end) {
        if (first < 0) first = at
        last = at
      }
    }
    if (first < 0) {
      if (ts + g <= this.h) return true
      const rec = emptyRecord(l, ts)
      rec[st - 1] = ts
      let at = 0
      while (at < this.s.length && (this.s[at] as number) <= ts) at += st
      this.s = this.s.slice(0, at).concat(rec, this.s.slice(at))
      first = last = at
    } else if (last > first) {
      // The reading bridges sessions first..last (contiguous in start order): merge them into the first.
      for (let at = first + st; at <= last; at += st) {
        mergeRecord(l, this.s, first, this.s, at)
        if ((this.s[at + st - 1] as number) > (this.s[first + st - 1] as number)) this.s[first + st - 1] = this.s[at + st - 1] as number
      }
      this.s = this.s.slice(0, first + st).concat(this.s.slice(last + st))
    }
    addReading(l, this.s, first, ts, fields, counts)
    if (ts < (this.s[first] as number)) this.s[first] = ts
    if (ts > (this.s[first + st - 1] as number)) this.s[first + st - 1] = ts
    return false
  }

  /** Closes sessions whose end <= watermark; returns them sorted by (end, start). */
  advance(watermark: number): WindowBody[] {
    if (!(watermark > this.h)) return []
    this.h = watermark
    return this.close((end) => end <= watermark, false)
  }

  /** Closes every open session (idle timeout). */
  flushAll(): WindowBody[] {
    const out = this.close(() => true, true)
    for (const w of out) if (w.end > this.h) this.h = w.end
    return out
  }

  /** Open sessions with partial aggregates. */
  openWindows(): WindowBody[] {
    return this.collect(() => true, false).out
  }

  private close(pred: (end: number) => boolean, idle: boolean): WindowBody[] {
    const { out, keep } = this.collect(pred, idle)
    if (out.length > 0) this.s = keep
    return out
  }

  private collect(pred: (end: number) => boolean, idle: boolean): { out: WindowBody[]; keep: number[] } {
    const l = this.l, st = l.stride
    const out: WindowBody[] = []
    const keep: number[] = []
    for (let at = 0; at < this.s.length; at += st) {
      const start = this.s[at] as number, end = (this.s[at + st - 1] as number) + this.gap
      if (pred(end)) out.push(body(l, this.name, start, end, this.s, at, idle))
      else for (let k = 0; k < st; k++) keep.push(this.s[at + k] as number)
    }
    return { out: out.sort((a, b) => a.end - b.end || a.start - b.start), keep }
  }

  /** Compact JSON form (restores exactly with `fromJSON`). */
  toJSON(): { k: string; f: string[]; c: string[]; h: number | null; p: Array<number | string | number[]>; t: number[] } {
    const st = this.l.stride
    const inner = { ...this.l, stride: st - 1 }
    const recs: number[] = []
    const lastTs: number[] = []
    for (let at = 0; at < this.s.length; at += st) {
      for (let k = 0; k < st - 1; k++) recs.push(this.s[at + k] as number)
      lastTs.push(this.s[at + st - 1] as number)
    }
    return {
      k: this.l.signature, f: [...this.l.fields], c: [...this.l.counts], h: Number.isFinite(this.h) ? this.h : null,
      p: encodeRecords(inner, recs), t: lastTs,
    }
  }

  /** Restores from `toJSON()` output (same name and gap, else SnapshotError). */
  static fromJSON(opts: { name: string; gapMs: number; fields: readonly string[]; counts?: readonly string[] }, data: unknown): SessionWindows {
    const w = new SessionWindows(opts)
    const d = data as { k?: unknown; f?: unknown; c?: unknown; h?: unknown; p?: unknown; t?: unknown } | null
    if (d === null || typeof d !== 'object') throw corrupt('not an object')
    if (d.k !== w.l.signature) throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_VERSION, `session snapshot ${String(d.k)} is not ${w.l.signature}`)
    if (d.h !== null && !(typeof d.h === 'number' && Number.isFinite(d.h))) throw corrupt('horizon is not a number')
    const inner = { ...w.l, stride: w.l.stride - 1 }
    const recs = decodeRecords(inner, d.p, stringList(d.f, 'fields'), stringList(d.c, 'counts'))
    const n = recs.length / inner.stride
    if (!Array.isArray(d.t) || d.t.length !== n) throw corrupt('session end times do not match the sessions')
    const t = d.t as unknown[]
    const s: number[] = []
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < inner.stride; k++) s.push(recs[i * inner.stride + k] as number)
      s.push(unnum(t[i], 'session last ts'))
    }
    w.h = d.h ?? -Infinity
    w.s = s
    return w
  }
}
