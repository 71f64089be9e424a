/**
 * Webhook notifications through a one-hour receiver outage (issue 15: "nothing lost when a receiver is down for an
 * hour"). What is real: PostgreSQL with the gateway's outbox, triggers and delivery log; nats-server and the
 * projector writing the alert events; the people's acknowledge and comment through the API; two delivery workers
 * (gateway/notify-worker.ts) with the DEFAULT timeout, backoff (1 s doubling to 5 min, equal jitter), max age
 * (24 h) and backlog bound; an HTTP receiver on loopback whose port is closed (connection refused) for the hour,
 * then answers 200. What is simulated: the passing of the hour. A test clock advances by shifting every stored
 * time of the outbox and its attempt log back by the step (`created_at`, `next_attempt_at`, `finished_at`,
 * `started_at`), which is what the worker sees when the wall clock moves on (it reads due times and ages from
 * those columns against `now()`); the clock only advances when no attempt is due or in flight, and then to the
 * next attempt due (or the next scheduled event), so every attempt the schedule asks for is made, at its time.
 * The poll interval is 20 ms (instead of 1 s) so the test does not wait on it.
 *
 * Checked: nothing arrives while down; after it, every delivery arrives, accepted once per delivery id, in order
 * per alert (open, update, acknowledge, comment, close; and an alert whose open was delivered before the outage
 * gets its update and close after it); none expired or dropped; each delivery's attempts are spaced as the
 * documented schedule says (gateway/README.md: min(max, base x 2^(n-1)), equal jitter); everything is delivered
 * within one maximum backoff (5 min) of the receiver's return.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { Projector } from '../../projector/mod.js'
import type { AlertBody, AlertState, Output } from '../../actors/types.js'
import { compileNotify, GatewayMetrics, NOTIFY_DEFAULTS, NotifyWorker, verifyDelivery } from '../../gateway/mod.js'
import { output, subjectOf } from '../projector-fixtures.js'
import { bearer, setupGateway } from '../helpers/gateway.js'

type Json = Record<string, unknown>
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const MIN = 60_000
const HOUR = 60 * MIN

/** A webhook receiver on a fixed loopback port: `down` closes the port (connection refused), `up` answers 200. */
class Receiver {
  readonly arrivals: {
    deliveryId: string
    event: string
    body: string
    headers: IncomingMessage['headers']
    at: number
    json: Json
  }[] = []
  private server: Server | undefined
  port = 0
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`
  }
  async up(): Promise<void> {
    if (this.server) return
    const s = createServer((req, res) => {
      void this.handle(req, res)
    })
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(this.port, '127.0.0.1', () => {
        resolve()
      })
    })
    this.port = (s.address() as AddressInfo).port
    this.server = s
  }
  async down(): Promise<void> {
    const s = this.server
    this.server = undefined
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => {
      s.close(() => {
        resolve()
      })
    })
  }
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString()
    this.arrivals.push({
      deliveryId: String(req.headers['pitwall-delivery']),
      event: String(req.headers['pitwall-event']),
      body,
      headers: req.headers,
      at: Date.now(),
      json: JSON.parse(body) as Json,
    })
    res.writeHead(200).end()
  }
}

let seq = 0
function alert(entity: string, opened: number, state: AlertState, at: number): Output<'alert'> {
  const body: AlertBody = {
    alertId: `sensor:${entity}:temp_high:${opened}`,
    type: 'temp_high',
    severity: 'warning',
    state,
    start: opened,
    value: 40,
    threshold: 30,
    explanation: `temp_high on ${entity}`,
    details: { feature: 'temperature' },
    ...(state === 'close' ? { end: at } : {}),
  }
  const s = ++seq
  return output('alert', entity, `${body.alertId}:${state}:${s}`, body, {
    seq: s,
    kind: 'sensor',
    profile: 'environment',
    ts: at,
  })
}

t.test(
  'a receiver down for an hour: nothing lost, once per delivery id, in order per alert',
  { timeout: 300_000 },
  async (t) => {
    const g = await setupGateway(t, { gw: { notify: { worker: false, allowPrivate: '127.0.0.1/32' } } })
    const { app, nc } = g
    if (!g.db) throw new Error('no database')
    const pool = new pg.Pool({ connectionString: g.db.url, max: 6 })
    t.teardown(() => pool.end())
    const admin = bearer('admin')
    const op = bearer('operator')
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
      return { status: res.statusCode, body: res.body === '' ? {} : res.json<Json>() }
    }
    const sensors = ['s0', 's1', 's2', 's3', 's4']
    for (const id of sensors)
      t.equal(
        (await call('POST', '/v1/sensors', admin, { id, type: 'temp', profile: 'environment', site: 'a' })).status,
        201,
      )

    const js = jetstream(nc)
    const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
    await projector.start()
    t.teardown(() => projector.stop())
    let published = 0
    const publish = async (o: Output): Promise<void> => {
      await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
      published++
      for (const end = Date.now() + 20_000; projector.stats().applied < published; await sleep(10))
        if (Date.now() > end) throw new Error('projector')
    }

    const rx = new Receiver()
    await rx.up()
    t.teardown(() => rx.down())
    const sub = await call('POST', '/v1/notifications/subscriptions', admin, { name: 'rx', url: rx.url })
    t.equal(sub.status, 201)
    const secret = sub.body.secret as string

    // The default delivery settings; only the poll interval is short (see the header).
    const cfg = compileNotify({ pollMs: 20, allowPrivate: ['127.0.0.1/32'] })
    t.match(cfg, {
      timeoutMs: NOTIFY_DEFAULTS.timeoutMs,
      backoffBaseMs: NOTIFY_DEFAULTS.backoffBaseMs,
      backoffMaxMs: NOTIFY_DEFAULTS.backoffMaxMs,
      maxAgeMs: NOTIFY_DEFAULTS.maxAgeMs,
      maxPending: NOTIFY_DEFAULTS.maxPending,
    })
    const metrics = new GatewayMetrics({ service: 'test' })
    const workers = ['w1', 'w2'].map((id) => new NotifyWorker({ pool, cfg, metrics, log: app.log, id }))
    for (const w of workers) w.start()
    t.teardown(() => Promise.all(workers.map((w) => w.stop())))

    // The test clock: simulated time = real time since the outage began + every step taken.
    let offset = 0
    let origin = Date.now()
    const sim = (): number => Date.now() - origin + offset
    const advance = async (ms: number): Promise<void> => {
      const c = await pool.connect()
      try {
        await c.query('BEGIN')
        await c.query(
          `UPDATE notify_outbox SET created_at = created_at - $1 * interval '1 millisecond',
        finished_at = finished_at - $1 * interval '1 millisecond',
        next_attempt_at = CASE WHEN status = 'pending' AND (lease_until IS NULL OR lease_until <= now()) THEN next_attempt_at - $1 * interval '1 millisecond' ELSE next_attempt_at END`,
          [ms],
        )
        await c.query("UPDATE notify_attempts SET started_at = started_at - $1 * interval '1 millisecond'", [ms])
        await c.query('COMMIT')
      } finally {
        c.release()
      }
      offset += ms
    }
    // The head of each alert's queue: a pending delivery with no earlier pending one of the same alert (what a worker may claim).
    const HEADS = `FROM notify_outbox o WHERE o.status = 'pending' AND NOT EXISTS (SELECT 1 FROM notify_outbox p WHERE p.subscription_id = o.subscription_id
    AND p.alert_id = o.alert_id AND p.alert_seq < o.alert_seq AND p.status = 'pending')`
    /** Waits until no attempt is due or in flight; then returns ms to the next attempt due (null: none pending). */
    const settle = async (): Promise<number | null> => {
      for (const end = Date.now() + 30_000; ; await sleep(10)) {
        const r = (
          await pool.query<{ busy: number; next: number | null }>(`SELECT
          (SELECT count(*)::int FROM notify_outbox WHERE status = 'pending' AND lease_until > now())
          + (SELECT count(*)::int ${HEADS} AND o.next_attempt_at <= now() AND (o.lease_until IS NULL OR o.lease_until <= now())) AS busy,
          (SELECT ceil(extract(epoch FROM min(o.next_attempt_at) - now()) * 1000)::float8 ${HEADS}) AS next`)
        ).rows[0]
        if (r && r.busy === 0) return r.next
        if (Date.now() > end) throw new Error('the workers did not make the due attempts')
      }
    }

    // Before the outage: alert x (sensor s0) opens and its open is delivered.
    const base = Date.now() - 2 * HOUR
    await publish(alert('s0', base, 'open', base))
    for (const end = Date.now() + 10_000; rx.arrivals.length < 1; await sleep(20))
      if (Date.now() > end) throw new Error('first delivery')
    t.equal(rx.arrivals[0]?.event, 'open', "before the outage: x's open delivered")
    const before = rx.arrivals.length

    // The outage: the receiver's port closes at simulated 0 and opens again at 60 min. Meanwhile x is updated (20 min)
    // and closed (40 min), and four alerts a..d (s1..s4) open, are updated, acknowledged and commented, and close.
    await rx.down()
    origin = Date.now()
    offset = 0
    type Ev = { at: number; what: string; run: () => Promise<unknown> }
    const events: Ev[] = [
      { at: 20 * MIN, what: 'x update', run: () => publish(alert('s0', base, 'update', base + 20 * MIN)) },
      { at: 40 * MIN, what: 'x close', run: () => publish(alert('s0', base, 'close', base + 40 * MIN)) },
    ]
    const alertIds: Record<string, string> = { s0: `sensor:s0:temp_high:${base}` }
    for (const [k, e] of ['s1', 's2', 's3', 's4'].entries()) {
      const opened = base + (2 + 12 * k) * MIN
      const id = `sensor:${e}:temp_high:${opened}`
      alertIds[e] = id
      const at = (2 + 12 * k) * MIN
      events.push(
        { at, what: `${e} open`, run: () => publish(alert(e, opened, 'open', opened)) },
        { at: at + 3 * MIN, what: `${e} update`, run: () => publish(alert(e, opened, 'update', opened + 3 * MIN)) },
        {
          at: at + 6 * MIN,
          what: `${e} acknowledge`,
          run: async () =>
            t.equal(
              (await call('POST', `/v1/alerts/${encodeURIComponent(id)}/ack`, op)).status,
              200,
              `${e} acknowledged`,
            ),
        },
        {
          at: at + 8 * MIN,
          what: `${e} comment`,
          run: async () =>
            t.equal(
              (await call('POST', `/v1/alerts/${encodeURIComponent(id)}/comment`, op, { comment: `note ${e}` })).status,
              200,
            ),
        },
        { at: at + 11 * MIN, what: `${e} close`, run: () => publish(alert(e, opened, 'close', opened + 11 * MIN)) },
      )
    }
    events.sort((x, y) => x.at - y.at)
    let steps = 0
    for (let i = 0; sim() < HOUR;) {
      while (i < events.length && (events[i] as Ev).at <= sim()) await (events[i++] as Ev).run()
      const due = await settle()
      const step = Math.min(due ?? Infinity, i < events.length ? (events[i] as Ev).at - sim() : Infinity, HOUR - sim())
      if (step > 0) await advance(step)
      steps++
    }
    t.equal(rx.arrivals.length, before, 'nothing arrives while the receiver is down')
    const during = (
      await pool.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM notify_outbox GROUP BY status ORDER BY status',
      )
    ).rows
    t.same(
      during,
      [
        { status: 'delivered', n: 1 },
        { status: 'pending', n: 2 + 4 * 5 },
      ],
      'after an hour: every event of the outage still pending, none expired or dropped',
    )
    const attemptsDuring =
      (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notify_attempts WHERE outcome = 'failed'"))
        .rows[0]?.n ?? 0

    // The receiver is back: deliveries drain, the clock still stepping to each due attempt.
    await rx.up()
    const back = sim()
    for (;;) {
      const due = await settle()
      if (due === null) break
      if (due > 0) await advance(due)
    }
    const drainMs = sim() - back
    await sleep(200)
    await Promise.all(workers.map((w) => w.stop()))
    t.comment(
      `simulated ${(back / MIN).toFixed(1)} min of outage in ${steps} clock steps (${((Date.now() - origin) / 1000).toFixed(1)} s real), ${attemptsDuring} refused attempts; drained ${(drainMs / 1000).toFixed(1)} s (simulated) after the receiver came back`,
    )

    const rows = (
      await pool.query<{
        delivery_id: string
        status: string
        alert_id: string
        event: string
        attempts: number
        id: string
      }>('SELECT id, delivery_id, status, alert_id, event, attempts FROM notify_outbox ORDER BY id')
    ).rows
    t.equal(rows.length, 3 + 4 * 5, 'one delivery per event')
    t.same(
      rows.filter((r) => r.status !== 'delivered').map((r) => `${r.event} ${r.alert_id}: ${r.status}`),
      [],
      'every delivery delivered: none expired, none dropped',
    )
    t.ok(
      drainMs <= cfg.backoffMaxMs + 5_000,
      `all delivered ${(drainMs / 1000).toFixed(1)} s after the receiver's return (bound: one maximum backoff, ${cfg.backoffMaxMs / 1000} s)`,
    )
    const text = await metrics.registry.metrics()
    t.notMatch(
      text,
      /pitwall_notify_deliveries_total\{outcome="(expired|dropped)"/,
      'the metrics count nothing expired or dropped',
    )

    // Receiver side: dedupe on the delivery id; every delivery id accepted, each arrival's signature verifies.
    const accepted = rx.arrivals.filter((a, i) => rx.arrivals.findIndex((b) => b.deliveryId === a.deliveryId) === i)
    t.same(
      accepted.map((a) => a.deliveryId).sort(),
      rows.map((r) => r.delivery_id).sort(),
      `every delivery id accepted (${rows.length})`,
    )
    t.equal(rx.arrivals.length, accepted.length, 'and each arrived once (nothing was in flight when the port opened)')
    const bad = rx.arrivals.filter(
      (a) =>
        verifyDelivery(
          secret,
          { timestamp: a.headers['pitwall-timestamp'] as string, signature: a.headers['pitwall-signature'] as string },
          a.body,
          Math.floor(a.at / 1000),
        ) !== null,
    )
    t.same(
      bad.map((a) => a.deliveryId),
      [],
      "every arrival signed, with the attempt's timestamp",
    )
    const log = (
      await pool.query<{
        delivery_id: string
        delivered: number
      }>(`SELECT o.delivery_id, count(*) FILTER (WHERE a.outcome = 'delivered')::int AS delivered
    FROM notify_outbox o JOIN notify_attempts a ON a.outbox_id = o.id GROUP BY o.delivery_id`)
    ).rows
    t.same(
      log.filter((r) => r.delivered !== 1).map((r) => r.delivery_id),
      [],
      'exactly one delivered attempt per delivery in the log',
    )

    // Order per alert: the documented event order, sequence numbers increasing.
    for (const [e, id] of Object.entries(alertIds)) {
      const got = accepted.filter((a) => (a.json.alert as Json).alertId === id)
      t.same(
        got.map((a) => a.event),
        e === 's0' ? ['open', 'update', 'close'] : ['open', 'update', 'acknowledge', 'comment', 'close'],
        `${e}: in order across the outage`,
      )
      const seqs = got.map((a) => a.json.sequence as number)
      t.same(
        seqs,
        [...seqs].sort((x, y) => x - y),
        `${e}: sequence numbers increase`,
      )
    }

    // The schedule: the attempts of each delivery that waited out the outage, spaced as documented (in simulated time).
    const attempts = (
      await pool.query<{ outbox_id: string; attempt: number; at: number; outcome: string; error: string | null }>(
        'SELECT outbox_id, attempt, (extract(epoch FROM started_at) * 1000)::float8 AS at, outcome, error FROM notify_attempts ORDER BY outbox_id, attempt',
      )
    ).rows
    const byDelivery = new Map<string, typeof attempts>()
    for (const a of attempts) byDelivery.set(a.outbox_id, [...(byDelivery.get(a.outbox_id) ?? []), a])
    const off: string[] = []
    let longest = 0
    for (const [id, list] of byDelivery) {
      longest = Math.max(longest, list.length)
      for (let n = 1; n < list.length; n++) {
        const exp = Math.min(cfg.backoffMaxMs, cfg.backoffBaseMs * 2 ** (n - 1))
        const gap = (list[n] as { at: number }).at - (list[n - 1] as { at: number }).at
        // The delay is exp/2..exp; the gap adds the attempt itself and the poll (20 ms), and the test clock's own work.
        if (gap < exp / 2 - 5 || gap > exp + 1_500)
          off.push(`${id} attempt ${n}->${n + 1}: ${gap} ms, schedule ${exp / 2}..${exp}`)
      }
      const failed = list.filter((a) => a.outcome === 'failed')
      if (failed.some((a) => !/ECONNREFUSED/.test(String(a.error))))
        off.push(`${id}: a failure other than the closed port`)
    }
    t.same(
      off,
      [],
      `every retry at its scheduled delay (${attempts.length} attempts; the most for one delivery: ${longest})`,
    )
    // a's open waited the whole outage from 2 min: its attempt count is what the schedule allows in 58 minutes.
    const aOpen = rows.find((r) => r.alert_id === alertIds.s1 && r.event === 'open')
    const aLog = byDelivery.get(String(aOpen?.id)) ?? []
    let lo = 0
    let hi = 0
    for (let n = 1, tLo = 0, tHi = 0; ; n++) {
      const exp = Math.min(cfg.backoffMaxMs, cfg.backoffBaseMs * 2 ** (n - 1))
      tLo += exp / 2
      tHi += exp
      if (tLo <= 58 * MIN) hi = n
      if (tHi <= 58 * MIN) lo = n
      if (tLo > 58 * MIN) break
    }
    const failedA = aLog.filter((a) => a.outcome === 'failed').length
    // 1 + n attempts fit in the 58 minutes when the first n delays sum to at most 58 min: n = lo with every delay at
    // its longest, n = hi at its shortest (lo, not lo + 1, at the low end: the attempts themselves take a few ms).
    t.ok(
      failedA >= lo && failedA <= hi + 1,
      `a's open: ${failedA} refused attempts over the outage (the schedule allows ${lo + 1}..${hi + 1}), then delivered`,
    )
    const d = await call('GET', `/v1/notifications/deliveries/${String(aOpen?.delivery_id)}`, op)
    t.match(d.body, { status: 'delivered', attempts: aLog.length, lastStatusCode: 200 }, 'the delivery log shows it')
  },
)
