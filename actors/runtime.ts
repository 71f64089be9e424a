/**
 * The runtime's shared parts: the dependencies and observers the worker gives its partition runners, the profile
 * table (`buildProfiles`) and the worker's counters (`newStats`).
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream'
import type { KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { ActorDefinition, ReferenceLookup } from './actor.js'
import type { RuntimeConfig } from './config.js'
import type { LogFn } from './log.js'

export type AnyActorDefinition = ActorDefinition<any, any>

/** Profiles by name, with their compiled configuration (defaults merged with deployment overrides). */
export interface ProfileEntry {
  def: AnyActorDefinition
  config: unknown
}
export type ProfileTable = ReadonlyMap<string, ProfileEntry>

export interface RuntimeDeps {
  nc: NatsConnection
  /**
   * The connection checkpoints write their snapshots on; `nc` when absent. A checkpoint puts up to a thousand
   * ~1.6 KB snapshots at once: on the connection that also carries outputs, every alert emitted behind such a
   * burst waited until the server had stored all of it (one connection is one ordered byte stream, parsed by one
   * server reader). docs/benchmarks.md "Snapshots on their own connection" has the A/B.
   */
  snapshotNc?: NatsConnection | undefined
  js: JetStreamClient
  jsm: JetStreamManager
  kv: KV
  cfg: RuntimeConfig
  profiles: ProfileTable
  log: LogFn
  /** Observations for histograms (metrics), optional. */
  observe?: RuntimeObserver | undefined
  /** Reference data for actors (actors/references.ts); none when absent. */
  refs?: ReferenceLookup | undefined
}

/**
 * What the runtime reports for metrics (actors/metrics.ts WorkerObserver). Called on the hot path: implementations
 * only bump plain numbers. Everything but `checkpoint` is optional.
 */
export interface RuntimeObserver {
  checkpoint(seconds: number): void
  /** Bytes of actor snapshots one successful checkpoint wrote (0 when nothing was dirty). */
  checkpointBytes?(bytes: number): void
  /** A reading applied by an actor of `profile` (replays skipped are not reported). */
  reading?(profile: string): void
  /**
   * An output emitted by partition `partition` while handling a message: `eventMs` is the event time of the
   * reading being handled (NaN for processing-time ticks), `ingestMs` the message's JetStream timestamp,
   * `takenMs` when the runner took that message from its consumer and `receivedMs` when the client read it off
   * the socket (local clock; absent where no runner did).
   */
  output?(
    partition: number,
    o: { type: string; profile: string; body: unknown },
    eventMs: number,
    ingestMs: number,
    takenMs?: number,
    receivedMs?: number,
  ): void
  /** The runner of `partition` stopped (released, fenced or failed): what it reported is no longer this worker's. */
  partitionClosed?(partition: number): void
}

/** Counters a worker keeps; exported as Prometheus metrics by the observability layer. */
export interface RuntimeStats {
  processed: number
  skippedReplay: number
  /** Readings not applied because the actor had applied their rid already (actors/dedupe.ts). */
  duplicates: number
  /** Readings applied whose rid is older than the actor's dedupe set covers: a re-send of them is not recognised. */
  ridUnverifiable: number
  invalid: number
  outputs: number
  checkpoints: number
  checkpointFailures: number
  snapshotsWritten: number
  snapshotBytes: number
  activations: number
  passivations: number
  leaseAcquired: number
  leaseLost: number
  leaseReleased: number
  ticks: number
  staleSnapshotsIgnored: number
}

export function newStats(): RuntimeStats {
  return {
    processed: 0,
    skippedReplay: 0,
    duplicates: 0,
    ridUnverifiable: 0,
    invalid: 0,
    outputs: 0,
    checkpoints: 0,
    checkpointFailures: 0,
    snapshotsWritten: 0,
    snapshotBytes: 0,
    activations: 0,
    passivations: 0,
    leaseAcquired: 0,
    leaseLost: 0,
    leaseReleased: 0,
    ticks: 0,
    staleSnapshotsIgnored: 0,
  }
}

/** Merges a profile's defaults with deployment overrides (one level deep: nested objects are merged too). */
export function mergeConfig(defaults: unknown, override: Record<string, unknown> | undefined): unknown {
  if (!override) return defaults
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) }
  for (const [k, v] of Object.entries(override)) {
    const d = out[k]
    out[k] =
      d && typeof d === 'object' && !Array.isArray(d) && v && typeof v === 'object' && !Array.isArray(v)
        ? { ...(d as Record<string, unknown>), ...(v as Record<string, unknown>) }
        : v
  }
  return out
}

/** Builds the profile table from definitions and the runtime config's overrides. */
export function buildProfiles(defs: readonly AnyActorDefinition[], cfg: RuntimeConfig): ProfileTable {
  const m = new Map<string, ProfileEntry>()
  for (const def of defs) m.set(def.profile, { def, config: mergeConfig(def.defaults, cfg.profileConfig[def.profile]) })
  return m
}
