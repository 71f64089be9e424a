/**
 * Exactly once at the device edge (issue 13, parts 1 and 5), against a real nats-server with its MQTT listener,
 * real worker processes running the production profile list (test/fixtures/worker-prod-main.ts) killed with -9,
 * and the real `mqtt` client. The `environment` send plan of test/helpers/env-trace.ts (out of order, late,
 * duration alerts) goes out 70 % over NATS with the entity-scoped message id and 30 % over MQTT QoS 1; its
 * re-sends (same `rid`, at a random later position) go out in ways JetStream's duplicate window does not catch:
 * half over NATS without a message id (what a retry after the two-minute window amounts to: JetStream stores it
 * again), half over MQTT QoS 1 (no message id at all). Both copies are in TLM. Windows, late records and duration
 * alerts in OUT must equal the docs-only reference (test/helpers/ref-environment.ts), which keeps each
 * (entity, rid)'s first copy: docs/runtime.md, "Reading ids".
 */
import t from 'tap'
import mqtt from 'mqtt'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { compileConfig, mappingFor, partitionOf, provision, readingMsgId, tlmSubject } from '../../actors/mod.js'
import { distPath, kill, killLoop, sleep, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { checkEnvironment, makeEnvPlan } from '../helpers/env-trace.js'
import { connectTo, freePort, startNats } from '../helpers/nats.js'
import { rng } from '../helpers/trace.js'

const SITE = 'a'
const P = 8
const N = Number(process.env.PITWALL_EDGE_READINGS ?? 12_000)
const SENSORS = 150

t.test(
  're-sent readings (no message id, MQTT QoS 1) are applied once through kill -9 on the production profile: results equal the reference',
  async (t) => {
    const mqttPort = await freePort()
    const map = mappingFor(SITE, P)
    const srv = await startNats({
      config: [
        'server_name: "pw-edge-test"',
        `mqtt { listen: "127.0.0.1:${mqttPort}" }`,
        `mappings { "${map.from}": "${map.to}" }`,
      ].join('\n'),
    })
    t.teardown(() => srv.stop())
    const nc = await connectTo(srv.url)
    t.teardown(() => nc.close())
    const jsm = await jetstreamManager(nc)
    const js = jetstream(nc)
    await provision(nc, jsm, compileConfig({ natsUrl: srv.url, site: SITE, partitions: P }))
    const env = {
      PITWALL_NATS_URL: srv.url,
      PITWALL_SITE: SITE,
      PITWALL_PARTITIONS: String(P),
      PITWALL_HEARTBEAT_MS: '200',
      PITWALL_LEASE_TTL_MS: '1500',
      PITWALL_CHECKPOINT_INTERVAL_MS: '300',
      PITWALL_MAX_IN_FLIGHT: '4000',
    }
    const script = distPath('test/fixtures/worker-prod-main.js')
    let gen = 0
    const workers: WorkerProc[] = [0, 1].map((i) => spawnWorker(script, `w${i}-g${gen++}`, env))
    t.teardown(async () => {
      for (const w of workers) await kill(w, 'SIGKILL')
    })
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: 'edge-dev',
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    })
    t.teardown(() => client.endAsync())

    const seed = Number(process.env.PITWALL_EDGE_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed}`)
    const r = rng(seed)
    const { plan, resends } = makeEnvPlan(seed, N, SENSORS)
    let mqttSends = 0
    let done = false
    const feeding = (async () => {
      for (let k = 0; k < plan.length; k += 200) {
        await Promise.all(
          plan.slice(k, k + 200).map(async (s) => {
            const body = JSON.stringify(s.reading)
            const viaMqtt = s.resend ? r() < 0.5 : r() < 0.3
            if (viaMqtt) {
              mqttSends++
              await client.publishAsync(`tlm/${SITE}/sensor/${s.id}`, body, { qos: 1 })
            } else {
              const subject = tlmSubject(SITE, partitionOf('sensor', s.id, P), 'sensor', s.id)
              await js.publish(
                subject,
                body,
                s.resend
                  ? { timeout: 30_000 }
                  : { msgID: readingMsgId('sensor', s.id, s.reading.rid as string), timeout: 30_000 },
              )
            }
          }),
        )
        await sleep(40)
      }
      done = true
    })()
    const kills = await killLoop(
      workers,
      (i) => spawnWorker(script, `w${i}-g${gen++}`, env),
      r,
      () => done,
      4,
    )
    await feeding
    t.ok(mqttSends > 0 && resends > 0, `${mqttSends} sends over MQTT, ${resends} re-sends`)
    await checkEnvironment(t, nc, { sends: plan.length, resends, note: `kills=${kills} mqtt=${mqttSends}` })
  },
)
