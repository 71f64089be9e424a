/**
 * Geofences plugin: circles and polygons as data, managed at run time. CRUD under `/v1/geofences` (viewers read,
 * operators create and update, admins delete; a fleet-scoped person reads the fences assigned to their fleets and
 * may not write), stored in PostgreSQL (table `geofences`, migration 4 in db.ts).
 *
 * Delivery to the workers: after every change, inside the same transaction and under an advisory lock (so
 * versions reach the bucket in order, whichever gateway wrote them), the whole set is published to the reference
 * bucket (`pw_refs`, key `geofences`) with a new version; workers watch it and apply it from the KV entry's time
 * plus PITWALL_REF_ACTIVATION_MS (actors/references.ts), no restart. Assignment: `customers` (fleets) and
 * `vehicles`; both empty = every vehicle. Customers are expanded into their vehicles when publishing, so the
 * set is republished when a vehicle's customer changes (registry.ts calls `republish`).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { KV } from '@nats-io/kv'
import type pg from 'pg'
import {
  ConfigError,
  GEOFENCES_REF,
  ID_PATTERN,
  validateShape,
  type GeofenceSet,
  type GeofenceShape,
} from '../actors/mod.js'
import { decodeTextCursor, encodeTextCursor } from './cursor.js'
import { GatewayError } from './errors.js'
import { errorReplies, NoContent } from './schemas.js'
import { scopeOf } from './scope.js'

export interface GeofenceOptions {
  pool: pg.Pool
  /** The reference bucket (opened by the caller). */
  refs: () => Promise<KV>
}

/** Arbitrary, fixed: the advisory lock that orders geofence versions ("pwgf"). */
const PUBLISH_LOCK = 0x70776766
const MAX_LIMIT = 100
const DEFAULT_LIMIT = 50

const Id = Type.String({ pattern: ID_PATTERN.source, maxLength: 64 })
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const Circle = Type.Object(
  {
    type: Type.Literal('circle'),
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lon: Type.Number({ minimum: -180, maximum: 180 }),
    radiusM: Type.Number({ exclusiveMinimum: 0, maximum: 100_000 }),
  },
  { additionalProperties: false },
)
const Position = Type.Array(Type.Number(), { minItems: 2, maxItems: 3, description: '[lon, lat]' })
const Polygon = Type.Object(
  {
    type: Type.Literal('polygon'),
    coordinates: Type.Array(Type.Array(Position, { minItems: 3, maxItems: 1000 }), {
      minItems: 1,
      maxItems: 20,
      description: 'GeoJSON Polygon rings: the outer boundary, then holes',
    }),
  },
  { additionalProperties: false },
)
const Shape = Type.Union([Circle, Polygon])
const Assignment = {
  customers: Type.Optional(Type.Array(Id, { maxItems: 1000, uniqueItems: true })),
  vehicles: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 10_000, uniqueItems: true }),
  ),
}
const Tuning = {
  marginM: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 10_000 }))),
  minDwellMs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 86_400_000 }))),
}
const GeofenceCreate = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    shape: Shape,
    ...Assignment,
    ...Tuning,
  },
  { additionalProperties: false },
)
const GeofencePatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    shape: Type.Optional(Shape),
    ...Assignment,
    ...Tuning,
  },
  { additionalProperties: false, minProperties: 1 },
)
const Geofence = Type.Object({
  id: Type.String(),
  name: Nullable(Type.String()),
  shape: Shape,
  customers: Type.Array(Type.String()),
  vehicles: Type.Array(Type.String()),
  marginM: Nullable(Type.Number()),
  minDwellMs: Nullable(Type.Integer()),
  version: Type.Integer({ description: 'the set version this change published' }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
})
const List = Type.Object({
  items: Type.Array(Geofence),
  nextCursor: Nullable(Type.String()),
  version: Type.Integer({ description: 'current set version (0: none published)' }),
})
const Query = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
)
const IdParams = Type.Object({ id: Id })

interface Row {
  id: string
  name: string | null
  shape: GeofenceShape
  customers: string[]
  vehicles: string[]
  margin_m: number | null
  min_dwell_ms: number | null
  version: string
  created_at: Date
  updated_at: Date
}
const out = (r: Row) => ({
  id: r.id,
  name: r.name,
  shape: r.shape,
  customers: r.customers,
  vehicles: r.vehicles,
  marginM: r.margin_m,
  minDwellMs: r.min_dwell_ms,
  version: Number(r.version),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
})

/** Checks the geometry beyond the schema (closed or not, vertex ranges, size); GW_ERR_BODY_INVALID naming it. */
function checkShape(shape: Static<typeof Shape>): void {
  try {
    validateShape(shape as GeofenceShape, 'body.shape')
  } catch (err) {
    if (err instanceof ConfigError)
      throw new GatewayError('GW_ERR_BODY_INVALID', err.message, { item: err.setting, cause: err })
    throw err
  }
}

/** The set as workers read it: customers expanded into their vehicles; both lists empty = every vehicle. */
export async function buildSet(c: pg.PoolClient | pg.Pool, version: number): Promise<GeofenceSet> {
  const rows = (await c.query<Row>('SELECT * FROM geofences ORDER BY id')).rows
  const byCustomer = new Map<string, string[]>()
  for (const v of (
    await c.query<{ vin: string; customer_id: string }>(
      'SELECT vin, customer_id FROM vehicles WHERE customer_id IS NOT NULL ORDER BY vin',
    )
  ).rows) {
    let l = byCustomer.get(v.customer_id)
    if (!l) byCustomer.set(v.customer_id, (l = []))
    l.push(v.vin)
  }
  return {
    version,
    fences: rows.map((r) => {
      const all = r.customers.length === 0 && r.vehicles.length === 0
      const vehicles = all
        ? null
        : [...new Set([...r.vehicles, ...r.customers.flatMap((cu) => byCustomer.get(cu) ?? [])])].sort()
      return {
        id: r.id,
        ...(r.name !== null ? { name: r.name } : {}),
        shape: r.shape,
        vehicles,
        marginM: r.margin_m,
        minDwellMs: r.min_dwell_ms,
      }
    }),
  }
}

/**
 * Runs `change` in a transaction, then bumps the version and publishes the whole set; commits only when the
 * bucket took it (a failed publish rolls the change back: 503, retry). Returns the change's result and the version.
 */
export async function changeAndPublish<T>(
  pool: pg.Pool,
  refs: () => Promise<KV>,
  change: (c: pg.PoolClient, version: number) => Promise<T>,
): Promise<{ result: T; version: number }> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    try {
      await c.query('SELECT pg_advisory_xact_lock($1)', [PUBLISH_LOCK])
      const version = Number((await c.query<{ v: string }>("SELECT nextval('geofence_version') AS v")).rows[0]?.v)
      const result = await change(c, version)
      await c.query('UPDATE geofence_meta SET version = $1', [version])
      const set = await buildSet(c, version)
      try {
        await (await refs()).put(GEOFENCES_REF, JSON.stringify(set))
      } catch (err) {
        throw new GatewayError(
          'GW_ERR_UNAVAILABLE',
          `geofences could not be published to the workers: ${String(err)}`,
          { cause: err },
        )
      }
      await c.query('COMMIT')
      return { result, version }
    } catch (err) {
      await c.query('ROLLBACK')
      throw err
    }
  } finally {
    c.release()
  }
}

/**
 * After a vehicle changed customer (or was added or deleted): republishes the set when a fence is assigned by
 * customer. The vehicle change is already committed, so a failed publish is logged as an error (the next
 * geofence change publishes the corrected set) instead of failing the registry request.
 */
export async function republishIfAssigned(
  pool: pg.Pool,
  refs: () => Promise<KV>,
  log: FastifyRequest['log'],
): Promise<void> {
  const any = (await pool.query("SELECT 1 FROM geofences WHERE customers <> '{}' LIMIT 1")).rowCount ?? 0
  if (any === 0) return
  try {
    const { version } = await changeAndPublish(pool, refs, async () => undefined)
    log.info({ version }, 'geofences republished after a vehicle change')
  } catch (err) {
    log.error(
      { err },
      'geofences not republished after a vehicle change; customer assignments are stale until the next geofence change',
    )
  }
}

function assertUnscoped(req: FastifyRequest): void {
  if (scopeOf(req.principal))
    throw new GatewayError('GW_ERR_FORBIDDEN', 'a fleet/site-scoped person may not change geofences')
}

async function checkCustomers(c: pg.PoolClient, customers: string[] | undefined): Promise<void> {
  if (!customers || customers.length === 0) return
  const known = new Set(
    (await c.query<{ id: string }>('SELECT id FROM customers WHERE id = ANY($1::text[])', [customers])).rows.map(
      (r) => r.id,
    ),
  )
  const missing = customers.filter((x) => !known.has(x))
  if (missing.length > 0)
    throw new GatewayError('GW_ERR_CUSTOMER_UNKNOWN', `no such customer: ${missing.join(', ')}`, {
      item: 'body.customers',
    })
}

export const geofencePlugin: FastifyPluginAsyncTypebox<GeofenceOptions> = async (app, { pool, refs }) => {
  const replies = { ...errorReplies, 409: errorReplies[404] }
  app.addHook('preValidation', async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') assertUnscoped(req)
  })
  /** A scoped person sees fences assigned to one of their fleets (not the unassigned, deployment-wide ones). */
  const visible = (req: FastifyRequest, r: Row): boolean => {
    const scope = scopeOf(req.principal)
    return !scope || r.customers.some((cu) => scope.fleets.includes(cu))
  }
  const notFound = (id: string): GatewayError =>
    new GatewayError('GW_ERR_NOT_FOUND', `no geofence ${JSON.stringify(id)}`, { item: 'params.id' })

  app.post(
    '/v1/geofences',
    { config: { access: 'write' }, schema: { body: GeofenceCreate, response: { 201: Geofence, ...replies } } },
    async (req, reply) => {
      const b = req.body
      checkShape(b.shape)
      const { result } = await changeAndPublish(pool, refs, async (c, version) => {
        await checkCustomers(c, b.customers)
        try {
          return (
            await c.query<Row>(
              `INSERT INTO geofences (id, name, shape, customers, vehicles, margin_m, min_dwell_ms, version)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
              [
                b.id,
                b.name ?? null,
                JSON.stringify(b.shape),
                b.customers ?? [],
                b.vehicles ?? [],
                b.marginM ?? null,
                b.minDwellMs ?? null,
                version,
              ],
            )
          ).rows[0] as Row
        } catch (err) {
          if ((err as { code?: string }).code === '23505')
            throw new GatewayError('GW_ERR_CONFLICT', `geofence ${JSON.stringify(b.id)} already exists`, { cause: err })
          throw err
        }
      })
      req.log.info({ geofence: b.id, version: Number(result.version), by: req.principal?.id }, 'geofence created')
      void reply.code(201)
      return out(result)
    },
  )

  app.get(
    '/v1/geofences',
    { config: { access: 'read' }, schema: { querystring: Query, response: { 200: List, ...replies } } },
    async (req) => {
      const limit = req.query.limit === undefined ? DEFAULT_LIMIT : Number(req.query.limit)
      if (limit < 1 || limit > MAX_LIMIT)
        throw new GatewayError('GW_ERR_QUERY_INVALID', `limit must be 1..${MAX_LIMIT}`, { item: 'querystring.limit' })
      const after = decodeTextCursor(req.query.cursor, ID_PATTERN)
      const scope = scopeOf(req.principal)
      const args: unknown[] = [after ?? '', limit + 1]
      let where = 'id > $1'
      if (scope) {
        args.push(scope.fleets)
        where += ` AND customers && $${args.length}::text[]`
      }
      const rows = (await pool.query<Row>(`SELECT * FROM geofences WHERE ${where} ORDER BY id LIMIT $2`, args)).rows
      const page = rows.slice(0, limit)
      const version = Number(
        (await pool.query<{ version: string }>('SELECT version FROM geofence_meta')).rows[0]?.version ?? 0,
      )
      const last = page[page.length - 1]
      return {
        items: page.map(out),
        nextCursor: rows.length > limit && last ? encodeTextCursor(last.id) : null,
        version,
      }
    },
  )

  app.get(
    '/v1/geofences/:id',
    { config: { access: 'read' }, schema: { params: IdParams, response: { 200: Geofence, ...replies } } },
    async (req) => {
      const r = (await pool.query<Row>('SELECT * FROM geofences WHERE id = $1', [req.params.id])).rows[0]
      if (!r || !visible(req, r)) throw notFound(req.params.id)
      return out(r)
    },
  )

  app.patch(
    '/v1/geofences/:id',
    {
      config: { access: 'write' },
      schema: { params: IdParams, body: GeofencePatch, response: { 200: Geofence, ...replies } },
    },
    async (req) => {
      const b = req.body
      if (b.shape) checkShape(b.shape)
      const { result } = await changeAndPublish(pool, refs, async (c, version) => {
        await checkCustomers(c, b.customers)
        const sets: string[] = []
        const args: unknown[] = [req.params.id, version]
        const set = (col: string, v: unknown): void => {
          args.push(v)
          sets.push(`${col} = $${args.length}`)
        }
        if (b.name !== undefined) set('name', b.name)
        if (b.shape !== undefined) set('shape', JSON.stringify(b.shape))
        if (b.customers !== undefined) set('customers', b.customers)
        if (b.vehicles !== undefined) set('vehicles', b.vehicles)
        if (b.marginM !== undefined) set('margin_m', b.marginM)
        if (b.minDwellMs !== undefined) set('min_dwell_ms', b.minDwellMs)
        const r = (
          await c.query<Row>(
            `UPDATE geofences SET ${sets.join(', ')}, version = $2, updated_at = now() WHERE id = $1 RETURNING *`,
            args,
          )
        ).rows[0]
        if (!r) throw notFound(req.params.id)
        return r
      })
      req.log.info(
        { geofence: req.params.id, version: Number(result.version), by: req.principal?.id },
        'geofence updated',
      )
      return out(result)
    },
  )

  app.delete(
    '/v1/geofences/:id',
    { config: { access: 'admin' }, schema: { params: IdParams, response: { 204: NoContent, ...replies } } },
    async (req, reply) => {
      const { version } = await changeAndPublish(pool, refs, async (c) => {
        if (((await c.query('DELETE FROM geofences WHERE id = $1', [req.params.id])).rowCount ?? 0) === 0)
          throw notFound(req.params.id)
      })
      req.log.info({ geofence: req.params.id, version, by: req.principal?.id }, 'geofence deleted')
      void reply.code(204)
    },
  )
}
