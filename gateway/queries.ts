/**
 * Query plugin: history from the projector's tables (projector/schema.ts; the gateway's database is the
 * one the site's projector writes) and fleet/plant roll-ups over them and the registry. Viewers and up; people
 * are scoped to their fleets/sites (scope.ts). Every list is keyset-paginated: `nextCursor` is the opaque
 * base64url of the last row's sort key and the next page starts strictly after it. Times are ISO 8601 in
 * replies; `from`/`to` accept ISO 8601 or epoch milliseconds and form the half-open range [from, to).
 *
 * Table names come from the projector's face (`TABLES`, projector/mod.ts), the contract between the two;
 * test/integration/gateway-queries.test.ts writes its rows with the real projector, so a renamed column fails there.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type pg from 'pg'
import { ID_PATTERN } from '../actors/mod.js'
import { TABLES as T } from '../projector/mod.js'
import { decodeCursor, encodeCursor, isTextKey } from './cursor.js'
import { GatewayError } from './errors.js'
import { errorReplies, EntityParams } from './schemas.js'
import { assertVisible, Params, scopeOf, scopeSql, type Scope } from './scope.js'

export interface QueryOptions {
  pool: pg.Pool
}

const DEFAULT_LIMIT = 20
/** Buckets of one alerts roll-up at most. */
const ROLLUP_BUCKETS = 1000
const strict = { additionalProperties: false } as const
const Text = Type.String({ minLength: 1, maxLength: 128 })
const Id = Type.String({ pattern: ID_PATTERN.source })
const Digits = (max: number) => Type.String({ pattern: `^[0-9]{1,${max}}$` })
const Time = Type.String({ minLength: 1, maxLength: 40, description: 'ISO 8601, or milliseconds since the Unix epoch' })
const Kind = Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')])
const Range = { from: Type.Optional(Time), to: Type.Optional(Time) }
const Page = { limit: Type.Optional(Digits(4)), cursor: Type.Optional(Type.String({ maxLength: 400 })) }
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const Stamp = Type.String({ description: 'ISO 8601' })
const ListOf = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) })

// ---- reply schemas ----------------------------------------------------------------------------------------
const Aggregate = Type.Object({
  count: Type.Number(),
  sum: Type.Number(),
  min: Type.Number(),
  max: Type.Number(),
  mean: Type.Number(),
  variance: Type.Number(),
  stddev: Type.Number(),
  first: Type.Number(),
  last: Type.Number(),
})
const WindowItem = Type.Object({
  window: Type.String(),
  start: Stamp,
  end: Stamp,
  windows: Type.Integer({ description: 'source windows rolled into this one (1 without resolution)' }),
  fields: Type.Record(Type.String(), Aggregate),
  counts: Type.Record(Type.String(), Type.Number()),
  idleClosed: Type.Boolean(),
})
const Alert = Type.Object({
  alertId: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  type: Type.String(),
  severity: Type.String(),
  state: Type.String(),
  startedAt: Stamp,
  endedAt: Nullable(Stamp),
  eventAt: Stamp,
  value: Type.Number(),
  threshold: Type.Number(),
  peakValue: Type.Number(),
  explanation: Type.String(),
  details: Type.Unknown(),
})
const Recommendation = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  recommendedAt: Stamp,
  action: Type.String(),
  score: Type.Number(),
  factors: Type.Record(Type.String(), Type.Number()),
  reason: Type.String(),
})
const Lap = Type.Object({
  lap: Type.Integer(),
  profile: Type.String(),
  start: Stamp,
  end: Stamp,
  lapTimeMs: Type.Number(),
  minSpeed: Type.Number(),
  avgSpeed: Type.Number(),
  maxSpeed: Type.Number(),
  maxBrakeTemp: Type.Number(),
  maxTyreTemp: Type.Number(),
  samples: Type.Integer(),
})
const ScorePoint = Type.Object({
  id: Type.String(),
  name: Type.String(),
  profile: Type.String(),
  scoredAt: Stamp,
  value: Type.Number(),
  factors: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Null()])),
})
const LateReading = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  readingTs: Stamp,
  watermark: Stamp,
  readingSeq: Type.Number(),
  fields: Type.Record(Type.String(), Type.Unknown()),
})
const Geometry = Nullable(Type.Object({ type: Type.String(), coordinates: Type.Array(Type.Unknown()) }))
const Feature = Type.Object({
  type: Type.Literal('Feature'),
  geometry: Geometry,
  properties: Type.Record(Type.String(), Type.Unknown()),
})
const FeatureCollection = Type.Object({
  type: Type.Literal('FeatureCollection'),
  features: Type.Array(Feature),
  nextCursor: Nullable(Type.String()),
})
const OpenAlertsRollup = Type.Object({
  total: Type.Integer(),
  byType: Type.Array(Type.Object({ type: Type.String(), severity: Type.String(), count: Type.Integer() })),
  byStage: Type.Array(Type.Object({ processStage: Nullable(Type.String()), count: Type.Integer() })),
})
const AlertsRollup = Type.Object({
  total: Type.Integer({ description: 'alerts started in [from, to)' }),
  byType: Type.Array(Type.Object({ type: Type.String(), severity: Type.String(), count: Type.Integer() })),
  byBucket: Type.Array(
    Type.Object({
      start: Stamp,
      count: Type.Integer(),
      info: Type.Integer(),
      warning: Type.Integer(),
      critical: Type.Integer(),
    }),
    {
      description:
        'alerts started per bucket of `bucket` ms (aligned to the Unix epoch), oldest first; buckets without an alert are left out',
    },
  ),
})
const LateRollup = Type.Object({
  total: Type.Integer({ description: 'late readings whose reading time is in [from, to)' }),
  byEntity: Type.Array(
    Type.Object({
      kind: Type.String(),
      entity: Type.String(),
      count: Type.Integer(),
      last: Stamp,
      maxBehindMs: Type.Number({
        description: 'the most a reading was behind the watermark (watermark - reading time)',
      }),
    }),
    { description: 'per entity, most late readings first (at most 1000 entities)' },
  ),
})
const StaleEntity = Type.Object({
  kind: Type.String(),
  id: Type.String(),
  lastSeen: Nullable(Stamp),
  registered: Type.Boolean(),
})

// ---- helpers ----------------------------------------------------------------------------------------------
/** The one query method the routes use; a missing projection table is a 503 with a clear message, not a 500. */
interface Db {
  query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>>
}
function guarded(pool: pg.Pool): Db {
  return {
    async query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>> {
      try {
        return await pool.query<R>(sql, values)
      } catch (err) {
        throw projectionError(err)
      }
    },
  }
}

/** A missing projection table (the site's projector has not run in this database) -> 503; other errors as they are. */
export function projectionError(err: unknown): unknown {
  if ((err as { code?: unknown }).code === '42P01') {
    return new GatewayError(
      'GW_ERR_UNAVAILABLE',
      "the projection tables do not exist in this database yet: the site's projector has not run here",
      { cause: err },
    )
  }
  return err
}

const ms = (expr: string): string => `('epoch'::timestamptz + (${expr})::bigint * interval '1 millisecond')`
const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString())

function limitOf(raw: string | undefined, max = 100): number {
  if (raw === undefined) return DEFAULT_LIMIT
  const n = Number(raw)
  if (n < 1 || n > max)
    throw new GatewayError('GW_ERR_QUERY_INVALID', `limit must be 1..${max}`, { item: 'querystring.limit' })
  return n
}

/** `from`/`to`: epoch ms (digits) or an ISO 8601 date-time; -> ms. */
export function timeParam(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined) return undefined
  const t = /^[0-9]{1,15}$/.test(raw)
    ? Number(raw)
    : /^\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw)
      ? Date.parse(raw)
      : NaN
  if (!Number.isFinite(t) || t < 0 || t > 8_640_000_000_000) {
    throw new GatewayError('GW_ERR_QUERY_INVALID', `${name} must be ISO 8601 or epoch milliseconds`, {
      item: `querystring.${name}`,
    })
  }
  return t
}

function range(
  q: Params,
  where: string[],
  col: string,
  raw: { from?: string | undefined; to?: string | undefined },
): void {
  const from = timeParam(raw.from, 'from')
  const to = timeParam(raw.to, 'to')
  if (from !== undefined && to !== undefined && to < from)
    throw new GatewayError('GW_ERR_QUERY_INVALID', 'to is before from', { item: 'querystring.to' })
  if (from !== undefined) where.push(`${col} >= ${ms(q.p(from))}`)
  if (to !== undefined) where.push(`${col} < ${ms(q.p(to))}`)
}

type Key = (string | number)[]
/** A keyset cursor: the sort key of the last row, text ('s') or integer ('n') per column. */
const keyCursor = (raw: string | undefined, shape: ('s' | 'n')[]): Key | undefined =>
  decodeCursor(raw, (v) =>
    Array.isArray(v) &&
    v.length === shape.length &&
    v.every((x, i) => (shape[i] === 's' ? isTextKey(x) : Number.isSafeInteger(x)))
      ? (v as Key)
      : undefined,
  )

/**
 * Runs `SELECT ... WHERE ... ORDER BY <key> LIMIT n+1` with keyset pagination. `key` lists the sort columns
 * (SQL expression, cursor type, how to read it from a row); `desc` flips the order of all of them.
 */
async function page<R extends pg.QueryResultRow>(
  pool: Db,
  q: Params,
  select: string,
  where: string[],
  key: { sql: string; type: 's' | 'n'; ts?: boolean; of: (r: R) => string | number }[],
  desc: boolean,
  raw: { limit?: string | undefined; cursor?: string | undefined },
  max = 100,
): Promise<{ rows: R[]; nextCursor: string | null }> {
  const limit = limitOf(raw.limit, max)
  const after = keyCursor(
    raw.cursor,
    key.map((k) => k.type),
  )
  const conds = [...where]
  if (after) {
    const cols = key.map((k) => (k.type === 's' ? `${k.sql} COLLATE "C"` : k.sql))
    const vals = key.map((k, i) =>
      k.ts ? ms(q.p(after[i])) : k.type === 's' ? `${q.p(after[i])}::text COLLATE "C"` : q.p(after[i]),
    )
    conds.push(`(${cols.join(', ')}) ${desc ? '<' : '>'} (${vals.join(', ')})`)
  }
  const order = key.map((k) => `${k.type === 's' ? `${k.sql} COLLATE "C"` : k.sql}${desc ? ' DESC' : ''}`).join(', ')
  const sql = `${select}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ${q.p(limit + 1)}`
  const rows = (await pool.query<R>(sql, q.values)).rows
  const more = rows.length > limit
  const out = more ? rows.slice(0, limit) : rows
  const last = out[out.length - 1]
  return { rows: out, nextCursor: more && last ? encodeCursor(key.map((k) => k.of(last))) : null }
}

/**
 * Window roll-up: the buckets of this page first (limit + 1 says whether there is more), then per bucket and
 * field the combined aggregate (count, sum, min, max, sum of squares for the variance, first of the earliest
 * window, last of the latest), the number of source windows and the summed counters.
 */
function bucketSql(bucket: string, where: string[], limit: string): string {
  return `WITH w AS (SELECT ${bucket} AS bucket, window_start, fields, counts, idle_closed FROM ${T.windows} WHERE ${where.join(' AND ')}),
    b AS (SELECT DISTINCT bucket FROM w ORDER BY bucket LIMIT ${limit}),
    wb AS (SELECT w.* FROM w JOIN b USING (bucket)),
    meta AS (SELECT bucket, count(*)::int AS windows, bool_or(idle_closed) AS idle FROM wb GROUP BY bucket),
    cnt AS (SELECT bucket, jsonb_object_agg(key, total) AS counts FROM
      (SELECT wb.bucket, e.key, sum(e.value::float8) AS total FROM wb CROSS JOIN LATERAL jsonb_each_text(wb.counts) e GROUP BY wb.bucket, e.key) t GROUP BY bucket),
    agg AS (SELECT wb.bucket, f.key AS field,
      sum((f.value->>'count')::float8) AS count, sum((f.value->>'sum')::float8) AS sum,
      min((f.value->>'min')::float8) AS min, max((f.value->>'max')::float8) AS max,
      sum((f.value->>'count')::float8 * ((f.value->>'variance')::float8 + ((f.value->>'mean')::float8) ^ 2)) AS sumsq,
      (array_agg((f.value->>'first')::float8 ORDER BY wb.window_start))[1] AS first,
      (array_agg((f.value->>'last')::float8 ORDER BY wb.window_start DESC))[1] AS last
      FROM wb CROSS JOIN LATERAL jsonb_each(wb.fields) f GROUP BY wb.bucket, f.key)
    SELECT meta.bucket::text AS bucket, agg.field, agg.count, agg.sum, agg.min, agg.max, agg.sumsq, agg.first, agg.last, meta.windows, cnt.counts, meta.idle
    FROM meta LEFT JOIN agg USING (bucket) LEFT JOIN cnt USING (bucket) ORDER BY meta.bucket, agg.field COLLATE "C"`
}

const scopeFor = (req: FastifyRequest): Scope | null => scopeOf(req.principal)

// ---- rows -------------------------------------------------------------------------------------------------
type WindowRow = {
  window_name: string
  window_start: Date
  window_end: Date
  fields: Record<string, Record<string, number>>
  counts: Record<string, number>
  idle_closed: boolean
}
type BucketRow = {
  bucket: string
  field: string | null
  count: number
  sum: number
  min: number
  max: number
  sumsq: number
  first: number
  last: number
  windows: number
  counts: Record<string, number> | null
  idle: boolean
}
type AlertRow = {
  alert_id: string
  kind: string
  entity: string
  profile: string
  type: string
  severity: string
  state: string
  started_at: Date
  ended_at: Date | null
  event_at: Date
  value: number
  threshold: number
  peak_value: number
  explanation: string
  details: unknown
}
type RecRow = {
  output_id: string
  kind: string
  entity: string
  profile: string
  recommended_at: Date
  action: string
  score: number
  factors: Record<string, number>
  reason: string
}
type LapRow = {
  lap: number
  profile: string
  lap_start: Date
  lap_end: Date
  lap_time_ms: string
  min_speed: number
  avg_speed: number
  max_speed: number
  max_brake_temp: number
  max_tyre_temp: number
  samples: number
}
type LateRow = {
  output_id: string
  kind: string
  entity: string
  profile: string
  reading_ts: Date
  watermark: Date
  reading_seq: string
  fields: Record<string, unknown>
}
type ScoreRow = {
  output_id: string
  name: string
  profile: string
  scored_at: Date
  value: number
  factors: Record<string, number | string | null>
}
type TripRow = {
  output_id: string
  scored_at: Date
  value: number
  factors: Record<string, number>
  coords: [number, number][] | null
}
type PosRow = { seq: string; ts: Date; lat: number; lon: number; fields: Record<string, unknown> | null }
type StaleRow = { kind: string; entity: string; last_seen: Date | null; registered: boolean }

const alertOut = (r: AlertRow) => ({
  alertId: r.alert_id,
  kind: r.kind,
  entity: r.entity,
  profile: r.profile,
  type: r.type,
  severity: r.severity,
  state: r.state,
  startedAt: r.started_at.toISOString(),
  endedAt: iso(r.ended_at),
  eventAt: r.event_at.toISOString(),
  value: r.value,
  threshold: r.threshold,
  peakValue: r.peak_value,
  explanation: r.explanation,
  details: r.details,
})

// ---- routes -----------------------------------------------------------------------------------------------
export const queryPlugin: FastifyPluginAsyncTypebox<QueryOptions> = async (app, opts) => {
  const registry = opts.pool
  const pool = guarded(opts.pool)
  const read = { access: 'read' as const }
  const reply = <T extends TSchema>(s: T) => ({ 200: s, ...errorReplies })

  // Window aggregates of one entity; with `resolution` (ms) windows are rolled up into buckets of that size.
  app.get(
    '/v1/entities/:kind/:id/windows',
    {
      config: read,
      schema: {
        params: EntityParams,
        querystring: Type.Object({ window: Text, resolution: Type.Optional(Digits(11)), ...Range, ...Page }, strict),
        response: reply(ListOf(WindowItem)),
      },
    },
    async (req) => {
      const { kind, id } = req.params
      await assertVisible(registry, scopeFor(req), kind, id)
      const qs = req.query
      const q = new Params()
      const where = [`kind = ${q.p(kind)}`, `entity = ${q.p(id)}`, `window_name = ${q.p(qs.window)}`]
      range(q, where, 'window_start', qs)
      if (qs.resolution === undefined) {
        const r = await page<WindowRow>(
          pool,
          q,
          `SELECT window_name, window_start, window_end, fields, counts, idle_closed FROM ${T.windows}`,
          where,
          [{ sql: 'window_start', type: 'n', ts: true, of: (x) => x.window_start.getTime() }],
          false,
          qs,
        )
        return {
          items: r.rows.map((w) => ({
            window: w.window_name,
            start: w.window_start.toISOString(),
            end: w.window_end.toISOString(),
            windows: 1,
            fields: w.fields as Record<string, Static<typeof Aggregate>>,
            counts: w.counts,
            idleClosed: w.idle_closed,
          })),
          nextCursor: r.nextCursor,
        }
      }
      const res = Number(qs.resolution)
      if (res < 1000 || res > 31 * 86_400_000)
        throw new GatewayError('GW_ERR_QUERY_INVALID', 'resolution must be 1000..2678400000 ms', {
          item: 'querystring.resolution',
        })
      const limit = limitOf(qs.limit)
      const after = keyCursor(qs.cursor, ['n'])
      const bucket = `((extract(epoch FROM window_start) * 1000)::bigint / ${q.p(res)}::bigint) * $${q.values.length}::bigint`
      if (after) where.push(`window_start >= ${ms(q.p((after[0] as number) + res))}`)
      const rows = (await pool.query<BucketRow>(bucketSql(bucket, where, q.p(limit + 1)), q.values)).rows
      const buckets = new Map<string, Static<typeof WindowItem>>()
      for (const r of rows) {
        let b = buckets.get(r.bucket)
        if (!b) {
          const start = Number(r.bucket)
          b = {
            window: qs.window,
            start: new Date(start).toISOString(),
            end: new Date(start + res).toISOString(),
            windows: r.windows,
            fields: {},
            counts: r.counts ?? {},
            idleClosed: r.idle,
          }
          buckets.set(r.bucket, b)
        }
        if (r.field === null) continue
        const mean = r.count > 0 ? r.sum / r.count : 0
        const variance = r.count > 0 ? Math.max(0, r.sumsq / r.count - mean * mean) : 0
        b.fields[r.field] = {
          count: r.count,
          sum: r.sum,
          min: r.min,
          max: r.max,
          mean,
          variance,
          stddev: Math.sqrt(variance),
          first: r.first,
          last: r.last,
        }
      }
      const items = [...buckets.values()]
      const more = items.length > limit
      const out = more ? items.slice(0, limit) : items
      const last = out[out.length - 1]
      return { items: out, nextCursor: more && last ? encodeCursor([Date.parse(last.start)]) : null }
    },
  )

  app.get(
    '/v1/alerts',
    {
      config: read,
      schema: {
        querystring: Type.Object(
          {
            state: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed')])),
            severity: Type.Optional(
              Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')]),
            ),
            type: Type.Optional(Text),
            kind: Type.Optional(Kind),
            entity: Type.Optional(Id),
            ...Range,
            ...Page,
          },
          strict,
        ),
        response: reply(ListOf(Alert)),
      },
    },
    async (req) => {
      const qs = req.query
      const q = new Params()
      const where = [scopeSql(scopeFor(req), 'a.kind', 'a.entity', q)]
      for (const col of ['state', 'severity', 'type', 'kind', 'entity'] as const)
        if (qs[col] !== undefined) where.push(`a.${col} = ${q.p(qs[col])}`)
      range(q, where, 'a.started_at', qs)
      const r = await page<AlertRow>(
        pool,
        q,
        `SELECT a.* FROM ${T.alerts} a`,
        where,
        [
          { sql: 'a.started_at', type: 'n', ts: true, of: (x) => x.started_at.getTime() },
          { sql: 'a.alert_id', type: 's', of: (x) => x.alert_id },
        ],
        true,
        qs,
      )
      return { items: r.rows.map(alertOut), nextCursor: r.nextCursor }
    },
  )

  app.get(
    '/v1/recommendations',
    {
      config: read,
      schema: {
        querystring: Type.Object(
          { kind: Type.Optional(Kind), entity: Type.Optional(Id), action: Type.Optional(Text), ...Range, ...Page },
          strict,
        ),
        response: reply(ListOf(Recommendation)),
      },
    },
    async (req) => {
      const qs = req.query
      const q = new Params()
      const where = [scopeSql(scopeFor(req), 'r.kind', 'r.entity', q)]
      for (const col of ['kind', 'entity', 'action'] as const)
        if (qs[col] !== undefined) where.push(`r.${col} = ${q.p(qs[col])}`)
      range(q, where, 'r.recommended_at', qs)
      const r = await page<RecRow>(
        pool,
        q,
        `SELECT r.* FROM ${T.recommendations} r`,
        where,
        [
          { sql: 'r.recommended_at', type: 'n', ts: true, of: (x) => x.recommended_at.getTime() },
          { sql: 'r.output_id', type: 's', of: (x) => x.output_id },
        ],
        true,
        qs,
      )
      return {
        items: r.rows.map((x) => ({
          id: x.output_id,
          kind: x.kind,
          entity: x.entity,
          profile: x.profile,
          recommendedAt: x.recommended_at.toISOString(),
          action: x.action,
          score: x.score,
          factors: x.factors,
          reason: x.reason,
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  app.get(
    '/v1/entities/:kind/:id/laps',
    {
      config: read,
      schema: {
        params: EntityParams,
        querystring: Type.Object({ ...Range, ...Page }, strict),
        response: reply(ListOf(Lap)),
      },
    },
    async (req) => {
      const { kind, id } = req.params
      await assertVisible(registry, scopeFor(req), kind, id)
      const q = new Params()
      const where = [`kind = ${q.p(kind)}`, `entity = ${q.p(id)}`]
      range(q, where, 'lap_end', req.query)
      const r = await page<LapRow>(
        pool,
        q,
        `SELECT * FROM ${T.laps}`,
        where,
        [{ sql: 'lap', type: 'n', of: (x) => x.lap }],
        false,
        req.query,
      )
      return {
        items: r.rows.map((x) => ({
          lap: x.lap,
          profile: x.profile,
          start: x.lap_start.toISOString(),
          end: x.lap_end.toISOString(),
          lapTimeMs: Number(x.lap_time_ms),
          minSpeed: x.min_speed,
          avgSpeed: x.avg_speed,
          maxSpeed: x.max_speed,
          maxBrakeTemp: x.max_brake_temp,
          maxTyreTemp: x.max_tyre_temp,
          samples: x.samples,
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  // Score history of an entity (score_history), oldest first: e.g. an asset's failure_risk trend (`name`).
  app.get(
    '/v1/entities/:kind/:id/scores',
    {
      config: read,
      schema: {
        params: EntityParams,
        querystring: Type.Object({ name: Type.Optional(Text), ...Range, ...Page }, strict),
        response: reply(ListOf(ScorePoint)),
      },
    },
    async (req) => {
      const { kind, id } = req.params
      await assertVisible(registry, scopeFor(req), kind, id)
      const q = new Params()
      const where = [`h.kind = ${q.p(kind)}`, `h.entity = ${q.p(id)}`]
      if (req.query.name !== undefined) where.push(`h.name = ${q.p(req.query.name)}`)
      range(q, where, 'h.scored_at', req.query)
      const r = await page<ScoreRow>(
        pool,
        q,
        `SELECT h.output_id, h.name, h.profile, h.scored_at, h.value, h.factors FROM ${T.scoreHistory} h`,
        where,
        [
          { sql: 'h.scored_at', type: 'n', ts: true, of: (x) => x.scored_at.getTime() },
          { sql: 'h.output_id', type: 's', of: (x) => x.output_id },
        ],
        false,
        req.query,
        1000,
      )
      return {
        items: r.rows.map((x) => ({
          id: x.output_id,
          name: x.name,
          profile: x.profile,
          scoredAt: x.scored_at.toISOString(),
          value: x.value,
          factors: x.factors,
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  app.get(
    '/v1/late-readings',
    {
      config: read,
      schema: {
        querystring: Type.Object({ kind: Type.Optional(Kind), entity: Type.Optional(Id), ...Range, ...Page }, strict),
        response: reply(ListOf(LateReading)),
      },
    },
    async (req) => {
      const qs = req.query
      const q = new Params()
      const where = [scopeSql(scopeFor(req), 'l.kind', 'l.entity', q)]
      for (const col of ['kind', 'entity'] as const) if (qs[col] !== undefined) where.push(`l.${col} = ${q.p(qs[col])}`)
      range(q, where, 'l.reading_ts', qs)
      const r = await page<LateRow>(
        pool,
        q,
        `SELECT l.* FROM ${T.late} l`,
        where,
        [
          { sql: 'l.reading_ts', type: 'n', ts: true, of: (x) => x.reading_ts.getTime() },
          { sql: 'l.output_id', type: 's', of: (x) => x.output_id },
        ],
        true,
        qs,
      )
      return {
        items: r.rows.map((x) => ({
          id: x.output_id,
          kind: x.kind,
          entity: x.entity,
          profile: x.profile,
          readingTs: x.reading_ts.toISOString(),
          watermark: x.watermark.toISOString(),
          readingSeq: Number(x.reading_seq),
          fields: x.fields,
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  // Trips of a road vehicle: its `trip` score outputs (score_history), each a GeoJSON Feature whose geometry is the
  // LineString of its projected positions (raw_readings) when at least two are stored, else null.
  app.get(
    '/v1/entities/:kind/:id/trips',
    {
      config: read,
      schema: {
        params: EntityParams,
        querystring: Type.Object({ ...Range, ...Page }, strict),
        response: reply(FeatureCollection),
      },
    },
    async (req) => {
      const { kind, id } = req.params
      await assertVisible(registry, scopeFor(req), kind, id)
      const q = new Params()
      const where = [`h.kind = ${q.p(kind)}`, `h.entity = ${q.p(id)}`, `h.name = 'trip'`]
      range(q, where, 'h.scored_at', req.query)
      const coords = `(SELECT json_agg(json_build_array(p.lon, p.lat) ORDER BY p.ts, p.seq) FROM ${T.raw} p WHERE p.kind = h.kind AND p.entity = h.entity
      AND p.lat IS NOT NULL AND p.lon IS NOT NULL AND p.ts >= ${ms("(h.factors->>'start_ts')::float8")} AND p.ts <= ${ms("(h.factors->>'end_ts')::float8")}) AS coords`
      const r = await page<TripRow>(
        pool,
        q,
        `SELECT h.output_id, h.scored_at, h.value, h.factors, ${coords} FROM ${T.scoreHistory} h`,
        where,
        [
          { sql: 'h.scored_at', type: 'n', ts: true, of: (x) => x.scored_at.getTime() },
          { sql: 'h.output_id', type: 's', of: (x) => x.output_id },
        ],
        false,
        req.query,
      )
      return {
        type: 'FeatureCollection' as const,
        features: r.rows.map((x) => ({
          type: 'Feature' as const,
          geometry: x.coords && x.coords.length >= 2 ? { type: 'LineString', coordinates: x.coords } : null,
          properties: {
            id: x.output_id,
            start: new Date(x.factors.start_ts ?? 0).toISOString(),
            end: x.scored_at.toISOString(),
            distanceKm: x.value,
            durationS: x.factors.duration_s ?? null,
            maxSpeed: x.factors.max_speed ?? null,
            avgSpeed: x.factors.avg_speed ?? null,
          },
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  // Positions of an entity as GeoJSON Points, from raw_readings rows carrying lat/lon: the road profile's `position`
  // outputs (projected there live) and any imported raw readings. Properties: ts, seq, and speed, heading and the
  // reason (sample, trip_start, stop, trip_end) when the row has them.
  app.get(
    '/v1/entities/:kind/:id/positions',
    {
      config: read,
      schema: {
        params: EntityParams,
        querystring: Type.Object({ ...Range, ...Page }, strict),
        response: reply(FeatureCollection),
      },
    },
    async (req) => {
      const { kind, id } = req.params
      await assertVisible(registry, scopeFor(req), kind, id)
      const q = new Params()
      const where = [`kind = ${q.p(kind)}`, `entity = ${q.p(id)}`, 'lat IS NOT NULL', 'lon IS NOT NULL']
      range(q, where, 'ts', req.query)
      const r = await page<PosRow>(
        pool,
        q,
        `SELECT seq, ts, lat, lon, fields FROM ${T.raw}`,
        where,
        [{ sql: 'seq', type: 'n', of: (x) => Number(x.seq) }],
        false,
        req.query,
        1000,
      )
      const extra = (f: Record<string, unknown> | null): Record<string, unknown> => {
        const out: Record<string, unknown> = {}
        for (const k of ['speed', 'heading', 'reason']) if (f && f[k] !== undefined) out[k] = f[k]
        return out
      }
      return {
        type: 'FeatureCollection' as const,
        features: r.rows.map((x) => ({
          type: 'Feature' as const,
          geometry: { type: 'Point', coordinates: [x.lon, x.lat] },
          properties: { ts: x.ts.toISOString(), seq: Number(x.seq), ...extra(x.fields) },
        })),
        nextCursor: r.nextCursor,
      }
    },
  )

  // Open alerts counted by type and severity, and by the process stage of the sensor raising them (registry).
  app.get(
    '/v1/rollups/open-alerts',
    {
      config: read,
      schema: { querystring: Type.Object({ kind: Type.Optional(Kind) }, strict), response: reply(OpenAlertsRollup) },
    },
    async (req) => {
      const q = new Params()
      const where = [`a.state = 'open'`, scopeSql(scopeFor(req), 'a.kind', 'a.entity', q)]
      if (req.query.kind !== undefined) where.push(`a.kind = ${q.p(req.query.kind)}`)
      const w = where.join(' AND ')
      const [byType, byStage] = await Promise.all([
        pool.query<{ type: string; severity: string; count: number }>(
          `SELECT a.type, a.severity, count(*)::int AS count FROM ${T.alerts} a WHERE ${w} GROUP BY a.type, a.severity ORDER BY count DESC, a.type COLLATE "C", a.severity`,
          q.values,
        ),
        pool.query<{ process_stage: string | null; count: number }>(
          `SELECT s.process_stage, count(*)::int AS count FROM ${T.alerts} a JOIN sensors s ON a.kind = 'sensor' AND s.id = a.entity WHERE ${w} GROUP BY s.process_stage ORDER BY count DESC, s.process_stage COLLATE "C" NULLS LAST`,
          q.values,
        ),
      ])
      return {
        total: byType.rows.reduce((n, r) => n + r.count, 0),
        byType: byType.rows,
        byStage: byStage.rows.map((r) => ({ processStage: r.process_stage, count: r.count })),
      }
    },
  )

  // Alerts started in [from, to) counted by type and severity and per time bucket: the alert distribution of a
  // period (the console's Sensors trend). `profile` narrows to one profile's entities.
  app.get(
    '/v1/rollups/alerts',
    {
      config: read,
      schema: {
        querystring: Type.Object(
          { kind: Type.Optional(Kind), profile: Type.Optional(Text), bucket: Type.Optional(Digits(10)), ...Range },
          strict,
        ),
        response: reply(AlertsRollup),
      },
    },
    async (req) => {
      const qs = req.query
      const bucket = qs.bucket === undefined ? 3_600_000 : Number(qs.bucket)
      if (bucket < 60_000 || bucket > 31 * 86_400_000)
        throw new GatewayError('GW_ERR_QUERY_INVALID', 'bucket must be 60000..2678400000 ms', {
          item: 'querystring.bucket',
        })
      const from = timeParam(qs.from, 'from')
      const to = timeParam(qs.to, 'to')
      if (from !== undefined && to !== undefined && (to - from) / bucket > ROLLUP_BUCKETS) {
        throw new GatewayError(
          'GW_ERR_QUERY_INVALID',
          `at most ${ROLLUP_BUCKETS} buckets: widen bucket or narrow from..to`,
          { item: 'querystring.bucket' },
        )
      }
      const q = new Params()
      const where = [scopeSql(scopeFor(req), 'a.kind', 'a.entity', q)]
      for (const col of ['kind', 'profile'] as const)
        if (qs[col] !== undefined) where.push(`a.${col} = ${q.p(qs[col])}`)
      range(q, where, 'a.started_at', qs)
      const w = where.join(' AND ')
      // An integer checked above, written into the SQL: as a parameter it would be one the first query does not use.
      const b = String(Math.trunc(bucket))
      const [byType, byBucket] = await Promise.all([
        pool.query<{ type: string; severity: string; count: number }>(
          `SELECT a.type, a.severity, count(*)::int AS count FROM ${T.alerts} a WHERE ${w}
        GROUP BY a.type, a.severity ORDER BY count DESC, a.type COLLATE "C", a.severity`,
          q.values,
        ),
        pool.query<{ start: string; count: number; info: number; warning: number; critical: number }>(
          `SELECT * FROM (
          SELECT (((extract(epoch FROM a.started_at) * 1000)::bigint / ${b}::bigint) * ${b}::bigint)::text AS start, count(*)::int AS count,
            (count(*) FILTER (WHERE a.severity = 'info'))::int AS info, (count(*) FILTER (WHERE a.severity = 'warning'))::int AS warning,
            (count(*) FILTER (WHERE a.severity = 'critical'))::int AS critical
          FROM ${T.alerts} a WHERE ${w} GROUP BY 1 ORDER BY 1::bigint DESC LIMIT ${ROLLUP_BUCKETS}) x ORDER BY x.start::bigint`,
          q.values,
        ),
      ])
      return {
        total: byType.rows.reduce((n, r) => n + r.count, 0),
        byType: byType.rows,
        byBucket: byBucket.rows.map((r) => ({
          start: new Date(Number(r.start)).toISOString(),
          count: r.count,
          info: r.info,
          warning: r.warning,
          critical: r.critical,
        })),
      }
    },
  )

  // Late readings (behind the watermark) whose reading time is in [from, to), counted per entity.
  app.get(
    '/v1/rollups/late-readings',
    {
      config: read,
      schema: {
        querystring: Type.Object({ kind: Type.Optional(Kind), profile: Type.Optional(Text), ...Range }, strict),
        response: reply(LateRollup),
      },
    },
    async (req) => {
      const qs = req.query
      const q = new Params()
      const where = [scopeSql(scopeFor(req), 'l.kind', 'l.entity', q)]
      for (const col of ['kind', 'profile'] as const)
        if (qs[col] !== undefined) where.push(`l.${col} = ${q.p(qs[col])}`)
      range(q, where, 'l.reading_ts', qs)
      const r = await pool.query<{
        kind: string
        entity: string
        count: number
        last: Date
        behind: number
        total: number
      }>(
        `SELECT l.kind, l.entity, count(*)::int AS count,
        max(l.reading_ts) AS last, (max(extract(epoch FROM l.watermark - l.reading_ts)) * 1000)::float8 AS behind, (sum(count(*)) OVER ())::int AS total
      FROM ${T.late} l WHERE ${where.join(' AND ')} GROUP BY l.kind, l.entity ORDER BY count DESC, l.kind, l.entity COLLATE "C" LIMIT 1000`,
        q.values,
      )
      return {
        total: r.rows[0]?.total ?? 0,
        byEntity: r.rows.map((x) => ({
          kind: x.kind,
          entity: x.entity,
          count: x.count,
          last: x.last.toISOString(),
          maxBehindMs: Math.round(x.behind),
        })),
      }
    },
  )

  // Entities (registered, or known from their windows) whose last window ended more than `minutes` ago, or never.
  app.get(
    '/v1/rollups/stale',
    {
      config: read,
      schema: {
        querystring: Type.Object({ minutes: Digits(6), kind: Type.Optional(Kind), ...Page }, strict),
        response: reply(ListOf(StaleEntity)),
      },
    },
    async (req) => {
      const qs = req.query
      const minutes = Number(qs.minutes)
      if (minutes < 1 || minutes > 525_600)
        throw new GatewayError('GW_ERR_QUERY_INVALID', 'minutes must be 1..525600', { item: 'querystring.minutes' })
      const q = new Params()
      const select = `SELECT * FROM (
      SELECT e.kind, e.entity, s.last_seen, bool_or(e.registered) AS registered FROM (
        SELECT 'sensor'::text AS kind, id AS entity, true AS registered FROM sensors
        UNION ALL SELECT 'vehicle', vin, true FROM vehicles
        UNION ALL SELECT DISTINCT kind, entity, false FROM ${T.windows}) e
      LEFT JOIN (SELECT kind, entity, max(window_end) AS last_seen FROM ${T.windows} GROUP BY kind, entity) s ON s.kind = e.kind AND s.entity = e.entity
      GROUP BY e.kind, e.entity, s.last_seen) x`
      const where = [
        `(x.last_seen IS NULL OR x.last_seen < now() - ${q.p(minutes)} * interval '1 minute')`,
        scopeSql(scopeFor(req), 'x.kind', 'x.entity', q),
      ]
      if (qs.kind !== undefined) where.push(`x.kind = ${q.p(qs.kind)}`)
      const r = await page<StaleRow>(
        pool,
        q,
        select,
        where,
        [
          { sql: 'x.kind', type: 's', of: (x) => x.kind },
          { sql: 'x.entity', type: 's', of: (x) => x.entity },
        ],
        false,
        qs,
      )
      return {
        items: r.rows.map((x) => ({
          kind: x.kind,
          id: x.entity,
          lastSeen: iso(x.last_seen),
          registered: x.registered,
        })),
        nextCursor: r.nextCursor,
      }
    },
  )
}
