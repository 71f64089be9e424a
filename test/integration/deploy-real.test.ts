/**
 * The same adapters against real agents, when their addresses are set (skipped, saying why, otherwise):
 * - CONSUL_HTTP_ADDR (+ CONSUL_HTTP_TOKEN): register a throw-away service with a TTL check, pass it, see it in
 *   health ?passing, let a blocking query time out and return on a change, take and release a session lock, create
 *   and execute a prepared query; everything created is named pitwall-test-<random> and removed again. And the
 *   bounds the double enforces (test/integration/consul.test.ts): session TTL outside 10s..24h and a lock-delay over 60s
 *   refused, checks without an interval refused, a session not invalidated before its TTL, a lock freed by
 *   invalidation refused for the lock-delay and taken over after it (lock(waitMs)).
 * - NOMAD_ADDR (+ NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT ...): the agent's own HCL parser parses
 *   every job file with each site's var file and refuses misspelled arguments and blocks, and plans the worker job
 *   (a dry run: nothing is registered); plans of invalid jobs are refused with the messages the double gives
 *   (test/integration/nomad-deploy.test.ts: missing datacenters, task without driver, count < 0, bad update block). Not
 *   here yet: the deployment timing cases (min_healthy_time, deadlines, auto_revert), which need a cluster that
 *   may register and run a job.
 * Optional: PITWALL_TEST_CONSUL_PEER_DC, the peer datacenter for a ?dc= query.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { ConsulDiscovery, lockTakeoverBoundMs } from '../../consul/discovery.js'
import { NomadClient, nomadOptionsFromEnv } from '../../nomad-jobs/client.js'
import { formatDiff } from '../../nomad-jobs/deploy.js'
import { NomadErrorCodes } from '../../nomad-jobs/errors.js'
import { JOB_IDS, JOBS, readJobHcl, varsFile } from '../../nomad-jobs/jobs.js'
import { localTopology } from '../../sites/local-topology.js'

const consulAddr = process.env.CONSUL_HTTP_ADDR
const nomadAddr = process.env.NOMAD_ADDR

t.test(
  'real Consul agent',
  {
    skip: consulAddr
      ? false
      : 'CONSUL_HTTP_ADDR is not set: no real Consul agent to test against (the double runs in test/integration/consul.test.ts)',
  },
  async (t) => {
    const address = /^https?:\/\//.test(consulAddr!) ? consulAddr! : `http://${consulAddr!}`
    const token = process.env.CONSUL_HTTP_TOKEN
    const headers: Record<string, string> = token ? { 'x-consul-token': token } : {}
    const self = (await (await fetch(new URL('/v1/agent/self', address), { headers })).json()) as {
      Config: { Datacenter: string }
    }
    const dc = self.Config.Datacenter
    const d = new ConsulDiscovery({
      address,
      ...(token ? { token } : {}),
      datacenter: dc,
      peerDatacenter: process.env.PITWALL_TEST_CONSUL_PEER_DC ?? dc,
      pgUser: 'postgres',
      pgDatabase: 'postgres',
    })
    t.teardown(() => d.close())
    const name = `pitwall-test-${randomBytes(4).toString('hex')}`
    await d.register({ name, id: name, port: 1, address: '127.0.0.1', ttl: '30s', deregisterAfter: '1m' })
    t.teardown(() => d.deregister(name).catch(() => undefined))
    t.same(await d.health(name), [], 'TTL check starts critical')
    const before = await d.healthBlocking(name, { index: undefined })
    const t0 = Date.now()
    const idle = await d.healthBlocking(name, { index: before.index, waitMs: 1000 })
    t.ok(Date.now() - t0 >= 900, 'blocking query waited')
    t.equal(idle.index, before.index, 'same index without a change')
    const pending = d.healthBlocking(name, { index: before.index, waitMs: 30_000 })
    setTimeout(() => void d.ttl(`service:${name}`, 'pass'), 200)
    const changed = await pending
    t.ok(Date.now() - t0 < 25_000, 'returned on the change')
    t.equal(changed.entries.length, 1, 'passing after the TTL pass')
    if (process.env.PITWALL_TEST_CONSUL_PEER_DC)
      t.type(await d.peerHealthy(), 'boolean', 'peer datacenter reachable by ?dc=')
    const lock = await d.lock(`pitwall/test/${name}`, { ttl: '15s' })
    await t.rejects(new ConsulDiscovery({ ...d.opts }).lock(`pitwall/test/${name}`), { code: 'PW_LOCK_HELD' })
    await lock.release()
    await d.consul.kv.del(`pitwall/test/${name}`)

    // The bounds the double enforces (test/integration/consul.test.ts), against the agent itself.
    const put = async (path: string, body: unknown): Promise<{ status: number; text: string }> => {
      const r = await fetch(new URL(path, address), { method: 'PUT', headers, body: JSON.stringify(body) })
      return { status: r.status, text: await r.text() }
    }
    t.same(
      await put('/v1/session/create', { TTL: '5s' }),
      { status: 500, text: "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]" },
      'TTL below 10s refused',
    )
    t.same(
      await put('/v1/session/create', { TTL: '25h' }),
      { status: 500, text: "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]" },
      'TTL above 24h refused',
    )
    t.equal(
      (await put('/v1/session/create', { TTL: '10s', LockDelay: '61s' })).status,
      500,
      'lock-delay above 60s refused',
    )
    const svc = { Name: `${name}-nocheck`, ID: `${name}-nocheck`, Port: 1 }
    t.teardown(() => d.deregister(svc.ID).catch(() => undefined))
    t.same(
      await put('/v1/agent/service/register', { ...svc, Check: { HTTP: 'http://127.0.0.1:1/healthz' } }),
      { status: 400, text: 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or gRPC checks' },
      'HTTP check without interval refused',
    )
    t.equal(
      (await put('/v1/agent/service/register', { ...svc, Check: { TCP: '127.0.0.1:1' } })).status,
      400,
      'TCP check without interval refused',
    )
    t.same(await put('/v1/agent/service/register', { ...svc, Check: { TTL: '30s', Interval: '10s' } }), {
      status: 400,
      text: 'Invalid check: Interval and TTL cannot both be specified',
    })
    // A holder that stops renewing: its session outlives the TTL (invalidated at 1-2 x TTL), then the lock-delay runs.
    const key = `pitwall/test/${name}-takeover`
    t.teardown(() =>
      d.consul.kv.del(key).then(
        () => undefined,
        () => undefined,
      ),
    )
    const crashed = new ConsulDiscovery({ ...d.opts })
    const lockT0 = Date.now()
    const lost = await crashed.lock(key, { ttl: '10s', lockDelay: '5s' })
    crashed.close()
    const other = new ConsulDiscovery({ ...d.opts })
    t.teardown(() => other.close())
    await new Promise((r) => setTimeout(r, 9000))
    t.equal(
      ((await d.consul.kv.get(key)) as { Session?: string }).Session,
      lost.session,
      'still held before the TTL ran out',
    )
    const taken = await other.lock(key, { ttl: '10s', waitMs: 40_000, retryMs: 200 })
    const at = Date.now() - lockT0
    t.ok(
      at >= 10_000 + 5000 && at <= lockTakeoverBoundMs('10s', '5s') + 3000,
      `taken over ${at} ms after the last renew: TTL + lock-delay at the earliest, 2 x TTL + lock-delay at the latest`,
    )
    await taken.release()
    const [id] = await d.ensurePreparedQueries([
      {
        Name: name,
        Service: {
          Service: name,
          OnlyPassing: true,
          Near: '_agent',
          Tags: [],
          Failover: { NearestN: 0, Datacenters: [] },
        },
        DNS: { TTL: '5s' },
      },
    ])
    t.teardown(() => fetch(new URL(`/v1/query/${id!}`, address), { method: 'DELETE', headers }).then(() => undefined))
    const r = (await d.consul.query.execute(name)) as { Nodes: unknown[]; Datacenter: string }
    t.equal(r.Datacenter, dc)
    t.equal(r.Nodes.length, 1, 'prepared query finds the passing instance')
    await d.deregister(name)
  },
)

t.test(
  'real Nomad agent',
  {
    skip: nomadAddr
      ? false
      : 'NOMAD_ADDR is not set: no real Nomad agent to test against (the double runs in test/integration/nomad-deploy.test.ts)',
  },
  async (t) => {
    const nomad = new NomadClient(nomadOptionsFromEnv(process.env))
    for (const site of localTopology().sites) {
      for (const job of JOBS) {
        const parsed = await nomad.parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
        t.equal(parsed.ID, JOB_IDS[job], `${site.name}/${job}: parsed by the agent`)
        t.same(parsed.Datacenters, [site.nomadDatacenter])
      }
    }
    const workerHcl = await readJobHcl('worker')
    const workerVars = await readFile(varsFile('a', 'worker'), 'utf8')
    const worker = await nomad.parseJob(workerHcl, workerVars)
    const plan = await nomad.planJob(worker)
    t.ok(plan.JobModifyIndex >= 0, 'plan answered (dry run)')
    t.comment(formatDiff(plan.Diff).join('\n'))

    // The strictness the double has (test/unit/nomad-jobs.test.ts, test/integration/nomad-deploy.test.ts), against the agent.
    for (const [from, to, arg] of [
      [/min_healthy_time(\s+)=/, 'min_healty_time$1=', 'min_healty_time'],
      [/(\n\s+)driver(\s+)=/, '$1drivr$2=', 'drivr'],
    ] as const) {
      await t.rejects(
        nomad.parseJob(workerHcl.replace(from, to), workerVars),
        {
          code: NomadErrorCodes.PARSE,
          message: new RegExp(`Unsupported argument; An argument named "${arg}" is not expected here`),
        },
        `${arg}: refused by the agent's parser`,
      )
    }
    const edit = (f: (j: Record<string, any>) => void): typeof worker => {
      const j = JSON.parse(JSON.stringify(worker)) as typeof worker
      f(j as unknown as Record<string, any>)
      return j
    }
    const invalid: Array<[string, typeof worker, RegExp]> = [
      [
        'no datacenters',
        edit((j) => {
          j.Datacenters = []
        }),
        /Missing job datacenters/,
      ],
      [
        'a task without a driver',
        edit((j) => {
          j.TaskGroups[0].Tasks[0].Driver = ''
        }),
        /Missing task driver/,
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
        /Minimum healthy time must be less than healthy deadline/,
      ],
      [
        'bad health_check',
        edit((j) => {
          j.TaskGroups[0].Update.HealthCheck = 'consul'
        }),
        /Invalid health check given: "consul"/,
      ],
    ]
    for (const [what, job, msg] of invalid)
      await t.rejects(
        nomad.planJob(job),
        { code: NomadErrorCodes.HTTP, message: msg },
        `${what}: plan refused by the agent`,
      )
  },
)
