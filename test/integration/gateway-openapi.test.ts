/**
 * OpenAPI document (every route listed, valid-looking OpenAPI 3), the committed gateway/openapi.json equal to the
 * one generated now (so a contract change is a reviewed diff), the Swagger UI, readiness with PostgreSQL, and
 * the error table: every GW_ERR_* code documented with its HTTP status in gateway/README.md and docs/errors.md.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import pg from 'pg'
import { GW_ERR } from '../../gateway/mod.js'
import { generateOpenApi, OPENAPI_FILE } from '../../gateway/openapi-export.js'
import { setupGateway } from '../helpers/gateway.js'

interface Doc {
  openapi: string
  info: { title: string; version: string }
  paths: Record<
    string,
    Record<string, { responses?: Record<string, unknown>; parameters?: { in: string; name: string }[] }>
  >
  components?: { securitySchemes?: Record<string, unknown> }
}

t.test('GET /openapi.json lists every route; /docs serves the UI', async (t) => {
  const routes: { method: string; url: string }[] = []
  const { app } = await setupGateway(t, {
    beforeReady: (a) =>
      a.addHook('onRoute', (r) => {
        for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url })
      }),
  })
  const res = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(res.statusCode, 200, 'public')
  const doc = res.json<Doc>()
  t.match(doc.openapi, /^3\.\d+\.\d+$/)
  t.match(doc.info, { title: 'pitwall gateway', version: /^\d+\.\d+\.\d+$/ })
  t.ok(doc.components?.securitySchemes?.bearer && doc.components.securitySchemes.apiKey, 'security schemes')
  // The operator console's pages (/console, /console/*) are documents, not API: hidden from the document.
  const api = routes.filter(
    (r) => r.url !== '/openapi.json' && !r.url.startsWith('/docs') && !r.url.startsWith('/console'),
  )
  t.ok(api.length >= 30, `${api.length} routes`)
  for (const r of api) {
    const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}')
    const op = doc.paths[path]?.[r.method.toLowerCase()]
    t.ok(op, `${r.method} ${r.url} documented`)
    if (!op) continue
    t.ok(op.responses && Object.keys(op.responses).length > 0, `${r.method} ${r.url} has responses`)
    for (const name of [...r.url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1])) {
      t.ok(
        op.parameters?.some((p) => p.in === 'path' && p.name === name),
        `${r.method} ${r.url}: path parameter ${name}`,
      )
    }
  }
  t.notOk(doc.paths['/console'] ?? doc.paths['/console/*'], 'the console pages are not in the API document')
  for (const p of [
    '/v1/readings',
    '/v1/alerts',
    '/v1/live',
    '/v1/whoami',
    '/v1/sites',
    '/v1/entities/{kind}/{id}/windows',
    '/metrics',
    '/readyz',
  ])
    t.ok(doc.paths[p], `${p} present`)
  const alerts = doc.paths['/v1/alerts']?.get
  t.ok(
    alerts?.parameters?.some((p) => p.in === 'query' && p.name === 'severity'),
    'query parameters from the TypeBox schema',
  )
  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.body, /swagger/i)
  t.match(String(ui.headers['content-security-policy']), /script-src 'self'/, 'the UI may run its own scripts')
  t.match(
    String((await app.inject({ method: 'GET', url: '/v1/alerts' })).headers['content-security-policy']),
    /default-src 'none'/,
    'the API keeps the strict CSP',
  )
})

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** Operations (`METHOD /path`) added, removed and changed between two documents, and other top-level keys changed. */
function diffDocuments(
  committed: Doc,
  generated: Doc,
): { added: string[]; removed: string[]; changed: string[]; other: string[] } {
  const ops = (d: Doc): Map<string, string> => {
    const m = new Map<string, string>()
    for (const [path, methods] of Object.entries(d.paths ?? {}))
      for (const [method, op] of Object.entries(methods)) m.set(`${method.toUpperCase()} ${path}`, JSON.stringify(op))
    return m
  }
  const a = ops(committed)
  const b = ops(generated)
  const keys = new Set([...Object.keys(committed), ...Object.keys(generated)])
  keys.delete('paths')
  return {
    added: [...b.keys()].filter((k) => !a.has(k)),
    removed: [...a.keys()].filter((k) => !b.has(k)),
    changed: [...a.keys()].filter((k) => b.has(k) && a.get(k) !== b.get(k)),
    other: [...keys].filter(
      (k) =>
        JSON.stringify((committed as unknown as Record<string, Json>)[k]) !==
        JSON.stringify((generated as unknown as Record<string, Json>)[k]),
    ),
  }
}

t.test(
  `${OPENAPI_FILE} is the document the gateway generates (the API's contract changes only on purpose)`,
  async (t) => {
    const { app, nc } = await setupGateway(t)
    const generated = await generateOpenApi(nc)
    let committed = ''
    try {
      committed = readFileSync(OPENAPI_FILE, 'utf8')
    } catch {
      // missing: reported below as a difference
    }
    const howTo =
      `If the change is intended, check it against the compatibility promise in gateway/README.md ("Versioning and compatibility"), ` +
      `then regenerate the file with \`npm run openapi\` (needs nats-server at PITWALL_NATS_URL, default nats://127.0.0.1:4222) and commit it.`
    if (committed !== generated) {
      const d = committed === '' ? undefined : diffDocuments(JSON.parse(committed) as Doc, JSON.parse(generated) as Doc)
      const list = (name: string, xs: string[]): string =>
        xs.length === 0
          ? ''
          : ` ${name}: ${xs.slice(0, 10).join(', ')}${xs.length > 10 ? ` and ${xs.length - 10} more` : ''};`
      const what =
        d === undefined
          ? ' (the file is missing)'
          : `${list('operations added', d.added)}${list('removed (breaking)', d.removed)}${list('changed', d.changed)}${list('top-level keys changed', d.other)}` ||
            ' (formatting only)'
      t.fail(`${OPENAPI_FILE} differs from the generated document:${what} ${howTo}`)
    } else {
      t.pass(`${OPENAPI_FILE} is up to date (${generated.length} bytes)`)
    }
    // What a gateway with auth on and its database serves is that same document: the settings do not change it.
    const served = await app.inject({ method: 'GET', url: '/openapi.json' })
    t.same(
      served.json(),
      JSON.parse(generated),
      'a running gateway (auth on, PostgreSQL) serves the generated document',
    )
    // The diff itself, on a made-up change: a removed route, a changed one, a new one.
    const doc = JSON.parse(generated) as Doc
    const edited = JSON.parse(generated) as Doc
    delete edited.paths['/v1/alerts']
    edited.paths['/v1/sensors'] = { ...edited.paths['/v1/sensors'], post: { responses: {} } }
    edited.paths['/v1/new'] = { get: { responses: {} } }
    t.same(
      diffDocuments(doc, edited),
      { added: ['GET /v1/new'], removed: ['GET /v1/alerts'], changed: ['POST /v1/sensors'], other: [] },
      'the diff names operations',
    )
  },
)

t.test('/readyz checks PostgreSQL when the gateway has one', async (t) => {
  const { app, db } = await setupGateway(t)
  const ok = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { status: 'ready', checks: { nats: 'ok', jetstream: 'ok', postgres: 'ok' } })

  // A second gateway reaches PostgreSQL through a TCP relay; cutting the relay makes PostgreSQL unreachable.
  const target = new URL(db?.url ?? '')
  const sockets = new Set<Socket>()
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => s.destroy())
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()))
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        relay.close(() => r())
      }),
  )
  const via = new URL(db?.url ?? '')
  via.host = `127.0.0.1:${(relay.address() as AddressInfo).port}`
  const pool = new pg.Pool({ connectionString: via.toString(), connectionTimeoutMillis: 500 })
  pool.on('error', () => undefined) // the relay cut kills idle clients on purpose
  t.teardown(() => pool.end())
  const g2 = await setupGateway(t, {
    auth: false,
    db: false,
    deps: { pool },
    gw: { readyTimeoutMs: 300, readyFailureThreshold: 2 },
  })
  t.equal((await g2.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready through the relay')
  await new Promise<void>((r) => {
    relay.close(() => r())
    for (const s of sockets) s.destroy()
  })
  // readiness rule: after a success, one failed check is tolerated (threshold 2), the second is not ready
  const first = await g2.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(first.statusCode, 200, 'first failed check tolerated')
  t.match(first.json(), { status: 'degraded', checks: { postgres: /^failing \(1\/2\)/ } })
  const bad = await g2.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(bad.statusCode, 503)
  t.match(bad.json(), { code: 'GW_ERR_NOT_READY', item: 'postgres' })
  t.ok(bad.headers['retry-after'], 'Retry-After')
})

t.test('every GW_ERR_* code is documented with its status', async (t) => {
  for (const file of ['gateway/README.md', 'docs/errors.md']) {
    const text = readFileSync(file, 'utf8')
    const rows = new Map<string, string>()
    for (const m of text.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| ([0-9]{3})[^|]*\|/gm)) rows.set(m[1] ?? '', m[2] ?? '')
    for (const [code, status] of Object.entries(GW_ERR))
      t.equal(rows.get(code), String(status), `${file}: ${code} ${status}`)
    t.same(
      [...rows.keys()].filter((c) => !(c in GW_ERR)),
      [],
      `${file}: no undocumented extra codes`,
    )
  }
})

t.test(
  'every operation: an id, a tag, a summary, its real security, its error codes by status, typed replies',
  async (t) => {
    type Op = {
      operationId?: string
      tags?: string[]
      summary?: string
      security?: Record<string, string[]>[]
      responses: Record<string, { content?: Record<string, { schema?: Json; example?: Json }> }>
      requestBody?: { content: Record<string, { schema?: Json; example?: Json }> }
    }
    const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
      tags?: { name: string }[]
      paths: Record<string, Record<string, Op>>
      components: { schemas: Record<string, Json> }
    }
    const tags = new Set((doc.tags ?? []).map((x) => x.name))
    t.ok(tags.size >= 8, 'tags declared at the top')
    const ids = new Set<string>()
    const publicPaths = new Set(['/healthz', '/readyz', '/metrics'])
    const ingest = new Set(['/v1/readings', '/v1/sensors/{id}/readings', '/v1/vehicles/{vin}/telemetry'])
    let examples = 0
    /** Schemas that accept anything (`{}`, TypeBox's Unknown) where a typed body belongs. */
    const untyped = (s: Json, at: string, out: string[]): void => {
      if (s === null || typeof s !== 'object') return
      if (Array.isArray(s)) {
        s.forEach((x, i) => untyped(x, `${at}[${i}]`, out))
        return
      }
      if (Object.keys(s).length === 0) out.push(at)
      for (const [k, v] of Object.entries(s))
        if (k !== 'properties' || Object.keys(v as object).length > 0) untyped(v, `${at}.${k}`, out)
    }
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const name = `${method.toUpperCase()} ${path}`
        t.ok(
          op.operationId && /^[a-z][A-Za-z]+$/.test(op.operationId) && !ids.has(op.operationId),
          `${name}: a unique operationId (${op.operationId})`,
        )
        ids.add(op.operationId ?? '')
        t.ok(
          op.tags?.length === 1 && tags.has(op.tags[0] ?? ''),
          `${name}: one declared tag (a route without one has no entry in OPERATIONS, gateway/contract.ts)`,
        )
        t.ok((op.summary ?? '').length > 5, `${name}: a summary`)
        const schemes = (op.security ?? []).flatMap((s) => Object.keys(s)).sort()
        const want = publicPaths.has(path)
          ? []
          : ingest.has(path)
            ? ['apiKey', 'bearer', 'device']
            : ['apiKey', 'bearer']
        t.same(schemes, want, `${name}: security ${want.join(', ') || 'none'}`)
        for (const [status, res] of Object.entries(op.responses)) {
          const schema = res.content?.['application/json']?.schema as
            { properties?: { code?: { enum?: string[] } } } | undefined
          if (Number(status) >= 400) {
            const codes = schema?.properties?.code?.enum ?? []
            t.ok(
              codes.length > 0 && codes.every((c) => String(GW_ERR[c as keyof typeof GW_ERR]) === status),
              `${name} ${status}: codes of that status (${codes.join(', ')})`,
            )
          } else if (schema !== undefined) {
            const loose: string[] = []
            untyped(schema as Json, 'reply', loose)
            t.same(loose, [], `${name} ${status}: typed reply`)
          }
          if (res.content?.['application/json']?.example !== undefined) examples++
        }
        if (op.requestBody?.content['application/json']?.example !== undefined) examples++
        if (op.requestBody) {
          const loose: string[] = []
          untyped(op.requestBody.content['application/json']?.schema ?? null, 'body', loose)
          t.same(loose, [], `${name}: typed request body`)
        }
      }
    }
    t.ok(examples >= 20, `${examples} request and reply examples`)
    for (const c of ['Alert', 'LiveState', 'LiveOutput'])
      t.ok(doc.components.schemas[c], `components.schemas.${c} for generated clients`)
    const state = doc.paths['/v1/entities/{kind}/{id}/state']?.get?.responses['200']?.content?.['application/json']
      ?.schema as { anyOf?: { properties: { profile: { enum: string[] } } }[] }
    t.same(
      state.anyOf?.map((v) => v.properties.profile.enum[0]).sort(),
      ['asset', 'environment', 'process', 'process-pair', 'race', 'road'],
      'live state: one variant per profile',
    )
  },
)
