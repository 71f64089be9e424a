/** Field records shared by panes and sessions: nine slots per field (count, sum, M2, min, max, first, last). See actors/windows/mod.ts for the semantics. */
import type { FieldAggregate, FieldValue } from '../types.js'
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

// ---- field records (shared by panes and sessions) ---------------------------------------------------------

/** Adds value x at event time ts to the field slots at `b` (sum-based Welford: exact sums, stable M2). */
export function accumulate(r: number[], b: number, x: number, ts: number): void {
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
export function mergeField(d: number[], db: number, s: readonly number[], sb: number): void {
  const nb = s[sb + F_COUNT] as number
  if (nb === 0) return
  const na = d[db + F_COUNT] as number
  if (na === 0) {
    for (let k = 0; k < FIELD_SLOTS; k++) d[db + k] = s[sb + k] as number
    return
  }
  const sa = d[db + F_SUM] as number,
    sbm = s[sb + F_SUM] as number
  const n = na + nb
  const delta = sbm / nb - sa / na
  d[db + F_M2] = (d[db + F_M2] as number) + (s[sb + F_M2] as number) + delta * delta * ((na * nb) / n)
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

export function fieldAggregate(r: readonly number[], b: number): FieldAggregate {
  const count = r[b + F_COUNT] as number
  const sum = r[b + F_SUM] as number
  const m2 = r[b + F_M2] as number
  // Rounding can leave M2 a hair below zero for constant series.
  const variance = m2 > 0 ? m2 / count : 0
  return {
    count,
    sum,
    min: r[b + F_MIN] as number,
    max: r[b + F_MAX] as number,
    mean: sum / count,
    variance,
    stddev: Math.sqrt(variance),
    first: r[b + F_FIRST] as number,
    last: r[b + F_LAST] as number,
  }
}

/** Adds one reading's fields and counters to a record whose counters start at `cb` and fields at `fb`. */
export function addReading(
  l: WindowLayout,
  r: number[],
  at: number,
  ts: number,
  fields: Readonly<Record<string, FieldValue | undefined>>,
  counts: Readonly<Record<string, number>> | undefined,
): void {
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
export function mergeRecord(l: WindowLayout, d: number[], da: number, s: readonly number[], sa: number): void {
  for (let k = 1; k < l.fieldBase; k++) d[da + k] = (d[da + k] as number) + (s[sa + k] as number)
  for (let i = 0; i < l.fields.length; i++) {
    const off = l.fieldBase + i * FIELD_SLOTS
    mergeField(d, da + off, s, sa + off)
  }
}

export function emptyRecord(l: WindowLayout, start: number): number[] {
  const r = new Array<number>(l.stride).fill(0)
  r[0] = start
  return r
}
