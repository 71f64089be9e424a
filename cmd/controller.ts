/**
 * Site controller entrypoint (`node dist/cmd/controller.js`; the local launcher runs one per site):
 * automatic failover when the peer site is lost, `/healthz` for the peer's probe, `/status`, `/metrics`.
 * Settings: the runtime's PITWALL_* (site, NATS, partitions, PITWALL_PEER_SITE, PITWALL_HOME_PARTITIONS) and
 *   PITWALL_CONTROLLER_PORT            HTTP port (default 9481)
 *   PITWALL_FAILOVER_AFTER_MS          peer down (link and health) this long -> failover; 0 = operator only (default 5000)
 *   PITWALL_PEER_HEALTH_URL            the peer controller's /healthz (optional; without it the link alone decides)
 *   PITWALL_PROBE_TIMEOUT_MS           how long one probe of the peer may take (default 500): above twice the WAN's
 *                                      round trip, or a slow link looks like a lost site
 *   PITWALL_STRAY_RELAY                `on` (default) | `off`: forward readings devices sent here for the peer's
 *                                      partitions (actors/relay.ts); one controller per site runs it
 *   PITWALL_CONTROLLER_COMMAND_TOKEN   required as `Authorization: Bearer <token>` by POST /failover and /failback
 *                                      (the gateway sends PITWALL_GATEWAY_SITE_COMMAND_TOKEN); unset: no token asked
 *   PITWALL_DISCOVERY                  `consul`: also ask Consul whether the peer datacenter's NATS servers pass
 *                                      (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, PITWALL_CONSUL_DATACENTER,
 *                                      PITWALL_PEER_CONSUL_DATACENTER; consul/discovery.ts peerHealthFromEnv)
 */
import {
  compileConfig,
  ConfigError,
  connectNats,
  createLog,
  optionsFromEnv,
  PitwallError,
  setProcessTitle,
} from '../actors/mod.js'
import { SiteController } from '../sites/controller.js'
import { peerHealthFromEnv } from '../consul/discovery.js'
import { DiscoveryError } from '../consul/errors.js'

const log = createLog('controller', { site: process.env.PITWALL_SITE ?? 'a' })
setProcessTitle('controller')
try {
  const cfg = compileConfig(optionsFromEnv(process.env))
  if (!cfg.peer)
    throw new ConfigError('PITWALL_PEER_SITE', 'is required: the site controller exists for two-site deployments')
  const num = (name: string, dflt: number): number => {
    const raw = process.env[name]
    if (raw === undefined || raw === '') return dflt
    const n = Number(raw)
    if (!Number.isInteger(n) || n < 0)
      throw new ConfigError(name, `must be a non-negative integer, got ${JSON.stringify(raw)}`)
    return n
  }
  const relayRaw = process.env.PITWALL_STRAY_RELAY ?? 'on'
  if (relayRaw !== 'on' && relayRaw !== 'off')
    throw new ConfigError('PITWALL_STRAY_RELAY', `must be on or off, got ${JSON.stringify(relayRaw)}`)
  const consul = peerHealthFromEnv(process.env)
  const nc = await connectNats(cfg.natsUrl, `pitwall-controller-${cfg.site}`)
  const peerHealthUrl = process.env.PITWALL_PEER_HEALTH_URL
  const commandToken = process.env.PITWALL_CONTROLLER_COMMAND_TOKEN
  const controller = new SiteController({
    nc,
    cfg,
    port: num('PITWALL_CONTROLLER_PORT', 9481),
    failoverAfterMs: num('PITWALL_FAILOVER_AFTER_MS', 5_000),
    probeTimeoutMs: num('PITWALL_PROBE_TIMEOUT_MS', 500),
    relay: relayRaw === 'on',
    ...(commandToken ? { commandToken } : {}),
    ...(peerHealthUrl ? { peerHealthUrl } : {}),
    ...(consul ? { peerHealthy: consul.peerHealthy } : {}),
    log,
  })
  await controller.start()
  log('info', 'controller started', {
    site: cfg.site,
    peer: cfg.peer.site,
    url: `http://${cfg.metricsHost}:${controller.port}/status`,
  })
  const stop = (): void => {
    controller
      .stop()
      .then(() => consul?.discovery.close())
      .then(() => nc.drain())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} catch (err) {
  log('error', err instanceof Error ? err.message : String(err), {
    code: err instanceof PitwallError || err instanceof DiscoveryError ? err.code : 'PW_START_FAILED',
  })
  process.exit(2)
}
