/**
 * `pitwall simulate --profile <race|environment|plant|asset|road> [options]`: runs one domain's seeded simulator
 * and publishes its readings over NATS (JetStream, partitioned subjects), through the HTTP gateway, or over MQTT
 * to nats-server's MQTT listener, with progress on stderr, and writes the injected episodes as ground truth.
 *
 *   --seed N            run seed (default 1)
 *   --entities N        sensors / cars / locomotives / vehicles (default: the domain's own, 127 for the plant)
 *   --rate R            readings per second at most (default: as fast as acknowledgements come back)
 *   --duration S        seconds of event time to simulate, ending now (default: none, runs in real time until
 *                       interrupted); with --realtime, the readings go out when due and S is also the run time
 *   --realtime          event time = wall clock
 *   --no-anomalies      healthy readings only (anomalies are injected by default)
 *   --ground-truth F    write the episodes to F (NDJSON, or CSV when F ends in .csv) at the end
 *   --nats URL          publish to JetStream at URL (default nats://127.0.0.1:4222)
 *   --gateway URL       or POST /v1/readings batches to the gateway at URL, with X-API-Key from PITWALL_API_KEY
 *   --transport T       nats | gateway | mqtt (default: gateway with --gateway, mqtt with --mqtt-url, else nats)
 *   --mqtt-url URL      MQTT listener of nats-server (default mqtt://127.0.0.1:1883): QoS 1 publishes on
 *                       `tlm/<site>/<kind>/<id>` (the server's mapping adds the partition); user and password from
 *                       PITWALL_MQTT_USERNAME / PITWALL_MQTT_PASSWORD when set. MQTT carries no message id: a
 *                       re-run publishes the readings again.
 *   --warmup S          plant: no anomaly before S seconds of event time (default 21600)
 *   --anomaly-share F   plant: fraction of each sensor's time in an episode, 0..0.5 (default 0.02)
 *   --site S --partitions P   subject layout when publishing over NATS (defaults a, 16: the runtime's defaults)
 *   --batch N           readings per gateway request (default 500)
 * Exit codes: 0 done, 2 usage error, 1 failure (printed with its code).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { jetstream } from '@nats-io/jetstream'
import {
  type CommandSpec,
  commandHelp,
  ConfigError,
  connectNats,
  parseCommand,
  partitionOf,
  PitwallError,
  readingMsgId,
  RUNTIME_DEFAULTS,
  RuntimeErrorCodes,
  SITE_PATTERN,
  tlmSubject,
  UnreachableError,
} from '../actors/mod.js'
import type * as MqttModuleNs from 'mqtt'
import { Simulator, type SimItem } from '../simulators/simulator.js'
import { AssetSimulator } from '../simulators/asset.js'
import { PlantSimulator } from '../simulators/plant.js'
import { RoadSimulator } from '../simulators/road.js'
import { writeGroundTruth, type DomainItem, type DomainSimulator, type Episode } from '../simulators/truth.js'

export const SIM_PROFILES = ['race', 'environment', 'plant', 'asset', 'road'] as const
export type SimProfile = (typeof SIM_PROFILES)[number]
export const SIM_TRANSPORTS = ['nats', 'gateway', 'mqtt'] as const
export type SimTransport = (typeof SIM_TRANSPORTS)[number]

export interface SimulateOptions {
  profile: SimProfile
  seed: number
  entities?: number
  ratePerS?: number
  durationS?: number
  realtime: boolean
  anomalies: boolean
  groundTruth?: string
  transport: SimTransport
  nats?: string
  gateway?: string
  apiKey?: string
  mqttUrl?: string
  mqttUsername?: string
  mqttPassword?: string
  /** Plant only: warm-up before the first anomaly (s) and share of time in episodes. */
  warmupS?: number
  anomalyShare?: number
  site: string
  partitions: number
  batch: number
  /** Start of event time (ms); default: now - duration (history ending now), or now in real time. */
  startTs?: number
}

/** Wraps the race/environment simulator of simulators/simulator.ts, turning its per-reading truth into episodes. */
class RuntimeSim implements DomainSimulator {
  readonly startTs: number
  private readonly sim: Simulator
  private readonly eps = new Map<string, Episode>()
  constructor(o: {
    seed: number
    sensors: number
    cars: number
    startTs: number
    anomalies: boolean
    site: string
    partitions: number
  }) {
    this.sim = new Simulator({ ...o, sensorHz: 0.2, carHz: 10 })
    this.startTs = this.sim.startTs
  }
  next(): DomainItem {
    const it: SimItem = this.sim.next()
    const t = it.truth
    if (t)
      this.eps.set(`${it.id}:${t.type}:${t.start}`, {
        kind: it.kind,
        entity: it.id,
        type: t.type,
        start: t.start,
        end: t.end,
      })
    return { kind: it.kind, id: it.id, reading: it.reading, at: it.at }
  }
  episodes(untilTs: number): Episode[] {
    return [...this.eps.values()]
      .filter((e) => e.start <= untilTs)
      .map((e) => ({ ...e, end: Math.min(e.end, untilTs) }))
  }
}

/** The simulator of a profile. */
export function makeSimulator(
  o: Pick<
    SimulateOptions,
    'profile' | 'seed' | 'entities' | 'anomalies' | 'site' | 'partitions' | 'warmupS' | 'anomalyShare'
  > & { startTs: number },
): DomainSimulator {
  const base = { seed: o.seed, startTs: o.startTs, anomalies: o.anomalies }
  switch (o.profile) {
    case 'plant':
      return new PlantSimulator({
        ...base,
        sensors: o.entities ?? 127,
        ...(o.warmupS !== undefined ? { warmupMs: o.warmupS * 1000 } : {}),
        ...(o.anomalyShare !== undefined ? { anomalyShare: o.anomalyShare } : {}),
      })
    case 'asset':
      return new AssetSimulator({ ...base, locomotives: o.entities ?? 40 })
    case 'road':
      return new RoadSimulator({ ...base, vehicles: o.entities ?? 40 })
    case 'race':
      return new RuntimeSim({ ...base, sensors: 0, cars: o.entities ?? 20, site: o.site, partitions: o.partitions })
    default:
      return new RuntimeSim({ ...base, sensors: o.entities ?? 100, cars: 0, site: o.site, partitions: o.partitions })
  }
}

const STRING_FLAGS: ReadonlyArray<readonly [string, string, string]> = [
  ['profile', '<p>', 'race | environment | plant | asset | road (required)'],
  ['seed', '<n>', 'run seed (default 1)'],
  ['entities', '<n>', "sensors / cars / locomotives / vehicles (default: the domain's own)"],
  ['rate', '<r>', 'readings per second at most (default: as fast as acks come back)'],
  ['duration', '<s>', 'seconds of event time, ending now (default: real time until interrupted)'],
  ['ground-truth', '<file>', 'write the episodes to the file (NDJSON, or CSV for .csv)'],
  ['nats', '<url>', 'publish to JetStream at the URL (default nats://127.0.0.1:4222)'],
  ['gateway', '<url>', 'or POST batches to the gateway (X-API-Key from PITWALL_API_KEY)'],
  ['transport', '<t>', 'nats | gateway | mqtt'],
  ['mqtt-url', '<url>', 'MQTT listener of nats-server (default mqtt://127.0.0.1:1883)'],
  ['warmup', '<s>', 'plant: no anomaly before S seconds of event time'],
  ['anomaly-share', '<f>', "plant: fraction of each sensor's time in an episode, 0..0.5"],
  ['site', '<s>', 'subject layout over NATS: the site (default a)'],
  ['partitions', '<p>', 'subject layout over NATS: P (default 16)'],
  ['batch', '<n>', 'readings per gateway request (default 500)'],
  ['start', '<ms>', 'event time of the first reading (default: now - duration)'],
]

/** The flags of `pitwall simulate` (node:util parseArgs through parseCommand). */
export const SIMULATE_SPEC: CommandSpec = {
  usage: 'pitwall simulate --profile <race|environment|plant|asset|road> [flags]',
  summary: 'a seeded simulator with ground truth, published over NATS, the gateway or MQTT',
  flags: [
    ...STRING_FLAGS.map(([name, value, help]) => ({ name, type: 'string' as const, value, help })),
    { name: 'realtime', type: 'boolean', help: 'event time = wall clock' },
    { name: 'no-anomalies', type: 'boolean', help: 'healthy readings only' },
  ],
}

/** Parses the command line; throws ConfigError naming the option. */
export function parseSimulateArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): SimulateOptions {
  const p = parseCommand(argv, SIMULATE_SPEC)
  if (p.help) throw new ConfigError('--help', 'use simulateMain for --help')
  const vals = new Map<string, string>()
  for (const [k, v] of Object.entries(p.values)) if (v !== undefined && v !== false) vals.set(`--${k}`, String(v))
  const num = (k: string, min: number, integer: boolean): number | undefined => {
    const s = vals.get(k)
    if (s === undefined) return undefined
    const n = Number(s)
    if (!Number.isFinite(n) || n < min || (integer && !Number.isSafeInteger(n)))
      throw new ConfigError(k, `must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(s)}`)
    return n
  }
  const profile = vals.get('--profile')
  if (!profile || !(SIM_PROFILES as readonly string[]).includes(profile))
    throw new ConfigError('--profile', `must be one of ${SIM_PROFILES.join(', ')}`)
  if (vals.has('--nats') && vals.has('--gateway'))
    throw new ConfigError('--gateway', 'give --nats or --gateway, not both')
  const tr = vals.get('--transport') ?? (vals.has('--gateway') ? 'gateway' : vals.has('--mqtt-url') ? 'mqtt' : 'nats')
  if (!(SIM_TRANSPORTS as readonly string[]).includes(tr))
    throw new ConfigError('--transport', `must be one of ${SIM_TRANSPORTS.join(', ')}, got ${JSON.stringify(tr)}`)
  const transport = tr as SimTransport
  const given = (['--nats', '--gateway', '--mqtt-url'] as const).filter((k) => vals.has(k))
  const own = { nats: '--nats', gateway: '--gateway', mqtt: '--mqtt-url' }[transport]
  const stray = given.find((k) => k !== own)
  if (stray !== undefined) throw new ConfigError(stray, `does not apply to --transport ${transport}`)
  const o: SimulateOptions = {
    profile: profile as SimProfile,
    transport,
    seed: num('--seed', -Number.MAX_SAFE_INTEGER, true) ?? 1,
    realtime: vals.has('--realtime'),
    anomalies: !vals.has('--no-anomalies'),
    site: vals.get('--site') ?? RUNTIME_DEFAULTS.site,
    partitions: num('--partitions', 1, true) ?? RUNTIME_DEFAULTS.partitions,
    batch: num('--batch', 1, true) ?? 500,
  }
  const entities = num('--entities', 1, true)
  if (entities !== undefined) o.entities = entities
  const rate = num('--rate', Number.MIN_VALUE, false)
  if (rate !== undefined) o.ratePerS = rate
  const duration = num('--duration', 0, false)
  if (duration !== undefined) o.durationS = duration
  const start = num('--start', 0, true)
  if (start !== undefined) o.startTs = start
  const warmup = num('--warmup', 0, false)
  const share = num('--anomaly-share', 0, false)
  if ((warmup !== undefined || share !== undefined) && o.profile !== 'plant') {
    throw new ConfigError(warmup !== undefined ? '--warmup' : '--anomaly-share', 'applies to --profile plant only')
  }
  if (share !== undefined && share > 0.5) throw new ConfigError('--anomaly-share', `must be 0..0.5, got ${share}`)
  if (warmup !== undefined) o.warmupS = warmup
  if (share !== undefined) o.anomalyShare = share
  const gt = vals.get('--ground-truth')
  if (gt !== undefined) o.groundTruth = gt
  if (!SITE_PATTERN.test(o.site)) throw new ConfigError('--site', `must match ${SITE_PATTERN}`)
  if (transport === 'gateway') {
    const gw = vals.get('--gateway')
    if (gw === undefined) throw new ConfigError('--gateway', 'is required with --transport gateway')
    if (!/^https?:\/\//.test(gw))
      throw new ConfigError('--gateway', `must be an http(s) URL, got ${JSON.stringify(gw)}`)
    o.gateway = gw.replace(/\/+$/, '')
    const key = env['PITWALL_API_KEY']
    if (!key)
      throw new ConfigError(
        'PITWALL_API_KEY',
        'must be set to an API key with ingest access when publishing through --gateway',
      )
    o.apiKey = key
  } else if (transport === 'mqtt') {
    const url = vals.get('--mqtt-url') ?? 'mqtt://127.0.0.1:1883'
    if (!/^mqtts?:\/\/[^/]+\/?$/.test(url))
      throw new ConfigError('--mqtt-url', `must be an mqtt(s)://host:port URL, got ${JSON.stringify(url)}`)
    o.mqttUrl = url
    const user = env['PITWALL_MQTT_USERNAME']
    const pass = env['PITWALL_MQTT_PASSWORD']
    if (pass !== undefined && user === undefined)
      throw new ConfigError('PITWALL_MQTT_USERNAME', 'must be set when PITWALL_MQTT_PASSWORD is')
    if (user !== undefined) o.mqttUsername = user
    if (pass !== undefined) o.mqttPassword = pass
  } else {
    o.nats = vals.get('--nats') ?? 'nats://127.0.0.1:4222'
  }
  return o
}

/** A sink the readings go to: `send` queues one, `flush` waits until everything queued is acknowledged. */
interface Sink {
  send(it: DomainItem): Promise<void>
  flush(): Promise<void>
  readonly acked: number
  close(): Promise<void>
}

/**
 * Publishes in flight, at most 1,000: past that the oldest 500 are awaited. The first failure is thrown once
 * everything in flight has settled; `acked` counts the ones that succeeded.
 */
class InFlight {
  private pending: Array<Promise<unknown>> = []
  acked = 0

  async add(p: Promise<unknown>): Promise<void> {
    this.pending.push(p)
    if (this.pending.length >= 1000) await this.drain(500)
  }

  /** Waits for all but the newest `keep`. */
  async drain(keep: number): Promise<void> {
    if (this.pending.length <= keep) return
    const batch = this.pending.slice(0, this.pending.length - keep)
    this.pending = this.pending.slice(this.pending.length - keep)
    const res = await Promise.allSettled(batch)
    const bad = res.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (bad) {
      await Promise.allSettled(this.pending)
      this.pending = []
      throw bad.reason
    }
    this.acked += res.length
  }
}

async function natsSink(o: SimulateOptions): Promise<Sink> {
  const nc = await connectNats(o.nats as string, 'pitwall-simulate')
  const js = jetstream(nc)
  const subjects = new Map<string, string>()
  const inflight = new InFlight()
  return {
    get acked() {
      return inflight.acked
    },
    async send(it) {
      let s = subjects.get(it.id)
      if (s === undefined)
        subjects.set(it.id, (s = tlmSubject(o.site, partitionOf(it.kind, it.id, o.partitions), it.kind, it.id)))
      await inflight.add(
        js.publish(s, JSON.stringify(it.reading), { msgID: readingMsgId(it.kind, it.id, it.reading.rid as string) }),
      )
    },
    flush: async () => await inflight.drain(0),
    close: async () => await nc.close(),
  }
}

type MqttModule = typeof MqttModuleNs

/** The `mqtt` package could not be loaded (a dependency of pitwall; missing from a partial install). */
export class MqttUnavailableError extends PitwallError {
  constructor(cause: unknown) {
    super(RuntimeErrorCodes.CONFIG_INVALID, '--transport mqtt needs the `mqtt` package (npm install mqtt)', { cause })
  }
}

/**
 * Publishes to nats-server's MQTT listener at QoS 1 on `tlm/<site>/<kind>/<id>` (NATS sees `tlm.<site>.<kind>.<id>`
 * and the account mapping adds the partition, gateway/README.md). A publish counts as acknowledged on its PUBACK:
 * the server has taken it (a weaker promise than a JetStream ack, which says the stream stored it); up to 1,000
 * publishes are in flight.
 */
async function mqttSink(o: SimulateOptions): Promise<Sink> {
  let mqtt: MqttModule
  try {
    // Loaded on demand: only this transport needs it.
    mqtt = await import('mqtt')
  } catch (err) {
    throw new MqttUnavailableError(err)
  }
  const client = await mqtt
    .connectAsync(o.mqttUrl as string, {
      clientId: `pitwall-sim-${o.profile}-${process.pid}-${Date.now().toString(36)}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...(o.mqttUsername !== undefined ? { username: o.mqttUsername } : {}),
      ...(o.mqttPassword !== undefined ? { password: o.mqttPassword } : {}),
    })
    .catch((err: unknown) => {
      throw new UnreachableError(
        RuntimeErrorCodes.NATS_UNREACHABLE,
        '--mqtt-url',
        `cannot connect to MQTT at ${o.mqttUrl as string}: ${err instanceof Error ? err.message : String(err)}`,
        err,
      )
    })
  const topics = new Map<string, string>()
  const inflight = new InFlight()
  return {
    get acked() {
      return inflight.acked
    },
    async send(it) {
      let topic = topics.get(it.id)
      if (topic === undefined) topics.set(it.id, (topic = `tlm/${o.site}/${it.kind}/${it.id}`))
      await inflight.add(client.publishAsync(topic, JSON.stringify(it.reading), { qos: 1 }))
    },
    flush: async () => await inflight.drain(0),
    close: async () => {
      await client.endAsync()
    },
  }
}

/** A gateway refusal the simulator cannot fix by waiting (bad key, rejected items). */
export class GatewaySendError extends PitwallError {
  constructor(message: string) {
    super(RuntimeErrorCodes.READING_INVALID, message)
  }
}

function gatewaySink(o: SimulateOptions): Sink {
  let buf: Array<Record<string, unknown>> = []
  let acked = 0
  const post = async (items: Array<Record<string, unknown>>): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${o.gateway as string}/v1/readings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': o.apiKey as string },
        body: JSON.stringify(items),
      })
      const text = await res.text()
      if (res.status === 429 || res.status === 503) {
        // Backpressure: wait as told, then send the same batch again (reading ids make it idempotent).
        const wait = Number(res.headers.get('retry-after') ?? '1')
        if (attempt >= 30) throw new GatewaySendError(`gateway still answers ${res.status} after ${attempt} retries`)
        await sleep(Math.max(0.1, Number.isFinite(wait) ? wait : 1) * 1000)
        continue
      }
      if (!res.ok) throw new GatewaySendError(`gateway answered ${res.status}: ${text.slice(0, 300)}`)
      const body = JSON.parse(text) as {
        accepted: number
        rejected: Array<{ index: number; code: string; message: string }>
      }
      if (body.rejected.length > 0) {
        const r = body.rejected[0]
        throw new GatewaySendError(
          `gateway rejected ${body.rejected.length} readings, first #${r?.index}: ${r?.code} ${r?.message}`,
        )
      }
      acked += body.accepted
      return
    }
  }
  return {
    get acked() {
      return acked
    },
    async send(it) {
      buf.push({ kind: it.kind, id: it.id, ...it.reading })
      if (buf.length >= o.batch) {
        const b = buf
        buf = []
        await post(b)
      }
    },
    async flush() {
      if (buf.length === 0) return
      const b = buf
      buf = []
      await post(b)
    },
    close: async () => undefined,
  }
}

/** Runs a simulation to its end (or `signal`); returns readings acknowledged and the episodes injected. */
export async function runSimulate(
  o: SimulateOptions,
  opts: { signal?: AbortSignal; progress?: (line: string) => void } = {},
): Promise<{ sent: number; episodes: Episode[] }> {
  const now = Date.now()
  const realtime = o.realtime || o.durationS === undefined
  const startTs = o.startTs ?? (realtime ? now : now - (o.durationS as number) * 1000)
  const sim = makeSimulator({ ...o, startTs })
  const endTs = o.durationS === undefined ? Infinity : startTs + o.durationS * 1000
  const sink =
    o.transport === 'gateway' ? gatewaySink(o) : o.transport === 'mqtt' ? await mqttSink(o) : await natsSink(o)
  const wall0 = Date.now()
  let queued = 0,
    lastProg = wall0,
    lastAcked = 0,
    eventTs = startTs
  const progress = (final: boolean): void => {
    const t = Date.now()
    if (!opts.progress || (!final && t - lastProg < 1000)) return
    const rate = Math.round(((sink.acked - lastAcked) * 1000) / Math.max(1, t - lastProg))
    opts.progress(
      `simulate ${o.profile}: ${sink.acked} readings acknowledged (${rate}/s), event time ${new Date(eventTs).toISOString()}, ${sim.episodes(eventTs).length} episodes${final ? ', done' : ''}`,
    )
    lastProg = t
    lastAcked = sink.acked
  }
  try {
    while (!opts.signal?.aborted) {
      const it = sim.next()
      if (it.at >= endTs) break
      eventTs = it.reading.ts
      if (realtime) {
        const wait = it.at - Date.now()
        if (wait > 5) {
          await sink.flush()
          progress(false)
          try {
            await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : undefined)
          } catch (err) {
            if (opts.signal?.aborted) break
            throw err
          }
        }
      } else if (o.ratePerS !== undefined) {
        const wait = wall0 + (queued * 1000) / o.ratePerS - Date.now()
        if (wait > 5) {
          try {
            await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : undefined)
          } catch (err) {
            if (opts.signal?.aborted) break
            throw err
          }
        }
      }
      await sink.send(it)
      queued++
      progress(false)
    }
    await sink.flush()
    progress(true)
  } finally {
    await sink.close()
  }
  const episodes = sim.episodes(Math.min(endTs, eventTs))
  if (o.groundTruth !== undefined) await writeGroundTruth(o.groundTruth, episodes)
  return { sent: sink.acked, episodes }
}

export const SIMULATE_USAGE =
  'usage: pitwall simulate --profile <race|environment|plant|asset|road> [--seed N] [--entities N] [--rate R] [--duration S] [--realtime] [--no-anomalies] [--ground-truth FILE] [--nats URL | --gateway URL | --mqtt-url URL] [--transport nats|gateway|mqtt] [--site S] [--partitions P] [--batch N] [--warmup S] [--anomaly-share F]'

/** `pitwall simulate ...`: returns the exit code. Reads PITWALL_API_KEY for --gateway; Ctrl-C stops cleanly. */
export async function simulateMain(
  argv: string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  let o: SimulateOptions
  try {
    if (parseCommand(argv, SIMULATE_SPEC).help) {
      process.stdout.write(`${commandHelp(SIMULATE_SPEC)}\n`)
      return 0
    }
    o = parseSimulateArgs(argv, env)
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${SIMULATE_USAGE}\n`)
    return 2
  }
  const ac = new AbortController()
  const stop = (): void => ac.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const r = await runSimulate(o, { signal: ac.signal, progress: (l) => process.stderr.write(`${l}\n`) })
    process.stdout.write(
      `${JSON.stringify({ profile: o.profile, sent: r.sent, episodes: r.episodes.length, groundTruth: o.groundTruth ?? null })}\n`,
    )
    return 0
  } catch (err) {
    const code = err instanceof PitwallError ? err.code : 'PW_FAILED'
    process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}
