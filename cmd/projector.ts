/**
 * Projector entrypoint (`node dist/cmd/projector.js`): consumes the site's OUT stream into PostgreSQL.
 * Settings: PITWALL_DEPLOYMENT, PITWALL_SITE, PITWALL_NATS_URL, PITWALL_PG_URL, PITWALL_DOMAIN_METRICS (docs/configuration.md).
 * Exits 2 at start when the streams, the state bucket or the database belong to another deployment
 * (PW_DEPLOYMENT_MISMATCH). SIGTERM: finish the current batch, commit, ack, exit 0.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import {
  checkDeployment,
  compileConfig,
  ConfigError,
  connectNats,
  createLog,
  optionsFromEnv,
  peerStreams,
  PitwallError,
  projectorRegistry,
  serveMetrics,
  setProcessTitle,
} from '../actors/mod.js'
import { DomainMetrics, domainMetricsFromEnv, Projector } from '../projector/mod.js'

const log = createLog('projector', { site: process.env.PITWALL_SITE ?? 'a' })
setProcessTitle('projector')
try {
  const cfg = compileConfig(optionsFromEnv(process.env))
  const pgUrl = process.env.PITWALL_PG_URL
  if (!pgUrl) throw new ConfigError('PITWALL_PG_URL', 'is required (e.g. postgres://postgres@127.0.0.1:5432/pitwall)')
  const nc = await connectNats(cfg.natsUrl, `pitwall-projector-${cfg.site}`)
  await checkDeployment(nc, await jetstreamManager(nc), cfg)
  const domain = new DomainMetrics(domainMetricsFromEnv(process.env))
  const projector = new Projector({
    nc,
    pgUrl,
    deployment: cfg.deployment,
    site: cfg.site,
    stream: cfg.streams.out,
    log: log.child({ stream: cfg.streams.out }),
    observer: domain,
  })
  await projector.start()
  // Two sites: the peer's outputs too (our mirror of its OUT), so this site's database is complete.
  const peer = cfg.peer
    ? new Projector({
        nc,
        pgUrl,
        deployment: cfg.deployment,
        site: cfg.peer.site,
        stream: peerStreams(cfg, cfg.peer.site).out,
        log: log.child({ stream: peerStreams(cfg, cfg.peer.site).out }),
        observer: domain,
      })
    : undefined
  await peer?.start()
  if (cfg.metricsPort !== null) {
    const { port } = await serveMetrics(
      projectorRegistry(projector, { site: cfg.site, service: 'projector' }, domain),
      cfg.metricsPort,
      cfg.metricsHost,
    )
    log('info', 'metrics endpoint', { url: `http://${cfg.metricsHost}:${port}/metrics` })
  }
  const statsEvery = setInterval(() => log('debug', 'projector stats', { ...projector.stats() }), 10_000)
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    clearInterval(statsEvery)
    Promise.all([projector.stop(), peer?.stop()])
      .then(() => nc.drain())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log('error', 'projector stop failed', { err: String(err) })
          process.exit(1)
        },
      )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  for (const p of [projector, peer]) {
    void p?.closed().then((failure) => {
      if (failure !== undefined && !stopping) {
        log('error', 'projector stopped on an error', { err: String(failure) })
        process.exit(1)
      }
    })
  }
} catch (err) {
  log('error', err instanceof Error ? err.message : String(err), {
    code: err instanceof PitwallError ? err.code : 'PW_START_FAILED',
  })
  process.exit(2)
}
