/** Snapshot helpers: the windows' state to and from its snapshot form. See actors/windows/mod.ts for the semantics. */
import { RuntimeErrorCodes, SnapshotError } from '../errors.js'
import { FIELD_SLOTS, F_COUNT, F_FIRST_TS, F_LAST_TS, type WindowLayout } from './layout.js'
import { emptyRecord } from './records.js'

// ---- snapshot helpers -------------------------------------------------------------------------------------

export function corrupt(what: string): SnapshotError {
  return new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, `window snapshot: ${what}`)
}

/** A number for JSON: non-finite values (an overflowing sum) become strings so they survive exactly. */
export function num(v: number): number | string {
  return Number.isFinite(v) ? v : String(v)
}

export function unnum(v: unknown, what: string): number {
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
export function encodeRecords(l: WindowLayout, recs: readonly number[]): Array<number | string | number[]> {
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
export function decodeRecords(
  l: WindowLayout,
  data: unknown,
  fields: readonly string[],
  counts: readonly string[],
): number[] {
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
      for (let k = 0; k < FIELD_SLOTS; k++)
        rec[l.fieldBase + i * FIELD_SLOTS + k] = src[fieldBase + j * FIELD_SLOTS + k] as number
    })
    for (const v of rec) out.push(v)
  }
  return out
}

export function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw corrupt(`${what} is not a list of names`)
  return v as string[]
}
