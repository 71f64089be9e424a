/** Output builders and table dumps shared by the projector tests. */
import type pg from 'pg'
import type {
  AlertBody,
  AlertState,
  FenceBody,
  LapBody,
  LateBody,
  Output,
  OutputBodies,
  OutputType,
  RecommendationBody,
  ScoreBody,
  WindowBody,
} from '../actors/types.js'
import { fenceSubject, outSubject } from '../actors/subjects.js'
import { TABLES } from '../projector/mod.js'

export const SITE = 'a'
export const T0 = 1_700_000_000_000

export interface Env {
  seq: number
  token?: number
  partition?: number
  kind?: string
  profile?: string
  ts?: number
}

export function output<T extends OutputType>(
  type: T,
  entity: string,
  id: string,
  body: OutputBodies[T],
  e: Env,
): Output<T> {
  return {
    id,
    type,
    kind: e.kind ?? 'sensor',
    entity,
    profile: e.profile ?? 'environment',
    ts: e.ts ?? T0,
    seq: e.seq,
    site: SITE,
    partition: e.partition ?? 0,
    token: e.token ?? 1,
    body,
  }
}

export function subjectOf(o: Output): string {
  return o.type === 'fence' ? fenceSubject(o.site, o.partition) : outSubject(o.site, o.partition, o.kind, o.entity)
}

export function fence(partition: number, token: number, seq = 0): Output<'fence'> {
  const body: FenceBody = { partition, token, owner: `w${token}` }
  return output('fence', '_sys', `_sys:fence:${partition}:${token}`, body, { seq, token, partition, kind: '_sys' })
}

export function windowOut(entity: string, start: number, e: Env & { mean?: number }): Output<'window'> {
  const mean = e.mean ?? 20
  const body: WindowBody = {
    window: 'tumbling_1m',
    start,
    end: start + 60_000,
    idleClosed: false,
    counts: { alerts: 0, failures: 0 },
    fields: {
      temperature: {
        count: 2,
        sum: mean * 2,
        min: mean - 1,
        max: mean + 1,
        mean,
        variance: 1,
        stddev: 1,
        first: mean - 1,
        last: mean + 1,
      },
    },
  }
  return output('window', entity, `sensor:${entity}:window:tumbling_1m:${start}`, body, { ts: start + 60_000, ...e })
}

export function alertOut(
  entity: string,
  opened: number,
  state: AlertState,
  e: Env & { value: number; threshold?: number; end?: number; peak?: number },
): Output<'alert'> {
  const body: AlertBody = {
    alertId: `sensor:${entity}:temp_high:${opened}`,
    type: 'temp_high',
    severity: 'warning',
    state,
    start: opened,
    value: e.value,
    threshold: e.threshold ?? 30,
    explanation: `temperature ${e.value} > ${e.threshold ?? 30}`,
    ...(e.end !== undefined ? { end: e.end } : {}),
    ...(e.peak !== undefined ? { details: { peak: e.peak } } : { details: { feature: 'temperature' } }),
  }
  return output('alert', entity, `${body.alertId}:${state}:${e.seq}`, body, { ts: e.end ?? opened, ...e })
}

export function scoreOut(entity: string, e: Env & { value: number }): Output<'score'> {
  const body: ScoreBody = { name: 'pit', value: e.value, factors: { wear: e.value / 2, speed: 1 } }
  return output('score', entity, `vehicle:${entity}:score:pit:${e.seq}`, body, {
    kind: 'vehicle',
    profile: 'race',
    ...e,
  })
}

export function recommendationOut(entity: string, e: Env): Output<'recommendation'> {
  const body: RecommendationBody = {
    action: 'pit_now',
    score: 74.5,
    factors: { wear: 80, speed: 10 },
    reason: 'score above 70',
  }
  return output('recommendation', entity, `vehicle:${entity}:rec:pit_now:${e.seq}`, body, {
    kind: 'vehicle',
    profile: 'race',
    ...e,
  })
}

export function lapOut(entity: string, lap: number, e: Env & { maxSpeed?: number }): Output<'lap'> {
  const start = T0 + lap * 90_000
  const body: LapBody = {
    lap,
    start,
    end: start + 89_500,
    lapTimeMs: 89_500,
    minSpeed: 80,
    avgSpeed: 210.5,
    maxSpeed: e.maxSpeed ?? 318,
    maxBrakeTemp: 880,
    maxTyreTemp: 112,
    samples: 1790,
  }
  return output('lap', entity, `vehicle:${entity}:lap:${lap}`, body, {
    kind: 'vehicle',
    profile: 'race',
    ts: start + 89_500,
    ...e,
  })
}

export function lateOut(entity: string, readingTs: number, e: Env): Output<'late'> {
  const body: LateBody = { readingTs, watermark: readingTs + 120_000, readingSeq: e.seq, fields: { temperature: 21.5 } }
  return output('late', entity, `sensor:${entity}:late:${e.seq}`, body, e)
}

// Every projection table with an order that makes a dump deterministic.
const DUMP_ORDER: Array<[string, string]> = [
  [TABLES.windows, 'kind, entity, window_name, window_start'],
  [TABLES.alerts, 'alert_id'],
  [TABLES.alertEvents, 'output_id'],
  [TABLES.scoresLatest, 'kind, entity, name'],
  [TABLES.scoreHistory, 'output_id'],
  [TABLES.recommendations, 'output_id'],
  [TABLES.laps, 'kind, entity, lap'],
  [TABLES.late, 'output_id'],
  [TABLES.fences, 'site, partition'],
]

/** All projection tables, rows without updated_at (and without the fence's stream position), as plain JSON. */
export async function dump(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {}
  for (const [table, order] of DUMP_ORDER) {
    const r = await pool.query(`SELECT * FROM ${table} ORDER BY ${order}`)
    out[table] = r.rows.map((row: Record<string, unknown>) => {
      const { updated_at: _u, stream_seq: _s, ...rest } = row
      return JSON.parse(JSON.stringify(rest)) as unknown
    })
  }
  return out
}
