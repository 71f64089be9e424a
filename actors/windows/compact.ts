/** Compact pane records (EventWindows only): one first/last time per pane, counters only when non-zero. See actors/windows/mod.ts for the semantics. */
import type { FieldAggregate, FieldValue, WindowBody } from '../types.js'
import {
  FIELD_SLOTS,
  F_COUNT,
  F_FIRST,
  F_FIRST_TS,
  F_LAST,
  F_LAST_TS,
  F_M2,
  F_MAX,
  F_MIN,
  F_SUM,
  type WindowLayout,
} from './layout.js'
import { fieldAggregate } from './records.js'

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
export const C_SUM = 0,
  C_M2 = 1,
  C_MIN = 2,
  C_MAX = 3,
  C_FIRST = 4,
  C_LAST = 5

export interface CompactShape {
  readings: number
  noLast: number
  hasCounts: number
  slots: number
  fieldsAt: number
}

export function compactShape(l: WindowLayout, p: readonly number[], at: number): CompactShape {
  const v = -1 - (p[at + 1] as number)
  const hasCounts = v % 2,
    noLast = ((v - hasCounts) / 2) % 2
  return {
    readings: (v - hasCounts - 2 * noLast) / 4,
    noLast,
    hasCounts,
    slots: 6 - noLast,
    fieldsAt: at + 4 - noLast + hasCounts * l.counts.length,
  }
}

export function compactTag(readings: number, noLast: number, hasCounts: number): number {
  return -1 - (readings * 4 + noLast * 2 + hasCounts)
}

/** Length of the record at `at` (full or compact). */
export function recordLength(l: WindowLayout, p: readonly number[], at: number): number {
  if ((p[at + 1] as number) >= 0) return l.stride
  const c = compactShape(l, p, at)
  return c.fieldsAt - at + c.slots * l.fields.length
}

/** Writes the full form of the record at `at` of `p` into `d` at `da`. */
export function expandRecord(l: WindowLayout, p: readonly number[], at: number, d: number[], da: number): void {
  if ((p[at + 1] as number) >= 0) {
    for (let k = 0; k < l.stride; k++) d[da + k] = p[at + k] as number
    return
  }
  const c = compactShape(l, p, at)
  const firstTs = p[at + 2] as number,
    lastTs = c.noLast === 1 ? firstTs : (p[at + 3] as number)
  d[da] = p[at] as number
  d[da + 1] = c.readings
  for (let i = 0; i < l.counts.length; i++) d[da + 2 + i] = c.hasCounts === 1 ? (p[at + 4 - c.noLast + i] as number) : 0
  for (let i = 0; i < l.fields.length; i++) {
    const s = c.fieldsAt + i * c.slots,
      b = da + l.fieldBase + i * FIELD_SLOTS
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
export function compactRecord(l: WindowLayout, r: readonly number[], at: number): number[] {
  const readings = r[at + 1] as number
  const fb = at + l.fieldBase
  let ok = readings > 0 && readings < 2 ** 50 && Number.isSafeInteger(readings) && l.fields.length > 0
  for (let i = 0; ok && i < l.fields.length; i++) {
    const b = fb + i * FIELD_SLOTS
    ok =
      r[b + F_COUNT] === readings &&
      Object.is(r[b + F_FIRST_TS], r[fb + F_FIRST_TS]) &&
      Object.is(r[b + F_LAST_TS], r[fb + F_LAST_TS])
  }
  if (!ok) return r.slice(at, at + l.stride)
  let hasCounts = 0
  for (let i = 0; i < l.counts.length; i++) if (!Object.is(r[at + 2 + i], 0)) hasCounts = 1
  const out = [
    r[at] as number,
    compactTag(readings, 0, hasCounts),
    r[fb + F_FIRST_TS] as number,
    r[fb + F_LAST_TS] as number,
  ]
  if (hasCounts === 1) for (let i = 0; i < l.counts.length; i++) out.push(r[at + 2 + i] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const b = fb + i * FIELD_SLOTS
    out.push(
      r[b + F_SUM] as number,
      r[b + F_M2] as number,
      r[b + F_MIN] as number,
      r[b + F_MAX] as number,
      r[b + F_FIRST] as number,
      r[b + F_LAST] as number,
    )
  }
  return out
}

/** The compact record at `at` without its last values (lastTs and each field's last). */
export function dropLast(l: WindowLayout, p: readonly number[], at: number): number[] {
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
export function addCompact(
  l: WindowLayout,
  p: number[],
  at: number,
  ts: number,
  fields: Readonly<Record<string, FieldValue | undefined>>,
  counts: Readonly<Record<string, number>> | undefined,
): boolean {
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
  const upFirst = ts < (p[at + 2] as number),
    upLast = noLast === 0 && ts >= (p[at + 3] as number)
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

export function body(
  l: WindowLayout,
  name: string,
  start: number,
  end: number,
  r: readonly number[],
  at: number,
  idleClosed: boolean,
): WindowBody {
  const fields: Record<string, FieldAggregate> = {}
  for (let i = 0; i < l.fields.length; i++) {
    const b = at + l.fieldBase + i * FIELD_SLOTS
    if ((r[b + F_COUNT] as number) > 0) fields[l.fields[i] as string] = fieldAggregate(r, b)
  }
  const counts: Record<string, number> = { readings: r[at + 1] as number }
  for (let i = 0; i < l.counts.length; i++) counts[l.counts[i] as string] = r[at + 2 + i] as number
  return { window: name, start, end, fields, counts, idleClosed }
}
