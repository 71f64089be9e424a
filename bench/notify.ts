/**
 * Webhook notifications: (A) what the outbox triggers add to the projector's alert event inserts, and (B) how
 * fast delivery workers drain the outbox into a local receiver that answers 200 at once. Real PostgreSQL (a
 * fresh database on PGHOST/PGPORT, dropped afterwards); no NATS. Figures go to gateway/README.md.
 *
 *   npm run build && node dist/bench/notify.js [events=5000] [deliveries=2000]
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import pino from 'pino'
import { migrate as migrateProjection } from '../projector/mod.js'
import { compileNotify, GatewayMetrics, migrate as migrateGateway, NotifyWorker } from '../gateway/mod.js'
import { createTestDb } from '../test/helpers/pg.js'

const EVENTS = Number(process.argv[2] ?? 5_000)
const DELIVERIES = Number(process.argv[3] ?? 2_000)

/** N alert events in one multi-row insert, as the projector's writer does: N/10 alerts of 10 events each. */
const insertEvents = (
  run: number,
): string => `INSERT INTO alert_events (output_id, alert_id, kind, entity, profile, type, severity, event, event_at,
  started_at, value, threshold, explanation, details, seq, site, partition, token)
SELECT 'r${run}-' || i, 'sensor:s' || (i % 50) || ':temp_high:r${run}-' || (i / 10), 'sensor', 's' || (i % 50), 'environment', 'temp_high',
  CASE WHEN i % 3 = 0 THEN 'critical' ELSE 'warning' END, CASE WHEN i % 10 = 0 THEN 'open' ELSE 'update' END, now(), now(), 31, 30, 'x',
  '{"feature": "temperature"}'::jsonb, i, 'a', 0, 1
FROM generate_series(1, $1::int) AS i`

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint()
  await f()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

async function main(): Promise<void> {
  const db = await createTestDb()
  const pool = new pg.Pool({ connectionString: db.url, max: 8 })
  try {
    await migrateGateway(pool)
    await migrateProjection(pool)
    await pool.query("INSERT INTO customers (id, name) VALUES ('acme', 'Acme')")
    await pool.query(
      "INSERT INTO sensors (id, type, profile, site, customer_id) SELECT 's' || i, 'temp', 'environment', 'a', 'acme' FROM generate_series(0, 49) i",
    )

    // (A) trigger overhead
    let run = 0
    const perEvent = async (label: string): Promise<void> => {
      const ms: number[] = []
      for (let k = 0; k < 3; k++) ms.push(await timed(() => pool.query(insertEvents(++run), [EVENTS])))
      const rows = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM notify_outbox')).rows[0]?.n ?? 0)
      ms.sort((a, b) => a - b)
      console.log(
        `${label}: ${EVENTS} events in ${ms.map((m) => m.toFixed(0)).join(' / ')} ms (${((1000 * (ms[1] ?? 0)) / EVENTS).toFixed(1)} µs/event, median); outbox rows so far ${rows}`,
      )
    }
    await perEvent('no subscriptions')
    for (let i = 0; i < 10; i++) {
      await pool.query(
        "INSERT INTO notify_subscriptions (id, name, url, secret, created_by, severities, fleets) VALUES ($1, $1, 'http://127.0.0.1:9/', 's', 'bench', $2, $3)",
        [`sub${i}`, i % 2 === 0 ? ['critical'] : null, i % 3 === 0 ? ['acme'] : null],
      )
    }
    await perEvent('10 subscriptions (filters select ~2/3 of them per event)')
    await pool.query('TRUNCATE notify_outbox CASCADE')
    await pool.query('DELETE FROM notify_subscriptions')

    // (B) delivery throughput
    let received = 0
    const server = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        received++
        res.writeHead(200).end()
      })
    })
    await new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', resolve)
    })
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    const log = pino({ level: 'warn' })
    for (const workers of [1, 2]) {
      await pool.query('TRUNCATE notify_outbox CASCADE')
      await pool.query('DELETE FROM notify_subscriptions')
      await pool.query(
        "INSERT INTO notify_subscriptions (id, name, url, secret, created_by) VALUES ('bulk', 'bulk', $1, 's', 'bench')",
        [url],
      )
      await pool.query(
        insertEvents(++run)
          .replace("CASE WHEN i % 10 = 0 THEN 'open' ELSE 'update' END", "'open'")
          .replace('(i / 10)', 'i'),
        [DELIVERIES],
      )
      received = 0
      const cfg = compileNotify({ pollMs: 50 })
      const ws = Array.from(
        { length: workers },
        (_, i) => new NotifyWorker({ pool, cfg, metrics: new GatewayMetrics({}), log, id: `b${i}` }),
      )
      const ms = await timed(async () => {
        for (const w of ws) w.start()
        for (;;) {
          const n = Number(
            (await pool.query<{ n: string }>("SELECT count(*) AS n FROM notify_outbox WHERE status = 'pending'"))
              .rows[0]?.n ?? 0,
          )
          if (n === 0) break
          await new Promise((r) => setTimeout(r, 20))
        }
      })
      await Promise.all(ws.map((w) => w.stop()))
      console.log(
        `delivery, ${workers} worker(s), concurrency ${cfg.concurrency} each: ${DELIVERIES} deliveries in ${ms.toFixed(0)} ms = ${((DELIVERIES / ms) * 1000).toFixed(0)}/s (receiver got ${received})`,
      )
    }
    server.close()
  } finally {
    await pool.end()
    await db.drop()
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
