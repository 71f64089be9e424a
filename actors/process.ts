/**
 * What every pitwall process does at start, whatever it runs (worker, projector, gateway, controller, CLI):
 * name itself for `ps`, and connect to NATS or fail fast naming the setting. (The logger is actors/log.ts.)
 */
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { RuntimeErrorCodes, UnreachableError } from './errors.js'

/**
 * Names this process for `ps` and `top`: `pitwall:<site>:<service>` (and the worker id for workers), so one
 * site's processes can be told from the other's on a machine that runs both (the local lab).
 */
export function setProcessTitle(service: string, env: NodeJS.ProcessEnv = process.env): string {
  const id = env.PITWALL_WORKER_ID
  const title = `pitwall:${env.PITWALL_SITE ?? 'a'}:${service}${service === 'worker' && id ? `:${id}` : ''}`
  process.title = title
  return title
}

/** Connects to NATS or fails fast with PW_NATS_UNREACHABLE naming the setting. */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  try {
    return await connect({
      servers: url.split(','),
      name,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      timeout: 5_000,
    })
  } catch (err) {
    throw new UnreachableError(
      RuntimeErrorCodes.NATS_UNREACHABLE,
      'natsUrl (PITWALL_NATS_URL)',
      `cannot connect to ${url}: ${String(err)}`,
      err,
    )
  }
}
