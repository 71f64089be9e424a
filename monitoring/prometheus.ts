/**
 * Runs a real Prometheus (Debian's `prometheus` package) for the local deployment and the tests: renders a
 * configuration for the local services (static targets, the alert rules of monitoring/rules/), starts the binary
 * on a loopback port with a private data dir, waits until it is ready, and gives back its URL, a query helper and
 * a stop function. `npm start` calls startLocalPrometheus(); test/integration/monitoring-live.test.ts uses the parts.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** monitoring/ in the source tree (this file is monitoring/prometheus.ts, or dist/monitoring/prometheus.js). */
function monitoringDir(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  return here.endsWith(join('dist', 'monitoring')) ? join(here, '..', '..', 'monitoring') : here
}

/** The alert and recording rules file. */
export const RULES_FILE = join(monitoringDir(), 'rules', 'pitwall.rules.yml')

export interface ScrapeJob {
  job: string
  /** `host:port` of each target. */
  targets: readonly string[]
  metricsPath?: string
}

export interface PrometheusConfigOptions {
  jobs: readonly ScrapeJob[]
  scrapeIntervalS?: number
  evaluationIntervalS?: number
  /** Rule files (absolute paths); default: RULES_FILE. */
  ruleFiles?: readonly string[]
  externalLabels?: Record<string, string>
}

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`

/** A prometheus.yml for static targets (YAML text). */
export function renderPrometheusConfig(o: PrometheusConfigOptions): string {
  const scrape = o.scrapeIntervalS ?? 15
  const lines = [
    '# Rendered by monitoring/prometheus.ts (renderPrometheusConfig).',
    'global:',
    `  scrape_interval: ${scrape}s`,
    `  scrape_timeout: ${Math.max(1, Math.min(10, scrape - (scrape > 1 ? 1 : 0)))}s`,
    `  evaluation_interval: ${o.evaluationIntervalS ?? scrape}s`,
  ]
  const ext = Object.entries(o.externalLabels ?? { deployment: 'local' })
  if (ext.length) lines.push('  external_labels:', ...ext.map(([k, v]) => `    ${k}: ${q(v)}`))
  lines.push('rule_files:', ...(o.ruleFiles ?? [RULES_FILE]).map((f) => `  - ${q(f)}`))
  lines.push('scrape_configs:')
  for (const j of o.jobs) {
    lines.push(`  - job_name: ${q(j.job)}`)
    if (j.metricsPath) lines.push(`    metrics_path: ${q(j.metricsPath)}`)
    lines.push('    static_configs:', `      - targets: [${j.targets.map(q).join(', ')}]`)
  }
  return `${lines.join('\n')}\n`
}

/** The jobs of a local site: workers, projector, gateway (and a site controller when given). */
export function localJobs(p: {
  workerPorts: readonly number[]
  projectorPort?: number
  gatewayPort?: number
  sitePort?: number
  host?: string
}): ScrapeJob[] {
  const h = p.host ?? '127.0.0.1'
  const jobs: ScrapeJob[] = []
  if (p.workerPorts.length) jobs.push({ job: 'pitwall-worker', targets: p.workerPorts.map((x) => `${h}:${x}`) })
  if (p.projectorPort !== undefined) jobs.push({ job: 'pitwall-projector', targets: [`${h}:${p.projectorPort}`] })
  if (p.gatewayPort !== undefined) jobs.push({ job: 'pitwall-gateway', targets: [`${h}:${p.gatewayPort}`] })
  if (p.sitePort !== undefined) jobs.push({ job: 'pitwall-site', targets: [`${h}:${p.sitePort}`] })
  return jobs
}

/** Path of an executable on PATH (or /usr/bin, /usr/local/bin), or null. */
export function findBinary(name: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']) {
    if (!d) continue
    try {
      accessSync(join(d, name), constants.X_OK)
      return join(d, name)
    } catch {
      // not in this directory
    }
  }
  return null
}

export interface RunningPrometheus {
  url: string
  port: number
  dataDir: string
  proc: ChildProcess
  /** GET /api/v1/query at the current time; resolves with the API's JSON reply (status success or error). */
  query(expr: string): Promise<PromReply>
  /** Resolves once every active target is up (at least `min`), or rejects after `timeoutMs`. */
  targetsUp(min: number, timeoutMs?: number): Promise<Array<{ job: string; instance: string }>>
  stop(): Promise<void>
}

export interface PromReply {
  status: 'success' | 'error'
  errorType?: string
  error?: string
  data?: { resultType: string; result: unknown[] }
}

export class PrometheusStartError extends Error {
  readonly code = 'PW_PROMETHEUS_START'
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts)
    this.name = 'PrometheusStartError'
  }
}

/**
 * Starts `prometheus` with `configText` on host:port (port 0 is not supported by Prometheus: pick a free one),
 * storing its TSDB under `dataDir` (a temp dir when omitted, removed on stop). Resolves when `/-/ready` answers.
 */
export async function startPrometheus(o: {
  configText: string
  port: number
  dataDir?: string
  host?: string
  bin?: string
  retention?: string
  log?: (line: string) => void
}): Promise<RunningPrometheus> {
  const bin = o.bin ?? findBinary('prometheus')
  if (!bin) throw new PrometheusStartError('prometheus is not installed (Debian: apt-get install -y prometheus)')
  const host = o.host ?? '127.0.0.1'
  const ownDir = o.dataDir === undefined
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), 'pw-prom-')))
  await mkdir(join(dataDir, 'tsdb'), { recursive: true })
  const configFile = join(dataDir, 'prometheus.yml')
  await writeFile(configFile, o.configText)
  const proc = spawn(
    bin,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dataDir, 'tsdb')}`,
      `--web.listen-address=${host}:${o.port}`,
      `--storage.tsdb.retention.time=${o.retention ?? '2d'}`,
      '--web.enable-lifecycle',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
    o.log?.(d.toString())
  })
  const url = `http://${host}:${o.port}`
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((r) => proc.once('exit', () => r()))
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(t)
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    if (proc.exitCode !== null) {
      await stop()
      throw new PrometheusStartError(`prometheus exited with ${proc.exitCode}: ${stderr}`)
    }
    const ok = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline) {
      await stop()
      throw new PrometheusStartError(`prometheus not ready on ${url} within 20 s: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    port: o.port,
    dataDir,
    proc,
    stop,
    async query(expr) {
      const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)
      return (await r.json()) as PromReply
    },
    async targetsUp(min, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs
      let last = ''
      for (;;) {
        const r = await fetch(`${url}/api/v1/targets?state=active`).then(
          async (x) =>
            (await x.json()) as {
              data: {
                activeTargets: Array<{ health: string; labels: { job: string; instance: string }; lastError: string }>
              }
            },
        )
        const ts = r.data.activeTargets
        if (ts.length >= min && ts.every((t) => t.health === 'up'))
          return ts.map((t) => ({ job: t.labels.job, instance: t.labels.instance }))
        last = ts.map((t) => `${t.labels.job} ${t.labels.instance} ${t.health} ${t.lastError}`).join('; ')
        if (Date.now() > end) throw new PrometheusStartError(`targets not all up after ${timeoutMs} ms: ${last}`)
        await new Promise((res) => setTimeout(res, 250))
      }
    },
  }
}

/** Default local port of Prometheus (its usual 9090). */
export const LOCAL_PROMETHEUS_PORT = 9090

/**
 * For `npm start`: when `prometheus` is installed, starts it on 127.0.0.1:9090 (or `port`) scraping the local
 * services every 5 s with the alert rules loaded, data under `dataDir` (kept between runs). Resolves with null
 * when it is not installed (the caller prints how to install it).
 */
export async function startLocalPrometheus(
  p: Parameters<typeof localJobs>[0] & { dataDir: string; port?: number; log?: (line: string) => void },
): Promise<RunningPrometheus | null> {
  if (!findBinary('prometheus')) return null
  const configText = renderPrometheusConfig({ jobs: localJobs(p), scrapeIntervalS: 5 })
  const opts: Parameters<typeof startPrometheus>[0] = {
    configText,
    port: p.port ?? LOCAL_PROMETHEUS_PORT,
    dataDir: p.dataDir,
  }
  if (p.log) opts.log = p.log
  return await startPrometheus(opts)
}
