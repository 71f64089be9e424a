/**
 * The body of a worker process, shared by the production entrypoint (cmd/worker.ts) and the worker processes the
 * crash tests spawn (test/fixtures/worker-main.ts, worker-prod-main.ts), so that what the tests kill is what runs:
 * configuration from PITWALL_* (docs/configuration.md), the Worker with the given profiles, the metrics endpoint
 * when PITWALL_METRICS_PORT is set, and SIGTERM/SIGINT: drain, checkpoint and release every partition, exit 0
 * (1 when the drain fails). A configuration or start failure is logged with its code and exits 2.
 */
import {
  type AnyActorDefinition,
  compileConfig,
  createLog,
  type Log,
  optionsFromEnv,
  PitwallError,
  serveMetrics,
  Worker,
  WorkerObserver,
  workerRegistry,
} from '../actors/mod.js'

export interface WorkerProcessOptions {
  profiles: readonly AnyActorDefinition[]
  env?: NodeJS.ProcessEnv
  /** Default: JSON lines on stderr for service `worker` at the PITWALL_SITE. */
  log?: Log
}

/** Starts the worker of this process and installs its signal handlers; resolves once it runs. */
export async function runWorkerProcess(o: WorkerProcessOptions): Promise<Worker> {
  const env = o.env ?? process.env
  const log = o.log ?? createLog('worker', { site: env.PITWALL_SITE ?? 'a' }, env)
  try {
    const cfg = compileConfig(optionsFromEnv(env))
    const observer = new WorkerObserver()
    const worker = new Worker({
      cfg,
      profiles: o.profiles,
      provision: env.PITWALL_PROVISION !== 'false',
      log,
      observe: observer,
    })
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
      worker.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log('error', 'drain failed', { err: String(err) })
          process.exit(1)
        },
      )
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    return worker
  } catch (err) {
    const code = err instanceof PitwallError ? err.code : 'PW_START_FAILED'
    log('error', err instanceof Error ? err.message : String(err), { code })
    process.exit(2)
  }
}
