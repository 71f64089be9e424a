/**
 * `npm start`: one local site on this machine: provisions the streams, starts two workers, the projector and
 * the gateway (the same commands and environment the Nomad jobs use), feeds them with the simulator in real time, and
 * prints where to look. Ctrl-C drains everything. The two-site version comes with the sites issue.
 *
 * Settings: PITWALL_* (docs/configuration.md); PITWALL_PG_URL defaults to a `pitwall` database on the local
 * PostgreSQL (created when missing); PITWALL_SIM_SENSORS / PITWALL_SIM_CARS size the simulator.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import { compileConfig, connectNats, optionsFromEnv, PitwallError, provision } from '../actors/mod.js'
import { createHash, randomBytes } from 'node:crypto'
import { GATEWAY_PORT, gatewaySpec, metricsPort, PROJECTOR_METRICS_PORT, projectorSpec, type Running, siteEnv, startService, stopService, workerSpec } from './local.js'
import { runSimulator } from './simulator.js'

const WORKERS = 2

async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url)
  const name = u.pathname.slice(1)
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const c = new pg.Client({ connectionString: admin.toString() })
  await c.connect()
  try {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (r.rowCount === 0) await c.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`)
  } finally {
    await c.end()
  }
}

async function main(): Promise<void> {
  const cfg = compileConfig(optionsFromEnv(process.env))
  const pgUrl = process.env.PITWALL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/pitwall'
  await ensureDatabase(pgUrl)
  const nc = await connectNats(cfg.natsUrl, 'pitwall-launcher')
  await provision(nc, await jetstreamManager(nc), cfg)
  const env = siteEnv({ site: cfg.site, natsUrl: cfg.natsUrl, partitions: cfg.partitions, pgUrl })
  const verbose = process.env.PITWALL_DEBUG !== undefined
  const onLog = (name: string, line: string): void => {
    if (verbose || /"level":"(warn|error)"/.test(line) || /partition acquired|started/.test(line)) process.stderr.write(`[${name}] ${line}\n`)
  }
  // Secrets for this run only: nothing is stored in the repository or on disk.
  const adminKey = randomBytes(24).toString('hex')
  const auth = {
    jwtSecret: randomBytes(32).toString('hex'),
    apiKeys: `local-admin:admin:sha256:${createHash('sha256').update(adminKey).digest('hex')}`,
  }
  const services: Running[] = [projectorSpec(env), ...Array.from({ length: WORKERS }, (_, i) => workerSpec(env, i)), gatewaySpec(env, auth)]
    .map((s) => startService(s, onLog))
  const sensors = Number(process.env.PITWALL_SIM_SENSORS ?? 200)
  const cars = Number(process.env.PITWALL_SIM_CARS ?? 4)
  const abort = new AbortController()
  let shuttingDown = false
  const shutdown = async (): Promise<void> => {
    if (shuttingDown) return
    shuttingDown = true
    process.stdout.write('\nstopping: simulator, then workers drain and release their partitions...\n')
    abort.abort()
    await Promise.all(services.map(stopService))
    await nc.drain()
    process.exit(process.exitCode ?? 0)
  }
  for (const r of services) {
    r.proc.once('exit', (code, signal) => {
      if (shuttingDown) return
      process.stderr.write(`\n${r.spec.name} exited (code ${code ?? '-'}, signal ${signal ?? '-'}); see its log above. Stopping the site.\n`)
      process.exitCode = 1
      void shutdown()
    })
  }
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())

  process.stdout.write([
    '',
    `pitwall: site ${cfg.site}, ${cfg.partitions} partitions, ${WORKERS} workers, projector, gateway, simulator (${sensors} sensors at 1 Hz, ${cars} race cars at 10 Hz)`,
    '',
    `  NATS          ${cfg.natsUrl}   streams TLM (readings), OUT (outputs), KV pw_state`,
    `  PostgreSQL    ${pgUrl}`,
    `                psql ${pgUrl} -c 'SELECT entity, window_name, window_start, fields FROM window_aggregates ORDER BY updated_at DESC LIMIT 5'`,
    `                psql ${pgUrl} -c 'SELECT entity, type, severity, state, started_at FROM alerts ORDER BY updated_at DESC LIMIT 10'`,
    `  metrics       ${[...Array.from({ length: WORKERS }, (_, i) => metricsPort(i)), PROJECTOR_METRICS_PORT].map((p) => `http://127.0.0.1:${p}/metrics`).join('   ')}`,
    `  gateway       http://127.0.0.1:${GATEWAY_PORT}   (admin API key for this run: ${adminKey})`,
    `                curl -H 'X-API-Key: ${adminKey}' http://127.0.0.1:${GATEWAY_PORT}/v1/entities/sensor/env-0001/state`,
    `                curl -H 'X-API-Key: ${adminKey}' -H 'content-type: application/json' http://127.0.0.1:${GATEWAY_PORT}/v1/readings \\`,
    `                     -d '[{"kind":"sensor","id":"my-sensor","ts":'$(date +%s000)',"fields":{"temperature":21.5}}]'`,
    '  live state    node dist/sites/cli.js state sensor env-0001     node dist/sites/cli.js state vehicle car-01',
    '  ownership     node dist/sites/cli.js partitions',
    '  stop          Ctrl-C (workers drain and release their partitions)',
    '', '',
  ].join('\n'))
  let last = 0
  await runSimulator(nc, {
    seed: 1, sensors, cars, sensorHz: 1, carHz: 10, site: cfg.site, partitions: cfg.partitions, anomalies: true,
    realtime: true, signal: abort.signal,
    onProgress: (s) => {
      if (Date.now() - last > 10_000) {
        last = Date.now()
        process.stdout.write(`simulator: ${s.sent} readings sent (${Math.round(s.perS)}/s)\n`)
      }
    },
  })
}

main().catch((err: unknown) => {
  const code = err instanceof PitwallError ? err.code : 'PW_START_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
