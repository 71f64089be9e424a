/**
 * People's tokens from an identity provider (issue 19): RS256 and ES256 JWTs verified against a JWKS served by a
 * local HTTP server (keys generated here with node:crypto, tokens signed by hand), beside HS256. Accepted with
 * either key, roles and fleet/site scopes enforced as for HS256; refused with a 401 and a reason that names no key:
 * wrong iss/aud, expired, not yet valid, unknown kid, alg none, HS256 signed with the public key, an algorithm
 * that is not its key's, a tampered payload. Key rotation (a new kid accepted after a refetch), a flood of
 * made-up kids costing the provider at most one fetch per cooldown, the provider down (503 before any set,
 * the last set kept after), a removed key refused once the cached set expires; which keys of a set are used, and
 * sets that are not used at all (not JSON, no usable key, too large, a redirect). Real nats-server and PostgreSQL.
 */
import t from 'tap'
import { createHmac, generateKeyPairSync, sign } from 'node:crypto'
import { compileGatewayConfig, gatewayOptionsFromEnv, type AuthOptions } from '../../gateway/mod.js'
import { parseJwks } from '../../gateway/jwks.js'
import { b64u, bearer, setupGateway, SVC_KEY, VIN } from '../helpers/gateway.js'
import {
  AUDIENCE,
  idpBearer,
  ISSUER,
  makeKey,
  signToken,
  startJwksServer,
  type JwksServer,
  type TestKey,
} from '../helpers/jwks.js'

const rsa1 = makeKey('RS256', 'rsa-1')
const ec1 = makeKey('ES256', 'ec-1')

type T = { teardown(fn: () => unknown): void }

async function until(what: string, ok: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A gateway trusting `idp`; waits for the key set fetched at start (unless the provider is down). */
async function setup(t: T, idp: JwksServer, auth: AuthOptions = {}) {
  const g = await setupGateway(t, { auth: { jwksUrl: idp.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE, ...auth } })
  await until('the key set fetched at start', () => idp.requests() >= 1)
  return g
}

const sensors = async (app: Awaited<ReturnType<typeof setup>>['app'], h: Record<string, string>) =>
  await app.inject({ method: 'GET', url: '/v1/sensors', headers: h })

t.test('RS256 and ES256 tokens accepted, roles and scopes enforced as for HS256, HS256 still accepted', async (t) => {
  const idp = await startJwksServer(t, [rsa1, ec1])
  const { app } = await setup(t, idp)
  for (const k of [rsa1, ec1]) {
    t.equal((await sensors(app, idpBearer(k, 'viewer'))).statusCode, 200, `${k.alg} viewer reads`)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: idpBearer(k, 'viewer'),
      payload: { id: `c-${k.kid}`, name: 'x' },
    })
    t.match(
      { status: res.statusCode, ...res.json() },
      { status: 403, code: 'GW_ERR_FORBIDDEN' },
      `${k.alg} viewer may not write`,
    )
    t.equal(
      (
        await app.inject({
          method: 'POST',
          url: '/v1/admin/devices/sensor/s1/credentials',
          headers: idpBearer(k, 'operator'),
        })
      ).statusCode,
      403,
      `${k.alg} operator is not admin`,
    )
    t.equal(
      (
        await app.inject({
          method: 'POST',
          url: '/v1/admin/devices/sensor/s1/credentials',
          headers: idpBearer(k, 'admin'),
        })
      ).statusCode,
      201,
      `${k.alg} admin`,
    )
  }
  const audList = {
    authorization: `Bearer ${signToken(ec1, { sub: 'u', role: 'viewer', aud: ['account', AUDIENCE] })}`,
  }
  t.equal((await sensors(app, audList)).statusCode, 200, 'aud as a list holding ours')
  const nbfSkew = {
    authorization: `Bearer ${signToken(rsa1, { sub: 'u', role: 'viewer', nbf: Math.floor(Date.now() / 1000) + 10 })}`,
  }
  t.equal((await sensors(app, nbfSkew)).statusCode, 200, 'nbf 10 s ahead: within the clock tolerance')
  t.equal((await sensors(app, bearer('viewer'))).statusCode, 200, 'HS256 beside the provider')
  t.equal((await sensors(app, { 'x-api-key': SVC_KEY })).statusCode, 200, 'service keys unaffected')

  // Scopes from a provider's token: fleets and sites as for HS256.
  const admin = idpBearer(rsa1, 'admin')
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b', customerId: 'beta' }],
    ['/v1/vehicles', { vin: VIN, brand: 'Volvo', model: 'FH', year: 2020, profile: 'road', customerId: 'acme' }],
  ] as const)
    t.equal(
      (await app.inject({ method: 'POST', url, headers: admin, payload: body })).statusCode,
      201,
      `${url} ${body.id ?? ''}`,
    )
  const tenant = idpBearer(ec1, 'viewer', { fleets: ['beta'] })
  t.same(
    (await sensors(app, tenant)).json<{ items: { id: string }[] }>().items.map((s) => s.id),
    ['s2'],
    'fleet-scoped list',
  )
  t.same(
    (await app.inject({ method: 'GET', url: '/v1/vehicles', headers: tenant })).json<{ items: unknown[] }>().items,
    [],
    'acme vehicle hidden',
  )
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/sensors/s1', headers: tenant })).statusCode,
    404,
    "another fleet's sensor is a 404",
  )
  const siteB = idpBearer(rsa1, 'operator', { sites: ['b'] })
  const reading = [{ ts: Date.now(), fields: { temperature: 21 } }]
  t.equal(
    (await app.inject({ method: 'POST', url: '/v1/sensors/s2/readings', headers: siteB, payload: reading })).statusCode,
    200,
    'site b operator writes s2',
  )
  const out = await app.inject({ method: 'POST', url: '/v1/sensors/s1/readings', headers: siteB, payload: reading })
  t.match(
    { status: out.statusCode, ...out.json() },
    { status: 404, code: 'GW_ERR_NOT_FOUND' },
    'site a sensor outside the scope',
  )
  const badScope = idpBearer(ec1, 'viewer', { fleets: 'beta' })
  t.match(
    (await sensors(app, badScope)).json(),
    { code: 'GW_ERR_UNAUTHENTICATED', message: /fleets must be a list/ },
    'scope claims checked as for HS256',
  )
  t.match(
    (await sensors(app, idpBearer(rsa1, 'root'))).json(),
    { code: 'GW_ERR_UNAUTHENTICATED', message: /role/ },
    'unknown role',
  )
})

t.test(
  'refused tokens: 401 with the failed check named, no key or token in the reply, no fetch for junk',
  async (t) => {
    const idp = await startJwksServer(t, [rsa1, ec1])
    // A long cooldown: after the fetch at start, no token below may cause another.
    const { app } = await setup(t, idp, { jwksCooldownMs: 600_000 })
    const now = Math.floor(Date.now() / 1000)
    const pem = rsa1.publicKey.export({ format: 'pem', type: 'spki' }).toString()
    const hmac = (secret: string, kid = rsa1.kid): string => {
      const head = `${b64u({ alg: 'HS256', typ: 'JWT', kid })}.${b64u({ iss: ISSUER, aud: AUDIENCE, sub: 'x', role: 'admin', exp: now + 600 })}`
      return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
    }
    const claims = { sub: 'x', role: 'admin' }
    const valid = signToken(rsa1, claims)
    const [vh, vp, vs] = valid.split('.') as [string, string, string]
    const stranger = makeKey('RS256', rsa1.kid) // the same kid, another key
    const ecDer = (() => {
      // An ES256 signature in DER (as OpenSSL makes it), not the r||s JWS requires.
      const head = `${b64u({ alg: 'ES256', kid: ec1.kid })}.${b64u({ iss: ISSUER, aud: AUDIENCE, ...claims, exp: now + 600 })}`
      return `${head}.${signDer(ec1, head)}`
    })()
    const cases: [string, string, RegExp][] = [
      ['wrong issuer', signToken(rsa1, { ...claims, iss: 'https://evil.test' }), /issuer/],
      ['wrong audience', signToken(ec1, { ...claims, aud: 'another-api' }), /audience/],
      ['audience list without ours', signToken(ec1, { ...claims, aud: ['a', 'b'] }), /audience/],
      ['no audience', signToken(ec1, { ...claims, aud: undefined }), /audience/],
      ['expired', signToken(rsa1, { ...claims, exp: now - 60 }), /expired/],
      ['no exp', signToken(ec1, { ...claims, exp: undefined }), /expiry/],
      ['not valid yet', signToken(rsa1, { ...claims, nbf: now + 300 }), /not valid yet/],
      ['unknown kid', signToken(makeKey('ES256', 'ec-unknown'), claims), /does not list/],
      ['no kid', signToken(rsa1, claims, { kid: undefined }), /names no key/],
      [
        'alg none with a kid',
        `${b64u({ alg: 'none', kid: rsa1.kid })}.${b64u({ iss: ISSUER, aud: AUDIENCE, ...claims, exp: now + 600 })}.`,
        /algorithm is not accepted/,
      ],
      [
        'alg none',
        `${b64u({ alg: 'none' })}.${b64u({ iss: ISSUER, aud: AUDIENCE, ...claims, exp: now + 600 })}.`,
        /algorithm is not accepted/,
      ],
      // With a shared secret configured HS256 goes to it, where the public key is just a wrong secret.
      ['HS256 signed with the RSA public key (PEM)', hmac(pem), /invalid or expired/],
      ['HS256 signed with the RSA modulus', hmac(String(rsa1.jwk.n)), /invalid or expired/],
      [
        'RS256 header naming the EC key',
        signToken({ ...ec1, alg: 'RS256', privateKey: rsa1.privateKey }, claims),
        /does not match its key/,
      ],
      [
        'ES256 header naming the RSA key',
        signToken({ ...rsa1, alg: 'ES256', privateKey: ec1.privateKey }, claims),
        /does not match its key/,
      ],
      ['RS384', signToken(rsa1, claims, { alg: 'RS384' }), /algorithm is not accepted/],
      ['PS256', signToken(rsa1, claims, { alg: 'PS256' }), /algorithm is not accepted/],
      [
        'tampered payload',
        `${vh}.${b64u({ iss: ISSUER, aud: AUDIENCE, sub: 'x', role: 'admin', exp: now + 86_400 })}.${vs}`,
        /signature is invalid/,
      ],
      ['signed by another key under a known kid', signToken(stranger, claims), /signature is invalid/],
      ['ES256 signature in DER', ecDer, /signature is invalid/],
      ['no signature', `${vh}.${vp}.`, /signature is invalid/],
      ['critical header', signToken(rsa1, claims, { crit: ['exp'] }), /critical/],
      ['two parts', `${vh}.${vp}`, /not a signed JWT/],
      ['header not JSON', `${Buffer.from('{"alg":"RS256",').toString('base64url')}.${vp}.${vs}`, /not a JWT/],
      ['payload not base64url', `${vh}.${vp}!.${vs}`, /not a signed JWT/],
    ]
    const keyText = [String(rsa1.jwk.n), String(ec1.jwk.x), String(ec1.jwk.y), pem.split('\n')[1] ?? '?']
    for (const [name, token, why] of cases) {
      const res = await sensors(app, { authorization: `Bearer ${token}` })
      const body = res.json<{ code: string; message: string }>()
      t.ok(
        res.statusCode === 401 && body.code === 'GW_ERR_UNAUTHENTICATED' && why.test(body.message),
        `${name}: ${res.statusCode} ${body.message}`,
      )
      t.ok(
        keyText.every((k) => !res.body.includes(k.slice(0, 40))) && !res.body.includes(token.slice(-20)),
        `${name}: no key or token in the reply`,
      )
    }
    t.equal((await sensors(app, { authorization: `Bearer ${valid}` })).statusCode, 200, 'the untampered token')

    // A flood of made-up kids within the cooldown: refused, and the provider is not asked again.
    const fetched = idp.requests()
    const flood = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        sensors(app, { authorization: `Bearer ${signToken(makeKey('ES256', `bogus-${i}`), claims)}` }),
      ),
    )
    t.same([...new Set(flood.map((r) => r.statusCode))], [401], '50 unknown kids refused')
    t.equal(idp.requests(), fetched, 'no fetch within the cooldown')
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    t.match(metrics, /pitwall_gateway_jwks_fetches_total\{result="ok",[^}]*\} 1\n/, 'one fetch, at start')
    t.match(
      metrics,
      /pitwall_gateway_jwks_fetches_total\{result="throttled",[^}]*\} 51\n/,
      'unknown kids counted as throttled',
    )

    // Without a shared secret HS256 is not accepted at all, whatever it was signed with.
    const only = await setup(t, idp, { jwtSecret: '' })
    for (const [name, token] of [
      ['HS256 with the public key', hmac(pem)],
      ['HS256 with the gateway secret', bearer('admin').authorization?.slice(7) ?? ''],
    ] as const) {
      const res = await sensors(only.app, { authorization: `Bearer ${token}` })
      t.match(
        { status: res.statusCode, ...res.json() },
        { status: 401, code: 'GW_ERR_UNAUTHENTICATED', message: /algorithm is not accepted/ },
        `JWKS only: ${name}`,
      )
    }
    t.equal((await sensors(only.app, idpBearer(ec1, 'viewer'))).statusCode, 200, 'JWKS only: provider token')
  },
)

t.test('key rotation: a new kid is accepted after a refetch; made-up kids cost one fetch per cooldown', async (t) => {
  const idp = await startJwksServer(t, [rsa1])
  const { app } = await setup(t, idp, { jwksCooldownMs: 300 })
  const rsa2 = makeKey('RS256', 'rsa-2')
  const ec2 = makeKey('ES256', 'ec-2')
  await new Promise((r) => setTimeout(r, 350))
  let res = await sensors(app, idpBearer(rsa2, 'viewer'))
  t.match(
    { status: res.statusCode, ...res.json() },
    { status: 401, message: /does not list/ },
    'rsa-2 before the provider lists it',
  )
  t.equal(idp.requests(), 2, 'the unknown kid caused a refetch (the cooldown had passed)')

  idp.setKeys([rsa1, rsa2, ec2])
  t.equal(
    (await sensors(app, idpBearer(rsa2, 'viewer'))).statusCode,
    401,
    'listed now, but the cooldown has not passed: not refetched yet',
  )
  t.equal(idp.requests(), 2)
  await new Promise((r) => setTimeout(r, 350))
  // Concurrent requests with the new kids share one fetch.
  const both = await Promise.all(
    [rsa2, ec2, rsa2, ec2].map(async (k) => (await sensors(app, idpBearer(k, 'viewer'))).statusCode),
  )
  t.same(both, [200, 200, 200, 200], 'rotated keys accepted after the refetch')
  t.equal(idp.requests(), 3, 'one fetch for four concurrent requests')
  t.equal((await sensors(app, idpBearer(rsa1, 'viewer'))).statusCode, 200, 'the old key still listed, still accepted')

  // After the cooldown, a flood of made-up kids: one fetch in all, every token refused.
  await new Promise((r) => setTimeout(r, 350))
  const flood = await Promise.all(
    Array.from({ length: 40 }, (_, i) => sensors(app, idpBearer(makeKey('ES256', `bogus-${i}`), 'admin'))),
  )
  t.same([...new Set(flood.map((r) => r.statusCode))], [401])
  t.equal(idp.requests(), 4, 'forty unknown kids: one fetch')
})

t.test('cache expiry and provider outages', async (t) => {
  const idp = await startJwksServer(t, [rsa1, ec1])
  idp.setDown(true)
  const { app } = await setup(t, idp, { jwksCacheMs: 1_000, jwksCooldownMs: 200 })
  // No key set yet: the token may be fine, so not a 401.
  let res = await sensors(app, idpBearer(rsa1, 'viewer'))
  t.match(
    { status: res.statusCode, ...res.json() },
    { status: 503, code: 'GW_ERR_UNAVAILABLE', message: /identity provider/ },
    'provider down at start: 503',
  )
  t.ok(res.headers['retry-after'], 'Retry-After')
  t.equal((await sensors(app, bearer('viewer'))).statusCode, 200, 'HS256 does not need the provider')
  t.equal(
    (await sensors(app, { authorization: `Bearer ${b64u({ alg: 'none' })}.${b64u({ sub: 'x', role: 'admin' })}.` }))
      .statusCode,
    401,
    'junk is still a 401',
  )

  idp.setDown(false)
  await new Promise((r) => setTimeout(r, 250))
  t.equal((await sensors(app, idpBearer(rsa1, 'viewer'))).statusCode, 200, 'provider back: fetched and accepted')

  // The set expires while the provider is down: the last set stays in use.
  idp.setDown(true)
  await new Promise((r) => setTimeout(r, 1_100))
  const failedBefore = idp.requests()
  t.equal((await sensors(app, idpBearer(ec1, 'viewer'))).statusCode, 200, 'expired set, provider down: last set kept')
  t.equal(idp.requests(), failedBefore + 1, 'a refetch was tried')

  // The provider drops rsa-1: refused once the set is refetched after expiry.
  idp.setDown(false)
  idp.setKeys([ec1])
  await new Promise((r) => setTimeout(r, 1_100))
  res = await sensors(app, idpBearer(rsa1, 'viewer'))
  t.match(
    { status: res.statusCode, ...res.json() },
    { status: 401, message: /does not list/ },
    'removed key refused after expiry',
  )
  t.equal((await sensors(app, idpBearer(ec1, 'viewer'))).statusCode, 200, 'remaining key accepted')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /pitwall_gateway_jwks_fetches_total\{result="failed",[^}]*\} [2-9]\n/, 'failed fetches counted')
})

t.test('config: JWKS settings from the environment, contradictions refused', async (t) => {
  const db = 'postgres://127.0.0.1/x'
  const env = {
    PITWALL_GATEWAY_DATABASE_URL: db,
    PITWALL_GATEWAY_JWT_JWKS_URL: 'https://idp.example.com/realms/x/protocol/openid-connect/certs',
    PITWALL_GATEWAY_JWT_ISSUER: 'https://idp.example.com/realms/x',
    PITWALL_GATEWAY_JWT_AUDIENCE: 'pitwall',
  }
  const cfg = compileGatewayConfig(gatewayOptionsFromEnv({ ...env, PITWALL_GATEWAY_JWT_JWKS_COOLDOWN_MS: '5000' }))
  t.same(
    cfg.auth.jwks,
    {
      url: env.PITWALL_GATEWAY_JWT_JWKS_URL,
      issuer: env.PITWALL_GATEWAY_JWT_ISSUER,
      audience: 'pitwall',
      cacheMs: 600_000,
      cooldownMs: 5_000,
      timeoutMs: 5_000,
    },
    'a provider alone is enough: no shared secret required',
  )
  t.equal(cfg.auth.jwtSecret, undefined)
  const bad: [Record<string, string>, RegExp][] = [
    [{ PITWALL_GATEWAY_JWT_ISSUER: '' }, /PITWALL_GATEWAY_JWT_ISSUER: is required with PITWALL_GATEWAY_JWT_JWKS_URL/],
    [{ PITWALL_GATEWAY_JWT_AUDIENCE: '' }, /PITWALL_GATEWAY_JWT_AUDIENCE: is required/],
    [{ PITWALL_GATEWAY_JWT_JWKS_URL: 'http://idp.example.com/certs' }, /PITWALL_GATEWAY_JWT_JWKS_URL: must be https/],
    [{ PITWALL_GATEWAY_JWT_JWKS_URL: 'not a url' }, /PITWALL_GATEWAY_JWT_JWKS_URL: is not a URL/],
    [{ PITWALL_GATEWAY_JWT_JWKS_URL: 'https://u:p@idp.example.com/certs' }, /must not carry credentials/],
    [
      { PITWALL_GATEWAY_JWT_JWKS_URL: '' },
      /PITWALL_GATEWAY_JWT_ISSUER: is set but PITWALL_GATEWAY_JWT_JWKS_URL is not/,
    ],
    [{ PITWALL_GATEWAY_JWT_JWKS_CACHE_MS: '10' }, /PITWALL_GATEWAY_JWT_JWKS_CACHE_MS: must be an integer in/],
    [{ PITWALL_GATEWAY_JWT_JWKS_TIMEOUT_MS: 'soon' }, /PITWALL_GATEWAY_JWT_JWKS_TIMEOUT_MS: must be an integer/],
  ]
  for (const [over, msg] of bad) {
    t.throws(
      () => compileGatewayConfig(gatewayOptionsFromEnv({ ...env, ...over })),
      { code: 'PW_CONFIG_INVALID', message: msg },
      JSON.stringify(over),
    )
  }
  t.throws(
    () => compileGatewayConfig({ auth: { databaseUrl: db } }),
    { message: /PITWALL_GATEWAY_JWT_SECRET.*PITWALL_GATEWAY_JWT_JWKS_URL/ },
    'auth on needs a secret or a provider',
  )
  t.equal(
    compileGatewayConfig({
      auth: { databaseUrl: db, jwksUrl: 'http://[::1]:8080/jwks', jwtIssuer: 'i', jwtAudience: 'a' },
    }).auth.jwks?.url,
    'http://[::1]:8080/jwks',
    'plain http on loopback',
  )
})

/** An ES256 signature in DER encoding (OpenSSL's default), the form JWS does not use. */
function signDer(key: TestKey, data: string): string {
  return sign('sha256', Buffer.from(data), key.privateKey).toString('base64url')
}

t.test('key sets: which keys are used, and sets that are not used at all', async (t) => {
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' })
  const priv = makeKey('RS256', 'with-private')
  const skipped: string[] = []
  const keys = parseJwks(
    {
      keys: [
        rsa1.jwk,
        ec1.jwk,
        { ...rsa1.jwk, kid: 'enc-1', use: 'enc' },
        { ...small, kid: 'small' },
        { ...p384, kid: 'p384' },
        { ...rsa1.jwk, kid: 'rs384', alg: 'RS384' },
        { ...ec1.jwk, kid: 'ec-as-rs', alg: 'RS256' },
        { ...rsa1.jwk, kid: undefined },
        { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
        { ...rsa1.jwk, kid: 'tiny', n: 'AAAA' },
        { kty: 'EC', crv: 'P-256', kid: 'broken', x: 'AAAA', y: 'AAAA' },
        { ...ec1.jwk, kid: rsa1.kid },
        { ...priv.privateKey.export({ format: 'jwk' }), kid: priv.kid },
        'junk',
      ],
    },
    (why) => skipped.push(why),
  )
  t.same([...keys.keys()], ['rsa-1', 'ec-1', 'with-private'], 'RSA >= 2048 and P-256 signing keys with a kid')
  t.same(
    [...keys.values()].map((k) => k.alg),
    ['RS256', 'ES256', 'RS256'],
    'algorithm pinned per key',
  )
  t.equal(keys.get('with-private')?.key.type, 'public', 'private members of a JWK are not kept')
  t.same(
    skipped,
    [
      'kid enc-1: use is not sig',
      'kid small: RSA key under 2048 bits',
      'kid p384: not an RSA or P-256 key',
      'kid rs384: alg RS384 is not accepted',
      'kid ec-as-rs: alg RS256 does not fit its EC key',
      'no kid',
      'kid hmac: not an RSA or P-256 key',
      'kid tiny: RSA key under 2048 bits',
      'kid broken: not a valid EC public key',
      'kid rsa-1: listed twice, the first is used',
      'not an object',
    ],
    'each skipped key with its reason',
  )
  t.throws(() => parseJwks({ keys: [{ ...rsa1.jwk, use: 'enc' }] }), /no RS256 or ES256 signing key/)
  t.throws(() => parseJwks({ key: [] }), /not a JWK set/)
  t.throws(() => parseJwks([rsa1.jwk]), /not a JWK set/)

  // Over HTTP: a set the gateway cannot use is a failed fetch, and the previous set stays.
  const idp = await startJwksServer(t, [rsa1])
  const { app } = await setup(t, idp, { jwksCooldownMs: 100 })
  const bad: [string, { status: number; headers?: Record<string, string>; body: string }][] = [
    ['not JSON', { status: 200, body: '<html>login</html>' }],
    ['no usable key', { status: 200, body: JSON.stringify({ keys: [{ ...ec1.jwk, use: 'enc' }] }) }],
    ['larger than 1 MiB', { status: 200, body: JSON.stringify({ keys: [rsa1.jwk], pad: 'x'.repeat(1_100_000) }) }],
    ['a redirect (not followed)', { status: 302, headers: { location: idp.url }, body: '' }],
    ['a 500', { status: 500, body: 'oops' }],
  ]
  for (const [name, raw] of bad) {
    idp.setRaw(raw)
    await new Promise((r) => setTimeout(r, 150))
    const before = idp.requests()
    t.equal((await sensors(app, idpBearer(ec1, 'viewer'))).statusCode, 401, `${name}: ec-1 not learnt`)
    t.equal(idp.requests(), before + 1, `${name}: fetched`)
    t.equal((await sensors(app, idpBearer(rsa1, 'viewer'))).statusCode, 200, `${name}: the previous set stays`)
  }
  idp.setRaw(undefined)
  idp.setKeys([rsa1, ec1])
  await new Promise((r) => setTimeout(r, 150))
  t.equal((await sensors(app, idpBearer(ec1, 'viewer'))).statusCode, 200, 'a good set again: ec-1 learnt')
  t.match(
    (await app.inject({ method: 'GET', url: '/metrics' })).body,
    /pitwall_gateway_jwks_fetches_total\{result="failed",[^}]*\} 5\n/,
    'five failed fetches',
  )
})
