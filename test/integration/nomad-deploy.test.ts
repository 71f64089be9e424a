/**
 * The Nomad client and `pitwall deploy` against the stateful Nomad API double (test/helpers/nomad-double.ts,
 * HTTP on 127.0.0.1): parse, plan with diff, register with check-and-set (a stale index is refused),
 * allocations, deployments going healthy with canaries, a failing canary rolled back by auto_revert, blocking
 * queries, token / namespace / region on the wire; register/plan validation and the update block's timing
 * (min_healthy_time, healthy_deadline, progress_deadline). Deployments run with the double's fastTimingForTests
 * (update-block durations / 100) except in the test that checks the job's own timing is the default.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NomadClient, nomadOptionsFromEnv } from '../../nomad-jobs/client.js'
import { deployMain, parseDeployArgs } from '../../nomad-jobs/deploy.js'
import { NomadError, NomadErrorCodes } from '../../nomad-jobs/errors.js'
import { JOBS_DIR, readJobHcl } from '../../nomad-jobs/jobs.js'
import { freePort } from '../helpers/nats.js'
import { NomadDouble } from '../helpers/nomad-double.js'

async function double(t: Test, opts: ConstructorParameters<typeof NomadDouble>[0] = {}): Promise<NomadDouble> {
  const d = new NomadDouble({ fastTimingForTests: true, ...opts })
  await d.start()
  t.teardown(() => d.stop())
  return d
}

/** A copy of nomad-jobs/vars/ whose site-a worker var file can be edited. */
async function varsCopy(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pw-nomad-vars-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(join(JOBS_DIR, 'vars'), dir, { recursive: true })
  return dir
}

async function setPartitions(varsDir: string, n: number): Promise<void> {
  const f = join(varsDir, 'a', 'worker.vars.hcl')
  await writeFile(f, (await readFile(f, 'utf8')).replace(/^partitions\s*=.*$/m, `partitions  = ${n}`))
}

function capture(): { lines: string[]; out: (l: string) => void } {
  const lines: string[] = []
  return { lines, out: (l) => lines.push(l) }
}

t.test('client: parse, plan, register with check-and-set, allocations, deployment', async (t) => {
  const d = await double(t)
  const c = new NomadClient({ address: d.url })
  const job = await c.parseJob(
    await readJobHcl('worker'),
    await readFile(join(JOBS_DIR, 'vars', 'a', 'worker.vars.hcl'), 'utf8'),
  )
  t.equal(job.ID, 'pitwall-worker')
  t.same(job.Datacenters, ['dc-a'])
  t.equal(job.TaskGroups[0]?.Tasks[0]?.Env?.PITWALL_SITE, 'a')
  const plan = await c.planJob(job)
  t.equal(plan.JobModifyIndex, 0, 'new job: modify index 0')
  t.equal(plan.Diff?.Type, 'Added')
  t.same(plan.Annotations?.DesiredTGUpdates, { worker: { create: 2 } })
  const reg = await c.registerJob(job, plan.JobModifyIndex)
  t.ok(reg.EvalID.length > 0 && reg.JobModifyIndex > 0, 'registered')
  await t.rejects(
    c.registerJob(job, 0),
    { code: NomadErrorCodes.CAS_CONFLICT },
    'a second register expecting a new job is refused',
  )
  await t.rejects(
    c.registerJob(job, reg.JobModifyIndex - 1),
    { code: NomadErrorCodes.CAS_CONFLICT },
    'a stale index is refused',
  )
  const ev = await c.evaluation(reg.EvalID)
  t.equal(ev.JobID, 'pitwall-worker')
  // Deployment to healthy, followed with blocking queries.
  let idx = 0
  let dep = (await c.latestDeployment('pitwall-worker')).body
  for (let i = 0; i < 50 && dep?.Status === 'running'; i++) {
    const r = await c.deployment(dep.ID, { index: idx, waitMs: 2000 })
    idx = r.index
    dep = r.body
  }
  t.equal(dep?.Status, 'successful')
  t.equal(dep?.TaskGroups.worker?.HealthyAllocs, 2)
  const allocs = (await c.jobAllocations('pitwall-worker')).body
  t.equal(
    allocs.filter((a) => a.DesiredStatus === 'run' && a.ClientStatus === 'running').length,
    2,
    'two running allocations',
  )
  t.ok(allocs.every((a) => a.DeploymentStatus?.Healthy === true && a.JobVersion === 0))
  t.equal((await c.readJob('pitwall-worker')).body?.Stable, true, 'version 0 stable')
  t.equal((await c.readJob('nope')).body, undefined, '404 -> undefined')
  await t.rejects(
    c.parseJob('job "x" {', ''),
    { code: NomadErrorCodes.PARSE },
    'HCL errors come back as PW_NOMAD_PARSE',
  )
})

t.test('blocking queries return on change, and on wait timeout with the same index', async (t) => {
  const d = await double(t)
  const c = new NomadClient({ address: d.url })
  const job = await c.parseJob(
    await readJobHcl('grafana'),
    await readFile(join(JOBS_DIR, 'vars', 'a', 'grafana.vars.hcl'), 'utf8'),
  )
  const first = await c.jobAllocations('pitwall-grafana')
  let t0 = Date.now()
  const idle = await c.jobAllocations('pitwall-grafana', { index: first.index, waitMs: 300 })
  const waited = Date.now() - t0
  t.ok(waited >= 280 && waited < 2000, `no change: returned after the wait (${waited} ms)`)
  t.equal(idle.index, first.index, 'same index')
  t0 = Date.now()
  const pending = c.jobAllocations('pitwall-grafana', { index: first.index, waitMs: 10_000 })
  setTimeout(() => void c.registerJob(job), 100)
  const changed = await pending
  const took = Date.now() - t0
  t.ok(took < 5000, `returned on change (${took} ms), not after the 10 s wait`)
  t.ok(changed.index > first.index, 'index moved')
})

t.test('pitwall deploy: plan, register, follow to healthy; a change deploys with a promoted canary', async (t) => {
  const d = await double(t)
  const vars = await varsCopy(t)
  const io = { nomad: { address: d.url }, ...capture() }
  const code = await deployMain(['--site', 'a', '--job', 'worker', '--vars-dir', vars], io)
  t.equal(code, 0, 'deployed', { output: io.lines })
  t.match(io.lines.join('\n'), /pitwall-worker \(site a, datacenters dc-a\): plan at job modify index 0/)
  t.match(io.lines.join('\n'), /\+ Job: "pitwall-worker"/)
  t.match(io.lines.join('\n'), /worker: 2\/2 placed, 2 healthy, 0 unhealthy/)
  t.match(io.lines.join('\n'), /pitwall-worker version 0 is healthy/)

  // --plan only: the diff, nothing registered.
  await setPartitions(vars, 32)
  const p = capture()
  t.equal(
    await deployMain(['--site', 'a', '--job', 'worker', '--plan', '--vars-dir', vars], {
      nomad: { address: d.url },
      out: p.out,
    }),
    0,
  )
  t.match(p.lines.join('\n'), /\+\/- Task Group: "worker" \(1 canary, 2 create\/destroy update\)/)
  t.match(p.lines.join('\n'), /\+\/- Env\[PITWALL_PARTITIONS\]: "16" => "32"/)
  t.equal(d.job('pitwall-worker')?.Version, 0, '--plan registers nothing')

  const u = capture()
  t.equal(
    await deployMain(['--site', 'a', '--job', 'worker', '--vars-dir', vars], { nomad: { address: d.url }, out: u.out }),
    0,
    'version 1 deployed',
    { output: u.lines },
  )
  t.match(u.lines.join('\n'), /registered version 1/)
  t.match(u.lines.join('\n'), /canaries 1\/1 promoted/)
  t.match(u.lines.join('\n'), /v1 successful/)
  const running = d.allocations('pitwall-worker').filter((a) => a.DesiredStatus === 'run')
  t.equal(running.length, 2)
  t.ok(
    running.every((a) => a.JobVersion === 1),
    'old allocations replaced',
  )

  // Unchanged: planned, not registered.
  const n = capture()
  t.equal(
    await deployMain(['--site', 'a', '--job', 'worker', '--vars-dir', vars], { nomad: { address: d.url }, out: n.out }),
    0,
  )
  t.match(n.lines.join('\n'), /unchanged, not registered/)
  t.equal(d.job('pitwall-worker')?.Version, 1)
})

t.test('a job changed between plan and register is refused (EnforceIndex)', async (t) => {
  const d = await double(t)
  const c = new NomadClient({ address: d.url })
  const vars = await readFile(join(JOBS_DIR, 'vars', 'a', 'projector.vars.hcl'), 'utf8')
  const job = await c.parseJob(await readJobHcl('projector'), vars)
  await c.registerJob(job, 0)
  const plan = await c.planJob(job)
  d.touchJob('pitwall-projector')
  const err = await c.registerJob(job, plan.JobModifyIndex).catch((e: unknown) => e)
  t.ok(err instanceof NomadError && err.code === NomadErrorCodes.CAS_CONFLICT, 'refused')
  t.match((err as Error).message, /conflicting job modify index/)
})

t.test('a failing canary fails the deployment and auto_revert rolls back to the last stable version', async (t) => {
  const d = await double(t, {
    healthy: (job) => !JSON.stringify(job).includes('"PITWALL_PARTITIONS":"64"'),
  })
  const vars = await varsCopy(t)
  const io = { nomad: { address: d.url }, ...capture() }
  t.equal(await deployMain(['--site', 'a', '--job', 'worker', '--vars-dir', vars], io), 0)
  await setPartitions(vars, 64)
  const bad = capture()
  const errs: string[] = []
  const code = await deployMain(['--site', 'a', '--job', 'worker', '--vars-dir', vars], {
    nomad: { address: d.url },
    out: bad.out,
    err: (l) => errs.push(l),
  })
  t.equal(code, 3, 'exit 3: rolled back')
  t.match(bad.lines.join('\n'), /v1 failed: worker: 1\/2 placed, 0 healthy, 1 unhealthy, canaries 1\/1/)
  // healthy_deadline 2m: the canary is unhealthy at 1.2 s; progress_deadline 5m: the deployment fails at 3 s.
  t.match(bad.lines.join('\n'), /rolling back: Failed due to progress deadline - rolling back to job version 0/)
  t.match(bad.lines.join('\n'), /v2 successful/)
  t.match(errs.join('\n'), /PW_DEPLOY_ROLLED_BACK: pitwall-worker: version 1 failed .* rolled back to version 2/)
  const job = d.job('pitwall-worker')!
  t.equal(job.Version, 2, 'the rollback is a new version')
  t.match(JSON.stringify(job), '"PITWALL_PARTITIONS":"16"', 'with the stable spec')
  const running = d.allocations('pitwall-worker').filter((a) => a.DesiredStatus === 'run')
  t.equal(running.length, 2, 'the old allocations kept running')
  t.ok(
    d
      .allocations('pitwall-worker')
      .filter((a) => a.DeploymentStatus?.Canary)
      .every((a) => a.DesiredStatus === 'stop'),
    'the canary stopped',
  )
})

t.test('token, namespace and region on every request; errors are typed', async (t) => {
  const d = await double(t, { token: 'secret-token', region: 'dc-a' })
  const c = new NomadClient({ address: d.url, token: 'secret-token', namespace: 'pitwall', region: 'dc-a' })
  await c.jobAllocations('x')
  const last = d.requests[d.requests.length - 1]!
  t.equal(last.token, 'secret-token')
  t.same(last.query, { namespace: 'pitwall', region: 'dc-a' })
  await t.rejects(
    new NomadClient({ address: d.url }).jobAllocations('x'),
    { code: NomadErrorCodes.HTTP, status: 403 },
    'no token: 403',
  )
  await t.rejects(new NomadClient({ address: d.url, token: 'secret-token', region: 'dc-z' }).jobAllocations('x'), {
    code: NomadErrorCodes.HTTP,
    status: 500,
  })
  const port = await freePort()
  await t.rejects(new NomadClient({ address: `http://127.0.0.1:${port}` }).jobAllocations('x'), {
    code: NomadErrorCodes.UNREACHABLE,
    retryable: true,
  })
  t.throws(() => parseDeployArgs(['--plan']), { code: NomadErrorCodes.USAGE })
  t.throws(() => parseDeployArgs(['--site', 'a', '--job', 'db']), { code: NomadErrorCodes.USAGE })
  t.same(
    parseDeployArgs(['--site', 'a', '--skip', 'controller']).jobs,
    ['nats', 'worker', 'projector', 'gateway', 'prometheus', 'grafana'],
    '--skip controller: every other job, in order',
  )
  t.throws(() => parseDeployArgs(['--site', 'a', '--skip', 'db']), { code: NomadErrorCodes.USAGE })
  t.throws(() => parseDeployArgs(['--site', 'a', '--skip', 'grafana', '--job', 'worker']), {
    code: NomadErrorCodes.USAGE,
    message: /exclude each other/,
  })
  const e: string[] = []
  t.equal(
    await deployMain(['--site', 'zz'], { nomad: { address: d.url }, out: () => undefined, err: (l) => e.push(l) }),
    1,
  )
  t.match(e.join(''), /PW_CONFIG_INVALID: site: unknown site 'zz'/)
})

t.test(
  'the site controller (no canary, one per site): a new version replaces it; an unhealthy one is rolled back',
  async (t) => {
    const d = await double(t, { healthy: (job) => !JSON.stringify(job).includes('"PITWALL_FAILOVER_AFTER_MS":"1"') })
    const vars = await varsCopy(t)
    const f = join(vars, 'a', 'controller.vars.hcl')
    const base = await readFile(f, 'utf8')
    const run = async (): Promise<{ code: number; lines: string[]; errs: string[] }> => {
      const c = capture()
      const errs: string[] = []
      const code = await deployMain(['--site', 'a', '--job', 'controller', '--vars-dir', vars], {
        nomad: { address: d.url },
        out: c.out,
        err: (l) => errs.push(l),
      })
      return { code, lines: c.lines, errs }
    }
    const first = await run()
    t.equal(first.code, 0, 'version 0 deployed', { output: first.lines })
    await writeFile(f, `${base}failover_after_ms = 8000\n`)
    const second = await run()
    t.equal(second.code, 0, 'version 1 deployed', { output: second.lines })
    t.match(
      second.lines.join('\n'),
      /\+\/- Task Group: "controller" \(1 create\/destroy update\)/,
      'replaced, no canary',
    )
    t.match(second.lines.join('\n'), /\+\/- Env\[PITWALL_FAILOVER_AFTER_MS\]: "5000" => "8000"/)
    let running = d.allocations('pitwall-controller').filter((a) => a.DesiredStatus === 'run')
    t.same(
      running.map((a) => a.JobVersion),
      [1],
      'one controller, the new version',
    )
    await writeFile(f, `${base}failover_after_ms = 1\n`)
    const bad = await run()
    t.equal(bad.code, 3, 'unhealthy: rolled back (auto_revert)', { output: bad.lines })
    t.match(bad.errs.join('\n'), /PW_DEPLOY_ROLLED_BACK: pitwall-controller: version 2 failed/)
    running = d.allocations('pitwall-controller').filter((a) => a.DesiredStatus === 'run')
    t.equal(running.length, 1, 'one controller after the rollback')
    t.match(
      JSON.stringify(d.job('pitwall-controller')),
      '"PITWALL_FAILOVER_AFTER_MS":"8000"',
      'the last stable spec again',
    )
  },
)

t.test('a deployment that does not finish in time: PW_DEPLOY_TIMEOUT', async (t) => {
  const d = await double(t, { healthDelayMs: 60_000 })
  const errs: string[] = []
  const t0 = Date.now()
  const code = await deployMain(['--site', 'a', '--job', 'grafana', '--timeout', '0.5'], {
    nomad: { address: d.url },
    out: () => undefined,
    err: (l) => errs.push(l),
  })
  t.equal(code, 1)
  t.match(errs.join(''), /PW_DEPLOY_TIMEOUT: pitwall-grafana: the deployment of version 0 did not finish within 0.5 s/)
  t.ok(Date.now() - t0 < 5000, 'gave up at the deadline')
})

t.test('deploying every job of a site in order', async (t) => {
  const d = await double(t)
  const io = { nomad: { address: d.url }, ...capture() }
  t.equal(await deployMain(['--site', 'b'], io), 0, 'site b deployed', { output: io.lines })
  const last = io.lines[io.lines.length - 1]!
  t.equal(
    last,
    'site b: pitwall-nats: deployed, pitwall-worker: deployed, pitwall-projector: deployed, pitwall-gateway: deployed, pitwall-controller: deployed, pitwall-prometheus: deployed, pitwall-grafana: deployed',
  )
  t.same(d.job('pitwall-nats')?.Datacenters, ['dc-b'])
  const ctl = d.allocations('pitwall-controller').filter((a) => a.DesiredStatus === 'run')
  t.equal(ctl.length, 1, 'one site controller running')
  t.equal(ctl[0]?.DeploymentStatus?.Healthy, true, 'healthy')
  t.match(io.lines.join('\n'), /pitwall-controller \(site b, datacenters dc-b\): plan at job modify index 0/)
  t.match(io.lines.join('\n'), /controller: 1\/1 placed, 1 healthy, 0 unhealthy/, 'no canary line for the controller')
})

t.test(
  'TLS: a private CA and a client certificate (mutual TLS)',
  { skip: spawnSync('openssl', ['version']).status === 0 ? false : 'openssl is not installed' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pw-nomad-tls-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const ssl = (...args: string[]): void => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
    }
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=pitwall test CA',
    )
    for (const name of ['server', 'client']) {
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}.pitwall.test`,
      )
      await writeFile(
        join(dir, `${name}.ext`),
        name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n',
      )
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
      )
    }
    const pem = async (f: string): Promise<string> => await readFile(join(dir, f), 'utf8')
    const d = await double(t, {
      tls: { key: await pem('server.key'), cert: await pem('server.pem'), ca: await pem('ca.pem'), requestCert: true },
    })
    t.match(d.url, /^https:/)
    // The client reads the same files the nomad CLI does.
    const env = {
      NOMAD_ADDR: d.url,
      NOMAD_CACERT: join(dir, 'ca.pem'),
      NOMAD_CLIENT_CERT: join(dir, 'client.pem'),
      NOMAD_CLIENT_KEY: join(dir, 'client.key'),
    }
    const c = new NomadClient(nomadOptionsFromEnv(env))
    const job = await c.parseJob(
      await readJobHcl('grafana'),
      await readFile(join(JOBS_DIR, 'vars', 'a', 'grafana.vars.hcl'), 'utf8'),
    )
    t.equal(job.ID, 'pitwall-grafana', 'parsed over mutual TLS')
    const r = await c.jobAllocations('pitwall-grafana', { index: 0, waitMs: 100 })
    t.ok(r.index > 0, 'blocking query over TLS')
    await t.rejects(
      new NomadClient({ address: d.url }).jobAllocations('x'),
      { code: NomadErrorCodes.UNREACHABLE },
      'unknown CA: refused',
    )
    await t.rejects(
      new NomadClient({ address: d.url, tls: { ca: await pem('ca.pem') } }).jobAllocations('x'),
      { code: NomadErrorCodes.UNREACHABLE },
      'no client certificate: refused',
    )
  },
)

/** Waits until the job's latest deployment is no longer running; returns it. */
async function settled(
  c: NomadClient,
  jobId: string,
  version: number,
): Promise<NonNullable<Awaited<ReturnType<NomadClient['latestDeployment']>>['body']>> {
  let idx = 0
  for (let i = 0; i < 200; i++) {
    const r = await c.latestDeployment(jobId, { index: idx, waitMs: 2000 })
    idx = r.index
    if (r.body && r.body.JobVersion === version && r.body.Status !== 'running') return r.body
  }
  throw new Error(`${jobId} v${version}: still running`)
}

t.test('register and plan validate the job as Nomad does (HTTP 500, its multierror text)', async (t) => {
  const d = await double(t)
  const c = new NomadClient({ address: d.url })
  const good = await c.parseJob(
    await readJobHcl('controller'),
    await readFile(join(JOBS_DIR, 'vars', 'a', 'controller.vars.hcl'), 'utf8'),
  )
  const edit = (f: (j: Record<string, any>) => void): typeof good => {
    const j = JSON.parse(JSON.stringify(good)) as typeof good
    f(j as unknown as Record<string, any>)
    return j
  }
  const cases: Array<[string, typeof good, RegExp]> = [
    [
      'no datacenters',
      edit((j) => {
        j.Datacenters = []
      }),
      /^1 error occurred:\n\t\* Missing job datacenters$/,
    ],
    [
      'datacenters absent',
      edit((j) => {
        delete j.Datacenters
      }),
      /Missing job datacenters/,
    ],
    [
      'a task without a driver',
      edit((j) => {
        j.TaskGroups[0].Tasks[0].Driver = ''
      }),
      /Task group controller validation failed: 1 error occurred:\n\t\* Task controller validation failed: 1 error occurred:\n\t\* Missing task driver/,
    ],
    [
      'count < 0',
      edit((j) => {
        j.TaskGroups[0].Count = -1
      }),
      /Task group count can't be negative/,
    ],
    [
      'min_healthy_time >= healthy_deadline',
      edit((j) => {
        j.TaskGroups[0].Update.MinHealthyTime = 180e9
      }),
      /Minimum healthy time must be less than healthy deadline: 3m0s > 2m0s/,
    ],
    [
      'healthy_deadline >= progress_deadline',
      edit((j) => {
        j.TaskGroups[0].Update.HealthyDeadline = 300e9
      }),
      /Healthy deadline must be less than progress deadline: 5m0s > 5m0s/,
    ],
    [
      'bad health_check',
      edit((j) => {
        j.TaskGroups[0].Update.HealthCheck = 'consul'
      }),
      /Invalid health check given: "consul"/,
    ],
    [
      'negative max_parallel',
      edit((j) => {
        j.TaskGroups[0].Update.MaxParallel = -1
      }),
      /Max parallel can not be less than zero: -1 < 0/,
    ],
    [
      'bad type',
      edit((j) => {
        j.Type = 'daemon'
      }),
      /Invalid job type: "daemon"/,
    ],
    [
      'no task groups',
      edit((j) => {
        j.TaskGroups = []
      }),
      /Missing job task groups/,
    ],
  ]
  for (const [what, job, msg] of cases) {
    const viaPlan = await c.planJob(job).catch((e: unknown) => e)
    t.ok(
      viaPlan instanceof NomadError && viaPlan.code === NomadErrorCodes.HTTP && viaPlan.status === 500,
      `${what}: plan refused`,
    )
    const viaRegister = (await c.registerJob(job).catch((e: unknown) => e)) as NomadError
    t.match(viaRegister, { code: NomadErrorCodes.HTTP, status: 500 }, `${what}: register refused`)
    t.match(viaRegister.message.replace(/^POST \/v1\/jobs: HTTP 500: /, ''), msg, `${what}: Nomad's message`)
  }
  const two = edit((j) => {
    j.Datacenters = []
    j.TaskGroups[0].Count = -1
  })
  t.match(
    ((await c.registerJob(two).catch((e: unknown) => e)) as Error).message,
    /2 errors occurred:\n\t\* Missing job datacenters\n\t\* Task group controller validation failed/,
    'every problem listed',
  )
  t.equal(d.job('pitwall-controller'), undefined, 'nothing was registered')
  t.ok((await c.registerJob(good)).EvalID, 'the valid job registers')
})

t.test(
  "by default the double keeps the job's own timing: no healthy allocation before min_healthy_time (10 s)",
  async (t) => {
    const d = await double(t, { fastTimingForTests: false })
    const c = new NomadClient({ address: d.url })
    const job = await c.parseJob(
      await readJobHcl('controller'),
      await readFile(join(JOBS_DIR, 'vars', 'a', 'controller.vars.hcl'), 'utf8'),
    )
    await c.registerJob(job)
    await new Promise((r) => setTimeout(r, 1500))
    const allocs = d.allocations('pitwall-controller')
    t.equal(allocs.length, 1, 'placed')
    t.equal(
      allocs[0]?.DeploymentStatus?.Healthy,
      null,
      'running for 1.5 s with passing checks: not healthy yet (min_healthy_time 10s)',
    )
    t.equal(d.deploymentsOf('pitwall-controller')[0]?.Status, 'running')
  },
)

t.test('min_healthy_time, healthy_deadline and progress_deadline drive the deployment', async (t) => {
  const failing = new Set<string>()
  const d = await double(t, {
    healthDelayMs: 0,
    healthy: (job) => !failing.has(String((job.Meta as Record<string, string> | null)?.try ?? '')),
  })
  const c = new NomadClient({ address: d.url })
  const base = await c.parseJob(
    await readJobHcl('controller'),
    await readFile(join(JOBS_DIR, 'vars', 'a', 'controller.vars.hcl'), 'utf8'),
  )
  const version = (n: number, update: Record<string, number> = {}): typeof base => {
    const j = JSON.parse(JSON.stringify(base)) as typeof base & {
      Meta: Record<string, string> | null
      TaskGroups: Array<{ Update: Record<string, number>; Tasks: Array<{ Env: Record<string, string> | null }> }>
    }
    j.Meta = { ...(j.Meta ?? {}), try: String(n) }
    Object.assign(j.TaskGroups[0]!.Update, update)
    j.TaskGroups[0]!.Tasks[0]!.Env = { ...(j.TaskGroups[0]!.Tasks[0]!.Env ?? {}), PITWALL_TRY: String(n) }
    return j
  }
  // v0: min_healthy_time 10s -> 100 ms: healthy no sooner than that after placement.
  await c.registerJob(version(0))
  const v0 = await settled(c, 'pitwall-controller', 0)
  t.equal(v0.Status, 'successful')
  const a0 = d.allocations('pitwall-controller')[0]!
  const healthyAfter = Date.parse(a0.DeploymentStatus!.Timestamp) - a0.CreateTime / 1e6
  t.ok(
    healthyAfter >= 95 && healthyAfter < 1000,
    `healthy ${healthyAfter} ms after placement (min_healthy_time 10s / 100)`,
  )

  // v1 never passes its checks; progress_deadline 0: unhealthy at healthy_deadline (2m -> 1.2 s) fails it at once.
  failing.add('1')
  const t1 = Date.now()
  await c.registerJob(version(1, { ProgressDeadline: 0 }))
  const v1 = await settled(c, 'pitwall-controller', 1)
  const took1 = Date.now() - t1
  t.equal(v1.Status, 'failed')
  t.equal(v1.StatusDescription, 'Failed due to unhealthy allocations - rolling back to job version 0')
  t.ok(took1 >= 1150 && took1 < 3500, `failed at the healthy deadline (${took1} ms, 2m / 100)`)
  const v2 = await settled(c, 'pitwall-controller', 2)
  t.equal(v2.Status, 'successful', "auto_revert: v0's spec again, as version 2")

  // v3 never passes; progress_deadline 1m -> 600 ms, healthy_deadline 30s -> 300 ms: fails at the progress deadline.
  failing.add('3')
  const t3 = Date.now()
  await c.registerJob(version(3, { HealthyDeadline: 30e9, ProgressDeadline: 60e9 }))
  const v3 = await settled(c, 'pitwall-controller', 3)
  const took3 = Date.now() - t3
  t.equal(v3.StatusDescription, 'Failed due to progress deadline - rolling back to job version 2')
  t.ok(took3 >= 580 && took3 < 2500, `failed at the progress deadline (${took3} ms, 1m / 100)`)
  t.equal(v3.TaskGroups.controller?.UnhealthyAllocs, 1, 'its allocation was marked unhealthy first (healthy_deadline)')
  t.equal((await settled(c, 'pitwall-controller', 4)).Status, 'successful', 'rolled back to the stable spec')
  t.match(
    JSON.stringify(d.job('pitwall-controller')),
    '"PITWALL_TRY":"0"',
    "the last stable version's spec (v2, a copy of v0)",
  )
  t.equal(d.job('pitwall-controller')?.Version, 4)

  // A slow start within the deadlines: healthy, later than min_healthy_time.
  const slow = new NomadDouble({ fastTimingForTests: true, healthDelayMs: 400 })
  await slow.start()
  t.teardown(() => slow.stop())
  const cs = new NomadClient({ address: slow.url })
  const ts = Date.now()
  await cs.registerJob(version(0))
  t.equal((await settled(cs, 'pitwall-controller', 0)).Status, 'successful')
  t.ok(Date.now() - ts >= 500, 'healthy after the start (400 ms) plus min_healthy_time (100 ms)')
})

t.test('pitwall deploy flags: parsed by actors/args.ts like every command', async (t) => {
  const bad = (argv: string[], flag: string, why: RegExp): void => {
    t.throws(() => parseDeployArgs(argv), { code: 'PW_CONFIG_INVALID', setting: flag, message: why }, argv.join(' '))
  }
  bad(['--site', 'a', '--sit', 'b'], '--sit', /unknown flag/)
  bad(['--site', 'a', '--site', 'b'], '--site', /given twice/)
  bad(['--site', 'a', '--plan', '--plan'], '--plan', /given twice/)
  bad(['--site'], '--site', /needs a value/)
  bad(['--site', 'a', '--vars-dir'], '--vars-dir', /needs a value/)
  bad(['--site', 'a', '--plan=yes'], '--plan', /takes no value/)
  bad(['--site', 'a', 'worker'], '"worker"', /unexpected argument/)
  const o = parseDeployArgs([
    '--site',
    'b',
    '--plan',
    '--job',
    'worker',
    '--job',
    'gateway',
    '--vars-dir',
    '/tmp/v',
    '--timeout',
    '2.5',
  ])
  t.same(
    { site: o.site, plan: o.plan, jobs: o.jobs, varsDir: o.varsDir, timeoutMs: o.timeoutMs },
    { site: 'b', plan: true, jobs: ['worker', 'gateway'], varsDir: '/tmp/v', timeoutMs: 2500 },
    '--job repeats, in the order given',
  )
  t.same(parseDeployArgs(['--site', 'a', '--skip', 'grafana', '--skip', 'prometheus']).jobs, [
    'nats',
    'worker',
    'projector',
    'gateway',
    'controller',
  ])
  t.equal(parseDeployArgs(['--write-vars']).writeVars, true, '--write-vars needs no --site')
  t.throws(() => parseDeployArgs(['--site', 'a', '--timeout', '0']), {
    code: NomadErrorCodes.USAGE,
    message: /--timeout/,
  })

  const lines: string[] = []
  const errs: string[] = []
  const io = {
    out: (l: string) => lines.push(l),
    err: (l: string) => errs.push(l),
    nomad: { address: 'http://127.0.0.1:9' },
  }
  t.equal(await deployMain(['--help'], io), 0, '--help: exit 0')
  t.match(
    lines.join('\n'),
    /usage: pitwall deploy --site <name>[\s\S]*--skip <job>[\s\S]*--write-vars/,
    'the help lists the flags',
  )
  t.equal(await deployMain(['--site', 'a', '--jobs', 'worker'], io), 2, 'an unknown flag: usage, exit 2')
  t.match(errs.join('\n'), /PW_CONFIG_INVALID: --jobs: unknown flag \(known: .*--job .*\)/)
  t.equal(await deployMain(['--plan'], io), 2, 'no --site: usage, exit 2')
  t.match(errs.at(-1), /PW_DEPLOY_USAGE: --site is required/)
})
