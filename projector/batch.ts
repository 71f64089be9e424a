/**
 * Turns a run of OUT messages (in stream order) into the rows one transaction writes: decodes each message,
 * skips redeliveries, applies the fencing rule, and folds outputs that hit the same primary key into one row
 * (PostgreSQL refuses an ON CONFLICT statement that touches a row twice). Pure: no I/O, so the rules are
 * testable without servers, and the SQL in writer.ts applies the same merge rules across batches.
 *
 * Merge rules (the same in memory and in SQL, so any split of the stream into batches gives the same tables):
 * - keyed projections (windows, laps, latest scores): the output with the highest (seq, token) wins; on a
 *   tie the later one in stream order.
 * - alerts: the event with the highest (seq, rank, token) wins, rank open < update < close, so an older
 *   event never reopens a closed alert; `peak_value` folds over every event (furthest from the threshold).
 * - history tables keyed by output id: the first copy stays unless a higher token rewrites it.
 * - positions go to raw_readings keyed by (kind, entity, reading seq): the first copy stays (a replay of the same
 *   reading gives the same fix, whoever owns the partition).
 */
import { ALERT_RANK, epochOf, seqOf, stateAfter } from '../actors/mod.js'
import type {
  AlertBody,
  FenceBody,
  LapBody,
  LateBody,
  Output,
  PositionBody,
  RecommendationBody,
  ScoreBody,
  WindowBody,
} from '../actors/mod.js'
import { decodeOutput } from './decode.js'

/** What the projector needs of a JetStream message. */
export interface StreamMessage {
  /** Stream sequence in OUT. */
  seq: number
  subject: string
  data: Uint8Array
}

interface Provenance {
  output_id: string
  seq: number
  site: string
  partition: number
  token: number
}

export interface WindowRow extends Provenance {
  kind: string
  entity: string
  window_name: string
  start_ms: number
  end_ms: number
  profile: string
  fields: WindowBody['fields']
  counts: WindowBody['counts']
  idle_closed: boolean
}
export interface AlertRow {
  alert_id: string
  kind: string
  entity: string
  profile: string
  type: string
  severity: string
  state: 'open' | 'closed'
  last_event: AlertBody['state']
  start_ms: number
  end_ms: number | null
  event_ms: number
  value: number
  threshold: number
  peak_value: number
  explanation: string
  details: Record<string, unknown> | null
  last_output_id: string
  last_seq: number
  site: string
  partition: number
  token: number
}
export interface AlertEventRow extends Provenance {
  alert_id: string
  kind: string
  entity: string
  profile: string
  type: string
  severity: string
  event: AlertBody['state']
  event_ms: number
  start_ms: number
  end_ms: number | null
  value: number
  threshold: number
  explanation: string
  details: Record<string, unknown> | null
}
export interface ScoreRow extends Provenance {
  kind: string
  entity: string
  name: string
  profile: string
  scored_ms: number
  value: number
  factors: Record<string, number>
}
export interface RecommendationRow extends Provenance {
  kind: string
  entity: string
  profile: string
  recommended_ms: number
  action: string
  score: number
  factors: Record<string, number>
  reason: string
}
export interface LapRow extends Provenance {
  kind: string
  entity: string
  lap: number
  profile: string
  start_ms: number
  end_ms: number
  lap_time_ms: number
  min_speed: number
  avg_speed: number
  max_speed: number
  max_brake_temp: number
  max_tyre_temp: number
  samples: number
}
export interface LateRow extends Provenance {
  kind: string
  entity: string
  profile: string
  reading_ms: number
  watermark_ms: number
  reading_seq: number
  fields: LateBody['fields']
}
/** A position: a raw_readings row (seq = the reading's TLM sequence) with lat/lon and a few fields. */
export interface PositionRow {
  kind: string
  entity: string
  profile: string
  seq: number
  ts_ms: number
  lat: number
  lon: number
  fields: Record<string, number | string>
}
export interface FenceRow {
  site: string
  partition: number
  token: number
  owner: string
  stream_seq: number
}
/**
 * A sealed segment learnt from a fence: outputs of `site` in `partition` at positions of `epoch` beyond seq
 * `to_seq` are off the chain (a split's loser, or readings never mirrored before a failover) and are retracted.
 */
export interface SealRow {
  partition: number
  site: string
  epoch: number
  to_seq: number
  by_site: string
  by_token: number
  stream_seq: number
}
/** Seals known: sealKey -> to_seq. */
export type Seals = ReadonlyMap<string, number>
export function sealKey(partition: number, site: string, epoch: number): string {
  return `${partition}/${site}/${epoch}`
}
export interface RejectRow {
  stream_seq: number
  subject: string
  reason: string
  payload: string
}
export interface StaleOutput {
  streamSeq: number
  id: string
  site: string
  partition: number
  token: number
  fence: number
}

export interface BatchRows {
  windows: WindowRow[]
  alerts: AlertRow[]
  alertEvents: AlertEventRow[]
  scoresLatest: ScoreRow[]
  scoreHistory: ScoreRow[]
  recommendations: RecommendationRow[]
  laps: LapRow[]
  late: LateRow[]
  positions: PositionRow[]
}

export interface BatchPlan {
  /** Stream sequence the cursor moves to once this plan is committed (the cursor itself if nothing is new). */
  lastSeq: number
  rows: BatchRows
  /** Fences raised by this batch (one per (site, partition), the highest token). */
  fences: FenceRow[]
  /** Seals first learnt in this batch. */
  seals: SealRow[]
  rejects: RejectRow[]
  stale: StaleOutput[]
  counts: { applied: number; stale: number; malformed: number; duplicates: number }
}

/** Key of the fence map: `<site>/<partition>`. */
export function fenceKey(site: string, partition: number): string {
  return `${site}/${partition}`
}

/**
 * Plans one batch. `cursor` is the last stream sequence already committed (messages at or below it are
 * redeliveries); `fences` holds the highest token committed per fenceKey. Neither is modified.
 */
export function planBatch(
  msgs: readonly StreamMessage[],
  cursor: number,
  fences: ReadonlyMap<string, number>,
  seals: Seals = new Map(),
): BatchPlan {
  const b = new Builder(cursor, fences, seals)
  for (const m of msgs) b.add(m)
  return b.plan()
}

/** A plan that only sets `msg` aside with `reason` (a message the database refused) and moves past it. */
export function rejectPlan(msg: StreamMessage, reason: string): BatchPlan {
  const plan = planBatch([], msg.seq - 1, new Map())
  plan.rejects.push(rejectRow(msg, reason))
  plan.counts.malformed = 1
  plan.lastSeq = msg.seq
  return plan
}

/** Lexicographic a >= b over equal-length tuples. */
function atLeast(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return (a[i] as number) > (b[i] as number)
  }
  return true
}

/** The more extreme of two peak values: further from the threshold, the larger on a tie. */
export function foldPeak(a: number, b: number, threshold: number): number {
  const da = Math.abs(a - threshold)
  const db = Math.abs(b - threshold)
  return db > da || (db === da && b > a) ? b : a
}

function rejectRow(msg: StreamMessage, reason: string): RejectRow {
  // U+0000 cannot be stored in text; it is the one character replaced in the kept payload.
  const payload = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8')
  return { stream_seq: msg.seq, subject: msg.subject, reason, payload: payload.replaceAll('\u0000', '\uFFFD') }
}

class Builder {
  private last: number
  private readonly raised = new Map<string, FenceRow>()
  private readonly sealed = new Map<string, SealRow>()
  private readonly windows = new Map<string, WindowRow>()
  private readonly alerts = new Map<string, AlertRow & { rank: number }>()
  private readonly alertEvents = new Map<string, AlertEventRow>()
  private readonly scoresLatest = new Map<string, ScoreRow>()
  private readonly scoreHistory = new Map<string, ScoreRow>()
  private readonly recommendations = new Map<string, RecommendationRow>()
  private readonly laps = new Map<string, LapRow>()
  private readonly late = new Map<string, LateRow>()
  private readonly positions = new Map<string, PositionRow>()
  private readonly rejects: RejectRow[] = []
  private readonly stale: StaleOutput[] = []
  private readonly counts = { applied: 0, stale: 0, malformed: 0, duplicates: 0 }

  constructor(
    cursor: number,
    private readonly fences: ReadonlyMap<string, number>,
    private readonly seals: Seals,
  ) {
    this.last = cursor
  }

  add(msg: StreamMessage): void {
    // Stream order is delivery order, so anything at or below the last position seen is a redelivery.
    if (msg.seq <= this.last) {
      this.counts.duplicates++
      return
    }
    this.last = msg.seq
    const d = decodeOutput(msg.data)
    if (!d.ok) {
      this.reject(msg, d.reason)
      return
    }
    const o = d.output
    if (o.type === 'fence') {
      const f = o.body as FenceBody
      if (f.partition !== o.partition || f.token !== o.token) {
        this.reject(
          msg,
          `fence body (partition ${f.partition}, token ${f.token}) disagrees with the envelope ` +
            `(partition ${o.partition}, token ${o.token})`,
        )
        return
      }
    }
    const key = fenceKey(o.site, o.partition)
    const fence = this.fenceOf(key)
    if (o.token < fence || (o.type !== 'fence' && this.offChain(o))) {
      this.counts.stale++
      this.stale.push({ streamSeq: msg.seq, id: o.id, site: o.site, partition: o.partition, token: o.token, fence })
      return
    }
    this.counts.applied++
    this.apply(o, msg.seq, key, fence)
  }

  plan(): BatchPlan {
    const alerts = [...this.alerts.values()].map(({ rank: _rank, ...row }) => row)
    return {
      lastSeq: this.last,
      rows: {
        windows: [...this.windows.values()],
        alerts,
        alertEvents: [...this.alertEvents.values()],
        scoresLatest: [...this.scoresLatest.values()],
        scoreHistory: [...this.scoreHistory.values()],
        recommendations: [...this.recommendations.values()],
        laps: [...this.laps.values()],
        late: [...this.late.values()],
        positions: [...this.positions.values()],
      },
      fences: [...this.raised.values()],
      seals: [...this.sealed.values()],
      rejects: this.rejects,
      stale: this.stale,
      counts: this.counts,
    }
  }

  /** True when a seal puts the output's position off its partition's chain. */
  private offChain(o: Output): boolean {
    const k = sealKey(o.partition, o.site, epochOf(o.seq))
    const to = this.sealed.get(k)?.to_seq ?? this.seals.get(k)
    return to !== undefined && seqOf(o.seq) > to
  }

  private fenceOf(key: string): number {
    return this.raised.get(key)?.token ?? this.fences.get(key) ?? -1
  }

  private reject(msg: StreamMessage, reason: string): void {
    this.counts.malformed++
    this.rejects.push(rejectRow(msg, reason))
  }

  private apply(o: Output, streamSeq: number, key: string, fence: number): void {
    const p: Provenance = { output_id: o.id, seq: o.seq, site: o.site, partition: o.partition, token: o.token }
    const base = { kind: o.kind, entity: o.entity, profile: o.profile }
    switch (o.type) {
      case 'fence': {
        const f = o.body as FenceBody
        if (f.token > fence) {
          this.raised.set(key, {
            site: o.site,
            partition: o.partition,
            token: f.token,
            owner: f.owner,
            stream_seq: streamSeq,
          })
        }
        for (const s of f.segments ?? []) {
          const k = sealKey(o.partition, s.site, s.epoch)
          if (s.to === undefined || this.seals.has(k) || this.sealed.has(k)) continue
          this.sealed.set(k, {
            partition: o.partition,
            site: s.site,
            epoch: s.epoch,
            to_seq: s.to,
            by_site: o.site,
            by_token: f.token,
            stream_seq: streamSeq,
          })
        }
        return
      }
      case 'window': {
        const w = o.body as WindowBody
        keepNewest(this.windows, JSON.stringify([o.kind, o.entity, w.window, w.start]), {
          ...base,
          ...p,
          window_name: w.window,
          start_ms: w.start,
          end_ms: w.end,
          fields: w.fields,
          counts: w.counts,
          idle_closed: w.idleClosed,
        })
        return
      }
      case 'alert': {
        const a = o.body as AlertBody
        const event: AlertEventRow = {
          ...base,
          ...p,
          alert_id: a.alertId,
          type: a.type,
          severity: a.severity,
          event: a.state,
          event_ms: o.ts,
          start_ms: a.start,
          end_ms: a.end ?? null,
          value: a.value,
          threshold: a.threshold,
          explanation: a.explanation,
          details: a.details ?? null,
        }
        keepFirst(this.alertEvents, o.id, event)
        this.mergeAlert(event, a)
        return
      }
      case 'score': {
        const s = o.body as ScoreBody
        const row: ScoreRow = { ...base, ...p, name: s.name, scored_ms: o.ts, value: s.value, factors: s.factors }
        keepNewest(this.scoresLatest, JSON.stringify([o.kind, o.entity, s.name]), row)
        keepFirst(this.scoreHistory, o.id, row)
        return
      }
      case 'recommendation': {
        const r = o.body as RecommendationBody
        keepFirst(this.recommendations, o.id, {
          ...base,
          ...p,
          recommended_ms: o.ts,
          action: r.action,
          score: r.score,
          factors: r.factors,
          reason: r.reason,
        })
        return
      }
      case 'lap': {
        const l = o.body as LapBody
        keepNewest(this.laps, JSON.stringify([o.kind, o.entity, l.lap]), {
          ...base,
          ...p,
          lap: l.lap,
          start_ms: l.start,
          end_ms: l.end,
          lap_time_ms: l.lapTimeMs,
          min_speed: l.minSpeed,
          avg_speed: l.avgSpeed,
          max_speed: l.maxSpeed,
          max_brake_temp: l.maxBrakeTemp,
          max_tyre_temp: l.maxTyreTemp,
          samples: l.samples,
        })
        return
      }
      case 'position': {
        const b = o.body as PositionBody
        const key = JSON.stringify([o.kind, o.entity, b.readingSeq])
        if (this.positions.has(key)) return
        const fields: Record<string, number | string> = { reason: b.reason }
        if (typeof b.speed === 'number') fields.speed = b.speed
        if (typeof b.heading === 'number') fields.heading = b.heading
        this.positions.set(key, { ...base, seq: b.readingSeq, ts_ms: o.ts, lat: b.lat, lon: b.lon, fields })
        return
      }
      case 'late': {
        const l = o.body as LateBody
        keepFirst(this.late, o.id, {
          ...base,
          ...p,
          reading_ms: l.readingTs,
          watermark_ms: l.watermark,
          reading_seq: l.readingSeq,
          fields: l.fields,
        })
        return
      }
    }
  }

  private mergeAlert(e: AlertEventRow, a: AlertBody): void {
    const peak = typeof a.details?.peak === 'number' && Number.isFinite(a.details.peak) ? a.details.peak : a.value
    const rank = ALERT_RANK[e.event]
    const prev = this.alerts.get(e.alert_id)
    if (prev && !atLeast([e.seq, rank, e.token], [prev.last_seq, prev.rank, prev.token])) {
      prev.peak_value = foldPeak(prev.peak_value, peak, e.threshold)
      return
    }
    this.alerts.set(e.alert_id, {
      alert_id: e.alert_id,
      kind: e.kind,
      entity: e.entity,
      profile: e.profile,
      type: e.type,
      severity: e.severity,
      state: stateAfter(e.event),
      last_event: e.event,
      start_ms: e.start_ms,
      end_ms: e.end_ms,
      event_ms: e.event_ms,
      value: e.value,
      threshold: e.threshold,
      peak_value: prev ? foldPeak(prev.peak_value, peak, e.threshold) : peak,
      explanation: e.explanation,
      details: e.details,
      last_output_id: e.output_id,
      last_seq: e.seq,
      site: e.site,
      partition: e.partition,
      token: e.token,
      rank,
    })
  }
}

/** Keyed projections: the highest (seq, token) wins, the later one on a tie. */
function keepNewest<R extends Provenance>(m: Map<string, R>, key: string, row: R): void {
  const prev = m.get(key)
  if (!prev || atLeast([row.seq, row.token], [prev.seq, prev.token])) m.set(key, row)
}

/** History keyed by output id: the first copy stays unless a newer owner (higher token) rewrote it. */
function keepFirst<R extends Provenance>(m: Map<string, R>, id: string, row: R): void {
  const prev = m.get(id)
  if (!prev || row.token > prev.token) m.set(id, row)
}
