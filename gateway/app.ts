/**
 * The gateway's Fastify instance: root options (body limit, timeouts, strict validation), one error shape
 * `{code, message, item?}` for every failure, and the feature plugins, each encapsulated.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify'
import fastifyJwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import pg from 'pg'
import type { NatsConnection } from '@nats-io/transport-node'
import { METRICS, openReferenceBucket, PROFILES, type EntityKind } from '../actors/mod.js'
import type { KV } from '@nats-io/kv'
import type { GatewayConfig } from './config.js'
import { GatewayError, isDatabaseInputRejected, toGatewayError, type GatewayErrorCode } from './errors.js'
import { adminPlugin } from './admin.js'
import { alarmPlugin } from './alarms.js'
import { consolePlugin } from './console.js'
import { notifyPlugin } from './notify.js'
import { siteCommandPlugin } from './site-commands.js'
import { AddressPolicy } from './notify-address.js'
import { NotifyWorker } from './notify-worker.js'
import { DeviceCredentials, installAuth, rateLimitKey } from './auth.js'
import { JwksKeySet } from './jwks.js'
import { migrate } from './db.js'
import { LocalCounter, rateLimitStore, SiteRateLimiter } from './ratelimit.js'
import { corsReplyHeaders, installHeaders, securityHeaders } from './headers.js'
import { healthPlugin } from './health.js'
import { ingestPlugin } from './ingest.js'
import { installInputChecks } from './input.js'
import { livePlugin } from './live.js'
import { installOpenApi, openApiPlugin } from './openapi.js'
import { GatewayMetrics, installMetrics, metricsPlugin } from './metrics.js'
import { geofencePlugin, republishIfAssigned } from './geofences.js'
import { servicePlugin } from './service.js'
import { queryPlugin } from './queries.js'
import { registryPlugin } from './registry.js'
import { statePlugin, type StateOptions } from './state.js'

export interface GatewayDeps {
  nc: NatsConnection
  cfg: GatewayConfig
  /** Actor profiles this deployment runs (validates `profile`, decodes snapshots); default: the build's PROFILES. */
  profiles?: StateOptions['profiles']
  /** Prepared live-query dependencies (tests); otherwise opened on first use. */
  query?: StateOptions['query']
  /** Fastify's request log: a pino logger (the process's, actors/log.ts `log.pino`), or Fastify's own options; default none. */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger
  /** PostgreSQL for device credentials (owned by the caller); otherwise a pool on `cfg.auth.databaseUrl`, closed with the app. */
  pool?: pg.Pool
  /** Metrics objects (tests, embedding); otherwise a fresh registry per app. */
  metrics?: GatewayMetrics
  /** Apply the gateway's migrations when the app starts (default true); false for tooling that only reads the OpenAPI document. */
  migrate?: boolean
}

/** Version of the HTTP API in the OpenAPI document. */
export const GATEWAY_API_VERSION = '1.0.0'

/** Fastify's own errors (parsing, limits, schema) -> gateway codes. */
/** A logger instance (has pino's level methods and `child`), not Fastify's logger options. */
function isPino(l: unknown): l is FastifyBaseLogger {
  return (
    typeof l === 'object' &&
    l !== null &&
    typeof (l as FastifyBaseLogger).child === 'function' &&
    typeof (l as FastifyBaseLogger).info === 'function'
  )
}

function fromFastify(err: FastifyError): GatewayError {
  if (err.validation) {
    const ctx = err.validationContext ?? 'body'
    if (ctx === 'params') {
      const path = err.validation[0]?.instancePath ?? ''
      const code: GatewayErrorCode =
        path === '/kind' ? 'GW_ERR_KIND_INVALID' : path === '/id' ? 'GW_ERR_ID_INVALID' : 'GW_ERR_PARAMS_INVALID'
      return new GatewayError(code, `${ctx}${path.replace(/\//g, '.')} ${err.validation[0]?.message ?? 'is invalid'}`, {
        item: `params${path.replace(/\//g, '.')}`,
      })
    }
    const v = err.validation[0]
    const path = (v?.instancePath ?? '').replace(/\//g, '.')
    if (ctx === 'querystring')
      return new GatewayError('GW_ERR_QUERY_INVALID', `querystring${path} ${v?.message ?? 'is invalid'}`, {
        item: `querystring${path}`,
      })
    // Ingest bodies must be arrays; registry bodies are objects and name the offending property.
    const hint = v?.keyword === 'type' && v.params.type === 'array' ? ' (a batch is a JSON array of readings)' : ''
    return new GatewayError('GW_ERR_BODY_INVALID', `${ctx}${path} ${v?.message ?? 'is invalid'}${hint}`, { item: ctx })
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('GW_ERR_BODY_TOO_LARGE', err.message)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new GatewayError(
        'GW_ERR_MEDIA_TYPE',
        'send application/json (an array) or application/x-ndjson (one reading per line)',
      )
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) return new GatewayError('GW_ERR_BODY_MALFORMED', err.message, { cause: err })
  return toGatewayError(err)
}

/** Any error a route or hook threw -> GatewayError; the request says where a value PostgreSQL refused came from. */
function toReplyError(err: FastifyError, req: FastifyRequest): GatewayError {
  if (err instanceof GatewayError) return err
  if (isDatabaseInputRejected(err)) {
    const body = req.method === 'POST' || req.method === 'PATCH' || req.method === 'PUT'
    return new GatewayError(
      body ? 'GW_ERR_BODY_INVALID' : 'GW_ERR_QUERY_INVALID',
      'a value holds a character the database cannot store (NUL)',
      { cause: err },
    )
  }
  return fromFastify(err)
}

/**
 * How often Node looks for requests past their deadline: a tenth of the timeout, between 100 ms and 1 s, so a
 * slow request is answered 408 at most that long after `requestTimeoutMs` (Node's default is every 30 s).
 */
export function connectionsCheckingIntervalMs(requestTimeoutMs: number): number {
  return Math.min(1_000, Math.max(100, Math.floor(requestTimeoutMs / 10)))
}

/**
 * Node's HTTP server options for the request timeout. They must be given when the server is created: Node
 * reads `connectionsCheckingInterval` only then, and the headers deadline defaults to 60 s; when the headers
 * deadline is longer than the request deadline Node swaps the two, so a body could stall for 60 s (+ 30 s
 * between checks) whatever `requestTimeoutMs` said (measured: 66 s with 5 s, 83 s with 30 s). Headers must
 * arrive within the same deadline (at most Node's 60 s). 0 turns the request deadline off; Node's 60 s headers
 * deadline stays.
 */
export function httpServerOptions(requestTimeoutMs: number): {
  requestTimeout: number
  headersTimeout?: number
  connectionsCheckingInterval?: number
} {
  if (requestTimeoutMs === 0) return { requestTimeout: 0 }
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: Math.min(requestTimeoutMs, 60_000),
    connectionsCheckingInterval: connectionsCheckingIntervalMs(requestTimeoutMs),
  }
}

/** Errors of Node's HTTP parser and request deadline -> gateway codes. */
export function fromClientError(err: { code?: string; reason?: string; message: string }): GatewayError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError(
        'GW_ERR_REQUEST_TIMEOUT',
        'the request (headers and body) did not arrive within requestTimeoutMs',
      )
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError(
        'GW_ERR_HEADERS_TOO_LARGE',
        "the request headers are larger than the server accepts (Node's limit, 16 KiB by default)",
        { item: 'headers' },
      )
  }
  const why = (err.reason ?? err.message).slice(0, 120)
  return new GatewayError(
    'GW_ERR_REQUEST_MALFORMED',
    `the HTTP request is malformed: ${why}${err.code === undefined ? '' : ` (${err.code})`}`,
  )
}

/** Builds the gateway (not listening); the caller owns `nc` and closes it after `app.close()`. */
export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const { cfg, nc } = deps
  const profileDefs = deps.profiles ?? PROFILES
  const profiles: ReadonlyMap<string, EntityKind> = new Map(profileDefs.map((p) => [p.profile, p.kind]))
  const corsOrigins = new Set(cfg.corsOrigins)
  const app = Fastify({
    ...(isPino(deps.logger) ? { loggerInstance: deps.logger } : { logger: deps.logger ?? false }),
    bodyLimit: cfg.bodyLimitBytes,
    requestTimeout: cfg.requestTimeoutMs,
    http: httpServerOptions(cfg.requestTimeoutMs),
    // Errors of Node's HTTP parser and the request deadline never reach a route: they are answered here on the
    // raw socket, in the gateway's shape (see clientError below).
    clientErrorHandler: (err, socket) => {
      clientError(err, socket)
    },
    // Shutdown is answered by the hook below in the gateway's shape; Fastify's own 503 has neither the shape nor
    // the security headers nor Retry-After.
    return503OnClosing: false,
    routerOptions: {
      // Path parameters longer than this are refused by the router before any route runs (GW_ERR_PARAMS_INVALID);
      // shorter ones reach the route's own checks (id pattern, VIN) and get their specific code.
      maxParamLength: 1024,
    },
    // Router-level failures (overlong parameter, malformed URL) in the gateway's error shape, not Fastify's.
    // These replies skip the hooks, so the security headers are set here too.
    frameworkErrors: (err, req, reply: FastifyReply) => {
      void reply
        .code(400)
        .headers({
          ...securityHeaders(cfg),
          'cache-control': 'no-store',
          ...corsReplyHeaders(corsOrigins, req.headers.origin),
        })
        .send(new GatewayError('GW_ERR_PARAMS_INVALID', err.message.slice(0, 200), { item: 'params' }).toJSON())
    },
    // No coercion: "12" is not a number and an object is not a one-item array.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  })
  const auth = cfg.auth

  /**
   * A reply written on the socket itself (no request object, no hooks): the `{code, message}` body, the security
   * headers, CORS when the request's headers were read (a slow body), and `Connection: close`, since the
   * connection cannot be trusted to be at a message boundary. Nothing is written when a reply already started.
   */
  function clientError(err: Error & { code?: string; reason?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const gw = fromClientError(err)
    app.log.debug({ err, code: gw.code }, 'client error answered on the socket')
    // Node keeps the response in progress on the socket as `_httpMessage` (its own clientError code reads it).
    const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined
    if (socket.writable && res?.headersSent !== true) {
      const body = JSON.stringify(gw.toJSON())
      const headers: Record<string, string> = {
        ...securityHeaders(cfg),
        'cache-control': 'no-store',
        ...corsReplyHeaders(corsOrigins, res?.req.headers.origin),
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        connection: 'close',
      }
      const head = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')
      socket.write(`HTTP/1.1 ${gw.status} ${STATUS_CODES[gw.status] ?? ''}\r\n${head}\r\n${body}`)
    }
    socket.destroy(err)
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const gw = toReplyError(err, req)
    if (gw.status >= 500) req.log.error({ err, code: gw.code }, gw.message)
    if (gw.status === 503) void reply.header('retry-after', String(cfg.retryAfterS))
    if (gw.status === 401) void reply.header('www-authenticate', 'Device, Bearer')
    void reply.code(gw.status).send(gw.toJSON())
  })
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(
        new GatewayError('GW_ERR_ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`).toJSON(),
      )
  })

  let pool = deps.pool
  if (!pool && auth.databaseUrl !== undefined) {
    // Bounded connect and query times: a database that stops answering yields 503s, not requests that hang.
    const own = new pg.Pool({
      connectionString: auth.databaseUrl,
      max: 10,
      connectionTimeoutMillis: cfg.databaseTimeoutMs,
      query_timeout: cfg.databaseTimeoutMs,
    })
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    own.on('error', (err) => app.log.warn({ err }, 'PostgreSQL idle client error'))
    app.addHook('onClose', async () => {
      await own.end()
    })
    pool = own
  }
  const devices = pool ? new DeviceCredentials(pool, auth.credentialCacheMs) : undefined
  if (!auth.enabled) app.log.warn('PITWALL_GATEWAY_AUTH=off: every request is allowed; for local development only')
  if (auth.jwtSecret !== undefined) {
    void app.register(fastifyJwt, {
      secret: auth.jwtSecret,
      sign: { algorithm: 'HS256' },
      verify: { algorithms: ['HS256'] },
    })
  }
  const metrics = deps.metrics ?? new GatewayMetrics({ site: cfg.runtime.site, service: 'gateway' })
  let idp: JwksKeySet | undefined
  if (auth.enabled && auth.jwks !== undefined) {
    const jwks = auth.jwks
    idp = new JwksKeySet({
      ...jwks,
      onFetch: (result) => metrics.jwksFetches.inc({ result }),
      onProblem: (message, err) => app.log.warn({ err, jwksUrl: jwks.url }, message),
      onSkip: (why) => app.log.debug({ jwksUrl: jwks.url }, `JWKS key not used: ${why}`),
    })
    // Fetched once at start so the first person's request does not wait for it; a failure does not stop the
    // gateway (devices and service keys do not need the provider) and is retried after the cooldown.
    const keys = idp
    app.addHook('onReady', async () => {
      void keys.refresh()
    })
  }
  // Before any route: the document generator must see every route being added.
  installOpenApi(app, GATEWAY_API_VERSION)
  installMetrics(app, metrics)
  // Before auth: CORS preflights are answered without credentials; security headers go on every reply.
  installHeaders(app, cfg)
  // Requests still arriving on open keep-alive connections while the gateway closes (in-flight ones finish).
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', async (_req, reply) => {
    if (!closing) return
    void reply.header('connection', 'close')
    throw new GatewayError('GW_ERR_UNAVAILABLE', 'the gateway is shutting down; retry (another instance will answer)')
  })
  installAuth(app, auth, devices, idp)
  installInputChecks(app)
  // Counted in the site's KV bucket, shared by its gateways, with the per-process limiter as the fallback (ratelimit.ts).
  const local = new LocalCounter()
  if (auth.rateLimitStore === 'local') {
    // No shared store: its gauge and counter would only say "down".
    metrics.registry.removeSingleMetric(METRICS.gatewayRateLimitStoreUp)
    metrics.registry.removeSingleMetric(METRICS.gatewayRateLimitFallback)
  }
  const limiter =
    auth.rateLimitStore === 'local'
      ? { incr: async (key: string, windowMs: number) => local.incr(key, windowMs) }
      : new SiteRateLimiter({
          nc,
          bucket: auth.rateLimitBucket,
          windowMs: auth.rateLimitWindowMs,
          storeTimeoutMs: auth.rateLimitStoreTimeoutMs,
          storeRetryMs: auth.rateLimitStoreRetryMs,
          onFallback: () => metrics.rateLimitFallback.inc(),
          onStoreState: (up, err) => {
            metrics.rateLimitStoreUp.set(up ? 1 : 0)
            if (up)
              app.log.info({ bucket: auth.rateLimitBucket }, "rate limits counted in the site's shared store again")
            else
              app.log.warn(
                { err, bucket: auth.rateLimitBucket, retryMs: auth.rateLimitStoreRetryMs },
                'rate limit store unavailable: counting per process until it answers (each gateway allows the full limit meanwhile)',
              )
          },
        })
  void app.register(rateLimit, {
    global: true,
    store: rateLimitStore(limiter),
    max: auth.rateLimitMax,
    timeWindow: auth.rateLimitWindowMs,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_req, ctx) =>
      new GatewayError('GW_ERR_RATE_LIMITED', `more than ${ctx.max} requests in the window; retry after ${ctx.after}`),
  })
  if (pool && deps.migrate !== false) {
    const p = pool
    const url = deps.pool ? undefined : auth.databaseUrl
    void app.register(async () => {
      if (url === undefined) {
        await migrate(p)
        return
      }
      // Not through the request pool: its query timeout would cut the wait for the migration lock while another
      // gateway migrates. Connecting is still bounded.
      const once = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: cfg.databaseTimeoutMs })
      once.on('error', (err) => app.log.warn({ err }, 'PostgreSQL idle client error (migrations)'))
      try {
        await migrate(once)
      } finally {
        await once.end()
      }
    })
  }

  void app.register(healthPlugin, { nc, cfg, ...(pool ? { pool } : {}) })
  void app.register(openApiPlugin)
  if (cfg.metrics) void app.register(metricsPlugin, { metrics })
  void app.register(ingestPlugin, { nc, cfg, profiles, metrics, ...(pool ? { pool } : {}) })
  if (pool && devices) void app.register(adminPlugin, { pool, devices })
  // The reference bucket the workers watch (geofences, out-of-service set), opened on first use.
  let bucket: Promise<KV> | undefined
  const refs = (): Promise<KV> => {
    bucket ??= openReferenceBucket(nc, cfg.runtime.streams.refBucket, cfg.runtime.replicas)
    // A failed open is retried by the next request rather than cached.
    bucket.catch(() => {
      bucket = undefined
    })
    return bucket
  }
  if (pool) {
    const p = pool
    void app.register(registryPlugin, {
      pool,
      profiles,
      onVehiclesChanged: async (log) => republishIfAssigned(p, refs, log),
    })
    void app.register(geofencePlugin, { pool, refs })
    void app.register(servicePlugin, { pool, refs })
  }
  if (pool) void app.register(queryPlugin, { pool })
  if (pool) void app.register(alarmPlugin, { pool, nc, site: cfg.runtime.site })
  if (pool) {
    const addresses = new AddressPolicy(cfg.notify.allowPrivate)
    void app.register(notifyPlugin, { pool, addresses })
    if (cfg.notify.worker) {
      // Started once the app is ready (migrations applied); stopped in preClose, before the pool closes, so the
      // attempts in flight are recorded.
      const worker = new NotifyWorker({ pool, cfg: cfg.notify, metrics, log: app.log, addresses })
      app.addHook('onReady', async () => {
        worker.start()
      })
      app.addHook('preClose', async () => {
        await worker.stop()
      })
    }
  }
  const stateOpts: StateOptions = {
    nc,
    cfg,
    profiles: profileDefs,
    ...(deps.query ? { query: deps.query } : {}),
    ...(pool ? { pool } : {}),
  }
  void app.register(statePlugin, stateOpts)
  void app.register(livePlugin, { nc, cfg, metrics, ...(pool ? { pool } : {}) })
  void app.register(consolePlugin, { cfg, warn: (msg) => app.log.warn(msg) })
  void app.register(siteCommandPlugin, { cfg, ...(pool ? { pool } : {}) })
  return app
}
