/**
 * Health plugin: `/healthz` (the process serves requests) and `/readyz` (NATS connected, stream TLM reachable,
 * and PostgreSQL answering when the gateway has a database).
 *
 * Readiness rule (gateway/README.md, "Readiness"): NATS closed is not ready at once. The JetStream and
 * PostgreSQL checks each run within `readyTimeoutMs`; a dependency that has never answered is not ready, and
 * one that answered before is reported not ready only after `readyFailureThreshold` consecutive failed checks.
 * One slow answer (a JetStream leader change or a worker takeover on a busy machine) must not take a healthy
 * gateway out of its load balancer; a dependency that stays down does, a few probes later. Concurrent probes
 * share one check in flight, so several load balancers probing together count one failure, not several.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import { errorReplies, HealthReply } from './schemas.js'

export interface HealthOptions {
  nc: NatsConnection
  cfg: GatewayConfig
  pool?: pg.Pool
}

/** `p` within `ms`, or throws. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** The outcome of one probe of one dependency. */
export interface CheckOutcome {
  /** Report the gateway not ready. */
  down: boolean
  /** `ok`, or `failing (n/threshold): reason` while a failure streak is tolerated. */
  status: string
  error?: unknown
}

/**
 * One dependency's readiness: consecutive failures since its last success, tolerated up to `threshold - 1`
 * once it has succeeded; a check already running is shared by concurrent probes.
 */
export class ReadinessCheck {
  private failures = 0
  private succeeded = false
  private inflight: Promise<CheckOutcome> | undefined

  constructor(
    private readonly run: () => Promise<void>,
    private readonly threshold: number,
  ) {}

  probe(): Promise<CheckOutcome> {
    this.inflight ??= this.once().finally(() => {
      this.inflight = undefined
    })
    return this.inflight
  }

  private async once(): Promise<CheckOutcome> {
    try {
      await this.run()
      this.failures = 0
      this.succeeded = true
      return { down: false, status: 'ok' }
    } catch (err) {
      this.failures++
      const reason = err instanceof Error ? err.message : String(err)
      const down = !this.succeeded || this.failures >= this.threshold
      return { down, status: `failing (${this.failures}/${this.threshold}): ${reason.slice(0, 160)}`, error: err }
    }
  }
}

export const healthPlugin: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { nc, cfg, pool }) => {
  let jsm: Promise<JetStreamManager> | undefined
  const ms = cfg.readyTimeoutMs
  const checks: [name: string, what: string, check: ReadinessCheck][] = [
    [
      'jetstream',
      `JetStream stream ${cfg.runtime.streams.tlm} unreachable`,
      new ReadinessCheck(async () => {
        try {
          // The manager is created once (it checks the JetStream API); a failure forgets it so the next probe retries.
          jsm ??= jetstreamManager(nc, { timeout: ms })
          await within(
            (async () => {
              await (await jsm).streams.info(cfg.runtime.streams.tlm)
            })(),
            ms,
          )
        } catch (err) {
          jsm = undefined
          throw err
        }
      }, cfg.readyFailureThreshold),
    ],
  ]
  if (pool) {
    checks.push([
      'postgres',
      'PostgreSQL unreachable',
      new ReadinessCheck(async () => {
        await within(pool.query('SELECT 1'), ms)
      }, cfg.readyFailureThreshold),
    ])
  }

  app.get(
    '/healthz',
    { config: { access: 'public', rateLimit: false }, schema: { response: { 200: HealthReply } } },
    async () => ({ status: 'ok' }),
  )

  app.get(
    '/readyz',
    { config: { access: 'public', rateLimit: false }, schema: { response: { 200: HealthReply, ...errorReplies } } },
    async () => {
      // A closed connection is a local fact, not a slow answer: not ready at once (it never reopens).
      if (nc.isClosed()) throw new GatewayError('GW_ERR_NOT_READY', 'NATS connection is closed', { item: 'nats' })
      const outcomes = await Promise.all(
        checks.map(async ([name, what, check]) => ({ name, what, o: await check.probe() })),
      )
      const result: Record<string, string> = { nats: 'ok' }
      for (const { name, what, o } of outcomes) {
        if (o.down) {
          const reason = o.error instanceof Error ? o.error.message : String(o.error)
          throw new GatewayError('GW_ERR_NOT_READY', `${what}: ${reason}`, { item: name, cause: o.error })
        }
        result[name] = o.status
      }
      const degraded = outcomes.some(({ o }) => o.status !== 'ok')
      return { status: degraded ? 'degraded' : 'ready', checks: result }
    },
  )
}
