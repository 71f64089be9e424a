/** State plugin: `GET /v1/entities/:kind/:id/state`, the live state of an actor via the runtime's query. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import { buildProfiles, queryDeps, queryEntity } from '../actors/mod.js'
import type { GatewayConfig } from './config.js'
import { GatewayError, toGatewayError } from './errors.js'
import { assertVisible, scopeOf } from './scope.js'
import { EntityParams, errorReplies, LiveStateReply } from './schemas.js'

type QueryDeps = Awaited<ReturnType<typeof queryDeps>>

export interface StateOptions {
  nc: NatsConnection
  cfg: GatewayConfig
  profiles: Parameters<typeof buildProfiles>[0]
  /** Prepared query dependencies (tests); opened lazily from the state bucket otherwise. */
  query?: QueryDeps
  /** The registry, for people's fleet/site scoping (scope.ts); without it nobody is scoped. */
  pool?: pg.Pool
}

export const statePlugin: FastifyPluginAsyncTypebox<StateOptions> = async (app, opts) => {
  // Opened on first use, not at start: the gateway must come up (and report not ready) without the bucket.
  let deps: Promise<QueryDeps> | undefined = opts.query ? Promise.resolve(opts.query) : undefined

  app.get(
    '/v1/entities/:kind/:id/state',
    {
      config: { access: 'read' },
      schema: { params: EntityParams, response: { 200: LiveStateReply, ...errorReplies } },
    },
    async (req) => {
      if (opts.pool) await assertVisible(opts.pool, scopeOf(req.principal), req.params.kind, req.params.id)
      let d: QueryDeps
      try {
        deps ??= queryDeps(opts.nc, opts.cfg.runtime, buildProfiles(opts.profiles, opts.cfg.runtime))
        d = await deps
      } catch (err) {
        deps = undefined // retried on the next request
        throw new GatewayError(
          'GW_ERR_UNAVAILABLE',
          `state store ${opts.cfg.runtime.streams.stateBucket} unreachable`,
          { cause: err },
        )
      }
      try {
        return await queryEntity(d, req.params.kind, req.params.id, opts.cfg.queryTimeoutMs)
      } catch (err) {
        throw toGatewayError(err)
      }
    },
  )
}
