/**
 * The typed actor definition API. A profile is one file that calls `defineActor` and is listed in
 * kinds/registry.ts. Handlers are synchronous and deterministic: the same input log gives the same state and
 * the same outputs (ids included), which is what makes replay after a crash exactly-once.
 */
import type { EntityKind } from './subjects.js'
import type { EntityRef, OutputBodies, OutputType, Reading } from './types.js'

/** A timer as seen by a handler when it fires. */
export interface FiredTimer {
  name: string
  /** `event`: fires when the actor's watermark passes `at`; `processing`: when partition processing time does. */
  domain: 'event' | 'processing'
  /** The time it was due. */
  at: number
  /** The time it fired (watermark or processing time). */
  now: number
  /** How many periods of a periodic timer it stands for (coalesced catch-up after downtime), 1 otherwise. */
  missed: number
}

export interface TimerOptions {
  /** Re-arm every `periodMs` after firing. */
  periodMs?: number
  /** After downtime: `coalesce` (default) fires once for all missed periods; `replay` fires once per period. */
  catchUp?: 'coalesce' | 'replay'
}

/** What a handler may do besides changing its own state. */
export interface ActorContext {
  readonly entity: EntityRef
  readonly profile: string
  /** Stream sequence of the message being handled (reading or tick). */
  readonly seq: number
  /** Processing time: the JetStream timestamp of the message being handled, ms (deterministic on replay). */
  readonly procTime: number
  /** Max event time seen minus allowed lateness; -Infinity before the first reading. */
  readonly watermark: number
  /** Max event time seen; -Infinity before the first reading. */
  readonly maxEventTime: number
  /**
   * Emits an output. `key` must be deterministic and unique per output of this entity and type
   * (e.g. `tumbling_1m:1700000000000`, or `<alertId>:<state>:<seq>`); the output id is
   * `<kind>:<id>:<type>:<key>`.
   */
  emit<T extends Exclude<OutputType, 'fence'>>(type: T, key: string, ts: number, body: OutputBodies[T]): void
  setTimer(name: string, domain: 'event' | 'processing', at: number, opts?: TimerOptions): void
  cancelTimer(name: string): void
  /**
   * Versioned reference data (e.g. the geofence set) in effect at this message's processing time, or undefined
   * when there is none. The runtime picks the newest version whose `effectiveAt` <= `procTime`, so a replay of
   * the same message sees the same version (actors/references.ts states the bound this relies on).
   */
  reference(name: string): ReferenceVersion | undefined
}

/** One version of a named piece of reference data (actors/references.ts). */
export interface ReferenceVersion {
  name: string
  /** The KV revision that carried it: unique and increasing per name. */
  revision: number
  /** Processing time (ms, JetStream clock) from which it applies. */
  effectiveAt: number
  data: unknown
}

/** Looks up the reference data in effect at a processing time. */
export type ReferenceLookup = (name: string, procTime: number) => ReferenceVersion | undefined

/** A snapshot codec: the state as JSON-able data with a version, and a decoder that accepts older versions. */
export interface SnapshotCodec<S> {
  version: number
  encode(state: S): unknown
  /** Decodes `data` written with codec version `version` (<= current); throws on versions it cannot read. */
  decode(data: unknown, version: number): S
}

export interface ActorDefinition<S, C = unknown> {
  kind: EntityKind
  profile: string
  /** Allowed lateness of event time for this profile (watermark = max event time - allowed lateness). */
  allowedLatenessMs(config: C): number
  /** Profile configuration (thresholds, weights...) with defaults; overridden by deployment config. */
  defaults: C
  init(entity: EntityRef, config: C): S
  codec: SnapshotCodec<S>
  /** Called for each reading not yet applied (the runtime skips replays at or below the last applied seq). */
  onReading(state: S, reading: Reading, ctx: ActorContext, config: C): void
  onTimer?(state: S, timer: FiredTimer, ctx: ActorContext, config: C): void
  /** Live state for queries: a JSON-able view of the state. */
  query?(state: S, ctx: { entity: EntityRef; watermark: number; lastSeq: number }, config: C): unknown
}

/** Identity helper that fixes the state and config types of a profile definition. */
export function defineActor<S, C>(def: ActorDefinition<S, C>): ActorDefinition<S, C> {
  return def
}

/** A plain JSON codec for states that are already JSON-able. */
export function jsonCodec<S>(version = 1): SnapshotCodec<S> {
  return {
    version,
    encode: (s) => s,
    decode: (d, v) => {
      if (v !== version) throw new Error(`snapshot version ${v} is not ${version}`)
      return d as S
    },
  }
}
