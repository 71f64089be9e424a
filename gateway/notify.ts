/**
 * Notification plugin: webhook subscriptions (CRUD, secret rotation) and the delivery log. What a subscription
 * selects is decided in PostgreSQL by the outbox triggers (gateway migration 7), in the transaction that writes
 * the alert event or the workflow action; the delivery worker (notify-worker.ts) sends what they queued. So this
 * plugin only manages rows: a change of filter applies to events written after it commits.
 *
 * Access: operators and admins who are not fleet/site-scoped (a subscription sees every entity its filter
 * names, which a scoped person could use to read outside their scope); deleting is for admins. The signing
 * secret is generated here and returned once, by the create and rotate replies; no read returns it.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type pg from 'pg'
import { decodeCursor, encodeCursor, fieldOf } from './cursor.js'
import { GatewayError } from './errors.js'
import type { AddressPolicy } from './notify-address.js'
import { projectionError } from './queries.js'
import { ErrorReply, errorReplies, NoContent } from './schemas.js'
import { scopeOf } from './scope.js'

export interface NotifyPluginOptions {
  pool: pg.Pool
  /** The SSRF guard: a URL whose host is (or resolves to) a refused address is not accepted. */
  addresses: AddressPolicy
}

/** The events a subscription can select: the detector's and people's (alarms.ts). */
export const NOTIFY_EVENTS = [
  'open',
  'update',
  'close',
  'acknowledge',
  'assign',
  'unassign',
  'comment',
  'clear',
] as const
export const DELIVERY_STATUSES = ['pending', 'delivered', 'expired', 'dropped'] as const

const strict = { additionalProperties: false } as const
const Status = Type.Union([
  Type.Literal('pending'),
  Type.Literal('delivered'),
  Type.Literal('expired'),
  Type.Literal('dropped'),
])
const EventName = Type.Union([
  Type.Literal('open'),
  Type.Literal('update'),
  Type.Literal('close'),
  Type.Literal('acknowledge'),
  Type.Literal('assign'),
  Type.Literal('unassign'),
  Type.Literal('comment'),
  Type.Literal('clear'),
])
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const Text = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\x00-\\x1f\\x7f]+$' })
const List = <T extends TSchema>(item: T) =>
  Nullable(Type.Array(item, { minItems: 1, maxItems: 100, uniqueItems: true }))
const Filter = Type.Object(
  {
    events: Type.Optional(List(EventName)),
    profiles: Type.Optional(List(Text)),
    types: Type.Optional(List(Text)),
    severities: Type.Optional(
      List(Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')])),
    ),
    kinds: Type.Optional(List(Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')]))),
    entities: Type.Optional(List(Text)),
    fleets: Type.Optional(List(Text)),
    sites: Type.Optional(List(Text)),
  },
  {
    ...strict,
    description: 'each list selects events whose value is in it; absent or null selects any; all lists must match',
  },
)
type FilterT = Static<typeof Filter>
const FILTER_KEYS = ['events', 'profiles', 'types', 'severities', 'kinds', 'entities', 'fleets', 'sites'] as const

const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL the deliveries are POSTed to' })
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\x00-\\x1f\\x7f]+$' })
const Subscription = Type.Object({
  id: Type.String(),
  name: Type.String(),
  url: Type.String(),
  enabled: Type.Boolean(),
  filter: Type.Object(Object.fromEntries(FILTER_KEYS.map((k) => [k, Nullable(Type.Array(Type.String()))]))),
  createdBy: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
})
const Created = Type.Intersect([
  Subscription,
  Type.Object({ secret: Type.String({ description: 'the signing secret; shown only in this reply' }) }),
])
type SubscriptionT = Static<typeof Subscription>
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }) }, strict)
const DeliveryParams = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }) },
  strict,
)

const Delivery = Type.Object({
  deliveryId: Type.String(),
  subscriptionId: Type.String(),
  alertId: Type.String(),
  sequence: Type.Integer(),
  event: Type.String(),
  status: Status,
  attempts: Type.Integer(),
  createdAt: Type.String(),
  nextAttemptAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  lastStatusCode: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
})
const Attempt = Type.Object({
  attempt: Type.Integer(),
  startedAt: Type.String(),
  durationMs: Type.Integer(),
  statusCode: Nullable(Type.Integer()),
  error: Nullable(Type.String()),
  outcome: Type.Union([Type.Literal('delivered'), Type.Literal('failed')]),
  worker: Type.String(),
})
/** The webhook body as sent (gateway/README.md, Notifications): fixed when the event committed. */
const Payload = Type.Object(
  {
    deliveryId: Type.String(),
    subscriptionId: Type.String(),
    sequence: Type.Integer(),
    event: Type.String(),
    at: Type.String(),
    by: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    byType: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    comment: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    assignee: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    alert: Type.Object(
      {
        alertId: Type.String(),
        kind: Type.String(),
        entity: Type.String(),
        profile: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        type: Type.String(),
        severity: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      },
      {
        additionalProperties: true,
        description:
          'the alert: id, entity, type, severity, explanation, times, value, threshold, details, workflow flags',
      },
    ),
  },
  { additionalProperties: true },
)
const DeliveryDetail = Type.Intersect([Delivery, Type.Object({ payload: Payload, attemptLog: Type.Array(Attempt) })])
const DeliveryQuery = Type.Object(
  {
    subscription: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(Status),
    alert: Type.Optional(Type.String({ maxLength: 512 })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  strict,
)

type SubRow = {
  id: string
  name: string
  url: string
  enabled: boolean
  created_by: string
  created_at: Date
  updated_at: Date
} & Record<(typeof FILTER_KEYS)[number], string[] | null>
type DeliveryRow = {
  id: string
  delivery_id: string
  subscription_id: string
  alert_id: string
  alert_seq: string
  event: string
  status: string
  attempts: number
  created_at: Date
  next_attempt_at: Date
  finished_at: Date | null
  last_status_code: number | null
  last_error: string | null
}

const SUB_COLS = `id, name, url, enabled, ${FILTER_KEYS.join(', ')}, created_by, created_at, updated_at`
const DELIVERY_COLS =
  'id, delivery_id, subscription_id, alert_id, alert_seq, event, status, attempts, created_at, next_attempt_at, finished_at, last_status_code, last_error'

function subOut(r: SubRow): SubscriptionT {
  return {
    id: r.id,
    name: r.name,
    url: r.url,
    enabled: r.enabled,
    filter: Object.fromEntries(FILTER_KEYS.map((k) => [k, r[k]])),
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  }
}

function deliveryOut(r: DeliveryRow): Static<typeof Delivery> {
  return {
    deliveryId: r.delivery_id,
    subscriptionId: r.subscription_id,
    alertId: r.alert_id,
    sequence: Number(r.alert_seq),
    event: r.event,
    status: r.status as Static<typeof Delivery>['status'],
    attempts: r.attempts,
    createdAt: r.created_at.toISOString(),
    nextAttemptAt: r.status === 'pending' ? r.next_attempt_at.toISOString() : null,
    finishedAt: r.finished_at === null ? null : r.finished_at.toISOString(),
    lastStatusCode: r.last_status_code,
    lastError: r.last_error,
  }
}

/** A webhook URL: absolute http(s), no credentials in it (fetch refuses them; put tokens in the path or query). */
export function checkWebhookUrl(raw: string, item: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new GatewayError('GW_ERR_WEBHOOK_URL_INVALID', 'not an absolute URL', { item })
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new GatewayError('GW_ERR_WEBHOOK_URL_INVALID', 'the URL must be http or https', { item })
  if (u.username !== '' || u.password !== '')
    throw new GatewayError('GW_ERR_WEBHOOK_URL_INVALID', 'the URL must not carry a user or password', { item })
  return u.href
}

/** checkWebhookUrl, then the SSRF guard on its host (notify-address.ts): `400 GW_ERR_WEBHOOK_URL_FORBIDDEN`. */
export async function checkWebhookTarget(raw: string, item: string, addresses: AddressPolicy): Promise<string> {
  const href = checkWebhookUrl(raw, item)
  try {
    await addresses.checkHost(new URL(href).hostname)
  } catch (err) {
    throw new GatewayError('GW_ERR_WEBHOOK_URL_FORBIDDEN', (err as Error).message, { item, cause: err })
  }
  return href
}

/** A new signing secret: 32 random bytes, prefixed so it is recognisable in a secret scanner. */
const newSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`
const newId = (): string => `sub_${randomBytes(9).toString('base64url')}`

const unknownSub = (id: string): GatewayError =>
  new GatewayError('GW_ERR_SUBSCRIPTION_UNKNOWN', `no subscription ${JSON.stringify(id)}`, { item: 'params.id' })

/** Who creates: the JWT subject or `key:<id>` (`dev` with auth off). */
function creator(req: FastifyRequest): string {
  const p = req.principal
  if (!p || p.type === 'dev') return 'dev'
  return p.type === 'key' ? `key:${p.id}` : p.id
}

/** Scoped people never manage notifications (a filter could name entities outside their scope). */
async function unscopedOnly(req: FastifyRequest): Promise<void> {
  if (scopeOf(req.principal) !== null)
    throw new GatewayError(
      'GW_ERR_FORBIDDEN',
      'notifications are managed by operators and admins who are not fleet- or site-scoped',
    )
}

const filterValues = (f: FilterT | undefined): (string[] | null)[] => FILTER_KEYS.map((k) => f?.[k] ?? null)

export const notifyPlugin: FastifyPluginAsyncTypebox<NotifyPluginOptions> = async (app, { pool, addresses }) => {
  const write = { access: 'write' as const }
  app.addHook('preHandler', unscopedOnly)
  const q = async <R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>> =>
    pool.query<R>(sql, values).catch((err: unknown) => {
      throw projectionError(err)
    })

  app.post(
    '/v1/notifications/subscriptions',
    {
      config: write,
      schema: {
        body: Type.Object(
          {
            id: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 64,
                pattern: '^[A-Za-z0-9_-]+$',
                description:
                  'chosen by the client (the same at both sites, see gateway/README.md); default a random `sub_...`',
              }),
            ),
            name: Name,
            url: Url,
            enabled: Type.Optional(Type.Boolean()),
            filter: Type.Optional(Filter),
          },
          strict,
        ),
        response: { 201: Created, 409: ErrorReply, ...errorReplies },
      },
    },
    async (req, reply) => {
      const b = req.body
      const url = await checkWebhookTarget(b.url, 'body.url', addresses)
      const secret = newSecret()
      const id = b.id ?? newId()
      const r = await pool
        .query<SubRow>(
          `INSERT INTO notify_subscriptions (id, name, url, secret, enabled, ${FILTER_KEYS.join(', ')}, created_by)
      VALUES ($1, $2, $3, $4, $5, ${FILTER_KEYS.map((_, i) => `$${i + 6}`).join(', ')}, $${FILTER_KEYS.length + 6}) RETURNING ${SUB_COLS}`,
          [id, b.name, url, secret, b.enabled ?? true, ...filterValues(b.filter), creator(req)],
        )
        .catch((err: unknown) => {
          if ((err as { code?: string }).code === '23505')
            throw new GatewayError('GW_ERR_CONFLICT', `subscription ${JSON.stringify(id)} already exists`, {
              item: 'body.id',
              cause: err,
            })
          throw projectionError(err)
        })
      void reply.code(201)
      return { ...subOut(r.rows[0] as SubRow), secret }
    },
  )

  app.get(
    '/v1/notifications/subscriptions',
    {
      config: write,
      schema: { response: { 200: Type.Object({ items: Type.Array(Subscription) }), ...errorReplies } },
    },
    async () => ({
      items: (await q<SubRow>(`SELECT ${SUB_COLS} FROM notify_subscriptions ORDER BY id`, [])).rows.map(subOut),
    }),
  )

  app.get(
    '/v1/notifications/subscriptions/:id',
    {
      config: write,
      schema: { params: IdParams, response: { 200: Subscription, ...errorReplies } },
    },
    async (req) => {
      const row = (await q<SubRow>(`SELECT ${SUB_COLS} FROM notify_subscriptions WHERE id = $1`, [req.params.id]))
        .rows[0]
      if (!row) throw unknownSub(req.params.id)
      return subOut(row)
    },
  )

  app.patch(
    '/v1/notifications/subscriptions/:id',
    {
      config: write,
      schema: {
        params: IdParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            url: Type.Optional(Url),
            enabled: Type.Optional(Type.Boolean()),
            filter: Type.Optional(Filter),
          },
          strict,
        ),
        response: { 200: Subscription, ...errorReplies },
      },
    },
    async (req) => {
      const b = req.body
      const sets: string[] = []
      const values: unknown[] = [req.params.id]
      const set = (col: string, v: unknown): void => {
        values.push(v)
        sets.push(`${col} = $${values.length}`)
      }
      if (b.name !== undefined) set('name', b.name)
      if (b.url !== undefined) set('url', await checkWebhookTarget(b.url, 'body.url', addresses))
      if (b.enabled !== undefined) set('enabled', b.enabled)
      // A filter in a PATCH replaces the whole filter (lists it leaves out select any).
      if (b.filter !== undefined)
        FILTER_KEYS.forEach((k, i) => {
          set(k, filterValues(b.filter)[i])
        })
      const row = (
        await q<SubRow>(
          `UPDATE notify_subscriptions SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING ${SUB_COLS}`,
          values,
        )
      ).rows[0]
      if (!row) throw unknownSub(req.params.id)
      return subOut(row)
    },
  )

  app.delete(
    '/v1/notifications/subscriptions/:id',
    {
      config: { access: 'admin' },
      schema: { params: IdParams, response: { 204: NoContent, ...errorReplies } },
    },
    async (req, reply) => {
      const r = await q<{ n: number }>(
        `WITH d AS (DELETE FROM notify_subscriptions WHERE id = $1 RETURNING id),
      o AS (DELETE FROM notify_outbox WHERE subscription_id IN (SELECT id FROM d))
      SELECT count(*)::int AS n FROM d`,
        [req.params.id],
      )
      if (r.rows[0]?.n !== 1) throw unknownSub(req.params.id)
      void reply.code(204)
      return null
    },
  )

  app.post(
    '/v1/notifications/subscriptions/:id/secret',
    {
      config: { access: 'admin' },
      schema: {
        params: IdParams,
        response: { 200: Type.Object({ id: Type.String(), secret: Type.String() }), ...errorReplies },
      },
    },
    async (req) => {
      const secret = newSecret()
      const r = await q('UPDATE notify_subscriptions SET secret = $2, updated_at = now() WHERE id = $1', [
        req.params.id,
        secret,
      ])
      if (r.rowCount !== 1) throw unknownSub(req.params.id)
      return { id: req.params.id, secret }
    },
  )

  app.get(
    '/v1/notifications/deliveries',
    {
      config: write,
      schema: {
        querystring: DeliveryQuery,
        response: {
          200: Type.Object({ items: Type.Array(Delivery), nextCursor: Nullable(Type.String()) }),
          ...errorReplies,
        },
      },
    },
    async (req) => {
      const qs = req.query
      const limit = qs.limit === undefined ? 20 : Number(qs.limit)
      if (limit < 1 || limit > 100)
        throw new GatewayError('GW_ERR_QUERY_INVALID', 'limit must be 1..100', { item: 'querystring.limit' })
      const where: string[] = []
      const values: unknown[] = []
      const add = (cond: (p: string) => string, v: unknown): void => {
        values.push(v)
        where.push(cond(`$${values.length}`))
      }
      if (qs.subscription !== undefined) add((p) => `subscription_id = ${p}`, qs.subscription)
      if (qs.status !== undefined) add((p) => `status = ${p}`, qs.status)
      if (qs.alert !== undefined) add((p) => `alert_id = ${p}`, qs.alert)
      const after = decodeCursor(qs.cursor, (v) => {
        const o = fieldOf(v, 'o')
        return typeof o === 'string' && /^[0-9]{1,19}$/.test(o) ? o : undefined
      })
      if (after !== undefined) add((p) => `id < ${p}::bigint`, after)
      values.push(limit + 1)
      const rows = (
        await q<DeliveryRow>(
          `SELECT ${DELIVERY_COLS} FROM notify_outbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT $${values.length}`,
          values,
        )
      ).rows
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        items: page.map(deliveryOut),
        nextCursor: rows.length > limit && last ? encodeCursor({ o: last.id }) : null,
      }
    },
  )

  app.get(
    '/v1/notifications/deliveries/:id',
    {
      config: write,
      schema: { params: DeliveryParams, response: { 200: DeliveryDetail, ...errorReplies } },
    },
    async (req) => {
      const row = (
        await q<DeliveryRow & { payload: Static<typeof Payload> }>(
          `SELECT ${DELIVERY_COLS}, payload FROM notify_outbox WHERE delivery_id = $1`,
          [req.params.id],
        )
      ).rows[0]
      if (!row) throw new GatewayError('GW_ERR_DELIVERY_UNKNOWN', `no delivery ${req.params.id}`, { item: 'params.id' })
      const attempts = await q<{
        attempt: number
        started_at: Date
        duration_ms: number
        status_code: number | null
        error: string | null
        outcome: 'delivered' | 'failed'
        worker: string
      }>(
        'SELECT attempt, started_at, duration_ms, status_code, error, outcome, worker FROM notify_attempts WHERE outbox_id = $1 ORDER BY attempt',
        [row.id],
      )
      return {
        ...deliveryOut(row),
        payload: row.payload,
        attemptLog: attempts.rows.map((a) => ({
          attempt: a.attempt,
          startedAt: a.started_at.toISOString(),
          durationMs: a.duration_ms,
          statusCode: a.status_code,
          error: a.error,
          outcome: a.outcome,
          worker: a.worker,
        })),
      }
    },
  )
}
