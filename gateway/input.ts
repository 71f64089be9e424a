/**
 * Request-level input checks every route shares, as root hooks: the body's media type parameters and encoding
 * (before the body is read), and NUL characters in query strings (before the schemas run). Path parameters
 * need no such check: every one has a pattern (ids, credential ids) or the VIN check, which refuse NUL.
 * NUL matters because PostgreSQL text cannot hold it: a query parameter or cursor carrying one would otherwise
 * reach a query and fail there as a 500 (SQLSTATE 22021). Bodies are checked by the routes that store them
 * (the registry, with `nulPath`); ingest bodies go to JetStream, not to PostgreSQL.
 */
import type { FastifyInstance } from 'fastify'
import { GatewayError } from './errors.js'

/** Methods whose requests carry no body the gateway reads: their Content-Type is not checked. */
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * What is wrong with a Content-Type's parameters, or undefined: a parameter named twice (`charset=utf-8;
 * charset=latin1`: parsers disagree on which one wins, so neither is believed), or a charset other than UTF-8.
 * The media type itself is matched by the content type parsers (415 for anything else).
 */
export function contentTypeProblem(contentType: string): string | undefined {
  const seen = new Set<string>()
  for (const param of contentType.split(';').slice(1)) {
    if (param.trim() === '') continue
    const eq = param.indexOf('=')
    const name = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase()
    if (seen.has(name)) return `Content-Type parameter ${JSON.stringify(name.slice(0, 32))} appears more than once`
    seen.add(name)
    if (name !== 'charset') continue
    const charset = (eq < 0 ? '' : param.slice(eq + 1))
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase()
    if (charset !== 'utf-8' && charset !== 'utf8')
      return `charset ${JSON.stringify(charset.slice(0, 32))} is not supported: bodies are UTF-8`
  }
  return undefined
}

/** The path (`body.name`, `body.tags[2]`) of the first string holding a NUL in a parsed JSON value, if any. */
export function nulPath(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = nulPath(value[i], `${path}[${i}]`)
      if (p !== undefined) return p
    }
    return undefined
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const p = k.includes('\u0000') ? `${path}.${k.replace(/\u0000/g, '\\u0000')}` : nulPath(v, `${path}.${k}`)
      if (p !== undefined) return p
    }
  }
  return undefined
}

/** Installs the checks on the root instance; call after the auth hooks so a stranger learns nothing from them. */
export function installInputChecks(app: FastifyInstance): void {
  // Before the body is read: Fastify does not decode Content-Encoding, so a gzip body would be parsed as text
  // (garbage) and a plain body claiming gzip would be accepted under a false label; and only UTF-8 is decoded.
  app.addHook('preParsing', async (req) => {
    if (BODYLESS.has(req.method)) return
    const enc = req.headers['content-encoding']
    if (enc !== undefined && (typeof enc !== 'string' || enc.trim().toLowerCase() !== 'identity')) {
      throw new GatewayError(
        'GW_ERR_ENCODING_UNSUPPORTED',
        'Content-Encoding is not supported: send the body uncompressed (identity)',
        { item: 'headers.content-encoding' },
      )
    }
    const ct = req.headers['content-type']
    const problem = ct === undefined ? undefined : contentTypeProblem(ct)
    if (problem !== undefined) throw new GatewayError('GW_ERR_MEDIA_TYPE', problem, { item: 'headers.content-type' })
  })

  app.addHook('preValidation', async (req) => {
    const query = req.query
    if (typeof query === 'object' && query !== null) {
      for (const [name, v] of Object.entries(query)) {
        const values: unknown[] = Array.isArray(v) ? v : [v]
        if (name.includes('\u0000') || values.some((x) => typeof x === 'string' && x.includes('\u0000'))) {
          throw new GatewayError(
            'GW_ERR_QUERY_INVALID',
            `query parameter ${JSON.stringify(name.replace(/\u0000/g, ''))} contains a NUL character`,
            { item: `querystring.${name.replace(/\u0000/g, '')}` },
          )
        }
      }
    }
  })
}
