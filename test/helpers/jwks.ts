/**
 * A local identity provider for gateway tests: a JWKS served over HTTP on a loopback port (keys can be added,
 * removed, or the server made to fail), RSA and EC key pairs generated with node:crypto, and tokens signed by
 * hand, so the tests do not trust the code they check.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import { b64u } from './gateway.js'

export const ISSUER = 'https://idp.test/realms/pitwall'
export const AUDIENCE = 'pitwall-gateway'

export interface TestKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256'
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** The public JWK as the provider lists it (kid, alg, use). */
  readonly jwk: JsonWebKey
}

/** A fresh RSA 2048 (RS256) or P-256 (ES256) key pair. */
export function makeKey(alg: 'RS256' | 'ES256', kid: string): TestKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { kid, alg, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } }
}

/** A JWS signed with `key` (ES256 as r||s); header and claims can be overridden to forge bad tokens. */
export function signToken(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000)
  const head = `${b64u({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })}.${b64u({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, ...claims })}`
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(head), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(head), key.privateKey)
  return `${head}.${sig.toString('base64url')}`
}

/** `Authorization: Bearer` for a person with `role`, signed by the provider's `key`. */
export const idpBearer = (
  key: TestKey,
  role: string,
  claims: Record<string, unknown> = {},
): Record<string, string> => ({ authorization: `Bearer ${signToken(key, { sub: `idp-${role}`, role, ...claims })}` })

export interface JwksServer {
  readonly url: string
  /** Requests served (every answer counts, failures included). */
  requests(): number
  /** Replaces the keys listed. */
  setKeys(keys: readonly TestKey[]): void
  /** While down, every request gets a 503. */
  setDown(down: boolean): void
  /** Answers every request with this status, headers and body instead of the key set (undefined: back to normal). */
  setRaw(raw: { status: number; headers?: Record<string, string>; body: string } | undefined): void
}

/** Serves `{keys: [...]}` at /jwks on 127.0.0.1 (random port) until the test ends. */
export async function startJwksServer(
  t: { teardown(fn: () => unknown): void },
  keys: readonly TestKey[],
): Promise<JwksServer> {
  let listed = [...keys]
  let down = false
  let served = 0
  let raw: { status: number; headers?: Record<string, string>; body: string } | undefined
  const srv: Server = createServer((req, res) => {
    served++
    if (raw) {
      res.writeHead(raw.status, raw.headers).end(raw.body)
      return
    }
    if (down || req.url !== '/jwks') {
      res.writeHead(down ? 503 : 404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: listed.map((k) => k.jwk) }))
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  t.teardown(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections()
        srv.close(() => r())
      }),
  )
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/jwks`,
    requests: () => served,
    setKeys: (k) => {
      listed = [...k]
    },
    setDown: (d) => {
      down = d
    },
    setRaw: (r) => {
      raw = r
    },
  }
}
