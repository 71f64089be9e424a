/**
 * Authentication and authorisation, applied to every route by the route's `config.access`:
 *   public   no credential (health probes)
 *   read     people (JWT) and service keys of any role
 *   ingest   device credentials (their own entity only), people and keys with role operator or admin
 *   write    people and keys with role operator or admin (registry changes; not devices)
 *   operate  people and keys with role operator or admin, scoped people included (alarm workflow; the route
 *            checks the scope of the thing it acts on)
 *   admin    people and keys with role admin
 * A route without `access` is admin-only (secure by default). Credentials:
 *   `Authorization: Device <credId>.<secret>`  device credential (PostgreSQL, see db.ts)
 *   `Authorization: Bearer <jwt>`               a person; claims `sub` and `role`; HS256 with the shared secret,
 *                                               or RS256/ES256 with an identity provider's keys (jwks.ts)
 *   `X-API-Key: <key>`                          a service; keys configured by their SHA-256
 * Who the caller is is settled in `onRequest` (so the rate limiter can key on it) and enforced in `preParsing`,
 * after the rate limiter: failed attempts are rate limited too, per client address.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type pg from 'pg'
import type { EntityKind } from '../actors/mod.js'
import type { AuthConfig, Role } from './config.js'
import { ROLES } from './config.js'
import { loadCredential, secretMatches, type StoredCredential } from './db.js'
import { GatewayError } from './errors.js'
import { tokenAlg, verifyProviderToken, type JwksKeySet } from './jwks.js'

export type Access = 'public' | 'read' | 'ingest' | 'write' | 'operate' | 'admin'

export type Principal =
  | { type: 'device'; id: string; kind: EntityKind; entity: string }
  /** `fleets` (customer ids) and `sites` from the JWT restrict what a non-admin person sees (scope.ts). */
  | { type: 'user'; id: string; role: Role; fleets?: readonly string[]; sites?: readonly string[] }
  | { type: 'key'; id: string; role: Role }
  /** Auth is off (local development): everything is allowed. */
  | { type: 'dev'; id: 'dev' }

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
    /** Device routes: the path parameter naming the entity, and its kind. */
    entityParam?: { kind: EntityKind; param: string }
  }
  interface FastifyRequest {
    principal: Principal | null
    authError: GatewayError | null
  }
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 }
const DEVICE_TOKEN = /^(dc_[0-9a-f]{24})\.([A-Za-z0-9_-]{43})$/
/** Bounds the credential cache against floods of distinct (valid) ids. */
const CACHE_MAX = 100_000

/** Verifies device credentials against PostgreSQL, trusting a verified row for `ttlMs` (revocation delay). */
export class DeviceCredentials {
  private readonly cache = new Map<string, { until: number; row: StoredCredential | undefined }>()
  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMs: number,
  ) {}

  /** The credential's entity, or undefined when the token is unknown, revoked or wrong. */
  async verify(token: string): Promise<StoredCredential | undefined> {
    const m = DEVICE_TOKEN.exec(token)
    const id = m?.[1]
    const secret = m?.[2]
    if (id === undefined || secret === undefined) return undefined
    const now = Date.now()
    let hit = this.cache.get(id)
    if (!hit || hit.until <= now) {
      this.cache.delete(id)
      const row = await loadCredential(this.pool, id)
      hit = { until: now + this.ttlMs, row }
      // Unknown ids are not cached: they would let anyone fill the cache.
      if (row && this.ttlMs > 0) {
        if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value ?? '')
        this.cache.set(id, hit)
      }
    }
    // The secret is checked on every request, cached or not; the cache only saves the database round trip.
    const row = hit.row
    if (!row || row.revoked || !secretMatches(row.secretHash, secret)) return undefined
    return row
  }

  /** Forgets a credential at once on this gateway (others notice within the TTL). */
  forget(id: string): void {
    this.cache.delete(id)
  }
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest()

function unauthenticated(message: string): GatewayError {
  return new GatewayError('GW_ERR_UNAUTHENTICATED', message)
}

type PersonClaims = { sub?: unknown; role?: unknown; fleets?: unknown; sites?: unknown }

/**
 * A person's verified claims. The header's `alg` picks the verifier: HS256 the shared secret (fast-jwt, pinned
 * to HS256), RS256/ES256 the identity provider's keys; anything else (`none` included) is refused before any key
 * is looked at, so a token HMAC-signed with a provider's public key never meets that key.
 */
async function verifyBearer(
  app: FastifyInstance,
  cfg: AuthConfig,
  idp: JwksKeySet | undefined,
  token: string,
): Promise<PersonClaims> {
  const alg = tokenAlg(token)
  if (alg === 'HS256' && cfg.jwtSecret !== undefined) {
    try {
      return app.jwt.verify<PersonClaims>(token)
    } catch {
      // The reason (expired, bad signature) is not told to the client; the token is never logged.
      throw unauthenticated('bearer token invalid or expired')
    }
  }
  if ((alg === 'RS256' || alg === 'ES256') && idp !== undefined && cfg.jwks !== undefined)
    return await verifyProviderToken(token, idp, cfg.jwks)
  throw unauthenticated(alg === undefined ? 'bearer token is not a JWT' : 'bearer token algorithm is not accepted')
}

/** Who sent the request; throws GW_ERR_UNAUTHENTICATED for missing, malformed, wrong, expired or revoked credentials. */
async function authenticate(
  app: FastifyInstance,
  cfg: AuthConfig,
  devices: DeviceCredentials | undefined,
  idp: JwksKeySet | undefined,
  req: FastifyRequest,
): Promise<Principal> {
  const authz = req.headers.authorization
  const apiKey = req.headers['x-api-key']
  if (authz !== undefined && apiKey !== undefined)
    throw unauthenticated('send one credential: Authorization or X-API-Key, not both')
  if (typeof apiKey === 'string') {
    const got = sha256(apiKey)
    let match: Principal | undefined
    // Every configured key is compared, so the time taken does not say which one came close.
    for (const k of cfg.apiKeys) {
      if (timingSafeEqual(got, k.sha256) && match === undefined) match = { type: 'key', id: k.id, role: k.role }
    }
    if (!match) throw unauthenticated('unknown API key')
    return match
  }
  if (apiKey !== undefined) throw unauthenticated('X-API-Key sent more than once')
  if (authz === undefined)
    throw unauthenticated('credentials required: Authorization: Device <credential> | Bearer <jwt>, or X-API-Key')
  const sp = authz.indexOf(' ')
  const scheme = sp < 0 ? authz : authz.slice(0, sp)
  const value = sp < 0 ? '' : authz.slice(sp + 1).trim()
  if (scheme === 'Device' && devices) {
    const row = await devices.verify(value)
    if (!row) throw unauthenticated('device credential unknown, revoked or wrong')
    return { type: 'device', id: row.id, kind: row.kind, entity: row.entity }
  }
  if (scheme === 'Bearer' && (cfg.jwtSecret !== undefined || idp !== undefined)) {
    // HS256 and provider tokens alike: the same claims, the same scoping.
    const claims = await verifyBearer(app, cfg, idp, value)
    if (
      typeof claims.sub !== 'string' ||
      claims.sub === '' ||
      typeof claims.role !== 'string' ||
      !(ROLES as readonly string[]).includes(claims.role)
    ) {
      throw unauthenticated(`bearer token must carry sub and a role (${ROLES.join(', ')})`)
    }
    const user: Principal = { type: 'user', id: claims.sub, role: claims.role as Role }
    for (const claim of ['fleets', 'sites'] as const) {
      const v = claims[claim]
      if (v === undefined) continue
      if (
        !Array.isArray(v) ||
        v.length > 1000 ||
        !v.every((x): x is string => typeof x === 'string' && x.length > 0 && x.length <= 64)
      ) {
        throw unauthenticated(`bearer token claim ${claim} must be a list of ids`)
      }
      user[claim] = v
    }
    return user
  }
  throw unauthenticated('unsupported Authorization scheme: use Device or Bearer')
}

/** Throws GW_ERR_FORBIDDEN (role) or GW_ERR_FORBIDDEN_ENTITY (a device outside its entity). */
function authorize(p: Principal, req: FastifyRequest): void {
  const { access = 'admin', entityParam } = req.routeOptions.config
  if (p.type === 'dev' || access === 'public') return
  if (p.type === 'device') {
    if (access !== 'ingest') throw new GatewayError('GW_ERR_FORBIDDEN', 'device credentials may only send readings')
    if (entityParam) {
      const target = (req.params as Record<string, unknown>)[entityParam.param]
      if (entityParam.kind !== p.kind || target !== p.entity) {
        throw new GatewayError('GW_ERR_FORBIDDEN_ENTITY', `this credential writes ${p.kind} ${p.entity} only`, {
          item: `params.${entityParam.param}`,
        })
      }
    }
    return
  }
  const need: Role =
    access === 'read'
      ? 'viewer'
      : access === 'ingest' || access === 'write' || access === 'operate'
        ? 'operator'
        : 'admin'
  if (RANK[p.role] < RANK[need])
    throw new GatewayError('GW_ERR_FORBIDDEN', `role ${p.role} may not do this; needs ${need} or above`)
}

/** The rate limiter's key: the credential when known, else the client address. */
export function rateLimitKey(req: FastifyRequest): string {
  const p = req.principal
  return p ? `${p.type}:${p.id}` : `ip:${req.ip}`
}

/**
 * Installs the auth hooks on the root instance (so they cover every plugin's routes). Must be called before
 * the rate limiter and the feature plugins are registered.
 */
export function installAuth(
  app: FastifyInstance,
  cfg: AuthConfig,
  devices: DeviceCredentials | undefined,
  idp?: JwksKeySet,
): void {
  app.decorateRequest('principal', null)
  app.decorateRequest('authError', null)
  app.addHook('onRequest', async (req) => {
    if (req.is404 || (req.routeOptions.config.access ?? 'admin') === 'public') return
    if (!cfg.enabled) {
      req.principal = { type: 'dev', id: 'dev' }
      return
    }
    try {
      req.principal = await authenticate(app, cfg, devices, idp, req)
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err
      req.authError = err
    }
  })
  app.addHook('preParsing', async (req) => {
    if (req.is404 || (req.routeOptions.config.access ?? 'admin') === 'public') return
    if (req.authError) throw req.authError
    if (!req.principal) throw unauthenticated('credentials required')
    authorize(req.principal, req)
  })
}
