/**
 * Alarm workflow against real PostgreSQL and nats-server: alerts written by the real projector, then
 * acknowledged, assigned, commented and cleared through the gateway; states as gateway/README.md lists them,
 * the audit trail (history and the table), occurrences linked across a re-open, role and scope checks, coded
 * errors, the `alarm` events on the SSE live feed, concurrent acknowledgements, and a randomized run of actions
 * judged against a model of the documented rules.
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { Projector } from '../../projector/mod.js'
import type { Output } from '../../actors/types.js'
import { alertOut, subjectOf } from '../projector-fixtures.js'
import { bearer, setupGateway, SVC_KEY } from '../helpers/gateway.js'

const MIN = 60_000
const T1 = Date.now() - 3_600_000
type Json = Record<string, unknown>
const idOf = (entity: string, opened: number): string => `sensor:${entity}:temp_high:${opened}`

t.test('alarm workflow', async (t) => {
  const g = await setupGateway(t)
  const { app, nc } = g
  if (!g.db) throw new Error('no database')
  const pool = new pg.Pool({ connectionString: g.db.url, max: 2 })
  t.teardown(() => pool.end())
  const admin = bearer('admin')
  const op = bearer('operator')
  const viewer = bearer('viewer')
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b', customerId: 'beta' }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: body })).statusCode, 201)

  // s1: opened, closed by the detector, opened again (a new occurrence); s2 open; r1..r9 open for the random run
  let seq = 0
  const outs: Output[] = [
    alertOut('s1', T1, 'open', { seq: ++seq, value: 31 }),
    alertOut('s1', T1, 'close', { seq: ++seq, value: 20, end: T1 + MIN }),
    alertOut('s1', T1 + 2 * MIN, 'open', { seq: ++seq, value: 33 }),
    alertOut('s2', T1, 'open', { seq: ++seq, value: 35 }),
    ...Array.from({ length: 12 }, (_, i) => alertOut('s2', T1 + (10 + i) * MIN, 'open', { seq: ++seq, value: 40 })),
  ]
  const js = jetstream(nc)
  for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
  const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
  await projector.start()
  t.teardown(() => projector.stop())
  for (let i = 0; i < 200 && projector.stats().applied < outs.length; i++) await new Promise((r) => setTimeout(r, 25))
  t.equal(projector.stats().applied, outs.length, 'projector wrote every output')

  const call = async (
    method: 'GET' | 'POST',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ): Promise<{ status: number; body: Json }> => {
    const res = await app.inject({
      method,
      url,
      headers,
      ...(payload === undefined ? {} : { payload: payload as object }),
    })
    return { status: res.statusCode, body: res.json<Json>() }
  }
  const url = (id: string, action = ''): string =>
    `/v1/alerts/${encodeURIComponent(id)}${action === '' ? '' : `/${action}`}`
  const first = idOf('s1', T1)
  const second = idOf('s1', T1 + 2 * MIN)
  const other = idOf('s2', T1)

  t.test('states and occurrences', async (t) => {
    const a = await call('GET', url(first), viewer)
    t.equal(a.status, 200)
    t.match(a.body, {
      status: 'cleared_unacknowledged',
      active: false,
      acknowledged: false,
      clearedBy: 'system',
      clearedAt: new Date(T1 + MIN).toISOString(),
      previousAlertId: null,
      nextAlertId: second,
    })
    const b = await call('GET', url(second), viewer)
    t.match(b.body, {
      status: 'active_unacknowledged',
      active: true,
      clearedBy: null,
      clearedAt: null,
      previousAlertId: first,
      nextAlertId: null,
      assignee: null,
    })
    t.match((await call('GET', url('sensor:nope:x:1'), viewer)).body, {
      code: 'GW_ERR_ALERT_UNKNOWN',
      item: 'params.id',
    })
    t.equal((await call('GET', url('sensor:nope:x:1'), viewer)).status, 404)
  })

  t.test('roles, scope and bad input', async (t) => {
    for (const action of ['ack', 'assign', 'comment', 'clear']) {
      const body = action === 'assign' ? { assignee: 'alice' } : action === 'comment' ? { comment: 'x' } : {}
      const r = await call('POST', url(second, action), viewer, body)
      t.match([r.status, r.body.code], [403, 'GW_ERR_FORBIDDEN'], `a viewer may not ${action}`)
      t.match(
        await call('POST', url(second, action), {}, body),
        { status: 401, body: { code: 'GW_ERR_UNAUTHENTICATED' } },
        `nobody may ${action} without credentials`,
      )
    }
    // a beta-scoped operator acts on beta's alerts; acme's are unknown to it (as if they did not exist)
    const betaOp = bearer('operator', { fleets: ['beta'] })
    for (const id of [first, second]) {
      t.match(await call('POST', url(id, 'comment'), betaOp, { comment: 'mine?' }), {
        status: 404,
        body: { code: 'GW_ERR_ALERT_UNKNOWN' },
      })
      t.match(await call('GET', url(id, 'history'), bearer('viewer', { sites: ['b'] })), {
        status: 404,
        body: { code: 'GW_ERR_ALERT_UNKNOWN' },
      })
    }
    t.match(await call('POST', url(other, 'comment'), betaOp, { comment: 'looking' }), {
      status: 200,
      body: { alertId: other },
    })
    t.match(
      await call('POST', url(other, 'comment'), bearer('operator', { sites: ['b'] }), { comment: 'site b too' }),
      { status: 200 },
    )
    t.match(await call('POST', url(other, 'comment'), bearer('operator', { sites: ['a'] }), { comment: 'no' }), {
      status: 404,
    })
    // bad bodies: a coded 400 naming the property; nothing written
    const before = (await pool.query('SELECT count(*)::int AS n FROM alert_audit')).rows[0].n as number
    for (const [action, body] of [
      ['comment', {}],
      ['comment', { comment: '' }],
      ['comment', { comment: 'x'.repeat(2001) }],
      ['assign', { assignee: '' }],
      ['assign', {}],
      ['ack', { extra: 1 }],
      ['clear', { comment: 5 }],
      ['assign', { assignee: 'a\u0001b' }],
    ] as const) {
      const r = await call('POST', url(second, action), op, body)
      t.match([r.status, r.body.code], [400, 'GW_ERR_BODY_INVALID'], `${action} ${JSON.stringify(body).slice(0, 40)}`)
    }
    t.equal(
      (await pool.query('SELECT count(*)::int AS n FROM alert_audit')).rows[0].n,
      before,
      'refused actions leave no audit line',
    )
    t.equal(
      (await pool.query("SELECT count(*)::int AS n FROM alert_workflow WHERE alert_id LIKE 'sensor:nope%'")).rows[0].n,
      0,
    )
  })

  t.test('acknowledge, assign, comment, clear: who and when, on the live feed', async (t) => {
    // the SSE feed of s1, alarm events only, on a real socket
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const ctl = new AbortController()
    t.teardown(() => {
      ctl.abort()
    })
    const res = await fetch(`${base}/v1/live?kind=sensor&entity=s1&type=alarm`, { headers: viewer, signal: ctl.signal })
    t.equal(res.status, 200)
    const reader = res.body!.getReader()
    let text = ''
    const events: Json[] = []
    const pump = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          text += Buffer.from(value).toString()
          let i
          while ((i = text.indexOf('\n\n')) >= 0) {
            const frame = text.slice(0, i)
            text = text.slice(i + 2)
            const data = /^data: (.*)$/m.exec(frame)
            if (/^event: alarm$/m.test(frame) && data?.[1] !== undefined) {
              t.notOk(/^id:/m.test(frame), 'alarm events carry no OUT sequence')
              events.push(JSON.parse(data[1]) as Json)
            }
          }
        }
      } catch {
        /* aborted */
      }
    })()
    await new Promise((r) => setTimeout(r, 200)) // the feed's subscription is in place

    const t0 = Date.now()
    const ack = await call('POST', url(second, 'ack'), op, { comment: 'on it' })
    t.match(ack, {
      status: 200,
      body: { status: 'active_acknowledged', acknowledged: true, acknowledgedBy: 'u-operator' },
    })
    t.ok(Math.abs(Date.parse(String(ack.body.acknowledgedAt)) - t0) < 5_000, 'acknowledgedAt is now')
    const again = await call('POST', url(second, 'ack'), admin)
    t.match(again, { status: 409, body: { code: 'GW_ERR_ALERT_ACKNOWLEDGED', message: /u-operator/ } })
    t.match(await call('POST', url(second, 'assign'), { 'x-api-key': SVC_KEY }, { assignee: 'alice' }), {
      status: 200,
      body: { assignee: 'alice', assignedBy: /^key:/ },
    })
    t.match(await call('POST', url(second, 'assign'), op, { assignee: null }), {
      status: 200,
      body: { assignee: null, assignedBy: 'u-operator' },
    })
    t.match(await call('POST', url(second, 'comment'), admin, { comment: 'sensor replaced' }), {
      status: 200,
      body: { status: 'active_acknowledged' },
    })
    t.match(await call('POST', url(second, 'clear'), op, { comment: 'fixed' }), {
      status: 200,
      body: { status: 'cleared_acknowledged', active: false, clearedBy: 'u-operator' },
    })
    t.match(await call('POST', url(second, 'clear'), admin), { status: 409, body: { code: 'GW_ERR_ALERT_CLEARED' } })
    t.match(
      await call('POST', url(first, 'clear'), op),
      { status: 409, body: { code: 'GW_ERR_ALERT_CLEARED', message: /system/ } },
      'closed by the detector',
    )
    t.match(
      await call('POST', url(first, 'ack'), op),
      { status: 200, body: { status: 'cleared_acknowledged' } },
      'a cleared alarm may be acknowledged',
    )

    const h = await call('GET', url(second, 'history'), viewer)
    t.equal(h.status, 200)
    const items = h.body.items as Json[]
    t.same(
      items.map((x) => [x.action, x.by, x.comment, x.assignee]),
      [
        ['open', 'system', null, null],
        ['acknowledge', 'u-operator', 'on it', null],
        ['assign', items[2]?.by, null, 'alice'],
        ['unassign', 'u-operator', null, null],
        ['comment', 'u-admin', 'sensor replaced', null],
        ['clear', 'u-operator', 'fixed', null],
      ],
    )
    const at = items.map((x) => Date.parse(String(x.at)))
    t.same(
      [...at].sort((a, b) => a - b),
      at,
      'history in time order',
    )
    t.same(
      (await pool.query('SELECT action FROM alert_audit WHERE alert_id = $1 ORDER BY id', [second])).rows.map(
        (r: { action: string }) => r.action,
      ),
      ['acknowledge', 'assign', 'unassign', 'comment', 'clear'],
      'the audit table holds each action once',
    )
    const closed = await call('GET', url(first, 'history'), viewer)
    t.same(
      (closed.body.items as Json[]).map((x) => x.action),
      ['open', 'close', 'acknowledge'],
    )

    for (let i = 0; i < 100 && events.length < 6; i++) await new Promise((r) => setTimeout(r, 20))
    t.same(
      events.map((e) => [e.alertId, e.action, e.status]),
      [
        [second, 'acknowledge', 'active_acknowledged'],
        [second, 'assign', 'active_acknowledged'],
        [second, 'unassign', 'active_acknowledged'],
        [second, 'comment', 'active_acknowledged'],
        [second, 'clear', 'cleared_acknowledged'],
        [first, 'acknowledge', 'cleared_acknowledged'],
      ],
      'every change on the feed once, in order, none of the refused ones',
    )
    ctl.abort()
    await pump
  })

  t.test('concurrent acknowledgements: exactly one wins', async (t) => {
    const id = idOf('s2', T1 + 10 * MIN)
    const people = Array.from({ length: 8 }, (_, i) => bearer('operator', { sub: `op${i}` }))
    const rs = await Promise.all(people.map((h) => call('POST', url(id, 'ack'), h)))
    t.equal(rs.filter((r) => r.status === 200).length, 1, 'one 200')
    t.equal(rs.filter((r) => r.status === 409 && r.body.code === 'GW_ERR_ALERT_ACKNOWLEDGED').length, 7, 'seven 409')
    t.equal(
      (
        await pool.query("SELECT count(*)::int AS n FROM alert_audit WHERE alert_id = $1 AND action = 'acknowledge'", [
          id,
        ])
      ).rows[0].n,
      1,
    )
  })

  t.test('random action sequences follow the documented rules', async (t) => {
    // Model from gateway/README.md: ack refused (409) when acknowledged; clear refused (409) when cleared;
    // assign/unassign/comment always allowed; status = (active|cleared)_(acknowledged|unacknowledged).
    const actions = ['ack', 'clear', 'assign', 'unassign', 'comment'] as const
    let rnd = 0x5eed
    const next = (n: number): number => {
      rnd = (rnd * 1103515245 + 12345) & 0x7fffffff
      return rnd % n
    }
    for (let k = 11; k < 22; k++) {
      const id = idOf('s2', T1 + k * MIN)
      const m = { active: true, acknowledged: false, assignee: null as string | null, audit: 0 }
      for (let step = 0; step < 12; step++) {
        const a = actions[next(actions.length)]!
        const who = `p${next(3)}`
        const body =
          a === 'assign'
            ? { assignee: who }
            : a === 'unassign'
              ? { assignee: null }
              : a === 'comment'
                ? { comment: `c${step}` }
                : {}
        const r = await call('POST', url(id, a === 'unassign' ? 'assign' : a), bearer('operator', { sub: who }), body)
        let want = 200
        if (a === 'ack') {
          if (m.acknowledged) want = 409
          else m.acknowledged = true
        }
        if (a === 'clear') {
          if (!m.active) want = 409
          else m.active = false
        }
        if (a === 'assign') m.assignee = who
        if (a === 'unassign') m.assignee = null
        if (want === 200) m.audit++
        t.equal(r.status, want, `${id} step ${step} ${a}`)
        if (want === 200) {
          t.equal(
            r.body.status,
            `${m.active ? 'active' : 'cleared'}_${m.acknowledged ? 'acknowledged' : 'unacknowledged'}`,
          )
          t.equal(r.body.assignee, m.assignee)
        } else t.equal(r.body.code, a === 'ack' ? 'GW_ERR_ALERT_ACKNOWLEDGED' : 'GW_ERR_ALERT_CLEARED')
      }
      const h = await call('GET', url(id, 'history'), viewer)
      t.equal((h.body.items as Json[]).length, m.audit + 1, 'history: the open and every accepted action')
    }
  })
})
