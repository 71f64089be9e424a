/**
 * Decodes and checks one OUT message. Anything the tables cannot hold faithfully (missing fields, wrong
 * types, non-finite numbers, NUL characters, times out of range) is refused here with a reason, so a bad
 * message is set aside instead of failing the batch it travels in.
 */
import { ALERT_STATES, OUTPUT_TYPES, SEVERITIES, type Output, type OutputType } from '../actors/mod.js'

export type Decoded = { ok: true; output: Output } | { ok: false; reason: string }

// Event times are epoch milliseconds between 1970 and the end of year 9999 (both ends fit timestamptz).
const MAX_MS = 253_402_300_799_999
const POSITION_REASONS = ['sample', 'trip_start', 'stop', 'trip_end']

type Obj = Record<string, unknown>

class Invalid {
  constructor(readonly reason: string) {}
}

/** Parses `data` as an Output and checks every field the projector writes. */
export function decodeOutput(data: Uint8Array): Decoded {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')
  // PostgreSQL text and jsonb cannot store U+0000.
  if (text.includes('\\u0000')) return { ok: false, reason: 'contains a NUL character (\\u0000)' }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` }
  }
  try {
    return { ok: true, output: checkOutput(v) }
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.reason }
    throw err
  }
}

function checkOutput(v: unknown): Output {
  const o = obj(v, 'output')
  const type = str(o, 'type')
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) throw new Invalid(`type: unknown output type '${type}'`)
  str(o, 'id')
  str(o, 'kind')
  str(o, 'entity')
  str(o, 'profile')
  str(o, 'site')
  ms(o, 'ts')
  int(o, 'seq')
  int(o, 'partition')
  int(o, 'token')
  if ((o.partition as number) > 2_147_483_647) throw new Invalid('partition: out of range')
  checkBody(type as OutputType, obj(o.body, 'body'))
  return v as Output
}

function checkBody(type: OutputType, b: Obj): void {
  switch (type) {
    case 'window':
      str(b, 'window')
      ms(b, 'start')
      ms(b, 'end')
      obj(b.fields, 'body.fields')
      obj(b.counts, 'body.counts')
      if (typeof b.idleClosed !== 'boolean') throw new Invalid('body.idleClosed: must be a boolean')
      return
    case 'alert':
      str(b, 'alertId')
      str(b, 'type')
      str(b, 'explanation')
      ms(b, 'start')
      num(b, 'value')
      num(b, 'threshold')
      oneOf(b, 'severity', SEVERITIES)
      oneOf(b, 'state', ALERT_STATES)
      if (b.end !== undefined) ms(b, 'end')
      if (b.details !== undefined) obj(b.details, 'body.details')
      return
    case 'score':
      str(b, 'name')
      num(b, 'value')
      obj(b.factors, 'body.factors')
      return
    case 'recommendation':
      str(b, 'action')
      str(b, 'reason')
      num(b, 'score')
      obj(b.factors, 'body.factors')
      return
    case 'lap':
      int(b, 'lap')
      ms(b, 'start')
      ms(b, 'end')
      int(b, 'lapTimeMs')
      int(b, 'samples')
      for (const k of ['minSpeed', 'avgSpeed', 'maxSpeed', 'maxBrakeTemp', 'maxTyreTemp']) num(b, k)
      if ((b.lap as number) > 2_147_483_647 || (b.samples as number) > 2_147_483_647) {
        throw new Invalid('body.lap/samples: out of range')
      }
      return
    case 'late':
      ms(b, 'readingTs')
      ms(b, 'watermark')
      int(b, 'readingSeq')
      obj(b.fields, 'body.fields')
      return
    case 'fence':
      int(b, 'partition')
      int(b, 'token')
      str(b, 'owner')
      if (b.segments !== undefined) {
        if (!Array.isArray(b.segments) || b.segments.length > 10_000)
          throw new Invalid('body.segments: must be an array')
        for (const [i, s] of (b.segments as unknown[]).entries()) {
          const seg = obj(s, `body.segments[${i}]`)
          int(seg, 'epoch')
          str(seg, 'site')
          int(seg, 'from')
          if (seg.to !== undefined) int(seg, 'to')
        }
      }
      return
    case 'position':
      num(b, 'lat')
      num(b, 'lon')
      int(b, 'readingSeq')
      oneOf(b, 'reason', POSITION_REASONS)
      if (Math.abs(b.lat as number) > 90 || Math.abs(b.lon as number) > 180)
        throw new Invalid('body.lat/lon: out of range')
      for (const k of ['speed', 'heading']) if (b[k] !== null && b[k] !== undefined) num(b, k)
      return
  }
}

function obj(v: unknown, name: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Invalid(`${name}: must be an object`)
  return v as Obj
}
function str(o: Obj, k: string): string {
  const v = o[k]
  if (typeof v !== 'string' || v.length === 0) throw new Invalid(`${k}: must be a non-empty string`)
  return v
}
function num(o: Obj, k: string): void {
  const v = o[k]
  // JSON.parse turns 1e400 into Infinity, which float8 would store but JSON could not give back.
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Invalid(`${k}: must be a finite number`)
}
function int(o: Obj, k: string): void {
  const v = o[k]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Invalid(`${k}: must be an integer >= 0`)
}
function ms(o: Obj, k: string): void {
  int(o, k)
  if ((o[k] as number) > MAX_MS) throw new Invalid(`${k}: epoch milliseconds out of range`)
}
function oneOf(o: Obj, k: string, allowed: readonly string[]): void {
  if (!allowed.includes(o[k] as string)) throw new Invalid(`${k}: must be one of ${allowed.join(', ')}`)
}
