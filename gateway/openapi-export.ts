/**
 * The committed OpenAPI document, gateway/openapi.json: what `GET /openapi.json` serves for a gateway with the
 * default settings and every feature on (a database present), generated from the app itself so it cannot be
 * written by hand. test/integration/gateway-openapi.test.ts generates it again and fails when the two differ, so a change to
 * the API's contract shows up in review as a diff of this file (gateway/README.md, "Compatibility").
 *
 *   npm run openapi      (tsx gateway/openapi-export.ts [--out <file>]; needs nats-server at PITWALL_NATS_URL)
 *
 * The app is built and made ready but never listens; its PostgreSQL pool is never connected (no migrations run),
 * and NATS is only connected to, nothing is published.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { NatsConnection } from '@nats-io/transport-node'
import { connectNats, optionsFromEnv } from '../actors/mod.js'
import { buildGateway } from './app.js'
import { compileGatewayConfig } from './config.js'

/** Where the document is committed, relative to the repository root (where npm scripts and tests run). */
export const OPENAPI_FILE = 'gateway/openapi.json'

/** The document as committed: two-space JSON with a final newline. */
export async function generateOpenApi(nc: NatsConnection): Promise<string> {
  // Defaults throughout; auth off changes nothing in the document (its security schemes are static).
  const cfg = compileGatewayConfig({ auth: { enabled: false }, runtime: { natsUrl: 'nats://127.0.0.1:4222' } })
  // A pool that is never connected: its presence registers the routes that need PostgreSQL.
  const pool = new pg.Pool({ connectionString: 'postgres://127.0.0.1:1/unused', max: 1 })
  const app = buildGateway({ nc, cfg, pool, migrate: false })
  try {
    await app.ready()
    const res = await app.inject({ method: 'GET', url: '/openapi.json' })
    if (res.statusCode !== 200)
      throw new Error(`GET /openapi.json answered ${res.statusCode}: ${res.body.slice(0, 200)}`)
    return `${JSON.stringify(res.json(), null, 2)}\n`
  } finally {
    await app.close()
    await pool.end()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out')
  const out = i > 0 ? process.argv[i + 1] : OPENAPI_FILE
  if (out === undefined) throw new Error('--out needs a file name')
  const natsUrl = optionsFromEnv(process.env).natsUrl ?? 'nats://127.0.0.1:4222'
  const nc = await connectNats(natsUrl, 'pitwall-openapi-export')
  try {
    writeFileSync(out, await generateOpenApi(nc))
    console.log(`wrote ${out}`)
  } finally {
    await nc.close()
  }
}
