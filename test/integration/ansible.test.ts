/**
 * The Ansible roles run for real (connection local, check mode off) against the inventory generated from sites/,
 * each inventory host rendering into its own temp root (services not managed): the nats-server configs pass
 * `nats-server -t` (Ansible validates them with it too) and have the content sites/render.ts renders; the
 * pitwall environment files carry the local launcher's variables; a second run changes nothing (idempotent).
 * A clustered topology's inventory renders the routes of 3-node sites the same way. Ansible is slow: this file
 * holds every role run.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { parse } from '@cdktf/hcl2json'
import { renderInventory } from '../../ansible/inventory.js'
import { CONTROLLER_PORT, FAILOVER_AFTER_MS, JOBS, readJobHcl, varsFile } from '../../nomad-jobs/jobs.js'
import { durationNs, parseJob } from '../helpers/nomad-hcl.js'
import { localTopology } from '../../sites/local-topology.js'
import { controllerSpec, gatewaySpec, projectorSpec, topologySiteEnv, workerSpec } from '../../sites/local.js'
import { renderTopology } from '../../sites/render.js'
import { peerOf, type SiteDef, type Topology } from '../../sites/topology.js'

const ANSIBLE_DIR = join(import.meta.dirname, '..', '..', 'ansible')
const NATS = process.env.NATS_SERVER_BIN ?? 'nats-server'
const have = spawnSync('ansible-playbook', ['--version'], { encoding: 'utf8' }).status === 0

interface Recap {
  ok: number
  changed: number
  failed: number
  unreachable: number
}

function recap(out: string): Map<string, Recap> {
  const m = new Map<string, Recap>()
  for (const line of out.split('\n')) {
    const r = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(line)
    if (r) m.set(r[1]!, { ok: Number(r[2]), changed: Number(r[3]), unreachable: Number(r[4]), failed: Number(r[5]) })
  }
  return m
}

async function extraVars(root: string): Promise<string> {
  const user = userInfo().username
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim()
  const perHost = `${root}/{{ inventory_hostname }}`
  const ev = {
    nats_server_root: perHost,
    nats_server_manage_service: false,
    nats_server_owner: user,
    nats_server_group: group,
    nats_server_bin: NATS,
    consul_root: perHost,
    consul_manage_service: false,
    consul_owner: user,
    consul_group: group,
    nomad_root: perHost,
    nomad_manage_service: false,
    postgresql_root: perHost,
    postgresql_manage_service: false,
    postgresql_manage_database: false,
    // Debian's promtool is built without Consul service discovery and rejects consul_sd_configs.
    prometheus_root: perHost,
    prometheus_manage_service: false,
    prometheus_validate: false,
    grafana_root: perHost,
    grafana_manage_service: false,
    pitwall_root: perHost,
    pitwall_manage_service: false,
  }
  const file = join(root, 'extra-vars.json')
  await writeFile(file, JSON.stringify(ev))
  return file
}

function play(inventory: string, playbook: string, ev: string): { out: string; status: number | null; ms: number } {
  const t0 = Date.now()
  const r = spawnSync('ansible-playbook', ['-i', inventory, playbook, '-c', 'local', '-e', `@${ev}`], {
    cwd: ANSIBLE_DIR,
    encoding: 'utf8',
    timeout: 240_000, // a loaded 2-core machine took 150 s for the second run (CI with a helper at work)
    // Pipelining: each task's module goes to python's stdin instead of a temp file per task (fewer writes and
    // process starts; the local connection supports it, and nothing here uses become).
    env: {
      ...process.env,
      ANSIBLE_CONFIG: join(ANSIBLE_DIR, 'ansible.cfg'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
      ANSIBLE_FORCE_COLOR: '0',
      ANSIBLE_PIPELINING: '1',
    },
  })
  return { out: `${r.stdout}${r.stderr}`, status: r.status, ms: Date.now() - t0 }
}

/** The nats-server configs rendered by Ansible equal sites/render.ts's (but for the first comment line) and pass -t. */
async function checkNats(t: Test, topo: Topology, root: string): Promise<void> {
  for (const c of renderTopology(topo, { storeRoot: '/var/lib/nats' })) {
    const file = join(root, c.server, 'etc', 'nats', c.file)
    const text = await readFile(file, 'utf8')
    t.equal(
      text.split('\n').slice(1).join('\n'),
      c.text.split('\n').slice(1).join('\n'),
      `${c.server}: same content as sites/render.ts`,
    )
    const r = spawnSync(NATS, ['-t', '-c', file], { encoding: 'utf8' })
    t.equal(r.status, 0, `${c.server}: nats-server -t`, { output: `${r.stderr}${r.stdout}` })
  }
}

/** The environment the local launcher gives a site's services: the two-site siteEnv (cmd/lab.ts). */
const twoSiteEnv = (topo: Topology, s: SiteDef): Record<string, string> => topologySiteEnv(topo, s.name)

const envFile = (text: string): Record<string, string> =>
  Object.fromEntries(
    text
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )

/**
 * What the pitwall role rendered under `root/<host>/`: the environment files carry the local launcher's variables
 * (sites/local.ts, the two-site siteEnv) with values from the inventory; the site controller (env, systemd unit,
 * Consul registration) only on the first host of each site, probing the peer site's first host.
 */
async function checkPitwall(t: Test, topo: Topology, root: string): Promise<void> {
  for (const s of topo.sites) {
    const env = twoSiteEnv(topo, s)
    const first = s.members[0]!
    const read = async (svc: string): Promise<Record<string, string>> =>
      envFile(await readFile(join(root, first.name, 'etc', 'pitwall', `${svc}.env`), 'utf8'))
    const worker = await read('worker')
    const w = workerSpec(env, 0).env
    t.same(
      worker,
      Object.fromEntries(Object.entries(w).filter(([k]) => k !== 'PITWALL_WORKER_ID' && k !== 'PITWALL_METRICS_PORT')),
      `${s.name}: worker env (per-instance id and port come from the unit)`,
    )
    t.same(await read('projector'), projectorSpec(env).env, `${s.name}: projector env`)
    const g = gatewaySpec(env, { jwtSecret: 'x', apiKeys: 'y' }).env
    t.same(
      await read('gateway'),
      Object.fromEntries(
        Object.entries(g).filter(([k]) => k !== 'PITWALL_GATEWAY_JWT_SECRET' && k !== 'PITWALL_GATEWAY_API_KEYS'),
      ),
      `${s.name}: gateway env (secrets come from the unit's secrets file)`,
    )
    const peer = peerOf(topo, s.name)
    const peerUrl = `http://${peer.members[0]!.host}:${CONTROLLER_PORT}/healthz`
    const ctl = await read('controller')
    const spec = controllerSpec(env, CONTROLLER_PORT, peerUrl).env
    const own = [
      'PITWALL_METRICS_HOST',
      'PITWALL_FAILOVER_AFTER_MS',
      'PITWALL_DISCOVERY',
      'CONSUL_HTTP_ADDR',
      'PITWALL_CONSUL_DATACENTER',
      'PITWALL_PEER_CONSUL_DATACENTER',
    ]
    t.same(
      Object.fromEntries(Object.entries(ctl).filter(([k]) => !own.includes(k))),
      spec,
      `${s.name}: controller env = sites/local.ts controllerSpec (peer ${peer.name}'s /healthz)`,
    )
    t.same(
      own.map((k) => ctl[k]),
      [
        first.host,
        String(FAILOVER_AFTER_MS),
        'consul',
        'http://127.0.0.1:8500',
        s.consulDatacenter,
        peer.consulDatacenter,
      ],
      `${s.name}: controller listens on the host, Consul health of ${peer.consulDatacenter}`,
    )
    const unit = await readFile(
      join(root, first.name, 'etc', 'systemd', 'system', 'pitwall-controller.service'),
      'utf8',
    )
    t.match(
      unit,
      /^ExecStart=\/usr\/bin\/node \/opt\/pitwall\/dist\/cmd\/controller\.js$/m,
      `${s.name}: the unit runs dist/${controllerSpec(env, 0).script}`,
    )
    t.match(unit, /^EnvironmentFile=\/etc\/pitwall\/controller\.env$/m, `${s.name}: unit reads controller.env`)
    t.match(unit, /^KillSignal=SIGTERM$/m)
    const reg = JSON.parse(await readFile(join(root, first.name, 'etc', 'consul.d', 'pitwall-site.json'), 'utf8')) as {
      service: { name: string; port: number; tags: string[]; checks: Array<{ http: string }> }
    }
    t.same(
      [reg.service.name, reg.service.port, reg.service.checks[0]?.http],
      ['pitwall-site', CONTROLLER_PORT, `http://${first.host}:${CONTROLLER_PORT}/healthz`],
      `${s.name}: controller registered with Consul, HTTP check on /healthz`,
    )
    t.ok(reg.service.tags.includes('metrics'), `${s.name}: tagged metrics (Prometheus)`)
    for (const m of s.members.slice(1)) {
      await t.rejects(
        readFile(join(root, m.name, 'etc', 'pitwall', 'controller.env'), 'utf8'),
        { code: 'ENOENT' },
        `${m.name}: no second controller in site ${s.name}`,
      )
    }
  }
}

t.test(
  'site.yml renders every role into temp roots; nats configs match sites/ and pass nats-server -t; a second run changes nothing',
  { skip: have ? false : 'ansible-playbook is not installed' },
  async (t) => {
    const topo = localTopology()
    const root = await mkdtemp(join(tmpdir(), 'pw-ansible-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    const ev = await extraVars(root)
    const inventory = join(ANSIBLE_DIR, 'inventory', 'local.yml')
    const first = play(inventory, 'site.yml', ev)
    t.equal(first.status, 0, 'first run succeeds', { output: first.out.slice(-3000) })
    const r1 = recap(first.out)
    t.same([...r1.keys()].sort(), ['a', 'b'], 'both sites provisioned')
    for (const [h, r] of r1)
      t.ok(r.failed === 0 && r.changed > 0, `${h}: first run changed ${r.changed}, failed ${r.failed}`)
    await checkNats(t, topo, root)

    await checkPitwall(t, topo, root)
    for (const s of topo.sites) {
      const consul = await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'consul.hcl'), 'utf8')
      t.match(consul, `datacenter         = "${s.consulDatacenter}"`, `${s.name}: consul datacenter`)
      const q = JSON.parse(
        await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'pitwall-gateway.query.json'), 'utf8'),
      ) as { Service: { Failover: { Datacenters: string[] } } }
      t.same(
        q.Service.Failover.Datacenters,
        [topo.sites.find((x) => x !== s)!.consulDatacenter],
        `${s.name}: gateway query fails over to the peer`,
      )
      const nomad = await readFile(join(root, s.members[0]!.name, 'etc', 'nomad.d', 'nomad.hcl'), 'utf8')
      const nomadDoc = (await parse('nomad.hcl', nomad)) as Record<string, unknown>
      t.equal(nomadDoc.datacenter, s.nomadDatacenter, `${s.name}: nomad.hcl parses; datacenter from sites/`)
      t.equal(nomadDoc.region, s.nomadDatacenter, `${s.name}: one region per site`)
      // Nomad caps a task's kill_timeout at the client's max_kill_timeout (default 30 s): it must cover every job.
      const maxKill = durationNs(String((nomadDoc.client as Array<Record<string, unknown>>)[0]!.max_kill_timeout))
      const retry = (
        ((nomadDoc.client as Array<Record<string, unknown>>)[0]!.template as Array<Record<string, unknown>>)[0]!
          .consul_retry as Array<Record<string, unknown>>
      )[0]
      t.equal(
        retry?.attempts,
        0,
        `${s.name}: unlimited consul-template retries (a lost peer DC does not kill the survivor's tasks)`,
      )
      for (const job of JOBS) {
        const parsed = await parseJob(await readJobHcl(job), await readFile(varsFile(s.name, job), 'utf8'))
        for (const g of parsed.TaskGroups as Array<{ Tasks: Array<{ KillTimeout: number }> }>) {
          for (const task of g.Tasks)
            t.ok(
              task.KillTimeout <= maxKill,
              `${s.name}: ${job} kill_timeout ${task.KillTimeout / 1e9} s <= client max_kill_timeout ${maxKill / 1e9} s`,
            )
        }
      }
      const consulDoc = (await parse('consul.hcl', consul)) as Record<string, unknown>
      t.equal(
        consulDoc.primary_datacenter,
        topo.sites[0]!.consulDatacenter,
        `${s.name}: consul.hcl parses; one primary datacenter`,
      )
      t.same(
        consulDoc.retry_join_wan,
        topo.sites.find((x) => x !== s)!.members.map((m) => m.host),
        `${s.name}: WAN join to the peer's hosts`,
      )
      const pgSvc = JSON.parse(
        await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'pitwall-postgres.json'), 'utf8'),
      ) as { service: { name: string; port: number } }
      t.same(
        [pgSvc.service.name, pgSvc.service.port],
        ['pitwall-postgres', Number(new URL(s.pgUrl).port)],
        `${s.name}: PostgreSQL registered with Consul`,
      )
    }

    const second = play(inventory, 'site.yml', ev)
    t.equal(second.status, 0, 'second run succeeds', { output: second.out.slice(-3000) })
    for (const [h, r] of recap(second.out))
      t.equal(r.changed, 0, `${h}: second run changed nothing`, {
        output: second.out.split('\n').filter((l) => l.startsWith('changed:')),
      })
    t.comment(`site.yml: first run ${first.ms} ms, second run ${second.ms} ms`)
  },
)

t.test(
  'a clustered topology (3 servers per site): routes and remotes from the inventory, same configs as sites/render.ts',
  { skip: have ? false : 'ansible-playbook is not installed' },
  async (t) => {
    const topo = localTopology({ clustered: true })
    const root = await mkdtemp(join(tmpdir(), 'pw-ansible-cl-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    const inventory = join(root, 'inventory.yml')
    await writeFile(inventory, renderInventory(topo))
    const run = play(inventory, 'nats.yml', await extraVars(root))
    t.equal(run.status, 0, 'nats.yml succeeds', { output: run.out.slice(-3000) })
    t.equal(recap(run.out).size, 6, 'six servers')
    await checkNats(t, topo, root)
    t.comment(`nats.yml on 6 hosts: ${run.ms} ms`)
  },
)

/**
 * The pitwall role without Ansible: its tasks/main.yml interpreted by a small runner (assert, file, template, block
 * and when, loop; a systemd task would be an error since services are not managed here) over the inventory's
 * variables with the role's defaults, its templates rendered by Jinja2 configured as Ansible configures it
 * (trim_blocks, keep_trailing_newline) plus the filters and tests the role uses. Ansible itself is the reference
 * (the tests above); this runs wherever Python has jinja2 and PyYAML, so the role's logic and templates are
 * checked even on machines without Ansible.
 */
const ROLE_RUNNER = `
import json, os, re, sys
import jinja2, yaml

role_dir, inventory, root, extra_json = sys.argv[1:5]
extra = json.loads(extra_json)

class Loader(yaml.SafeLoader):
    pass
Loader.add_constructor('!unsafe', lambda l, n: l.construct_scalar(n))
inv = yaml.load(open(inventory), Loader=Loader)
defaults = yaml.safe_load(open(os.path.join(role_dir, 'defaults', 'main.yml'))) or {}

groups = {'all': []}
group_vars = {}
host_vars = {}
host_groups = {}
def walk(name, node, parents):
    node = node or {}
    group_vars[name] = node.get('vars') or {}
    groups.setdefault(name, [])
    for h, hv in (node.get('hosts') or {}).items():
        host_vars.setdefault(h, {}).update(hv or {})
        for g in parents + [name]:
            if h not in groups.setdefault(g, []):
                groups[g].append(h)
            host_groups.setdefault(h, [])
            if g not in host_groups[h]:
                host_groups[h].append(g)
    for c, cn in (node.get('children') or {}).items():
        if c in group_vars and not cn:
            # a reference to a group defined elsewhere: its hosts join the parents
            for h in groups.get(c, []):
                for g in parents + [name]:
                    if h not in groups.setdefault(g, []):
                        groups[g].append(h)
            continue
        walk(c, cn, parents + [name])
walk('all', inv['all'], [])

env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(role_dir, 'templates')), trim_blocks=True,
                         keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
env.filters['to_json'] = lambda v: json.dumps(v)
env.filters['intersect'] = lambda a, b: [x for i, x in enumerate(a) if x in b and x not in a[:i]]
env.filters['extract'] = lambda key, container, morekey=None: container[key] if morekey is None else container[key][morekey]
env.filters['to_nice_json'] = lambda v: json.dumps(v, indent=4, sort_keys=True)
env.filters['bool'] = lambda v: v if isinstance(v, bool) else str(v).lower() in ('yes', 'on', '1', 'true', 'y')
env.tests['match'] = lambda v, p: re.match(p, str(v)) is not None

def hostvars_of(h):
    v = dict(defaults)
    v.update(group_vars.get('all', {}))
    for g in host_groups.get(h, []):
        if g != 'all':
            v.update(group_vars.get(g, {}))
    v.update(host_vars.get(h, {}))
    v['inventory_hostname'] = h
    return v

hostvars = {h: hostvars_of(h) for h in host_vars}

def templ(s, ctx):
    return env.from_string(s).render(ctx) if isinstance(s, str) else s

def expr(e, ctx):
    if isinstance(e, bool):
        return e
    return env.compile_expression(e, undefined_to_none=False)(ctx)

report = {}
for h in host_vars:
    ctx = dict(hostvars[h])
    ctx.update(extra)
    for k, v in extra.items():
        if isinstance(v, str):
            ctx[k] = templ(v, ctx)
    ctx.update({'groups': groups, 'hostvars': hostvars, 'ansible_managed': 'Ansible managed'})
    done = []
    def run(tasks, ctx):
        for task in tasks:
            if 'when' in task and not expr(task['when'], ctx):
                continue
            if 'block' in task:
                run(task['block'], ctx)
                continue
            items = task.get('loop', [None])
            for item in items:
                c = dict(ctx, item=item)
                if 'ansible.builtin.assert' in task:
                    for e in task['ansible.builtin.assert']['that']:
                        if not expr(e, c):
                            raise SystemExit(f'{h}: assertion failed: {e}')
                elif 'ansible.builtin.file' in task:
                    os.makedirs(templ(task['ansible.builtin.file']['path'], c), exist_ok=True)
                elif 'ansible.builtin.template' in task:
                    a = task['ansible.builtin.template']
                    dest = templ(a['dest'], c)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, 'w') as f:
                        f.write(env.get_template(templ(a['src'], c)).render(c))
                    done.append(dest)
                elif 'ansible.builtin.systemd' in task:
                    raise SystemExit(f'{h}: would manage a service: {task["name"]}')
                else:
                    raise SystemExit(f'{h}: unsupported module in {task["name"]}')
    run(yaml.safe_load(open(os.path.join(role_dir, 'tasks', 'main.yml'))), ctx)
    report[h] = done
print(json.dumps(report))
`

const python = ['python3', '/usr/bin/python3'].find(
  (p) => spawnSync(p, ['-c', 'import jinja2, yaml'], { encoding: 'utf8' }).status === 0,
)

function renderRole(
  role: string,
  inventory: string,
  ev: Record<string, unknown>,
): { status: number | null; out: string } {
  const r = spawnSync(
    python!,
    [
      '-c',
      ROLE_RUNNER,
      join(ANSIBLE_DIR, 'roles', role),
      inventory,
      ev.pitwall_root_dir as string,
      JSON.stringify(ev.vars),
    ],
    { encoding: 'utf8' },
  )
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

t.test(
  'the pitwall role rendered with Jinja2 (no Ansible needed): two-site env files, one controller per site',
  { skip: python ? false : 'python3 with jinja2 and PyYAML is not installed' },
  async (t) => {
    for (const topo of [localTopology(), localTopology({ clustered: true })]) {
      const root = await mkdtemp(join(tmpdir(), 'pw-pitwall-role-'))
      t.teardown(() => rm(root, { recursive: true, force: true }))
      const inventory = join(root, 'inventory.yml')
      await writeFile(inventory, renderInventory(topo))
      const r = renderRole('pitwall', inventory, {
        pitwall_root_dir: root,
        vars: { pitwall_root: `${root}/{{ inventory_hostname }}`, pitwall_manage_service: false },
      })
      t.equal(r.status, 0, `${topo.sites[0]!.members.length} server(s) per site: the role's tasks ran`, {
        output: r.out,
      })
      const done = JSON.parse(r.out) as Record<string, string[]>
      t.same(Object.keys(done).sort(), topo.sites.flatMap((s) => s.members.map((m) => m.name)).sort(), 'every host')
      await checkPitwall(t, topo, root)
      const nomad = renderRole('nomad', inventory, {
        pitwall_root_dir: root,
        vars: { nomad_root: `${root}/{{ inventory_hostname }}`, nomad_manage_service: false },
      })
      t.equal(nomad.status, 0, "the nomad role's tasks ran", { output: nomad.out })
      for (const s of topo.sites) {
        const doc = (await parse(
          'nomad.hcl',
          await readFile(join(root, s.members[0]!.name, 'etc', 'nomad.d', 'nomad.hcl'), 'utf8'),
        )) as Record<string, Array<Record<string, Array<Record<string, Array<Record<string, unknown>>>>>>>
        const retry = doc.client?.[0]?.template?.[0]?.consul_retry?.[0]
        t.equal(
          retry?.attempts,
          0,
          `${s.name}: consul-template retries Consul lookups forever (a lost peer DC never gets the survivor's tasks killed)`,
        )
        t.equal(retry?.max_backoff, '1m')
      }
      // An inventory the role's assertions refuse: a home partition out of range.
      const bad = join(root, 'bad.yml')
      await writeFile(
        bad,
        renderInventory(topo).replace(/pitwall_home_partitions: \[0, /, 'pitwall_home_partitions: [99, '),
      )
      const refused = renderRole('pitwall', bad, {
        pitwall_root_dir: root,
        vars: { pitwall_root: `${root}/x`, pitwall_manage_service: false },
      })
      t.not(refused.status, 0, 'home partition 99 of 16 refused by the input assertions')
      t.match(refused.out, /assertion failed: pitwall_home_partitions/)
    }
  },
)
