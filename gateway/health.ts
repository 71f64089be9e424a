/**
 * Health plugin: `/healthz` (the process serves requests) and `/readyz` (NATS connected, stream TLM reachable,
 * and PostgreSQL answering when the gateway has a database), each check bounded by `queryTimeoutMs`.
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

/** `SELECT 1` within `ms`, or throws. */
async function pingPg(pool: pg.Pool, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      pool.query('SELECT 1'),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms) }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export const healthPlugin: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { nc, cfg, pool }) => {
  let jsm: Promise<JetStreamManager> | undefined

  app.get('/healthz', { config: { access: 'public', rateLimit: false }, schema: { response: { 200: HealthReply } } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { config: { access: 'public', rateLimit: false }, schema: { response: { 200: HealthReply, ...errorReplies } } }, async () => {
    if (nc.isClosed()) throw new GatewayError('GW_ERR_NOT_READY', 'NATS connection is closed', { item: 'nats' })
    try {
      // The manager is created once (it checks the JetStream API); a failure forgets it so the next probe retries.
      jsm ??= jetstreamManager(nc, { timeout: cfg.queryTimeoutMs })
      await (await jsm).streams.info(cfg.runtime.streams.tlm)
    } catch (err) {
      jsm = undefined
      throw new GatewayError('GW_ERR_NOT_READY', `JetStream stream ${cfg.runtime.streams.tlm} unreachable: ${err instanceof Error ? err.message : String(err)}`, { item: 'jetstream', cause: err })
    }
    const checks: Record<string, string> = { nats: 'ok', jetstream: 'ok' }
    if (pool) {
      try {
        await pingPg(pool, cfg.queryTimeoutMs)
      } catch (err) {
        throw new GatewayError('GW_ERR_NOT_READY', `PostgreSQL unreachable: ${err instanceof Error ? err.message : String(err)}`, { item: 'postgres', cause: err })
      }
      checks.postgres = 'ok'
    }
    return { status: 'ready', checks }
  })
}
