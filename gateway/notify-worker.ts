/**
 * The webhook delivery worker: takes due deliveries from the PostgreSQL outbox (gateway migration 7, filled by
 * triggers in the transactions that write alert events and workflow actions), POSTs them signed, and records
 * every attempt. It runs in each gateway that has a database (PITWALL_NOTIFY_WORKER=off turns it off); several
 * gateways share the outbox safely:
 *
 * - Claiming is `FOR UPDATE SKIP LOCKED` plus a lease (`lease_until` = now + timeout + LEASE_MARGIN_MS): one
 *   worker holds a delivery while it sends, no transaction stays open across the HTTP call, and a worker that
 *   dies mid-send releases it when the lease runs out (the next worker sends it again with the same delivery
 *   id: at-least-once, receivers dedupe on `Pitwall-Delivery`).
 * - Order per alert: a delivery is claimable only when no earlier delivery of the same alert for the same
 *   subscription is still pending (`alert_seq`, numbered in commit order by the trigger). So open, update,
 *   acknowledge and clear of one alert reach a receiver in that order, while other alerts go on in parallel.
 * - Bounds: a delivery still failing `maxAgeMs` after its event is `expired`; a subscription with more than
 *   `maxPending` pending deliveries has its oldest `dropped`; both counted in pitwall_notify_deliveries_total.
 */
import { randomBytes } from 'node:crypto'
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type pg from 'pg'
import type { NotifyConfig } from './config.js'
import type { GatewayMetrics } from './metrics.js'
import { AddressPolicy, AddressRefused } from './notify-address.js'
import { NOTIFY_HEADERS, retryDelayMs, signDelivery } from './notify-sign.js'

/** Added to the HTTP timeout for the lease, so a slow database write after the attempt never lets a second worker in. */
export const LEASE_MARGIN_MS = 30_000
/** How often a worker expires, drops, deletes old rows and refreshes the backlog gauges. */
export const SWEEP_MS = 5_000
/** Longest error text kept per attempt. */
const ERROR_CHARS = 500

interface Claimed {
  id: string
  delivery_id: string
  subscription_id: string
  alert_id: string
  event: string
  payload: unknown
  attempts: number
  created_at: Date
  url: string
  secret: string
}

type AttemptResult = 'ok' | 'http_error' | 'timeout' | 'network_error'

const CLAIM_SQL = `WITH due AS (
  SELECT o.id FROM notify_outbox o
  WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND (o.lease_until IS NULL OR o.lease_until <= now())
    AND NOT EXISTS (SELECT 1 FROM notify_outbox p WHERE p.subscription_id = o.subscription_id AND p.alert_id = o.alert_id
      AND p.alert_seq < o.alert_seq AND p.status = 'pending')
  ORDER BY o.next_attempt_at, o.id
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED
)
UPDATE notify_outbox o SET attempts = o.attempts + 1, lease_until = now() + $2 * interval '1 millisecond', lease_owner = $3
FROM due, notify_subscriptions s
WHERE o.id = due.id AND s.id = o.subscription_id
RETURNING o.id, o.delivery_id, o.subscription_id, o.alert_id, o.event, o.payload, o.attempts, o.created_at, s.url, s.secret`

export interface NotifyWorkerOptions {
  pool: pg.Pool
  cfg: NotifyConfig
  metrics: GatewayMetrics
  log: FastifyBaseLogger
  /** The SSRF guard (notify-address.ts); default: one built from `cfg.allowPrivate`. */
  addresses?: AddressPolicy
  /** Names this worker in leases and the attempts log (default: a random id). */
  id?: string
}

/** One delivery worker; `start()` runs it until `stop()`. */
export class NotifyWorker {
  readonly id: string
  private readonly pool: pg.Pool
  private readonly cfg: NotifyConfig
  private readonly metrics: GatewayMetrics
  private readonly log: FastifyBaseLogger
  private readonly addresses: AddressPolicy
  private readonly inflight = new Set<Promise<void>>()
  private running = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private nextSweep = 0

  constructor(o: NotifyWorkerOptions) {
    this.pool = o.pool
    this.cfg = o.cfg
    this.metrics = o.metrics
    this.log = o.log
    this.addresses = o.addresses ?? new AddressPolicy(o.cfg.allowPrivate)
    this.id = o.id ?? `nw-${randomBytes(4).toString('hex')}`
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.loop = this.run()
  }

  /** Stops claiming, waits for the attempts in flight to be recorded. */
  async stop(): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loop
  }

  private async run(): Promise<void> {
    while (this.running) {
      const free = this.cfg.concurrency - this.inflight.size
      let claimed = 0
      // Claim in batches (half the slots free, or all): one claim query per delivery would cost more than the sends.
      if (free > 0 && (free >= Math.ceil(this.cfg.concurrency / 2) || this.inflight.size === 0)) {
        try {
          const rows = await this.claim(free)
          claimed = rows.length
          for (const r of rows) this.launch(r)
        } catch (err) {
          this.log.warn({ err }, 'notify: claiming deliveries failed; retrying')
        }
      }
      if (Date.now() >= this.nextSweep) {
        this.nextSweep = Date.now() + SWEEP_MS
        try {
          await this.sweep()
        } catch (err) {
          this.log.warn({ err }, 'notify: outbox sweep failed; retrying')
        }
      }
      // A full batch may mean more are due: claim again at once (while slots are free).
      if (this.running && !(claimed > 0 && claimed === free)) await this.idle(this.cfg.pollMs)
    }
    await Promise.allSettled([...this.inflight])
  }

  /** Sleeps up to `ms`, or until a delivery finishes (its successor may now be due) or stop() is called. */
  private async idle(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.wake = done
    })
    this.wake = undefined
  }

  private async claim(limit: number): Promise<Claimed[]> {
    const r = await this.pool.query<Claimed>(CLAIM_SQL, [limit, this.cfg.timeoutMs + LEASE_MARGIN_MS, this.id])
    return r.rows
  }

  private launch(row: Claimed): void {
    const p: Promise<void> = this.deliver(row)
      .catch((err: unknown) => {
        this.log.error(
          { err, deliveryId: row.delivery_id },
          'notify: recording a delivery attempt failed; the lease will expire and it is retried',
        )
      })
      .finally(() => {
        this.inflight.delete(p)
        this.wake?.()
      })
    this.inflight.add(p)
  }

  /** One attempt: POST, then record the attempt and the delivery's new state in one statement. */
  private async deliver(row: Claimed): Promise<void> {
    const body = JSON.stringify(row.payload)
    const ts = Math.floor(Date.now() / 1000)
    const started = new Date()
    let code: number | null = null
    let error: string | null = null
    let result: AttemptResult
    try {
      code = await postWebhook(
        row.url,
        body,
        {
          'content-type': 'application/json',
          'user-agent': 'pitwall-notify/1',
          [NOTIFY_HEADERS.delivery]: row.delivery_id,
          [NOTIFY_HEADERS.timestamp]: String(ts),
          [NOTIFY_HEADERS.signature]: signDelivery(row.secret, ts, body),
          [NOTIFY_HEADERS.event]: row.event,
          [NOTIFY_HEADERS.subscription]: row.subscription_id,
          [NOTIFY_HEADERS.attempt]: String(row.attempts),
        },
        this.cfg.timeoutMs,
        this.addresses,
      )
      result = code >= 200 && code < 300 ? 'ok' : 'http_error'
      if (result !== 'ok')
        error = code >= 300 && code < 400 ? `HTTP ${code} (redirects are not followed)` : `HTTP ${code}`
    } catch (err) {
      const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } }
      if (err instanceof AddressRefused) {
        result = 'network_error'
        error = err.message
      } else if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        result = 'timeout'
        error = `no response within ${this.cfg.timeoutMs} ms`
      } else {
        result = 'network_error'
        error = [e.message, e.cause?.code ?? e.cause?.message ?? e.code].filter((x) => x).join(': ')
      }
    }
    const durationMs = Date.now() - started.getTime()
    this.metrics.notifyAttempts.inc({ result })
    this.metrics.notifyAttemptSeconds.observe({ result }, durationMs / 1000)
    const ok = result === 'ok'
    const delay = retryDelayMs(row.attempts, this.cfg.backoffBaseMs, this.cfg.backoffMaxMs)
    const expired = !ok && Date.now() + delay - row.created_at.getTime() >= this.cfg.maxAgeMs
    const status = ok ? 'delivered' : expired ? 'expired' : 'pending'
    // One statement (atomic, one round trip): the attempt goes into the log, and the delivery changes only while
    // this worker still holds the lease of this attempt (a worker that lost it logs its attempt but does not
    // change the delivery the next holder owns).
    const u = await this.pool.query(
      `WITH logged AS (
        INSERT INTO notify_attempts (outbox_id, attempt, started_at, duration_ms, status_code, error, outcome, worker)
        SELECT $1, $7, $8, $9, $4, $5, $10, $2 WHERE EXISTS (SELECT 1 FROM notify_outbox WHERE id = $1)
        ON CONFLICT DO NOTHING)
      UPDATE notify_outbox SET status = $3, lease_until = NULL, lease_owner = NULL, last_status_code = $4, last_error = $5,
          next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $6 * interval '1 millisecond' ELSE next_attempt_at END,
          finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
        WHERE id = $1 AND lease_owner = $2 AND attempts = $7 AND status = 'pending'`,
      [
        row.id,
        this.id,
        status,
        code,
        error?.slice(0, ERROR_CHARS) ?? null,
        delay,
        row.attempts,
        started,
        durationMs,
        ok ? 'delivered' : 'failed',
      ],
    )
    if (u.rowCount !== 1) return
    if (ok) {
      this.metrics.notifyDeliveries.inc({ outcome: 'delivered' })
      this.metrics.notifyLatencySeconds.observe((Date.now() - row.created_at.getTime()) / 1000)
    } else if (expired) {
      this.metrics.notifyDeliveries.inc({ outcome: 'expired' })
      this.log.warn(
        { deliveryId: row.delivery_id, subscription: row.subscription_id, attempts: row.attempts },
        'notify: delivery expired (max age reached)',
      )
    }
  }

  /** Expiry of deliveries never attempted in time, the backlog bound, retention, and the backlog gauges. */
  async sweep(): Promise<void> {
    const free = '(lease_until IS NULL OR lease_until <= now())'
    const expired = await this.pool.query(
      `UPDATE notify_outbox SET status = 'expired', finished_at = now(), last_error = coalesce(last_error, 'max age reached before any attempt')
      WHERE status = 'pending' AND created_at <= now() - $1 * interval '1 millisecond' AND ${free}`,
      [this.cfg.maxAgeMs],
    )
    if (expired.rowCount) this.metrics.notifyDeliveries.inc({ outcome: 'expired' }, expired.rowCount)
    await this.pool.query(`DELETE FROM notify_outbox o WHERE status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM notify_subscriptions s WHERE s.id = o.subscription_id)`)
    const over = await this.pool.query<{ subscription_id: string; n: string }>(
      "SELECT subscription_id, count(*) AS n FROM notify_outbox WHERE status = 'pending' GROUP BY subscription_id HAVING count(*) > $1",
      [this.cfg.maxPending],
    )
    for (const s of over.rows) {
      const dropped = await this.pool.query(
        `UPDATE notify_outbox o SET status = 'dropped', finished_at = now(), last_error = 'backlog over ' || $2 || ' pending deliveries'
        FROM (SELECT id FROM notify_outbox WHERE subscription_id = $1 AND status = 'pending' ORDER BY id DESC OFFSET $2) old
        WHERE o.id = old.id AND o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until <= now())`,
        [s.subscription_id, this.cfg.maxPending],
      )
      if (dropped.rowCount) {
        this.metrics.notifyDeliveries.inc({ outcome: 'dropped' }, dropped.rowCount)
        this.log.warn(
          { subscription: s.subscription_id, dropped: dropped.rowCount, pending: Number(s.n) },
          'notify: backlog bound reached; oldest deliveries dropped',
        )
      }
    }
    await this.pool.query(
      `DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox WHERE status <> 'pending'
      AND finished_at < now() - $1 * interval '1 millisecond' LIMIT 10000)`,
      [this.cfg.retentionMs],
    )
    const g = await this.pool.query<{ n: string; age: number | null }>(
      "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age FROM notify_outbox WHERE status = 'pending'",
    )
    this.metrics.notifyPending.set(Number(g.rows[0]?.n ?? 0))
    this.metrics.notifyOldestPendingSeconds.set(Math.max(0, g.rows[0]?.age ?? 0))
  }
}

/**
 * POSTs one delivery and returns the status once the response headers are in; the reply body is not read (only
 * the status counts, and a receiver that trickles it must not hold a slot). node:http rather than fetch, for its
 * `lookup` hook: the SSRF guard judges the address the socket connects to (an IP literal, which is never looked
 * up, before connecting). Redirects are not followed (a 3xx is a failed attempt).
 */
async function postWebhook(
  url: string,
  body: string,
  headers: OutgoingHttpHeaders,
  timeoutMs: number,
  addresses: AddressPolicy,
): Promise<number> {
  const u = new URL(url)
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  if (isIP(host) !== 0) addresses.check(host)
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<number>((resolve, reject) => {
    const req = send(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        lookup: addresses.lookup,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        resolve(res.statusCode ?? 0)
        res.destroy()
      },
    )
    req.once('error', reject)
    req.end(body)
  })
}
