/**
 * `pitwall simulate` (cmd/simulate.ts) against real servers: option parsing, a plant run published over
 * NATS into a private nats-server's TLM stream on partitioned subjects (re-runs deduplicate by reading id), the
 * ground-truth file, a road run through a real gateway (POST /v1/readings with an API key), and an environment run
 * over MQTT through nats-server's MQTT listener (QoS 1, the server's partition mapping).
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { ConfigError } from '../../actors/errors.js'
import { provision } from '../../actors/provision.js'
import { mappingFor, parsePartitioned, partitionOf, tlmSubject } from '../../actors/subjects.js'
import { parseSimulateArgs, runSimulate, simulateMain } from '../../cmd/simulate.js'
import type { Episode } from '../../simulators/truth.js'
import { connectTo, freePort, startNats } from '../helpers/nats.js'
import { SVC_KEY, setupGateway } from '../helpers/gateway.js'

void t.test('options: defaults, and errors that name the option', async (t) => {
  const o = parseSimulateArgs(['--profile', 'plant', '--seed', '5', '--entities', '12', '--duration', '30'])
  t.match(o, {
    profile: 'plant',
    seed: 5,
    entities: 12,
    durationS: 30,
    realtime: false,
    anomalies: true,
    nats: 'nats://127.0.0.1:4222',
    site: 'a',
    partitions: 16,
  })
  const bad = (argv: string[], env: Record<string, string> = {}): string | undefined => {
    try {
      parseSimulateArgs(argv, env)
      return undefined
    } catch (err) {
      return err instanceof ConfigError ? err.setting : 'not a ConfigError'
    }
  }
  t.equal(bad(['--profile', 'boat']), '--profile')
  t.equal(bad(['--profile', 'plant', '--rate', '0']), '--rate')
  t.equal(bad(['--profile', 'plant', '--entities', '1.5']), '--entities')
  t.equal(bad(['--profile', 'plant', '--colour', 'red']), '--colour')
  t.equal(bad(['--profile', 'plant', '--nats', 'nats://x', '--gateway', 'http://y']), '--gateway')
  t.equal(bad(['--profile', 'plant', '--gateway', 'http://127.0.0.1:1']), 'PITWALL_API_KEY')
  t.equal(bad(['--profile', 'plant', '--gateway', 'ftp://x'], { PITWALL_API_KEY: 'k' }), '--gateway')
  t.equal(bad(['--profile', 'plant', '--site', 'B!']), '--site')
  t.equal(bad(['--profile']), '--profile')
  t.equal(await simulateMain(['--profile', 'nope'], {}), 2, 'usage errors exit 2')
  t.match(
    parseSimulateArgs(['--profile', 'road', '--mqtt-url', 'mqtt://127.0.0.1:1884'], {
      PITWALL_MQTT_USERNAME: 'sim',
      PITWALL_MQTT_PASSWORD: 'pw',
    }),
    { transport: 'mqtt', mqttUrl: 'mqtt://127.0.0.1:1884', mqttUsername: 'sim', mqttPassword: 'pw' },
  )
  t.match(parseSimulateArgs(['--profile', 'road', '--transport', 'mqtt']), {
    transport: 'mqtt',
    mqttUrl: 'mqtt://127.0.0.1:1883',
  })
  t.match(parseSimulateArgs(['--profile', 'plant', '--warmup', '600', '--anomaly-share', '0.1']), {
    transport: 'nats',
    warmupS: 600,
    anomalyShare: 0.1,
  })
  t.equal(bad(['--profile', 'road', '--transport', 'carrier-pigeon']), '--transport')
  t.equal(bad(['--profile', 'road', '--transport', 'mqtt', '--nats', 'nats://x']), '--nats')
  t.equal(bad(['--profile', 'road', '--mqtt-url', 'http://x']), '--mqtt-url')
  t.equal(
    bad(['--profile', 'road', '--mqtt-url', 'mqtt://x'], { PITWALL_MQTT_PASSWORD: 'pw' }),
    'PITWALL_MQTT_USERNAME',
  )
  t.equal(bad(['--profile', 'road', '--warmup', '60']), '--warmup')
  t.equal(bad(['--profile', 'plant', '--anomaly-share', '0.9']), '--anomaly-share')
})

void t.test('plant over NATS: partitioned subjects, idempotent re-run, ground truth file', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 4, workerId: 'sim-test' })
  await provision(nc, jsm, cfg)
  const dir = mkdtempSync(join(tmpdir(), 'pw-sim-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const gt = join(dir, 'truth.ndjson')
  const start = Date.now() - 3 * 3_600_000
  const argv = [
    '--profile',
    'plant',
    '--seed',
    '3',
    '--entities',
    '20',
    '--duration',
    '3600',
    '--start',
    String(start),
    '--nats',
    srv.url,
    '--partitions',
    '4',
    '--ground-truth',
    gt,
  ]
  t.equal(await simulateMain(argv, {}), 0)
  const info = await jsm.streams.info(cfg.streams.tlm)
  t.equal(info.state.messages, 20 * 720, 'one reading per sensor every 5 s for an hour')
  const first = await jsm.streams.getMessage(cfg.streams.tlm, { seq: 1 })
  if (!first) throw new Error('no first message')
  const sub = parsePartitioned(first.subject)
  t.ok(sub, first.subject)
  t.equal(sub?.partition, partitionOf('sensor', sub?.id ?? '', 4), 'partition from the one partition function')
  t.match(first.json<{ fields: Record<string, unknown>; profile: string }>(), {
    profile: 'process',
    fields: { stage: 'pretreatment' },
  })
  // The same run again: same reading ids, JetStream drops the duplicates.
  t.equal(await simulateMain(argv, {}), 0)
  t.equal((await jsm.streams.info(cfg.streams.tlm)).state.messages, 20 * 720, 're-run deduplicated')
  // Anomalies start after the 6 h warm-up: none within this hour, and the file says so.
  t.equal(readFileSync(gt, 'utf8'), '')
})

void t.test('race over NATS at a fixed rate, with progress lines', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 4, workerId: 'sim-test2' })
  await provision(nc, jsm, cfg)
  const dir = mkdtempSync(join(tmpdir(), 'pw-sim-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const gt = join(dir, 'truth.csv')
  const lines: string[] = []
  const t0 = Date.now()
  const r = await runSimulate(
    {
      ...parseSimulateArgs(
        [
          '--profile',
          'race',
          '--entities',
          '2',
          '--duration',
          '100',
          '--rate',
          '1000',
          '--nats',
          srv.url,
          '--partitions',
          '4',
          '--ground-truth',
          gt,
        ],
        {},
      ),
    },
    { progress: (l) => lines.push(l) },
  )
  const took = Date.now() - t0
  t.equal(r.sent, 2 * 10 * 100, 'two cars at 10 Hz for 100 s of event time')
  t.ok(took >= 1800, `rate-limited: ${took} ms for 2,000 readings at 1,000/s`)
  t.ok(
    lines.length >= 2 && /readings acknowledged/.test(lines[0] ?? '') && /done$/.test(lines.at(-1) ?? ''),
    lines.join('\n'),
  )
  t.equal((await jsm.streams.info(cfg.streams.tlm)).state.messages, 2000)
  const csv = readFileSync(gt, 'utf8').trim().split('\n')
  t.equal(csv[0], 'kind,entity,type,start,end,mode')
  t.equal(csv.length - 1, r.episodes.length, `${r.episodes.length} episodes (pit stops, overheats) written`)
  t.ok(r.episodes.every((e: Episode) => e.kind === 'vehicle' && e.end >= e.start))
})

void t.test('road through the HTTP gateway with an API key', async (t) => {
  const gw = await setupGateway(t)
  const addr = await gw.app.listen({ host: '127.0.0.1', port: 0 })
  const o = parseSimulateArgs(
    ['--profile', 'road', '--entities', '3', '--duration', '7200', '--gateway', addr, '--batch', '50'],
    { PITWALL_API_KEY: SVC_KEY },
  )
  const r = await runSimulate(o)
  t.ok(r.sent > 100, `${r.sent} readings accepted`)
  t.equal(await gw.count(), r.sent, 'every accepted reading is in the stream')
  const bad = parseSimulateArgs(['--profile', 'road', '--entities', '1', '--duration', '7200', '--gateway', addr], {
    PITWALL_API_KEY: 'wrong',
  })
  const err = await runSimulate(bad).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.match(String(err), /gateway answered 401/)
})

void t.test(
  "environment over MQTT: QoS 1 through nats-server's listener, partitioned by the server's mapping",
  async (t) => {
    const mqttPort = await freePort()
    const map = mappingFor('a', 4)
    const srv = await startNats({
      config: [
        'server_name: "pw-sim-mqtt"',
        `mqtt { listen: "127.0.0.1:${mqttPort}" }`,
        `mappings { "${map.from}": "${map.to}" }`,
      ].join('\n'),
    })
    t.teardown(() => srv.stop())
    const nc = await connectTo(srv.url)
    t.teardown(() => nc.close())
    const jsm = await jetstreamManager(nc)
    const cfg = compileConfig({ natsUrl: srv.url, partitions: 4, workerId: 'sim-mqtt' })
    await provision(nc, jsm, cfg)
    const lines: string[] = []
    const o = parseSimulateArgs(
      [
        '--profile',
        'environment',
        '--seed',
        '4',
        '--entities',
        '6',
        '--duration',
        '600',
        '--start',
        String(Date.now() - 3_600_000),
        '--transport',
        'mqtt',
        '--mqtt-url',
        `mqtt://127.0.0.1:${mqttPort}`,
      ],
      {},
    )
    const r = await runSimulate(o, { progress: (l) => lines.push(l) })
    t.equal(r.sent, 6 * 120, 'six sensors, one reading every 5 s for 10 minutes, every one acknowledged (PUBACK)')
    t.match(lines.at(-1), /720 readings acknowledged.*done$/)
    // The server acks a QoS 1 publish once it has taken it; the stream's own store may trail by a moment.
    let info = await jsm.streams.info(cfg.streams.tlm)
    for (let i = 0; i < 200 && info.state.messages < r.sent; i++) {
      await new Promise((res) => setTimeout(res, 50))
      info = await jsm.streams.info(cfg.streams.tlm)
    }
    t.equal(info.state.messages, r.sent, 'every reading in TLM once')
    const perEntity = new Map<string, number>()
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(cfg.streams.tlm, { seq })
      if (!m) continue
      const sub = parsePartitioned(m.subject)
      if (!sub) {
        t.fail(`unpartitioned subject ${m.subject}`)
        continue
      }
      if (m.subject !== tlmSubject('a', partitionOf(sub.kind, sub.id, 4), sub.kind, sub.id))
        t.fail(`${m.subject}: wrong partition`)
      const body = m.json<{ ts: number; rid: string; profile: string }>()
      if (body.rid !== `${sub.id}:${body.ts}` || body.profile !== 'environment')
        t.fail(`${m.subject}: payload ${JSON.stringify(body)}`)
      perEntity.set(sub.id, (perEntity.get(sub.id) ?? 0) + 1)
    }
    t.same([...perEntity.values()], Array(6).fill(120), 'on the partition of partitionOf, 120 per sensor')
    const down = parseSimulateArgs(
      [
        '--profile',
        'environment',
        '--entities',
        '1',
        '--duration',
        '10',
        '--mqtt-url',
        `mqtt://127.0.0.1:${await freePort()}`,
      ],
      {},
    )
    t.match(
      await runSimulate(down).then(
        () => undefined,
        (e: unknown) => e,
      ),
      { code: 'PW_NATS_UNREACHABLE', message: /--mqtt-url: cannot connect to MQTT/ },
    )
  },
)
