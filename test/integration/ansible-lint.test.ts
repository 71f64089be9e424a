/**
 * The Ansible tree without running roles: the checked-in inventory equals the one generated from sites/; every
 * playbook passes `ansible-playbook --syntax-check`; `ansible-lint` passes (skipped with a message when the
 * binary is absent); each role has defaults/tasks/handlers/templates, variables prefixed by the role, input
 * assertions first, restarts through handlers, and no address other than loopback (addresses come from the
 * inventory).
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { renderInventory } from '../../ansible/inventory.js'
import { localTopology } from '../../sites/local-topology.js'

const DIR = join(import.meta.dirname, '..', '..', 'ansible')
const ROLES = ['nats_server', 'consul', 'nomad', 'postgresql', 'prometheus', 'grafana', 'pitwall']
const env = { ...process.env, ANSIBLE_CONFIG: join(DIR, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1' }
const which = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0

async function playbooks(): Promise<string[]> {
  return (await readdir(DIR)).filter((f) => f.endsWith('.yml')).sort()
}

t.test('the checked-in inventory is the one generated from sites/', async (t) => {
  t.equal(
    await readFile(join(DIR, 'inventory', 'local.yml'), 'utf8'),
    renderInventory(localTopology()),
    'up to date (pitwall deploy --write-vars)',
  )
  t.match(
    renderInventory(localTopology()),
    'nats_server_mapping_to: !unsafe "tlm.a.{{partition(16,1,2)}}',
    'templated strings are !unsafe',
  )
})

t.test(
  'ansible-playbook --syntax-check on every playbook',
  { skip: which('ansible-playbook') ? false : 'ansible-playbook is not installed' },
  async (t) => {
    const books = await playbooks()
    t.ok(books.includes('site.yml') && books.includes('nats.yml'))
    for (const b of books) {
      const r = spawnSync('ansible-playbook', ['--syntax-check', '-i', join(DIR, 'inventory', 'local.yml'), b], {
        cwd: DIR,
        env,
        encoding: 'utf8',
      })
      t.equal(r.status, 0, `${b}: syntax ok`, { output: `${r.stdout}${r.stderr}` })
    }
  },
)

t.test(
  'ansible-lint passes on every playbook and role',
  { skip: which('ansible-lint') ? false : 'ansible-lint is not installed (apt install ansible-lint); skipped' },
  async (t) => {
    const r = spawnSync('ansible-lint', ['--nocolor', ...(await playbooks())], {
      cwd: DIR,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    })
    t.equal(r.status, 0, 'ansible-lint: no violations', { output: `${r.stdout}${r.stderr}` })
    t.match(`${r.stdout}${r.stderr}`, /Passed with production profile/, 'production profile')
  },
)

t.test('roles: layout, prefixed variables, assertions first, handlers, no hard-coded addresses', async (t) => {
  for (const role of ROLES) {
    for (const d of ['defaults', 'tasks', 'handlers', 'templates'])
      t.ok((await stat(join(DIR, 'roles', role, d))).isDirectory(), `${role}/${d}`)
    const defaults = await readFile(join(DIR, 'roles', role, 'defaults', 'main.yml'), 'utf8')
    const keys = [...defaults.matchAll(/^([A-Za-z_][A-Za-z0-9_]*):/gm)].map((m) => m[1]!)
    t.ok(keys.length > 0, `${role}: has defaults`)
    for (const k of keys) t.ok(k.startsWith(`${role}_`), `${role}: variable ${k} prefixed`)
    const tasks = await readFile(join(DIR, 'roles', role, 'tasks', 'main.yml'), 'utf8')
    const firstModule = /^- name: .*\n\s+([a-z_.]+):/m.exec(tasks)?.[1]
    t.equal(firstModule, 'ansible.builtin.assert', `${role}: input assertions run first`)
    const handlers = await readFile(join(DIR, 'roles', role, 'handlers', 'main.yml'), 'utf8')
    const handlerNames = [...handlers.matchAll(/^- name: (.+)$/gm)].map((m) => m[1]!)
    t.ok(handlerNames.length > 0, `${role}: handlers`)
    for (const n of [...tasks.matchAll(/notify: (.+)$/gm)].map((m) => m[1]!.trim()))
      t.ok(handlerNames.includes(n), `${role}: notify '${n}' has a handler`)
    const files = [
      join('defaults', 'main.yml'),
      join('tasks', 'main.yml'),
      join('handlers', 'main.yml'),
      ...(await readdir(join(DIR, 'roles', role, 'templates'))).map((f) => join('templates', f)),
    ]
    for (const f of files) {
      const text = await readFile(join(DIR, 'roles', role, f), 'utf8')
      const ips = [...text.matchAll(/\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b/g)]
        .map((m) => m[1]!)
        .filter((ip) => !ip.startsWith('127.'))
      t.same(ips, [], `${role}/${f}: no addresses but loopback`)
    }
  }
})
