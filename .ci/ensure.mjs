#!/usr/bin/env node
// Bootstrap check run before `npm start|test|bench` (prestart/pretest/prebench) and by .ci/run.
//
//   node .ci/ensure.mjs start|test|bench [--dry-run]
//   node .ci/ensure.mjs node      only the Node.js version against package.json engines.node
//
// Makes sure that node_modules matches package-lock.json, nats-server is installed, PostgreSQL is reachable at
// PGHOST/PGPORT with trust auth for PGUSER/PGDATABASE (default postgres/test), a JetStream-enabled NATS server
// listens on 127.0.0.1:4222 (PITWALL_NATS_URL), and dist/ is up to date with the TypeScript sources. It fixes
// what it can (npm ci, apt-get install, start the servers, npm run build) with one line per action, prints
// nothing when everything is in place (fast path: probes only, no child processes), and exits 1 with the exact
// command to run when it cannot fix something itself.
//
// Only node: built-ins: this runs before node_modules exists.
//
// Environment:
//   PGHOST, PGPORT, PGUSER, PGDATABASE   PostgreSQL the tests use (127.0.0.1, 5432, postgres, test)
//   PITWALL_NATS_URL                     NATS for start/bench (nats://127.0.0.1:4222)
//   NATS_SERVER_BIN                      nats-server the tests spawn (default: `nats-server` on PATH)
//   PITWALL_OPTIONAL_PKGS                space-separated optional Debian packages to install (e.g.
//                                        "prometheus ansible"); unset = none. See ensureOptional().
//   PITWALL_ENSURE_NO_BUILD=1            skip the dist/ check (.ci/run builds explicitly)
//   --dry-run                            print what would be done, change nothing. With --dry-run only,
//   PITWALL_ENSURE_SIMULATE              comma list of pretend states to exercise the repair paths without
//                                        touching the shared servers: no-node-modules, stale-dist, no-nats-bin,
//                                        pg-down, pg-not-installed, pg-no-db, pg-no-trust, pg-ours (as if this
//                                        script had installed PostgreSQL), nats-down, not-root
//   PITWALL_ENSURE_NODE_VERSION          with --dry-run: check package.json engines.node against this version
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const MODES = new Set(['start', 'test', 'bench', 'node'])
const args = process.argv.slice(2)
const mode = args.find((a) => !a.startsWith('-'))
const DRY = args.includes('--dry-run')
if (!mode || !MODES.has(mode)) {
  console.error('usage: node .ci/ensure.mjs start|test|bench|node [--dry-run]')
  process.exit(2)
}
const SIM = new Set(
  DRY
    ? (process.env.PITWALL_ENSURE_SIMULATE ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [],
)

const PG = {
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 5432),
  user: process.env.PGUSER || 'postgres',
  database: process.env.PGDATABASE || 'test',
}
const NATS = natsTarget(process.env.PITWALL_NATS_URL)
const IS_ROOT = !SIM.has('not-root') && typeof process.getuid === 'function' && process.getuid() === 0
// The shared server on 4222 uses the standard paths; another port gets its own (never share a JetStream store).
const NATS_SUFFIX = NATS.port === 4222 ? '' : `-${NATS.port}`
const NATS_STORE = `/var/lib/nats-server${NATS_SUFFIX}`
const NATS_LOG = `/var/log/nats-server${NATS_SUFFIX}.log`
// start-stop-daemon matching on --exec alone would take the tests' own nats-servers for "already running" and do
// nothing; a pidfile makes it match only the server it started.
const NATS_PIDFILE = `/run/pitwall-nats-server${NATS_SUFFIX}.pid`
// Written when this script installed PostgreSQL or created its cluster: only then do we edit pg_hba.conf.
const PG_OURS_MARKER = '/var/lib/pitwall/postgresql-installed-by-ensure'
const BUILD_DIRS = [
  'actors',
  'projector',
  'sites',
  'simulators',
  'gateway',
  'consul',
  'nomad-jobs',
  'ansible',
  'monitoring',
  'cmd',
  'bench',
  'test',
] // test/fixtures are spawned from dist/
const OPTIONAL_PROBES = { prometheus: 'promtool', ansible: 'ansible-playbook', 'ansible-core': 'ansible-playbook' }

const say = (msg) => console.log(`ensure: ${DRY ? '[dry-run] would ' : ''}${msg}`)
const note = (msg) => console.log(`ensure: ${msg}`)
class Fatal extends Error {}
const fail = (msg) => {
  throw new Fatal(msg)
}

// ---------------------------------------------------------------------------------------------- small helpers

function natsTarget(url) {
  const first = (url || 'nats://127.0.0.1:4222').split(',')[0].trim()
  try {
    const u = new URL(first.includes('://') ? first : `nats://${first}`)
    return { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(u.port || 4222) }
  } catch {
    return { host: '127.0.0.1', port: 4222 }
  }
}

function isLocal(host) {
  return host.startsWith('/') || ['127.0.0.1', 'localhost', '::1', '0.0.0.0'].includes(host)
}

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs
  } catch {
    return -1
  }
}

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK)
    return fs.statSync(p).isFile()
  } catch {
    return false
  }
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, cmd))) return path.join(dir, cmd)
  }
  return null
}

/** Like which(), but also looks in the sbin dirs a non-login root shell may lack. */
function findTool(cmd) {
  return (
    which(cmd) ?? ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => path.join(d, cmd)).find(isExecutable) ?? null
  )
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Runs a command; output is shown live when `show`, otherwise captured and returned for error messages. */
function run(cmd, argv, { show = false, env } = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: ROOT,
    stdio: show ? 'inherit' : 'pipe',
    encoding: 'utf8',
    env: env ? { ...process.env, ...env } : process.env,
  })
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim()
  return { ok: r.status === 0, status: r.status, out }
}

const tail = (text, n = 15) => text.split('\n').slice(-n).join('\n')
function tailFile(p, n = 15) {
  try {
    return tail(fs.readFileSync(p, 'utf8').trimEnd(), n)
  } catch {
    return `(cannot read ${p})`
  }
}

// --------------------------------------------------------------------------------------------------- probes

/** Opens a TCP (or unix) socket, optionally speaks a little, resolves with whatever `talk` decides. */
function probeSocket(opts, talk, silent, timeoutMs = 1500) {
  return new Promise((resolve) => {
    let done = false
    let connected = false
    const sock = net.connect(opts)
    const finish = (v) => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(v)
    }
    // Connected but no (complete) answer: something else listens there.
    const timer = setTimeout(
      () => finish(connected ? { up: true, ...silent } : { up: false, why: 'timeout' }),
      timeoutMs,
    )
    sock.on('error', (e) => finish(connected ? { up: true, ...silent } : { up: false, why: e.code ?? e.message }))
    sock.on('close', () => finish(connected ? { up: true, ...silent } : { up: false, why: 'closed' }))
    sock.on('connect', () => {
      connected = true
      talk(sock, finish)
    })
  })
}

/** NATS: the server greets with `INFO {json}\r\n`; require JetStream. */
function probeNats() {
  if (SIM.has('nats-down')) return Promise.resolve({ up: false, why: 'simulated' })
  return probeSocket(
    { host: NATS.host, port: NATS.port },
    (sock, finish) => {
      let buf = ''
      sock.setEncoding('utf8')
      sock.on('data', (d) => {
        buf += d
        const eol = buf.indexOf('\r\n')
        if (eol < 0) return
        const line = buf.slice(0, eol)
        if (!line.startsWith('INFO ')) return finish({ up: true, nats: false })
        let info = {}
        try {
          info = JSON.parse(line.slice(5))
        } catch {}
        finish({ up: true, nats: true, jetstream: info.jetstream === true, version: info.version })
      })
    },
    { nats: false },
  )
}

/**
 * PostgreSQL: a v3 StartupMessage as PGUSER to PGDATABASE (no password). Resolves
 *   { up: false } | { up: true, ok: true } | { up: true, auth: <method code> } | { up: true, code, message }.
 * With `query`, runs it once authenticated (simple query protocol) and reports its error, if any.
 */
function probePg({ database = PG.database, query } = {}) {
  if (SIM.has('pg-down') || SIM.has('pg-not-installed')) return Promise.resolve({ up: false, why: 'simulated' })
  if (SIM.has('pg-no-trust')) return Promise.resolve({ up: true, auth: 10 })
  if (SIM.has('pg-no-db') && database === PG.database && !query) {
    return Promise.resolve({ up: true, code: '3D000', message: `database "${database}" does not exist` })
  }
  const where = PG.host.startsWith('/')
    ? { path: path.join(PG.host, `.s.PGSQL.${PG.port}`) }
    : { host: PG.host, port: PG.port }
  return probeSocket(
    where,
    (sock, finish) => {
      const params = Buffer.from(`user\0${PG.user}\0database\0${database}\0application_name\0pitwall-ensure\0\0`)
      const head = Buffer.alloc(8)
      head.writeInt32BE(8 + params.length, 0)
      head.writeInt32BE(196608, 4) // protocol 3.0
      sock.write(Buffer.concat([head, params]))
      let buf = Buffer.alloc(0)
      let queried = false
      let result = null
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d])
        while (buf.length >= 5) {
          const type = String.fromCharCode(buf[0])
          const len = buf.readInt32BE(1)
          if (buf.length < 1 + len) return
          const body = buf.subarray(5, 1 + len)
          buf = buf.subarray(1 + len)
          if (type === 'E') {
            const fields = {}
            for (let i = 0; i < body.length && body[i] !== 0;) {
              const end = body.indexOf(0, i + 1)
              fields[String.fromCharCode(body[i])] = body.toString('utf8', i + 1, end)
              i = end + 1
            }
            const err = { up: true, code: fields.C, message: fields.M }
            if (!queried) return finish(err)
            result = err // a query error: wait for ReadyForQuery
          } else if (type === 'R') {
            const method = body.readInt32BE(0)
            if (method !== 0) return finish({ up: true, auth: method })
          } else if (type === 'Z') {
            if (!query || queried) {
              sock.write(Buffer.from([0x58, 0, 0, 0, 4])) // Terminate
              return finish(result ?? { up: true, ok: true })
            }
            queried = true
            const q = Buffer.from(`${query}\0`)
            const qh = Buffer.alloc(5)
            qh.write('Q', 0)
            qh.writeInt32BE(4 + q.length, 1)
            sock.write(Buffer.concat([qh, q]))
          }
        }
      })
    },
    { code: 'silent', message: 'no valid answer to a startup message (is it PostgreSQL?)' },
    3000,
  )
}

async function waitFor(probe, accept, ms) {
  const until = Date.now() + ms
  let last
  for (;;) {
    last = await probe()
    if (accept(last) || Date.now() > until) return last
    await sleep(250)
  }
}

// ----------------------------------------------------------------------------------------------- node_modules

function depsState() {
  if (SIM.has('no-node-modules')) return 'missing'
  if (!fs.existsSync(path.join(ROOT, 'node_modules'))) return 'missing'
  const installed = mtime(path.join(ROOT, 'node_modules', '.package-lock.json'))
  if (installed < 0) return 'incomplete'
  return mtime(path.join(ROOT, 'package-lock.json')) > installed ? 'stale' : 'ok'
}

function ensureDeps(state) {
  if (!fs.existsSync(path.join(ROOT, 'package-lock.json')))
    fail('package-lock.json is missing: run `npm install` and commit it')
  const why = {
    missing: 'node_modules is missing',
    incomplete: 'node_modules has no .package-lock.json',
    stale: 'package-lock.json changed',
  }[state]
  say(`run npm ci (${why})`)
  if (DRY) return
  const r = run('npm', ['ci', '--no-audit', '--no-fund'], { show: true })
  if (!r.ok) fail('`npm ci` failed (see above); fix it and rerun')
}

// --------------------------------------------------------------------------------------------------- apt-get

function canApt() {
  return IS_ROOT && findTool('apt-get') !== null
}

let aptUpdated = false
function aptInstall(pkgs) {
  say(`apt-get install -y ${pkgs.join(' ')}`)
  if (DRY) return
  const env = { DEBIAN_FRONTEND: 'noninteractive' }
  const argv = ['install', '-y', '-q', '--no-install-recommends', ...pkgs]
  let r = run('apt-get', argv, { env })
  if (!r.ok && !aptUpdated) {
    note('apt-get install failed; running apt-get update and retrying')
    const u = run('apt-get', ['update', '-q'], { env })
    aptUpdated = true
    if (!u.ok) fail(`apt-get update failed:\n${tail(u.out)}`)
    r = run('apt-get', argv, { env })
  }
  if (!r.ok) fail(`apt-get install -y ${pkgs.join(' ')} failed:\n${tail(r.out)}`)
}

/**
 * Optional tools some parts need (promtool for the Prometheus rule tests, ansible for the playbook checks):
 * installs the given Debian packages whose probe binary is missing. Never called by default: only when
 * PITWALL_OPTIONAL_PKGS asks (e.g. `PITWALL_OPTIONAL_PKGS="prometheus ansible" bash .ci/run`).
 */
function ensureOptional(pkgs) {
  const missing = pkgs.filter((p) => findTool(OPTIONAL_PROBES[p] ?? p) === null)
  if (missing.length === 0) return
  if (!canApt()) fail(`missing optional tools; run as root: apt-get install -y ${missing.join(' ')}`)
  aptInstall(missing)
}

// ------------------------------------------------------------------------------------------------ nats-server

function natsBinary() {
  if (SIM.has('no-nats-bin')) return { bin: null }
  const env = process.env.NATS_SERVER_BIN
  if (env) return { bin: isExecutable(env) ? env : null, fromEnv: true }
  const onPath = which('nats-server')
  if (onPath) return { bin: onPath, onPath: true }
  const sbin = isExecutable('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null
  return { bin: sbin, onPath: false }
}

function ensureNatsBinary(state) {
  if (state.fromEnv) fail(`NATS_SERVER_BIN=${process.env.NATS_SERVER_BIN} is not an executable file`)
  if (state.bin === null) {
    if (!canApt())
      fail('nats-server is not installed; run as root: DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server')
    aptInstall(['nats-server'])
    if (DRY) return '/usr/sbin/nats-server'
    const again = natsBinary()
    if (!again.bin) fail('apt-get installed nats-server but it is not on PATH or in /usr/sbin')
    state = again
  }
  if (!state.onPath && mode === 'test') {
    note(
      `nats-server is ${state.bin} but not on PATH; tests spawn \`nats-server\`: export PATH="${path.dirname(state.bin)}:$PATH" (or NATS_SERVER_BIN=${state.bin})`,
    )
  }
  return state.bin
}

async function ensureNats(state, bin) {
  if (state.up) {
    if (!state.nats) fail(`${NATS.host}:${NATS.port} is not a NATS server; free the port or set PITWALL_NATS_URL`)
    if (!state.jetstream)
      fail(`the NATS server at ${NATS.host}:${NATS.port} has JetStream disabled; restart it with -js`)
    return
  }
  if (!isLocal(NATS.host))
    fail(`NATS at ${NATS.host}:${NATS.port} is not reachable (${state.why}) and is not local; start it there`)
  if (!bin) bin = '/usr/sbin/nats-server'
  const serverArgs = ['-a', '127.0.0.1', '-p', String(NATS.port), '-js']
  let log
  if (IS_ROOT && findTool('start-stop-daemon')) {
    log = NATS_LOG
    const argv = [
      '--start',
      '--oknodo',
      '--background',
      '--pidfile',
      NATS_PIDFILE,
      '--make-pidfile',
      '--exec',
      bin,
      '--',
      ...serverArgs,
      '-sd',
      NATS_STORE,
      '-l',
      NATS_LOG,
    ]
    say(`start nats-server on 127.0.0.1:${NATS.port}: mkdir -p ${NATS_STORE} && start-stop-daemon ${argv.join(' ')}`)
    if (DRY) return
    fs.mkdirSync(NATS_STORE, { recursive: true })
    const r = run(findTool('start-stop-daemon'), argv)
    if (!r.ok) fail(`start-stop-daemon could not start nats-server:\n${tail(r.out)}`)
  } else {
    // Not root (or no start-stop-daemon): a detached server with its store and log inside the checkout.
    const dir = path.join(ROOT, '.pitwall')
    log = path.join(dir, `nats-server${NATS_SUFFIX}.log`)
    const argv = [...serverArgs, '-sd', path.join(dir, `nats-store${NATS_SUFFIX}`), '-l', log]
    say(`start nats-server on 127.0.0.1:${NATS.port}: ${bin} ${argv.join(' ')} (detached)`)
    if (DRY) return
    fs.mkdirSync(dir, { recursive: true })
    spawn(bin, argv, { detached: true, stdio: 'ignore', cwd: ROOT }).unref()
  }
  const s = await waitFor(probeNats, (x) => x.up, 15000)
  if (!s.up)
    fail(`nats-server did not come up on 127.0.0.1:${NATS.port} within 15 s; last lines of ${log}:\n${tailFile(log)}`)
  if (!s.jetstream) fail(`nats-server on 127.0.0.1:${NATS.port} came up without JetStream; see ${log}`)
}

// ------------------------------------------------------------------------------------------------- PostgreSQL

/** Clusters from /etc/postgresql/<version>/<name>/postgresql.conf with their ports. */
function pgClusters() {
  if (SIM.has('pg-not-installed')) return []
  const out = []
  let versions = []
  try {
    versions = fs.readdirSync('/etc/postgresql').filter((v) => /^\d+(\.\d+)?$/.test(v))
  } catch {
    return out
  }
  for (const version of versions.sort((a, b) => Number(a) - Number(b))) {
    let names = []
    try {
      names = fs.readdirSync(path.join('/etc/postgresql', version))
    } catch {}
    for (const name of names) {
      const dir = path.join('/etc/postgresql', version, name)
      let conf
      try {
        conf = fs.readFileSync(path.join(dir, 'postgresql.conf'), 'utf8')
      } catch {
        continue
      }
      const m = /^\s*port\s*=\s*(\d+)/m.exec(conf)
      out.push({ version, name, dir, port: m ? Number(m[1]) : 5432 })
    }
  }
  return out
}

function pgOurs() {
  return SIM.has('pg-ours') || SIM.has('pg-not-installed') || fs.existsSync(PG_OURS_MARKER)
}

function markPgOurs(cluster) {
  if (DRY) return
  fs.mkdirSync(path.dirname(PG_OURS_MARKER), { recursive: true })
  fs.writeFileSync(PG_OURS_MARKER, `${cluster}\n`)
}

const startCmd = (c) => `pg_ctlcluster --skip-systemctl-redirect ${c.version} ${c.name} start`

async function startPostgres(state) {
  const where = `${PG.host}:${PG.port}`
  if (!isLocal(PG.host))
    fail(`PostgreSQL at ${where} is not reachable (${state.why}) and is not local; start it there or fix PGHOST/PGPORT`)
  let clusters = pgClusters()
  const hasCtl = SIM.has('pg-not-installed') ? false : findTool('pg_ctlcluster') !== null
  if (!hasCtl || clusters.length === 0) {
    if (!IS_ROOT) {
      fail(
        `PostgreSQL is not installed/configured; as root run: apt-get install -y postgresql && ${startCmd({ version: '15', name: 'main' })}` +
          ` && su postgres -c "createdb ${PG.database}", then put \`host all all 127.0.0.1/32 trust\` first in` +
          ' /etc/postgresql/15/main/pg_hba.conf and run: pg_ctlcluster 15 main reload',
      )
    }
    if (!hasCtl) {
      if (!canApt())
        fail(
          'PostgreSQL is not installed and apt-get is not available; install PostgreSQL 15 and start it on 127.0.0.1:5432',
        )
      aptInstall(['postgresql'])
      if (!DRY) markPgOurs('installed')
      clusters = DRY ? [{ version: '15', name: 'main', port: PG.port, dir: '/etc/postgresql/15/main' }] : pgClusters()
    }
    if (clusters.length === 0) {
      // Binaries but no cluster (the package's postinst normally creates <version>/main): create one.
      let versions = []
      try {
        versions = fs
          .readdirSync('/usr/lib/postgresql')
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(a) - Number(b))
      } catch {}
      const v = versions.at(-1)
      if (!v) fail('PostgreSQL server binaries not found under /usr/lib/postgresql; run: apt-get install -y postgresql')
      say(`create cluster: pg_createcluster ${v} main -p ${PG.port}`)
      if (!DRY) {
        const r = run(findTool('pg_createcluster'), [v, 'main', '-p', String(PG.port)])
        if (!r.ok) fail(`pg_createcluster ${v} main failed:\n${tail(r.out)}`)
        markPgOurs(`${v}/main`)
        clusters = pgClusters()
      } else {
        clusters = [{ version: v, name: 'main', port: PG.port, dir: `/etc/postgresql/${v}/main` }]
      }
    }
  }
  const matching = clusters.filter((c) => c.port === PG.port)
  if (matching.length === 0) {
    fail(
      `no PostgreSQL cluster is configured on port ${PG.port} (${clusters.map((c) => `${c.version}/${c.name}:${c.port}`).join(', ')}); set PGPORT`,
    )
  }
  // Ours: trust loopback before starting (the package's postinst may have started it already: reload below).
  const edited = pgOurs() ? matching.filter((c) => trustLoopback(c, { reload: false })) : []
  if (!IS_ROOT) {
    fail(
      `PostgreSQL is not running on ${where}; as root (or the postgres user) run: ${matching.map(startCmd).join(' && ')}`,
    )
  }
  for (const c of matching) {
    say(`start PostgreSQL: ${startCmd(c)}`)
    if (DRY) continue
    const r = run(findTool('pg_ctlcluster'), ['--skip-systemctl-redirect', c.version, c.name, 'start'])
    if (!r.ok) note(`${startCmd(c)} exited ${r.status}: ${tail(r.out, 3)}`) // e.g. "already running": probe decides
  }
  if (DRY) return
  const s = await waitFor(probePg, (x) => x.up && x.code !== '57P03', 30000)
  if (!s.up) {
    const c = matching[0]
    fail(
      `PostgreSQL did not come up on ${where} within 30 s; see /var/log/postgresql/postgresql-${c.version}-${c.name}.log:\n` +
        tailFile(`/var/log/postgresql/postgresql-${c.version}-${c.name}.log`),
    )
  }
  for (const c of edited) run(findTool('pg_ctlcluster'), ['--skip-systemctl-redirect', c.version, c.name, 'reload'])
}

const TRUST_TAG = '# pitwall .ci/ensure.mjs: trust loopback TCP for tests'

/** Only for a PostgreSQL this script installed: trust host connections from loopback (first match wins). */
function trustLoopback(c, { reload }) {
  const hba = path.join(c.dir, 'pg_hba.conf')
  let text
  try {
    text = fs.readFileSync(hba, 'utf8')
  } catch {
    if (DRY) text = ''
    else fail(`cannot read ${hba}`)
  }
  if (text.includes(TRUST_TAG)) return false
  say(`add trust for 127.0.0.1/32 and ::1/128 at the top of ${hba}${reload ? ' and reload' : ''}`)
  if (DRY) return true
  const lines = text.split('\n')
  const at = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'))
  const add = [
    TRUST_TAG,
    'host    all    all    127.0.0.1/32    trust',
    'host    all    all    ::1/128         trust',
    '',
  ]
  lines.splice(at < 0 ? lines.length : at, 0, ...add)
  fs.writeFileSync(hba, lines.join('\n'))
  if (reload) {
    const r = run(findTool('pg_ctlcluster'), ['--skip-systemctl-redirect', c.version, c.name, 'reload'])
    if (!r.ok) fail(`pg_ctlcluster ${c.version} ${c.name} reload failed:\n${tail(r.out)}`)
  }
  return true
}

const AUTH_NAMES = { 3: 'password', 5: 'md5', 7: 'GSS', 9: 'SSPI', 10: 'SCRAM' }

async function ensurePgAccess(state) {
  const where = `${PG.host}:${PG.port}`
  const hbaHelp = () => {
    const c = pgClusters().find((x) => x.port === PG.port)
    const file = c ? path.join(c.dir, 'pg_hba.conf') : 'pg_hba.conf'
    const reload = c ? `pg_ctlcluster ${c.version} ${c.name} reload` : 'reload PostgreSQL'
    return `add \`host all all 127.0.0.1/32 trust\` above the other host lines of ${file}, then run: ${reload}`
  }
  if (state.auth !== undefined) {
    // The server wants a password: the tests connect without one.
    const c = pgClusters().find((x) => x.port === PG.port)
    if (c && pgOurs() && isLocal(PG.host) && IS_ROOT && trustLoopback(c, { reload: true })) {
      if (DRY) return
      state = await waitFor(probePg, (x) => x.auth === undefined, 5000)
      if (state.auth === undefined) return ensurePgAccess(state)
    }
    fail(
      `PostgreSQL at ${where} asks ${PG.user} for a ${AUTH_NAMES[state.auth] ?? `method ${state.auth}`} password; tests need trust auth: ${hbaHelp()}`,
    )
  }
  if (state.ok) return
  if (state.code === '3D000') {
    say(`create database ${PG.database} on ${where}`)
    if (DRY) return
    const q = await probePg({ database: 'postgres', query: `CREATE DATABASE "${PG.database.replaceAll('"', '""')}"` })
    if (!q.ok && q.code !== '42P04') {
      // Fall back to the postgres OS user over the local socket (peer auth).
      const su = findTool('su')
      const r =
        IS_ROOT && su && isLocal(PG.host)
          ? run(su, ['postgres', '-c', `createdb -p ${PG.port} ${shellQuote(PG.database)}`])
          : { ok: false, out: q.message ?? `auth ${q.auth}` }
      if (!r.ok)
        fail(`cannot create database ${PG.database}: ${tail(r.out, 3)}; run: su postgres -c "createdb ${PG.database}"`)
    }
    const again = await probePg()
    if (!again.ok)
      fail(`database ${PG.database} still not usable on ${where}: ${again.message ?? `auth ${again.auth}`}`)
    return
  }
  if (state.code === '28000' && /role .* does not exist/.test(state.message ?? '')) {
    fail(
      `PostgreSQL at ${where}: ${state.message}; run: su postgres -c "createuser --superuser ${PG.user}" (or set PGUSER)`,
    )
  }
  if (state.code === '28000') fail(`PostgreSQL at ${where} rejects ${PG.user}: ${state.message}; ${hbaHelp()}`)
  fail(
    `PostgreSQL at ${where}: ${state.message}${state.code && state.code !== 'silent' ? ` (SQLSTATE ${state.code})` : ''}`,
  )
}

function shellQuote(s) {
  return `'${String(s).replaceAll("'", "'\\''")}'`
}

// ------------------------------------------------------------------------------------------------------ build

/** The first TypeScript source whose emitted dist/ file is missing or older, or null when dist/ is current. */
function staleBuild() {
  if (SIM.has('stale-dist')) return 'simulated'
  const tsconfig = mtime(path.join(ROOT, 'tsconfig.json'))
  let found = null
  const walk = (rel) => {
    let entries
    try {
      entries = fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      if (found) return
      const r = path.join(rel, e.name)
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && !e.name.startsWith('.')) walk(r)
        continue
      }
      const m = /^(.*)\.(ts|mts|cts)$/.exec(e.name)
      if (!m || /\.d\.[mc]?ts$/.test(e.name)) continue
      const out = path.join(ROOT, 'dist', rel, `${m[1]}.${{ ts: 'js', mts: 'mjs', cts: 'cjs' }[m[2]]}`)
      const built = mtime(out)
      if (built < 0 || built < mtime(path.join(ROOT, r)) || built < tsconfig) found = r
    }
  }
  for (const d of BUILD_DIRS) walk(d)
  if (found) return found
  // The operator console (console/, bundled by console/build.mjs into dist/console): any source newer than its build.
  const consoleBuilt = mtime(path.join(ROOT, 'dist', 'console', 'index.html'))
  const consoleWalk = (rel) => {
    for (const e of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name)
      if (e.isDirectory()) consoleWalk(r)
      else if (!found && (consoleBuilt < 0 || consoleBuilt < mtime(path.join(ROOT, r)))) found = r
    }
  }
  if (fs.existsSync(path.join(ROOT, 'console'))) consoleWalk('console')
  return found
}

function ensureBuild(stale) {
  say(`run npm run build (${stale === 'simulated' ? 'simulated' : `dist/ is older than ${stale}`})`)
  if (DRY) return
  const r = run('npm', ['run', '--silent', 'build'], { show: true })
  if (r.ok) return
  // tsc still emits on type errors; go on if everything was emitted, so one broken file does not block all tests.
  const still = staleBuild()
  if (still) fail(`npm run build failed and ${still} was not emitted; fix the errors above`)
  note('WARNING: npm run build reported type errors (above); dist/ was emitted anyway, continuing')
}

// ------------------------------------------------------------------------------------------------------- lock

/** Serialises repairs between concurrent runs in this checkout (several engineers, one node_modules). */
async function withLock(fn) {
  if (DRY) return fn()
  const dir = path.join(ROOT, '.pitwall')
  const lock = path.join(dir, 'ensure.lock')
  fs.mkdirSync(dir, { recursive: true })
  const deadline = Date.now() + 15 * 60_000
  let told = false
  for (;;) {
    try {
      fs.mkdirSync(lock)
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid))
      break
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
      let pid = NaN
      try {
        pid = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'))
      } catch {}
      let alive = true
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0)
        } catch (err) {
          alive = err.code === 'EPERM'
        }
      } else {
        alive = Date.now() - mtime(lock) < 10_000 // just created, pid not written yet
      }
      if (!alive || Date.now() - mtime(lock) > 30 * 60_000) {
        // dead holder, or a reused pid after a reboot
        fs.rmSync(lock, { recursive: true, force: true })
        continue
      }
      if (Date.now() > deadline)
        fail(`another ensure run (pid ${pid}) has held ${lock} for 15 minutes; remove it if stale`)
      if (!told) note(`waiting for another ensure run (pid ${pid})`)
      told = true
      await sleep(500)
    }
  }
  const release = () => fs.rmSync(lock, { recursive: true, force: true })
  process.once('exit', release)
  try {
    return await fn()
  } finally {
    release()
  }
}

// ------------------------------------------------------------------------------------------------------- main

async function survey() {
  const [pg, nats] = await Promise.all([probePg(), probeNats()])
  const build = process.env.PITWALL_ENSURE_NO_BUILD === '1' ? null : staleBuild()
  const optional = (process.env.PITWALL_OPTIONAL_PKGS ?? '').split(/[\s,]+/).filter(Boolean)
  return { deps: depsState(), bin: natsBinary(), pg, nats, build, optional }
}

const allGood = (s) =>
  s.deps === 'ok' &&
  s.bin.bin &&
  (s.bin.onPath || s.bin.fromEnv || mode !== 'test') &&
  s.pg.ok &&
  s.nats.up &&
  s.nats.nats &&
  s.nats.jetstream &&
  !s.build &&
  s.optional.length === 0

/**
 * package.json's engines.node, checked against the running Node.js: a range of `||`-joined parts, each `^X.Y.Z`
 * (that major, at least X.Y.Z) or `>=X[.Y[.Z]]`. The range is what the locked dependencies require (.npmrc sets
 * engine-strict, so `npm ci` refuses a dependency that needs more). Returns the error text, or '' when it fits.
 */
function checkNodeEngine(range, version = process.versions.node) {
  const v = version.replace(/^v/, '').split('.').map(Number)
  const cmp = (a, b) => a[0] - b[0] || (a[1] ?? 0) - (b[1] ?? 0) || (a[2] ?? 0) - (b[2] ?? 0)
  const fits = range.split('||').some((part) => {
    const m = /^\s*(\^|>=)\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(part)
    if (!m) throw new Fatal(`package.json engines.node: cannot read '${part.trim()}' (expected ^X.Y.Z or >=X.Y.Z)`)
    const min = [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)]
    return cmp(v, min) >= 0 && (m[1] === '>=' || v[0] === min[0])
  })
  if (fits) return ''
  return (
    `Node.js ${version} does not satisfy package.json engines.node "${range}" (what the locked dependencies ` +
    `require). Install a Node.js in that range (Node.js 22 LTS or 24 LTS: https://nodejs.org/en/download, or ` +
    `\`nvm install 22\`), put it first on PATH, and run the command again.`
  )
}

function ensureNodeVersion() {
  const pretend = DRY ? process.env.PITWALL_ENSURE_NODE_VERSION : undefined
  const err = checkNodeEngine(engineRange(), pretend || process.versions.node)
  if (err) throw new Fatal(err)
}

const engineRange = () => JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node

async function main() {
  ensureNodeVersion()
  if (mode === 'node') return
  let s = await survey()
  if (allGood(s)) return
  await withLock(async () => {
    s = await survey() // another run may have fixed things while we waited
    if (s.deps !== 'ok') ensureDeps(s.deps)
    if (s.optional.length > 0) ensureOptional(s.optional)
    const bin = ensureNatsBinary(s.bin)
    if (!s.pg.up) {
      await startPostgres(s.pg)
      s.pg = DRY ? { up: true, ok: true } : await probePg()
    }
    if (!s.pg.ok) await ensurePgAccess(s.pg)
    await ensureNats(s.nats, bin)
    if (s.build) ensureBuild(s.build)
  })
}

main().catch((e) => {
  if (e instanceof Fatal) {
    console.error(`ensure: ERROR: ${e.message}`)
  } else {
    console.error('ensure: unexpected failure:', e)
  }
  process.exit(1)
})
