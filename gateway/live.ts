/**
 * Live feed plugin: the site's outputs (OUT stream) filtered by kind, entity, output type and severity, for
 * viewers and up (scoped people see their entities only, scope.ts), over two transports that share everything
 * but the framing:
 *   `GET /v1/live`      Server-Sent Events (`id:` OUT sequence, `event:` output type, `data:` the output)
 *   `GET /v1/live/ws`   WebSocket (one text message per output: `{"id": seq, "event": type, "data": output}`)
 * Each event's id is the output's OUT stream sequence, so a client that reconnects with `Last-Event-ID: n`
 * (browsers' EventSource does it by itself) or `?lastEventId=n` (WebSocket clients, which cannot set headers)
 * resumes at sequence n + 1: no gap and no duplicate while the stream still holds it. Each connection reads
 * through its own ordered (ephemeral) JetStream consumer, filtered by subject where the filters allow; a
 * heartbeat (SSE comment, WebSocket ping) every `liveHeartbeatMs` keeps proxies from closing the connection and
 * lets either side notice a dead one. A slow client is not buffered without bound: the consumer is read only
 * as fast as the socket drains.
 * Alarm workflow changes (acknowledge, assign, comment, clear; alarms.ts) are people's actions, not outputs:
 * they travel on core NATS (`alarm.<site>.<kind>.<entity>`, so every gateway of the site sees them) and reach
 * the feed as `alarm` events without an id: they are not replayed on reconnect (GET /v1/alerts/:id is the truth).
 * Raw readings (`type=reading`, only when asked for by name: a race car sends tens per second) are the instant
 * values a pit wall shows: read from core NATS as they are published to TLM at this site (no id, no replay), and
 * under backpressure coalesced per entity (the newest value of each field wins) rather than queued.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { Type } from '@sinclair/typebox'
import { DeliverPolicy, jetstream, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import { ID_PATTERN, isEntityKind, parsePartitioned } from '../actors/mod.js'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import type { GatewayMetrics } from './metrics.js'
import { alarmSubject } from './alarms.js'
import { ErrorReply, errorReplies } from './schemas.js'
import { assertVisible, Params, scopeOf, scopeSql, type Scope } from './scope.js'

export interface LiveOptions {
  nc: NatsConnection
  cfg: GatewayConfig
  metrics: GatewayMetrics
  /** Registry, for people's scoping; without it nobody is scoped. */
  pool?: pg.Pool
}

/** Output types a client may ask for (fences are the runtime's own bookkeeping and never sent). */
export const LIVE_TYPES = [
  'window',
  'alert',
  'score',
  'recommendation',
  'lap',
  'late',
  'position',
  'alarm',
  'reading',
] as const

const LiveQuery = Type.Object(
  {
    kind: Type.Optional(Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')])),
    entity: Type.Optional(Type.String({ pattern: ID_PATTERN.source })),
    type: Type.Optional(Type.Union(LIVE_TYPES.map((x) => Type.Literal(x)))),
    severity: Type.Optional(Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')])),
    /** For clients that cannot send headers (WebSocket, a first EventSource connection); the header wins. */
    lastEventId: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
  },
  { additionalProperties: false },
)
type LiveQueryT = {
  kind?: 'sensor' | 'vehicle'
  entity?: string
  type?: (typeof LIVE_TYPES)[number]
  severity?: 'info' | 'warning' | 'critical'
  lastEventId?: string
}

const SEQ = /^[0-9]{1,15}$/
/** How long a scoped person's visibility of an entity is trusted (registry changes show within this). */
const VISIBILITY_TTL_MS = 30_000
/** WebSocket: above this many unsent bytes the feed waits for the socket before reading on. */
const WS_HIGH_WATER = 256 * 1024
/** WebSocket close codes (RFC 6455): server going away, and a server error (the consumer failed). */
const WS_GOING_AWAY = 1001
const WS_SERVER_ERROR = 1011

interface OutputHead {
  type?: unknown
  kind?: unknown
  entity?: unknown
  body?: { severity?: unknown }
}

/** One output as the feed sends it: the OUT sequence (none for `alarm` events), the output type and its JSON. */
export interface LiveEvent {
  seq: number | undefined
  type: string
  data: string
}

/** A validated feed request: filters, start position, and the visibility check of a scoped person. */
interface FeedRequest {
  qs: LiveQueryT
  /** Resume after this OUT sequence; undefined starts at new outputs. */
  last: number | undefined
  visible: ((kind: string, entity: string) => Promise<boolean>) | undefined
}

/** A transport's framing: how an event and a heartbeat are written, and how the connection is ended. */
interface Transport {
  /** Writes one event; resolves when the caller may write the next (the socket drained enough). */
  send(e: LiveEvent): Promise<void>
  heartbeat(): void
  close(reason: 'done' | 'error' | 'shutdown'): void
}

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

/** Validates a feed request (scope, then Last-Event-ID) before any consumer exists; throws GatewayError. */
async function feedRequest(req: FastifyRequest, qs: LiveQueryT, pool: pg.Pool | undefined): Promise<FeedRequest> {
  const scope = pool ? scopeOf(req.principal) : null
  // Naming an entity outside the scope is a 404, as on the other entity routes (checked first: it says less).
  if (qs.entity !== undefined && qs.kind !== undefined && scope && pool)
    await assertVisible(pool, scope, qs.kind, qs.entity)
  const header = req.headers['last-event-id']
  if (header !== undefined && (typeof header !== 'string' || !SEQ.test(header.trim()))) {
    throw new GatewayError('GW_ERR_QUERY_INVALID', 'Last-Event-ID must be a stream sequence (digits)', {
      item: 'headers.last-event-id',
    })
  }
  const lastRaw = typeof header === 'string' ? header.trim() : qs.lastEventId
  return {
    qs,
    last: lastRaw === undefined ? undefined : Number(lastRaw),
    visible: scope && pool ? visibility(pool, scope) : undefined,
  }
}

/** Opens the connection's ordered consumer on OUT, subject-filtered by kind and entity; GW_ERR_UNAVAILABLE if it cannot. */
async function subscribe(js: JetStreamClient, cfg: GatewayConfig, f: FeedRequest): Promise<ConsumerMessages> {
  const filter = `out.${cfg.runtime.site}.*.${f.qs.kind ?? '*'}.${f.qs.entity ?? '*'}`
  try {
    const consumer = await js.consumers.get(cfg.runtime.streams.out, {
      filter_subjects: filter,
      ...(f.last === undefined
        ? { deliver_policy: DeliverPolicy.New }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: f.last + 1 }),
    })
    return await consumer.consume({ max_messages: 256 })
  } catch (err) {
    throw new GatewayError(
      'GW_ERR_UNAVAILABLE',
      `stream ${cfg.runtime.streams.out} unreachable: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    )
  }
}

/** The outputs of `messages` that pass the filters the subject cannot express (type, severity, scope). */
async function* events(messages: ConsumerMessages, f: FeedRequest): AsyncGenerator<LiveEvent> {
  for await (const m of messages) {
    let o: OutputHead
    try {
      o = m.json<OutputHead>()
    } catch {
      continue // not an output (the projector sets such messages aside); nothing a client could use
    }
    if (o.type === 'fence' || typeof o.kind !== 'string' || typeof o.entity !== 'string') continue
    if (f.qs.type !== undefined && o.type !== f.qs.type) continue
    if (f.qs.severity !== undefined && o.body?.severity !== f.qs.severity) continue
    if (f.visible && !(await f.visible(o.kind, o.entity))) continue
    yield { seq: m.seq, type: String(o.type), data: m.string() }
  }
}

export const livePlugin: FastifyPluginAsyncTypebox<LiveOptions> = async (app, { nc, cfg, metrics, pool }) => {
  const js = jetstream(nc)
  const open = new Set<() => void>()
  // Open feeds would keep the server from closing: end them first (SSE responses end, WebSockets get 1001).
  const endAll = (): void => {
    for (const end of [...open]) end()
  }
  app.addHook('preClose', async () => {
    endAll()
  })
  // Encapsulated here: only the feed routes upgrade. Its preClose runs before ours, so it ends the feeds too
  // (its default would close sockets without a code).
  await app.register(fastifyWebsocket, {
    options: { maxPayload: 4096 },
    preClose(done) {
      endAll()
      for (const client of this.websocketServer.clients) client.close(WS_GOING_AWAY, 'gateway closing')
      this.websocketServer.close(() => {
        done()
      })
    },
  })

  /**
   * Runs one feed until the client leaves, the consumer fails or the gateway closes: heartbeats, the clients
   * gauge, and the consumer closed exactly once whatever ends it.
   */
  function run(messages: ConsumerMessages, f: FeedRequest, t: Transport, log: FastifyBaseLogger): () => void {
    metrics.liveClients.inc()
    let ended = false
    const heartbeat = setInterval(() => {
      t.heartbeat()
    }, cfg.liveHeartbeatMs)
    const alarms = alarmEvents(
      f,
      (e) => {
        if (!ended) void t.send(e).catch(() => undefined)
      },
      log,
    )
    const readings = readingEvents(f, (e) => (ended ? Promise.resolve() : t.send(e)), log)
    const end = (reason: 'done' | 'error' | 'shutdown' = 'done'): void => {
      if (ended) return
      ended = true
      clearInterval(heartbeat)
      alarms?.unsubscribe()
      readings?.unsubscribe()
      metrics.liveClients.dec()
      open.delete(shutdown)
      void messages.close().catch(() => undefined)
      t.close(reason)
    }
    const shutdown = (): void => {
      end('shutdown')
    }
    open.add(shutdown)
    void (async () => {
      let reason: 'done' | 'error' = 'done'
      try {
        for await (const e of events(messages, f)) {
          if (ended) break
          await t.send(e)
        }
      } catch (err) {
        reason = 'error'
        log.warn({ err }, 'live feed consumer failed')
      } finally {
        end(reason)
      }
    })()
    return end
  }

  /**
   * The feed's alarm workflow events (core NATS), filtered like outputs; none when the type filter excludes
   * them. `alert` includes them: a client following alerts wants to see them acknowledged and cleared.
   */
  function alarmEvents(
    f: FeedRequest,
    send: (e: LiveEvent) => void,
    log: FastifyBaseLogger,
  ): { unsubscribe(): void } | undefined {
    if (f.qs.type !== undefined && f.qs.type !== 'alarm' && f.qs.type !== 'alert') return undefined
    return nc.subscribe(alarmSubject(cfg.runtime.site, f.qs.kind ?? '*', f.qs.entity ?? '*'), {
      callback: (err, m) => {
        if (err) return
        void (async () => {
          const data = m.string()
          const o = JSON.parse(data) as { kind: string; entity: string; severity?: string }
          if (f.qs.severity !== undefined && o.severity !== f.qs.severity) return
          if (f.visible && !(await f.visible(o.kind, o.entity))) return
          send({ seq: undefined, type: 'alarm', data })
        })().catch((e: unknown) => {
          log.warn({ err: e }, 'live feed alarm event dropped')
        })
      },
    })
  }

  /**
   * Raw readings of this site's TLM (core NATS, `tlm.<site>.<p>.<kind>.<entity>`) as `reading` events
   * `{type: "reading", kind, entity, ts, fields, profile?, loc?}`; only with `type=reading`. While a write is
   * waiting for the socket, later readings are merged per entity (fields of the newest reading win) and sent
   * when it drains: memory is bounded by the number of entities, and a slow client sees fewer, fresher values.
   */
  function readingEvents(
    f: FeedRequest,
    send: (e: LiveEvent) => Promise<void>,
    log: FastifyBaseLogger,
  ): { unsubscribe(): void } | undefined {
    if (f.qs.type !== 'reading') return undefined
    interface Pending {
      kind: string
      entity: string
      ts: number
      fields: Record<string, unknown>
      profile?: unknown
      loc?: unknown
    }
    const pending = new Map<string, Pending>()
    let busy = false
    const flush = async (): Promise<void> => {
      busy = true
      try {
        while (pending.size > 0) {
          const [key, r] = pending.entries().next().value as [string, Pending]
          pending.delete(key)
          await send({ seq: undefined, type: 'reading', data: JSON.stringify({ type: 'reading', ...r }) })
        }
      } finally {
        busy = false
      }
    }
    return nc.subscribe(`tlm.${cfg.runtime.site}.*.${f.qs.kind ?? '*'}.${f.qs.entity ?? '*'}`, {
      callback: (err, m) => {
        if (err) return
        const at = parsePartitioned(m.subject)
        if (!at || !isEntityKind(at.kind)) return
        void (async () => {
          if (f.visible && !(await f.visible(at.kind, at.id))) return
          const r = m.json<{ ts?: unknown; fields?: unknown; profile?: unknown; loc?: unknown }>()
          if (typeof r.ts !== 'number' || typeof r.fields !== 'object' || r.fields === null) return
          const key = `${at.kind}.${at.id}`
          const prev = pending.get(key)
          pending.set(key, {
            kind: at.kind,
            entity: at.id,
            ts: Math.max(r.ts, prev?.ts ?? -Infinity),
            fields: { ...prev?.fields, ...(r.fields as Record<string, unknown>) },
            ...(r.profile !== undefined ? { profile: r.profile } : {}),
            ...(r.loc !== undefined ? { loc: r.loc } : {}),
          })
          if (!busy) await flush()
        })().catch((e: unknown) => {
          log.debug({ err: e }, 'live feed reading dropped')
        })
      },
    })
  }

  app.get(
    '/v1/live',
    {
      // A HEAD twin would open a consumer for a reply that never has a body.
      exposeHeadRoute: false,
      config: { access: 'read', rateLimit: false },
      schema: {
        querystring: LiveQuery,
        response: {
          200: Type.String({
            description: 'text/event-stream: `id:` OUT sequence, `event:` output type, `data:` the output (JSON)',
          }),
          ...errorReplies,
        },
      },
    },
    async (req, reply) => {
      const f = await feedRequest(req, req.query, pool)
      const messages = await subscribe(js, cfg, f)
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
      const end = run(
        messages,
        f,
        {
          async send(e) {
            if (!res.write(`${e.seq === undefined ? '' : `id: ${e.seq}\n`}event: ${e.type}\ndata: ${e.data}\n\n`)) {
              // Whichever fires first settles the wait; the other listener goes with it (a slow client would
              // otherwise collect one 'close' listener per full buffer).
              await new Promise<void>((resolve) => {
                const done = (): void => {
                  res.off('drain', done)
                  res.off('close', done)
                  resolve()
                }
                res.once('drain', done)
                res.once('close', done)
              })
            }
          },
          heartbeat() {
            res.write(': heartbeat\n\n')
          },
          close() {
            if (!res.writableEnded) res.end()
          },
        },
        req.log,
      )
      req.raw.on('close', () => {
        end()
      })
      res.on('error', () => {
        end()
      })
    },
  )

  // The request (filters, scope, Last-Event-ID) is checked before the upgrade, so a refused WebSocket gets a
  // plain HTTP status and code like every other route; a request without `Upgrade: websocket` gets 426.
  const checked = new WeakMap<FastifyRequest, FeedRequest>()
  app.route({
    method: 'GET',
    url: '/v1/live/ws',
    exposeHeadRoute: false,
    config: { access: 'read', rateLimit: false },
    schema: {
      querystring: LiveQuery,
      response: {
        101: Type.Null({
          description:
            'WebSocket: one text message per output, `{"id": <OUT sequence>, "event": <output type>, "data": <the output>}`',
        }),
        426: ErrorReply,
        ...errorReplies,
      },
    },
    preHandler: async (req) => {
      checked.set(req, await feedRequest(req, req.query as LiveQueryT, pool))
    },
    handler: async (_req, reply) => {
      void reply.header('upgrade', 'websocket')
      throw new GatewayError(
        'GW_ERR_UPGRADE_REQUIRED',
        'this route is a WebSocket: send Upgrade: websocket (or use GET /v1/live for Server-Sent Events)',
      )
    },
    wsHandler: async (socket: WebSocket, req) => {
      const f = checked.get(req)
      checked.delete(req)
      if (!f) {
        socket.close(WS_SERVER_ERROR, 'GW_ERR_INTERNAL')
        return
      }
      let messages: ConsumerMessages
      try {
        messages = await subscribe(js, cfg, f)
      } catch (err) {
        // After the upgrade there is no status line: the code travels as the close reason.
        socket.close(WS_SERVER_ERROR, err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL')
        return
      }
      if (socket.readyState !== socket.OPEN) {
        await messages.close().catch(() => undefined)
        return
      }
      let alive = true
      socket.on('pong', () => {
        alive = true
      })
      const end = run(
        messages,
        f,
        {
          async send(e) {
            const text = `{"id":${e.seq ?? null},"event":${JSON.stringify(e.type)},"data":${e.data}}`
            if (socket.bufferedAmount < WS_HIGH_WATER) {
              socket.send(text)
              return
            }
            await new Promise<void>((resolve) => {
              socket.send(text, () => {
                resolve()
              })
            })
          },
          heartbeat() {
            // A client that did not answer the previous ping is gone (half-open connection): drop it.
            if (!alive) {
              socket.terminate()
              return
            }
            alive = false
            socket.ping()
          },
          close(reason) {
            if (socket.readyState === socket.OPEN) {
              if (reason === 'shutdown') socket.close(WS_GOING_AWAY, 'gateway closing')
              else if (reason === 'error') socket.close(WS_SERVER_ERROR, 'GW_ERR_UNAVAILABLE')
              else socket.close()
            }
          },
        },
        req.log,
      )
      socket.on('close', () => {
        end()
      })
      socket.on('error', () => {
        end()
      })
    },
  })
}
