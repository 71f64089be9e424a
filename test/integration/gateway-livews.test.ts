/**
 * WebSocket live feed (`GET /v1/live/ws`) over a real connection (the `ws` client) against a real nats-server
 * and PostgreSQL: the same outputs, filters, ids (OUT sequences), resume (`?lastEventId=`), auth and scoping as
 * the SSE feed; refusals happen before the upgrade with the HTTP status and code of the other routes; a plain
 * GET is 426; pings as heartbeats; the clients gauge; 1011 when OUT cannot be read; app close ends the socket with 1001.
 */
import t from 'tap'
import WebSocket from 'ws'
import { jetstream } from '@nats-io/jetstream'
import { fenceSubject, outSubject, partitionOf, provision } from '../../actors/mod.js'
import { bearer, device, setupGateway } from '../helpers/gateway.js'

interface Ev {
  id: number
  event: string
  data: Record<string, unknown>
}

/** A WebSocket client that collects messages, pings, the refusal (status + body) or the close code. */
function wsClient(port: number, path: string, headers: Record<string, string> = {}) {
  const events: Ev[] = []
  let pings = 0
  let refused: { status: number; body: string } | undefined
  let closed: { code: number; reason: string } | undefined
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers })
  const ready = new Promise<boolean>((resolve) => {
    ws.on('open', () => {
      resolve(true)
    })
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => {
        refused = { status: res.statusCode ?? 0, body }
        resolve(false)
      })
    })
    ws.on('error', () => {
      resolve(false)
    })
  })
  ws.on('message', (data) => {
    events.push(JSON.parse(String(data)) as Ev)
  })
  ws.on('ping', () => {
    pings++
  })
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() }
  })
  return {
    events,
    ready,
    ws,
    pings: () => pings,
    refused: () => refused,
    closed: () => closed,
    async until(pred: () => boolean, ms = 15_000): Promise<boolean> {
      const deadline = Date.now() + ms
      while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      return pred()
    },
  }
}

t.test('WebSocket live feed: events, resume, filters, scoping, auth, close', async (t) => {
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

  await pub('sensor', 's1', 'window') // before the client: a new feed starts at new outputs
  const a = wsClient(port, '/v1/live/ws?kind=sensor', viewer)
  t.ok(await a.ready, 'upgraded')
  t.ok(await a.until(() => a.pings() > 0), 'heartbeat pings')
  t.match(await metric(), / 1$/, 'one live client')
  const seqs: number[] = []
  seqs.push(await pub('sensor', 's1', 'window'))
  await js.publish(
    fenceSubject('a', 0),
    JSON.stringify({ id: 'f', type: 'fence', kind: '_sys', entity: '_sys', body: {} }),
  )
  await pub('vehicle', 'v1', 'window') // other kind
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
  t.match(
    a.events[1]?.data,
    { entity: 's2', type: 'alert', body: { severity: 'critical' } },
    'data is the output as published',
  )
  const lastSeen = a.events[2]?.id ?? 0
  a.ws.close()
  t.ok(await a.until(() => a.closed() !== undefined), 'closed')
  let gauge = ''
  for (const deadline = Date.now() + 15_000; !/ 0$/.test(gauge) && Date.now() < deadline;) {
    gauge = await metric()
    await new Promise((r) => setTimeout(r, 20))
  }
  t.match(gauge, / 0$/, 'disconnect ends the feed (gauge 0)')

  // resume with ?lastEventId=: the outputs published while away, no gap, no duplicate
  const missed: number[] = []
  for (let i = 0; i < 5; i++) missed.push(await pub('sensor', i % 2 ? 's1' : 's2', 'window'))
  const b = wsClient(port, `/v1/live/ws?kind=sensor&lastEventId=${lastSeen}`, viewer)
  t.ok(await b.ready)
  t.ok(await b.until(() => b.events.length >= 5))
  const after = await pub('sensor', 's1', 'score')
  t.ok(await b.until(() => b.events.length >= 6))
  t.same(
    b.events.map((e) => e.id),
    [...missed, after],
    'resumed right after the last event seen',
  )
  b.ws.close()

  // entity/type/severity filters
  const c = wsClient(
    port,
    `/v1/live/ws?kind=sensor&entity=s2&type=alert&severity=critical&lastEventId=${lastSeen}`,
    viewer,
  )
  t.ok(await c.ready)
  const crit = await pub('sensor', 's2', 'alert', 'critical')
  await pub('sensor', 's2', 'alert', 'warning')
  const s1crit = await pub('sensor', 's1', 'alert', 'critical')
  const crit2 = await pub('sensor', 's2', 'alert', 'critical')
  t.ok(await c.until(() => c.events.some((e) => e.id === crit2)))
  t.same(
    c.events.map((e) => e.id),
    [crit, crit2],
    'only s2 critical alerts',
  )
  c.ws.close()

  // scoping: acme sees s1 only (everything from lastSeen on, in order); naming s2 is refused before the upgrade
  const acme = bearer('viewer', { fleets: ['acme'] })
  const d = wsClient(port, `/v1/live/ws?lastEventId=${lastSeen}`, acme)
  t.ok(await d.ready)
  t.ok(await d.until(() => d.events.some((e) => e.id === s1crit)), "scoped person receives its entity's events")
  t.same(
    d.events.map((e) => e.id),
    [...missed.filter((_, i) => i % 2 === 1), after, s1crit],
    "exactly the events of its fleet's entity, in order",
  )
  d.ws.close()

  // refusals: an HTTP status and the gateway's code, no upgrade
  const cred = await g.issue('sensor', 's1')
  for (const [path, headers, status, code] of [
    ['/v1/live/ws?kind=sensor&entity=s2', acme, 404, 'GW_ERR_NOT_FOUND'],
    ['/v1/live/ws', {}, 401, 'GW_ERR_UNAUTHENTICATED'],
    ['/v1/live/ws', device(cred.token), 403, 'GW_ERR_FORBIDDEN'],
    ['/v1/live/ws?lastEventId=x', viewer, 400, 'GW_ERR_QUERY_INVALID'],
    ['/v1/live/ws?type=fence', viewer, 400, 'GW_ERR_QUERY_INVALID'],
    ['/v1/live/ws', { ...viewer, 'last-event-id': 'abc' }, 400, 'GW_ERR_QUERY_INVALID'],
  ] as const) {
    const r = wsClient(port, path, headers)
    t.notOk(await r.ready, `${path}: not upgraded`)
    t.equal(r.refused()?.status, status, `${path}: ${status}`)
    t.match(JSON.parse(r.refused()?.body ?? '{}'), { code }, `${path}: ${code}`)
  }
  const plain = await app.inject({ method: 'GET', url: '/v1/live/ws', headers: viewer })
  t.equal(plain.statusCode, 426, 'a plain GET is 426')
  t.equal(plain.json<{ code: string }>().code, 'GW_ERR_UPGRADE_REQUIRED')
  t.equal(plain.headers.upgrade, 'websocket')

  // OUT unreachable: SSE answers 503 before streaming; a WebSocket (already upgraded) is closed with 1011 and the code
  await g.jsm.streams.delete(cfg.runtime.streams.out)
  const sse503 = await app.inject({ method: 'GET', url: '/v1/live', headers: viewer })
  t.equal(sse503.statusCode, 503)
  t.equal(sse503.json<{ code: string }>().code, 'GW_ERR_UNAVAILABLE')
  const u = wsClient(port, '/v1/live/ws', viewer)
  await u.ready
  t.ok(await u.until(() => u.closed() !== undefined), 'closed')
  t.same(u.closed(), { code: 1011, reason: 'GW_ERR_UNAVAILABLE' }, '1011 with the gateway code as the reason')
  await provision(nc, g.jsm, cfg.runtime)

  // app close with a client connected: 1001 (going away), close does not hang
  const e = wsClient(port, '/v1/live/ws', viewer)
  t.ok(await e.ready)
  await app.close()
  t.ok(await e.until(() => e.closed() !== undefined), 'client sees the close')
  t.equal(e.closed()?.code, 1001, 'going away')
})
