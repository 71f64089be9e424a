/** TypeBox schemas shared by the gateway's routes: they drive validation, serialisation and (later) OpenAPI. */
import { Type, type Static } from '@sinclair/typebox'
import { ID_PATTERN } from '../actors/mod.js'

export const ErrorReply = Type.Object({
  code: Type.String(),
  message: Type.String(),
  item: Type.Optional(Type.String()),
  // present only on GW_ERR_BATCH_REJECTED: the same shape as a 200 ingest reply
  accepted: Type.Optional(Type.Integer()),
  rejected: Type.Optional(
    Type.Array(Type.Object({ index: Type.Integer(), code: Type.String(), message: Type.String() })),
  ),
})
export type ErrorReplyT = Static<typeof ErrorReply>

export const Rejection = Type.Object({ index: Type.Integer(), code: Type.String(), message: Type.String() })

export const IngestReply = Type.Object({
  /** Items JetStream acknowledged (including retries it recognised as duplicates). */
  accepted: Type.Integer(),
  /** Of the accepted, how many JetStream had already stored (same message id within its dedup window). */
  duplicates: Type.Integer(),
  rejected: Type.Array(Rejection),
})
export type IngestReplyT = Static<typeof IngestReply>

/**
 * The body is any array: each item is validated on its own (validate.ts) so one bad item cannot fail the batch.
 * The item shape is documented here for clients and OpenAPI.
 */
export const ReadingItem = Type.Object({
  kind: Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')]),
  id: Type.String({ pattern: ID_PATTERN.source }),
  ts: Type.Integer({ description: 'event time, ms since the Unix epoch' }),
  fields: Type.Record(Type.String(), Type.Union([Type.Number(), Type.Boolean(), Type.String()])),
  profile: Type.Optional(Type.String()),
  loc: Type.Optional(Type.Object({ lat: Type.Number(), lon: Type.Number() })),
  rid: Type.Optional(Type.String()),
})
export const Batch = Type.Array(Type.Unknown(), { description: 'readings; each item is validated separately' })

export const errorReplies = {
  400: ErrorReply,
  401: ErrorReply,
  403: ErrorReply,
  404: ErrorReply,
  429: ErrorReply,
  413: ErrorReply,
  415: ErrorReply,
  500: ErrorReply,
  502: ErrorReply,
  503: ErrorReply,
}

export const EntityParams = Type.Object({
  kind: Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')]),
  id: Type.String({ pattern: ID_PATTERN.source }),
})
export const SensorParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN.source }) })
/** The VIN itself is checked in a preValidation hook (check digit), so the route gets a specific code. */
export const VehicleParams = Type.Object({ vin: Type.String() })

export const LiveStateReply = Type.Object({
  source: Type.Union([Type.Literal('live'), Type.Literal('snapshot')]),
  kind: Type.String(),
  id: Type.String(),
  profile: Type.String(),
  lastSeq: Type.Integer(),
  watermark: Type.Union([Type.Number(), Type.Null()]),
  state: Type.Unknown(),
})

export const HealthReply = Type.Object({
  status: Type.String(),
  checks: Type.Optional(Type.Record(Type.String(), Type.String())),
})

export const CredentialParams = Type.Object({
  kind: Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')]),
  id: Type.String({ pattern: ID_PATTERN.source }),
})
export const CredIdParams = Type.Object({ credId: Type.String({ pattern: '^dc_[0-9a-f]{24}$' }) })
export const IssuedCredential = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  /** `Authorization: Device <token>`; shown once, only its hash is stored. */
  token: Type.String(),
  createdAt: Type.String(),
})
export const NoContent = Type.Null({ description: 'revoked' })
