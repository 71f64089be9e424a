/**
 * The Consul discovery adapter (consul/discovery.ts, through the `consul` npm client) against the stateful
 * Consul double with two federated datacenters (test/helpers/consul-double.ts): register/deregister, TTL checks
 * expiring to critical, health with ?passing and ?dc, blocking queries returning on change and on wait timeout,
 * watches, sessions + KV acquire/release (lock) with session expiry, the gateway prepared query failing over to the
 * peer datacenter, peerHealthy; static discovery from sites/; and the checked-in Consul files (agent configs,
 * service definition, least-privilege ACL policies).
 */
import t, { type Test } from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from '@cdktf/hcl2json'
import {
  ConsulDiscovery,
  consulOptionsFromEnv,
  lockTakeoverBoundMs,
  consulOptionsFromTopology,
  createDiscovery,
  peerHealthFromEnv,
  staticDiscovery,
} from '../../consul/discovery.js'
import { DiscoveryErrorCodes } from '../../consul/errors.js'
import { preparedQueries } from '../../consul/queries.js'
import { SERVICES } from '../../consul/services.js'
import { JOBS, readJobHcl, varsFile } from '../../nomad-jobs/jobs.js'
import { localTopology } from '../../sites/local-topology.js'
import { clientUrls } from '../../sites/topology.js'
import { ConsulCluster } from '../helpers/consul-double.js'
import { freePort } from '../helpers/nats.js'
import { parseJob } from '../helpers/nomad-hcl.js'

const topo = localTopology()
const TOKEN = 'test-acl-token'
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Two federated datacenters. The agents keep Consul's own timing bounds unless `fast` (the double's
 * `fastTimingForTests`: bounds / 100), which only the tests that watch an expiry or a reap happen ask for.
 */
async function federation(
  t: Test,
  fast = false,
): Promise<{ cluster: ConsulCluster; a: ConsulDiscovery; b: ConsulDiscovery }> {
  const cluster = new ConsulCluster({ token: TOKEN, ...(fast ? { fastTimingForTests: true } : {}) })
  t.teardown(() => cluster.stop())
  const agentA = await cluster.agent('dc-a')
  const agentB = await cluster.agent('dc-b')
  const opts = (site: string, url: string): ConstructorParameters<typeof ConsulDiscovery>[0] => ({
    ...consulOptionsFromTopology(topo, site, { CONSUL_HTTP_ADDR: url, CONSUL_HTTP_TOKEN: TOKEN }),
  })
  const a = new ConsulDiscovery(opts('a', agentA.url))
  const b = new ConsulDiscovery(opts('b', agentB.url))
  t.teardown(() => {
    a.close()
    b.close()
  })
  return { cluster, a, b }
}

t.test('register, TTL pass, TTL expiry to critical, health ?passing, deregister', async (t) => {
  const { a } = await federation(t, true)
  await a.register({
    name: SERVICES.nats,
    id: 'nats-a-1',
    port: 4301,
    address: '127.0.0.1',
    tags: ['site-a'],
    ttl: '400ms',
  })
  t.same(await a.health(SERVICES.nats), [], 'a TTL check starts critical: not passing')
  await t.rejects(a.natsUrls(), { code: DiscoveryErrorCodes.NO_INSTANCE })
  await a.ttl('service:nats-a-1', 'pass', 'up')
  t.same(await a.natsUrls(), ['nats://127.0.0.1:4301'], 'passing after a TTL pass')
  const all = await a.health(SERVICES.nats, { passing: false })
  t.equal(all[0]?.Checks.find((c) => c.CheckID === 'service:nats-a-1')?.Status, 'passing')
  await sleep(700)
  t.same(await a.health(SERVICES.nats), [], 'TTL ran out: no passing instance')
  const crit = await a.health(SERVICES.nats, { passing: false })
  t.equal(crit[0]?.Checks.find((c) => c.CheckID === 'service:nats-a-1')?.Status, 'critical', 'critical')
  t.equal(crit[0]?.Checks.find((c) => c.CheckID === 'service:nats-a-1')?.Output, 'TTL expired')
  // /v1/agent/check/update/:id sets Status and Output in one call (the npm client has no wrapper for it).
  const upd = await fetch(new URL('/v1/agent/check/update/service:nats-a-1', a.opts.address), {
    method: 'PUT',
    headers: { 'x-consul-token': TOKEN },
    body: JSON.stringify({ Status: 'warning', Output: 'lagging' }),
  })
  t.equal(upd.status, 200)
  const warn = (await a.health(SERVICES.nats, { passing: false }))[0]?.Checks.find(
    (c) => c.CheckID === 'service:nats-a-1',
  )
  t.same([warn?.Status, warn?.Output], ['warning', 'lagging'], 'update: warning with output')
  t.same(await a.health(SERVICES.nats), [], 'warning is not passing')
  const bad = await fetch(new URL('/v1/agent/check/update/service:nats-a-1', a.opts.address), {
    method: 'PUT',
    headers: { 'x-consul-token': TOKEN },
    body: JSON.stringify({ Status: 'fine' }),
  })
  t.equal(bad.status, 400, 'invalid status refused')
  await a.ttl('service:nats-a-1', 'fail', 'draining')
  await a.deregister('nats-a-1')
  t.same(await a.health(SERVICES.nats, { passing: false }), [], 'deregistered')
  await t.rejects(a.deregister('nats-a-1'), { code: DiscoveryErrorCodes.CONSUL }, 'unknown id: 404 -> PW_CONSUL_FAILED')
  await t.rejects(a.ttl('nope', 'pass'), { code: DiscoveryErrorCodes.CONSUL })
})

t.test(
  'a service critical for DeregisterCriticalServiceAfter is removed by the agent (minimum and reaper interval)',
  async (t) => {
    // Fast timing: the minimum is 600 ms (1 min / 100) and the reaper runs every 300 ms (30 s / 100).
    const { a } = await federation(t, true)
    await a.register({
      name: SERVICES.worker,
      id: 'w-1',
      port: 9464,
      address: '127.0.0.1',
      ttl: '200ms',
      deregisterAfter: '100ms',
    })
    await a.ttl('service:w-1', 'pass')
    t.equal((await a.health(SERVICES.worker)).length, 1, 'passing')
    const t0 = Date.now()
    await sleep(500)
    t.equal(
      (await a.health(SERVICES.worker, { passing: false })).length,
      1,
      'critical for ~300 ms, longer than the 100 ms asked: still registered (raised to the minimum)',
    )
    let gone = 0
    while (Date.now() - t0 < 3000) {
      if ((await a.health(SERVICES.worker, { passing: false })).length === 0) {
        gone = Date.now() - t0
        break
      }
      await sleep(25)
    }
    // Critical from ~200 ms (TTL) on; reaped once critical > 600 ms, at the next reaper tick (<= 300 ms later).
    t.ok(
      gone >= 800 && gone <= 2000,
      `reaped ${gone} ms after the last pass: TTL + minimum + up to one reaper interval`,
    )
  },
)

t.test(
  "the agent's bounds by default: session TTL 10s..24h, checks need an interval, DeregisterCriticalServiceAfter >= 1m",
  async (t) => {
    const { a } = await federation(t)
    const put = async (path: string, body: unknown): Promise<{ status: number; text: string }> => {
      const r = await fetch(new URL(path, a.opts.address), {
        method: 'PUT',
        headers: { 'x-consul-token': TOKEN },
        body: JSON.stringify(body),
      })
      return { status: r.status, text: await r.text() }
    }
    t.same(
      await put('/v1/session/create', { TTL: '5s' }),
      { status: 500, text: "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]" },
      'TTL below 10s refused as the server does',
    )
    t.same(
      await put('/v1/session/create', { TTL: '25h' }),
      { status: 500, text: "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]" },
      'TTL above 24h refused',
    )
    t.equal((await put('/v1/session/create', { TTL: 'soon' })).status, 400, 'unparseable TTL: 400')
    t.equal(
      (await put('/v1/session/create', { TTL: '10s', LockDelay: '61s' })).status,
      500,
      'lock-delay above 60s refused',
    )
    t.equal((await put('/v1/session/create', { TTL: '10s' })).status, 200, '10s accepted')
    t.equal((await put('/v1/session/create', { TTL: '86400s' })).status, 200, '86400s accepted')
    await t.rejects(
      a.lock('pitwall/failover/short', { ttl: '1s' }),
      { code: DiscoveryErrorCodes.CONSUL, message: /Invalid Session TTL/ },
      "lock() surfaces the agent's refusal",
    )
    const svc = { Name: 'pitwall-test', ID: 'pt-1', Port: 1 }
    t.same(
      await put('/v1/agent/service/register', { ...svc, Check: { HTTP: 'http://127.0.0.1:1/healthz' } }),
      { status: 400, text: 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or gRPC checks' },
      'HTTP check without interval refused',
    )
    t.equal(
      (await put('/v1/agent/service/register', { ...svc, Checks: [{ TTL: '30s' }, { TCP: '127.0.0.1:1' }] })).status,
      400,
      'TCP check without interval refused',
    )
    t.equal(
      (await put('/v1/agent/service/register', { ...svc, Check: { Args: ['/bin/true'] } })).status,
      400,
      'script check without interval refused',
    )
    t.same(await put('/v1/agent/service/register', { ...svc, Check: { TTL: '30s', Interval: '10s' } }), {
      status: 400,
      text: 'Invalid check: Interval and TTL cannot both be specified',
    })
    t.same(await put('/v1/agent/service/register', { ...svc, Check: { Name: 'nothing' } }), {
      status: 400,
      text: 'Invalid check: TTL must be > 0 for TTL checks',
    })
    t.same(await a.health('pitwall-test', { passing: false }), [], 'nothing registered by the refused requests')
    t.equal(
      (
        await put('/v1/agent/service/register', {
          ...svc,
          Check: { HTTP: 'http://127.0.0.1:1/healthz', Interval: '10s' },
        })
      ).status,
      200,
      'with an interval: accepted',
    )
    // DeregisterCriticalServiceAfter below the minimum is raised to 1 minute, not honoured: still there 1 s later.
    await a.register({
      name: SERVICES.worker,
      id: 'w-1',
      port: 9464,
      address: '127.0.0.1',
      ttl: '30s',
      deregisterAfter: '400ms',
    })
    await a.ttl('service:w-1', 'fail', 'down')
    await sleep(1000)
    t.equal(
      (await a.health(SERVICES.worker, { passing: false })).length,
      1,
      'critical for 1 s with a 400ms timeout: kept (minimum 1m, reaper every 30 s)',
    )
  },
)

t.test('health with ?dc sees the peer datacenter; peerHealthy follows it and the WAN', async (t) => {
  const { cluster, a, b } = await federation(t)
  t.equal(await a.peerHealthy(), false, 'nothing in dc-b yet')
  await b.register({ name: SERVICES.nats, id: 'nats-b-1', port: 4401, address: '127.0.0.1', ttl: '30s' })
  await b.register({ name: SERVICES.natsLeaf, id: 'leaf-b-1', port: 7401, address: '127.0.0.1', ttl: '30s' })
  await b.ttl('service:nats-b-1', 'pass')
  await b.ttl('service:leaf-b-1', 'pass')
  t.same(await a.health(SERVICES.nats), [], 'not in dc-a')
  t.equal((await a.health(SERVICES.nats, { dc: 'dc-b' }))[0]?.Node.Datacenter, 'dc-b', '?dc=dc-b')
  t.same(await a.peerLeafUrls(), ['nats-leaf://127.0.0.1:7401'])
  t.equal(await a.peerHealthy(), true, 'peer healthy')
  cluster.partitioned.add('dc-b')
  t.equal(await a.peerHealthy(), false, 'WAN cut: no path to dc-b counts as unhealthy')
  cluster.partitioned.delete('dc-b')
  await b.ttl('service:nats-b-1', 'fail', 'down')
  t.equal(await a.peerHealthy('dc-b'), false, 'peer nats critical')
})

t.test("the site controller's Consul health (peerHealthFromEnv) from the controller job's environment", async (t) => {
  const { cluster, a, b } = await federation(t)
  // The environment the controller job of site a gives the process (nomad-jobs/controller.hcl + its var file);
  // the agent address is the double's, the token what the job's Nomad variable template renders.
  const job = await parseJob(await readJobHcl('controller'), await readFile(varsFile('a', 'controller'), 'utf8'))
  const task = (job.TaskGroups as Array<{ Tasks: Array<{ Env: Record<string, string> }> }>)[0]!.Tasks[0]!
  const env: Record<string, string> = {
    ...task.Env,
    CONSUL_HTTP_ADDR: a.opts.address,
    CONSUL_HTTP_TOKEN: TOKEN,
    PITWALL_PG_URL: topo.sites[0]!.pgUrl,
  }
  t.equal(env.PITWALL_DISCOVERY, 'consul')
  const o = consulOptionsFromEnv(env)
  t.same(
    [o.datacenter, o.peerDatacenter, o.pgUser, o.pgDatabase, o.token],
    ['dc-a', 'dc-b', 'postgres', 'pitwall_a', TOKEN],
    'datacenters from the job, database from PITWALL_PG_URL',
  )
  t.equal(peerHealthFromEnv({}), null, 'no PITWALL_DISCOVERY: static, no Consul health')
  t.equal(peerHealthFromEnv({ PITWALL_DISCOVERY: 'static' }), null, 'static: none')
  t.throws(() => peerHealthFromEnv({ PITWALL_DISCOVERY: 'dns' }), { code: DiscoveryErrorCodes.CONFIG })
  t.throws(() => peerHealthFromEnv({ PITWALL_DISCOVERY: 'consul', PITWALL_CONSUL_DATACENTER: 'dc-a' }), {
    code: DiscoveryErrorCodes.CONFIG,
    message: /PITWALL_PEER_CONSUL_DATACENTER/,
  })
  const h = peerHealthFromEnv(env)!
  t.teardown(() => h.discovery.close())
  t.equal(h.discovery.kind, 'consul')
  t.equal(await h.peerHealthy(), false, 'no NATS server registered in dc-b: peer unhealthy')
  await b.register({ name: SERVICES.nats, id: 'nats-b-1', port: 4401, address: '127.0.0.1', ttl: '30s' })
  await b.ttl('service:nats-b-1', 'pass')
  t.equal(await h.peerHealthy(), true, 'a passing pitwall-nats in dc-b: peer healthy')
  cluster.partitioned.add('dc-b')
  t.equal(await h.peerHealthy(), false, 'WAN cut: unhealthy')
  cluster.partitioned.delete('dc-b')
  t.equal(await h.peerHealthy(), true, 'WAN back: healthy')
  await b.ttl('service:nats-b-1', 'fail', 'site b down')
  t.equal(await h.peerHealthy(), false, 'peer NATS critical: unhealthy')
  await b.ttl('service:nats-b-1', 'pass')
  const port = await freePort()
  const gone = peerHealthFromEnv({ ...env, CONSUL_HTTP_ADDR: `http://127.0.0.1:${port}` })!
  t.teardown(() => gone.discovery.close())
  t.equal(await gone.peerHealthy(), false, 'local agent unreachable: false (never a rejection into the controller)')
})

t.test(
  'blocking queries return on change, and after the wait with the same index; watches fire on change',
  async (t) => {
    const { a } = await federation(t)
    await a.register({ name: SERVICES.nats, id: 'nats-a-1', port: 4301, address: '127.0.0.1', ttl: '30s' })
    await a.ttl('service:nats-a-1', 'pass')
    const first = await a.healthBlocking(SERVICES.nats, { index: undefined })
    t.equal(first.entries.length, 1)
    let t0 = Date.now()
    const idle = await a.healthBlocking(SERVICES.nats, { index: first.index, waitMs: 300 })
    const waited = Date.now() - t0
    t.ok(waited >= 280 && waited < 3000, `no change: returned after the wait (${waited} ms)`)
    t.equal(idle.index, first.index, 'same index')
    t0 = Date.now()
    const pending = a.healthBlocking(SERVICES.nats, { index: first.index, waitMs: 20_000 })
    setTimeout(() => void a.ttl('service:nats-a-1', 'fail'), 100)
    const changed = await pending
    t.ok(Date.now() - t0 < 5000, `returned on change after ${Date.now() - t0} ms, not after the 20 s wait`)
    t.ok(BigInt(changed.index) > BigInt(first.index), 'index moved')
    t.same(changed.entries, [], 'now failing')

    const seen: string[][] = []
    const stop = a.watchNats((urls) => seen.push(urls))
    t.teardown(stop)
    const until = async (n: number): Promise<void> => {
      for (let i = 0; i < 100 && seen.length < n; i++) await sleep(20)
    }
    await until(1)
    t.same(seen[0], [], 'initial: no passing nats')
    await a.ttl('service:nats-a-1', 'pass')
    await until(2)
    t.same(seen[1], ['nats://127.0.0.1:4301'], 'change: back')
    await a.register({ name: SERVICES.nats, id: 'nats-a-2', port: 4302, address: '127.0.0.1', ttl: '30s' })
    await a.ttl('service:nats-a-2', 'pass')
    await until(3)
    t.same([...(seen[2] ?? [])].sort(), ['nats://127.0.0.1:4301', 'nats://127.0.0.1:4302'], 'change: second server')
    t.equal(seen.length, 3, 'no callback without a change')
  },
)

t.test('locks: sessions + KV acquire/release; a lost session releases the lock after its lock-delay', async (t) => {
  // Fast timing only lowers the TTL minimum (a 300 ms session); the lock-delay asked for (1s) is enforced as is.
  const { cluster, a } = await federation(t, true)
  const agentA = [...cluster.dcs.keys()][0]!
  t.equal(agentA, 'dc-a')
  const other = new ConsulDiscovery({ ...a.opts })
  t.teardown(() => other.close())
  const lock = await a.lock('pitwall/failover/leader', { ttl: '10s', value: 'site-a' })
  t.ok(lock.session.length > 0)
  await t.rejects(
    other.lock('pitwall/failover/leader'),
    { code: DiscoveryErrorCodes.LOCK_HELD },
    'held by another session',
  )
  const kv = (await a.consul.kv.get('pitwall/failover/leader')) as {
    Value: string
    Session?: string
    LockIndex: number
  }
  t.equal(kv.Value, 'site-a')
  t.equal(kv.Session, lock.session)
  t.equal(kv.LockIndex, 1)
  await lock.release()
  const again = await other.lock('pitwall/failover/leader', { ttl: '10s' })
  t.pass('acquired after release')
  await again.release()
  // A holder that stops renewing (crashed): the agent invalidates its session up to 2 x TTL after the last renew,
  // then the key stays under the session's lock-delay (1s) before anyone may take it.
  const crashed = new ConsulDiscovery({ ...a.opts })
  const t0 = Date.now()
  const lost = await crashed.lock('pitwall/failover/leader', { ttl: '300ms' })
  crashed.close()
  await t.rejects(other.lock('pitwall/failover/leader'), { code: DiscoveryErrorCodes.LOCK_HELD }, 'held right after')
  await sleep(450 - (Date.now() - t0))
  await t.rejects(
    other.lock('pitwall/failover/leader'),
    { code: DiscoveryErrorCodes.LOCK_HELD },
    'still held past the TTL (the agent may wait up to 2 x TTL)',
  )
  for (let i = 0; i < 40; i++) {
    const kv = (await a.consul.kv.get('pitwall/failover/leader')) as { Session?: string }
    if (kv.Session !== lost.session) break
    await sleep(25)
  }
  const freed = Date.now() - t0
  t.ok(freed >= 550 && freed < 1200, `session invalidated ${freed} ms after the last renew (2 x 300 ms)`)
  await t.rejects(
    other.lock('pitwall/failover/leader'),
    { code: DiscoveryErrorCodes.LOCK_HELD },
    'released but under lock-delay: refused',
  )
  const taken = await other.lock('pitwall/failover/leader', { ttl: '10s', waitMs: 3000, retryMs: 50 })
  const at = Date.now() - t0
  t.ok(
    at >= 600 + 1000 && at <= lockTakeoverBoundMs('300ms', '1s') + 700,
    `taken over ${at} ms after the last renew: after invalidation + lock-delay, within 2 x TTL + lock-delay`,
  )
  const e = (await a.consul.kv.get('pitwall/failover/leader')) as { Session?: string; LockIndex: number }
  t.equal(e.Session, taken.session)
  t.equal(e.LockIndex, 4, 'LockIndex counts acquisitions')
  await taken.release()
  // An explicit release sets no lock-delay: the next holder gets the key at once.
  const next = await other.lock('pitwall/failover/leader', { ttl: '10s' })
  t.pass('acquired right after an explicit release')
  await next.release()
})

t.test('prepared query: nearest healthy gateway, failover to the peer datacenter', async (t) => {
  const { a, b } = await federation(t)
  const ids = await a.ensurePreparedQueries(preparedQueries(topo, 'a'))
  t.equal(ids.length, 1)
  const again = await a.ensurePreparedQueries(preparedQueries(topo, 'a'))
  t.not(again[0], ids[0], 're-created')
  t.equal(((await a.consul.query.list()) as unknown[]).length, 1, 'replaced, not duplicated')
  await b.ensurePreparedQueries(preparedQueries(topo, 'b'))
  await a.register({ name: SERVICES.gateway, id: 'gw-a-1', port: 8080, address: '127.0.0.1', ttl: '30s' })
  await b.register({ name: SERVICES.gateway, id: 'gw-b-1', port: 8081, address: '127.0.0.1', ttl: '30s' })
  await a.ttl('service:gw-a-1', 'pass')
  await b.ttl('service:gw-b-1', 'pass')
  let r = await a.gateway()
  t.equal(r.Datacenter, 'dc-a', 'local site first')
  t.equal(r.Failovers, 0)
  t.same(
    r.Nodes.map((n) => n.Service.Port),
    [8080],
  )
  await a.ttl('service:gw-a-1', 'fail', 'site a down')
  r = await a.gateway()
  t.equal(r.Datacenter, 'dc-b', 'local gateway failing: answered by the peer datacenter')
  t.equal(r.Failovers, 1)
  t.same(
    r.Nodes.map((n) => n.Service.Port),
    [8081],
  )
  await a.ttl('service:gw-a-1', 'pass')
  t.equal((await a.gateway()).Datacenter, 'dc-a', 'fail back when the local gateway passes again')
  t.equal((await b.gateway()).Datacenter, 'dc-b', 'site b resolves its own first')
})

t.test('ACL token is sent; without it Consul refuses; an unreachable agent is a typed error', async (t) => {
  const { cluster, a } = await federation(t)
  const noToken = new ConsulDiscovery({ ...a.opts, token: undefined as unknown as string })
  t.teardown(() => noToken.close())
  await t.rejects(noToken.health(SERVICES.nats), { code: DiscoveryErrorCodes.CONSUL })
  const agent = await cluster.agent('dc-a')
  const via = new ConsulDiscovery({ ...a.opts, address: agent.url })
  t.teardown(() => via.close())
  await via.health(SERVICES.nats)
  await via.lock('pitwall/failover/x').then((l) => l.release())
  t.ok(agent.requests.length >= 5, 'health, session create, acquire, release, destroy')
  t.ok(
    agent.requests.every((r) => r.token === TOKEN),
    'every request carried the ACL token',
  )
  t.equal(agent.requests[0]?.query.dc, 'dc-a', 'health asks the site datacenter explicitly')
  const port = await freePort()
  const down = new ConsulDiscovery({ ...a.opts, address: `http://127.0.0.1:${port}` })
  t.teardown(() => down.close())
  await t.rejects(down.health(SERVICES.nats), { code: DiscoveryErrorCodes.CONSUL, retryable: true })
})

t.test('createDiscovery picks static or Consul; both answer the same for a site registered in Consul', async (t) => {
  const { a } = await federation(t)
  for (const m of topo.sites[0]!.members) {
    await a.register({ name: SERVICES.nats, id: `nats-${m.name}`, port: m.clientPort, address: m.host, ttl: '30s' })
    await a.ttl(`service:nats-${m.name}`, 'pass')
  }
  const pg = new URL(topo.sites[0]!.pgUrl)
  await a.register({ name: SERVICES.postgres, id: 'pg', port: Number(pg.port), address: pg.hostname, ttl: '30s' })
  await a.ttl('service:pg', 'pass')
  const viaConsul = createDiscovery('consul', topo, 'a', { CONSUL_HTTP_ADDR: a.opts.address, CONSUL_HTTP_TOKEN: TOKEN })
  t.teardown(() => viaConsul.close())
  const viaStatic = createDiscovery('static', topo, 'a', {})
  t.equal(viaConsul.kind, 'consul')
  t.equal(viaStatic.kind, 'static')
  t.same(await viaConsul.natsUrls(), await viaStatic.natsUrls(), 'NATS URLs agree')
  t.equal(await viaConsul.pgUrl(), await viaStatic.pgUrl(), 'PostgreSQL URL agrees')
  t.throws(() => createDiscovery('dns', topo, 'a', {}), { code: DiscoveryErrorCodes.CONFIG })
})

t.test('static discovery from sites/ (the embedded default, no Consul)', async (t) => {
  const s = staticDiscovery(topo, 'b')
  t.equal(s.kind, 'static')
  t.same(await s.natsUrls(), clientUrls(topo.sites[1]!).split(','))
  t.equal(await s.pgUrl(), topo.sites[1]!.pgUrl)
  t.same(await s.peerLeafUrls(), ['nats-leaf://127.0.0.1:7301'])
  t.equal(await s.peerHealthy(), null, 'static cannot know the peer health')
  const seen: string[][] = []
  s.watchNats((u) => seen.push(u))()
  t.same(seen, [['nats://127.0.0.1:4401']])
})

type Hcl = Record<string, unknown>
const rules = (doc: Hcl, kind: string): Array<[string, string]> => {
  const v = doc[kind]
  if (!v || typeof v !== 'object') return []
  return Object.entries(v as Record<string, Array<{ policy: string }>>).map(([name, l]) => [name, l[0]?.policy ?? ''])
}

t.test(
  'checked-in Consul files: agent configs of the two federated datacenters, service, least-privilege policies',
  async (t) => {
    const dir = join(import.meta.dirname, '..', '..', 'consul')
    const primaries = new Set<unknown>()
    for (const site of topo.sites) {
      const doc = (await parse(
        `dc-${site.name}.hcl`,
        await readFile(join(dir, 'agent', `dc-${site.name}.hcl`), 'utf8'),
      )) as Hcl
      t.equal(doc.datacenter, site.consulDatacenter, `${site.name}: datacenter from sites/`)
      primaries.add(doc.primary_datacenter)
      const acl = (doc.acl as Hcl[])[0]!
      t.equal(acl.enabled, true)
      t.equal(acl.default_policy, 'deny', `${site.name}: ACL default deny`)
      t.ok(
        Array.isArray(doc.retry_join_wan) &&
          (doc.retry_join_wan as string[]).every((h) => !h.includes(`-${site.name}-`)),
        `${site.name}: WAN-joins the peer's servers`,
      )
    }
    t.equal(primaries.size, 1, 'one primary datacenter')
    const svc = (await parse('pg.hcl', await readFile(join(dir, 'services', 'pitwall-postgres.hcl'), 'utf8'))) as Hcl
    const s0 = (svc.service as Hcl[])[0]!
    t.equal(s0.name, SERVICES.postgres)
    t.ok((s0.check as unknown[]).length >= 1, 'with checks')

    // Services each Nomad job registers, from the job files.
    const registered = new Map<string, string[]>()
    for (const job of JOBS) {
      const hcl = await readJobHcl(job)
      registered.set(
        job,
        [...hcl.matchAll(/^\s*service \{\s*\n\s*name\s*=\s*"([^"]+)"/gm)].map((m) => m[1]!),
      )
    }
    const policyOf: Record<string, string> = {
      nats: 'pitwall-nats',
      worker: 'pitwall-worker',
      projector: 'pitwall-projector',
      gateway: 'pitwall-gateway',
      controller: 'pitwall-controller',
      prometheus: 'prometheus',
      grafana: 'grafana',
    }
    const files = (await readdir(join(dir, 'policies'))).filter((f) => f.endsWith('.hcl'))
    t.ok(files.length >= 8)
    for (const f of files) {
      const doc = (await parse(f, await readFile(join(dir, 'policies', f), 'utf8'))) as Hcl
      for (const k of ['acl', 'operator', 'agent', 'keyring', 'mesh']) t.notOk(k in doc, `${f}: no ${k} rule`)
      t.notOk(
        rules(doc, 'service_prefix').some(([, p]) => p === 'write'),
        `${f}: no service_prefix write`,
      )
      t.notOk(
        rules(doc, 'node_prefix').some(([, p]) => p === 'write') || rules(doc, 'node').some(([, p]) => p === 'write'),
        `${f}: no node write`,
      )
      t.notOk(
        rules(doc, 'key_prefix').some(([k, p]) => p === 'write' && !k.startsWith('pitwall/')),
        `${f}: KV writes only under pitwall/`,
      )
    }
    for (const [job, services] of registered) {
      const doc = (await parse('p.hcl', await readFile(join(dir, 'policies', `${policyOf[job]}.hcl`), 'utf8'))) as Hcl
      const writes = rules(doc, 'service')
        .filter(([, p]) => p === 'write')
        .map(([n]) => n)
        .sort()
      t.same(writes, [...new Set(services)].sort(), `${job}: writes exactly the services its job registers`)
    }
    t.same(registered.get('worker'), [SERVICES.worker])
    t.same(registered.get('controller'), [SERVICES.controller], 'the controller job registers pitwall-site')
    const ctl = (await parse('c.hcl', await readFile(join(dir, 'policies', 'pitwall-controller.hcl'), 'utf8'))) as Hcl
    t.same(
      rules(ctl, 'service_prefix'),
      [['pitwall-', 'read']],
      'controller: reads pitwall-* (its site and the peer datacenter)',
    )
    t.same(rules(ctl, 'key_prefix'), [['pitwall/failover/', 'write']], 'controller: KV only under pitwall/failover/')
    const ctlSvc = (
      ((await parse('s.hcl', await readFile(join(dir, 'services', 'pitwall-site.hcl'), 'utf8'))) as Hcl)
        .service as Hcl[]
    )[0]!
    t.equal(ctlSvc.name, SERVICES.controller, 'controller service definition (systemd deployments)')
    t.match((ctlSvc.check as Hcl[])[0], { http: /\/healthz$/ }, 'HTTP check on /healthz')
    t.ok((ctlSvc.tags as string[]).includes('metrics'), 'tagged metrics (Prometheus consul_sd)')
    const q = preparedQueries(topo, 'a')[0]!
    t.same(q.Service.Failover.Datacenters, ['dc-b'], 'a fails over to dc-b')
    t.equal(q.Service.OnlyPassing, true)
  },
)
