/**
 * Live feed plugin: `GET /v1/live`, Server-Sent Events of the site's outputs (OUT stream) filtered by kind,
 * entity, output type and severity, for viewers and up (scoped people see their entities only, scope.ts).
 * Each event's `id:` is the output's OUT stream sequence, so a client that reconnects with `Last-Event-ID: n`
 * (browsers' EventSource does it by itself) resumes at sequence n + 1: no gap and no duplicate while the stream
 * still holds it. Each connection reads through its own ordered (ephemeral) JetStream consumer, filtered by
 * subject where the filters allow; a comment line is sent every `liveHeartbeatMs` so proxies keep the
 * connection open and clients notice a dead one. A slow client is not buffered without bound: the consumer is
 * read only as fast as the socket drains.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import { ID_PATTERN } from '../actors/mod.js'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import type { GatewayMetrics } from './metrics.js'
import { errorReplies } from './schemas.js'
import { assertVisible, Params, scopeOf, scopeSql, type Scope } from './scope.js'

export interface LiveOptions {
  nc: NatsConnection
  cfg: GatewayConfig
  metrics: GatewayMetrics
  /** Registry, for people's scoping; without it nobody is scoped. */
  pool?: pg.Pool
}

/** Output types a client may ask for (fences are the runtime's own bookkeeping and never sent). */
export const LIVE_TYPES = ['window', 'alert', 'score', 'recommendation', 'lap', 'late'] as const

const LiveQuery = Type.Object({
  kind: Type.Optional(Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')])),
  entity: Type.Optional(Type.String({ pattern: ID_PATTERN.source })),
  type: Type.Optional(Type.Union(LIVE_TYPES.map((x) => Type.Literal(x)))),
  severity: Type.Optional(Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')])),
  /** For clients that cannot send headers on the first connection; `Last-Event-ID` wins when both are sent. */
  lastEventId: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
}, { additionalProperties: false })

const SEQ = /^[0-9]{1,15}$/
/** How long a scoped person's visibility of an entity is trusted (registry changes show within this). */
const VISIBILITY_TTL_MS = 30_000

interface OutputHead { type?: unknown; kind?: unknown; entity?: unknown; body?: { severity?: unknown } }

/** Remembers, per connection, which entities a scoped person may see. */
function visibility(pool: pg.Pool, scope: Scope): (kind: string, entity: string) => Promise<boolean> {
  const cache = new Map<string, { until: number; ok: boolean }>()
  return async (kind, entity) => {
    const key = `${kind}.${entity}`
    const hit = cache.get(key)
    if (hit && hit.until > Date.now()) return hit.ok
    const q = new Params()
    const cond = scopeSql(scope, q.p(kind), q.p(entity), q)
    const ok = (await pool.query<{ ok: boolean }>(`SELECT ${cond} AS ok`, q.values)).rows[0]?.ok === true
    if (cache.size > 10_000) cache.clear()
    cache.set(key, { until: Date.now() + VISIBILITY_TTL_MS, ok })
    return ok
  }
}

export const livePlugin: FastifyPluginAsyncTypebox<LiveOptions> = async (app, { nc, cfg, metrics, pool }) => {
  const js = jetstream(nc)
  const open = new Set<() => Promise<void>>()
  // Open feeds would keep the server from closing: end them first.
  app.addHook('preClose', async () => {
    await Promise.all([...open].map(async (end) => { await end() }))
  })

  app.get('/v1/live', {
    // A HEAD twin would open a consumer for a reply that never has a body.
    exposeHeadRoute: false,
    config: { access: 'read', rateLimit: false },
    schema: {
      querystring: LiveQuery,
      response: { 200: Type.String({ description: 'text/event-stream: `id:` OUT sequence, `event:` output type, `data:` the output (JSON)' }), ...errorReplies },
    },
  }, async (req, reply) => {
    const qs = req.query
    const scope = pool ? scopeOf(req.principal) : null
    // Naming an entity outside the scope is a 404, as on the other entity routes (checked first: it says less).
    if (qs.entity !== undefined && qs.kind !== undefined && scope && pool) await assertVisible(pool, scope, qs.kind, qs.entity)
    const header = req.headers['last-event-id']
    if (header !== undefined && (typeof header !== 'string' || !SEQ.test(header.trim()))) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', 'Last-Event-ID must be a stream sequence (digits)', { item: 'headers.last-event-id' })
    }
    const lastRaw = typeof header === 'string' ? header.trim() : qs.lastEventId
    const last = lastRaw === undefined ? undefined : Number(lastRaw)
    const visible = scope && pool ? visibility(pool, scope) : undefined
    const site = cfg.runtime.site
    const filter = `out.${site}.*.${qs.kind ?? '*'}.${qs.entity ?? '*'}`
    let messages: ConsumerMessages
    try {
      const consumer = await js.consumers.get(cfg.runtime.streams.out, {
        filter_subjects: filter,
        ...(last === undefined ? { deliver_policy: DeliverPolicy.New } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: last + 1 }),
      })
      messages = await consumer.consume({ max_messages: 256 })
    } catch (err) {
      throw new GatewayError('GW_ERR_UNAVAILABLE', `stream ${cfg.runtime.streams.out} unreachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }

    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    })
    res.write(`retry: ${cfg.liveRetryMs}\n\n`)
    metrics.liveClients.inc()
    let ended = false
    const heartbeat = setInterval(() => { res.write(': heartbeat\n\n') }, cfg.liveHeartbeatMs)
    const end = async (): Promise<void> => {
      if (ended) return
      ended = true
      clearInterval(heartbeat)
      metrics.liveClients.dec()
      open.delete(end)
      await messages.close().catch(() => undefined)
      if (!res.writableEnded) res.end()
    }
    open.add(end)
    req.raw.on('close', () => { void end() })
    res.on('error', () => { void end() })

    void (async () => {
      try {
        for await (const m of messages) {
          if (ended) break
          let o: OutputHead
          try {
            o = m.json<OutputHead>()
          } catch {
            continue // not an output (the projector sets such messages aside); nothing a client could use
          }
          if (o.type === 'fence' || typeof o.kind !== 'string' || typeof o.entity !== 'string') continue
          if (qs.type !== undefined && o.type !== qs.type) continue
          if (qs.severity !== undefined && o.body?.severity !== qs.severity) continue
          if (visible && !(await visible(o.kind, o.entity))) continue
          const ok = res.write(`id: ${m.seq}\nevent: ${String(o.type)}\ndata: ${m.string()}\n\n`)
          if (!ok) await new Promise<void>((resolve) => { res.once('drain', resolve); res.once('close', resolve) })
        }
      } catch (err) {
        req.log.warn({ err }, 'live feed consumer failed')
      } finally {
        await end()
      }
    })()
  })
}
