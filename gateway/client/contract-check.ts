/**
 * Checks replies against the OpenAPI document: the schema of the operation's status (and content type), with
 * Ajv in OpenAPI 3.0 mode (`nullable`). Used as openapi-fetch middleware in tests and usable by integrators
 * who want to verify a gateway against the document they built on.
 */
import { readFileSync } from 'node:fs'
import { Ajv, type ValidateFunction } from 'ajv'
import type { Middleware } from 'openapi-fetch'

interface Media {
  schema?: unknown
}
interface Op {
  responses?: Record<string, { content?: Record<string, Media> }>
}
export interface Doc {
  paths: Record<string, Record<string, Op>>
}

/** One checked reply; a failed one keeps the start of its body (for the failure message). */
export interface CheckResult {
  method: string
  path: string
  status: number
  ok: boolean
  errors: string
  body?: string
}

export class ContractChecker {
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false })
  private readonly cache = new Map<string, ValidateFunction | null>()
  readonly results: CheckResult[] = []
  constructor(readonly doc: Doc) {}

  static fromFile(file: string): ContractChecker {
    return new ContractChecker(JSON.parse(readFileSync(file, 'utf8')) as Doc)
  }

  /** The validator of `method path status` (JSON replies), or null when the document lists no JSON body for it. */
  validator(method: string, path: string, status: number): ValidateFunction | null | undefined {
    const key = `${method} ${path} ${status}`
    if (this.cache.has(key)) return this.cache.get(key)
    const op = this.doc.paths[path]?.[method.toLowerCase()]
    if (op === undefined) return undefined
    const res = op.responses?.[String(status)]
    if (res === undefined) return undefined
    const schema = res.content?.['application/json']?.schema
    const v = schema === undefined ? null : this.ajv.compile(schema as object)
    this.cache.set(key, v)
    return v
  }

  /** Checks one reply; a status the operation does not list is a failure too. */
  check(method: string, path: string, status: number, body: unknown): CheckResult {
    const v = this.validator(method, path, status)
    let r: CheckResult
    if (v === undefined)
      r = { method, path, status, ok: false, errors: `status ${status} is not in the document for ${method} ${path}` }
    else if (v === null) r = { method, path, status, ok: true, errors: '' }
    else {
      const ok = v(body)
      r = ok
        ? { method, path, status, ok, errors: '' }
        : {
            method,
            path,
            status,
            ok,
            errors: this.ajv.errorsText(v.errors, { dataVar: 'reply' }),
            body: JSON.stringify(body).slice(0, 4000),
          }
    }
    this.results.push(r)
    return r
  }

  /** openapi-fetch middleware: every reply is checked (and recorded in `results`). */
  middleware(): Middleware {
    return {
      onResponse: async ({ request, response, schemaPath }) => {
        const text = await response.clone().text()
        let body: unknown = text
        if ((response.headers.get('content-type') ?? '').startsWith('application/json') && text !== '')
          body = JSON.parse(text) as unknown
        this.check(request.method, schemaPath, response.status, body)
        return undefined
      },
    }
  }
}
