/**
 * Gateway metrics against a real nats-server: requests by route pattern (never the raw URL), latency, bytes,
 * readings accepted and rejected by code, JetStream publish latency, backpressure (429, 503), and the setting
 * that turns `/metrics` off.
 */
import t from 'tap'
import { METRICS } from '../../actors/mod.js'
import { bearer, setupGateway } from '../helpers/gateway.js'

const reading = (id: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'sensor',
  id,
  ts: Date.now(),
  fields: { temperature: 21 },
  ...over,
})

/** The value of one series in a Prometheus text exposition; `labels` as `a="x",b="y"`, in any order. */
function value(body: string, name: string, labels: string): number | undefined {
  const want = labels.split(',').sort().join(',')
  for (const line of body.split('\n')) {
    const m = /^([a-z_:]+)\{(.*)\} (\S+)$/.exec(line)
    if (m?.[1] === name && (m[2] ?? '').split(',').sort().join(',') === want) return Number(m[3])
  }
  return undefined
}

t.test('GET /metrics: requests, latency, bytes, readings, publish latency, backpressure', async (t) => {
  const { app } = await setupGateway(t, { auth: { rateLimitMax: 5, rateLimitWindowMs: 60_000 } })
  const op = bearer('operator')
  const payload = [reading('s1'), reading('s2'), reading('s3', { ts: 'soon' }), reading('s4', { fields: {} })]
  let res = await app.inject({ method: 'POST', url: '/v1/readings', headers: op, payload })
  t.equal(res.statusCode, 200, res.body)
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room-7/readings',
    headers: op,
    payload: [{ ts: Date.now(), fields: { v: 1 } }],
  })
  t.equal(res.statusCode, 200, res.body)
  t.equal((await app.inject({ method: 'GET', url: '/no/such/route-12345', headers: op })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/v1/sensors/zz', headers: op })).statusCode, 404)
  // spend the operator's budget of 5 requests per window: the 200s, then one 429
  const codes: number[] = []
  for (let i = 0; i < 6 && !codes.includes(429); i++)
    codes.push((await app.inject({ method: 'GET', url: '/v1/sensors', headers: op })).statusCode)
  t.equal(codes.at(-1), 429, `rate limited after ${codes.length - 1}`)
  const listed = codes.filter((c) => c === 200).length

  res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200, 'no credential needed')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const body = res.body
  const L = 'site="a",service="gateway"'
  t.equal(value(body, METRICS.gatewayRequests, `route="/v1/readings",method="POST",status="200",${L}`), 1)
  t.equal(
    value(body, METRICS.gatewayRequests, `route="/v1/sensors/:id/readings",method="POST",status="200",${L}`),
    1,
    'route pattern, not the URL',
  )
  t.equal(
    value(body, METRICS.gatewayRequests, `route="unmatched",method="GET",status="404",${L}`),
    1,
    'unknown routes share one label',
  )
  t.equal(value(body, METRICS.gatewayRequests, `route="/v1/sensors/:id",method="GET",status="404",${L}`), 1)
  t.equal(value(body, METRICS.gatewayRequests, `route="/v1/sensors",method="GET",status="429",${L}`), 1)
  t.equal(value(body, METRICS.gatewayRequests, `route="/v1/sensors",method="GET",status="200",${L}`), listed)
  t.notMatch(body, /room-7|route-12345|\/zz"/, 'no raw URL in any label')
  t.equal(
    value(body, `${METRICS.gatewayRequestSeconds}_count`, `route="/v1/readings",method="POST",${L}`),
    1,
    'latency histogram',
  )
  t.ok((value(body, METRICS.gatewayRequestBytes, `route="/v1/readings",${L}`) ?? 0) > 100, 'request bytes')
  t.equal(value(body, METRICS.gatewayReadingsAccepted, `route="/v1/readings",${L}`), 2)
  t.equal(value(body, METRICS.gatewayReadingsAccepted, `route="/v1/sensors/:id/readings",${L}`), 1)
  t.equal(value(body, METRICS.gatewayReadingsRejected, `route="/v1/readings",code="GW_ERR_TS_INVALID",${L}`), 1)
  t.equal(value(body, METRICS.gatewayReadingsRejected, `route="/v1/readings",code="GW_ERR_FIELDS_INVALID",${L}`), 1)
  t.equal(value(body, `${METRICS.gatewayPublishSeconds}_count`, L), 3, 'one publish observation per accepted reading')
  t.equal(value(body, METRICS.gatewayBackpressure, `route="/v1/sensors",status="429",${L}`), 1)
  t.equal(value(body, METRICS.gatewayLiveClients, L), 0)
  t.match(body, /process_cpu_user_seconds_total/, 'default process metrics')
})

t.test('503 when JetStream has no stream counts as backpressure; a failed publish is still timed', async (t) => {
  const { app } = await setupGateway(t, { auth: false, provision: false, gw: { publishTimeoutMs: 200 } })
  const res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [reading('s1')] })
  t.equal(res.statusCode, 503)
  const body = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(value(body, METRICS.gatewayBackpressure, 'route="/v1/readings",status="503",site="a",service="gateway"'), 1)
  t.equal(value(body, `${METRICS.gatewayPublishSeconds}_count`, 'site="a",service="gateway"'), 1)
  t.equal(
    value(body, METRICS.gatewayReadingsAccepted, 'route="/v1/readings",site="a",service="gateway"'),
    undefined,
    'nothing accepted',
  )
})

t.test('PITWALL_GATEWAY_METRICS=off: no /metrics route', async (t) => {
  const { app } = await setupGateway(t, { auth: false, gw: { metrics: false } })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_ROUTE_NOT_FOUND')
})
