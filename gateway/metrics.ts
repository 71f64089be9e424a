/**
 * The gateway's Prometheus metrics (prom-client): one registry per app (two gateways in one process, as in
 * tests, never share counters), default process metrics, and the `METRICS.gateway*` series. Labels are bounded:
 * `route` is the route pattern (`/v1/sensors/:id/readings`), never the raw URL; requests that match no route
 * are `route="unmatched"`; rejection codes come from the fixed GW_ERR_* set.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { METRICS } from '../actors/mod.js'

/** Route label of requests no route matched (404s, router errors). */
export const UNMATCHED = 'unmatched'

/** The gateway's metric objects; `registry` is what `GET /metrics` serves. */
export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'route' | 'method' | 'status'>
  readonly requestSeconds: Histogram<'route' | 'method'>
  readonly requestBytes: Counter<'route'>
  readonly accepted: Counter<'route'>
  readonly rejected: Counter<'route' | 'code'>
  readonly publishSeconds: Histogram
  readonly backpressure: Counter<'route' | 'status'>
  readonly liveClients: Gauge
  readonly jwksFetches: Counter<'result'>
  readonly notifyDeliveries: Counter<'outcome'>
  readonly notifyAttempts: Counter<'result'>
  readonly notifyAttemptSeconds: Histogram<'result'>
  readonly notifyLatencySeconds: Histogram
  readonly notifyPending: Gauge
  readonly notifyOldestPendingSeconds: Gauge
  readonly rateLimitStoreUp: Gauge
  readonly rateLimitFallback: Counter

  constructor(labels: Record<string, string>) {
    const registers = [this.registry]
    this.registry.setDefaultLabels(labels)
    collectDefaultMetrics({ register: this.registry })
    this.requests = new Counter({
      name: METRICS.gatewayRequests,
      help: 'HTTP requests answered, by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    })
    this.requestSeconds = new Histogram({
      name: METRICS.gatewayRequestSeconds,
      help: 'Time from request received to reply sent, by route pattern and method.',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.requestBytes = new Counter({
      name: METRICS.gatewayRequestBytes,
      help: 'Request body bytes received (Content-Length), by route pattern.',
      labelNames: ['route'],
      registers,
    })
    this.accepted = new Counter({
      name: METRICS.gatewayReadingsAccepted,
      help: 'Readings acknowledged by JetStream (duplicates included), by ingest route.',
      labelNames: ['route'],
      registers,
    })
    this.rejected = new Counter({
      name: METRICS.gatewayReadingsRejected,
      help: 'Readings rejected per item, by ingest route and GW_ERR_* code.',
      labelNames: ['route', 'code'],
      registers,
    })
    this.publishSeconds = new Histogram({
      name: METRICS.gatewayPublishSeconds,
      help: 'Time from a JetStream publish to its ack (or failure), per reading.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    })
    this.backpressure = new Counter({
      name: METRICS.gatewayBackpressure,
      help: 'Replies telling the client to back off (429 rate limited, 503 unavailable), by route pattern.',
      labelNames: ['route', 'status'],
      registers,
    })
    this.liveClients = new Gauge({
      name: METRICS.gatewayLiveClients,
      help: 'Open live-feed connections (Server-Sent Events and WebSocket).',
      registers,
    })
    this.rateLimitStoreUp = new Gauge({
      name: METRICS.gatewayRateLimitStoreUp,
      help: "Whether the last rate limit count used the store shared by the site's gateways (1), or the per-process limiter because the store failed (0).",
      registers,
    })
    this.rateLimitFallback = new Counter({
      name: METRICS.gatewayRateLimitFallback,
      help: 'Requests counted by the per-process rate limiter because the shared store was unavailable.',
      registers,
    })
    this.jwksFetches = new Counter({
      name: METRICS.gatewayJwksFetches,
      help: 'Identity provider key set fetches: ok, failed, or throttled (an unknown kid within the cooldown, no fetch).',
      labelNames: ['result'],
      registers,
    })
    this.notifyDeliveries = new Counter({
      name: METRICS.notifyDeliveries,
      labelNames: ['outcome'],
      registers,
      help: 'Webhook deliveries finished by this gateway: delivered, expired (older than the max age) or dropped (over the per-subscription backlog bound).',
    })
    this.notifyAttempts = new Counter({
      name: METRICS.notifyAttempts,
      help: 'Webhook HTTP attempts, by result: ok (2xx), http_error (any other status), timeout, network_error.',
      labelNames: ['result'],
      registers,
    })
    this.notifyAttemptSeconds = new Histogram({
      name: METRICS.notifyAttemptSeconds,
      help: 'Duration of one webhook HTTP attempt, by result.',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    this.notifyLatencySeconds = new Histogram({
      name: METRICS.notifyDeliveryLatencySeconds,
      help: 'Time from an alert event entering the outbox to its delivery (retries included).',
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400],
      registers,
    })
    this.notifyPending = new Gauge({
      name: METRICS.notifyPending,
      help: 'Webhook deliveries pending in the outbox (all subscriptions; the same value from every gateway running a worker).',
      registers,
    })
    this.notifyOldestPendingSeconds = new Gauge({
      name: METRICS.notifyOldestPendingSeconds,
      help: 'Age of the oldest pending webhook delivery (0 when none).',
      registers,
    })
  }
}

/** The route label of a request: its route pattern, or `unmatched`. */
export function routeLabel(req: { is404: boolean; routeOptions: { url?: string | undefined } }): string {
  return req.is404 ? UNMATCHED : (req.routeOptions.url ?? UNMATCHED)
}

/** Root hooks counting every reply (must be installed on the root instance to see every plugin's routes). */
export function installMetrics(app: FastifyInstance, m: GatewayMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = routeLabel(req)
    const status = reply.statusCode
    m.requests.inc({ route, method: req.method, status: String(status) })
    m.requestSeconds.observe({ route, method: req.method }, reply.elapsedTime / 1000)
    const len = Number(req.headers['content-length'])
    if (Number.isFinite(len) && len > 0) m.requestBytes.inc({ route }, len)
    if (status === 429 || status === 503) m.backpressure.inc({ route, status: String(status) })
  })
}

/** `GET /metrics`: the registry in the Prometheus text format; public (no credential) and not rate limited. */
export const metricsPlugin: FastifyPluginAsync<{ metrics: GatewayMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', { config: { access: 'public', rateLimit: false } }, async (_req, reply) => {
    const body = await metrics.registry.metrics()
    void reply.header('content-type', metrics.registry.contentType)
    return body
  })
}
