/**
 * Page cursors, written once for every list of the API. A cursor is opaque to clients: the key of the last item of
 * a page, as base64url of its JSON (queries, registry, notification deliveries), or of the id itself (geofences,
 * whose ids are already text). A cursor this API did not return is refused with GW_ERR_CURSOR_INVALID (400) before
 * any SQL runs; keys never hold a NUL (PostgreSQL text cannot, and it would fail the query instead).
 */
import { GatewayError } from './errors.js'

const invalid = (): GatewayError =>
  new GatewayError('GW_ERR_CURSOR_INVALID', 'cursor is not one this API returned', { item: 'querystring.cursor' })

/** The cursor of a page whose last key is `key` (JSON-able). */
export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

/**
 * The key in `raw` (undefined when there is none), as `check` accepts it: `check` returns the key when the decoded
 * JSON has the shape this list returns, else undefined. Anything else throws GW_ERR_CURSOR_INVALID.
 */
export function decodeCursor<K>(raw: string | undefined, check: (v: unknown) => K | undefined): K | undefined {
  if (raw === undefined) return undefined
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  const k = check(v)
  if (k === undefined) throw invalid()
  return k
}

/** The cursor of a page whose last key is the text `id`. */
export function encodeTextCursor(id: string): string {
  return Buffer.from(id).toString('base64url')
}

/** The text key in `raw` (undefined when there is none); it must match `pattern`, else GW_ERR_CURSOR_INVALID. */
export function decodeTextCursor(raw: string | undefined, pattern: RegExp): string | undefined {
  if (raw === undefined) return undefined
  const id = Buffer.from(raw, 'base64url').toString('utf8')
  if (!pattern.test(id)) throw invalid()
  return id
}

/** A text key as this API returns it. */
export const isTextKey = (x: unknown): x is string => typeof x === 'string' && !x.includes('\u0000')

/** `v.<field>` when `v` is an object with that field, else undefined. */
export const fieldOf = (v: unknown, field: string): unknown =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[field] : undefined
