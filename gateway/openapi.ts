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

const DESCRIPTION = `Ingest, queries, live feed and registry of a pitwall site. Every error reply is
\`{code, message, item?}\` with a \`GW_ERR_*\` code; see gateway/README.md for the table (${Object.keys(GW_ERR).length} codes).
Credentials: \`Authorization: Bearer <JWT>\` (people), \`X-API-Key\` (services), \`Authorization: Device <credential>\` (devices).`

const UI_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"

/** Registers the document generator; call before any route is added. */
export function installOpenApi(app: FastifyInstance, version: string): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'pitwall gateway', version, description: DESCRIPTION },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A person: claims sub, role (viewer, operator, admin), optional fleets/sites; HS256 with the gateway\'s shared secret, or RS256/ES256 issued by the configured identity provider (its JWKS, iss and aud checked)' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          device: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'Device <credId>.<secret>' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }, { device: [] }],
    },
    // HEAD twins of GET routes are not listed; everything else is.
    hideUntagged: false,
  })
}

/** `GET /openapi.json` and the UI at `/docs`; every route here is public and not rate limited. */
export const openApiPlugin: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), access: 'public', rateLimit: false }
  })
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/docs')) void reply.header('content-security-policy', UI_CSP).header('cache-control', 'public, max-age=300')
    return payload
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: false })
}
