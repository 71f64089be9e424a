/**
 * Gateway error codes, each with its HTTP status (listed in gateway/README.md), the one table that maps runtime
 * `PW_*` codes to gateway codes, and the coded error class every route throws. Replies always have the shape
 * `{code, message, item?}` (plus `accepted`/`rejected` for a batch where every item was rejected).
 */
import pg from 'pg'
import { PitwallError, RuntimeErrorCodes, type RuntimeErrorCode } from '../actors/mod.js'

export const GW_ERR = {
  // request level
  GW_ERR_BODY_MALFORMED: 400,
  GW_ERR_REQUEST_MALFORMED: 400,
  GW_ERR_REQUEST_TIMEOUT: 408,
  GW_ERR_HEADERS_TOO_LARGE: 431,
  GW_ERR_BODY_INVALID: 400,
  GW_ERR_BATCH_EMPTY: 400,
  GW_ERR_BATCH_REJECTED: 400,
  GW_ERR_IDEMPOTENCY_KEY_INVALID: 400,
  GW_ERR_PARAMS_INVALID: 400,
  GW_ERR_VIN_INVALID: 400,
  GW_ERR_QUERY_INVALID: 400,
  GW_ERR_CURSOR_INVALID: 400,
  GW_ERR_CUSTOMER_UNKNOWN: 400,
  GW_ERR_BODY_TOO_LARGE: 413,
  GW_ERR_BATCH_TOO_LARGE: 413,
  GW_ERR_MEDIA_TYPE: 415,
  GW_ERR_ENCODING_UNSUPPORTED: 415,
  GW_ERR_ROUTE_NOT_FOUND: 404,
  GW_ERR_ENTITY_UNKNOWN: 404,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_CONFLICT: 409,
  // alarm workflow (alarms.ts)
  GW_ERR_ALERT_UNKNOWN: 404,
  GW_ERR_ALERT_CLEARED: 409,
  GW_ERR_ALERT_ACKNOWLEDGED: 409,
  // notifications (notify.ts)
  GW_ERR_SUBSCRIPTION_UNKNOWN: 404,
  GW_ERR_DELIVERY_UNKNOWN: 404,
  GW_ERR_WEBHOOK_URL_INVALID: 400,
  GW_ERR_WEBHOOK_URL_FORBIDDEN: 400,
  GW_ERR_SITE_UNKNOWN: 404,
  GW_ERR_SITE_BUSY: 409,
  GW_ERR_SITE_UNREACHABLE: 502,
  GW_ERR_UNAVAILABLE: 503,
  GW_ERR_NOT_READY: 503,
  GW_ERR_QUERY_FAILED: 502,
  GW_ERR_INTERNAL: 500,
  GW_ERR_UPGRADE_REQUIRED: 426,
  // auth
  GW_ERR_UNAUTHENTICATED: 401,
  GW_ERR_FORBIDDEN: 403,
  GW_ERR_FORBIDDEN_ENTITY: 403,
  GW_ERR_CREDENTIAL_UNKNOWN: 404,
  GW_ERR_RATE_LIMITED: 429,
  // item level (inside `rejected[]`; the status is the one the request gets when every item has it)
  GW_ERR_ITEM_MALFORMED: 400,
  GW_ERR_ITEM_NOT_OBJECT: 400,
  GW_ERR_ITEM_UNKNOWN_PROPERTY: 400,
  GW_ERR_KIND_INVALID: 400,
  GW_ERR_ID_INVALID: 400,
  GW_ERR_TS_INVALID: 400,
  GW_ERR_TS_TOO_OLD: 400,
  GW_ERR_TS_IN_FUTURE: 400,
  GW_ERR_FIELDS_INVALID: 400,
  GW_ERR_FIELDS_TOO_MANY: 400,
  GW_ERR_FIELD_NAME_INVALID: 400,
  GW_ERR_FIELD_VALUE_INVALID: 400,
  GW_ERR_FIELD_NOT_FINITE: 400,
  GW_ERR_STRING_TOO_LONG: 400,
  GW_ERR_LOC_INVALID: 400,
  GW_ERR_PROFILE_INVALID: 400,
  GW_ERR_RID_INVALID: 400,
  GW_ERR_RID_DUPLICATE: 400,
  // a fleet/site-scoped person's item for an entity outside the scope (or not registered: the same answer)
  GW_ERR_OUT_OF_SCOPE: 404,
} as const
export type GatewayErrorCode = keyof typeof GW_ERR

/** Runtime code -> gateway code (and so HTTP status). Codes not listed are internal errors (500). */
export const PW_TO_GW: Readonly<Partial<Record<RuntimeErrorCode, GatewayErrorCode>>> = Object.freeze({
  [RuntimeErrorCodes.ENTITY_UNKNOWN]: 'GW_ERR_ENTITY_UNKNOWN',
  [RuntimeErrorCodes.QUERY_TIMEOUT]: 'GW_ERR_UNAVAILABLE',
  [RuntimeErrorCodes.SHUTTING_DOWN]: 'GW_ERR_UNAVAILABLE',
  [RuntimeErrorCodes.NATS_UNREACHABLE]: 'GW_ERR_UNAVAILABLE',
  [RuntimeErrorCodes.STREAM_MISSING]: 'GW_ERR_UNAVAILABLE',
  [RuntimeErrorCodes.QUERY_FAILED]: 'GW_ERR_QUERY_FAILED',
  [RuntimeErrorCodes.READING_INVALID]: 'GW_ERR_BODY_INVALID',
})

/** A coded gateway error: HTTP status from GW_ERR, whether a retry may help, and (503) when to retry. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode
  readonly status: number
  readonly item: string | undefined
  readonly retryable: boolean
  constructor(code: GatewayErrorCode, message: string, opts: { item?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GatewayError'
    this.code = code
    this.status = GW_ERR[code]
    this.item = opts.item
    this.retryable = this.status === 503 || this.status === 429
  }
  toJSON(): { code: string; message: string; item?: string } {
    return this.item === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, item: this.item }
  }
}

/** Socket error codes of a dependency that cannot be reached (PostgreSQL refused, reset, timed out). */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])
/**
 * node-postgres reports a lost, refused or timed-out connection as a plain Error with no code; these are its
 * messages (pg/lib/client.js, pg-pool/index.js). They mean "the database did not answer", never a bad query.
 */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed and is not queryable|timeout expired)/

/**
 * Whether an error says PostgreSQL is unavailable (as opposed to rejecting the query): a socket error, one of
 * node-postgres's connection errors, or a SQLSTATE of class 08 (connection exception), 53 (insufficient
 * resources: too many connections, out of memory, disk full), 57P01..57P03 (shutting down, starting up) or
 * 57014 (query cancelled, e.g. by statement_timeout).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  if (err instanceof pg.DatabaseError) {
    const c = err.code ?? ''
    return c.startsWith('08') || c.startsWith('53') || c === '57P01' || c === '57P02' || c === '57P03' || c === '57014'
  }
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true
  if (err instanceof AggregateError) return err.errors.some(isDatabaseUnavailable)
  return code === undefined && PG_CONNECTION_MESSAGES.test(err.message)
}

/**
 * PostgreSQL refusing a value the client sent: text cannot hold NUL (22021 character_not_in_repertoire) and
 * jsonb refuses `\u0000` (22P05 untranslatable_character). The routes check for NUL before any query; this is
 * the net under those checks, so no client input can end in a 500.
 */
export function isDatabaseInputRejected(err: unknown): boolean {
  return err instanceof pg.DatabaseError && (err.code === '22021' || err.code === '22P05')
}

/**
 * Any error -> GatewayError: runtime errors through PW_TO_GW, PostgreSQL unavailable -> GW_ERR_UNAVAILABLE (the
 * reply says only that; the cause, which may name hosts, is logged), everything else is internal.
 */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  if (err instanceof PitwallError) {
    return new GatewayError(PW_TO_GW[err.code] ?? 'GW_ERR_INTERNAL', err.message, { cause: err })
  }
  if (isDatabaseUnavailable(err))
    return new GatewayError('GW_ERR_UNAVAILABLE', 'the database is unavailable; retry later', { cause: err })
  return new GatewayError('GW_ERR_INTERNAL', 'internal error', { cause: err })
}
