/**
 * actors/alerts.ts: the alert id and output key formats, the emit through an actor context, the rank the projector
 * merges by, and that the tables' SQL (projector/schema.ts, written once as a migration) agrees with the constants.
 * No server.
 */
import t from 'tap'
import { ALERT_RANK, ALERT_STATES, alertId, alertKey, emitAlert, SEVERITIES, stateAfter } from '../../actors/mod.js'
import type { ActorContext } from '../../actors/mod.js'
import type { AlertBody } from '../../actors/types.js'
import { MIGRATIONS, planBatch } from '../../projector/mod.js'

t.test('ids: kind, id, type, optional sub, start', async (t) => {
  t.equal(
    alertId({ kind: 'sensor', id: 'env-0001' }, 'co2_high', 1_700_000_000_000),
    'sensor:env-0001:co2_high:1700000000000',
  )
  t.equal(alertId({ kind: 'vehicle', id: 'V1' }, 'dtc', 5, 'P0301'), 'vehicle:V1:dtc:P0301:5')
  t.equal(alertKey('vehicle:V1:dtc:P0301:5', 'close', 42), 'vehicle:V1:dtc:P0301:5:close:42')
})

t.test('emitAlert: one alert output keyed <alertId>:<state>:<seq>, the body as given', async (t) => {
  const got: Array<{ type: string; key: string; ts: number; body: unknown }> = []
  const ctx = {
    seq: 17,
    emit: (type: string, key: string, ts: number, body: unknown) => {
      got.push({ type, key, ts, body })
    },
  } as unknown as ActorContext
  const body: AlertBody = {
    alertId: 'sensor:s1:t:3',
    type: 't',
    severity: 'info',
    state: 'update',
    start: 3,
    value: 1,
    threshold: 0,
    explanation: 'x',
  }
  emitAlert(ctx, 99, body)
  t.same(got, [{ type: 'alert', key: 'sensor:s1:t:3:update:17', ts: 99, body }])
  t.equal(got[0]?.body, body, "the same object: field order is the profile's")
})

t.test('lifecycle constants', async (t) => {
  t.same([...ALERT_STATES], ['open', 'update', 'close'])
  t.same(
    [...ALERT_STATES].sort((a, b) => ALERT_RANK[a] - ALERT_RANK[b]),
    [...ALERT_STATES],
    'rank follows the life',
  )
  t.same(ALERT_STATES.map(stateAfter), ['open', 'open', 'closed'])
})

t.test('the SQL of the alert tables agrees with the constants', async (t) => {
  const sql = MIGRATIONS.map((m) => m.sql).join('\n')
  const list = (xs: readonly string[]): string => xs.map((x) => `'${x}'`).join(', ')
  t.match(sql, `CHECK (event IN (${list(ALERT_STATES)}))`, 'alert_events.event')
  t.match(sql, `CHECK (last_event IN (${list(ALERT_STATES)}))`, 'alerts.last_event')
  t.match(sql, `CHECK (severity IN (${list(SEVERITIES)}))`, 'alerts.severity')
  const rank = `CASE event ${ALERT_STATES.slice(0, -1)
    .map((s) => `WHEN '${s}' THEN ${ALERT_RANK[s]}`)
    .join(' ')} ELSE ${ALERT_RANK.close} END`
  t.match(sql, rank, 'pw_alert_rank')
})

t.test('the projector decodes every state and severity, and refuses others', async (t) => {
  const msg = (
    seq: number,
    state: string,
    severity = 'warning',
  ): { seq: number; subject: string; data: Uint8Array } => ({
    seq,
    subject: 'out.a.0',
    data: new TextEncoder().encode(
      JSON.stringify({
        id: `sensor:s1:alert:sensor:s1:t:1:${state}:${seq}`,
        type: 'alert',
        kind: 'sensor',
        entity: 's1',
        profile: 'environment',
        site: 'a',
        ts: 10 + seq,
        seq,
        partition: 0,
        token: 1,
        body: {
          alertId: 'sensor:s1:t:1',
          type: 't',
          severity,
          state,
          start: 1,
          value: 5,
          threshold: 4,
          explanation: 'x',
        },
      }),
    ),
  })
  const ok = planBatch(
    [...ALERT_STATES.map((s, i) => msg(i + 1, s)), ...SEVERITIES.map((v, i) => msg(10 + i, 'update', v))],
    0,
    new Map(),
  )
  t.equal(ok.rows.alertEvents.length, ALERT_STATES.length + SEVERITIES.length, 'all decoded')
  t.equal(ok.rows.alerts[0]?.state, 'open', 'the last event (an update at seq 12) leaves it open')
  const bad = planBatch([msg(1, 'reopen'), msg(2, 'open', 'fatal')], 0, new Map())
  t.equal(bad.rows.alertEvents.length, 0, 'unknown state and severity refused')
  t.same(
    bad.rejects.map((r) => r.reason),
    ['state: must be one of open, update, close', 'severity: must be one of info, warning, critical'],
  )
})
