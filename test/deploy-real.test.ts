/**
 * The same adapters against real agents, when their addresses are set (skipped, saying why, otherwise):
 * - CONSUL_HTTP_ADDR (+ CONSUL_HTTP_TOKEN): register a throw-away service with a TTL check, pass it, see it in
 *   health ?passing, let a blocking query time out and return on a change, take and release a session lock, create
 *   and execute a prepared query; everything created is named pitwall-test-<random> and removed again.
 * - NOMAD_ADDR (+ NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT ...): the agent's own HCL parser parses
 *   every job file with each site's var file, and plans the worker job (a dry run: nothing is registered).
 * Optional: PITWALL_TEST_CONSUL_PEER_DC, the peer datacenter for a ?dc= query.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { ConsulDiscovery } from '../consul/discovery.js'
import { NomadClient, nomadOptionsFromEnv } from '../nomad-jobs/client.js'
import { formatDiff } from '../nomad-jobs/deploy.js'
import { JOB_IDS, JOBS, readJobHcl, varsFile } from '../nomad-jobs/jobs.js'
import { localTopology } from '../sites/local-topology.js'

const consulAddr = process.env.CONSUL_HTTP_ADDR
const nomadAddr = process.env.NOMAD_ADDR

t.test('real Consul agent', { skip: consulAddr ? false : 'CONSUL_HTTP_ADDR is not set: no real Consul agent to test against (the double runs in test/consul.test.ts)' }, async (t) => {
  const address = /^https?:\/\//.test(consulAddr!) ? consulAddr! : `http://${consulAddr!}`
  const token = process.env.CONSUL_HTTP_TOKEN
  const headers: Record<string, string> = token ? { 'x-consul-token': token } : {}
  const self = await (await fetch(new URL('/v1/agent/self', address), { headers })).json() as { Config: { Datacenter: string } }
  const dc = self.Config.Datacenter
  const d = new ConsulDiscovery({ address, ...(token ? { token } : {}), datacenter: dc, peerDatacenter: process.env.PITWALL_TEST_CONSUL_PEER_DC ?? dc, pgUser: 'postgres', pgDatabase: 'postgres' })
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
  if (process.env.PITWALL_TEST_CONSUL_PEER_DC) t.type(await d.peerHealthy(), 'boolean', 'peer datacenter reachable by ?dc=')
  const lock = await d.lock(`pitwall/test/${name}`, { ttl: '15s' })
  await t.rejects(new ConsulDiscovery({ ...d.opts }).lock(`pitwall/test/${name}`), { code: 'PW_LOCK_HELD' })
  await lock.release()
  await d.consul.kv.del(`pitwall/test/${name}`)
  const [id] = await d.ensurePreparedQueries([{ Name: name, Service: { Service: name, OnlyPassing: true, Near: '_agent', Tags: [], Failover: { NearestN: 0, Datacenters: [] } }, DNS: { TTL: '5s' } }])
  t.teardown(() => fetch(new URL(`/v1/query/${id!}`, address), { method: 'DELETE', headers }).then(() => undefined))
  const r = await d.consul.query.execute(name) as { Nodes: unknown[]; Datacenter: string }
  t.equal(r.Datacenter, dc)
  t.equal(r.Nodes.length, 1, 'prepared query finds the passing instance')
  await d.deregister(name)
})

t.test('real Nomad agent', { skip: nomadAddr ? false : 'NOMAD_ADDR is not set: no real Nomad agent to test against (the double runs in test/nomad-deploy.test.ts)' }, async (t) => {
  const nomad = new NomadClient(nomadOptionsFromEnv(process.env))
  for (const site of localTopology().sites) {
    for (const job of JOBS) {
      const parsed = await nomad.parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
      t.equal(parsed.ID, JOB_IDS[job], `${site.name}/${job}: parsed by the agent`)
      t.same(parsed.Datacenters, [site.nomadDatacenter])
    }
  }
  const worker = await nomad.parseJob(await readJobHcl('worker'), await readFile(varsFile('a', 'worker'), 'utf8'))
  const plan = await nomad.planJob(worker)
  t.ok(plan.JobModifyIndex >= 0, 'plan answered (dry run)')
  t.comment(formatDiff(plan.Diff).join('\n'))
})
