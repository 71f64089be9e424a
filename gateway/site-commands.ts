/**
 * Failover and failback from the console (issue 15): `POST /v1/sites/:site/failover|failback`, for admins. The
 * gateway relays the command to the site's controller (the URL it already knows for `GET /v1/sites`, from
 * `PITWALL_GATEWAY_SITE_STATUS_URLS`: same origin, path `/failover` or `/failback`), which runs the code of
 * `pitwall site failover|failback` and reports progress in its `/status` (`operation`). The gateway answers with
 * the operation the controller started (202), and audits every request, accepted or not, with who, when and why
 * (`site_command_audit`, gateway migration 8; also logged).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type pg from 'pg'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import { errorReplies, ErrorReply } from './schemas.js'

export interface SiteCommandOptions {
  cfg: GatewayConfig
  /** Where the audit goes (without a database: the log only). */
  pool?: pg.Pool
}

const COMMAND_TIMEOUT_MS = 5_000
const COMMANDS = ['failover', 'failback'] as const
type Command = (typeof COMMANDS)[number]
type Outcome = 'accepted' | 'busy' | 'refused' | 'unreachable'

const Operation = Type.Object(
  {
    id: Type.String(),
    command: Type.String(),
    by: Type.String(),
    reason: Type.String(),
    startedAt: Type.Integer(),
    state: Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
    lines: Type.Array(Type.String()),
  },
  {
    additionalProperties: true,
    description: 'the operation the controller started; follow it in GET /v1/sites (status.operation)',
  },
)
const Params = Type.Object(
  { site: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9][a-z0-9_-]*$' }) },
  { additionalProperties: false },
)
const Body = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 500,
      pattern: '\\S',
      description: 'why: recorded with who and when',
    }),
    confirm: Type.Literal(true, { description: 'must be true: the command moves partitions between sites' }),
  },
  { additionalProperties: false },
)

/** Who asks: the JWT subject, `key:<id>`, `dev` with auth off. */
function actorOf(req: FastifyRequest): { actor: string; type: string } {
  const p = req.principal
  if (!p || p.type === 'dev') return { actor: 'dev', type: 'dev' }
  return p.type === 'key' ? { actor: `key:${p.id}`, type: 'key' } : { actor: p.id, type: p.type }
}

/** The controller's command URL: the status URL's origin and `/<command>`. */
export const commandUrl = (statusUrl: string, command: Command): string => new URL(`/${command}`, statusUrl).href

async function audit(
  pool: pg.Pool | undefined,
  log: FastifyBaseLogger,
  row: {
    site: string
    command: Command
    actor: string
    type: string
    reason: string
    outcome: Outcome
    operation?: string
    detail?: string
  },
): Promise<void> {
  log.info({ siteCommand: row }, `site ${row.command} at ${row.site} by ${row.actor}: ${row.outcome}`)
  if (!pool) return
  await pool.query(
    'INSERT INTO site_command_audit (site, command, actor, actor_type, reason, outcome, operation, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [
      row.site,
      row.command,
      row.actor,
      row.type,
      row.reason,
      row.outcome,
      row.operation ?? null,
      row.detail?.slice(0, 1_000) ?? null,
    ],
  )
}

/** POSTs the command to the controller: its reply status and JSON body, or undefined when it cannot be reached. */
async function relay(
  url: string,
  token: string | undefined,
  body: { by: string; reason: string },
): Promise<{ status: number; body: Record<string, unknown> } | { error: string }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'error',
      signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    })
    const text = await res.text()
    let parsed: Record<string, unknown> = {}
    try {
      parsed = JSON.parse(text) as Record<string, unknown>
    } catch {
      parsed = { message: text.slice(0, 200) }
    }
    return { status: res.status, body: parsed }
  } catch (err) {
    const e = err as { message?: string; cause?: { code?: string } }
    return { error: [e.message, e.cause?.code].filter((x) => x).join(': ') }
  }
}

export const siteCommandPlugin: FastifyPluginAsyncTypebox<SiteCommandOptions> = async (app, { cfg, pool }) => {
  for (const command of COMMANDS) {
    app.post(
      `/v1/sites/:site/${command}`,
      {
        config: { access: 'admin' },
        schema: { params: Params, body: Body, response: { 202: Operation, 409: ErrorReply, ...errorReplies } },
      },
      async (req, reply) => {
        const { site } = req.params
        const statusUrl = cfg.siteStatusUrls[site]
        if (statusUrl === undefined)
          throw new GatewayError(
            'GW_ERR_SITE_UNKNOWN',
            `no controller for site ${JSON.stringify(site)} (PITWALL_GATEWAY_SITE_STATUS_URLS)`,
            { item: 'params.site' },
          )
        const who = actorOf(req)
        const reason = req.body.reason.trim()
        const r = await relay(commandUrl(statusUrl, command), cfg.siteCommandToken, { by: who.actor, reason })
        const row = { site, command, actor: who.actor, type: who.type, reason }
        if ('error' in r) {
          await audit(pool, req.log, { ...row, outcome: 'unreachable', detail: r.error })
          throw new GatewayError(
            'GW_ERR_SITE_UNREACHABLE',
            `the controller of site ${site} cannot be reached: ${r.error}`,
          )
        }
        if (r.status === 202) {
          await audit(pool, req.log, { ...row, outcome: 'accepted', operation: String(r.body.id) })
          void reply.code(202)
          return r.body as never
        }
        const message = String(r.body.message ?? `HTTP ${r.status}`)
        await audit(pool, req.log, {
          ...row,
          outcome: r.status === 409 ? 'busy' : 'refused',
          detail: `${r.status} ${message}`,
        })
        if (r.status === 409) throw new GatewayError('GW_ERR_SITE_BUSY', `site ${site}: ${message}`)
        throw new GatewayError(
          'GW_ERR_SITE_UNREACHABLE',
          `the controller of site ${site} refused the command (${r.status}: ${message})`,
        )
      },
    )
  }
}
