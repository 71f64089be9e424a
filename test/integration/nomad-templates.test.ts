/**
 * The Nomad jobs' templates rendered with what Consul answers (the Consul double, two datacenters): the NATS
 * config (routes from pitwall-nats-cluster, the leafnode remote from the peer datacenter's pitwall-nats-leaf)
 * passes `nats-server -t` and says what sites/render.ts says for the same site; the application templates give
 * PITWALL_NATS_URL and PITWALL_PG_URL equal to the sites/ values. Rendering uses a Go text/template subset
 * evaluator (test/helpers/go-template.ts); consul-template itself cannot run here.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConsulDiscovery } from '../../consul/discovery.js'
import { SERVICES } from '../../consul/services.js'
import {
  CONTROLLER_PORT,
  type JobName,
  NOMAD_ONLY_ENV,
  readJobHcl,
  renderVarFile,
  siteVars,
  varsFile,
} from '../../nomad-jobs/jobs.js'
import { localTopology } from '../../sites/local-topology.js'
import { renderSite } from '../../sites/render.js'
import {
  controllerSpec,
  gatewaySpec,
  GATEWAY_PORT,
  metricsPort,
  PROJECTOR_METRICS_PORT,
  projectorSpec,
  type ServiceSpec,
  topologySiteEnv,
  workerSpec,
} from '../../sites/local.js'
import { clientUrls, peerOf, type SiteDef, type Topology } from '../../sites/topology.js'
import { ConsulCluster } from '../helpers/consul-double.js'
import { renderTemplate } from '../helpers/go-template.js'
import { lookups, taskEnv } from '../helpers/nomad-env.js'
import { type Json, type JsonObject, parseJob } from '../helpers/nomad-hcl.js'

const NATS = process.env.NATS_SERVER_BIN ?? 'nats-server'
const obj = (v: Json | undefined): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {})
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : [])

/** Both sites' services registered in their datacenters, passing: NATS (client, cluster, leaf) and PostgreSQL. */
async function consulWith(t: Test, topo: Topology): Promise<Map<string, ConsulDiscovery>> {
  const cluster = new ConsulCluster()
  t.teardown(() => cluster.stop())
  const out = new Map<string, ConsulDiscovery>()
  for (const s of topo.sites) {
    const agent = await cluster.agent(s.consulDatacenter)
    const peer = topo.sites.find((x) => x !== s)!
    const d = new ConsulDiscovery({
      address: agent.url,
      datacenter: s.consulDatacenter,
      peerDatacenter: peer.consulDatacenter,
      pgUser: 'postgres',
      pgDatabase: `pitwall_${s.name}`,
    })
    t.teardown(() => d.close())
    out.set(s.name, d)
    const reg = async (name: string, id: string, host: string, port: number): Promise<void> => {
      await d.register({ name, id, address: host, port, ttl: '60s', tags: [`site-${s.name}`] })
      await d.ttl(`service:${id}`, 'pass')
    }
    for (const m of s.members) {
      await reg(SERVICES.nats, `nats-${m.name}`, m.host, m.clientPort)
      await reg(SERVICES.natsCluster, `route-${m.name}`, m.host, m.clusterPort)
      await reg(SERVICES.natsLeaf, `leaf-${m.name}`, m.host, m.leafnodePort)
    }
    const pg = new URL(s.pgUrl)
    await reg(SERVICES.postgres, 'pg', pg.hostname, Number(pg.port))
    // The site controller (nomad-jobs/controller.hcl registers it on its static port).
    await reg(SERVICES.controller, `controller-${s.name}`, s.members[0]!.host, CONTROLLER_PORT)
  }
  return out
}

function natsTask(job: JsonObject): JsonObject {
  return obj(arr(obj(arr(job.TaskGroups)[0]).Tasks)[0])
}

/** The semantic lines of a nats-server config: comments, names and the monitor port aside; self-routes dropped. */
function normalise(text: string, self: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !/^(server_name|http|store_dir):/.test(l))
    .map((l) => l.replace(/\[\s+/g, '[').replace(/\s+\]/g, ']'))
    .map((l) =>
      l.startsWith('routes:')
        ? `routes: ${JSON.stringify((JSON.parse(l.slice(7)) as string[]).filter((r) => r !== self).sort())}`
        : l,
    )
}

async function renderNats(t: Test, topo: Topology, site: SiteDef, d: ConsulDiscovery, dir: string): Promise<void> {
  const vars = renderVarFile(siteVars(topo, site.name, 'nats'), 'test')
  const job = await parseJob(await readJobHcl('nats'), vars)
  const tm = obj(arr(natsTask(job).Templates)[0])
  const src = String(tm.EmbeddedTmpl)
  const found = await lookups(d, src)
  const m = site.members[0]!
  const env: Record<string, string> = {
    NOMAD_IP_client: m.host,
    NOMAD_IP_cluster: m.host,
    NOMAD_IP_leafnode: m.host,
    NOMAD_IP_monitor: m.host,
    'node.unique.name': 'node-1',
  }
  const text = renderTemplate(
    src,
    { service: (n) => found.get(n) ?? [], env: (n) => env[n] ?? '' },
    String(tm.LeftDelim),
    String(tm.RightDelim),
  )
  const file = join(dir, `${site.name}-${site.members.length}.conf`)
  await writeFile(file, text)
  const r = spawnSync(NATS, ['-t', '-c', file], { encoding: 'utf8' })
  t.equal(r.status, 0, `${site.name} (${site.members.length} servers): the rendered config passes nats-server -t`, {
    output: `${r.stderr}${r.stdout}\n${text}`,
  })
  const expected = renderSite(topo, site.name, { storeRoot: '/x' })[0]!
  t.same(
    normalise(text, `nats-route://${m.host}:${m.clusterPort}`),
    normalise(expected.text, ''),
    `${site.name} (${site.members.length} servers): same settings as sites/render.ts`,
  )
  t.match(text, `store_dir: "/var/lib/nats/${site.name}"`)
}

t.test(
  'NATS template: routes and the peer leafnode from Consul; passes nats-server -t; same as sites/render.ts',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pw-nomad-tmpl-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    for (const topo of [localTopology(), localTopology({ clustered: true })]) {
      const consul = await consulWith(t, topo)
      for (const site of topo.sites) await renderNats(t, topo, site, consul.get(site.name)!, dir)
    }
  },
)

t.test(
  'NATS template on the dialing site while the peer has no passing leafnode: no remotes, still valid',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pw-nomad-tmpl-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const topo = localTopology()
    const consul = await consulWith(t, topo)
    await consul.get('a')!.ttl('service:leaf-a', 'fail', 'site a down')
    const b = topo.sites[1]!
    const job = await parseJob(await readJobHcl('nats'), renderVarFile(siteVars(topo, 'b', 'nats'), 'test'))
    const tm = obj(arr(natsTask(job).Templates)[0])
    const found = await lookups(consul.get('b')!, String(tm.EmbeddedTmpl))
    const text = renderTemplate(
      String(tm.EmbeddedTmpl),
      { service: (n) => found.get(n) ?? [], env: () => b.members[0]!.host },
      '[[',
      ']]',
    )
    t.notMatch(text, 'remotes', 'no remote while the peer is down (the template re-renders when it passes again)')
    const file = join(dir, 'b.conf')
    await writeFile(file, text)
    t.equal(spawnSync(NATS, ['-t', '-c', file]).status, 0, 'valid without remotes')
  },
)

t.test(
  'application templates: NATS and PostgreSQL URLs from Consul equal the sites/ values; gateway secrets from Nomad variables',
  async (t) => {
    const topo = localTopology()
    const consul = await consulWith(t, topo)
    for (const site of topo.sites) {
      for (const job of ['worker', 'projector', 'gateway'] as const) {
        const parsed = await parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
        const task = natsTask(parsed)
        let env = ''
        for (const tm of arr(task.Templates).map(obj)) {
          const found = await lookups(consul.get(site.name)!, String(tm.EmbeddedTmpl))
          env +=
            renderTemplate(String(tm.EmbeddedTmpl), {
              service: (n) => found.get(n) ?? [],
              env: () => '',
              nomadVar: (p) =>
                p === 'nomad/jobs/pitwall-gateway'
                  ? { jwt_secret: 'j'.repeat(32), api_keys: 'k:admin:sha256:00' }
                  : undefined,
            }) + '\n'
        }
        const vars = Object.fromEntries(
          env
            .split('\n')
            .filter((l) => /^[A-Z_]+=/.test(l))
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        )
        t.equal(vars.PITWALL_NATS_URL, clientUrls(site), `${site.name}/${job}: PITWALL_NATS_URL`)
        t.equal(vars.PITWALL_PG_URL, site.pgUrl, `${site.name}/${job}: PITWALL_PG_URL`)
        if (job === 'gateway') {
          t.equal(vars.PITWALL_GATEWAY_DATABASE_URL, site.pgUrl)
          t.equal(vars.PITWALL_GATEWAY_JWT_SECRET, 'j'.repeat(32))
          t.equal(vars.PITWALL_GATEWAY_API_KEYS, 'k:admin:sha256:00')
        }
      }
    }
  },
)

t.test(
  "each application task's whole environment, as Nomad and Consul render it, equals the local launcher's (two-site siteEnv)",
  async (t) => {
    const topo = localTopology()
    const consul = await consulWith(t, topo)
    const secrets = { jwt_secret: 'j'.repeat(32), api_keys: 'k:admin:sha256:00', consul_token: 'ctl-token' }
    const nomadVars = { 'nomad/jobs/pitwall-gateway': secrets, 'nomad/jobs/pitwall-controller': secrets }
    for (const site of topo.sites) {
      const peer = peerOf(topo, site.name)
      const env = topologySiteEnv(topo, site.name)
      const host = site.members[0]!.host
      const cases: Array<[JobName, ServiceSpec, Record<string, string>]> = [
        [
          'worker',
          workerSpec(env, 1),
          { NOMAD_ALLOC_INDEX: '1', NOMAD_PORT_metrics: String(metricsPort(1)), NOMAD_IP_metrics: host },
        ],
        [
          'projector',
          projectorSpec(env),
          { NOMAD_PORT_metrics: String(PROJECTOR_METRICS_PORT), NOMAD_IP_metrics: host },
        ],
        [
          'gateway',
          gatewaySpec(env, { jwtSecret: secrets.jwt_secret, apiKeys: secrets.api_keys }),
          { NOMAD_PORT_http: String(GATEWAY_PORT) },
        ],
        [
          'controller',
          controllerSpec(env, CONTROLLER_PORT, `http://${peer.members[0]!.host}:${CONTROLLER_PORT}/healthz`),
          { NOMAD_PORT_http: String(CONTROLLER_PORT), NOMAD_IP_http: host },
        ],
      ]
      for (const [job, spec, runtime] of cases) {
        const parsed = await parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
        const got = await taskEnv(consul.get(site.name)!, natsTask(parsed), runtime, nomadVars)
        const extra = NOMAD_ONLY_ENV[job] ?? []
        const shared = Object.fromEntries(Object.entries(got).filter(([k]) => !extra.includes(k)))
        t.same(
          shared,
          spec.env,
          `${site.name}/${job}: every variable and value equals sites/local.ts ${job}Spec (+ ${extra.join(', ') || 'nothing'})`,
        )
        if (job === 'controller') {
          t.same(
            [
              got.PITWALL_METRICS_HOST,
              got.PITWALL_DISCOVERY,
              got.CONSUL_HTTP_ADDR,
              got.CONSUL_HTTP_TOKEN,
              got.PITWALL_CONSUL_DATACENTER,
              got.PITWALL_PEER_CONSUL_DATACENTER,
            ],
            [host, 'consul', 'http://127.0.0.1:8500', 'ctl-token', site.consulDatacenter, peer.consulDatacenter],
            `${site.name}/controller: Consul health of the peer (token from the Nomad variable)`,
          )
        }
      }
    }
  },
)

t.test(
  'controller template: a failing peer controller does not change the rendered peer address (no restart while counting)',
  async (t) => {
    const topo = localTopology()
    const consul = await consulWith(t, topo)
    const parsed = await parseJob(await readJobHcl('controller'), await readFile(varsFile('b', 'controller'), 'utf8'))
    const task = natsTask(parsed)
    const render = async (): Promise<string> => {
      const tm = obj(arr(task.Templates)[0])
      const found = await lookups(consul.get('b')!, String(tm.EmbeddedTmpl))
      return renderTemplate(String(tm.EmbeddedTmpl), { service: (n) => found.get(n) ?? [], env: () => '' })
    }
    const before = await render()
    t.match(before, `PITWALL_PEER_HEALTH_URL=http://127.0.0.1:${CONTROLLER_PORT}/healthz`, "b probes a's controller")
    await consul.get('a')!.ttl('service:controller-a', 'fail', 'site a down')
    t.equal(
      await render(),
      before,
      "same text while a's controller fails: consul-template does not restart b's controller",
    )
    await consul.get('a')!.deregister('controller-a')
    t.notMatch(
      await render(),
      'PITWALL_PEER_HEALTH_URL',
      'no peer controller registered: no URL (the link and Consul health decide)',
    )
  },
)
