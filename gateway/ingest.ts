/**
 * Ingest plugin: `POST /v1/readings` (any entity), `POST /v1/sensors/:id/readings` and
 * `POST /v1/vehicles/:vin/telemetry` (one entity, from the path). JSON arrays or NDJSON. A reply is sent only
 * after JetStream acknowledged every accepted item (acknowledged = durable), or 503 when it did not in time.
 * A fleet/site-scoped person (scope.ts) ingests only for entities in their scope: other items are rejected
 * (`GW_ERR_OUT_OF_SCOPE`), and a device route naming such an entity is a 404, as on the query routes.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import { BatchPublisher, partitionOf, readingMsgId, SiteRouter, tlmSubject, type EntityKind } from '../actors/mod.js'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import { routeLabel, type GatewayMetrics } from './metrics.js'
import { assertVisible, scopeOf, visibleEntities } from './scope.js'
import {
  Batch,
  errorReplies,
  IngestReply,
  SensorParams,
  VehicleParams,
  type ErrorReplyT,
  type IngestReplyT,
} from './schemas.js'
import { MalformedLine, validateItem, vinProblem, type ItemRejection, type ValidItem } from './validate.js'

export interface IngestOptions {
  nc: NatsConnection
  cfg: GatewayConfig
  /** Profile name -> entity kind, for validating `profile`. */
  profiles: ReadonlyMap<string, EntityKind>
  metrics: GatewayMetrics
  /** Registry, for people's fleet/site scoping; without it nobody is scoped. */
  pool?: pg.Pool
}

export const NDJSON = 'application/x-ndjson'
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,100}$/

/** NDJSON: one reading per line; a line that is not JSON is rejected alone (its index is its non-blank line). */
export function parseNdjson(body: string): unknown[] {
  const items: unknown[] = []
  const lines = body.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim()
    if (line === '') continue
    try {
      items.push(JSON.parse(line))
    } catch (err) {
      items.push(new MalformedLine(`line ${i + 1} is not JSON: ${err instanceof Error ? err.message : String(err)}`))
    }
  }
  return items
}

export const ingestPlugin: FastifyPluginAsyncTypebox<IngestOptions> = async (app, opts) => {
  const { cfg, profiles, metrics, pool } = opts
  const publisher = new BatchPublisher(opts.nc)
  // Two sites: each reading goes to the site that owns its partition now (docs/sites.md, "Home sites").
  const router = new SiteRouter(opts.nc, cfg.runtime)
  await router.start()
  app.addHook('onClose', async () => {
    router.stop()
    publisher.close()
  })

  // Same body limit as JSON; registered inside this plugin so only ingest routes accept NDJSON.
  // Fastify parses text/plain by default; readings are JSON or NDJSON only, so anything else is a 415.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser(NDJSON, { parseAs: 'string', bodyLimit: cfg.bodyLimitBytes }, (_req, body, done) => {
    done(null, parseNdjson(body as string))
  })

  // Content-Type parameters (charset) and Content-Encoding are checked for every route by input.ts.

  async function ingest(
    req: FastifyRequest,
    reply: FastifyReply,
    items: unknown[],
    entity?: { kind: EntityKind; id: string },
  ): Promise<IngestReplyT | ErrorReplyT> {
    if (items.length === 0) throw new GatewayError('GW_ERR_BATCH_EMPTY', 'the batch has no readings')
    if (items.length > cfg.maxItemsPerBatch) {
      throw new GatewayError(
        'GW_ERR_BATCH_TOO_LARGE',
        `a batch holds at most ${cfg.maxItemsPerBatch} readings, got ${items.length}`,
      )
    }
    const keyHeader = req.headers['idempotency-key']
    if (keyHeader !== undefined && (typeof keyHeader !== 'string' || !IDEMPOTENCY_KEY.test(keyHeader))) {
      throw new GatewayError(
        'GW_ERR_IDEMPOTENCY_KEY_INVALID',
        'Idempotency-Key must be one header of 1..100 printable ASCII characters without spaces',
        { item: 'headers.idempotency-key' },
      )
    }
    // A device credential writes its own entity only (device routes already checked the path).
    const device = req.principal?.type === 'device' ? req.principal : undefined
    // Message ids are scoped so no client can suppress another's readings in JetStream's duplicate window: a rid
    // by its entity, an Idempotency-Key by who sent it (principal type and credential/key/subject id).
    const keyScope = req.principal ? `${req.principal.type}:${req.principal.id}` : 'anon'
    const now = Date.now()
    const rejected: ItemRejection[] = []
    const valid: { index: number; item: ValidItem; msgID: string | undefined }[] = []
    const rids = new Set<string>()
    const checked = items.map((raw) => validateItem(raw, cfg, now, profiles, entity))
    // A scoped person: which of the batch's entities they see, in one query (device routes checked the path
    // before the body was read, so every item there is visible).
    const scope = pool && !entity ? scopeOf(req.principal) : null
    const visible =
      scope && pool
        ? await visibleEntities(
            pool,
            scope,
            checked.flatMap((r) => (r.ok ? [r.item] : [])),
          )
        : undefined
    checked.forEach((r, index) => {
      if (!r.ok) {
        rejected.push({ index, code: r.code, message: r.message })
        return
      }
      if (device && (r.item.kind !== device.kind || r.item.id !== device.entity)) {
        rejected.push({
          index,
          code: 'GW_ERR_FORBIDDEN_ENTITY',
          message: `this credential writes ${device.kind} ${device.entity} only`,
        })
        return
      }
      if (visible && !visible.has(`${r.item.kind}.${r.item.id}`)) {
        // The same answer for another fleet's entity and an unregistered one: the scope does not reveal which.
        rejected.push({
          index,
          code: 'GW_ERR_OUT_OF_SCOPE',
          message: `no ${r.item.kind} ${r.item.id} in your fleets/sites`,
        })
        return
      }
      const rid = r.item.reading.rid
      const ridID = rid === undefined ? undefined : readingMsgId(r.item.kind, r.item.id, rid)
      if (ridID !== undefined) {
        // JetStream would silently drop the second; say so instead.
        if (rids.has(ridID)) {
          rejected.push({
            index,
            code: 'GW_ERR_RID_DUPLICATE',
            message: `rid ${rid as string} appears earlier in this batch for ${r.item.kind} ${r.item.id}`,
          })
          return
        }
        rids.add(ridID)
      }
      valid.push({
        index,
        item: r.item,
        msgID: ridID ?? (keyHeader === undefined ? undefined : `${keyScope}:${keyHeader}:${index}`),
      })
    })
    const route = routeLabel(req)
    for (const r of rejected) metrics.rejected.inc({ route, code: r.code })
    if (valid.length === 0) {
      reply.code(400)
      return {
        code: 'GW_ERR_BATCH_REJECTED',
        message: 'every reading of the batch was rejected',
        accepted: 0,
        rejected,
      }
    }
    const P = cfg.runtime.partitions
    const results = await publisher.publish(
      valid.map(({ item, msgID }) => {
        const p = partitionOf(item.kind, item.id, P)
        return {
          subject: tlmSubject(router.siteFor(p), p, item.kind, item.id),
          data: JSON.stringify(item.reading),
          msgID,
        }
      }),
      cfg.publishTimeoutMs,
    )
    let duplicates = 0
    let failed = 0
    let firstFailure: string | undefined
    for (const r of results) {
      metrics.publishSeconds.observe(r.seconds)
      if (r.ok) {
        if (r.duplicate) duplicates++
      } else {
        failed++
        firstFailure ??= r.error
      }
    }
    if (failed > 0) {
      // Some items may be stored; a retry with the same rid / Idempotency-Key is deduplicated by JetStream.
      throw new GatewayError(
        'GW_ERR_UNAVAILABLE',
        `${failed} of ${valid.length} readings were not acknowledged by JetStream (${firstFailure ?? 'unknown'}); retry with the same rid or Idempotency-Key`,
      )
    }
    metrics.accepted.inc({ route }, valid.length)
    return { accepted: valid.length, duplicates, rejected }
  }

  const replies = { 200: IngestReply, ...errorReplies }

  app.post(
    '/v1/readings',
    { config: { access: 'ingest' }, schema: { body: Batch, response: replies } },
    async (req, reply) => await ingest(req, reply, req.body),
  )

  /** Device routes, before the body is read: a scoped person naming an entity outside the scope gets 404. */
  const pathInScope =
    (kind: EntityKind, param: string) =>
    async (req: FastifyRequest): Promise<void> => {
      const scope = pool ? scopeOf(req.principal) : null
      const id = (req.params as Record<string, unknown>)[param]
      if (scope && pool && typeof id === 'string') await assertVisible(pool, scope, kind, id, `params.${param}`)
    }

  app.post(
    '/v1/sensors/:id/readings',
    {
      config: { access: 'ingest', entityParam: { kind: 'sensor', param: 'id' } },
      schema: { params: SensorParams, body: Batch, response: replies },
      preParsing: pathInScope('sensor', 'id'),
    },
    async (req, reply) => await ingest(req, reply, req.body, { kind: 'sensor', id: req.params.id }),
  )

  const vehicleInScope = pathInScope('vehicle', 'vin')
  app.post(
    '/v1/vehicles/:vin/telemetry',
    {
      config: { access: 'ingest', entityParam: { kind: 'vehicle', param: 'vin' } },
      schema: { params: VehicleParams, body: Batch, response: replies },
      // Before the body is read (and after auth): a bad VIN is reported as such whatever the body holds, and
      // costs no parsing.
      preParsing: async (req) => {
        const vin = (req.params as { vin?: unknown }).vin
        const problem = typeof vin === 'string' ? vinProblem(vin) : 'missing'
        if (problem) throw new GatewayError('GW_ERR_VIN_INVALID', `invalid VIN: ${problem}`, { item: 'params.vin' })
        await vehicleInScope(req)
      },
    },
    async (req, reply) => await ingest(req, reply, req.body, { kind: 'vehicle', id: req.params.vin }),
  )
}
