/**
 * The operator console's server side (issue 15): the built single-page app under `/console/` (files of
 * `dist/console`, built by `npm run build` from `console/`), its settings (`/console/config.json`), and two
 * small API routes the console needs and any client may use: `GET /v1/whoami` (who the credential is, so a
 * viewer's console disables what the API would refuse) and `GET /v1/sites` (each site controller's `/status`).
 *
 * The files are read once when the gateway starts (a few hundred KiB): no file system access per request, no
 * path from the URL ever reaches the file system. Hashed asset names (`app-<hash>.js`) are cached for a year;
 * `index.html` and `config.json` are revalidated. The console's pages get their own Content-Security-Policy
 * (scripts and styles from this origin only, the tile server as the only other origin); API replies keep the
 * gateway's `default-src 'none'`. The console pages themselves are public (they hold no data); every call they
 * make carries the credential the person pasted, checked like any other API call.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { GatewayConfig } from './config.js'
import { GatewayError } from './errors.js'
import { errorReplies } from './schemas.js'

export interface ConsoleOptions {
  cfg: GatewayConfig
  /** Warnings (console not built). */
  warn: (msg: string) => void
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
}
/** Built asset names carry a content hash: they never change, so browsers may keep them. */
const HASHED = /-[A-Z0-9]{8,}\.(js|css)$/i
const SITE_STATUS_TIMEOUT_MS = 2_000

interface StaticFile {
  body: Buffer
  br?: Buffer
  gz?: Buffer
  type: string
  etag: string
  immutable: boolean
}

/** The console's Content-Security-Policy: this origin, plus the tile server's origin for images and fetches. */
export function consoleCsp(tileUrl: string | undefined): string {
  const tiles = tileUrl === undefined ? '' : ` ${new URL(tileUrl.replace(/[{}]/g, '_')).origin}`
  return [
    "default-src 'none'",
    "script-src 'self'",
    // MapLibre and uPlot position elements with inline style attributes.
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: blob:${tiles}`,
    `connect-src 'self'${tiles}`,
    // MapLibre's tile worker: a module worker from this origin (a blob: URL in some browsers' fallbacks).
    "worker-src 'self' blob:",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

async function loadFiles(dir: string): Promise<Map<string, StaticFile>> {
  const files = new Map<string, StaticFile>()
  for (const name of await readdir(dir)) {
    const type = TYPES[extname(name)]
    if (type === undefined || name.endsWith('.map')) continue
    const body = await readFile(join(dir, name))
    // The build writes brotli and gzip copies next to each file; sent to browsers that accept them.
    const br = await readFile(join(dir, `${name}.br`)).catch(() => undefined)
    const gz = await readFile(join(dir, `${name}.gz`)).catch(() => undefined)
    files.set(name, {
      body,
      ...(br ? { br } : {}),
      ...(gz ? { gz } : {}),
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      immutable: HASHED.test(name),
    })
  }
  return files
}

const Whoami = Type.Object({
  type: Type.Union([Type.Literal('user'), Type.Literal('key'), Type.Literal('dev')]),
  id: Type.String(),
  role: Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]),
  fleets: Type.Optional(Type.Array(Type.String())),
  sites: Type.Optional(Type.Array(Type.String())),
})

const SiteItem = Type.Object({
  site: Type.String(),
  reachable: Type.Boolean(),
  /** The controller's `/status` (sites/controller.ts `SiteStatus`) when reachable. */
  status: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String()),
})

export const consolePlugin: FastifyPluginAsyncTypebox<ConsoleOptions> = async (app, { cfg, warn }) => {
  let files = new Map<string, StaticFile>()
  if (cfg.consoleDir !== undefined) {
    try {
      files = await loadFiles(cfg.consoleDir)
    } catch (err) {
      warn(
        `operator console not served: ${cfg.consoleDir} cannot be read (${err instanceof Error ? err.message : String(err)}); run npm run build`,
      )
    }
  }
  const csp = consoleCsp(cfg.consoleTileUrl)
  const settings = Buffer.from(
    JSON.stringify({
      site: cfg.runtime.site,
      tileUrl: cfg.consoleTileUrl ?? null,
      sites: Object.keys(cfg.siteStatusUrls),
    }),
  )

  app.get('/console', { config: { access: 'public' }, schema: { hide: true } }, async (_req, reply) =>
    reply.redirect('/console/', 302),
  )
  app.get('/console/*', { config: { access: 'public' }, schema: { hide: true } }, async (req, reply) => {
    const name = (req.params as { '*': string })['*']
    if (name === 'config.json') {
      return reply
        .header('cache-control', 'no-cache')
        .type(TYPES['.json'] ?? '')
        .send(settings)
    }
    // Every path that is not a file is the app (it routes by the URL's hash).
    const f = files.get(name === '' || !files.has(name) ? 'index.html' : name)
    if (f === undefined) {
      throw new GatewayError(
        'GW_ERR_NOT_FOUND',
        cfg.consoleDir === undefined
          ? 'the operator console is turned off (PITWALL_GATEWAY_CONSOLE_DIR=off)'
          : 'the operator console is not built (npm run build)',
        { item: 'console' },
      )
    }
    void reply
      .header('content-security-policy', csp)
      .header('etag', f.etag)
      .header('cache-control', f.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('vary', 'accept-encoding')
    if (req.headers['if-none-match'] === f.etag) return reply.code(304).send()
    const accept = String(req.headers['accept-encoding'] ?? '')
    if (f.br && /\bbr\b/.test(accept)) return reply.type(f.type).header('content-encoding', 'br').send(f.br)
    if (f.gz && /\bgzip\b/.test(accept)) return reply.type(f.type).header('content-encoding', 'gzip').send(f.gz)
    return reply.type(f.type).send(f.body)
  })

  app.get(
    '/v1/whoami',
    { config: { access: 'read' }, schema: { response: { 200: Whoami, ...errorReplies } } },
    async (req) => {
      const p = req.principal
      if (p === null || p.type === 'device') throw new GatewayError('GW_ERR_FORBIDDEN', 'devices have no console')
      if (p.type === 'dev') return { type: 'dev' as const, id: 'dev', role: 'admin' as const }
      if (p.type === 'key') return { type: 'key' as const, id: p.id, role: p.role }
      return {
        type: 'user' as const,
        id: p.id,
        role: p.role,
        ...(p.fleets ? { fleets: [...p.fleets] } : {}),
        ...(p.sites ? { sites: [...p.sites] } : {}),
      }
    },
  )

  app.get(
    '/v1/sites',
    {
      config: { access: 'read' },
      schema: { response: { 200: Type.Object({ items: Type.Array(SiteItem) }), ...errorReplies } },
    },
    async () => {
      const items = await Promise.all(
        Object.entries(cfg.siteStatusUrls).map(async ([site, url]) => {
          try {
            const res = await fetch(url, { signal: AbortSignal.timeout(SITE_STATUS_TIMEOUT_MS), redirect: 'error' })
            if (!res.ok) return { site, reachable: false, error: `the controller answered ${res.status}` }
            return { site, reachable: true, status: (await res.json()) as unknown }
          } catch (err) {
            // The URL names a host: it stays in the log, not in the reply.
            app.log.warn({ err, site }, 'site controller status unreachable')
            return {
              site,
              reachable: false,
              error:
                err instanceof Error && err.name === 'TimeoutError'
                  ? `no answer within ${SITE_STATUS_TIMEOUT_MS} ms`
                  : 'unreachable',
            }
          }
        }),
      )
      return { items }
    },
  )
}
