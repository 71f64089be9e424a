/**
 * Gateway configuration: options (from code or environment) -> validated, frozen config. The runtime part
 * (site, NATS URL, partitions, stream names) is the runtime's own compiled config, so the gateway and the
 * workers can never disagree on how subjects are named. `gatewayOptionsFromEnv` is the only reader of env here.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseCidr } from './notify-address.js'
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
  /** The whole request (headers and body) must arrive within this, or it is answered 408 (slowloris guard). */
  requestTimeoutMs?: number
  /** PostgreSQL (the gateway's own pool): connecting and each query are bounded by this; past it the route answers 503. */
  databaseTimeoutMs?: number
  /** `/readyz`: how long each dependency check (JetStream stream info, PostgreSQL `SELECT 1`) may take. */
  readyTimeoutMs?: number
  /** `/readyz`: consecutive failed checks of one dependency, after it once succeeded, before the gateway reports not ready. */
  readyFailureThreshold?: number
  /** How long to wait for JetStream acks of a batch before answering 503. */
  publishTimeoutMs?: number
  /** How long a live state query waits for the owning worker. */
  queryTimeoutMs?: number
  /** Seconds advertised in Retry-After on 503. */
  retryAfterS?: number
  runtime?: RuntimeOptions
  auth?: AuthOptions
  /** Browser origins allowed by CORS, exact (`https://app.example.com`), comma-separated or a list; none by default. */
  corsOrigins?: string | readonly string[]
  /** `Strict-Transport-Security: max-age=<this>` on every reply; 0 (default) sends none (set it when served over HTTPS). */
  hstsMaxAgeS?: number
  /** Serve Prometheus metrics at `GET /metrics` (default on; unauthenticated, so block it at the edge or turn it off). */
  metrics?: boolean
  /** Live feed: a comment line this often keeps idle connections open through proxies. */
  liveHeartbeatMs?: number
  /** Live feed: the reconnection delay suggested to EventSource clients (`retry:`). */
  liveRetryMs?: number
  /** Operator console: the built files (`dist/console`); default next to the gateway's build; `off` serves none. */
  consoleDir?: string
  /**
   * Operator console: a raster tile URL template for maps (`https://tiles.example.com/{z}/{x}/{y}.png`); unset, the maps
   * draw their GeoJSON layers on a blank background (no request leaves the origin).
   */
  consoleTileUrl?: string
  /** `GET /v1/sites`: each site controller's status URL, `a=http://host:9481/status,b=...`. */
  siteStatusUrls?: string | Readonly<Record<string, string>>
  /** Sent as `Authorization: Bearer` to the site controllers' command API (their PITWALL_CONTROLLER_COMMAND_TOKEN). */
  siteCommandToken?: string
  /** Webhook notifications (notify.ts, notify-worker.ts). */
  notify?: NotifyOptions
}

/** Webhook notifications: the delivery worker's settings (docs/configuration.md, "Notifications"). */
export interface NotifyOptions {
  /** Run the delivery worker in this gateway (default on; it needs the database). Several gateways may run it. */
  worker?: boolean
  /** One HTTP attempt (connect, send, response headers) must finish within this, or it failed. */
  timeoutMs?: number
  /** How often an idle worker looks for due deliveries. */
  pollMs?: number
  /** Deliveries in flight per worker (each to a different alert of a subscription, or another subscription). */
  concurrency?: number
  /** Retry delay after the first failed attempt; doubles per attempt up to backoffMaxMs, with jitter. */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** A delivery not delivered this long after its event is given up (`expired`). */
  maxAgeMs?: number
  /** Pending deliveries kept per subscription; beyond it the oldest are given up (`dropped`). */
  maxPending?: number
  /** Finished deliveries (and their attempts) are deleted this long after they finished. */
  retentionMs?: number
  /** CIDRs of private/loopback/link-local ranges webhooks may reach (internal receivers); default none (notify-address.ts). */
  allowPrivate?: readonly string[] | string
}

export interface NotifyConfig {
  readonly worker: boolean
  readonly timeoutMs: number
  readonly pollMs: number
  readonly concurrency: number
  readonly backoffBaseMs: number
  readonly backoffMaxMs: number
  readonly maxAgeMs: number
  readonly maxPending: number
  readonly retentionMs: number
  readonly allowPrivate: readonly string[]
}

export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

/** A service API key: clients send the key in `X-API-Key`; only its SHA-256 is configured. */
export interface ApiKey {
  readonly id: string
  readonly role: Role
  /** SHA-256 of the key, 32 bytes. */
  readonly sha256: Buffer
}

export interface AuthOptions {
  /** Auth on (default). Off is for local development only and is logged as a warning. */
  enabled?: boolean
  /** HS256 secret for people's JWTs (at least 32 characters). */
  jwtSecret?: string
  /** An identity provider's JWKS (https, or http on loopback): people's RS256/ES256 tokens are verified with its keys. */
  jwksUrl?: string
  /** The `iss` a provider's token must carry (required with jwksUrl). */
  jwtIssuer?: string
  /** The `aud` a provider's token must hold (required with jwksUrl): this API as registered at the provider. */
  jwtAudience?: string
  /** How long the provider's key set is used before it is fetched again. */
  jwksCacheMs?: number
  /** Least time between two fetches of the key set (an unknown `kid` does not trigger one sooner). */
  jwksCooldownMs?: number
  /** A key set fetch must finish within this. */
  jwksTimeoutMs?: number
  /** `id:role:sha256:<hex>` entries separated by commas. */
  apiKeys?: string
  /** PostgreSQL holding device credentials. */
  databaseUrl?: string
  /** How long a verified device credential is trusted before PostgreSQL is asked again (revocation delay). */
  credentialCacheMs?: number
  /** Requests per credential (or per client address when anonymous) per window. */
  rateLimitMax?: number
  rateLimitWindowMs?: number
  /** Where requests are counted: `nats` (default) a KV bucket every gateway of the site shares, `local` this process only. */
  rateLimitStore?: 'nats' | 'local'
  /** The shared store's KV bucket (the same for every gateway of a site). */
  rateLimitBucket?: string
  /** A count in the shared store must finish within this, else the per-process limiter counts the request. */
  rateLimitStoreTimeoutMs?: number
  /** After the shared store failed, how long the per-process limiter counts before the store is tried again. */
  rateLimitStoreRetryMs?: number
}

/** An identity provider whose RS256/ES256 tokens are accepted (jwks.ts). */
export interface JwksConfig {
  readonly url: string
  readonly issuer: string
  readonly audience: string
  readonly cacheMs: number
  readonly cooldownMs: number
  readonly timeoutMs: number
}

export interface AuthConfig {
  readonly enabled: boolean
  readonly jwtSecret: string | undefined
  readonly jwks: JwksConfig | undefined
  readonly apiKeys: readonly ApiKey[]
  readonly databaseUrl: string | undefined
  readonly credentialCacheMs: number
  readonly rateLimitMax: number
  readonly rateLimitWindowMs: number
  readonly rateLimitStore: 'nats' | 'local'
  readonly rateLimitBucket: string
  readonly rateLimitStoreTimeoutMs: number
  readonly rateLimitStoreRetryMs: number
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
  readonly databaseTimeoutMs: number
  readonly readyTimeoutMs: number
  readonly readyFailureThreshold: number
  readonly publishTimeoutMs: number
  readonly queryTimeoutMs: number
  readonly retryAfterS: number
  readonly runtime: RuntimeConfig
  readonly auth: AuthConfig
  readonly corsOrigins: readonly string[]
  readonly hstsMaxAgeS: number
  readonly metrics: boolean
  readonly liveHeartbeatMs: number
  readonly liveRetryMs: number
  /** Directory of the built console, or undefined when it is turned off. */
  readonly consoleDir: string | undefined
  readonly consoleTileUrl: string | undefined
  readonly siteStatusUrls: Readonly<Record<string, string>>
  readonly siteCommandToken: string | undefined
  readonly notify: NotifyConfig
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
  databaseTimeoutMs: 5_000,
  readyTimeoutMs: 2_000,
  readyFailureThreshold: 3,
  publishTimeoutMs: 5_000,
  queryTimeoutMs: 1_000,
  retryAfterS: 1,
  hstsMaxAgeS: 0,
  liveHeartbeatMs: 15_000,
  liveRetryMs: 2_000,
  credentialCacheMs: 30_000,
  rateLimitMax: 6_000,
  rateLimitWindowMs: 60_000,
  rateLimitStore: 'nats',
  rateLimitBucket: 'pw_ratelimit',
  rateLimitStoreTimeoutMs: 250,
  rateLimitStoreRetryMs: 5_000,
  jwksCacheMs: 600_000,
  jwksCooldownMs: 30_000,
  jwksTimeoutMs: 5_000,
} as const

export const NOTIFY_DEFAULTS = {
  worker: true,
  timeoutMs: 10_000,
  pollMs: 1_000,
  concurrency: 16,
  backoffBaseMs: 1_000,
  backoffMaxMs: 300_000,
  maxAgeMs: 24 * 3_600_000,
  maxPending: 100_000,
  retentionMs: 7 * 24 * 3_600_000,
} as const

export const NOTIFY_ENV = {
  worker: 'PITWALL_NOTIFY_WORKER',
  timeoutMs: 'PITWALL_NOTIFY_TIMEOUT_MS',
  pollMs: 'PITWALL_NOTIFY_POLL_MS',
  concurrency: 'PITWALL_NOTIFY_CONCURRENCY',
  backoffBaseMs: 'PITWALL_NOTIFY_BACKOFF_BASE_MS',
  backoffMaxMs: 'PITWALL_NOTIFY_BACKOFF_MAX_MS',
  maxAgeMs: 'PITWALL_NOTIFY_MAX_AGE_MS',
  maxPending: 'PITWALL_NOTIFY_MAX_PENDING',
  retentionMs: 'PITWALL_NOTIFY_RETENTION_MS',
  allowPrivate: 'PITWALL_NOTIFY_ALLOW_PRIVATE',
} as const

function notifyOptionsFromEnv(env: Record<string, string | undefined>): NotifyOptions {
  const o: NotifyOptions = {}
  const w = env[NOTIFY_ENV.worker]
  if (w !== undefined && w !== '') {
    if (w !== 'on' && w !== 'off')
      throw new ConfigError(NOTIFY_ENV.worker, `must be "on" or "off", got ${JSON.stringify(w)}`)
    o.worker = w === 'on'
  }
  for (const k of [
    'timeoutMs',
    'pollMs',
    'concurrency',
    'backoffBaseMs',
    'backoffMaxMs',
    'maxAgeMs',
    'maxPending',
    'retentionMs',
  ] as const) {
    const raw = env[NOTIFY_ENV[k]]
    if (raw === undefined || raw === '') continue
    const n = Number(raw)
    if (!Number.isInteger(n)) throw new ConfigError(NOTIFY_ENV[k], `must be an integer, got ${JSON.stringify(raw)}`)
    o[k] = n
  }
  const allow = env[NOTIFY_ENV.allowPrivate]
  if (allow !== undefined && allow !== '') o.allowPrivate = allow
  return o
}

/** The allowed private ranges: a list or a comma-separated string of CIDRs (a bare address is one host). */
function allowedRanges(raw: readonly string[] | string | undefined): readonly string[] {
  const list =
    typeof raw === 'string'
      ? raw
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== '')
      : [...(raw ?? [])]
  for (const c of list) {
    if (!parseCidr(c))
      throw new ConfigError(
        NOTIFY_ENV.allowPrivate,
        `${JSON.stringify(c)} is not a CIDR such as 10.20.0.0/16 or fd00::/8`,
      )
  }
  return Object.freeze(list)
}

/** Validates the notification settings; `name` gives the setting's env name in errors. */
export function compileNotify(o: NotifyOptions = {}): NotifyConfig {
  const d = NOTIFY_DEFAULTS
  const E = NOTIFY_ENV
  const timeoutMs = int(E.timeoutMs, o.timeoutMs ?? d.timeoutMs, 100, 300_000)
  const backoffBaseMs = int(E.backoffBaseMs, o.backoffBaseMs ?? d.backoffBaseMs, 10, 3_600_000)
  const backoffMaxMs = int(E.backoffMaxMs, o.backoffMaxMs ?? d.backoffMaxMs, 10, 86_400_000)
  if (backoffMaxMs < backoffBaseMs)
    throw new ConfigError(E.backoffMaxMs, `must be at least ${E.backoffBaseMs} (${backoffBaseMs})`)
  const maxAgeMs = int(E.maxAgeMs, o.maxAgeMs ?? d.maxAgeMs, 1_000, 30 * 86_400_000)
  if (maxAgeMs <= timeoutMs)
    throw new ConfigError(E.maxAgeMs, `must exceed ${E.timeoutMs} (${timeoutMs}): no attempt could finish`)
  return Object.freeze({
    worker: o.worker ?? d.worker,
    timeoutMs,
    pollMs: int(E.pollMs, o.pollMs ?? d.pollMs, 10, 60_000),
    concurrency: int(E.concurrency, o.concurrency ?? d.concurrency, 1, 1_000),
    backoffBaseMs,
    backoffMaxMs,
    maxAgeMs,
    maxPending: int(E.maxPending, o.maxPending ?? d.maxPending, 1, 100_000_000),
    retentionMs: int(E.retentionMs, o.retentionMs ?? d.retentionMs, 60_000, 365 * 86_400_000),
    allowPrivate: allowedRanges(o.allowPrivate),
  })
}

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
  databaseTimeoutMs: 'PITWALL_GATEWAY_DATABASE_TIMEOUT_MS',
  readyTimeoutMs: 'PITWALL_GATEWAY_READY_TIMEOUT_MS',
  readyFailureThreshold: 'PITWALL_GATEWAY_READY_FAILURES',
  publishTimeoutMs: 'PITWALL_GATEWAY_PUBLISH_TIMEOUT_MS',
  queryTimeoutMs: 'PITWALL_GATEWAY_QUERY_TIMEOUT_MS',
  retryAfterS: 'PITWALL_GATEWAY_RETRY_AFTER_S',
  hstsMaxAgeS: 'PITWALL_GATEWAY_HSTS_MAX_AGE_S',
  liveHeartbeatMs: 'PITWALL_GATEWAY_LIVE_HEARTBEAT_MS',
  liveRetryMs: 'PITWALL_GATEWAY_LIVE_RETRY_MS',
} as const

export const GATEWAY_CORS_ENV = 'PITWALL_GATEWAY_CORS_ORIGINS'
export const GATEWAY_CONSOLE_ENV = {
  consoleDir: 'PITWALL_GATEWAY_CONSOLE_DIR',
  consoleTileUrl: 'PITWALL_GATEWAY_CONSOLE_TILE_URL',
  siteStatusUrls: 'PITWALL_GATEWAY_SITE_STATUS_URLS',
  siteCommandToken: 'PITWALL_GATEWAY_SITE_COMMAND_TOKEN',
} as const
/**
 * The console's build: next to the gateway's (dist/gateway/config.js -> dist/console), or the repository's
 * dist/console when the gateway runs from its TypeScript sources (tsx, tap).
 */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(
  new URL(/\/dist\/gateway\/[^/]*$/.test(import.meta.url) ? '../console/' : '../dist/console/', import.meta.url),
)
export const GATEWAY_METRICS_ENV = 'PITWALL_GATEWAY_METRICS'

export const GATEWAY_AUTH_ENV = {
  enabled: 'PITWALL_GATEWAY_AUTH',
  jwtSecret: 'PITWALL_GATEWAY_JWT_SECRET',
  jwtSecretFile: 'PITWALL_GATEWAY_JWT_SECRET_FILE',
  apiKeys: 'PITWALL_GATEWAY_API_KEYS',
  databaseUrl: 'PITWALL_GATEWAY_DATABASE_URL',
  credentialCacheMs: 'PITWALL_GATEWAY_CREDENTIAL_CACHE_MS',
  rateLimitMax: 'PITWALL_GATEWAY_RATE_LIMIT_MAX',
  rateLimitWindowMs: 'PITWALL_GATEWAY_RATE_LIMIT_WINDOW_MS',
  rateLimitStore: 'PITWALL_GATEWAY_RATE_LIMIT_STORE',
  rateLimitBucket: 'PITWALL_GATEWAY_RATE_LIMIT_BUCKET',
  rateLimitStoreTimeoutMs: 'PITWALL_GATEWAY_RATE_LIMIT_STORE_TIMEOUT_MS',
  rateLimitStoreRetryMs: 'PITWALL_GATEWAY_RATE_LIMIT_STORE_RETRY_MS',
  jwksUrl: 'PITWALL_GATEWAY_JWT_JWKS_URL',
  jwtIssuer: 'PITWALL_GATEWAY_JWT_ISSUER',
  jwtAudience: 'PITWALL_GATEWAY_JWT_AUDIENCE',
  jwksCacheMs: 'PITWALL_GATEWAY_JWT_JWKS_CACHE_MS',
  jwksCooldownMs: 'PITWALL_GATEWAY_JWT_JWKS_COOLDOWN_MS',
  jwksTimeoutMs: 'PITWALL_GATEWAY_JWT_JWKS_TIMEOUT_MS',
} as const

type IntSetting = Exclude<keyof typeof GATEWAY_ENV, 'host'>

function authOptionsFromEnv(env: Record<string, string | undefined>): AuthOptions {
  const E = GATEWAY_AUTH_ENV
  const a: AuthOptions = {}
  const mode = env[E.enabled]
  if (mode !== undefined && mode !== '') {
    if (mode !== 'on' && mode !== 'off')
      throw new ConfigError(E.enabled, `must be "on" or "off", got ${JSON.stringify(mode)}`)
    a.enabled = mode === 'on'
  }
  const secret = env[E.jwtSecret]
  const file = env[E.jwtSecretFile]
  if (secret && file) throw new ConfigError(E.jwtSecret, `and ${E.jwtSecretFile} are both set; use one`)
  if (secret) a.jwtSecret = secret
  if (file) {
    try {
      a.jwtSecret = readFileSync(file, 'utf8').trim()
    } catch (err) {
      throw new ConfigError(
        E.jwtSecretFile,
        `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
        err,
      )
    }
  }
  if (env[E.apiKeys]) a.apiKeys = env[E.apiKeys]
  if (env[E.databaseUrl]) a.databaseUrl = env[E.databaseUrl]
  for (const k of ['jwksUrl', 'jwtIssuer', 'jwtAudience', 'rateLimitBucket'] as const) {
    const v = env[E[k]]
    if (v) a[k] = v
  }
  const store = env[E.rateLimitStore]
  if (store !== undefined && store !== '') {
    if (store !== 'nats' && store !== 'local')
      throw new ConfigError(E.rateLimitStore, `must be "nats" or "local", got ${JSON.stringify(store)}`)
    a.rateLimitStore = store
  }
  for (const k of [
    'credentialCacheMs',
    'rateLimitMax',
    'rateLimitWindowMs',
    'rateLimitStoreTimeoutMs',
    'rateLimitStoreRetryMs',
    'jwksCacheMs',
    'jwksCooldownMs',
    'jwksTimeoutMs',
  ] as const) {
    const raw = env[E[k]]
    if (raw === undefined || raw === '') continue
    const n = Number(raw)
    if (!Number.isInteger(n)) throw new ConfigError(E[k], `must be an integer, got ${JSON.stringify(raw)}`)
    a[k] = n
  }
  return a
}

/** Parses `id:role:sha256:<hex>,...`; the error never echoes a hash. */
export function parseApiKeys(raw: string): ApiKey[] {
  const keys: ApiKey[] = []
  const ids = new Set<string>()
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')) {
    const m = /^([A-Za-z0-9_-]{1,64}):([a-z]+):sha256:([0-9a-fA-F]{64})$/.exec(entry)
    const id = m?.[1]
    const role = m?.[2]
    const hex = m?.[3]
    if (id === undefined || role === undefined || hex === undefined) {
      throw new ConfigError(GATEWAY_AUTH_ENV.apiKeys, `entry ${keys.length + 1} is not id:role:sha256:<64 hex digits>`)
    }
    if (!(ROLES as readonly string[]).includes(role))
      throw new ConfigError(GATEWAY_AUTH_ENV.apiKeys, `key ${id}: role must be one of ${ROLES.join(', ')}`)
    if (ids.has(id)) throw new ConfigError(GATEWAY_AUTH_ENV.apiKeys, `key id ${id} appears twice`)
    ids.add(id)
    keys.push(Object.freeze({ id, role: role as Role, sha256: Buffer.from(hex, 'hex') }))
  }
  return keys
}

/** Loopback hosts, where a JWKS may be fetched over plain http (a provider on the same machine, tests). */
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/

/** The identity provider's settings, or undefined when no JWKS URL is set; issuer and audience come with it. */
function compileJwks(a: AuthOptions): JwksConfig | undefined {
  const d = GATEWAY_DEFAULTS
  const E = GATEWAY_AUTH_ENV
  const url = a.jwksUrl === '' ? undefined : a.jwksUrl
  if (url === undefined) {
    for (const k of ['jwtIssuer', 'jwtAudience'] as const) {
      if (a[k])
        throw new ConfigError(
          E[k],
          `is set but ${E.jwksUrl} is not: issuer and audience apply to an identity provider's tokens`,
        )
    }
    return undefined
  }
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new ConfigError(E.jwksUrl, `is not a URL: ${JSON.stringify(url.slice(0, 200))}`)
  }
  if (!(u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK.test(u.hostname)))) {
    throw new ConfigError(
      E.jwksUrl,
      'must be https (plain http only on a loopback address): the keys decide who is let in',
    )
  }
  if (u.username !== '' || u.password !== '')
    throw new ConfigError(E.jwksUrl, 'must not carry credentials; a JWKS is public')
  const text = (k: 'jwtIssuer' | 'jwtAudience', what: string): string => {
    const v = a[k]
    if (v === undefined || v === '') throw new ConfigError(E[k], `is required with ${E.jwksUrl}: ${what}`)
    if (v.length > 1024) throw new ConfigError(E[k], 'is longer than 1024 characters')
    return v
  }
  return Object.freeze({
    url: u.toString(),
    issuer: text('jwtIssuer', "the provider's issuer, exactly as its tokens carry it in `iss`"),
    audience: text('jwtAudience', "this API's identifier at the provider, which its tokens carry in `aud`"),
    cacheMs: int(E.jwksCacheMs, a.jwksCacheMs ?? d.jwksCacheMs, 1_000, 86_400_000),
    cooldownMs: int(E.jwksCooldownMs, a.jwksCooldownMs ?? d.jwksCooldownMs, 100, 3_600_000),
    timeoutMs: int(E.jwksTimeoutMs, a.jwksTimeoutMs ?? d.jwksTimeoutMs, 100, 60_000),
  })
}

function compileAuth(a: AuthOptions): AuthConfig {
  const d = GATEWAY_DEFAULTS
  const E = GATEWAY_AUTH_ENV
  const enabled = a.enabled ?? true
  const jwtSecret = a.jwtSecret === '' ? undefined : a.jwtSecret
  const jwks = compileJwks(a)
  if (enabled && jwtSecret === undefined && jwks === undefined) {
    throw new ConfigError(
      E.jwtSecret,
      `auth is on and people's JWTs cannot be verified: set ${E.jwtSecret} or ${E.jwtSecretFile} (HS256), ${E.jwksUrl} (an identity provider's RS256/ES256 keys) or both (or ${E.enabled}=off for local development only)`,
    )
  }
  if (jwtSecret !== undefined && jwtSecret.length < 32)
    throw new ConfigError(E.jwtSecret, 'must be at least 32 characters (HS256)')
  if (enabled && !a.databaseUrl)
    throw new ConfigError(E.databaseUrl, 'auth is on and device credentials live in PostgreSQL: set a connection URL')
  return Object.freeze({
    enabled,
    jwtSecret,
    jwks,
    apiKeys: Object.freeze(parseApiKeys(a.apiKeys ?? '')),
    databaseUrl: a.databaseUrl,
    credentialCacheMs: int(E.credentialCacheMs, a.credentialCacheMs ?? d.credentialCacheMs, 0, 3_600_000),
    rateLimitMax: int(E.rateLimitMax, a.rateLimitMax ?? d.rateLimitMax, 1, 10_000_000),
    rateLimitWindowMs: int(E.rateLimitWindowMs, a.rateLimitWindowMs ?? d.rateLimitWindowMs, 100, 86_400_000),
    rateLimitStore: rateLimitStoreOf(a.rateLimitStore ?? d.rateLimitStore),
    rateLimitBucket: bucketName(a.rateLimitBucket ?? d.rateLimitBucket),
    rateLimitStoreTimeoutMs: int(
      E.rateLimitStoreTimeoutMs,
      a.rateLimitStoreTimeoutMs ?? d.rateLimitStoreTimeoutMs,
      10,
      10_000,
    ),
    rateLimitStoreRetryMs: int(
      E.rateLimitStoreRetryMs,
      a.rateLimitStoreRetryMs ?? d.rateLimitStoreRetryMs,
      100,
      600_000,
    ),
  })
}

function rateLimitStoreOf(v: string): 'nats' | 'local' {
  if (v !== 'nats' && v !== 'local')
    throw new ConfigError(GATEWAY_AUTH_ENV.rateLimitStore, `must be "nats" or "local", got ${JSON.stringify(v)}`)
  return v
}

/** A JetStream KV bucket name: letters, digits, `-` and `_`. */
function bucketName(v: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(v))
    throw new ConfigError(
      GATEWAY_AUTH_ENV.rateLimitBucket,
      `must be 1..64 letters, digits, - or _, got ${JSON.stringify(v)}`,
    )
  return v
}

/** Reads gateway options (PITWALL_GATEWAY_*) and the runtime's (PITWALL_*) from an environment. */
export function gatewayOptionsFromEnv(env: Record<string, string | undefined>): GatewayOptions {
  const o: GatewayOptions = {
    runtime: optionsFromEnv(env),
    auth: authOptionsFromEnv(env),
    notify: notifyOptionsFromEnv(env),
  }
  const host = env[GATEWAY_ENV.host]
  if (host) o.host = host
  const cors = env[GATEWAY_CORS_ENV]
  if (cors) o.corsOrigins = cors
  for (const k of ['consoleDir', 'consoleTileUrl', 'siteStatusUrls', 'siteCommandToken'] as const) {
    const v = env[GATEWAY_CONSOLE_ENV[k]]
    if (v !== undefined && v !== '') o[k] = v
  }
  const metrics = env[GATEWAY_METRICS_ENV]
  if (metrics !== undefined && metrics !== '') {
    if (metrics !== 'on' && metrics !== 'off')
      throw new ConfigError(GATEWAY_METRICS_ENV, `must be "on" or "off", got ${JSON.stringify(metrics)}`)
    o.metrics = metrics === 'on'
  }
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
  if (!Number.isInteger(v) || v < min || v > max)
    throw new ConfigError(setting, `must be an integer in [${min}, ${max}], got ${v}`)
  return v
}

/**
 * Exact origins only (`scheme://host[:port]`, as browsers send them): no `*`, no wildcards, no paths, because
 * the gateway answers with the caller's own origin and that must never be a pattern.
 */
export function parseCorsOrigins(raw: string | readonly string[]): string[] {
  const list = typeof raw === 'string' ? raw.split(',') : [...raw]
  const out: string[] = []
  for (const entry of list.map((e) => e.trim()).filter((e) => e !== '')) {
    if (entry.includes('*')) throw new ConfigError(GATEWAY_CORS_ENV, 'wildcards are not allowed: list exact origins')
    let origin: string | undefined
    try {
      const u = new URL(entry)
      if (u.protocol === 'http:' || u.protocol === 'https:') origin = u.origin
    } catch {
      origin = undefined
    }
    if (origin === undefined || origin !== entry) {
      throw new ConfigError(
        GATEWAY_CORS_ENV,
        `${JSON.stringify(entry.slice(0, 100))} is not an exact origin like https://app.example.com (lower case, no path, no trailing slash)`,
      )
    }
    if (!out.includes(origin)) out.push(origin)
  }
  return out
}

/** Validates options, applies defaults, rejects contradictions; the result is frozen. */
export function compileGatewayConfig(o: GatewayOptions = {}): GatewayConfig {
  const d = GATEWAY_DEFAULTS
  const host = o.host ?? d.host
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(host))
    throw new ConfigError('host', `is not a host name or address: ${JSON.stringify(host)}`)
  const bodyLimitBytes = int('bodyLimitBytes', o.bodyLimitBytes ?? d.bodyLimitBytes, 1024, 256 * 1_048_576)
  const maxStringLength = int('maxStringLength', o.maxStringLength ?? d.maxStringLength, 1, 65_536)
  if (maxStringLength > bodyLimitBytes)
    throw new ConfigError('maxStringLength', `exceeds bodyLimitBytes (${bodyLimitBytes}); no request could carry it`)
  const requestTimeoutMs = int('requestTimeoutMs', o.requestTimeoutMs ?? d.requestTimeoutMs, 0, 600_000)
  const publishTimeoutMs = int('publishTimeoutMs', o.publishTimeoutMs ?? d.publishTimeoutMs, 10, 120_000)
  if (requestTimeoutMs !== 0 && publishTimeoutMs >= requestTimeoutMs) {
    throw new ConfigError(
      'publishTimeoutMs',
      `must be below requestTimeoutMs (${requestTimeoutMs}) so a slow JetStream yields a 503, not a dropped connection`,
    )
  }
  const databaseTimeoutMs = int('databaseTimeoutMs', o.databaseTimeoutMs ?? d.databaseTimeoutMs, 100, 120_000)
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
    databaseTimeoutMs,
    readyTimeoutMs: int('readyTimeoutMs', o.readyTimeoutMs ?? d.readyTimeoutMs, 10, 60_000),
    readyFailureThreshold: int('readyFailureThreshold', o.readyFailureThreshold ?? d.readyFailureThreshold, 1, 100),
    publishTimeoutMs,
    queryTimeoutMs: int('queryTimeoutMs', o.queryTimeoutMs ?? d.queryTimeoutMs, 10, 60_000),
    retryAfterS: int('retryAfterS', o.retryAfterS ?? d.retryAfterS, 1, 3_600),
    runtime: compileConfig(o.runtime ?? {}),
    auth: compileAuth(o.auth ?? {}),
    corsOrigins: Object.freeze(parseCorsOrigins(o.corsOrigins ?? [])),
    hstsMaxAgeS: int('hstsMaxAgeS', o.hstsMaxAgeS ?? d.hstsMaxAgeS, 0, 63_072_000),
    metrics: o.metrics ?? true,
    liveHeartbeatMs: int('liveHeartbeatMs', o.liveHeartbeatMs ?? d.liveHeartbeatMs, 100, 300_000),
    liveRetryMs: int('liveRetryMs', o.liveRetryMs ?? d.liveRetryMs, 100, 600_000),
    consoleDir: o.consoleDir === 'off' ? undefined : (o.consoleDir ?? DEFAULT_CONSOLE_DIR),
    consoleTileUrl: parseTileUrl(o.consoleTileUrl),
    siteStatusUrls: Object.freeze(parseSiteStatusUrls(o.siteStatusUrls ?? {})),
    siteCommandToken: o.siteCommandToken === undefined || o.siteCommandToken === '' ? undefined : o.siteCommandToken,
    notify: compileNotify(o.notify),
  }
  return Object.freeze(cfg)
}

/** A raster tile URL template: http(s), with {z}, {x} and {y}. */
export function parseTileUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined
  const E = GATEWAY_CONSOLE_ENV.consoleTileUrl
  let u: URL
  try {
    u = new URL(raw.replace(/[{}]/g, '_'))
  } catch {
    throw new ConfigError(E, 'is not a URL template like https://tiles.example.com/{z}/{x}/{y}.png')
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ConfigError(E, 'must be an http or https URL')
  for (const p of ['{z}', '{x}', '{y}']) if (!raw.includes(p)) throw new ConfigError(E, `must contain ${p}`)
  return raw
}

/** `site=url,...` (or a record) -> record; each URL http(s), each site name a site name. */
export function parseSiteStatusUrls(raw: string | Readonly<Record<string, string>>): Record<string, string> {
  const E = GATEWAY_CONSOLE_ENV.siteStatusUrls
  const entries =
    typeof raw === 'string'
      ? raw
          .split(',')
          .map((e) => e.trim())
          .filter((e) => e !== '')
          .map((e) => {
            const i = e.indexOf('=')
            if (i <= 0) throw new ConfigError(E, `${JSON.stringify(e.slice(0, 100))} is not site=url`)
            return [e.slice(0, i).trim(), e.slice(i + 1).trim()] as const
          })
      : Object.entries(raw)
  const out: Record<string, string> = {}
  for (const [site, url] of entries) {
    if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(site))
      throw new ConfigError(E, `${JSON.stringify(site.slice(0, 40))} is not a site name`)
    let ok = false
    try {
      const u = new URL(url)
      ok = u.protocol === 'http:' || u.protocol === 'https:'
    } catch {
      ok = false
    }
    if (!ok) throw new ConfigError(E, `the URL of site ${site} is not an http(s) URL`)
    out[site] = url
  }
  return out
}
