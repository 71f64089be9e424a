/** Wire types shared by producers, the runtime, the projector and the gateway. */
import type { AlertState, Severity } from './alerts.js'
import type { EntityKind } from './subjects.js'

export type FieldValue = number | boolean | string

/** One reading as published on `tlm.<site>.<p>.<kind>.<id>` (JSON). Kind and id come from the subject. */
export interface Reading {
  /** Event time: the device timestamp, ms since the Unix epoch. */
  ts: number
  /** Numeric, boolean or string fields (e.g. `temperature`, `brake_temp_fl`, `status`). */
  fields: Record<string, FieldValue>
  /** Profile of the entity (e.g. `environment`, `race`); defaults per kind from config. */
  profile?: string
  /** Optional location. */
  loc?: { lat: number; lon: number }
  /** Optional reading id (idempotency; becomes the JetStream message id at the gateway). */
  rid?: string
}

export interface EntityRef {
  kind: EntityKind
  id: string
}

/** The output types every projector and client understands. */
export const OUTPUT_TYPES = ['window', 'alert', 'score', 'recommendation', 'lap', 'late', 'fence', 'position'] as const
export type OutputType = (typeof OUTPUT_TYPES)[number]

/** Window aggregate of one field. Variance is the population variance. */
export interface FieldAggregate {
  count: number
  sum: number
  min: number
  max: number
  mean: number
  variance: number
  stddev: number
  first: number
  last: number
}

export interface WindowBody {
  /** Window definition name, e.g. `tumbling_1m` or `sliding_5m_1m`. */
  window: string
  start: number
  end: number
  /** Aggregates per field. */
  fields: Record<string, FieldAggregate>
  /** Extra counters of the window (e.g. `alerts`, `failures`). */
  counts: Record<string, number>
  /** True when the window was closed by the idle timeout rather than the watermark. */
  idleClosed: boolean
}

export type { AlertState, Severity }

export interface AlertBody {
  /** Deterministic alert id: `<kind>:<id>:<type>:<event time it opened>` (actors/alerts.ts alertId). */
  alertId: string
  type: string
  severity: Severity
  state: AlertState
  /** Event time the condition started, and (on close) ended. */
  start: number
  end?: number
  /** The value that fired or updated it, the threshold, and a human explanation. */
  value: number
  threshold: number
  explanation: string
  /** Extra detail: contributing features and their weights, peak value, etc. */
  details?: Record<string, unknown>
}

export interface ScoreBody {
  name: string
  value: number
  factors: Record<string, number>
}

export interface RecommendationBody {
  action: string
  score: number
  factors: Record<string, number>
  reason: string
}

export interface LapBody {
  lap: number
  start: number
  end: number
  lapTimeMs: number
  minSpeed: number
  avgSpeed: number
  maxSpeed: number
  maxBrakeTemp: number
  maxTyreTemp: number
  samples: number
}

export interface LateBody {
  /** Event time of the late reading, the watermark it missed, and its stream sequence. */
  readingTs: number
  watermark: number
  readingSeq: number
  fields: Record<string, FieldValue>
}

/**
 * A position of a moving entity (road profile): where the reading `readingSeq` (its stream sequence in TLM) put
 * it. Emitted at a bounded rate, plus the fixes that start a trip, begin a stop and end a trip; projected into
 * `raw_readings` keyed by (kind, entity, readingSeq), so a replay or redelivery writes the same row.
 */
export interface PositionBody {
  lat: number
  lon: number
  speed: number | null
  heading: number | null
  /** Why it was emitted: `sample` (rate-bounded), `trip_start`, `stop` (a possible trip end) or `trip_end`. */
  reason: 'sample' | 'trip_start' | 'stop' | 'trip_end'
  readingSeq: number
}

export interface FenceBody {
  partition: number
  token: number
  owner: string
  /**
   * The partition's input chain when it has moved between sites (actors/sitemap.ts Segment). Its sealed
   * segments tell projectors which positions of which site are off the chain: outputs there are retracted.
   */
  segments?: Array<{ epoch: number; site: string; from: number; to?: number }>
}

export interface OutputBodies {
  window: WindowBody
  alert: AlertBody
  score: ScoreBody
  recommendation: RecommendationBody
  lap: LapBody
  late: LateBody
  fence: FenceBody
  position: PositionBody
}

/**
 * One output on `out.<site>.<p>.<kind>.<id>`. `id` is deterministic (a function of the input log only) and is
 * also the JetStream message id; `token` is the fencing token of the partition owner that wrote it.
 */
export interface Output<T extends OutputType = OutputType> {
  id: string
  type: T
  kind: string
  entity: string
  profile: string
  /** Event time the output refers to (window end, alert time, lap end, ...). */
  ts: number
  /** Stream sequence (in TLM) of the input that produced it. */
  seq: number
  site: string
  partition: number
  token: number
  body: OutputBodies[T]
}
