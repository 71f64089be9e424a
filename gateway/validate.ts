/**
 * Per-item validation of readings. Done by hand rather than by the route's JSON schema because one bad item
 * must not fail its batch: each item gets its own specific code, and the valid items are still published.
 */
import { ID_PATTERN, isEntityKind, type EntityKind, type FieldValue, type Reading } from '../actors/mod.js'
import type { GatewayConfig } from './config.js'
import type { GatewayErrorCode } from './errors.js'

/** A validated item: where it goes and what is published. */
export interface ValidItem {
  kind: EntityKind
  id: string
  reading: Reading
}
export interface ItemRejection {
  index: number
  code: GatewayErrorCode
  message: string
}
export type ItemResult = { ok: true; item: ValidItem } | { ok: false; code: GatewayErrorCode; message: string }

/** Placeholder the NDJSON parser puts where a line is not JSON, so that line alone is rejected. */
export class MalformedLine {
  constructor(readonly message: string) {}
}

/** Reading ids and idempotency keys become JetStream message ids (a header): printable ASCII, no spaces. */
export const RID_PATTERN = /^[\x21-\x7e]{1,128}$/
/** Field names become JSON keys in snapshots and column-like names downstream. */
export const FIELD_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/
const RESERVED_NAMES = new Set(['__proto__', 'constructor', 'prototype'])
/** Strings that producers write when they stringify a non-finite number; never a real value. */
const NON_FINITE_STRING = /^\s*[+-]?(nan|inf|infinity)\s*$/i

const BATCH_KEYS = new Set(['kind', 'id', 'ts', 'fields', 'profile', 'loc', 'rid'])
const ENTITY_KEYS = new Set(['ts', 'fields', 'profile', 'loc', 'rid'])

export type Limits = Pick<GatewayConfig, 'maxFieldsPerReading' | 'maxStringLength' | 'maxPastMs' | 'maxFutureMs'>

const fail = (code: GatewayErrorCode, message: string): ItemResult => ({ ok: false, code, message })
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof MalformedLine)

/**
 * Validates one item. `entity` is set on device routes (kind and id come from the path, and the item may not
 * name them); `profiles` maps each kind to the profiles this build knows.
 */
export function validateItem(
  raw: unknown,
  limits: Limits,
  now: number,
  profiles: ReadonlyMap<string, EntityKind>,
  entity?: { kind: EntityKind; id: string },
): ItemResult {
  if (raw instanceof MalformedLine) return fail('GW_ERR_ITEM_MALFORMED', raw.message)
  if (!isPlainObject(raw)) return fail('GW_ERR_ITEM_NOT_OBJECT', 'each item must be a JSON object')
  const allowed = entity ? ENTITY_KEYS : BATCH_KEYS
  for (const k of Object.keys(raw)) {
    if (!allowed.has(k))
      return fail('GW_ERR_ITEM_UNKNOWN_PROPERTY', `unknown property ${JSON.stringify(k.slice(0, 64))}`)
  }
  let kind: EntityKind
  let id: string
  if (entity) {
    ;({ kind, id } = entity)
  } else {
    if (typeof raw.kind !== 'string' || !isEntityKind(raw.kind))
      return fail('GW_ERR_KIND_INVALID', 'kind must be "sensor" or "vehicle"')
    if (typeof raw.id !== 'string' || !ID_PATTERN.test(raw.id))
      return fail('GW_ERR_ID_INVALID', `id must match ${String(ID_PATTERN)}`)
    kind = raw.kind
    id = raw.id
  }
  const ts = raw.ts
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
    return fail('GW_ERR_TS_INVALID', 'ts must be an integer number of ms since the Unix epoch')
  }
  if (ts < now - limits.maxPastMs)
    return fail('GW_ERR_TS_TOO_OLD', `ts is more than ${limits.maxPastMs} ms in the past`)
  if (ts > now + limits.maxFutureMs)
    return fail('GW_ERR_TS_IN_FUTURE', `ts is more than ${limits.maxFutureMs} ms in the future`)
  if (!isPlainObject(raw.fields)) return fail('GW_ERR_FIELDS_INVALID', 'fields must be an object')
  const names = Object.keys(raw.fields)
  if (names.length === 0) return fail('GW_ERR_FIELDS_INVALID', 'fields must name at least one field')
  if (names.length > limits.maxFieldsPerReading)
    return fail('GW_ERR_FIELDS_TOO_MANY', `at most ${limits.maxFieldsPerReading} fields per reading`)
  const fields: Record<string, FieldValue> = {}
  for (const name of names) {
    if (!FIELD_NAME_PATTERN.test(name) || RESERVED_NAMES.has(name)) {
      return fail(
        'GW_ERR_FIELD_NAME_INVALID',
        `field name ${JSON.stringify(name.slice(0, 64))} must match ${String(FIELD_NAME_PATTERN)}`,
      )
    }
    const v = raw.fields[name]
    if (typeof v === 'number') {
      // JSON.parse turns 1e400 into Infinity, so this also catches out-of-range numbers.
      if (!Number.isFinite(v)) return fail('GW_ERR_FIELD_NOT_FINITE', `fields.${name} must be a finite number`)
    } else if (typeof v === 'string') {
      if (v.length > limits.maxStringLength)
        return fail('GW_ERR_STRING_TOO_LONG', `fields.${name} is longer than ${limits.maxStringLength}`)
      if (NON_FINITE_STRING.test(v))
        return fail('GW_ERR_FIELD_NOT_FINITE', `fields.${name} is a non-finite number written as a string`)
    } else if (typeof v !== 'boolean') {
      return fail('GW_ERR_FIELD_VALUE_INVALID', `fields.${name} must be a number, boolean or string`)
    }
    Object.defineProperty(fields, name, { value: v, enumerable: true, writable: true, configurable: true })
  }
  const reading: Reading = { ts, fields }
  if (raw.profile !== undefined) {
    if (typeof raw.profile !== 'string' || profiles.get(raw.profile) !== kind) {
      return fail(
        'GW_ERR_PROFILE_INVALID',
        `profile must be one of the ${kind} profiles: ${[...profiles]
          .filter(([, k]) => k === kind)
          .map(([p]) => p)
          .join(', ')}`,
      )
    }
    reading.profile = raw.profile
  }
  if (raw.loc !== undefined) {
    const loc = raw.loc
    if (
      !isPlainObject(loc) ||
      Object.keys(loc).some((k) => k !== 'lat' && k !== 'lon') ||
      typeof loc.lat !== 'number' ||
      typeof loc.lon !== 'number' ||
      !(loc.lat >= -90 && loc.lat <= 90) ||
      !(loc.lon >= -180 && loc.lon <= 180)
    ) {
      return fail('GW_ERR_LOC_INVALID', 'loc must be {lat: -90..90, lon: -180..180}')
    }
    reading.loc = { lat: loc.lat, lon: loc.lon }
  }
  if (raw.rid !== undefined) {
    if (typeof raw.rid !== 'string' || !RID_PATTERN.test(raw.rid))
      return fail('GW_ERR_RID_INVALID', 'rid must be 1..128 printable ASCII characters without spaces')
    reading.rid = raw.rid
  }
  return { ok: true, item: { kind, id, reading } }
}

const VIN_VALUES: Record<string, number> = {
  A: 1,
  B: 2,
  C: 3,
  D: 4,
  E: 5,
  F: 6,
  G: 7,
  H: 8,
  J: 1,
  K: 2,
  L: 3,
  M: 4,
  N: 5,
  P: 7,
  R: 9,
  S: 2,
  T: 3,
  U: 4,
  V: 5,
  W: 6,
  X: 7,
  Y: 8,
  Z: 9,
}
const VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]

/** The ISO 3779 / 49 CFR 565 check digit of a 17-character VIN ('0'..'9' or 'X'). */
export function vinCheckDigit(vin: string): string {
  let sum = 0
  for (let i = 0; i < 17; i++) {
    const c = vin.charAt(i)
    const v = c >= '0' && c <= '9' ? c.charCodeAt(0) - 48 : (VIN_VALUES[c] ?? 0)
    sum += v * (VIN_WEIGHTS[i] ?? 0)
  }
  const r = sum % 11
  return r === 10 ? 'X' : String(r)
}

/**
 * Why a VIN is invalid, or undefined when it is valid: 17 characters of 0-9 and A-Z without I, O, Q (upper
 * case only: VINs are case-insensitive but entity ids are not, so one spelling avoids two actors for one car).
 * The check digit (position 9) is enforced when position 9 is a digit or X, as North American VINs require;
 * other manufacturers may put a letter there, and those VINs are accepted without a check.
 */
export function vinProblem(vin: string): string | undefined {
  if (vin.length !== 17) return 'a VIN has 17 characters'
  if (!/^[A-HJ-NPR-Z0-9]{17}$/.test(vin)) return 'a VIN uses 0-9 and upper-case A-Z except I, O and Q'
  const pos9 = vin.charAt(8)
  if (/[0-9X]/.test(pos9) && vinCheckDigit(vin) !== pos9)
    return `check digit (position 9) should be ${vinCheckDigit(vin)}`
  return undefined
}
