/**
 * Errors of the discovery adapter. Every error has a stable `code` (docs/deploy.md lists them) and says whether
 * retrying can help.
 */
export const DiscoveryErrorCodes = {
  /** Consul answered with an error or could not be reached. */
  CONSUL: 'PW_CONSUL_FAILED',
  /** No passing instance of a required service (message names the service and datacenter). */
  NO_INSTANCE: 'PW_DISCOVERY_NO_INSTANCE',
  /** A lock is held by another session. */
  LOCK_HELD: 'PW_LOCK_HELD',
  /** Bad discovery settings (message names the setting). */
  CONFIG: 'PW_DISCOVERY_CONFIG',
} as const
export type DiscoveryErrorCode = (typeof DiscoveryErrorCodes)[keyof typeof DiscoveryErrorCodes]

export class DiscoveryError extends Error {
  readonly code: DiscoveryErrorCode
  readonly retryable: boolean
  constructor(code: DiscoveryErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'DiscoveryError'
    this.code = code
    this.retryable = opts.retryable ?? false
  }
}
