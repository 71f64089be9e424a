/**
 * MQTT device users generated from the gateway's device credentials (real PostgreSQL) for a real nats-server
 * with an MQTT listener, the runtime's partition mapping and the generated include file; devices use the real
 * `mqtt` client at QoS 1. A device's readings on its own topic land in TLM on its partitioned subject; on another
 * entity's topic they never land; anonymous MQTT and wrong passwords are refused; a rotated credential works
 * after regeneration + reload (the old one too, until revoked); a revoked one is refused after regeneration +
 * reload and its open connection is closed. The command itself (`pitwall mqtt-users`, mqttUsersMain) writes the
 * file and signals the reload; the reload is confirmed through the server's /varz `config_load_time`.
 */
import t from 'tap'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import bcrypt from 'bcryptjs'
import mqtt, { type MqttClient } from 'mqtt'
import pg from 'pg'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import { compileConfig, mappingFor, partitionOf, provision, tlmSubject } from '../../actors/mod.js'
import { issueCredential, migrate, revokeCredential } from '../../gateway/db.js'
import {
  MQTT_ANON_USER,
  mqttUsersMain,
  parseMqttUsersArgs,
  parseServiceUsers,
  renderMqttUsers,
} from '../../gateway/mod.js'
import { connectTo, freePort, startNats } from '../helpers/nats.js'
import { createTestDb } from '../helpers/pg.js'

const SITE = 'a'
const P = 4
const VIN = '1M8GDM9AXKP042788'
const SVC_HASH = bcrypt.hashSync('svc-password-not-used-here', 4)

t.test('service users file and arguments', async (t) => {
  t.same(parseServiceUsers(`# runtime\nsvc:${SVC_HASH}\n\n  ops:${SVC_HASH}  \n`), [
    { user: 'svc', hash: SVC_HASH },
    { user: 'ops', hash: SVC_HASH },
  ])
  for (const [text, why] of [
    ['svc:plain-password', 'a plain password'],
    ['svc', 'no password'],
    [`dc_0123:${SVC_HASH}`, 'a device-like name'],
    [`s v c:${SVC_HASH}`, 'a space in the name'],
    [`svc:${SVC_HASH}\nsvc:${SVC_HASH}`, 'a repeated user'],
    [`svc:${SVC_HASH}x`, 'a truncated/extended hash'],
  ] as const)
    t.throws(() => parseServiceUsers(text), { code: 'PW_CONFIG_INVALID' }, why)
  t.same(parseMqttUsersArgs(['--out', 'a.conf', '--service-users', 's', '--reload', '42']), {
    out: 'a.conf',
    serviceUsers: 's',
    reload: { pid: 42 },
  })
  t.same(parseMqttUsersArgs(['--out', 'a.conf', '--anonymous', '--service-users', 's', '--pid-file', 'n.pid']), {
    out: 'a.conf',
    serviceUsers: 's',
    anonymous: true,
    reload: { pidFile: 'n.pid' },
  })
  t.same(parseMqttUsersArgs(['--anonymous', '--out', 'a.conf']), { out: 'a.conf', anonymous: true })
  for (const args of [
    [],
    ['--out', 'a'],
    ['--out', 'a', '--service-users'],
    ['--out', 'a', '--anonymous', '--anonymous'],
    ['--out', 'a', '--service-users', 's', '--reload', 'x'],
    ['--out', 'a', '--service-users', 's', '--reload', '1', '--pid-file', 'f'],
    ['--bogus', '1'],
    ['--out', 'a', '--out', 'b', '--service-users', 's'],
  ]) {
    t.throws(() => parseMqttUsersArgs(args), { code: 'PW_CONFIG_INVALID' }, args.join(' ') || '(none)')
  }
  t.throws(
    () => renderMqttUsers([], { site: SITE, partitions: P, serviceUsers: [] }),
    { code: 'PW_CONFIG_INVALID' },
    'no service user',
  )
  t.throws(
    () => renderMqttUsers([], { site: SITE, partitions: P, serviceUsers: [{ user: 'pitwall-anon', hash: SVC_HASH }] }),
    { code: 'PW_CONFIG_INVALID' },
    'reserved user name',
  )
  const r = renderMqttUsers(
    [
      { id: `dc_${'a'.repeat(24)}`, kind: 'sensor', entity: 'room1', mqttHash: SVC_HASH },
      { id: `dc_${'b'.repeat(24)}`, kind: 'sensor', entity: 'old', mqttHash: null },
      { id: `dc_${'c'.repeat(24)}`, kind: 'sensor', entity: 'bad"id', mqttHash: SVC_HASH },
    ],
    { site: SITE, partitions: P, serviceUsers: [{ user: 'svc', hash: SVC_HASH }] },
  )
  t.equal(r.devices, 1)
  t.equal(r.skipped, 2, 'no MQTT hash, or an id that is no subject token: left out')
  t.ok(
    r.text.includes(
      `publish: {allow: ["${tlmSubject(SITE, partitionOf('sensor', 'room1', P), 'sensor', 'room1')}"]}, subscribe: {deny: [">"]}`,
    ),
    'own partitioned subject only, no subscriptions',
  )
  t.notOk(r.text.includes('no_auth_user'))
})

t.test('MQTT device users from the registry: own topic only, rotation and revocation with reload', async (t) => {
  const db = await createTestDb()
  t.teardown(() => db.drop())
  const pool = new pg.Pool({ connectionString: db.url, max: 2 })
  t.teardown(() => pool.end())
  await migrate(pool)
  const room1 = await issueCredential(pool, 'sensor', 'room1')
  const room2 = await issueCredential(pool, 'sensor', 'room2')
  const car = await issueCredential(pool, 'vehicle', VIN)

  // The generated file lives in its own dir; nats-server resolves `include` relative to its config file
  // (even absolute paths), so the server's config names it by a relative path.
  const dir = await mkdtemp(join(tmpdir(), 'pw-mqtt-users-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'mqtt-users.conf')
  const usersFile = join(dir, 'service-users')
  await writeFile(usersFile, `# an operator's tool\nops:${SVC_HASH}\n`)
  const env = { PITWALL_SITE: SITE, PITWALL_PARTITIONS: String(P), PITWALL_GATEWAY_DATABASE_URL: db.url }
  const said: string[] = []
  const io = {
    out: (s: string): void => {
      said.push(s)
    },
    readStdin: async (): Promise<string> => '',
  }
  t.equal(await mqttUsersMain(['--out', out, '--service-users', usersFile, '--anonymous'], env, io), 0)
  t.match(said.at(-1), /3 device\(s\)/)
  t.equal((await stat(out)).mode & 0o777, 0o600, 'written with mode 0600')
  const text = await readFile(out, 'utf8')
  for (const c of [room1, room2, car]) t.notOk(text.includes(c.token.split('.')[1] ?? '?'), 'no secret in the file')

  const mqttPort = await freePort()
  const httpPort = await freePort()
  const map = mappingFor(SITE, P)
  const srv = await startNats({
    config: [
      'server_name: "pw-mqtt-users-test"',
      `http: "127.0.0.1:${httpPort}"`,
      // --anonymous: the runtime's (and this test's) anonymous connections get in; anonymous MQTT clients are
      // mapped to the deny-all user instead (without this line they would get the runtime's permissions)
      `mqtt { listen: "127.0.0.1:${mqttPort}", no_auth_user: "${MQTT_ANON_USER}" }`,
      `mappings { "${map.from}": "${map.to}" }`,
      `include "../${basename(dir)}/mqtt-users.conf"`,
    ].join('\n'),
  })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, site: SITE, partitions: P })
  const jsm = await jetstreamManager(nc)
  await provision(nc, jsm, cfg)

  // The runtime's anonymous connection must ride through every regeneration + reload.
  let disconnects = 0
  void (async () => {
    for await (const st of nc.status()) if (st.type === 'disconnect') disconnects++
  })()
  const anonLine = (text: string): string => text.split('\n').find((l) => l.includes('"pitwall-anon"')) ?? 'missing'
  const firstAnon = anonLine(await readFile(out, 'utf8'))
  const loadTime = async (): Promise<string> =>
    ((await (await fetch(`http://127.0.0.1:${httpPort}/varz`)).json()) as { config_load_time: string }).config_load_time
  /** Regenerates from the database and signals the server through the command; waits until it reloaded. */
  const regenerate = async (): Promise<void> => {
    const before = await loadTime()
    t.equal(
      await mqttUsersMain(
        ['--out', out, '--service-users', usersFile, '--anonymous', '--reload', String(srv.proc.pid)],
        env,
        io,
      ),
      0,
    )
    const deadline = Date.now() + 10_000
    while ((await loadTime()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    t.not(await loadTime(), before, 'nats-server reloaded')
  }
  const connect = async (
    cred: { id: string; token: string },
    clientId: string,
    password?: string,
  ): Promise<MqttClient> =>
    await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId,
      username: cred.id,
      password: password ?? cred.token.split('.')[1] ?? '',
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    })
  let v = 0
  /** Publishes a reading at QoS 1 (the PUBACK comes even for a denied publish); returns its marker value. */
  const send = async (c: MqttClient, kind: string, id: string): Promise<number> => {
    v++
    await c.publishAsync(`tlm/${SITE}/${kind}/${id}`, JSON.stringify({ ts: Date.now(), fields: { v } }), { qos: 1 })
    return v
  }

  await t.rejects(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'anon', reconnectPeriod: 0, connectTimeout: 3_000 }),
    'anonymous MQTT refused (mapped to the deny-all user)',
  )
  await t.rejects(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: 'anon2',
      username: 'pitwall-anon',
      password: '',
      reconnectPeriod: 0,
      connectTimeout: 3_000,
    }),
    'the anonymous core user cannot be used by name',
  )
  await t.rejects(connect(room1, 'bad', 'x'.repeat(43)), 'wrong password refused')
  await t.rejects(connect({ id: room1.id, token: room2.token }, 'swap'), "another credential's secret refused")

  const r1 = await connect(room1, 'room1')
  const r2 = await connect(room2, 'room2')
  const cv = await connect(car, 'car')
  const landed: [string, number][] = []
  landed.push([
    tlmSubject(SITE, partitionOf('sensor', 'room1', P), 'sensor', 'room1'),
    await send(r1, 'sensor', 'room1'),
  ])
  await send(r1, 'sensor', 'room2') // another entity's topic
  await send(r1, 'vehicle', VIN)
  await send(r2, 'sensor', 'room1')
  landed.push([
    tlmSubject(SITE, partitionOf('sensor', 'room2', P), 'sensor', 'room2'),
    await send(r2, 'sensor', 'room2'),
  ])
  landed.push([tlmSubject(SITE, partitionOf('vehicle', VIN, P), 'vehicle', VIN), await send(cv, 'vehicle', VIN)])
  await send(cv, 'sensor', 'room1')

  /** TLM's messages after `from` as [subject, marker]; waits until `n` arrived, then a little for strays. */
  const stored = async (from: number, n: number): Promise<[string, number][]> => {
    const deadline = Date.now() + 15_000
    const got = async (): Promise<[string, number][]> => {
      const info = await jsm.streams.info(cfg.streams.tlm)
      const res: [string, number][] = []
      for (let seq = from + 1; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(cfg.streams.tlm, { seq }).catch(() => null)
        if (m) res.push([m.subject, m.json<{ fields: { v: number } }>().fields.v])
      }
      return res
    }
    while ((await got()).length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    // Denied publishes are acked and dropped at once; the allowed ones after them are stored, so by now a
    // wrongly allowed one would be there too. Read once more after a moment to be sure.
    await new Promise((r) => setTimeout(r, 200))
    return await got()
  }
  const lastSeq = async (js: JetStreamManager): Promise<number> =>
    (await js.streams.info(cfg.streams.tlm)).state.last_seq
  t.same(
    await stored(0, 3),
    landed,
    "each device lands on its own partitioned subject; other entities' topics never land",
  )

  // rotation: a second credential for room1; after regeneration + reload both work
  const room1b = await issueCredential(pool, 'sensor', 'room1')
  await t.rejects(connect(room1b, 'room1b-early'), 'a new credential is unknown to nats-server until regenerated')
  await regenerate()
  const r1b = await connect(room1b, 'room1b')
  let from = await lastSeq(jsm)
  const own = tlmSubject(SITE, partitionOf('sensor', 'room1', P), 'sensor', 'room1')
  const a = await send(r1b, 'sensor', 'room1')
  const b = await send(r1, 'sensor', 'room1')
  t.same(
    await stored(from, 2),
    [
      [own, a],
      [own, b],
    ],
    'rotated credential works, the old one too until revoked',
  )

  // revocation: the old credential is refused after regeneration + reload, its open connection closed
  t.ok(await revokeCredential(pool, room1.id))
  const closed = new Promise<void>((resolve) => {
    r1.once('close', () => {
      resolve()
    })
  })
  await regenerate()
  await closed
  t.pass("the revoked device's open connection was closed by the reload")
  await t.rejects(connect(room1, 'room1-again'), 'revoked credential refused')
  from = await lastSeq(jsm)
  const c2 = await send(r1b, 'sensor', 'room1')
  const c3 = await send(r2, 'sensor', 'room2')
  t.same(
    await stored(from, 2),
    [
      [own, c2],
      [tlmSubject(SITE, partitionOf('sensor', 'room2', P), 'sensor', 'room2'), c3],
    ],
    'the rotated and the other devices keep working',
  )
  t.notOk((await readFile(out, 'utf8')).includes(room1.id), 'the revoked credential is no longer in the file')
  t.equal(
    anonLine(await readFile(out, 'utf8')),
    firstAnon,
    "the anonymous user's password is kept across regenerations",
  )
  t.equal(disconnects, 0, "the runtime's anonymous connection was never dropped by a reload")
  t.ok(!nc.isClosed())
  for (const c of [r1b, r2, cv]) await c.endAsync()
})
