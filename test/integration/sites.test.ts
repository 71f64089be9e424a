import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { ConfigError, deviceSubject, partitionOf, tlmSubject } from '../../actors/mod.js'
import { LOCAL_TOPOLOGIES, localTopology, type PortKind } from '../../sites/local-topology.js'
import { renderSite, renderTopology, type RenderedConfig } from '../../sites/render.js'
import { type Topology, validateTopology } from '../../sites/topology.js'
import { freePort } from '../helpers/nats.js'

const NATS = process.env.NATS_SERVER_BIN ?? 'nats-server'

function withListeners(): Topology {
  const topo = localTopology()
  topo.sites.forEach((s, i) =>
    s.members.forEach((m) => {
      m.mqttPort = 1883 + i
      m.websocketPort = 8222 + 10 + i
    }),
  )
  return validateTopology(topo)
}

t.test('every rendered config of every site definition passes nats-server -t', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pw-sites-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const variants: Record<string, () => Topology> = { ...LOCAL_TOPOLOGIES, listeners: withListeners }
  for (const [name, make] of Object.entries(variants)) {
    const topo = make()
    const confs = renderTopology(topo, { storeRoot: join(dir, name, 'js') })
    t.equal(
      confs.length,
      topo.sites.reduce((n, s) => n + s.members.length, 0),
      `${name}: one config per server`,
    )
    for (const c of confs) {
      const file = join(dir, name, c.file)
      await mkdir(join(dir, name), { recursive: true })
      await writeFile(file, c.text)
      const r = spawnSync(NATS, ['-t', '-c', file], { encoding: 'utf8' })
      t.equal(r.status, 0, `${name}/${c.file}: ${r.stderr}${r.stdout}`)
      t.match(c.text, `domain: "${c.site}"`)
      t.match(c.text, '{{partition(16,1,2)}}')
    }
    const b = confs.filter((c) => c.site === 'b')
    t.ok(
      b.every((c) => c.text.includes('remotes:')),
      `${name}: b dials a`,
    )
    t.ok(
      confs.filter((c) => c.site === 'a').every((c) => !c.text.includes('remotes:')),
      `${name}: a only listens`,
    )
    const clustered = topo.sites[0]!.members.length > 1
    t.equal(
      confs.every((c) => c.text.includes('cluster {')),
      clustered,
      `${name}: routes only when clustered`,
    )
  }
})

t.test('validateTopology rejects contradictions, naming the item', async (t) => {
  const cases: Array<[string, (x: Topology) => void, RegExp]> = [
    [
      'duplicate port',
      (x) => {
        x.sites[1]!.members[0]!.clientPort = x.sites[0]!.members[0]!.clientPort
      },
      /sites\.b\.members\[0\]\.clientPort: port 127\.0\.0\.1:4301 is already used by sites\.a\.members\[0\]\.clientPort/,
    ],
    [
      'port in use twice within a server',
      (x) => {
        x.sites[0]!.members[0]!.leafnodePort = x.sites[0]!.members[0]!.clientPort
      },
      /sites\.a\.members\[0\]\.leafnodePort: port/,
    ],
    [
      'bad port',
      (x) => {
        x.sites[0]!.members[0]!.clientPort = 70000
      },
      /sites\.a\.members\[0\]\.clientPort: must be a port/,
    ],
    [
      'bad site name',
      (x) => {
        x.sites[0]!.name = 'A.1'
      },
      /sites\.A\.1\.name: must match/,
    ],
    [
      'duplicate site',
      (x) => {
        x.sites[1]!.name = 'a'
      },
      /sites\.a\.name: duplicate site/,
    ],
    [
      'duplicate domain',
      (x) => {
        x.sites[1]!.domain = 'a'
      },
      /sites\.b\.domain: duplicate JetStream domain/,
    ],
    [
      'bad server name',
      (x) => {
        x.sites[0]!.members[0]!.name = 'a b'
      },
      /sites\.a\.members\[0\]\.name: must match/,
    ],
    [
      'duplicate server name',
      (x) => {
        x.sites[1]!.members[0]!.name = 'a'
      },
      /sites\.b\.members\[0\]\.name: duplicate server name/,
    ],
    [
      'unknown peer',
      (x) => {
        x.sites[1]!.leafnodeRemotes = ['nats-leaf://127.0.0.1:9999']
      },
      /sites\.b\.leafnodeRemotes\[0\]: .*unknown peer/,
    ],
    [
      'dials itself',
      (x) => {
        x.sites[1]!.leafnodeRemotes = ['nats-leaf://127.0.0.1:7401']
      },
      /sites\.b\.leafnodeRemotes\[0\]: .*own leafnode listener/,
    ],
    [
      'bad remote url',
      (x) => {
        x.sites[1]!.leafnodeRemotes = ['127.0.0.1']
      },
      /sites\.b\.leafnodeRemotes\[0\]: must be nats-leaf/,
    ],
    [
      'nobody dials',
      (x) => {
        x.sites[1]!.leafnodeRemotes = []
      },
      /leafnodeRemotes: exactly one site must dial/,
    ],
    [
      'both dial',
      (x) => {
        x.sites[0]!.leafnodeRemotes = ['nats-leaf://127.0.0.1:7401']
      },
      /leafnodeRemotes: exactly one site must dial/,
    ],
    [
      'overlapping homes',
      (x) => {
        x.sites[1]!.homePartitions.push(0)
      },
      /sites\.b\.homePartitions: partition 0 is already the home of site 'a'/,
    ],
    [
      'uncovered partition',
      (x) => {
        x.sites[1]!.homePartitions.pop()
      },
      /homePartitions: partitions 15 have no home site/,
    ],
    [
      'partition out of range',
      (x) => {
        x.sites[1]!.homePartitions.push(16)
      },
      /sites\.b\.homePartitions: partition 16 is outside 0\.\.15/,
    ],
    [
      'bad partitions',
      (x) => {
        x.partitions = 0
      },
      /partitions: must be an integer/,
    ],
    [
      'one site',
      (x) => {
        x.sites.pop()
      },
      /sites: exactly two sites/,
    ],
    [
      'two-member cluster',
      (x) => {
        x.sites[0]!.members.push({
          ...x.sites[0]!.members[0]!,
          name: 'a2',
          clientPort: 1,
          clusterPort: 2,
          leafnodePort: 3,
        })
      },
      /sites\.a\.members: a JetStream cluster needs 1 or >= 3/,
    ],
    [
      'bad pg url',
      (x) => {
        x.sites[0]!.pgUrl = 'mysql://x'
      },
      /sites\.a\.pgUrl/,
    ],
    [
      'bad consul dc',
      (x) => {
        x.sites[0]!.consulDatacenter = 'DC 1'
      },
      /sites\.a\.consulDatacenter/,
    ],
    [
      'bad nomad dc',
      (x) => {
        x.sites[1]!.nomadDatacenter = ''
      },
      /sites\.b\.nomadDatacenter/,
    ],
  ]
  for (const [name, mutate, re] of cases) {
    const topo = localTopology()
    mutate(topo)
    t.throws(() => validateTopology(topo), ConfigError, name)
    try {
      validateTopology(topo)
    } catch (err) {
      t.match((err as Error).message, re, name)
    }
  }
  t.doesNotThrow(() => validateTopology(localTopology({ clustered: true, partitions: 7 })))
  t.throws(() => renderSite(localTopology(), 'c', { storeRoot: '/tmp/x' }), ConfigError, 'unknown site')
})

interface Server {
  proc: ChildProcess
  stderr: () => string
}

async function startServer(c: RenderedConfig, dir: string): Promise<Server> {
  const file = join(dir, c.file)
  await writeFile(file, c.text)
  const proc = spawn(NATS, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  return { proc, stderr: () => err }
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return
  const exited = new Promise((r) => s.proc.once('exit', r))
  s.proc.kill('SIGKILL')
  await exited
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await f()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`, { cause: last })
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function connectRetry(url: string): Promise<NatsConnection> {
  return await until(`nats at ${url}`, 10_000, () => connect({ servers: url, noAsyncTraces: true }))
}

async function twoSites(t: Test, clustered: boolean): Promise<void> {
  const n = clustered ? 3 : 1
  const ports = new Map<string, number>()
  const port = (site: string, i: number, kind: PortKind): number => {
    const p = ports.get(`${site}/${i}/${kind}`)
    if (p === undefined) throw new Error(`no port for ${site}/${i}/${kind}`)
    return p
  }
  for (const site of ['a', 'b']) {
    for (let i = 0; i < n; i++)
      for (const kind of ['client', 'cluster', 'leafnode'] as const) ports.set(`${site}/${i}/${kind}`, await freePort())
  }
  const P = 16
  const topo = localTopology({ port, partitions: P, clustered })
  const dir = await mkdtemp(join(tmpdir(), 'pw-sites-run-'))
  const servers: Server[] = []
  const conns: NatsConnection[] = []
  t.teardown(async () => {
    for (const nc of conns) await nc.close().catch(() => undefined)
    for (const s of servers) await stopServer(s)
    await rm(dir, { recursive: true, force: true })
  })
  const confs = renderTopology(topo, { storeRoot: join(dir, 'js') })
  for (const c of confs) servers.push(await startServer(c, dir))
  const [a, b] = topo.sites as [Topology['sites'][number], Topology['sites'][number]]
  const ncA = await connectRetry(`nats://127.0.0.1:${a.members[0]!.clientPort}`)
  conns.push(ncA)
  const ncB = await connectRetry(`nats://127.0.0.1:${b.members[0]!.clientPort}`)
  conns.push(ncB)

  // The leafnode link is up when b reaches domain a's JetStream API.
  // (jetstreamManager() asks the API for account info, so it fails until the API answers.)
  await until('leafnode link b -> a', 20_000, async () =>
    (await (await jetstreamManager(ncB, { domain: 'a' })).getAccountInfo()).domain === 'a' ? true : undefined,
  )

  const jsmA = await until('JetStream in a', 20_000, () => jetstreamManager(ncA))
  await until('stream TLM in a', 20_000, () =>
    jsmA.streams.add({ name: 'TLM', subjects: [`tlm.a.*.*.*`], num_replicas: n }),
  )
  const jsmB = await until('JetStream in b', 20_000, () => jetstreamManager(ncB))
  t.equal((await jsmB.getAccountInfo()).domain, 'b')
  await until('mirror TLM_a in b', 20_000, () =>
    jsmB.streams.add({
      name: 'TLM_a',
      num_replicas: n,
      mirror: { name: 'TLM', external: { api: '$JS.a.API', deliver: '' } },
    }),
  )

  const js = jsmA.jetstream()
  const N = 1_000
  const sent: Array<[string, string]> = []
  const acks = []
  for (let i = 0; i < N; i++) {
    const kind = i % 3 === 0 ? 'vehicle' : 'sensor'
    const id = `dev-${i}`
    sent.push([kind, id])
    acks.push(js.publish(deviceSubject('a', kind, id), JSON.stringify({ ts: Date.now(), fields: { v: i } })))
  }
  await Promise.all(acks)
  let wrong = 0
  for (let seq = 1; seq <= N; seq++) {
    const [kind, id] = sent[seq - 1]!
    const m = await jsmA.streams.getMessage('TLM', { seq })
    if (m?.subject !== tlmSubject('a', partitionOf(kind, id, P), kind, id)) wrong++
  }
  t.equal(wrong, 0, 'every stored subject carries the partition token partitionOf() computes')

  const mirrored = await until('mirror in b reaches 1,000', 30_000, async () => {
    const si = await jsmB.streams.info('TLM_a')
    return si.state.messages >= N ? si.state.messages : undefined
  })
  t.equal(mirrored, N, 'the mirror in domain b holds all 1,000 readings')
  const last = await jsmB.streams.getMessage('TLM_a', { seq: N })
  const [k, id] = sent[N - 1]!
  t.equal(last?.subject, tlmSubject('a', partitionOf(k, id, P), k, id), 'mirrored subjects are the partitioned ones')
  const dead = servers.filter((s) => s.proc.exitCode !== null)
  t.equal(
    dead.length,
    0,
    dead.length ? `servers exited: ${dead.map((s) => s.stderr()).join('\n')}` : 'every server still running',
  )
}

for (const clustered of [false, true]) {
  t.test(
    `two sites (${clustered ? '3-node cluster each' : 'one server each'}) from rendered configs: leafnode link, device mapping, cross-domain mirror`,
    (t) => twoSites(t, clustered),
  )
}
