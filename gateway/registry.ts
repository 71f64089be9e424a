/**
 * Registry plugin: customers, sensors and vehicles in PostgreSQL (tables in db.ts, migration 2). CRUD under
 * `/v1/customers`, `/v1/sensors`, `/v1/vehicles`; viewers read, operators create and update, admins delete.
 * Lists are ordered by primary key (byte order) with cursor pagination: `nextCursor` is the base64url of the
 * last key returned, and the next page starts after it, so inserts and deletes between pages never repeat or
 * skip an item that was there throughout.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type pg from 'pg'
import { ID_PATTERN, SITE_PATTERN, type EntityKind } from '../actors/mod.js'
import { decodeCursor, encodeCursor, fieldOf, isTextKey } from './cursor.js'
import { GatewayError } from './errors.js'
import { nulPath } from './input.js'
import { errorReplies, NoContent } from './schemas.js'
import { assertVisible, scopeOf, type Scope } from './scope.js'
import { vinProblem } from './validate.js'

export interface RegistryOptions {
  pool: pg.Pool
  /** Called after a vehicle is created, re-assigned or deleted (geofence assignments by customer follow). */
  onVehiclesChanged?: (log: FastifyRequest['log']) => Promise<void>
  /** profile -> kind: a sensor's profile must be one of the sensor profiles. */
  profiles: ReadonlyMap<string, EntityKind>
}

const MAX_LIMIT = 100
const DEFAULT_LIMIT = 20

// ---- schemas ----------------------------------------------------------------------------------------------
const Id = Type.String({ pattern: ID_PATTERN.source })
const Text = Type.String({ minLength: 1, maxLength: 128 })
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const Location = Type.Object(
  { lat: Type.Number({ minimum: -90, maximum: 90 }), lon: Type.Number({ minimum: -180, maximum: 180 }) },
  { additionalProperties: false },
)
const Year = Type.Integer({ minimum: 1886, maximum: 2100 })
const VehicleProfile = Type.Union([Type.Literal('road'), Type.Literal('race')])
const Stamp = Type.String({ description: 'ISO 8601' })
const strict = { additionalProperties: false } as const
const patch = { additionalProperties: false, minProperties: 1 } as const

const Customer = Type.Object({ id: Type.String(), name: Type.String(), createdAt: Stamp, updatedAt: Stamp })
const CustomerCreate = Type.Object({ id: Id, name: Text }, strict)
const CustomerPatch = Type.Object({ name: Type.Optional(Text) }, patch)

const Sensor = Type.Object({
  id: Type.String(),
  type: Type.String(),
  profile: Type.String(),
  location: Nullable(Type.Object({ lat: Type.Number(), lon: Type.Number() })),
  processStage: Nullable(Type.String()),
  site: Type.String(),
  customerId: Nullable(Type.String()),
  createdAt: Stamp,
  updatedAt: Stamp,
})
const sensorFields = {
  type: Text,
  profile: Type.String({ minLength: 1, maxLength: 64 }),
  location: Nullable(Location),
  processStage: Nullable(Text),
  site: Type.String({ pattern: SITE_PATTERN.source }),
  customerId: Nullable(Id),
}
const SensorCreate = Type.Object(
  {
    id: Id,
    type: sensorFields.type,
    profile: sensorFields.profile,
    site: sensorFields.site,
    location: Type.Optional(sensorFields.location),
    processStage: Type.Optional(sensorFields.processStage),
    customerId: Type.Optional(sensorFields.customerId),
  },
  strict,
)
const SensorPatch = Type.Object(
  {
    type: Type.Optional(sensorFields.type),
    profile: Type.Optional(sensorFields.profile),
    site: Type.Optional(sensorFields.site),
    location: Type.Optional(sensorFields.location),
    processStage: Type.Optional(sensorFields.processStage),
    customerId: Type.Optional(sensorFields.customerId),
  },
  patch,
)

const Vehicle = Type.Object({
  vin: Type.String(),
  brand: Type.String(),
  model: Type.String(),
  year: Type.Integer(),
  customerId: Nullable(Type.String()),
  profile: Type.String(),
  createdAt: Stamp,
  updatedAt: Stamp,
})
/** The VIN is checked by vinProblem (check digit) in the handler, so it gets GW_ERR_VIN_INVALID. */
const VehicleCreate = Type.Object(
  {
    vin: Type.String({ maxLength: 64 }),
    brand: Text,
    model: Text,
    year: Year,
    profile: VehicleProfile,
    customerId: Type.Optional(Nullable(Id)),
  },
  strict,
)
const VehiclePatch = Type.Object(
  {
    brand: Type.Optional(Text),
    model: Type.Optional(Text),
    year: Type.Optional(Year),
    profile: Type.Optional(VehicleProfile),
    customerId: Type.Optional(Nullable(Id)),
  },
  patch,
)

// Query strings are not coerced (coerceTypes is off), so numbers arrive as digit strings and are parsed here.
const Digits = (max: number) => Type.String({ pattern: `^[0-9]{1,${max}}$` })
const Page = { limit: Type.Optional(Digits(3)), cursor: Type.Optional(Type.String({ maxLength: 200 })) }
const CustomerQuery = Type.Object(Page, strict)
const SensorQuery = Type.Object(
  {
    ...Page,
    type: Type.Optional(Text),
    profile: Type.Optional(Text),
    site: Type.Optional(Text),
    processStage: Type.Optional(Text),
    customer: Type.Optional(Id),
  },
  strict,
)
const VehicleQuery = Type.Object(
  {
    ...Page,
    brand: Type.Optional(Text),
    profile: Type.Optional(VehicleProfile),
    customer: Type.Optional(Id),
    yearMin: Type.Optional(Digits(4)),
    yearMax: Type.Optional(Digits(4)),
  },
  strict,
)

const ListOf = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) })
const IdParams = Type.Object({ id: Id })
const VinParams = Type.Object({ vin: Type.String() })

// ---- rows -------------------------------------------------------------------------------------------------
type Stamps = { created_at: Date; updated_at: Date }
type CustomerRow = Stamps & { id: string; name: string }
type SensorRow = Stamps & {
  id: string
  type: string
  profile: string
  lat: number | null
  lon: number | null
  process_stage: string | null
  site: string
  customer_id: string | null
}
type VehicleRow = Stamps & {
  vin: string
  brand: string
  model: string
  year: number
  customer_id: string | null
  profile: string
}

const stamps = (r: Stamps) => ({ createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() })
const customerOut = (r: CustomerRow) => ({ id: r.id, name: r.name, ...stamps(r) })
const sensorOut = (r: SensorRow) => ({
  id: r.id,
  type: r.type,
  profile: r.profile,
  location: r.lat === null || r.lon === null ? null : { lat: r.lat, lon: r.lon },
  processStage: r.process_stage,
  site: r.site,
  customerId: r.customer_id,
  ...stamps(r),
})
const vehicleOut = (r: VehicleRow) => ({
  vin: r.vin,
  brand: r.brand,
  model: r.model,
  year: r.year,
  customerId: r.customer_id,
  profile: r.profile,
  ...stamps(r),
})

// ---- helpers ----------------------------------------------------------------------------------------------
function pageLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_LIMIT
  const n = Number(raw)
  if (n < 1 || n > MAX_LIMIT)
    throw new GatewayError('GW_ERR_QUERY_INVALID', `limit must be 1..${MAX_LIMIT}`, { item: 'querystring.limit' })
  return n
}
function yearParam(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (n < 1886 || n > 2100)
    throw new GatewayError('GW_ERR_QUERY_INVALID', `${name} must be 1886..2100`, { item: `querystring.${name}` })
  return n
}
function checkVin(vin: string, item: string): void {
  const problem = vinProblem(vin)
  if (problem) throw new GatewayError('GW_ERR_VIN_INVALID', `invalid VIN: ${problem}`, { item })
}
const notFound = (what: string, key: string, item: string): GatewayError =>
  new GatewayError('GW_ERR_NOT_FOUND', `no ${what} ${JSON.stringify(key)}`, { item })

/** PostgreSQL constraint errors -> gateway codes; anything else is rethrown (500). */
function mapPg(err: unknown, what: string, key: string): never {
  const code = (err as { code?: unknown }).code
  const constraint = String((err as { constraint?: unknown }).constraint ?? '')
  if (code === '23505')
    throw new GatewayError('GW_ERR_CONFLICT', `${what} ${JSON.stringify(key)} already exists`, { cause: err })
  if (code === '23503') {
    // On insert/update of a sensor/vehicle: the customer is unknown. On delete of a customer: still referenced.
    if (what === 'customer')
      throw new GatewayError('GW_ERR_CONFLICT', `customer ${JSON.stringify(key)} still has sensors or vehicles`, {
        cause: err,
      })
    throw new GatewayError('GW_ERR_CUSTOMER_UNKNOWN', `no such customer (${constraint})`, {
      item: 'body.customerId',
      cause: err,
    })
  }
  throw err
}

/** A list query: `where` clauses with $n placeholders over `args`, then keyset pagination on `key`. */
async function list<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  table: string,
  key: string,
  where: string[],
  args: unknown[],
  limitRaw: string | undefined,
  cursorRaw: string | undefined,
): Promise<{ rows: R[]; nextCursor: string | null }> {
  const limit = pageLimit(limitRaw)
  const after = decodeCursor(cursorRaw, (v) => {
    const k = fieldOf(v, 'k')
    return isTextKey(k) ? k : undefined
  })
  const conds = [...where]
  const params = [...args]
  if (after !== undefined) {
    params.push(after)
    conds.push(`${key} > $${params.length}`)
  }
  params.push(limit + 1)
  const sql = `SELECT * FROM ${table}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${key} LIMIT $${params.length}`
  const rows = (await pool.query<R>(sql, params)).rows
  const more = rows.length > limit
  const page = more ? rows.slice(0, limit) : rows
  const last = page[page.length - 1]
  return { rows: page, nextCursor: more && last ? encodeCursor({ k: String(last[key]) }) : null }
}

/** Appends `col = $n` for every defined filter. */
function filters(spec: [string, unknown][]): { where: string[]; args: unknown[] } {
  const where: string[] = []
  const args: unknown[] = []
  for (const [cond, v] of spec) {
    if (v === undefined) continue
    args.push(v)
    where.push(cond.replace('?', `$${args.length}`))
  }
  return { where, args }
}

/** `UPDATE table SET col = $n, ..., updated_at = now() WHERE key = $1 RETURNING *`; columns from a fixed map. */
async function update<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  table: string,
  key: string,
  id: string,
  set: [string, unknown][],
): Promise<R | undefined> {
  const args: unknown[] = [id]
  const parts: string[] = []
  for (const [col, v] of set) {
    if (v === undefined) continue
    args.push(v)
    parts.push(`${col} = $${args.length}`)
  }
  parts.push('updated_at = now()')
  return (await pool.query<R>(`UPDATE ${table} SET ${parts.join(', ')} WHERE ${key} = $1 RETURNING *`, args)).rows[0]
}

/** Scope conditions on a registry table (none when unrestricted), appended to a list's filters. */
function scoped(
  f: { where: string[]; args: unknown[] },
  scope: Scope | null,
  table: 'customers' | 'sensors' | 'vehicles',
): { where: string[]; args: unknown[] } {
  if (!scope) return f
  const where = [...f.where]
  const args = [...f.args, scope.fleets]
  const fl = `$${args.length}`
  if (table === 'customers') where.push(`id = ANY(${fl}::text[])`)
  else if (table === 'vehicles') where.push(`customer_id = ANY(${fl}::text[])`)
  else {
    args.push(scope.sites)
    where.push(`(customer_id = ANY(${fl}::text[]) OR site = ANY($${args.length}::text[]))`)
  }
  return { where, args }
}

/** Registry writes are for unscoped operators and admins: a fleet/site-scoped person may not change it. */
function assertUnscoped(req: FastifyRequest): void {
  if (scopeOf(req.principal))
    throw new GatewayError('GW_ERR_FORBIDDEN', 'a fleet/site-scoped person may not change the registry')
}

// ---- routes -----------------------------------------------------------------------------------------------
export const registryPlugin: FastifyPluginAsyncTypebox<RegistryOptions> = async (
  app,
  { pool, profiles, onVehiclesChanged },
) => {
  const vehiclesChanged = async (req: FastifyRequest): Promise<void> => {
    await onVehiclesChanged?.(req.log)
  }
  const sensorProfiles = [...profiles].filter(([, k]) => k === 'sensor').map(([p]) => p)
  const checkSensorProfile = (profile: string | undefined): void => {
    if (profile !== undefined && profiles.get(profile) !== 'sensor') {
      throw new GatewayError(
        'GW_ERR_PROFILE_INVALID',
        `profile must be one of the sensor profiles: ${sensorProfiles.join(', ')}`,
        { item: 'body.profile' },
      )
    }
  }
  const read = { access: 'read' } as const
  const write = { access: 'write' } as const
  const admin = { access: 'admin' } as const
  // Writes: operators and admins (config.access), never a scoped person (checked before the body is validated).
  app.addHook('preValidation', async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') assertUnscoped(req)
  })
  // After the schemas: a string the schema allows may still hold a NUL, which PostgreSQL text cannot store.
  app.addHook('preHandler', async (req) => {
    const at = req.body === undefined ? undefined : nulPath(req.body, 'body')
    if (at !== undefined) throw new GatewayError('GW_ERR_BODY_INVALID', `${at} contains a NUL character`, { item: at })
  })
  const visibleCustomer = (req: FastifyRequest, id: string): void => {
    const scope = scopeOf(req.principal)
    if (scope && !scope.fleets.includes(id)) throw notFound('customer', id, 'params.id')
  }
  const replies = { ...errorReplies, 409: errorReplies[404] }

  // customers
  app.post(
    '/v1/customers',
    { config: write, schema: { body: CustomerCreate, response: { 201: Customer, ...replies } } },
    async (req, reply) => {
      const b = req.body
      try {
        const r = await pool.query<CustomerRow>('INSERT INTO customers (id, name) VALUES ($1, $2) RETURNING *', [
          b.id,
          b.name,
        ])
        void reply.code(201)
        return customerOut(r.rows[0] as CustomerRow)
      } catch (err) {
        mapPg(err, 'customer', b.id)
      }
    },
  )
  app.get(
    '/v1/customers',
    { config: read, schema: { querystring: CustomerQuery, response: { 200: ListOf(Customer), ...replies } } },
    async (req) => {
      const f = scoped({ where: [], args: [] }, scopeOf(req.principal), 'customers')
      const { rows, nextCursor } = await list<CustomerRow>(
        pool,
        'customers',
        'id',
        f.where,
        f.args,
        req.query.limit,
        req.query.cursor,
      )
      return { items: rows.map(customerOut), nextCursor }
    },
  )
  app.get(
    '/v1/customers/:id',
    { config: read, schema: { params: IdParams, response: { 200: Customer, ...replies } } },
    async (req) => {
      visibleCustomer(req, req.params.id)
      const r = (await pool.query<CustomerRow>('SELECT * FROM customers WHERE id = $1', [req.params.id])).rows[0]
      if (!r) throw notFound('customer', req.params.id, 'params.id')
      return customerOut(r)
    },
  )
  app.patch(
    '/v1/customers/:id',
    { config: write, schema: { params: IdParams, body: CustomerPatch, response: { 200: Customer, ...replies } } },
    async (req) => {
      const r = await update<CustomerRow>(pool, 'customers', 'id', req.params.id, [['name', req.body.name]])
      if (!r) throw notFound('customer', req.params.id, 'params.id')
      return customerOut(r)
    },
  )
  app.delete(
    '/v1/customers/:id',
    { config: admin, schema: { params: IdParams, response: { 204: NoContent, ...replies } } },
    async (req, reply) => {
      let n = 0
      try {
        n = (await pool.query('DELETE FROM customers WHERE id = $1', [req.params.id])).rowCount ?? 0
      } catch (err) {
        mapPg(err, 'customer', req.params.id)
      }
      if (n === 0) throw notFound('customer', req.params.id, 'params.id')
      void reply.code(204)
    },
  )

  // sensors
  app.post(
    '/v1/sensors',
    { config: write, schema: { body: SensorCreate, response: { 201: Sensor, ...replies } } },
    async (req, reply) => {
      const b = req.body
      checkSensorProfile(b.profile)
      try {
        const r = await pool.query<SensorRow>(
          'INSERT INTO sensors (id, type, profile, lat, lon, process_stage, site, customer_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *',
          [
            b.id,
            b.type,
            b.profile,
            b.location?.lat ?? null,
            b.location?.lon ?? null,
            b.processStage ?? null,
            b.site,
            b.customerId ?? null,
          ],
        )
        void reply.code(201)
        return sensorOut(r.rows[0] as SensorRow)
      } catch (err) {
        mapPg(err, 'sensor', b.id)
      }
    },
  )
  app.get(
    '/v1/sensors',
    { config: read, schema: { querystring: SensorQuery, response: { 200: ListOf(Sensor), ...replies } } },
    async (req) => {
      const q = req.query
      const { where, args } = scoped(
        filters([
          ['type = ?', q.type],
          ['profile = ?', q.profile],
          ['site = ?', q.site],
          ['process_stage = ?', q.processStage],
          ['customer_id = ?', q.customer],
        ]),
        scopeOf(req.principal),
        'sensors',
      )
      const { rows, nextCursor } = await list<SensorRow>(pool, 'sensors', 'id', where, args, q.limit, q.cursor)
      return { items: rows.map(sensorOut), nextCursor }
    },
  )
  app.get(
    '/v1/sensors/:id',
    { config: read, schema: { params: IdParams, response: { 200: Sensor, ...replies } } },
    async (req) => {
      await assertVisible(pool, scopeOf(req.principal), 'sensor', req.params.id)
      const r = (await pool.query<SensorRow>('SELECT * FROM sensors WHERE id = $1', [req.params.id])).rows[0]
      if (!r) throw notFound('sensor', req.params.id, 'params.id')
      return sensorOut(r)
    },
  )
  app.patch(
    '/v1/sensors/:id',
    { config: write, schema: { params: IdParams, body: SensorPatch, response: { 200: Sensor, ...replies } } },
    async (req) => {
      const b = req.body
      checkSensorProfile(b.profile)
      let r: SensorRow | undefined
      try {
        r = await update<SensorRow>(pool, 'sensors', 'id', req.params.id, [
          ['type', b.type],
          ['profile', b.profile],
          ['site', b.site],
          ['process_stage', b.processStage],
          ['customer_id', b.customerId],
          ['lat', b.location === undefined ? undefined : (b.location?.lat ?? null)],
          ['lon', b.location === undefined ? undefined : (b.location?.lon ?? null)],
        ])
      } catch (err) {
        mapPg(err, 'sensor', req.params.id)
      }
      if (!r) throw notFound('sensor', req.params.id, 'params.id')
      return sensorOut(r)
    },
  )
  app.delete(
    '/v1/sensors/:id',
    { config: admin, schema: { params: IdParams, response: { 204: NoContent, ...replies } } },
    async (req, reply) => {
      if (((await pool.query('DELETE FROM sensors WHERE id = $1', [req.params.id])).rowCount ?? 0) === 0)
        throw notFound('sensor', req.params.id, 'params.id')
      void reply.code(204)
    },
  )

  // vehicles: the path VIN is checked after auth and before the body is validated
  const vinHook = {
    preValidation: async (req: { params: unknown }) => {
      checkVin(String((req.params as { vin?: unknown }).vin ?? ''), 'params.vin')
    },
  }
  app.post(
    '/v1/vehicles',
    { config: write, schema: { body: VehicleCreate, response: { 201: Vehicle, ...replies } } },
    async (req, reply) => {
      const b = req.body
      checkVin(b.vin, 'body.vin')
      try {
        const r = await pool.query<VehicleRow>(
          'INSERT INTO vehicles (vin, brand, model, year, customer_id, profile) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
          [b.vin, b.brand, b.model, b.year, b.customerId ?? null, b.profile],
        )
        void reply.code(201)
        await vehiclesChanged(req)
        return vehicleOut(r.rows[0] as VehicleRow)
      } catch (err) {
        mapPg(err, 'vehicle', b.vin)
      }
    },
  )
  app.get(
    '/v1/vehicles',
    { config: read, schema: { querystring: VehicleQuery, response: { 200: ListOf(Vehicle), ...replies } } },
    async (req) => {
      const q = req.query
      const { where, args } = scoped(
        filters([
          ['brand = ?', q.brand],
          ['profile = ?', q.profile],
          ['customer_id = ?', q.customer],
          ['year >= ?', yearParam(q.yearMin, 'yearMin')],
          ['year <= ?', yearParam(q.yearMax, 'yearMax')],
        ]),
        scopeOf(req.principal),
        'vehicles',
      )
      const { rows, nextCursor } = await list<VehicleRow>(pool, 'vehicles', 'vin', where, args, q.limit, q.cursor)
      return { items: rows.map(vehicleOut), nextCursor }
    },
  )
  app.get(
    '/v1/vehicles/:vin',
    { config: read, ...vinHook, schema: { params: VinParams, response: { 200: Vehicle, ...replies } } },
    async (req) => {
      await assertVisible(pool, scopeOf(req.principal), 'vehicle', req.params.vin)
      const r = (await pool.query<VehicleRow>('SELECT * FROM vehicles WHERE vin = $1', [req.params.vin])).rows[0]
      if (!r) throw notFound('vehicle', req.params.vin, 'params.vin')
      return vehicleOut(r)
    },
  )
  app.patch(
    '/v1/vehicles/:vin',
    {
      config: write,
      ...vinHook,
      schema: { params: VinParams, body: VehiclePatch, response: { 200: Vehicle, ...replies } },
    },
    async (req) => {
      const b = req.body
      let r: VehicleRow | undefined
      try {
        r = await update<VehicleRow>(pool, 'vehicles', 'vin', req.params.vin, [
          ['brand', b.brand],
          ['model', b.model],
          ['year', b.year],
          ['profile', b.profile],
          ['customer_id', b.customerId],
        ])
      } catch (err) {
        mapPg(err, 'vehicle', req.params.vin)
      }
      if (!r) throw notFound('vehicle', req.params.vin, 'params.vin')
      if (b.customerId !== undefined) await vehiclesChanged(req)
      return vehicleOut(r)
    },
  )
  app.delete(
    '/v1/vehicles/:vin',
    { config: admin, ...vinHook, schema: { params: VinParams, response: { 204: NoContent, ...replies } } },
    async (req, reply) => {
      if (((await pool.query('DELETE FROM vehicles WHERE vin = $1', [req.params.vin])).rowCount ?? 0) === 0)
        throw notFound('vehicle', req.params.vin, 'params.vin')
      await vehiclesChanged(req)
      void reply.code(204)
    },
  )
}
