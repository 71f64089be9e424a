/**
 * Errors of the actor runtime. Every error has a stable `code` (listed in docs/errors.md), an optional
 * `cause`, and says whether retrying the same operation can help. Errors that cross the wire (live state
 * queries) are rebuilt into the same class on the caller's side by `fromWire`.
 */
export const RuntimeErrorCodes = {
  CONFIG_INVALID: 'PW_CONFIG_INVALID',
  DEPLOYMENT_MISMATCH: 'PW_DEPLOYMENT_MISMATCH',
  NATS_UNREACHABLE: 'PW_NATS_UNREACHABLE',
  PG_UNREACHABLE: 'PW_PG_UNREACHABLE',
  STREAM_MISSING: 'PW_STREAM_MISSING',
  STREAM_INCOMPATIBLE: 'PW_STREAM_INCOMPATIBLE',
  FENCED: 'PW_FENCED',
  LEASE_LOST: 'PW_LEASE_LOST',
  SNAPSHOT_CORRUPT: 'PW_SNAPSHOT_CORRUPT',
  SNAPSHOT_VERSION: 'PW_SNAPSHOT_VERSION',
  READING_INVALID: 'PW_READING_INVALID',
  PROFILE_UNKNOWN: 'PW_PROFILE_UNKNOWN',
  ENTITY_UNKNOWN: 'PW_ENTITY_UNKNOWN',
  QUERY_TIMEOUT: 'PW_QUERY_TIMEOUT',
  QUERY_FAILED: 'PW_QUERY_FAILED',
  SHUTTING_DOWN: 'PW_SHUTTING_DOWN',
  OUTPUT_FAILED: 'PW_OUTPUT_FAILED',
  CHECKPOINT_FAILED: 'PW_CHECKPOINT_FAILED',
} as const
export type RuntimeErrorCode = (typeof RuntimeErrorCodes)[keyof typeof RuntimeErrorCodes]

/** Base class: a coded error that knows whether a retry may succeed. */
export class PitwallError extends Error {
  readonly code: RuntimeErrorCode
  readonly retryable: boolean
  constructor(code: RuntimeErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.retryable = opts.retryable ?? false
  }
  /** The shape sent across NATS (header `Pitwall-Error-Code` + this JSON body). */
  toWire(): { code: string; message: string; retryable: boolean } {
    return { code: this.code, message: this.message, retryable: this.retryable }
  }
}

/** A setting is missing, malformed or contradicts another; the message names the setting. */
export class ConfigError extends PitwallError {
  readonly setting: string
  constructor(
    setting: string,
    message: string,
    cause?: unknown,
    code:
      | typeof RuntimeErrorCodes.CONFIG_INVALID
      | typeof RuntimeErrorCodes.DEPLOYMENT_MISMATCH = RuntimeErrorCodes.CONFIG_INVALID,
  ) {
    super(code, `${setting}: ${message}`, { cause })
    this.setting = setting
  }
}

/**
 * The streams, buckets or database this process reached were claimed by another deployment
 * (actors/deployment.ts): the process was pointed at the wrong NATS or PostgreSQL, or its deployment
 * setting is wrong. `where` names the asset that holds the recorded identity.
 */
export class DeploymentMismatchError extends ConfigError {
  readonly recorded: string
  readonly given: string
  readonly where: string
  constructor(setting: string, recorded: string, given: string, where: string) {
    super(
      setting,
      `is ${JSON.stringify(given)}, but ${where} belongs to deployment ${JSON.stringify(recorded)}; ` +
        `point this process at its own deployment's NATS and PostgreSQL, or set ${setting}=${recorded} if it is ` +
        'meant to join that one',
      undefined,
      RuntimeErrorCodes.DEPLOYMENT_MISMATCH,
    )
    this.recorded = recorded
    this.given = given
    this.where = where
  }
}

/** A dependency (NATS, PostgreSQL) cannot be reached at start. */
export class UnreachableError extends PitwallError {
  readonly setting: string
  constructor(
    code: typeof RuntimeErrorCodes.NATS_UNREACHABLE | typeof RuntimeErrorCodes.PG_UNREACHABLE,
    setting: string,
    message: string,
    cause?: unknown,
  ) {
    super(code, `${setting}: ${message}`, { cause, retryable: true })
    this.setting = setting
  }
}

/** A stream or bucket is missing, or exists with a configuration this deployment cannot use. */
export class StreamConfigError extends PitwallError {
  constructor(
    code: typeof RuntimeErrorCodes.STREAM_MISSING | typeof RuntimeErrorCodes.STREAM_INCOMPATIBLE,
    message: string,
  ) {
    super(code, message)
  }
}

/** A write was refused because another owner holds a newer fencing token. */
export class FencedError extends PitwallError {
  constructor(message: string, cause?: unknown) {
    super(RuntimeErrorCodes.FENCED, message, { cause })
  }
}

/** A snapshot could not be decoded or has a version no codec handles. */
export class SnapshotError extends PitwallError {
  constructor(
    code: typeof RuntimeErrorCodes.SNAPSHOT_CORRUPT | typeof RuntimeErrorCodes.SNAPSHOT_VERSION,
    message: string,
    cause?: unknown,
  ) {
    super(code, message, { cause })
  }
}

/** A reading that cannot be processed; `item` names the offending part. */
export class ReadingError extends PitwallError {
  readonly item: string
  constructor(item: string, message: string) {
    super(RuntimeErrorCodes.READING_INVALID, `${item}: ${message}`)
    this.item = item
  }
}

/** A live state query failed; rebuilt on the caller's side from the wire code. */
export class QueryError extends PitwallError {}

const byCode = new Map<string, RuntimeErrorCode>(Object.values(RuntimeErrorCodes).map((c) => [c, c]))

/** Rebuilds a coded error received over the wire. Unknown codes become PW_QUERY_FAILED. */
export function fromWire(w: { code?: unknown; message?: unknown; retryable?: unknown }): PitwallError {
  const code = (typeof w.code === 'string' && byCode.get(w.code)) || RuntimeErrorCodes.QUERY_FAILED
  return new QueryError(code, typeof w.message === 'string' ? w.message : 'query failed', {
    retryable: w.retryable === true,
  })
}
