/**
 * Worker entrypoint (`node dist/cmd/worker.js`; the same command the local launcher and the Nomad job
 * run). Configuration from PITWALL_* environment variables (docs/configuration.md). SIGTERM/SIGINT: drain,
 * checkpoint and release every partition, then exit 0.
 */
import { compileConfig, createLog, optionsFromEnv, PitwallError, PROFILES, serveMetrics, setProcessTitle, Worker, WorkerObserver, workerRegistry } from '../actors/mod.js'

const log = createLog('worker', { site: process.env.PITWALL_SITE ?? 'a' })
setProcessTitle('worker')
try {
  const cfg = compileConfig(optionsFromEnv(process.env))
  const observer = new WorkerObserver()
  const worker = new Worker({ cfg, profiles: PROFILES, provision: process.env.PITWALL_PROVISION !== 'false', log, observe: observer })
  await worker.start()
  if (cfg.metricsPort !== null) {
    const { registry } = workerRegistry(worker, { site: cfg.site, worker: cfg.workerId }, observer)
    const { port } = await serveMetrics(registry, cfg.metricsPort, cfg.metricsHost)
    log('info', 'metrics endpoint', { url: `http://${cfg.metricsHost}:${port}/metrics` })
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log('info', 'draining', { signal, partitions: worker.owned() })
    worker.stop().then(() => process.exit(0), (err: unknown) => {
      log('error', 'drain failed', { err: String(err) })
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
} catch (err) {
  const code = err instanceof PitwallError ? err.code : 'PW_START_FAILED'
  log('error', err instanceof Error ? err.message : String(err), { code })
  process.exit(2)
}
