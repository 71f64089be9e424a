/**
 * The failover drill `npm start` prints, run as printed (issue 16, "The local lab works as printed"): the
 * launcher (dist/cmd/lab.js, what `npm start` runs) starts in a temp dir with its own ports, databases and a
 * small simulator; the test reads the numbered `$` lines of the drill from its output and runs them in order
 * with no PITWALL_* variable set (the commands find the lab through its state file or their flags). At each
 * step it checks what the operator would check, from the commands' output and on its own: the killed site's
 * processes are gone, b takes a's partitions and its PostgreSQL keeps getting rows while a is down, a comes
 * back behind the peer-map gate, and after the failback each site owns its home partitions again.
 */
import t from 'tap'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { LabState } from '../../sites/lab-state.js'
import { adminUrl } from '../helpers/pg.js'

/** The repository (the drill's commands run from it, as `npm start` says). */
const ROOT = join(import.meta.dirname, '..', '..')
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface Step {
  n: number
  cmd: string
  note: string
}
interface Run {
  code: number
  out: string
}

/** The environment without any PITWALL_* variable: the drill must work from a plain shell. */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PITWALL_')) env[k] = v
  return { ...env, ...extra }
}

/** Runs a printed command line (`node dist/cmd/pitwall.js ...`) from the repository root. */
function run(cmd: string): Promise<Run> {
  const [bin, ...args] = cmd.split(/\s+/)
  return new Promise((res) => {
    execFile(
      bin === 'node' ? process.execPath : (bin as string),
      args,
      { cwd: ROOT, env: plainEnv(), timeout: 120_000 },
      (err, stdout, stderr) => {
        res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` })
      },
    )
  })
}

/** Runs `cmd` until `ok(output)` holds (what "repeat until" asks of the operator); the last run otherwise. */
async function runUntil(cmd: string, ok: (r: Run) => boolean, timeoutMs: number): Promise<Run & { tries: number }> {
  const deadline = Date.now() + timeoutMs
  for (let tries = 1; ; tries++) {
    const r = await run(cmd)
    if (ok(r) || Date.now() > deadline) return { ...r, tries }
    await sleep(1_000)
  }
}

/** The drill's steps: `  <n>. $ <command>` and, on the next line, what to look for. */
function parseDrill(text: string): Step[] {
  const lines = text.split('\n')
  const steps: Step[] = []
  lines.forEach((l, i) => {
    const m = /^\s+(\d+)\. \$ (.+)$/.exec(l)
    if (m) steps.push({ n: Number(m[1]), cmd: (m[2] as string).trim(), note: (lines[i + 1] ?? '').trim() })
  })
  return steps
}

/** `site a: UP   epoch 0, role NORMAL, owns 0-3, ...` lines of `pitwall lab status`. */
function siteLines(out: string): Record<string, { state: string; epoch?: number; role?: string; owns?: string }> {
  const res: Record<string, { state: string; epoch?: number; role?: string; owns?: string }> = {}
  for (const m of out.matchAll(/^site (\w+): (\w+)\s+(?:epoch (\d+), role (\w+), owns (\S+),)?/gm)) {
    res[m[1] as string] = {
      state: m[2] as string,
      ...(m[3] ? { epoch: Number(m[3]), role: m[4] as string, owns: m[5] as string } : {}),
    }
  }
  return res
}

/** Rows of `pitwall partitions`: partition, site, owner, token, epoch. */
function partitionTable(out: string): Array<{ p: number; site: string; owner: string; token: number; epoch: number }> {
  return [...out.matchAll(/^(\d+)\s+(\w+)\s+(\S+)\s+(\d+)\s+(\d+)\s/gm)].map((m) => ({
    p: Number(m[1]),
    site: m[2] as string,
    owner: m[3] as string,
    token: Number(m[4]),
    epoch: Number(m[5]),
  }))
}

const alive = (pid: number | null): boolean => {
  if (pid === null) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Rows the projector wrote into a database after `since` (every output table with an updated_at). */
async function rowsSince(url: string, since: Date): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const r = await c.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM window_aggregates WHERE updated_at > $1)
      + (SELECT count(*) FROM score_history WHERE updated_at > $1) + (SELECT count(*) FROM alert_events WHERE updated_at > $1)
      + (SELECT count(*) FROM lap_stats WHERE updated_at > $1) AS n`,
      [since],
    )
    return Number(r.rows[0]?.n ?? 0)
  } finally {
    await c.end()
  }
}

async function dropDatabases(names: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl() })
  await c.connect()
  try {
    for (const n of names) await c.query(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`)
  } finally {
    await c.end()
  }
}

void t.test('the printed failover drill works step by step', { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pw-lab-drill-'))
  const prefix = `pw_drill_${randomBytes(4).toString('hex')}_`
  const t0 = Date.now()
  const lab: ChildProcess = spawn(process.execPath, [join(ROOT, 'dist', 'cmd', 'lab.js')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: plainEnv({
      PITWALL_LOCAL_DIR: dir,
      PITWALL_LAB_PORTS: 'free',
      PITWALL_LAB_DB_PREFIX: prefix,
      PITWALL_PARTITIONS: '8',
      PITWALL_SIM_SENSORS: '20',
      PITWALL_SIM_CARS: '1',
      PITWALL_PG_BASE: adminUrl().replace(/\/[^/]*$/, ''),
    }),
  })
  let stdout = ''
  let stderr = ''
  lab.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  lab.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((res) => lab.once('exit', (code) => res(code)))
  t.teardown(async () => {
    if (lab.exitCode === null && lab.signalCode === null) {
      lab.kill('SIGINT')
      await Promise.race([exited, sleep(20_000)])
      if (lab.exitCode === null) lab.kill('SIGKILL')
    }
    await dropDatabases([`${prefix}a`, `${prefix}b`])
    await rm(dir, { recursive: true, force: true })
  })
  for (const deadline = Date.now() + 60_000; !/stop\s+Ctrl-C/.test(stdout); await sleep(200)) {
    if (Date.now() > deadline || lab.exitCode !== null)
      throw new Error(`the lab did not print its drill:\n${stdout}\n${stderr}`)
  }
  t.comment(`lab up, drill printed after ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  const steps = parseDrill(stdout)
  const kinds = steps.map((s) => s.cmd.replace(/^node dist\/cmd\/pitwall\.js /, '').split(' --')[0])
  t.same(
    kinds,
    [
      'lab status',
      'lab kill-site a',
      'site status',
      'lab status',
      'lab restore-site a',
      'site status',
      'site failback',
      'lab status',
    ],
    'the drill: status, kill a, watch b fail over, status, restore a, watch a, failback, status',
  )
  t.same(
    steps.map((s) => s.n),
    [1, 2, 3, 4, 5, 6, 7, 8],
  )
  const state = JSON.parse(await readFile(join(dir, 'lab.json'), 'utf8')) as LabState
  t.equal(state.pid, lab.pid, 'the state file names the launcher')
  t.equal(state.topology, join(dir, 'sites.json'))
  t.equal(
    (await stat(join(dir, 'lab.json'))).mode & 0o777,
    0o600,
    "lab.json is readable by its owner only (it holds the run's tokens)",
  )
  const until = (s: Step): string | undefined => /repeat until '([^']+)'/.exec(s.note)?.[1]
  const [s1, s2, s3, s4, s5, s6, s7, s8] = steps as [Step, Step, Step, Step, Step, Step, Step, Step]
  let lapAt = Date.now()
  const lap = (n: number): void => {
    t.comment(`step ${n}: ${((Date.now() - lapAt) / 1000).toFixed(1)} s`)
    lapAt = Date.now()
  }

  // 1. Both sites up, each owning its home partitions (the controllers answer a moment after the drill prints).
  const r1 = await runUntil(
    s1.cmd,
    (r) => siteLines(r.out).a?.owns === '0-3' && siteLines(r.out).b?.owns === '4-7',
    60_000,
  )
  t.match(
    siteLines(r1.out),
    { a: { state: 'UP', role: 'NORMAL', owns: '0-3' }, b: { state: 'UP', role: 'NORMAL', owns: '4-7' } },
    `1. ${s1.note}`,
  )
  lap(1)
  // The controllers take failover/failback only with this run's command token (lab.json, never printed).
  const token = state.controllerToken
  t.match(token, /^[0-9a-f]{48}$/, 'a per-run controller command token in lab.json')
  t.notOk(stdout.includes(token) || stderr.includes(token), 'the token is not printed')
  for (const site of ['a', 'b']) {
    const url = new URL('/failover', state.sites[site]?.controllerUrl).href
    const post = async (auth?: string): Promise<{ status: number; code: unknown }> => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: '{}',
      })
      return { status: res.status, code: ((await res.json()) as { code?: unknown }).code }
    }
    t.same(
      await post(),
      { status: 401, code: 'CONTROLLER_UNAUTHORIZED' },
      `${site}: a command without the token is refused`,
    )
    t.same(
      await post(`Bearer ${'0'.repeat(48)}`),
      { status: 401, code: 'CONTROLLER_UNAUTHORIZED' },
      `${site}: with a wrong token too`,
    )
    // With the token it gets past the check to the body's (empty here: nothing is started).
    t.same(
      await post(`Bearer ${token}`),
      { status: 400, code: 'CONTROLLER_BODY_INVALID' },
      `${site}: the token is accepted`,
    )
  }
  // `pitwall partitions` finds the lab by itself, and shows b's partitions with their owner at b.
  // (The controllers report the map; a partition may still be on its way to a worker: ask until all are held.)
  const allHeld = (out: string): boolean =>
    partitionTable(out).every((r) => r.owner.startsWith(`${r.site}-worker-`) && r.token > 0)
  const parts1 = partitionTable(
    (await runUntil(`node dist/cmd/pitwall.js partitions --lab ${dir}`, (r) => allHeld(r.out), 30_000)).out,
  )
  t.same(
    parts1.map((r) => r.site),
    ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b'],
    "partitions at a: the map's owner site of each",
  )
  t.ok(
    parts1.every((r) => r.owner.startsWith(`${r.site}-worker-`) && r.token > 0),
    'every partition with its owner and token at its site (none "(free)")',
  )

  // 2. Lose a: every process of a is gone, b's are not.
  const pidsOf = (site: string): number[] =>
    (state.sites[site]?.processes ?? []).flatMap((p) => (p.pid === null ? [] : [p.pid]))
  t.equal(pidsOf('a').length, 6, 'a: nats-server, projector, 2 workers, gateway, controller')
  const killAt = new Date()
  const r2 = await run(s2.cmd)
  t.equal(r2.code, 0, `2. ${s2.note}`)
  t.same(pidsOf('a').filter(alive), [], "a's processes are gone (kill -9)")
  t.same(
    pidsOf('b').filter((p) => !alive(p)),
    [],
    "b's processes run",
  )
  t.equal(lab.exitCode, null, 'the launcher keeps running')
  lap(2)

  // 3. b's controller fails over by itself.
  const want3 = until(s3)
  t.equal(want3, 'role: SURVIVOR')
  const r3 = await runUntil(s3.cmd, (r) => r.out.includes(want3 as string), 40_000)
  t.match(r3.out, /link DOWN/, '3. b sees the link down')
  t.match(r3.out, /partitions owned here: 0-7/, "3. b owns a's partitions after the failover")
  t.match(r3.out, want3 as string)
  // The controller wrote the records of a's partitions; b's workers take them at their next heartbeat.
  const tookAll = (out: string): boolean => {
    const rows = partitionTable(out)
    return (
      rows.length === 8 &&
      rows.every((r) => r.site === 'b' && r.owner.startsWith('b-worker-') && (r.p >= 4 || r.epoch === 1))
    )
  }
  const parts3 = await runUntil(
    `node dist/cmd/pitwall.js partitions --lab ${dir} --site b`,
    (r) => tookAll(r.out),
    20_000,
  )
  t.ok(tookAll(parts3.out), "partitions at b: every one owned by a worker of b, a's in epoch 1")
  lap(3)
  t.comment(`failover seen after ${((Date.now() - killAt.getTime()) / 1000).toFixed(1)} s (${r3.tries} status runs)`)

  // 4. a down, b up and owning everything; b's PostgreSQL keeps getting the outputs of the readings.
  const r4 = await runUntil(s4.cmd, (r) => siteLines(r.out).b?.owns === '0-7', 20_000)
  t.match(
    siteLines(r4.out),
    { a: { state: 'DOWN' }, b: { state: 'UP', role: 'SURVIVOR', owns: '0-7' } },
    `4. ${s4.note}`,
  )
  const bDb = state.sites.b?.pgUrl as string
  let rows = 0
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && rows === 0; await sleep(1_000))
    rows = await rowsSince(bDb, killAt)
  t.ok(rows > 0, `b's PostgreSQL got ${rows} rows written after a was killed`)
  lap(4)

  // 5. Restore a.
  const r5 = await run(s5.cmd)
  t.equal(r5.code, 0, `5. ${s5.note}`)
  t.match(r5.out, /link up/)
  t.match(r5.out, /started a\/worker-0/)
  lap(5)

  // 6. a is back, linked, and b still holds a's partitions (the gate kept a's workers off them).
  const want6 = until(s6)
  t.equal(want6, 'role: DEGRADED')
  const r6 = await runUntil(s6.cmd, (r) => r.out.includes(want6 as string), 30_000)
  t.match(r6.out, /link UP/, '6. a is linked again')
  t.match(r6.out, /partitions owned here: -\s+at b: 0-7/, '6. a took nothing b owns')
  lap(6)

  // 7. Failback.
  const r7 = await run(s7.cmd)
  t.equal(r7.code, 0, `7. ${s7.note}`)
  t.match(r7.out, /all 4 partitions processing again/)
  lap(7)

  // 8. Each site owns its home partitions again, and every process runs.
  const r8 = await runUntil(
    s8.cmd,
    (r) => siteLines(r.out).a?.owns === '0-3' && siteLines(r.out).b?.owns === '4-7',
    20_000,
  )
  t.match(
    siteLines(r8.out),
    {
      a: { state: 'UP', role: 'NORMAL', owns: '0-3', epoch: 2 },
      b: { state: 'UP', role: 'NORMAL', owns: '4-7', epoch: 2 },
    },
    `8. ${s8.note}`,
  )
  t.notMatch(r8.out, /\b(killed|exited|gone)\b/, 'no process is missing')
  lap(8)
  // The console's failback goes through the gateway, which relays it with the token: accepted by a's controller,
  // which finds nothing to take back (a owns its partitions).
  const adminKey = /sign in with the admin API key ([0-9a-f]+)/.exec(stdout)?.[1] ?? ''
  const gw = state.sites.a?.gatewayUrl as string
  const relayed = await fetch(`${gw}/v1/sites/a/failback`, {
    method: 'POST',
    headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'lab drill: relay check', confirm: true }),
  })
  const op = (await relayed.json()) as { id?: string; state?: string }
  t.equal(
    relayed.status,
    202,
    `the gateway relays an admin's failback with the token (${JSON.stringify(op).slice(0, 200)})`,
  )
  let done: { state?: string; lines?: string[] } | undefined
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(500)) {
    const s = (await (await fetch(state.sites.a?.controllerUrl as string)).json()) as {
      operation?: { id: string; state: string; lines: string[] }
    }
    const o = s.operation
    if (o !== undefined && o.id === op.id && o.state !== 'running') {
      done = o
      break
    }
  }
  t.match(done, { state: 'succeeded' }, 'the relayed failback ran')
  t.match(done?.lines?.join('\n'), /nothing to take back: a owns its home partitions/)
  t.comment(`drill done ${((Date.now() - t0) / 1000).toFixed(1)} s after the launcher started`)

  lab.kill('SIGINT')
  t.equal(await exited, 0, 'Ctrl-C stops the lab cleanly')
  t.notOk(existsSync(join(dir, 'lab.json')), 'the state file goes with the lab')
})
