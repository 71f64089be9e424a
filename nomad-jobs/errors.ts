/**
 * Errors of the Nomad client and the deploy command. Every error has a stable `code` (docs/deploy.md lists them)
 * and says whether retrying can help.
 */
export const NomadErrorCodes = {
  /** The agent answered with an HTTP error status (status and body in the message). */
  HTTP: 'PW_NOMAD_HTTP',
  /** The agent could not be reached (connection refused, TLS failure, timeout). */
  UNREACHABLE: 'PW_NOMAD_UNREACHABLE',
  /** Check-and-set refused: the job changed since the plan (EnforceIndex with a stale JobModifyIndex). */
  CAS_CONFLICT: 'PW_NOMAD_CAS_CONFLICT',
  /** The job file or its variables do not parse. */
  PARSE: 'PW_NOMAD_PARSE',
  /** The deployment failed (unhealthy allocations, progress deadline) and was not rolled back. */
  DEPLOY_FAILED: 'PW_DEPLOY_FAILED',
  /** The deployment failed and Nomad rolled the job back to its last stable version (auto_revert). */
  ROLLED_BACK: 'PW_DEPLOY_ROLLED_BACK',
  /** The deployment did not finish within the deploy command's deadline. */
  TIMEOUT: 'PW_DEPLOY_TIMEOUT',
  /** Bad command line or settings (message names the setting). */
  USAGE: 'PW_DEPLOY_USAGE',
} as const
export type NomadErrorCode = (typeof NomadErrorCodes)[keyof typeof NomadErrorCodes]

/** A coded error of the Nomad client or the deploy command. */
export class NomadError extends Error {
  readonly code: NomadErrorCode
  readonly retryable: boolean
  /** HTTP status when the agent answered. */
  readonly status: number | undefined
  constructor(
    code: NomadErrorCode,
    message: string,
    opts: { cause?: unknown; retryable?: boolean; status?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'NomadError'
    this.code = code
    this.retryable = opts.retryable ?? false
    this.status = opts.status
  }
}
