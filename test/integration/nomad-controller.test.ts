/**
 * The site controller as its Nomad job runs it: the process `cmd/controller` with the environment of
 * nomad-jobs/controller.hcl (site b's var file, failover_after_ms lowered), its templates rendered from the Consul
 * double (NATS of the site, the peer controller's address in dc-a, the ACL token from the Nomad variable), against
 * real nats-servers of both sites. Site a is killed with -9, so the leafnode link and a's /healthz are gone. While
 * Consul still has a passing pitwall-nats in dc-a, the controller keeps counting the peer as alive (no failover,
 * peerDownForMs 0, across many probes); once a's NATS turns critical in Consul, it fails over and b owns every
 * partition. The source is run through tsx (dist/ may be older than the tree).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { compileConfig, provision } from '../../actors/mod.js'
import { ConsulDiscovery } from '../../consul/discovery.js'
import { SERVICES } from '../../consul/services.js'
import { readJobHcl, varsFile } from '../../nomad-jobs/jobs.js'
import { localTopology } from '../../sites/local-topology.js'
import { LocalSites, waitForLink } from '../../sites/servers.js'
import { clientUrls, siteOf } from '../../sites/topology.js'
import { type ConsulAgentDouble, ConsulCluster } from '../helpers/consul-double.js'
import { freePort } from '../helpers/nats.js'
import { firstTask, taskEnv } from '../helpers/nomad-env.js'
import { parseJob } from '../helpers/nomad-hcl.js'

const REPO = join(import.meta.dirname, '..', '..')
const TOKEN = 'controller-acl-token'
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface Status {
  epoch: number
  role: string
  owned: number[]
  peerLinkUp: boolean
  peerDownForMs: number
  failovers: number
}

t.test("the controller job's process fails over only when Consul, too, says the peer site is down", async (t) => {
  const ports = new Map<string, number>()
  for (const s of ['a', 'b'])
    for (const k of ['client', 'cluster', 'leafnode']) ports.set(`${s}/${k}`, await freePort())
  const topo = localTopology({ port: (s, _i, k) => ports.get(`${s}/${k}`) as number })
  const dir = await mkdtemp(join(tmpdir(), 'pw-nomad-ctl-'))
  const sites = new LocalSites(topo, dir)
  t.teardown(async () => {
    await sites.stopAll()
    await rm(dir, { recursive: true, force: true })
  })
  await sites.start()
  const ncA = await connect({ servers: sites.natsUrl('a'), noAsyncTraces: true, maxReconnectAttempts: 0 })
  const ncB = await connect({ servers: sites.natsUrl('b'), noAsyncTraces: true })
  t.teardown(async () => {
    await ncA.close().catch(() => undefined)
    await ncB.close()
  })
  await waitForLink(ncB, siteOf(topo, 'a').domain)
  await waitForLink(ncA, siteOf(topo, 'b').domain)
  const cfg = (site: string): ReturnType<typeof compileConfig> =>
    compileConfig({
      site,
      natsUrl: sites.natsUrl(site),
      partitions: topo.partitions,
      domain: siteOf(topo, site).domain,
      peer: { site: site === 'a' ? 'b' : 'a', domain: siteOf(topo, site === 'a' ? 'b' : 'a').domain },
      homePartitions: siteOf(topo, site).homePartitions,
    })
  await provision(ncA, await jetstreamManager(ncA), cfg('a'))
  await provision(ncB, await jetstreamManager(ncB), cfg('b'))

  // Consul: both datacenters, each site's NATS servers and controller registered and passing.
  const cluster = new ConsulCluster({ token: TOKEN })
  t.teardown(() => cluster.stop())
  const reg: Record<string, ConsulDiscovery> = {}
  const agents: Record<string, ConsulAgentDouble> = {}
  const deadPort = await freePort()
  for (const s of topo.sites) {
    const agent = await cluster.agent(s.consulDatacenter)
    agents[s.name] = agent
    const d = new ConsulDiscovery({
      address: agent.url,
      token: TOKEN,
      datacenter: s.consulDatacenter,
      peerDatacenter: s.name === 'a' ? 'dc-b' : 'dc-a',
      pgUser: 'postgres',
      pgDatabase: `pitwall_${s.name}`,
    })
    t.teardown(() => d.close())
    reg[s.name] = d
    const m = s.members[0]!
    const pg = new URL(s.pgUrl)
    for (const [name, id, port] of [
      [SERVICES.nats, `nats-${s.name}`, m.clientPort],
      [SERVICES.postgres, `pg-${s.name}`, Number(pg.port)],
      [SERVICES.controller, `controller-${s.name}`, s.name === 'a' ? deadPort : 9481],
    ] as const) {
      await d.register({ name, id, address: m.host, port, ttl: '600s', tags: [`site-${s.name}`] })
      await d.ttl(`service:${id}`, 'pass')
    }
  }

  // Site b's controller: the job's environment, with the agent of dc-b as the client's local agent.
  const vars = `${await readFile(varsFile('b', 'controller'), 'utf8')}failover_after_ms = 1500\n`
  const job = await parseJob(await readJobHcl('controller'), vars)
  const httpPort = await freePort()
  const env = await taskEnv(
    reg.b!,
    firstTask(job),
    { NOMAD_PORT_http: String(httpPort), NOMAD_IP_http: '127.0.0.1' },
    { 'nomad/jobs/pitwall-controller': { consul_token: TOKEN } },
  )
  env.CONSUL_HTTP_ADDR = agents.b!.url
  t.equal(env.PITWALL_NATS_URL, clientUrls(siteOf(topo, 'b')), 'NATS of site b from Consul')
  t.equal(
    env.PITWALL_PEER_HEALTH_URL,
    `http://127.0.0.1:${deadPort}/healthz`,
    "the peer controller's address from dc-a",
  )
  t.equal(env.PITWALL_FAILOVER_AFTER_MS, '1500')
  t.equal(env.PITWALL_DISCOVERY, 'consul')
  const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'cmd', 'controller.ts')], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  proc.stderr.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-50_000)
  })
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await exited
    }
  })
  const status = async (): Promise<Status | null> => {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/status`, { signal: AbortSignal.timeout(5_000) })
      return r.ok ? ((await r.json()) as Status) : null
    } catch {
      return null
    }
  }
  const until = async (what: string, ok: () => Promise<boolean>, ms = 90_000): Promise<void> => {
    const end = Date.now() + ms
    while (!(await ok())) {
      if (Date.now() > end || proc.exitCode !== null)
        throw new Error(`${what}: not reached (exit ${proc.exitCode}); log: ${log.slice(-3000)}`)
      await sleep(200)
    }
  }
  await until('controller started', async () => /controller started/.test(log))
  const first = await status()
  t.equal(first?.role, 'normal', 'b starts in role normal')
  t.same(first?.owned, siteOf(topo, 'b').homePartitions, 'b owns its home partitions')

  // Site a lost: servers killed with -9 (its controller never ran: its /healthz address is dead).
  await sites.kill('a')
  // The controller's Consul health queries: to its local agent (dc-b), about dc-a, with the job's token.
  const peerAsks = (): number =>
    agents.b!.requests.filter(
      (r) => r.path === `/v1/health/service/${SERVICES.nats}` && r.query.dc === 'dc-a' && r.token === TOKEN,
    ).length
  await until('link down', async () => (await status())?.peerLinkUp === false)
  const before = peerAsks()
  // Many probes with the link and /healthz down, each over twice the failover delay apart in total: Consul's
  // passing NATS in dc-a keeps the peer alive every time.
  await until('8 Consul health probes of dc-a', async () => peerAsks() >= before + 8)
  const held = await status()
  t.equal(
    held?.failovers,
    0,
    `no failover while Consul has a passing ${SERVICES.nats} in dc-a (${peerAsks() - before} probes)`,
  )
  t.equal(held?.peerDownForMs, 0, 'the peer counts as alive (downtime not counting)')
  t.equal(held?.peerLinkUp, false, 'although the leafnode link is down')
  t.notMatch(log, /failing over/, 'no failover logged')

  // Consul now agrees: a's NATS critical. The controller fails over.
  await reg.a!.ttl(`service:nats-a`, 'fail', 'site a lost')
  await until('failover', async () => ((await status())?.failovers ?? 0) >= 1)
  const after = await status()
  t.equal(after?.role, 'survivor', 'b is the survivor')
  t.same(
    after?.owned,
    Array.from({ length: topo.partitions }, (_, p) => p),
    'b owns every partition',
  )
  t.match(log, /peer site lost: failing over/, 'automatic failover logged')
  proc.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: the controller stops cleanly (Consul client closed, NATS drained)')
})
