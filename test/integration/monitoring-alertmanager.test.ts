/**
 * monitoring/alertmanager.yml: well formed for Alertmanager 0.25 (the fields its documentation lists for the
 * parts used here), and every alert of rules/pitwall.rules.yml reaches a webhook receiver. Routing is judged by a
 * reference written from Alertmanager's documented semantics (a child route matches when all its matchers
 * match; the first matching child wins; otherwise the parent's receiver), not by reading the config's intent.
 * With amtool on PATH, `amtool check-config` must also pass.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

const MON = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'monitoring')
const CONFIG = join(MON, 'alertmanager.yml')

interface Route {
  receiver?: string
  matchers?: string[]
  routes?: Route[]
  continue?: boolean
  group_by?: string[]
}
interface Receiver {
  name: string
  webhook_configs?: { url: string; send_resolved?: boolean }[]
}
const cfg = parse(readFileSync(CONFIG, 'utf8')) as {
  route: Route
  receivers: Receiver[]
  global?: Record<string, unknown>
}
const rules = parse(readFileSync(join(MON, 'rules', 'pitwall.rules.yml'), 'utf8')) as {
  groups: { rules: { alert?: string; labels?: Record<string, string> }[] }[]
}

/** Equality matchers only (`name="value"`), the only form this config uses; anything else fails the test. */
function matches(m: string, labels: Record<string, string>): boolean {
  const x = /^([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"$/.exec(m)
  if (!x) throw new Error(`unsupported matcher ${m}`)
  return labels[x[1] ?? ''] === x[2]
}
function receiverOf(route: Route, labels: Record<string, string>, inherited: string): string {
  const own = route.receiver ?? inherited
  for (const child of route.routes ?? []) {
    if ((child.matchers ?? []).every((m) => matches(m, labels))) return receiverOf(child, labels, own)
  }
  return own
}

void t.test('config shape (Alertmanager 0.25 fields)', async (t) => {
  t.same(
    Object.keys(cfg).filter((k) => !['global', 'route', 'receivers', 'inhibit_rules', 'templates'].includes(k)),
    [],
    'only known top-level keys',
  )
  t.type(cfg.route.receiver, 'string', 'the root route has a receiver')
  const names = new Set(cfg.receivers.map((r) => r.name))
  t.equal(names.size, cfg.receivers.length, 'receiver names are unique')
  const walk = (r: Route): void => {
    if (r.receiver !== undefined) t.ok(names.has(r.receiver), `route receiver ${r.receiver} is defined`)
    for (const m of r.matchers ?? []) t.match(m, /^[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"$/, `matcher ${m}`)
    for (const c of r.routes ?? []) walk(c)
  }
  walk(cfg.route)
  for (const r of cfg.receivers) {
    t.ok((r.webhook_configs ?? []).length > 0, `${r.name} has a webhook`)
    for (const w of r.webhook_configs ?? []) {
      t.ok(/^https?:\/\//.test(w.url), `${r.name} url is http(s)`)
      t.equal(w.send_resolved, true, `${r.name} tells when an alert resolves`)
    }
  }
})

void t.test('every alert rule reaches a webhook; critical ones page', async (t) => {
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined)
  t.ok(alerts.length > 0, 'the rules file has alerts')
  const page = cfg.receivers.find((r) => r.name === 'sre-page')
  t.ok(page, 'a paging receiver exists')
  for (const a of alerts) {
    const labels: Record<string, string> = { alertname: a.alert ?? '', site: 'a', ...(a.labels ?? {}) }
    const to = receiverOf(cfg.route, labels, cfg.route.receiver ?? '')
    const rcv = cfg.receivers.find((r) => r.name === to)
    t.ok(rcv && (rcv.webhook_configs ?? []).length > 0, `${a.alert} -> ${to} (webhook)`)
    if (labels.severity === 'critical') t.equal(to, 'sre-page', `${a.alert} (critical) pages`)
    else t.not(to, 'sre-page', `${a.alert} (${labels.severity ?? 'no severity'}) does not page`)
  }
})

void t.test('amtool check-config', async (t) => {
  const which = spawnSync('sh', ['-c', 'command -v amtool'], { encoding: 'utf8' })
  if (which.status !== 0) {
    t.pass('amtool not installed (Debian package prometheus-alertmanager); its check is skipped')
    return
  }
  const r = spawnSync('amtool', ['check-config', CONFIG], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stdout + r.stderr)
})
