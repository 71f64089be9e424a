/**
 * A typed client of the gateway, generated from the committed OpenAPI document (gateway/openapi.json) in the
 * build: `openapi-typescript` writes `openapi.d.ts` (paths, operations, components) and `openapi-fetch` makes
 * the calls, so a request or reply that does not fit the document does not compile. The gateway's integration
 * tests call the server through it (test/integration/gateway-client.test.ts), with every reply checked against the
 * document's schema for its status (`contractChecker`), so the document cannot drift from the server.
 *
 *   const api = createPitwallClient('https://gw.example.com', { bearer: token })
 *   const { data, error } = await api.GET('/v1/alerts', { params: { query: { state: 'open' } } })
 */
import createClient, { type Client, type ClientOptions, type Middleware } from 'openapi-fetch'
import type { components, operations, paths } from './openapi.js'

export type { components, operations, paths }
/** An alert of `GET /v1/alerts`, one variant per alert type. */
export type Alert = components['schemas']['Alert']
/** `GET /v1/entities/{kind}/{id}/state`, one variant per profile. */
export type LiveState = components['schemas']['LiveState']
/** One `data:` of the live feed. */
export type LiveOutput = components['schemas']['LiveOutput']
export type PitwallClient = Client<paths>

/** Who calls: a person's JWT, a service key, or a device credential (auth.ts). */
export type Credential = { bearer: string } | { apiKey: string } | { device: string }

export function credentialHeaders(c: Credential | undefined): Record<string, string> {
  if (c === undefined) return {}
  if ('bearer' in c) return { authorization: `Bearer ${c.bearer}` }
  if ('apiKey' in c) return { 'x-api-key': c.apiKey }
  return { authorization: `Device ${c.device}` }
}

/** A client of the gateway at `baseUrl` (e.g. `http://127.0.0.1:8080`), sending `credential` on every call. */
export function createPitwallClient(
  baseUrl: string,
  credential?: Credential,
  options: Omit<ClientOptions, 'baseUrl'> & { middleware?: Middleware[] } = {},
): PitwallClient {
  const { middleware = [], headers, ...rest } = options
  const client = createClient<paths>({
    ...rest,
    baseUrl,
    headers: { ...credentialHeaders(credential), ...(headers as Record<string, string> | undefined) },
  })
  for (const m of middleware) client.use(m)
  return client
}
