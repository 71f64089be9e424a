/**
 * Gateway configuration: options (from code or environment) -> validated, frozen config. The runtime part
 * (site, NATS URL, partitions, stream names) is the runtime's own compiled config, so the gateway and the
 * workers can never disagree on how subjects are named. `gatewayOptionsFromEnv` is the only reader of env here.
 */
import { compileConfig, ConfigError, optionsFromEnv, type RuntimeConfig, type RuntimeOptions } from '../actors/mod.js'

export interface GatewayOptions {
  port?: number
  host?: string
  /** Largest request body in bytes (JSON and NDJSON alike); larger bodies get 413. */
  bodyLimitBytes?: number
  maxItemsPerBatch?: number
  maxFieldsPerReading?: number
  /** Longest string field value (UTF-16 code units). */
  maxStringLength?: number
  /** Oldest accepted reading, relative to the gateway clock. */
  maxPastMs?: number
  /** Furthest accepted reading in the future (device clock skew). */
  maxFutureMs?: number
  /** Node's request timeout: the whole request must arrive within this (slowloris guard). */
  requestTimeoutMs?: number
  /** How long to wait for JetStream acks of a batch before answering 503. */
  publishTimeoutMs?: number
  /** How long a live state query waits for the owning worker. */
  queryTimeoutMs?: number
  /** Seconds advertised in Retry-After on 503. */
  retryAfterS?: number
  runtime?: RuntimeOptions
}

export interface GatewayConfig {
  readonly port: number
  readonly host: string
  readonly bodyLimitBytes: number
  readonly maxItemsPerBatch: number
  readonly maxFieldsPerReading: number
  readonly maxStringLength: number
  readonly maxPastMs: number
  readonly maxFutureMs: number
  readonly requestTimeoutMs: number
  readonly publishTimeoutMs: number
  readonly queryTimeoutMs: number
  readonly retryAfterS: number
  readonly runtime: RuntimeConfig
}

export const GATEWAY_DEFAULTS = {
  port: 8080,
  host: '0.0.0.0',
  bodyLimitBytes: 1_048_576,
  maxItemsPerBatch: 1_000,
  maxFieldsPerReading: 64,
  maxStringLength: 256,
  maxPastMs: 7 * 24 * 3600 * 1000,
  maxFutureMs: 5 * 60 * 1000,
  requestTimeoutMs: 30_000,
  publishTimeoutMs: 5_000,
  queryTimeoutMs: 1_000,
  retryAfterS: 1,
} as const

export const GATEWAY_ENV = {
  port: 'PITWALL_GATEWAY_PORT',
  host: 'PITWALL_GATEWAY_HOST',
  bodyLimitBytes: 'PITWALL_GATEWAY_BODY_LIMIT_BYTES',
  maxItemsPerBatch: 'PITWALL_GATEWAY_MAX_ITEMS',
  maxFieldsPerReading: 'PITWALL_GATEWAY_MAX_FIELDS',
  maxStringLength: 'PITWALL_GATEWAY_MAX_STRING_LENGTH',
  maxPastMs: 'PITWALL_GATEWAY_MAX_PAST_MS',
  maxFutureMs: 'PITWALL_GATEWAY_MAX_FUTURE_MS',
  requestTimeoutMs: 'PITWALL_GATEWAY_REQUEST_TIMEOUT_MS',
  publishTimeoutMs: 'PITWALL_GATEWAY_PUBLISH_TIMEOUT_MS',
  queryTimeoutMs: 'PITWALL_GATEWAY_QUERY_TIMEOUT_MS',
  retryAfterS: 'PITWALL_GATEWAY_RETRY_AFTER_S',
} as const

type IntSetting = Exclude<keyof typeof GATEWAY_ENV, 'host'>

/** Reads gateway options (PITWALL_GATEWAY_*) and the runtime's (PITWALL_*) from an environment. */
export function gatewayOptionsFromEnv(env: Record<string, string | undefined>): GatewayOptions {
  const o: GatewayOptions = { runtime: optionsFromEnv(env) }
  const host = env[GATEWAY_ENV.host]
  if (host) o.host = host
  for (const k of Object.keys(GATEWAY_ENV) as (keyof typeof GATEWAY_ENV)[]) {
    if (k === 'host') continue
    const raw = env[GATEWAY_ENV[k]]
    if (raw === undefined || raw === '') continue
    const n = Number(raw)
    if (!Number.isInteger(n)) throw new ConfigError(GATEWAY_ENV[k], `must be an integer, got ${JSON.stringify(raw)}`)
    o[k satisfies IntSetting] = n
  }
  return o
}

function int(setting: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(setting, `must be an integer in [${min}, ${max}], got ${v}`)
  return v
}

/** Validates options, applies defaults, rejects contradictions; the result is frozen. */
export function compileGatewayConfig(o: GatewayOptions = {}): GatewayConfig {
  const d = GATEWAY_DEFAULTS
  const host = o.host ?? d.host
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) throw new ConfigError('host', `is not a host name or address: ${JSON.stringify(host)}`)
  const bodyLimitBytes = int('bodyLimitBytes', o.bodyLimitBytes ?? d.bodyLimitBytes, 1024, 256 * 1_048_576)
  const maxStringLength = int('maxStringLength', o.maxStringLength ?? d.maxStringLength, 1, 65_536)
  if (maxStringLength > bodyLimitBytes) throw new ConfigError('maxStringLength', `exceeds bodyLimitBytes (${bodyLimitBytes}); no request could carry it`)
  const requestTimeoutMs = int('requestTimeoutMs', o.requestTimeoutMs ?? d.requestTimeoutMs, 0, 600_000)
  const publishTimeoutMs = int('publishTimeoutMs', o.publishTimeoutMs ?? d.publishTimeoutMs, 10, 120_000)
  if (requestTimeoutMs !== 0 && publishTimeoutMs >= requestTimeoutMs) {
    throw new ConfigError('publishTimeoutMs', `must be below requestTimeoutMs (${requestTimeoutMs}) so a slow JetStream yields a 503, not a dropped connection`)
  }
  const cfg: GatewayConfig = {
    port: int('port', o.port ?? d.port, 0, 65_535),
    host,
    bodyLimitBytes,
    maxItemsPerBatch: int('maxItemsPerBatch', o.maxItemsPerBatch ?? d.maxItemsPerBatch, 1, 100_000),
    maxFieldsPerReading: int('maxFieldsPerReading', o.maxFieldsPerReading ?? d.maxFieldsPerReading, 1, 1_024),
    maxStringLength,
    maxPastMs: int('maxPastMs', o.maxPastMs ?? d.maxPastMs, 0, Number.MAX_SAFE_INTEGER),
    maxFutureMs: int('maxFutureMs', o.maxFutureMs ?? d.maxFutureMs, 0, Number.MAX_SAFE_INTEGER),
    requestTimeoutMs,
    publishTimeoutMs,
    queryTimeoutMs: int('queryTimeoutMs', o.queryTimeoutMs ?? d.queryTimeoutMs, 10, 60_000),
    retryAfterS: int('retryAfterS', o.retryAfterS ?? d.retryAfterS, 1, 3_600),
    runtime: compileConfig(o.runtime ?? {}),
  }
  return Object.freeze(cfg)
}
