/**
 * OpenAPI: @fastify/swagger builds an OpenAPI 3 document from every route's TypeBox schema (registered at the
 * root before the feature plugins, so its onRoute hook sees them all), served at `GET /openapi.json`; the
 * Swagger UI (@fastify/swagger-ui) at `/docs`. Both are public: the document describes the API, no data. The
 * UI is the one HTML page the gateway serves, so its replies get a CSP that lets it load its own scripts and
 * styles instead of the API's `default-src 'none'`.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { GW_ERR } from './errors.js'
import type { Access } from './auth.js'
import {
  DOC_BODIES,
  DOC_REPLIES,
  AlertDoc,
  LiveStateDoc,
  errorCodes,
  errorResponses,
  LiveOutput,
  OPERATIONS,
  securityOf,
  TAGS,
  type Tag,
} from './contract.js'
import { ErrorReply } from './schemas.js'

const DESCRIPTION = `Ingest, queries, live feed and registry of a pitwall site. Every error reply is
\`{code, message, item?}\` with a \`GW_ERR_*\` code; see gateway/README.md for the table (${Object.keys(GW_ERR).length} codes).
Credentials: \`Authorization: Bearer <JWT>\` (people), \`X-API-Key\` (services), \`Authorization: Device <credential>\` (devices);
each operation lists the ones it accepts (none for the public ones). Compatibility within /v1: gateway/README.md,
"Versioning and compatibility".`

const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"

/** Registers the document generator; call before any route is added. */
export function installOpenApi(app: FastifyInstance, version: string): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'pitwall gateway', version, description: DESCRIPTION },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              "A person: claims sub, role (viewer, operator, admin), optional fleets/sites; HS256 with the gateway's shared secret, or RS256/ES256 issued by the configured identity provider (its JWKS, iss and aud checked)",
          },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          device: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'Device <credId>.<secret>' },
        },
      },
      tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    },
    // HEAD twins of GET routes are not listed; everything else is.
    hideUntagged: false,
    transform: ({ schema, url, route }) => ({
      schema: documentRoute(route.method, url, schema as RouteSchema | undefined, route.config?.access ?? 'admin'),
      url,
    }),
    // Output shapes no route replies with directly (the live feed's `data:`), for generated clients.
    transformObject: (documentObject) => {
      const doc = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject
      const components = (doc as { components?: { schemas?: Record<string, unknown> } }).components
      // Named, so generated clients can import them: components['schemas']['Alert'] and so on.
      if (components)
        components.schemas = {
          ...components.schemas,
          Alert: toOpenApi30(AlertDoc),
          LiveState: toOpenApi30(LiveStateDoc),
          LiveOutput: toOpenApi30(LiveOutput),
        }
      return doc
    },
  })
}

type RouteSchema = {
  hide?: boolean
  params?: unknown
  querystring?: unknown
  body?: unknown
  response?: Record<string, unknown>
} & Record<string, unknown>

/** The document's operation for one route (contract.ts): id, tag, summary, security, errors per status, typed replies, examples. */
export function documentRoute(
  method: string | string[],
  url: string,
  schema: RouteSchema | undefined,
  access: Access,
): RouteSchema {
  if (schema?.hide === true) return schema
  const m = [method].flat()[0] ?? 'GET'
  const key = `${m} ${url.replace(/:([A-Za-z]+)/g, '{$1}')}`
  // A route without an entry still gets a document (serving /openapi.json must not fail), but with no summary
  // and an undeclared tag, which test/integration/gateway-openapi.test.ts refuses: add the route to OPERATIONS (contract.ts).
  const op = OPERATIONS[key] ?? {
    id: key.toLowerCase().replace(/[^a-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase()),
    tag: 'undocumented' as Tag,
    summary: '',
  }
  const codes = errorCodes(
    access,
    {
      params: schema?.params !== undefined,
      query: schema?.querystring !== undefined,
      body: schema?.body !== undefined,
      database: false,
    },
    op,
  )
  const response: Record<string, unknown> = {}
  const own = DOC_REPLIES[key] ?? {}
  let exampled = false
  for (const [status, s] of Object.entries(schema?.response ?? {})) {
    if (Number(status) >= 400) continue
    const reply = (own[Number(status)] ?? s) as Record<string, unknown>
    const ex = !exampled && op.reply !== undefined && Number(status) < 300 ? { examples: [op.reply] } : {}
    if (ex.examples) exampled = true
    response[status] = { ...reply, ...ex }
  }
  if (key === 'GET /metrics') response['200'] = { type: 'string', description: 'Prometheus text exposition format' }
  Object.assign(response, errorResponses(codes, ErrorReply))
  const tag: Tag = op.tag
  return {
    ...schema,
    operationId: op.id,
    tags: [tag],
    ...(op.summary === '' ? {} : { summary: op.summary }),
    security: securityOf(access),
    ...(schema?.body !== undefined
      ? {
          body: {
            ...(DOC_BODIES[key] ?? (schema.body as object)),
            ...(op.request !== undefined ? { examples: [op.request] } : {}),
          },
        }
      : {}),
    response,
  }
}

/** A TypeBox schema as an OpenAPI 3.0 schema object (no `$id`, `const` -> `enum`, null unions -> `nullable`). */
function toOpenApi30(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toOpenApi30)
  if (s === null || typeof s !== 'object') return s
  const o = s as Record<string, unknown>
  const anyOf = o.anyOf as Record<string, unknown>[] | undefined
  if (anyOf && anyOf.some((x) => x.type === 'null')) {
    const rest = anyOf.filter((x) => x.type !== 'null')
    if (rest.length === 1) return { ...(toOpenApi30(rest[0]) as object), nullable: true }
  }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    if (k === '$id') continue
    if (k === 'const') out.enum = [v]
    else out[k] = toOpenApi30(v)
  }
  if ('const' in o && out.type === undefined) out.type = typeof o.const
  return out
}

/** `GET /openapi.json` and the UI at `/docs`; every route here is public and not rate limited. */
export const openApiPlugin: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), access: 'public', rateLimit: false }
  })
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/docs'))
      void reply.header('content-security-policy', UI_CSP).header('cache-control', 'public, max-age=300')
    return payload
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: false })
}
