/**
 * MQTT ingest through nats-server's own MQTT listener: a private nats-server with JetStream, `server_name`, an
 * `mqtt` listener and the runtime's partition mapping (mappingFor, as sites/render.ts writes it). Devices publish
 * readings with the real `mqtt` client at QoS 1 on `tlm/<site>/<kind>/<id>`; NATS sees `tlm.<site>.<kind>.<id>`,
 * the mapping adds the partition, and each reading must be in the TLM stream on exactly
 * `tlmSubject(site, partitionOf(kind, id, P), kind, id)`, in publish order per entity. Topics of other shapes
 * never reach a partition: three tokens are not captured at all; five tokens are captured by TLM's
 * `tlm.<site>.*.*.*` unmapped, with a non-numeric partition token no worker filters on (which is why device
 * users need publish permissions, gateway/README.md).
 */
import t from 'tap'
import mqtt from 'mqtt'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig, mappingFor, partitionOf, provision, tlmSubject } from '../../actors/mod.js'
import { connectTo, freePort, startNats } from '../helpers/nats.js'

const SITE = 'a'
const P = 4

t.test('MQTT QoS 1 readings land in TLM on the partitioned subject', async (t) => {
  const mqttPort = await freePort()
  const map = mappingFor(SITE, P)
  const srv = await startNats({
    config: [
      'server_name: "pw-mqtt-test"',
      `mqtt { listen: "127.0.0.1:${mqttPort}" }`,
      `mappings { "${map.from}": "${map.to}" }`,
    ].join('\n'),
  })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, site: SITE, partitions: P })
  const jsm = await jetstreamManager(nc)
  await provision(nc, jsm, cfg)

  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: 'dev-test-1',
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  })
  t.teardown(() => client.endAsync())

  const entities: [string, string][] = [
    ['sensor', 'room1'],
    ['sensor', 'press-7'],
    ['vehicle', '1M8GDM9AXKP042788'],
    ['vehicle', 'car_44'],
    ['sensor', 'S9'],
  ]
  const sent = new Map<string, number[]>()
  const T0 = Date.now()
  for (let i = 0; i < 40; i++) {
    const [kind, id] = entities[i % entities.length] as [string, string]
    const reading = { ts: T0 + i, fields: { v: i }, rid: `${id}-${i}` }
    // QoS 1: resolves when the server's PUBACK arrives
    await client.publishAsync(`tlm/${SITE}/${kind}/${id}`, JSON.stringify(reading), { qos: 1 })
    sent.set(`${kind}.${id}`, [...(sent.get(`${kind}.${id}`) ?? []), i])
  }
  // wrong shapes
  await client.publishAsync(`tlm/${SITE}/sensor`, JSON.stringify({ ts: T0, fields: { v: -1 } }), { qos: 1 })
  await client.publishAsync(`tlm/${SITE}/sensor/room1/extra`, JSON.stringify({ ts: T0, fields: { v: -2 } }), { qos: 1 })

  const deadline = Date.now() + 5_000
  let info = await jsm.streams.info(cfg.streams.tlm)
  while (info.state.messages < 41 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
    info = await jsm.streams.info(cfg.streams.tlm)
  }
  t.equal(info.state.messages, 41, 'every QoS 1 reading stored once, plus the five-token topic')
  const unroutable: string[] = []

  const got = new Map<string, number[]>()
  for (let seq = 1; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(cfg.streams.tlm, { seq })
    if (!m) continue
    const body = m.json<{ ts: number; fields: { v: number }; rid: string }>()
    const parts = m.subject.split('.')
    if (!/^[0-9]+$/.test(parts[2] ?? '')) {
      unroutable.push(m.subject)
      continue
    }
    const kind = parts[3] ?? ''
    const id = parts[4] ?? ''
    t.equal(
      m.subject,
      tlmSubject(SITE, partitionOf(kind, id, P), kind, id),
      `${m.subject}: partition added by the server matches partitionOf`,
    )
    t.equal(body.rid, `${id}-${body.fields.v}`, 'payload intact')
    got.set(`${kind}.${id}`, [...(got.get(`${kind}.${id}`) ?? []), body.fields.v])
  }
  t.same(got, sent, "each entity's readings, in publish order")
  t.same(
    unroutable,
    [`tlm.${SITE}.sensor.room1.extra`],
    'the five-token topic is outside every partition (no worker reads it)',
  )
  t.ok(
    new Set([...got.keys()].map((k) => partitionOf(k.split('.')[0] ?? '', k.split('.')[1] ?? '', P))).size > 1,
    'entities spread over partitions',
  )
})

t.test('device users: publish permission on their own partitioned subject only', async (t) => {
  const mqttPort = await freePort()
  const map = mappingFor(SITE, P)
  const own = tlmSubject(SITE, partitionOf('sensor', 'room1', P), 'sensor', 'room1')
  const srv = await startNats({
    config: [
      'server_name: "pw-mqtt-perm-test"',
      // Anonymous MQTT clients would otherwise inherit the global no_auth_user (svc, full permissions).
      `mqtt { listen: "127.0.0.1:${mqttPort}", no_auth_user: nobody }`,
      `mappings { "${map.from}": "${map.to}" }`,
      // svc: the runtime's own user (anonymous connections map to it); dev-room1: one device. Permissions are
      // checked on the mapped subject, so the device is allowed exactly its own partitioned subject.
      'no_auth_user: svc',
      `authorization { users: [ {user: svc, password: svc-pw}, {user: nobody, password: nobody-pw, permissions: { publish: { deny: [">"] }, subscribe: { deny: [">"] } } }, {user: dev-room1, password: dev-pw, permissions: { publish: { allow: ["${own}"] } } } ] }`,
    ].join('\n'),
  })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({ natsUrl: srv.url, site: SITE, partitions: P })
  const jsm = await jetstreamManager(nc)
  await provision(nc, jsm, cfg)
  await t.rejects(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: 'intruder',
      username: 'dev-room1',
      password: 'wrong',
      reconnectPeriod: 0,
      connectTimeout: 3_000,
    }),
    'wrong password refused',
  )
  // anonymous MQTT: mapped to nobody (nats-server 2.9 then refuses the login); either way it cannot publish
  const anon = await mqtt
    .connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'anon', reconnectPeriod: 0, connectTimeout: 3_000 })
    .catch(() => undefined)
  if (anon) {
    await anon.publishAsync(`tlm/${SITE}/sensor/room1`, JSON.stringify({ ts: Date.now(), fields: { v: 99 } }), {
      qos: 1,
    })
    await anon.endAsync()
  }
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: 'room1',
    username: 'dev-room1',
    password: 'dev-pw',
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  })
  t.teardown(() => dev.endAsync())
  const wrongPartition = (partitionOf('sensor', 'room1', P) + 1) % P
  for (const [topic, v] of [
    [`tlm/${SITE}/sensor/room1`, 1],
    [`tlm/${SITE}/sensor/room2`, 2],
    [`tlm/${SITE}/vehicle/room1`, 3],
    [`tlm/${SITE}/${wrongPartition}/sensor/room1`, 4],
    [`tlm/${SITE}/x/sensor/room1`, 5],
    [`tlm/${SITE}/sensor/room1`, 6],
  ] as const) {
    // MQTT 3.1.1 has no way to refuse a publish: the server acks and drops what the user may not publish
    await dev.publishAsync(topic, JSON.stringify({ ts: Date.now(), fields: { v } }), { qos: 1 })
  }
  await new Promise((r) => setTimeout(r, 300))
  const info = await jsm.streams.info(cfg.streams.tlm)
  const got: [string, number][] = []
  for (let seq = 1; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(cfg.streams.tlm, { seq })
    if (m) got.push([m.subject, m.json<{ fields: { v: number } }>().fields.v])
  }
  t.same(
    got,
    [
      [own, 1],
      [own, 6],
    ],
    'only its own readings, on its partition; other entities and forged partitions dropped',
  )
})
