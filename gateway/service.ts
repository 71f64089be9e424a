/**
 * Out-of-service plugin (ISA-18.2 "out of service", DOMAIN.md common ground): an operator takes a sensor out of
 * service for maintenance or calibration so that it does not alarm, and puts it back.
 *   PUT /v1/entities/sensor/:id/service  {inService, reason, until?}  operators and admins (write); a scoped
 *                                        person only for a sensor they see
 *   GET /v1/entities/sensor/:id/service  the current state and the latest audit entries (read)
 * The sensor must be registered (404 otherwise: a typo must not silence nothing while looking done).
 *
 * Stored in PostgreSQL (migration 5 in db.ts): `sensor_service` holds the current state per sensor and
 * `sensor_service_audit` every change with who, when and why. Delivery to the workers works like geofences.ts:
 * inside the transaction and under an advisory lock (versions reach the bucket in order, whichever gateway wrote
 * them) the set of sensors out of service goes to the reference bucket (`pw_refs`, key `service`,
 * actors/service.ts) with a new version; the change commits only when the bucket took it (503 otherwise).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import type { KV } from '@nats-io/kv'
import type pg from 'pg'
import { ID_PATTERN, SERVICE_REF, type ServiceSet } from '../actors/mod.js'
import { GatewayError } from './errors.js'
import { errorReplies } from './schemas.js'
import { assertVisible, scopeOf } from './scope.js'

export interface ServiceOptions {
  pool: pg.Pool
  /** The reference bucket (opened by the caller). */
  refs: () => Promise<KV>
}

/** Arbitrary, fixed: the advisory lock that orders out-of-service versions ("pwos"). */
const PUBLISH_LOCK = 0x70776f73
/** Audit entries returned by GET (newest first). */
const HISTORY = 20

const Params = Type.Object({ id: Type.String({ pattern: ID_PATTERN.source, maxLength: 64 }) })
const Change = Type.Object(
  {
    inService: Type.Boolean(),
    reason: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: 'required when taking the sensor out of service' }),
    ),
    until: Type.Optional(
      Type.Integer({
        description: 'ms since the Unix epoch: back in service by itself then (only with inService false)',
      }),
    ),
  },
  { additionalProperties: false },
)
const Audit = Type.Object({
  inService: Type.Boolean(),
  reason: Type.Union([Type.String(), Type.Null()]),
  until: Type.Union([Type.Integer(), Type.Null()]),
  by: Type.String(),
  at: Type.String(),
  version: Type.Integer(),
})
const State = Type.Object({
  sensorId: Type.String(),
  inService: Type.Boolean({ description: 'false while out of service and before `until`' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  until: Type.Union([Type.Integer(), Type.Null()]),
  since: Type.Union([Type.String(), Type.Null()], { description: 'when the current state was set' }),
  by: Type.Union([Type.String(), Type.Null()]),
  version: Type.Integer({ description: 'the set version of the last change (0: never changed)' }),
  history: Type.Array(Audit),
})

interface Row {
  sensor_id: string
  in_service: boolean
  reason: string | null
  until: string | null
  changed_by: string
  changed_at: Date
  version: string
}

/** The set as workers read it: the sensors out of service now (an expired `until` drops out at the next change). */
async function buildSet(c: pg.PoolClient, version: number): Promise<ServiceSet> {
  const rows = (
    await c.query<Row>(
      'SELECT * FROM sensor_service WHERE NOT in_service AND (until IS NULL OR until > $1) ORDER BY sensor_id',
      [Date.now()],
    )
  ).rows
  const sensors: ServiceSet['sensors'] = {}
  for (const r of rows) {
    sensors[r.sensor_id] = {
      reason: r.reason ?? '',
      since: r.changed_at.getTime(),
      until: r.until === null ? null : Number(r.until),
      by: r.changed_by,
    }
  }
  return { version, sensors }
}

async function stateOf(pool: pg.Pool, id: string): Promise<Static<typeof State>> {
  const cur = (await pool.query<Row>('SELECT * FROM sensor_service WHERE sensor_id = $1', [id])).rows[0]
  const hist = (
    await pool.query<Row>('SELECT * FROM sensor_service_audit WHERE sensor_id = $1 ORDER BY id DESC LIMIT $2', [
      id,
      HISTORY,
    ])
  ).rows
  const until = cur?.until == null ? null : Number(cur.until)
  return {
    sensorId: id,
    inService: !cur || cur.in_service || (until !== null && until <= Date.now()),
    reason: cur?.reason ?? null,
    until,
    since: cur ? cur.changed_at.toISOString() : null,
    by: cur?.changed_by ?? null,
    version: cur ? Number(cur.version) : 0,
    history: hist.map((h) => ({
      inService: h.in_service,
      reason: h.reason,
      until: h.until === null ? null : Number(h.until),
      by: h.changed_by,
      at: h.changed_at.toISOString(),
      version: Number(h.version),
    })),
  }
}

export const servicePlugin: FastifyPluginAsyncTypebox<ServiceOptions> = async (app, { pool, refs }) => {
  const notFound = (id: string): GatewayError =>
    new GatewayError('GW_ERR_NOT_FOUND', `no sensor ${JSON.stringify(id)}`, { item: 'params.id' })
  const known = async (id: string): Promise<void> => {
    if (((await pool.query('SELECT 1 FROM sensors WHERE id = $1', [id])).rowCount ?? 0) === 0) throw notFound(id)
  }

  app.get(
    '/v1/entities/sensor/:id/service',
    { config: { access: 'read' }, schema: { params: Params, response: { 200: State, ...errorReplies } } },
    async (req) => {
      await assertVisible(pool, scopeOf(req.principal), 'sensor', req.params.id)
      await known(req.params.id)
      return stateOf(pool, req.params.id)
    },
  )

  app.put(
    '/v1/entities/sensor/:id/service',
    {
      config: { access: 'write' },
      schema: { params: Params, body: Change, response: { 200: State, ...errorReplies } },
    },
    async (req) => {
      const { id } = req.params
      const b = req.body
      await assertVisible(pool, scopeOf(req.principal), 'sensor', id)
      if (!b.inService && b.reason === undefined)
        throw new GatewayError('GW_ERR_BODY_INVALID', 'a reason is required to take a sensor out of service', {
          item: 'body.reason',
        })
      if (b.until !== undefined && b.inService)
        throw new GatewayError('GW_ERR_BODY_INVALID', 'until applies only when taking a sensor out of service', {
          item: 'body.until',
        })
      if (b.until !== undefined && b.until <= Date.now())
        throw new GatewayError('GW_ERR_BODY_INVALID', 'until must be in the future', { item: 'body.until' })
      await known(id)
      const by = req.principal?.id ?? 'unknown'
      const c = await pool.connect()
      let version: number
      try {
        await c.query('BEGIN')
        try {
          await c.query('SELECT pg_advisory_xact_lock($1)', [PUBLISH_LOCK])
          version = Number((await c.query<{ v: string }>("SELECT nextval('service_version') AS v")).rows[0]?.v)
          const args = [id, b.inService, b.reason ?? null, b.until ?? null, by, version]
          await c.query(
            `INSERT INTO sensor_service (sensor_id, in_service, reason, until, changed_by, version) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (sensor_id) DO UPDATE SET in_service = $2, reason = $3, until = $4, changed_by = $5, version = $6, changed_at = now()`,
            args,
          )
          await c.query(
            'INSERT INTO sensor_service_audit (sensor_id, in_service, reason, until, changed_by, version) VALUES ($1, $2, $3, $4, $5, $6)',
            args,
          )
          const set = await buildSet(c, version)
          try {
            await (await refs()).put(SERVICE_REF, JSON.stringify(set))
          } catch (err) {
            throw new GatewayError(
              'GW_ERR_UNAVAILABLE',
              `the out-of-service set could not be published to the workers: ${String(err)}`,
              { cause: err },
            )
          }
          await c.query('COMMIT')
        } catch (err) {
          await c.query('ROLLBACK')
          throw err
        }
      } finally {
        c.release()
      }
      req.log.info(
        { sensor: id, inService: b.inService, reason: b.reason, until: b.until, version, by },
        'sensor service state changed',
      )
      return stateOf(pool, id)
    },
  )
}
