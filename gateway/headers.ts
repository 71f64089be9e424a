/**
 * Security headers on every reply and CORS for configured browser origins, as two root hooks (no helmet, no
 * @fastify/cors). Installed before auth so a preflight (which browsers send without credentials) is answered
 * before any credential is asked for.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from './config.js'

/** Headers a browser client may send cross-origin. */
export const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, Idempotency-Key, X-API-Key, Last-Event-ID'
/** Reply headers a browser client may read cross-origin. */
export const CORS_EXPOSE_HEADERS =
  'Retry-After, WWW-Authenticate, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset'
export const CORS_ALLOW_METHODS = 'GET, POST, DELETE'
export const CORS_MAX_AGE_S = 600

/** The security headers every reply carries (API replies: Cache-Control no-store unless a route set its own). */
export function securityHeaders(cfg: Pick<GatewayConfig, 'hstsMaxAgeS'>): Record<string, string> {
  const h: Record<string, string> = {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
  }
  if (cfg.hstsMaxAgeS > 0) h['strict-transport-security'] = `max-age=${cfg.hstsMaxAgeS}; includeSubDomains`
  return h
}

/**
 * CORS headers for a request from `origin`: `Vary: Origin` whenever CORS is configured (the reply depends on
 * Origin, so caches must key on it), and `Access-Control-Allow-Origin` with the caller's own origin only when it
 * is listed exactly; never `*`. Credentials are headers (Authorization, X-API-Key), not cookies, so
 * Access-Control-Allow-Credentials is not sent.
 */
export function corsReplyHeaders(
  origins: ReadonlySet<string>,
  origin: string | string[] | undefined,
): Record<string, string> {
  if (origins.size === 0) return {}
  if (typeof origin !== 'string' || !origins.has(origin)) return { vary: 'Origin' }
  return { vary: 'Origin', 'access-control-allow-origin': origin, 'access-control-expose-headers': CORS_EXPOSE_HEADERS }
}

export function installHeaders(app: FastifyInstance, cfg: Pick<GatewayConfig, 'corsOrigins' | 'hstsMaxAgeS'>): void {
  const origins = new Set(cfg.corsOrigins)
  const security = securityHeaders(cfg)

  const corsHeaders = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const h = corsReplyHeaders(origins, req.headers.origin)
    void reply.headers(h)
    return h['access-control-allow-origin'] !== undefined
  }

  app.addHook('onRequest', async (req, reply) => {
    const allowed = corsHeaders(req, reply)
    // A preflight: OPTIONS with Access-Control-Request-Method. Answered here for any path, without credentials.
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      if (allowed) {
        void reply
          .header('access-control-allow-methods', CORS_ALLOW_METHODS)
          .header('access-control-allow-headers', CORS_ALLOW_HEADERS)
          .header('access-control-max-age', String(CORS_MAX_AGE_S))
      }
      // Not allowed: 204 without CORS headers, so the browser refuses the real request.
      return reply.code(204).send()
    }
    return undefined
  })

  app.addHook('onSend', async (_req, reply, payload) => {
    // The operator console's pages set their own policy (console.ts); every other reply gets `default-src 'none'`.
    for (const [k, v] of Object.entries(security))
      if (k !== 'content-security-policy' || !reply.hasHeader(k)) void reply.header(k, v)
    // API replies are per caller and per moment (live state, credentials): never stored by a cache.
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store')
    return payload
  })
}
