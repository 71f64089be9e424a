/**
 * Gateway entrypoint: `node dist/cmd/gateway.js`, configured by PITWALL_GATEWAY_* and PITWALL_* variables.
 * SIGTERM/SIGINT: stop accepting (in-flight requests finish, new ones get 503), then drain NATS so every
 * publish already sent is flushed before exit.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { checkDeployment, ConfigError, connectNats, createLog, PitwallError, setProcessTitle } from '../actors/mod.js'
import { buildGateway, compileGatewayConfig, gatewayOptionsFromEnv } from '../gateway/mod.js'

const log = createLog('gateway', { site: process.env.PITWALL_SITE ?? 'a' })
setProcessTitle('gateway')

async function main(): Promise<void> {
  const cfg = compileGatewayConfig(gatewayOptionsFromEnv(process.env))
  const nc = await connectNats(cfg.runtime.natsUrl, 'pitwall-gateway')
  // Fail fast when this NATS carries another deployment's streams (PW_DEPLOYMENT_MISMATCH).
  await checkDeployment(nc, await jetstreamManager(nc), cfg.runtime).catch(async (err: unknown) => {
    await nc.close()
    throw err
  })
  const app = buildGateway({ nc, cfg, logger: log.pino.child({ component: 'http' }) })
  await app.listen({ port: cfg.port, host: cfg.host })
  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log('info', 'shutting down', { signal })
    try {
      await app.close()
      await nc.drain()
      log('info', 'stopped', { signal })
      process.exit(0)
    } catch (err) {
      log('error', 'shutdown failed', { err: String(err) })
      process.exit(1)
    }
  }
  process.once('SIGTERM', () => void stop('SIGTERM'))
  process.once('SIGINT', () => void stop('SIGINT'))
}

main().catch((err: unknown) => {
  log('error', 'gateway failed to start', {
    code: err instanceof PitwallError ? err.code : undefined,
    err: String(err),
  })
  process.exit(err instanceof ConfigError ? 2 : 1)
})
