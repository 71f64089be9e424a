/**
 * Alarm workflow plugin: what people do with an alert the detectors raised. The projector's `alerts` row says
 * whether the condition holds (open/closed); `alert_workflow` (gateway migration 6) says what people did, and
 * `alert_audit` keeps every action with who and when. Together they give the states operators know:
 *   active   the detector holds the alert open and nobody cleared it
 *   cleared  the detector closed it (cleared by `system`) or a person cleared it
 * crossed with unacknowledged/acknowledged, as `status`: active_unacknowledged, active_acknowledged,
 * cleared_unacknowledged, cleared_acknowledged. Acknowledging, assigning and commenting are allowed in any
 * state (a cleared alarm may still need to be acknowledged); clearing a cleared alarm and acknowledging an
 * acknowledged one are refused (409), so two people acting at once learn who was first. An alert that opens
 * again after a clear is a new occurrence (the detectors give it a new alert id) linked to the previous one of
 * the same entity and type (`previousAlertId` / `nextAlertId`).
 * Viewers read; operators and admins act (scoped people on the alerts of their fleets/sites only; any other
 * alert is a 404 GW_ERR_ALERT_UNKNOWN, the same answer as an alert that does not exist). Each action is
 * published on the live feed as an `alarm` event (live.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import { TABLES as T } from '../projector/mod.js'
import type { Principal } from './auth.js'
import { GatewayError } from './errors.js'
import { projectionError } from './queries.js'
import { ErrorReply, errorReplies } from './schemas.js'
import { Params, scopeOf, scopeSql } from './scope.js'

export interface AlarmOptions {
  pool: pg.Pool
  nc: NatsConnection
  site: string
}

/** The core NATS subject of alarm workflow changes: one per entity, so the live feed filters by subject. */
export const alarmSubject = (site: string, kind: string, entity: string): string => `alarm.${site}.${kind}.${entity}`

export const ALARM_STATUSES = [
  'active_unacknowledged',
  'active_acknowledged',
  'cleared_unacknowledged',
  'cleared_acknowledged',
] as const
export type AlarmStatus = (typeof ALARM_STATUSES)[number]
export type AlarmAction = 'acknowledge' | 'assign' | 'unassign' | 'comment' | 'clear'

/** The status from its two halves. */
export function alarmStatus(active: boolean, acknowledged: boolean): AlarmStatus {
  return `${active ? 'active' : 'cleared'}_${acknowledged ? 'acknowledged' : 'unacknowledged'}`
}

const strict = { additionalProperties: false } as const
const Stamp = Type.String({ description: 'ISO 8601' })
const Nullable = <T extends ReturnType<typeof Type.String>>(s: T) => Type.Union([s, Type.Null()])
const Comment = Type.String({ minLength: 1, maxLength: 2000 })
/** People are named by their JWT `sub` (or `key:<id>` for a service key): any printable id. */
const Who = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\x00-\\x1f\\x7f]+$' })
const AlertParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 512, pattern: '^[^\\x00-\\x1f\\x7f]+$' }) },
  strict,
)

const Alarm = Type.Object({
  alertId: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  type: Type.String(),
  severity: Type.String(),
  explanation: Type.String(),
  startedAt: Stamp,
  endedAt: Nullable(Stamp),
  status: Type.Union([
    Type.Literal('active_unacknowledged'),
    Type.Literal('active_acknowledged'),
    Type.Literal('cleared_unacknowledged'),
    Type.Literal('cleared_acknowledged'),
  ]),
  active: Type.Boolean(),
  acknowledged: Type.Boolean(),
  acknowledgedAt: Nullable(Stamp),
  acknowledgedBy: Nullable(Type.String()),
  assignee: Nullable(Type.String()),
  assignedAt: Nullable(Stamp),
  assignedBy: Nullable(Type.String()),
  clearedAt: Nullable(Stamp),
  clearedBy: Nullable(Type.String({ description: 'a person, or `system` when the detector closed the alert' })),
  previousAlertId: Nullable(
    Type.String({ description: 'the previous occurrence: the same entity and type, opened before this one' }),
  ),
  nextAlertId: Nullable(Type.String({ description: 'the next occurrence (the alert opened again after this one)' })),
})
export type AlarmT = Static<typeof Alarm>

const HistoryItem = Type.Object({
  at: Stamp,
  action: Type.Union([
    Type.Literal('open'),
    Type.Literal('close'),
    Type.Literal('acknowledge'),
    Type.Literal('assign'),
    Type.Literal('unassign'),
    Type.Literal('comment'),
    Type.Literal('clear'),
  ]),
  by: Type.String({ description: 'the person or key; `system` for the detector opening and closing the alert' }),
  byType: Type.Union([Type.Literal('system'), Type.Literal('user'), Type.Literal('key'), Type.Literal('dev')]),
  comment: Nullable(Type.String()),
  assignee: Nullable(Type.String()),
})
const History = Type.Object({ alertId: Type.String(), items: Type.Array(HistoryItem) })

const replies = { 200: Alarm, 409: ErrorReply, ...errorReplies }
/** Acknowledge and clear take an optional comment; a request without a body (`curl -X POST`) is `{}`. */
const OptionalComment = Type.Object({ comment: Type.Optional(Comment) }, strict)
const noBodyIsEmpty = async (req: FastifyRequest): Promise<void> => {
  req.body ??= {}
}

type AlarmRow = {
  alert_id: string
  kind: string
  entity: string
  profile: string
  type: string
  severity: string
  explanation: string
  state: string
  started_at: Date
  ended_at: Date | null
  acknowledged_at: Date | null
  acknowledged_by: string | null
  assignee: string | null
  assigned_at: Date | null
  assigned_by: string | null
  cleared_at: Date | null
  cleared_by: string | null
  previous_alert_id: string | null
  next_alert_id: string | null
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString())

/** The alarm as replies and live events show it: a person's clear wins over the detector's later close. */
export function alarmOut(r: AlarmRow): AlarmT {
  const byPerson = r.cleared_at !== null
  const active = !byPerson && r.state === 'open'
  const acknowledged = r.acknowledged_at !== null
  return {
    alertId: r.alert_id,
    kind: r.kind,
    entity: r.entity,
    profile: r.profile,
    type: r.type,
    severity: r.severity,
    explanation: r.explanation,
    startedAt: r.started_at.toISOString(),
    endedAt: iso(r.ended_at),
    status: alarmStatus(active, acknowledged),
    active,
    acknowledged,
    acknowledgedAt: iso(r.acknowledged_at),
    acknowledgedBy: r.acknowledged_by,
    assignee: r.assignee,
    assignedAt: iso(r.assigned_at),
    assignedBy: r.assigned_by,
    clearedAt: byPerson ? iso(r.cleared_at) : active ? null : iso(r.ended_at),
    clearedBy: byPerson ? r.cleared_by : active ? null : 'system',
    previousAlertId: r.previous_alert_id,
    nextAlertId: r.next_alert_id,
  }
}

/** Who acts: the JWT subject, `key:<id>` for a service key, `dev` with auth off (devices never get here). */
function actorOf(p: Principal | null): { actor: string; type: 'user' | 'key' | 'dev' } {
  if (!p || p.type === 'dev') return { actor: 'dev', type: 'dev' }
  if (p.type === 'key') return { actor: `key:${p.id}`, type: 'key' }
  if (p.type === 'user') return { actor: p.id, type: 'user' }
  throw new GatewayError('GW_ERR_FORBIDDEN', 'device credentials may only send readings')
}

/**
 * The alert joined with its workflow and its neighbouring occurrences, if the caller's scope sees it; `lock`
 * takes the workflow row FOR UPDATE (it must exist), so concurrent actions on one alarm apply one after another.
 */
function alarmSql(req: FastifyRequest, id: string, lock: boolean): { sql: string; values: unknown[] } {
  const q = new Params()
  const idp = q.p(id)
  const scope = scopeSql(scopeOf(req.principal), 'a.kind', 'a.entity', q)
  const occurrence = (
    dir: '<' | '>',
  ) => `(SELECT o.alert_id FROM ${T.alerts} o WHERE o.kind = a.kind AND o.entity = a.entity AND o.type = a.type
      AND (o.started_at, o.alert_id COLLATE "C") ${dir} (a.started_at, a.alert_id COLLATE "C")
      ORDER BY o.started_at ${dir === '<' ? 'DESC' : 'ASC'}, o.alert_id COLLATE "C" ${dir === '<' ? 'DESC' : 'ASC'} LIMIT 1)`
  return {
    sql: `SELECT a.alert_id, a.kind, a.entity, a.profile, a.type, a.severity, a.explanation, a.state, a.started_at, a.ended_at,
      w.acknowledged_at, w.acknowledged_by, w.assignee, w.assigned_at, w.assigned_by, w.cleared_at, w.cleared_by,
      ${occurrence('<')} AS previous_alert_id, ${occurrence('>')} AS next_alert_id
    FROM ${T.alerts} a ${lock ? 'JOIN' : 'LEFT JOIN'} alert_workflow w ON w.alert_id = a.alert_id
    WHERE a.alert_id = ${idp} AND ${scope}${lock ? ' FOR UPDATE OF w' : ''}`,
    values: q.values,
  }
}

const unknown = (id: string): GatewayError =>
  new GatewayError('GW_ERR_ALERT_UNKNOWN', `no alert ${JSON.stringify(id)}`, { item: 'params.id' })

export const alarmPlugin: FastifyPluginAsyncTypebox<AlarmOptions> = async (app, { pool, nc, site }) => {
  const operate = { access: 'operate' as const }

  async function read(req: FastifyRequest, id: string): Promise<AlarmT> {
    const { sql, values } = alarmSql(req, id, false)
    const r = await pool.query<AlarmRow>(sql, values).catch((err: unknown) => {
      throw projectionError(err)
    })
    const row = r.rows[0]
    if (!row) throw unknown(id)
    return alarmOut(row)
  }

  /**
   * One action in one transaction: the alert must exist and be visible, the rule `check` must pass on the locked
   * workflow row, then the row changes and the audit gets its line. Published on the live feed after COMMIT.
   */
  async function act(
    req: FastifyRequest,
    id: string,
    action: AlarmAction,
    change: { set?: string; comment?: string; assignee?: string },
    check: (a: AlarmT) => void,
  ): Promise<AlarmT> {
    const who = actorOf(req.principal)
    const c = await pool.connect()
    let out: AlarmT
    try {
      await c.query('BEGIN')
      try {
        // Only for an alert that exists: junk ids must not leave workflow rows behind.
        await c.query(
          `INSERT INTO alert_workflow (alert_id) SELECT alert_id FROM ${T.alerts} WHERE alert_id = $1 ON CONFLICT DO NOTHING`,
          [id],
        )
        const { sql, values } = alarmSql(req, id, true)
        const row = (await c.query<AlarmRow>(sql, values)).rows[0]
        if (!row) throw unknown(id)
        check(alarmOut(row))
        // $2 is the actor, $3 the assignee (assign only); a comment changes no state.
        if (change.set === undefined)
          await c.query('UPDATE alert_workflow SET updated_at = now() WHERE alert_id = $1', [id])
        else
          await c.query(
            `UPDATE alert_workflow SET ${change.set}, updated_at = now() WHERE alert_id = $1`,
            change.assignee === undefined ? [id, who.actor] : [id, who.actor, change.assignee],
          )
        await c.query(
          'INSERT INTO alert_audit (alert_id, action, actor, actor_type, comment, assignee) VALUES ($1, $2, $3, $4, $5, $6)',
          [id, action, who.actor, who.type, change.comment ?? null, change.assignee ?? null],
        )
        const after = (await c.query<AlarmRow>(sql, values)).rows[0]
        if (!after) throw unknown(id)
        out = alarmOut(after)
        await c.query('COMMIT')
      } catch (err) {
        await c.query('ROLLBACK')
        throw projectionError(err)
      }
    } finally {
      c.release()
    }
    // Best effort: the change is committed; a feed that misses it still shows it on the next GET.
    try {
      nc.publish(
        alarmSubject(site, out.kind, out.entity),
        JSON.stringify({
          action,
          by: who.actor,
          at: new Date().toISOString(),
          comment: change.comment ?? null,
          ...out,
        }),
      )
    } catch (err) {
      req.log.warn({ err }, 'alarm change not published on the live feed')
    }
    return out
  }

  app.get(
    '/v1/alerts/:id',
    {
      config: { access: 'read' },
      schema: { params: AlertParams, response: replies },
    },
    async (req) => read(req, req.params.id),
  )

  app.get(
    '/v1/alerts/:id/history',
    {
      config: { access: 'read' },
      schema: { params: AlertParams, response: { 200: History, ...errorReplies } },
    },
    async (req) => {
      const id = req.params.id
      await read(req, id)
      // The detector's open and close (alert_events, projector) and people's actions, in time order.
      const r = await pool
        .query<{
          at: Date
          action: string
          by: string
          by_type: string
          comment: string | null
          assignee: string | null
        }>(
          `SELECT at, action, by, by_type, comment, assignee FROM (
        SELECT event_at AS at, event AS action, 'system' AS by, 'system' AS by_type, NULL::text AS comment, NULL::text AS assignee, 0 AS src, seq AS n
          FROM ${T.alertEvents} WHERE alert_id = $1 AND event IN ('open', 'close')
        UNION ALL
        SELECT at, action, actor, actor_type, comment, assignee, 1, id FROM alert_audit WHERE alert_id = $1
      ) h ORDER BY at, src, n`,
          [id],
        )
        .catch((err: unknown) => {
          throw projectionError(err)
        })
      return {
        alertId: id,
        items: r.rows.map((h) => ({
          at: h.at.toISOString(),
          action: h.action as Static<typeof HistoryItem>['action'],
          by: h.by,
          byType: h.by_type as Static<typeof HistoryItem>['byType'],
          comment: h.comment,
          assignee: h.assignee,
        })),
      }
    },
  )

  app.post(
    '/v1/alerts/:id/ack',
    {
      config: operate,
      schema: { params: AlertParams, body: OptionalComment, response: replies },
      preValidation: noBodyIsEmpty,
    },
    async (req) => {
      const comment = req.body.comment
      return act(
        req,
        req.params.id,
        'acknowledge',
        { set: 'acknowledged_at = now(), acknowledged_by = $2', ...(comment === undefined ? {} : { comment }) },
        (a) => {
          if (a.acknowledged)
            throw new GatewayError(
              'GW_ERR_ALERT_ACKNOWLEDGED',
              `alert already acknowledged by ${a.acknowledgedBy ?? '?'} at ${a.acknowledgedAt ?? '?'}`,
              { item: 'params.id' },
            )
        },
      )
    },
  )

  app.post(
    '/v1/alerts/:id/assign',
    {
      config: operate,
      schema: {
        params: AlertParams,
        body: Type.Object(
          {
            assignee: Type.Union([Who, Type.Null()], { description: 'who takes it; null unassigns' }),
            comment: Type.Optional(Comment),
          },
          strict,
        ),
        response: replies,
      },
    },
    async (req) => {
      const { assignee, comment } = req.body
      const extra = comment === undefined ? {} : { comment }
      if (assignee === null)
        return act(
          req,
          req.params.id,
          'unassign',
          { set: 'assignee = NULL, assigned_at = now(), assigned_by = $2', ...extra },
          () => undefined,
        )
      return act(
        req,
        req.params.id,
        'assign',
        { set: 'assignee = $3, assigned_at = now(), assigned_by = $2', assignee, ...extra },
        () => undefined,
      )
    },
  )

  app.post(
    '/v1/alerts/:id/comment',
    {
      config: operate,
      schema: { params: AlertParams, body: Type.Object({ comment: Comment }, strict), response: replies },
    },
    async (req) => act(req, req.params.id, 'comment', { comment: req.body.comment }, () => undefined),
  )

  app.post(
    '/v1/alerts/:id/clear',
    {
      config: operate,
      schema: { params: AlertParams, body: OptionalComment, response: replies },
      preValidation: noBodyIsEmpty,
    },
    async (req) => {
      const comment = req.body.comment
      return act(
        req,
        req.params.id,
        'clear',
        { set: 'cleared_at = now(), cleared_by = $2', ...(comment === undefined ? {} : { comment }) },
        (a) => {
          if (!a.active)
            throw new GatewayError(
              'GW_ERR_ALERT_CLEARED',
              `alert already cleared by ${a.clearedBy ?? '?'} at ${a.clearedAt ?? '?'}`,
              { item: 'params.id' },
            )
        },
      )
    },
  )
}
