/**
 * A gateway under test: a private nats-server (streams provisioned), optionally a fresh PostgreSQL database,
 * the app built with auth on (JWT secret, two API keys) or off, and credential helpers (hand-made HS256 JWTs,
 * so the tests do not trust the library they check). Everything is torn down with the test, LIFO.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { FastifyInstance } from 'fastify'
import { provision } from '../../actors/mod.js'
import {
  buildGateway,
  compileGatewayConfig,
  type AuthOptions,
  type GatewayConfig,
  type GatewayDeps,
  type GatewayOptions,
} from '../../gateway/mod.js'
import { connectTo, startNats, type NatsServer } from './nats.js'
import { createTestDb, type TestDb } from './pg.js'

export const JWT_SECRET = randomBytes(32).toString('hex')
/** An operator service key and a viewer service key, configured by their SHA-256 in every auth-on setup. */
export const SVC_KEY = randomBytes(24).toString('hex')
export const VIEW_KEY = randomBytes(24).toString('hex')
export const VIN = '1M8GDM9AXKP042788'

export const sha = (s: string): string => createHash('sha256').update(s).digest('hex')
export const b64u = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')

/** An HS256 JWT made by hand (iat now, exp in 10 minutes unless the claims say otherwise). */
export function jwt(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const now = Math.floor(Date.now() / 1000)
  const head = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ iat: now, exp: now + 600, ...claims })}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}
/** `Authorization: Bearer` for a person with `role` (sub `u-<role>`), plus extra claims (fleets, sites). */
export const bearer = (role: string, claims: Record<string, unknown> = {}): Record<string, string> => ({
  authorization: `Bearer ${jwt({ sub: `u-${role}`, role, ...claims })}`,
})
export const device = (token: string): Record<string, string> => ({ authorization: `Device ${token}` })

export interface TestGateway {
  app: FastifyInstance
  nc: NatsConnection
  srv: NatsServer
  jsm: JetStreamManager
  cfg: GatewayConfig
  db: TestDb | undefined
  /** Messages in the TLM stream. */
  count(): Promise<number>
  /** Issues a device credential through the admin route (auth on). */
  issue(kind: string, id: string): Promise<{ id: string; token: string; entity: string }>
  /** Everything the app logged (when `capture` was set). */
  logs(): string
}

export interface SetupOptions {
  /** Auth settings merged over the defaults; `false` turns auth off (and no database unless `db`). */
  auth?: AuthOptions | false
  /** A fresh PostgreSQL database (default: when auth is on). */
  db?: boolean
  /** Other gateway options. */
  gw?: Omit<GatewayOptions, 'auth' | 'runtime'>
  runtime?: GatewayOptions['runtime']
  /** Create the runtime's streams and buckets (default true). */
  provision?: boolean
  /** Capture the app's log at level trace. */
  capture?: boolean
  /** nats-server config lines (e.g. an mqtt listener). */
  natsConfig?: string
  deps?: Partial<Omit<GatewayDeps, 'nc' | 'cfg'>>
  /** Called with the app before `ready()` (e.g. to add an onRoute hook that sees every route). */
  beforeReady?: (app: FastifyInstance) => void
}

type Teardown = { teardown(fn: () => unknown): void }

/** Starts everything and returns the ready (not listening) app. */
export async function setupGateway(t: Teardown, o: SetupOptions = {}): Promise<TestGateway> {
  const authOn = o.auth !== false
  const db = (o.db ?? authOn) ? await createTestDb() : undefined
  if (db) t.teardown(() => db.drop())
  const srv = await startNats(o.natsConfig === undefined ? {} : { config: o.natsConfig })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const auth: AuthOptions =
    o.auth === false
      ? { enabled: false, ...(db ? { databaseUrl: db.url } : {}) }
      : {
          jwtSecret: JWT_SECRET,
          apiKeys: `ingest-svc:operator:sha256:${sha(SVC_KEY)},dash:viewer:sha256:${sha(VIEW_KEY)}`,
          rateLimitMax: 100_000,
          ...(db ? { databaseUrl: db.url } : {}),
          ...o.auth,
        }
  const cfg = compileGatewayConfig({
    publishTimeoutMs: 1_000,
    ...o.gw,
    auth,
    runtime: { natsUrl: srv.url, partitions: 4, workerId: 'gw-test', ...o.runtime },
  })
  const jsm = await jetstreamManager(nc)
  if (o.provision !== false) await provision(nc, jsm, cfg.runtime)
  let logs = ''
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs += chunk.toString()
      cb()
    },
  })
  const app = buildGateway({ nc, cfg, ...(o.capture ? { logger: { level: 'trace', stream } } : {}), ...o.deps })
  t.teardown(() => app.close())
  o.beforeReady?.(app)
  await app.ready()
  const count = async (): Promise<number> => (await jsm.streams.info(cfg.runtime.streams.tlm)).state.messages
  const issue = async (kind: string, id: string): Promise<{ id: string; token: string; entity: string }> => {
    const res = await app.inject({
      method: 'POST',
      url: `/v1/admin/devices/${kind}/${id}/credentials`,
      headers: bearer('admin'),
    })
    if (res.statusCode !== 201) throw new Error(`issue failed: ${res.statusCode} ${res.body}`)
    return res.json()
  }
  return { app, nc, srv, jsm, cfg, db, count, issue, logs: () => logs }
}
