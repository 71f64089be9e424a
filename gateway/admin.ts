/**
 * Admin plugin: device credentials. `POST /v1/admin/devices/:kind/:id/credentials` issues one (the token is in
 * this reply only), `DELETE /v1/admin/credentials/:credId` revokes one. An entity may hold several active
 * credentials: issue the new one, roll it out, then revoke the old one.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type pg from 'pg'
import type { DeviceCredentials } from './auth.js'
import { issueCredential, revokeCredential } from './db.js'
import { GatewayError } from './errors.js'
import { CredentialParams, CredIdParams, errorReplies, IssuedCredential, NoContent } from './schemas.js'

export interface AdminOptions {
  pool: pg.Pool
  devices: DeviceCredentials
}

export const adminPlugin: FastifyPluginAsyncTypebox<AdminOptions> = async (app, { pool, devices }) => {
  app.post(
    '/v1/admin/devices/:kind/:id/credentials',
    {
      config: { access: 'admin' },
      schema: { params: CredentialParams, response: { 201: IssuedCredential, ...errorReplies } },
    },
    async (req, reply) => {
      const cred = await issueCredential(pool, req.params.kind, req.params.id)
      req.log.info(
        { credId: cred.id, kind: cred.kind, entity: cred.entity, by: req.principal?.id },
        'device credential issued',
      )
      void reply.code(201).header('cache-control', 'no-store')
      return cred
    },
  )

  app.delete(
    '/v1/admin/credentials/:credId',
    {
      config: { access: 'admin' },
      schema: { params: CredIdParams, response: { 204: NoContent, ...errorReplies } },
    },
    async (req, reply) => {
      if (!(await revokeCredential(pool, req.params.credId))) {
        throw new GatewayError('GW_ERR_CREDENTIAL_UNKNOWN', `no active credential ${req.params.credId}`, {
          item: 'params.credId',
        })
      }
      devices.forget(req.params.credId)
      req.log.info({ credId: req.params.credId, by: req.principal?.id }, 'device credential revoked')
      void reply.code(204)
    },
  )
}
