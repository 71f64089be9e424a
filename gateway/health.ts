/** Health plugin: `/healthz` (the process serves requests) and `/readyz` (NATS connected, stream TLM reachable). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import { errorReplies, HealthReply } from './schemas.js'

export interface HealthOptions {
  nc: NatsConnection
  cfg: GatewayConfig
}

export const healthPlugin: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { nc, cfg }) => {
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
    return { status: 'ready', checks: { nats: 'ok', jetstream: 'ok' } }
  })
}
