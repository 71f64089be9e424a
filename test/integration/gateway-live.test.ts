/**
 * Live feed over a real HTTP connection against a real nats-server: outputs published to OUT arrive as
 * Server-Sent Events with `id:` = stream sequence, filtered by kind, entity, type and severity; a reconnect with
 * Last-Event-ID resumes with no gap and no duplicate; heartbeats; client disconnect and app close end the
 * consumer (gauge back to 0); auth and fleet scoping.
 */
import t from 'tap'
import { request, type ClientRequest } from 'node:http'
import { jetstream } from '@nats-io/jetstream'
import { fenceSubject, outSubject, partitionOf } from '../../actors/mod.js'
import { bearer, device, setupGateway } from '../helpers/gateway.js'

interface Ev {
  id: number
  event: string
  data: Record<string, unknown>
}

/** A minimal SSE client: collects events and counts comment lines (heartbeats). */
function sse(port: number, path: string, headers: Record<string, string> = {}) {
  const events: Ev[] = []
  let comments = 0
  let status = 0
  let contentType = ''
  let ended = false
  let body = ''
  let buf = ''
  let req: ClientRequest | undefined
  const ready = new Promise<void>((resolve, reject) => {
    req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      status = res.statusCode ?? 0
      contentType = String(res.headers['content-type'] ?? '')
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (status !== 200) {
          body += chunk
          return
        }
        buf += chunk
        let i: number
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const ev: Partial<Ev> = {}
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments++
            else if (line.startsWith('id: ')) ev.id = Number(line.slice(4))
            else if (line.startsWith('event: ')) ev.event = line.slice(7)
            else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6)) as Record<string, unknown>
          }
          if (ev.id !== undefined) events.push(ev as Ev)
        }
      })
      res.on('end', () => {
        ended = true
      })
      res.on('error', () => {
        ended = true
      })
      resolve()
    })
    req.on('error', reject)
    req.end()
  })
  return {
    events,
    ready,
    status: () => status,
    contentType: () => contentType,
    comments: () => comments,
    ended: () => ended,
    body: () => body,
    async until(pred: () => boolean, ms = 5_000): Promise<boolean> {
      const deadline = Date.now() + ms
      while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      return pred()
    },
    close(): void {
      req?.destroy()
    },
  }
}

t.test('live feed: filters, Last-Event-ID resume, heartbeats, disconnect, scoping', async (t) => {
  const g = await setupGateway(t, { gw: { liveHeartbeatMs: 150 } })
  const { app, nc, cfg } = g
  const op = bearer('operator')
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b' }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: op, payload: body })).statusCode, 201)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const js = jetstream(nc)
  const P = cfg.runtime.partitions
  let n = 0
  /** Publishes one output to OUT; returns its stream sequence. */
  const pub = async (kind: string, entity: string, type: string, severity?: string): Promise<number> => {
    n++
    const o = {
      id: `${kind}:${entity}:${type}:${n}`,
      type,
      kind,
      entity,
      profile: 'environment',
      ts: Date.now(),
      seq: n,
      site: 'a',
      partition: partitionOf(kind, entity, P),
      token: 1,
      body: severity
        ? {
            alertId: `a${n}`,
            type: 'temp_high',
            severity,
            state: 'open',
            start: 1,
            value: 1,
            threshold: 0,
            explanation: 'x',
          }
        : { n },
    }
    return (await js.publish(outSubject('a', partitionOf(kind, entity, P), kind, entity), JSON.stringify(o))).seq
  }
  const metric = async (): Promise<string> =>
    (await app.inject({ method: 'GET', url: '/metrics' })).body
      .split('\n')
      .find((l) => l.startsWith('pitwall_gateway_live_clients{')) ?? ''
  const viewer = bearer('viewer')

  // before any client: not delivered (a new feed starts at new outputs)
  await pub('sensor', 's1', 'window')
  const a = sse(port, '/v1/live?kind=sensor', viewer)
  await a.ready
  t.equal(a.status(), 200)
  t.match(a.contentType(), /^text\/event-stream/)
  await a.until(() => a.comments() > 0)
  t.match(await metric(), / 1$/, 'one live client')
  const seqs: number[] = []
  seqs.push(await pub('sensor', 's1', 'window'))
  await js.publish(
    fenceSubject('a', 0),
    JSON.stringify({ id: 'f', type: 'fence', kind: '_sys', entity: '_sys', body: {} }),
  )
  await pub('vehicle', 'v1', 'window') // filtered out by kind
  seqs.push(await pub('sensor', 's2', 'alert', 'critical'))
  seqs.push(await pub('sensor', 's1', 'late'))
  t.ok(await a.until(() => a.events.length >= 3), 'three events')
  t.same(
    a.events.map((e) => e.id),
    seqs,
    'ids are OUT sequences; fence and other kinds left out',
  )
  t.same(
    a.events.map((e) => e.event),
    ['window', 'alert', 'late'],
  )
  t.match(a.events[1]?.data, { entity: 's2', type: 'alert', body: { severity: 'critical' } })
  const lastSeen = a.events[2]?.id ?? 0
  a.close()
  t.ok(await a.until(() => a.ended()), 'closed')
  await new Promise((r) => setTimeout(r, 100))
  t.match(await metric(), / 0$/, 'disconnect ends the feed (gauge 0)')

  // published while disconnected, then resumed with Last-Event-ID: no gap, no duplicate
  const missed: number[] = []
  for (let i = 0; i < 5; i++) missed.push(await pub('sensor', i % 2 ? 's1' : 's2', 'window'))
  const b = sse(port, '/v1/live?kind=sensor', { ...viewer, 'last-event-id': String(lastSeen) })
  await b.ready
  t.ok(await b.until(() => b.events.length >= 5))
  const after = await pub('sensor', 's1', 'score')
  t.ok(await b.until(() => b.events.length >= 6))
  t.same(
    b.events.map((e) => e.id),
    [...missed, after],
    'resumed right after the last event seen',
  )
  b.close()

  // query-string resume, entity/type/severity filters
  const c = sse(port, `/v1/live?kind=sensor&entity=s2&type=alert&severity=critical&lastEventId=${lastSeen}`, viewer)
  await c.ready
  const crit = await pub('sensor', 's2', 'alert', 'critical')
  await pub('sensor', 's2', 'alert', 'warning')
  const s1crit = await pub('sensor', 's1', 'alert', 'critical')
  const crit2 = await pub('sensor', 's2', 'alert', 'critical')
  t.ok(await c.until(() => c.events.length >= 2))
  await new Promise((r) => setTimeout(r, 200))
  t.same(
    c.events.map((e) => e.id),
    [crit, crit2],
    'only s2 critical alerts',
  )
  c.close()

  // scoping: acme sees s1 only; naming s2 is a 404
  const acme = bearer('viewer', { fleets: ['acme'] })
  const d = sse(port, `/v1/live?lastEventId=${lastSeen}`, acme)
  await d.ready
  t.ok(await d.until(() => d.events.some((e) => e.id === s1crit)), "scoped person receives its entity's events")
  await new Promise((r) => setTimeout(r, 200))
  const s1seqs = [...missed.filter((_, i) => i % 2 === 1), after, s1crit]
  t.same(
    d.events.map((e) => e.id),
    s1seqs,
    "exactly the events of its fleet's entity, in order",
  )
  d.close()
  const hidden = sse(port, '/v1/live?kind=sensor&entity=s2', acme)
  await hidden.ready
  t.equal(hidden.status(), 404)
  await hidden.until(() => hidden.ended())
  t.match(JSON.parse(hidden.body()), { code: 'GW_ERR_NOT_FOUND' })

  // auth and bad input (inject: not a stream)
  t.equal((await app.inject({ method: 'GET', url: '/v1/live' })).statusCode, 401)
  const cred = await g.issue('sensor', 's1')
  t.equal((await app.inject({ method: 'GET', url: '/v1/live', headers: device(cred.token) })).statusCode, 403)
  for (const [url, h] of [
    ['/v1/live?type=fence', {}],
    ['/v1/live?bogus=1', {}],
    ['/v1/live', { 'last-event-id': 'abc' }],
    ['/v1/live?lastEventId=-1', {}],
  ] as const) {
    const r = await app.inject({ method: 'GET', url, headers: { ...viewer, ...h } })
    t.equal(r.statusCode, 400, url)
    t.equal(r.json<{ code: string }>().code, 'GW_ERR_QUERY_INVALID')
  }

  // app close with a client connected: the feed ends, close does not hang
  const e = sse(port, '/v1/live', viewer)
  await e.ready
  await e.until(() => e.comments() > 0)
  const t0 = Date.now()
  await app.close()
  t.ok(Date.now() - t0 < 3_000, `app closed in ${Date.now() - t0} ms`)
  t.ok(await e.until(() => e.ended()), 'client sees the end')
})
