/**
 * Errors of the local lab's commands (`pitwall lab`, and the CLI finding the running lab). Every error has a
 * stable `code` (docs/errors.md lists them) and says whether retrying can help. Bad flags are the runtime's
 * ConfigError (PW_CONFIG_INVALID naming the flag).
 */
export const LabErrorCodes = {
  /** No lab runs where the command looked (the message says where, and what to set instead). */
  NOT_FOUND: 'PW_LAB_NOT_FOUND',
  /** The state file exists but is not one this version writes. */
  STATE_INVALID: 'PW_LAB_STATE_INVALID',
  /** The launcher refused or failed a command (unknown site, a command already running on it, a start failed). */
  COMMAND_FAILED: 'PW_LAB_COMMAND_FAILED',
} as const
export type LabErrorCode = (typeof LabErrorCodes)[keyof typeof LabErrorCodes]

export class LabError extends Error {
  readonly code: LabErrorCode
  readonly retryable: boolean
  constructor(code: LabErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'LabError'
    this.code = code
    this.retryable = opts.retryable ?? false
  }
}
