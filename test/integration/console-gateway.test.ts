/**
 * The gateway's side of the operator console (gateway/console.ts, gateway/README.md "Operator console"), without
 * a browser: the built files under /console/ with their own Content-Security-Policy, caching and pre-compressed
 * copies, the settings document, GET /v1/whoami for each kind of caller, GET /v1/sites, and the `reading` events
 * of the live feed (raw readings from TLM, only when asked for by name, scoped like outputs). Real nats-server and
 * PostgreSQL; the console must be built (`npm run build`).
 */
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { brotliDecompressSync } from 'node:zlib'
import { partitionOf, tlmSubject } from '../../actors/mod.js'
import { DEFAULT_CONSOLE_DIR, parseSiteStatusUrls, parseTileUrl } from '../../gateway/config.js'
import { bearer, setupGateway, SVC_KEY, VIEW_KEY } from '../helpers/gateway.js'
import { freePort } from '../helpers/nats.js'

type Json = Record<string, unknown>
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test('settings are checked', async (t) => {
  t.equal(parseTileUrl(undefined), undefined)
  t.equal(parseTileUrl('https://tiles.example.com/{z}/{x}/{y}.png'), 'https://tiles.example.com/{z}/{x}/{y}.png')
  t.throws(() => parseTileUrl('https://tiles.example.com/{z}/{x}.png'), { code: 'PW_CONFIG_INVALID' }, 'needs {y}')
  t.throws(() => parseTileUrl('ftp://tiles/{z}/{x}/{y}'), { code: 'PW_CONFIG_INVALID' })
  t.same(parseSiteStatusUrls('a=http://127.0.0.1:9481/status, b=http://10.0.0.2:9481/status'), {
    a: 'http://127.0.0.1:9481/status',
    b: 'http://10.0.0.2:9481/status',
  })
  t.throws(() => parseSiteStatusUrls('a'), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => parseSiteStatusUrls('A B=http://x/status'), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => parseSiteStatusUrls('a=file:///etc/passwd'), { code: 'PW_CONFIG_INVALID' })
})

t.test(
  'console files, settings, whoami, sites',
  { skip: existsSync(`${DEFAULT_CONSOLE_DIR}/index.html`) ? false : 'the console is not built (npm run build)' },
  async (t) => {
    const down = await freePort()
    const { app } = await setupGateway(t, {
      gw: {
        consoleTileUrl: 'https://tiles.example.com/{z}/{x}/{y}.png',
        siteStatusUrls: { b: `http://127.0.0.1:${down}/status` },
      },
    })

    const redirect = await app.inject({ method: 'GET', url: '/console' })
    t.equal(redirect.statusCode, 302)
    t.equal(redirect.headers.location, '/console/')
    const index = await app.inject({ method: 'GET', url: '/console/' })
    t.equal(index.statusCode, 200, 'no credential needed for the page itself')
    t.match(index.headers['content-type'], /^text\/html/)
    t.equal(index.headers['cache-control'], 'no-cache')
    const csp = String(index.headers['content-security-policy'])
    t.match(csp, /script-src 'self'(;|$)/, 'scripts from this origin only')
    t.match(csp, /img-src 'self' data: blob: https:\/\/tiles\.example\.com/, 'the tile server may serve images')
    t.match(csp, /connect-src 'self' https:\/\/tiles\.example\.com/)
    t.match(csp, /frame-ancestors 'none'/)
    t.equal(index.headers['x-frame-options'], 'DENY', 'the other security headers stay')
    const js = /src="(app-[A-Z0-9]+\.js)"/i.exec(index.body)?.[1]
    t.ok(js, `index.html names the bundle ${js}`)
    t.equal(index.body, readFileSync(`${DEFAULT_CONSOLE_DIR}/index.html`, 'utf8'))

    const plain = await app.inject({ method: 'GET', url: `/console/${js}` })
    t.equal(plain.statusCode, 200)
    t.match(plain.headers['content-type'], /^text\/javascript/)
    t.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable', 'hashed names are kept a year')
    t.equal(plain.headers['content-encoding'], undefined)
    const br = await app.inject({
      method: 'GET',
      url: `/console/${js}`,
      headers: { 'accept-encoding': 'gzip, deflate, br' },
    })
    t.equal(br.headers['content-encoding'], 'br')
    t.equal(br.headers.vary, 'accept-encoding')
    t.ok(
      br.rawPayload.length < plain.rawPayload.length / 2,
      `brotli ${br.rawPayload.length} B < half of ${plain.rawPayload.length} B`,
    )
    t.equal(brotliDecompressSync(br.rawPayload).toString(), plain.body, 'the brotli copy is the same file')
    const again = await app.inject({
      method: 'GET',
      url: `/console/${js}`,
      headers: { 'if-none-match': String(plain.headers.etag) },
    })
    t.equal(again.statusCode, 304)
    // Unknown paths are the app (it routes by the hash); nothing outside the directory is ever read.
    for (const url of ['/console/alerts', '/console/..%2f..%2fpackage.json']) {
      const r = await app.inject({ method: 'GET', url })
      t.equal(r.body, index.body, `${url} -> index.html`)
    }
    const dots = await app.inject({ method: 'GET', url: '/console/../gateway/app.ts' })
    t.notMatch(dots.body, /buildGateway/, 'a dotted path never reads a file')
    const api = await app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer('viewer') })
    t.equal(
      api.headers['content-security-policy'],
      "default-src 'none'; frame-ancestors 'none'",
      'API replies keep default-src none',
    )

    const settings = await app.inject({ method: 'GET', url: '/console/config.json' })
    t.same(settings.json(), { site: 'a', tileUrl: 'https://tiles.example.com/{z}/{x}/{y}.png', sites: ['b'] })

    t.same(
      (
        await app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer('operator', { fleets: ['acme'] }) })
      ).json(),
      { type: 'user', id: 'u-operator', role: 'operator', fleets: ['acme'] },
    )
    t.same((await app.inject({ method: 'GET', url: '/v1/whoami', headers: { 'x-api-key': VIEW_KEY } })).json(), {
      type: 'key',
      id: 'dash',
      role: 'viewer',
    })
    t.same((await app.inject({ method: 'GET', url: '/v1/whoami', headers: { 'x-api-key': SVC_KEY } })).json(), {
      type: 'key',
      id: 'ingest-svc',
      role: 'operator',
    })
    t.match((await app.inject({ method: 'GET', url: '/v1/whoami' })).json(), { code: 'GW_ERR_UNAUTHENTICATED' })

    const sites = await app.inject({ method: 'GET', url: '/v1/sites', headers: bearer('viewer') })
    t.equal(sites.statusCode, 200)
    t.same(
      sites.json(),
      { items: [{ site: 'b', reachable: false, error: 'unreachable' }] },
      'a controller that is down is reported, its URL is not',
    )
  },
)

t.test('reading events on the live feed', async (t) => {
  const g = await setupGateway(t)
  const { app, nc } = g
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/sensors', { id: 'mine', type: 't', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 'other', type: 't', profile: 'environment', site: 'a' }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: bearer('admin'), payload: body })).statusCode, 201)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const ctl = new AbortController()
  t.teardown(() => {
    ctl.abort()
  })
  const feed = async (
    query: string,
    headers: Record<string, string>,
  ): Promise<{ events: { event: string; data: Json }[] }> => {
    const res = await fetch(`${base}/v1/live?${query}`, { headers, signal: ctl.signal })
    t.equal(res.status, 200)
    const out = { events: [] as { event: string; data: Json }[] }
    const reader = res.body!.getReader()
    let text = ''
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          text += Buffer.from(value).toString()
          let i
          while ((i = text.indexOf('\n\n')) >= 0) {
            const frame = text.slice(0, i)
            text = text.slice(i + 2)
            const ev = /^event: (.*)$/m.exec(frame)?.[1]
            const data = /^data: (.*)$/m.exec(frame)?.[1]
            if (ev !== undefined && data !== undefined) out.events.push({ event: ev, data: JSON.parse(data) as Json })
          }
        }
      } catch {
        // aborted at teardown
      }
    })()
    return out
  }
  const all = await feed('type=reading&kind=sensor', bearer('viewer'))
  const scoped = await feed('type=reading', bearer('viewer', { fleets: ['acme'] }))
  const outputs = await feed('kind=sensor', bearer('viewer'))
  await sleep(300)
  const ts = Date.now()
  for (const [id, v] of [
    ['mine', 21.5],
    ['other', 30],
  ] as const) {
    nc.publish(
      tlmSubject('a', partitionOf('sensor', id, 4), 'sensor', id),
      JSON.stringify({ ts, profile: 'environment', fields: { temperature: v }, loc: { lat: 45, lon: 9 } }),
    )
  }
  for (let i = 0; i < 50 && (all.events.length < 2 || scoped.events.length < 1); i++) await sleep(100)
  t.same(
    all.events.map((e) => e.data).sort((a, b) => String(a.entity).localeCompare(String(b.entity))),
    [
      {
        type: 'reading',
        kind: 'sensor',
        entity: 'mine',
        ts,
        fields: { temperature: 21.5 },
        profile: 'environment',
        loc: { lat: 45, lon: 9 },
      },
      {
        type: 'reading',
        kind: 'sensor',
        entity: 'other',
        ts,
        fields: { temperature: 30 },
        profile: 'environment',
        loc: { lat: 45, lon: 9 },
      },
    ],
    'each reading as published, with its kind and entity',
  )
  t.ok(all.events.every((e) => e.event === 'reading'))
  await sleep(300)
  t.same(
    scoped.events.map((e) => e.data.entity),
    ['mine'],
    'a scoped person sees only the readings of their entities',
  )
  t.same(
    outputs.events.filter((e) => e.event === 'reading'),
    [],
    'without type=reading the feed carries no raw readings',
  )
  const bad = await app.inject({ method: 'GET', url: '/v1/live?type=readings', headers: bearer('viewer') })
  t.match(bad.json(), { code: 'GW_ERR_QUERY_INVALID' })
})
