/**
 * Runtime configuration: options (from code or environment) -> validated, frozen config. Nothing else in the
 * runtime reads process.env. Every setting is listed in docs/configuration.md with its variable and default.
 */
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { DedupeLimits } from './dedupe.js'
import { ConfigError } from './errors.js'
import { ENTITY_KINDS, type EntityKind, ID_PATTERN, SITE_PATTERN } from './subjects.js'

export interface RuntimeOptions {
  /** Name of the deployment these processes belong to; recorded with its streams, buckets and database (actors/deployment.ts). */
  deployment?: string
  site?: string
  natsUrl?: string
  partitions?: number
  workerId?: string
  streams?: { tlm?: string; out?: string; stateBucket?: string; refBucket?: string }
  /** Delay between a reference-data revision's KV timestamp and the processing time it applies from. */
  refActivationMs?: number
  replicas?: number
  /** Lease time to live; a crashed owner's partitions move after this long. */
  leaseTtlMs?: number
  /** Heartbeat and placement period. */
  heartbeatMs?: number
  checkpointIntervalMs?: number
  /** Processing-time tick period per partition (drives processing-time timers). */
  tickIntervalMs?: number
  /** Upper bound of active (in-memory) actors per worker; LRU passivation above it. */
  maxActiveActors?: number
  /** Passivate an actor after this much processing time without messages. */
  idlePassivateMs?: number
  /** Upper bound of unacknowledged messages per partition consumer (intake backpressure). */
  maxInFlight?: number
  /** Upper bound of output publishes awaiting their JetStream ack per partition. */
  maxPendingOutputs?: number
  /**
   * `own`: checkpoint snapshots go over a second NATS connection of the worker, so outputs never wait behind a
   * checkpoint's burst of snapshot puts; `shared` (default): one connection for everything.
   */
  snapshotConnection?: 'own' | 'shared'
  /** Default profile per entity kind, when a reading names none. */
  defaultProfiles?: Partial<Record<EntityKind, string>>
  /** Per-profile configuration overrides (merged over each profile's defaults). */
  profileConfig?: Record<string, Record<string, unknown>>
  /** Retention of TLM in seconds (0 = unlimited). */
  tlmMaxAgeS?: number
  /** Port of the `/metrics` endpoint (0 = any free port); unset = no endpoint. */
  metricsPort?: number
  /** Interface the metrics endpoint listens on. */
  metricsHost?: string
  /** This site's JetStream domain (default: the site name). */
  domain?: string
  /** The peer site of a two-site deployment (docs/sites.md); unset = one site. */
  peer?: { site: string; domain?: string }
  /** Partitions whose home is this site (default: all when there is no peer; required with a peer). */
  homePartitions?: number[]
  /** Reading-id dedupe per actor (actors/dedupe.ts): event-time horizon and most ids kept. */
  dedupe?: { horizonMs?: number; maxIds?: number }
}

export interface RuntimeConfig {
  readonly deployment: string
  readonly site: string
  readonly natsUrl: string
  readonly partitions: number
  readonly workerId: string
  readonly streams: {
    readonly tlm: string
    readonly out: string
    readonly stateBucket: string
    readonly refBucket: string
  }
  readonly refActivationMs: number
  readonly replicas: number
  readonly leaseTtlMs: number
  readonly heartbeatMs: number
  readonly checkpointIntervalMs: number
  readonly tickIntervalMs: number
  readonly maxActiveActors: number
  readonly idlePassivateMs: number
  readonly maxInFlight: number
  readonly maxPendingOutputs: number
  readonly snapshotConnection: 'own' | 'shared'
  readonly defaultProfiles: Readonly<Record<EntityKind, string>>
  readonly profileConfig: Readonly<Record<string, Record<string, unknown>>>
  readonly tlmMaxAgeS: number
  readonly metricsPort: number | null
  readonly metricsHost: string
  readonly domain: string
  readonly peer: { readonly site: string; readonly domain: string } | null
  readonly homePartitions: readonly number[]
  readonly dedupe: DedupeLimits
}

export const DEFAULTS = {
  deployment: 'default',
  site: 'a',
  natsUrl: 'nats://127.0.0.1:4222',
  partitions: 16,
  streams: { tlm: 'TLM', out: 'OUT', stateBucket: 'pw_state', refBucket: 'pw_refs' },
  refActivationMs: 2_000,
  replicas: 1,
  leaseTtlMs: 6_000,
  heartbeatMs: 1_000,
  checkpointIntervalMs: 1_000,
  tickIntervalMs: 1_000,
  maxActiveActors: 200_000,
  idlePassivateMs: 600_000,
  maxInFlight: 20_000,
  maxPendingOutputs: 10_000,
  // `own` halved the OUT p99 in an A/B (docs/benchmarks.md "Snapshots on their own connection"). The default
  // since the split, failover and crash suites passed 20 runs with it under load (split-loss 9 of 9).
  snapshotConnection: 'own' as 'own' | 'shared',
  defaultProfiles: { sensor: 'environment', vehicle: 'race' },
  tlmMaxAgeS: 7 * 24 * 3600,
  dedupe: { horizonMs: 600_000, maxIds: 256 },
} as const

/** Environment variables, one per setting (documented in docs/configuration.md). */
export const ENV = {
  deployment: 'PITWALL_DEPLOYMENT',
  site: 'PITWALL_SITE',
  natsUrl: 'PITWALL_NATS_URL',
  partitions: 'PITWALL_PARTITIONS',
  workerId: 'PITWALL_WORKER_ID',
  replicas: 'PITWALL_REPLICAS',
  leaseTtlMs: 'PITWALL_LEASE_TTL_MS',
  heartbeatMs: 'PITWALL_HEARTBEAT_MS',
  checkpointIntervalMs: 'PITWALL_CHECKPOINT_INTERVAL_MS',
  tickIntervalMs: 'PITWALL_TICK_INTERVAL_MS',
  maxActiveActors: 'PITWALL_MAX_ACTIVE_ACTORS',
  idlePassivateMs: 'PITWALL_IDLE_PASSIVATE_MS',
  maxInFlight: 'PITWALL_MAX_IN_FLIGHT',
  maxPendingOutputs: 'PITWALL_MAX_PENDING_OUTPUTS',
  snapshotConnection: 'PITWALL_SNAPSHOT_CONNECTION',
  tlmMaxAgeS: 'PITWALL_TLM_MAX_AGE_S',
  metricsPort: 'PITWALL_METRICS_PORT',
  metricsHost: 'PITWALL_METRICS_HOST',
  domain: 'PITWALL_DOMAIN',
  peerSite: 'PITWALL_PEER_SITE',
  peerDomain: 'PITWALL_PEER_DOMAIN',
  homePartitions: 'PITWALL_HOME_PARTITIONS',
  profileConfig: 'PITWALL_PROFILE_CONFIG',
  tlmStream: 'PITWALL_TLM_STREAM',
  outStream: 'PITWALL_OUT_STREAM',
  stateBucket: 'PITWALL_STATE_BUCKET',
  refBucket: 'PITWALL_REF_BUCKET',
  refActivationMs: 'PITWALL_REF_ACTIVATION_MS',
  dedupeHorizonMs: 'PITWALL_DEDUPE_HORIZON_MS',
  dedupeMaxIds: 'PITWALL_DEDUPE_MAX_IDS',
} as const

/**
 * A deployment name: it ends up in stream descriptions, a KV value, consumer names and a database row, so it
 * is kept to characters all of them take (no dots, no underscores: `_` separates the parts of a consumer name).
 */
export const DEPLOYMENT_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/

function intFrom(env: Record<string, string | undefined>, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isInteger(n)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(raw)}`)
  return n
}

/** Reads runtime options from environment variables (the only place that does). */
export function optionsFromEnv(env: Record<string, string | undefined>): RuntimeOptions {
  const o: RuntimeOptions = {}
  const str = (k: string): string | undefined => (env[k] === undefined || env[k] === '' ? undefined : env[k])
  const set = <K extends keyof RuntimeOptions>(k: K, v: RuntimeOptions[K] | undefined): void => {
    if (v !== undefined) o[k] = v
  }
  set('deployment', str(ENV.deployment))
  set('site', str(ENV.site))
  set('natsUrl', str(ENV.natsUrl))
  set('workerId', str(ENV.workerId))
  set('metricsHost', str(ENV.metricsHost))
  set('domain', str(ENV.domain))
  set('snapshotConnection', str(ENV.snapshotConnection) as RuntimeOptions['snapshotConnection'])
  const peerSite = str(ENV.peerSite)
  if (peerSite) o.peer = { site: peerSite, ...(str(ENV.peerDomain) ? { domain: str(ENV.peerDomain) as string } : {}) }
  const homes = str(ENV.homePartitions)
  if (homes) o.homePartitions = parseRanges(ENV.homePartitions, homes)
  for (const k of [
    'partitions',
    'replicas',
    'leaseTtlMs',
    'heartbeatMs',
    'checkpointIntervalMs',
    'tickIntervalMs',
    'maxActiveActors',
    'idlePassivateMs',
    'maxInFlight',
    'maxPendingOutputs',
    'tlmMaxAgeS',
    'metricsPort',
    'refActivationMs',
  ] as const) {
    set(k, intFrom(env, ENV[k]))
  }
  const horizonMs = intFrom(env, ENV.dedupeHorizonMs)
  const maxIds = intFrom(env, ENV.dedupeMaxIds)
  if (horizonMs !== undefined || maxIds !== undefined) {
    o.dedupe = { ...(horizonMs !== undefined ? { horizonMs } : {}), ...(maxIds !== undefined ? { maxIds } : {}) }
  }
  const streams: NonNullable<RuntimeOptions['streams']> = {}
  if (str(ENV.tlmStream)) streams.tlm = str(ENV.tlmStream) as string
  if (str(ENV.outStream)) streams.out = str(ENV.outStream) as string
  if (str(ENV.stateBucket)) streams.stateBucket = str(ENV.stateBucket) as string
  if (str(ENV.refBucket)) streams.refBucket = str(ENV.refBucket) as string
  if (Object.keys(streams).length) o.streams = streams
  const pc = str(ENV.profileConfig)
  if (pc) {
    try {
      o.profileConfig = JSON.parse(pc) as Record<string, Record<string, unknown>>
    } catch (err) {
      throw new ConfigError(ENV.profileConfig, 'is not valid JSON', err)
    }
  }
  return o
}

/** "0-7,9,12-15" -> [0..7, 9, 12..15]. */
export function parseRanges(setting: string, text: string): number[] {
  const out: number[] = []
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part)
    if (!m)
      throw new ConfigError(setting, `is not a list of partitions or ranges (e.g. 0-7,9): ${JSON.stringify(text)}`)
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    if (b < a) throw new ConfigError(setting, `range ${a}-${b} is backwards`)
    for (let i = a; i <= b; i++) out.push(i)
  }
  return out
}

function positiveInt(setting: string, v: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(setting, `must be an integer in [${min}, ${max}], got ${v}`)
  }
  return v
}

/** Validates options, applies defaults, rejects contradictions; the result is frozen. */
export function compileConfig(o: RuntimeOptions): RuntimeConfig {
  const deployment = o.deployment ?? DEFAULTS.deployment
  if (!DEPLOYMENT_PATTERN.test(deployment)) {
    throw new ConfigError(
      `deployment (${ENV.deployment})`,
      `must match ${DEPLOYMENT_PATTERN} (lower-case letters, digits, inner dashes), got ${JSON.stringify(deployment)}`,
    )
  }
  const site = o.site ?? DEFAULTS.site
  if (!SITE_PATTERN.test(site)) throw new ConfigError('site', `must match ${SITE_PATTERN}, got ${JSON.stringify(site)}`)
  const natsUrl = o.natsUrl ?? DEFAULTS.natsUrl
  for (const u of natsUrl.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s/]+$/.test(u.trim()) && !/^[^\s/:]+:\d+$/.test(u.trim())) {
      throw new ConfigError('natsUrl', `is not a NATS URL: ${JSON.stringify(u)}`)
    }
  }
  const workerId =
    o.workerId ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}-${randomBytes(3).toString('hex')}`
  if (!ID_PATTERN.test(workerId)) throw new ConfigError('workerId', `must match ${ID_PATTERN}`)
  const streams = { ...DEFAULTS.streams, ...(o.streams ?? {}) }
  for (const [k, v] of Object.entries(streams)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(v)) throw new ConfigError(`streams.${k}`, `invalid name ${JSON.stringify(v)}`)
  }
  const leaseTtlMs = positiveInt('leaseTtlMs', o.leaseTtlMs ?? DEFAULTS.leaseTtlMs, 500)
  const heartbeatMs = positiveInt('heartbeatMs', o.heartbeatMs ?? DEFAULTS.heartbeatMs, 50)
  if (heartbeatMs * 2 > leaseTtlMs) {
    throw new ConfigError(
      'heartbeatMs',
      `must be at most half of leaseTtlMs (${leaseTtlMs}) so a live owner renews in time`,
    )
  }
  const checkpointIntervalMs = positiveInt(
    'checkpointIntervalMs',
    o.checkpointIntervalMs ?? DEFAULTS.checkpointIntervalMs,
    10,
  )
  const defaultProfiles = { ...DEFAULTS.defaultProfiles, ...(o.defaultProfiles ?? {}) }
  for (const k of Object.keys(defaultProfiles)) {
    if (!(ENTITY_KINDS as readonly string[]).includes(k))
      throw new ConfigError(`defaultProfiles.${k}`, 'unknown entity kind')
  }
  const partitions = positiveInt('partitions', o.partitions ?? DEFAULTS.partitions, 1, 4096)
  const snapshotConnection = o.snapshotConnection ?? DEFAULTS.snapshotConnection
  if (snapshotConnection !== 'own' && snapshotConnection !== 'shared')
    throw new ConfigError('snapshotConnection', `must be own or shared, got ${JSON.stringify(snapshotConnection)}`)
  let peer: RuntimeConfig['peer'] = null
  if (o.peer) {
    if (!SITE_PATTERN.test(o.peer.site))
      throw new ConfigError('peer.site', `must match ${SITE_PATTERN}, got ${JSON.stringify(o.peer.site)}`)
    if (o.peer.site === site)
      throw new ConfigError('peer.site', `is this site (${site}); the peer must be the other site`)
    peer = { site: o.peer.site, domain: o.peer.domain ?? o.peer.site }
  }
  const domain = o.domain ?? site
  for (const [k, d] of [
    ['domain', domain],
    ['peer.domain', peer?.domain],
  ] as const) {
    if (d !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(d))
      throw new ConfigError(k, `invalid JetStream domain ${JSON.stringify(d)}`)
  }
  if (peer && peer.domain === domain)
    throw new ConfigError('peer.domain', `is this site's domain (${domain}); each site has its own`)
  if (peer && o.homePartitions === undefined)
    throw new ConfigError('homePartitions', 'is required with a peer site (PITWALL_HOME_PARTITIONS, e.g. 0-7)')
  const homePartitions = [...new Set(o.homePartitions ?? Array.from({ length: partitions }, (_, p) => p))].sort(
    (a, b) => a - b,
  )
  for (const p of homePartitions) {
    if (!Number.isInteger(p) || p < 0 || p >= partitions)
      throw new ConfigError('homePartitions', `partition ${p} is outside 0..${partitions - 1}`)
  }
  const cfg: RuntimeConfig = {
    deployment,
    site,
    natsUrl,
    partitions,
    workerId,
    streams,
    replicas: positiveInt('replicas', o.replicas ?? DEFAULTS.replicas, 1, 5),
    leaseTtlMs,
    heartbeatMs,
    checkpointIntervalMs,
    refActivationMs: positiveInt('refActivationMs', o.refActivationMs ?? DEFAULTS.refActivationMs, 0, 600_000),
    tickIntervalMs: positiveInt('tickIntervalMs', o.tickIntervalMs ?? DEFAULTS.tickIntervalMs, 10),
    maxActiveActors: positiveInt('maxActiveActors', o.maxActiveActors ?? DEFAULTS.maxActiveActors),
    idlePassivateMs: positiveInt('idlePassivateMs', o.idlePassivateMs ?? DEFAULTS.idlePassivateMs),
    maxInFlight: positiveInt('maxInFlight', o.maxInFlight ?? DEFAULTS.maxInFlight, 10),
    maxPendingOutputs: positiveInt('maxPendingOutputs', o.maxPendingOutputs ?? DEFAULTS.maxPendingOutputs, 1),
    snapshotConnection,
    defaultProfiles,
    profileConfig: o.profileConfig ?? {},
    tlmMaxAgeS: positiveInt('tlmMaxAgeS', o.tlmMaxAgeS ?? DEFAULTS.tlmMaxAgeS, 0),
    metricsPort: o.metricsPort === undefined ? null : positiveInt('metricsPort', o.metricsPort, 0, 65535),
    metricsHost: o.metricsHost ?? '127.0.0.1',
    domain,
    peer,
    homePartitions,
    dedupe: {
      horizonMs: positiveInt(
        'dedupe.horizonMs',
        o.dedupe?.horizonMs ?? DEFAULTS.dedupe.horizonMs,
        0,
        30 * 24 * 3600_000,
      ),
      // At least 4: pruning keeps 3/4 of it.
      maxIds: positiveInt('dedupe.maxIds', o.dedupe?.maxIds ?? DEFAULTS.dedupe.maxIds, 4, 1_000_000),
    },
  }
  return deepFreeze(cfg)
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
