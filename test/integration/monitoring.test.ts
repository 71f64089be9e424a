/**
 * monitoring/: the Prometheus configuration and alert rules, checked by the real promtool (Debian's `prometheus`
 * package, installed in CI through .ci/optional-packages). Skipped with a message when promtool is missing.
 * Also checks, without promtool, that the rules only use metric names that exist (actors/metrics.ts), that every
 * alert has severity/summary/description and unit tests, and that the Consul configuration is well formed.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { knownMetrics } from '../../monitoring/metric-names.js'
import { localJobs, renderPrometheusConfig, startLocalPrometheus } from '../../monitoring/prometheus.js'
import { freePort } from '../helpers/nats.js'
import { GATEWAY_PORT, metricsPort, PROJECTOR_METRICS_PORT } from '../../sites/local.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const MON = join(ROOT, 'monitoring')
const RULES = join(MON, 'rules', 'pitwall.rules.yml')
const RULE_TESTS = join(MON, 'rules', 'pitwall.rules.test.yml')
const CONFIG = join(MON, 'prometheus.yml')
const CONSUL = join(MON, 'prometheus-consul.yml')

function findPromtool(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']
  for (const d of dirs) {
    if (!d) continue
    try {
      accessSync(join(d, 'promtool'), constants.X_OK)
      return join(d, 'promtool')
    } catch {
      // not here
    }
  }
  return null
}

const PROMTOOL = findPromtool()
const SKIP =
  PROMTOOL === null
    ? 'promtool is not installed (Debian: apt-get install -y prometheus, or list it in .ci/optional-packages)'
    : false

function promtool(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(PROMTOOL ?? 'promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  return { code: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` }
}

/** `- alert: Name` blocks of the rules file: name and the text of the block. */
function alertBlocks(text: string): Array<{ name: string; body: string }> {
  const parts = text.split(/^\s*- (?=alert:|record:)/m).slice(1)
  return parts.flatMap((p) => {
    const m = /^alert:\s*(\S+)/.exec(p)
    return m?.[1] ? [{ name: m[1], body: p }] : []
  })
}

t.test('promtool check rules', { skip: SKIP }, async (t) => {
  const r = promtool('check', 'rules', RULES)
  t.equal(r.code, 0, r.out)
})

t.test('promtool test rules: every alert firing and not firing', { skip: SKIP }, async (t) => {
  const r = promtool('test', 'rules', RULE_TESTS)
  t.equal(r.code, 0, r.out)
})

t.test('promtool check config monitoring/prometheus.yml (with its rule files)', { skip: SKIP }, async (t) => {
  const r = promtool('check', 'config', CONFIG)
  t.equal(r.code, 0, r.out)
  t.match(r.out, /SUCCESS: 1 rule files found/)
})

t.test('prometheus.yml scrapes what `npm start` exposes', async (t) => {
  const text = readFileSync(CONFIG, 'utf8')
  // Two sites: two workers each (metricsPort 0-3), projector and gateway ports + site index, controllers on
  // 9481 + site index (cmd/lab.ts).
  for (const port of [
    metricsPort(0),
    metricsPort(1),
    metricsPort(2),
    metricsPort(3),
    PROJECTOR_METRICS_PORT,
    PROJECTOR_METRICS_PORT + 1,
    GATEWAY_PORT,
    GATEWAY_PORT + 1,
    9481,
    9482,
  ]) {
    t.ok(text.includes(`'127.0.0.1:${port}'`), `target 127.0.0.1:${port}`)
  }
  t.match(text, /job_name: pitwall-worker/)
  t.match(text, /job_name: pitwall-projector/)
  t.match(text, /job_name: pitwall-gateway/)
  t.match(text, /job_name: pitwall-site/)
  t.match(text, /evaluation_interval: \d+s/)
  t.match(text, /- rules\/pitwall\.rules\.yml/)
})

t.test('rules use only metrics that exist; every alert is labelled, annotated and unit-tested', async (t) => {
  const rules = readFileSync(RULES, 'utf8')
  const known = await knownMetrics()
  const used = new Set(rules.match(/\bpitwall_[a-z0-9_]+/g) ?? [])
  t.ok(used.size >= 8, `rules use ${used.size} pitwall metrics`)
  for (const name of used) t.ok(known(name), `${name} is defined in actors/metrics.ts`)

  const tests = readFileSync(RULE_TESTS, 'utf8')
  const alerts = alertBlocks(rules)
  t.ok(alerts.length >= 16, `${alerts.length} alerts`)
  for (const { name, body } of alerts) {
    t.match(body, /\n\s+severity: (critical|warning)\n/, `${name}: severity`)
    t.match(body, /\n\s+summary: /, `${name}: summary`)
    t.match(body, /\n\s+description: /, `${name}: description`)
    // Each alertname's evaluations in the test file: at least one with no alert and one with an alert.
    const evals = tests
      .split(/^\s*- eval_time: /m)
      .slice(1)
      .filter((e) => new RegExp(`alertname: ${name}\\n`).test(e))
    t.ok(
      evals.some((e) => /exp_alerts: \[\]/.test(e)),
      `${name}: a not-firing case`,
    )
    t.ok(
      evals.some((e) => /- exp_labels:/.test(e)),
      `${name}: a firing case`,
    )
  }
})

/**
 * prometheus-consul.yml: Debian's promtool is built without Consul SD, so check the consul_sd_configs blocks
 * structurally and the rest with promtool, with each consul_sd_configs block swapped for a static one.
 */
t.test('prometheus-consul.yml: consul_sd for every job; the rest passes promtool', async (t) => {
  const text = readFileSync(CONSUL, 'utf8')
  const jobs = text.split(/^ {2}- job_name: /m).slice(1)
  t.same(
    jobs.map((j) => j.split('\n')[0]?.trim()),
    ['pitwall-worker', 'pitwall-projector', 'pitwall-gateway', 'pitwall-site'],
  )
  for (const j of jobs) {
    const name = j.split('\n')[0]?.trim() ?? ''
    t.match(j, /\n {4}consul_sd_configs:\n {6}- server: '[^']+:\d+'\n/, `${name}: consul_sd_configs with a server`)
    t.match(j, new RegExp(`\\n {8}services: \\['${name}'\\]\\n`), `${name}: discovers service ${name}`)
    t.notMatch(j, /static_configs/, `${name}: no static targets`)
  }
  await t.test(
    'the rest, consul_sd_configs swapped for static_configs: promtool check config',
    { skip: SKIP },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'pw-prom-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const lines = text.split('\n')
      const out: string[] = []
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i] ?? ''
        if (/^ {4}consul_sd_configs:$/.test(line)) {
          out.push("    static_configs: [{targets: ['127.0.0.1:1']}]")
          while (i + 1 < lines.length && /^ {6,}\S/.test(lines[i + 1] ?? '')) i++
          continue
        }
        out.push(line.replace(/^( {2}- )rules\//, `$1${MON}/rules/`))
      }
      const file = join(dir, 'prometheus-consul-static.yml')
      writeFileSync(file, out.join('\n'))
      const r = promtool('check', 'config', file)
      t.equal(r.code, 0, r.out)
      t.match(r.out, /SUCCESS: 1 rule files found/)
    },
  )
})

t.test(
  'the rendered local configuration (monitoring/prometheus.ts) passes promtool check config',
  { skip: SKIP },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-prom-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'prometheus.yml')
    const text = renderPrometheusConfig({
      jobs: localJobs({
        workerPorts: [metricsPort(0), metricsPort(1)],
        projectorPort: PROJECTOR_METRICS_PORT,
        gatewayPort: GATEWAY_PORT,
      }),
      scrapeIntervalS: 5,
    })
    writeFileSync(file, text)
    const r = promtool('check', 'config', file)
    t.equal(r.code, 0, r.out)
    t.match(r.out, /SUCCESS: 1 rule files found/)
    for (const job of ['pitwall-worker', 'pitwall-projector', 'pitwall-gateway']) t.match(text, `job_name: '${job}'`)
    t.match(text, `'127.0.0.1:${GATEWAY_PORT}'`)
  },
)

t.test(
  'startLocalPrometheus (npm start): a real Prometheus with the rules loaded, its URL, stop()',
  { skip: SKIP },
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pw-prom-local-'))
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
    const port = await freePort()
    const prom = await startLocalPrometheus({
      workerPorts: [await freePort()],
      projectorPort: await freePort(),
      gatewayPort: await freePort(),
      dataDir,
      port,
    })
    t.ok(prom, 'started')
    if (!prom) return
    t.teardown(() => prom.stop())
    t.equal(prom.url, `http://127.0.0.1:${port}`)
    const rules = await fetch(`${prom.url}/api/v1/rules`).then(
      async (r) => (await r.json()) as { data: { groups: Array<{ rules: unknown[] }> } },
    )
    t.ok(rules.data.groups.flatMap((g) => g.rules).length >= 25, 'the alert and recording rules are loaded')
    let jobs: string[] = []
    for (let i = 0; i < 50 && jobs.length < 3; i++) {
      const targets = await fetch(`${prom.url}/api/v1/targets`).then(
        async (r) => (await r.json()) as { data: { activeTargets: Array<{ labels: { job: string } }> } },
      )
      jobs = targets.data.activeTargets.map((x) => x.labels.job).sort()
      if (jobs.length < 3) await new Promise((r) => setTimeout(r, 100))
    }
    t.same(jobs, ['pitwall-gateway', 'pitwall-projector', 'pitwall-worker'], 'the local jobs')
    await prom.stop()
    t.not(prom.proc.exitCode === null && prom.proc.signalCode === null, true, 'the process has exited')
    t.notOk(
      await fetch(`${prom.url}/-/ready`).then(
        () => true,
        () => false,
      ),
      'nothing listens any more',
    )
  },
)
