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
import { renderInventory } from '../ansible/inventory.js'
import { JOBS, readJobHcl, varsFile } from '../nomad-jobs/jobs.js'
import { durationNs, parseJob } from './helpers/nomad-hcl.js'
import { localTopology } from '../sites/local-topology.js'
import { gatewaySpec, projectorSpec, siteEnv, workerSpec } from '../sites/local.js'
import { renderTopology } from '../sites/render.js'
import { clientUrls, type Topology } from '../sites/topology.js'

const ANSIBLE_DIR = join(import.meta.dirname, '..', 'ansible')
const NATS = process.env.NATS_SERVER_BIN ?? 'nats-server'
const have = spawnSync('ansible-playbook', ['--version'], { encoding: 'utf8' }).status === 0

interface Recap { ok: number; changed: number; failed: number; unreachable: number }

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
    nats_server_root: perHost, nats_server_manage_service: false, nats_server_owner: user, nats_server_group: group, nats_server_bin: NATS,
    consul_root: perHost, consul_manage_service: false, consul_owner: user, consul_group: group,
    nomad_root: perHost, nomad_manage_service: false,
    postgresql_root: perHost, postgresql_manage_service: false, postgresql_manage_database: false,
    // Debian's promtool is built without Consul service discovery and rejects consul_sd_configs.
    prometheus_root: perHost, prometheus_manage_service: false, prometheus_validate: false,
    grafana_root: perHost, grafana_manage_service: false,
    pitwall_root: perHost,
  }
  const file = join(root, 'extra-vars.json')
  await writeFile(file, JSON.stringify(ev))
  return file
}

function play(inventory: string, playbook: string, ev: string): { out: string; status: number | null; ms: number } {
  const t0 = Date.now()
  const r = spawnSync('ansible-playbook', ['-i', inventory, playbook, '-c', 'local', '-e', `@${ev}`], {
    cwd: ANSIBLE_DIR, encoding: 'utf8', timeout: 150_000,
    env: { ...process.env, ANSIBLE_CONFIG: join(ANSIBLE_DIR, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1', ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3', ANSIBLE_FORCE_COLOR: '0' },
  })
  return { out: `${r.stdout}${r.stderr}`, status: r.status, ms: Date.now() - t0 }
}

/** The nats-server configs rendered by Ansible equal sites/render.ts's (but for the first comment line) and pass -t. */
async function checkNats(t: Test, topo: Topology, root: string): Promise<void> {
  for (const c of renderTopology(topo, { storeRoot: '/var/lib/nats' })) {
    const file = join(root, c.server, 'etc', 'nats', c.file)
    const text = await readFile(file, 'utf8')
    t.equal(text.split('\n').slice(1).join('\n'), c.text.split('\n').slice(1).join('\n'), `${c.server}: same content as sites/render.ts`)
    const r = spawnSync(NATS, ['-t', '-c', file], { encoding: 'utf8' })
    t.equal(r.status, 0, `${c.server}: nats-server -t`, { output: `${r.stderr}${r.stdout}` })
  }
}

t.test('site.yml renders every role into temp roots; nats configs match sites/ and pass nats-server -t; a second run changes nothing', { skip: have ? false : 'ansible-playbook is not installed' }, async (t) => {
  const topo = localTopology()
  const root = await mkdtemp(join(tmpdir(), 'pw-ansible-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const ev = await extraVars(root)
  const inventory = join(ANSIBLE_DIR, 'inventory', 'local.yml')
  const first = play(inventory, 'site.yml', ev)
  t.equal(first.status, 0, 'first run succeeds', { output: first.out.slice(-3000) })
  const r1 = recap(first.out)
  t.same([...r1.keys()].sort(), ['a', 'b'], 'both sites provisioned')
  for (const [h, r] of r1) t.ok(r.failed === 0 && r.changed > 0, `${h}: first run changed ${r.changed}, failed ${r.failed}`)
  await checkNats(t, topo, root)

  // The application environment: the local launcher's variables (sites/local.ts), values from the inventory.
  for (const s of topo.sites) {
    const env = siteEnv({ site: s.name, natsUrl: clientUrls(s), partitions: topo.partitions, pgUrl: s.pgUrl })
    const read = async (svc: string): Promise<Record<string, string>> => Object.fromEntries(
      (await readFile(join(root, s.members[0]!.name, 'etc', 'pitwall', `${svc}.env`), 'utf8')).split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    const worker = await read('worker')
    const w = workerSpec(env, 0).env
    t.same(worker, Object.fromEntries(Object.entries(w).filter(([k]) => k !== 'PITWALL_WORKER_ID' && k !== 'PITWALL_METRICS_PORT')), `${s.name}: worker env (per-instance id and port come from the unit)`)
    t.same(await read('projector'), projectorSpec(env).env, `${s.name}: projector env`)
    const g = gatewaySpec(env, { jwtSecret: 'x', apiKeys: 'y' }).env
    t.same(await read('gateway'), Object.fromEntries(Object.entries(g).filter(([k]) => k !== 'PITWALL_GATEWAY_JWT_SECRET' && k !== 'PITWALL_GATEWAY_API_KEYS')), `${s.name}: gateway env (secrets come from the unit's secrets file)`)
    const consul = await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'consul.hcl'), 'utf8')
    t.match(consul, `datacenter         = "${s.consulDatacenter}"`, `${s.name}: consul datacenter`)
    const q = JSON.parse(await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'pitwall-gateway.query.json'), 'utf8')) as { Service: { Failover: { Datacenters: string[] } } }
    t.same(q.Service.Failover.Datacenters, [topo.sites.find((x) => x !== s)!.consulDatacenter], `${s.name}: gateway query fails over to the peer`)
    const nomad = await readFile(join(root, s.members[0]!.name, 'etc', 'nomad.d', 'nomad.hcl'), 'utf8')
    const nomadDoc = await parse('nomad.hcl', nomad) as Record<string, unknown>
    t.equal(nomadDoc.datacenter, s.nomadDatacenter, `${s.name}: nomad.hcl parses; datacenter from sites/`)
    t.equal(nomadDoc.region, s.nomadDatacenter, `${s.name}: one region per site`)
    // Nomad caps a task's kill_timeout at the client's max_kill_timeout (default 30 s): it must cover every job.
    const maxKill = durationNs(String((nomadDoc.client as Array<Record<string, unknown>>)[0]!.max_kill_timeout))
    for (const job of JOBS) {
      const parsed = await parseJob(await readJobHcl(job), await readFile(varsFile(s.name, job), 'utf8'))
      for (const g of parsed.TaskGroups as Array<{ Tasks: Array<{ KillTimeout: number }> }>) {
        for (const task of g.Tasks) t.ok(task.KillTimeout <= maxKill, `${s.name}: ${job} kill_timeout ${task.KillTimeout / 1e9} s <= client max_kill_timeout ${maxKill / 1e9} s`)
      }
    }
    const consulDoc = await parse('consul.hcl', consul) as Record<string, unknown>
    t.equal(consulDoc.primary_datacenter, topo.sites[0]!.consulDatacenter, `${s.name}: consul.hcl parses; one primary datacenter`)
    t.same(consulDoc.retry_join_wan, topo.sites.find((x) => x !== s)!.members.map((m) => m.host), `${s.name}: WAN join to the peer's hosts`)
    const pgSvc = JSON.parse(await readFile(join(root, s.members[0]!.name, 'etc', 'consul.d', 'pitwall-postgres.json'), 'utf8')) as { service: { name: string; port: number } }
    t.same([pgSvc.service.name, pgSvc.service.port], ['pitwall-postgres', Number(new URL(s.pgUrl).port)], `${s.name}: PostgreSQL registered with Consul`)
  }

  const second = play(inventory, 'site.yml', ev)
  t.equal(second.status, 0, 'second run succeeds', { output: second.out.slice(-3000) })
  for (const [h, r] of recap(second.out)) t.equal(r.changed, 0, `${h}: second run changed nothing`, { output: second.out.split('\n').filter((l) => l.startsWith('changed:')) })
  t.comment(`site.yml: first run ${first.ms} ms, second run ${second.ms} ms`)
})

t.test('a clustered topology (3 servers per site): routes and remotes from the inventory, same configs as sites/render.ts', { skip: have ? false : 'ansible-playbook is not installed' }, async (t) => {
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
})
