/**
 * Writes a planned batch in one transaction: one multi-row statement per table (rows passed as a single JSON
 * parameter and expanded with json_to_recordset, which keeps a 500-row batch to ~10 round trips), the raised
 * fences, the set-aside messages, and the projector's cursor. Conflict rules mirror the merge rules of
 * batch.ts, so replays and redeliveries leave the tables as they were (apart from updated_at).
 */
import type pg from 'pg'
import { FencedError, position } from '../actors/mod.js'
import { fenceKey, sealKey, type BatchPlan, type BatchRows, type Seals } from './batch.js'
import { withClient } from './db.js'
import { msToTs, TABLES } from './schema.js'

/** Identifies one projector's cursor row. */
export interface CursorKey {
  site: string
  stream: string
  durable: string
}

type Columns = Record<string, string>

const PROVENANCE_COLS: Columns = {
  output_id: 'text',
  seq: 'bigint',
  site: 'text',
  partition: 'integer',
  token: 'bigint',
}

interface UpsertSpec {
  table: string
  /** Fields of the JSON rows and their SQL types. */
  record: Columns
  /** Target columns whose value is not simply `r.<same name>`. */
  exprs?: Record<string, string>
  /** Target columns (in order); every one must be a record field or have an expr. */
  columns: string[]
  conflict: string
}

function upsertSql(s: UpsertSpec): string {
  const values = s.columns.map((c) => s.exprs?.[c] ?? `r.${c}`)
  const record = Object.entries(s.record)
    .map(([k, t]) => `${k} ${t}`)
    .join(', ')
  return `INSERT INTO ${s.table} AS t (${s.columns.join(', ')})
SELECT ${values.join(', ')} FROM json_to_recordset($1::json) AS r(${record})
${s.conflict}`
}

/** `SET c = EXCLUDED.c, ...` for every column but the key, plus updated_at. */
function setAll(columns: string[], key: string[]): string {
  return [...columns.filter((c) => !key.includes(c)).map((c) => `${c} = EXCLUDED.${c}`), 'updated_at = now()'].join(
    ', ',
  )
}

const WINDOW_COLS = [
  'kind',
  'entity',
  'window_name',
  'window_start',
  'window_end',
  'profile',
  'fields',
  'counts',
  'idle_closed',
  'output_id',
  'seq',
  'site',
  'partition',
  'token',
]
const WINDOW_KEY = ['kind', 'entity', 'window_name', 'window_start']
const WINDOWS_SQL = upsertSql({
  table: TABLES.windows,
  record: {
    kind: 'text',
    entity: 'text',
    window_name: 'text',
    start_ms: 'bigint',
    end_ms: 'bigint',
    profile: 'text',
    fields: 'jsonb',
    counts: 'jsonb',
    idle_closed: 'boolean',
    ...PROVENANCE_COLS,
  },
  exprs: { window_start: msToTs('r.start_ms'), window_end: msToTs('r.end_ms') },
  columns: WINDOW_COLS,
  conflict: `ON CONFLICT (${WINDOW_KEY.join(', ')}) DO UPDATE SET ${setAll(WINDOW_COLS, WINDOW_KEY)}
WHERE (EXCLUDED.seq, EXCLUDED.token) >= (t.seq, t.token)`,
})

const ALERT_RECORD: Columns = {
  alert_id: 'text',
  kind: 'text',
  entity: 'text',
  profile: 'text',
  type: 'text',
  severity: 'text',
  state: 'text',
  last_event: 'text',
  start_ms: 'bigint',
  end_ms: 'bigint',
  event_ms: 'bigint',
  value: 'float8',
  threshold: 'float8',
  peak_value: 'float8',
  explanation: 'text',
  details: 'jsonb',
  last_output_id: 'text',
  last_seq: 'bigint',
  site: 'text',
  partition: 'integer',
  token: 'bigint',
}
const ALERT_COLS = [
  'alert_id',
  'kind',
  'entity',
  'profile',
  'type',
  'severity',
  'state',
  'last_event',
  'started_at',
  'ended_at',
  'event_at',
  'value',
  'threshold',
  'peak_value',
  'explanation',
  'details',
  'last_output_id',
  'last_seq',
  'site',
  'partition',
  'token',
]
// The more extreme peak of the stored row and an incoming one (same rule as foldPeak in batch.ts).
const FURTHER = (incoming: string, stored: string, threshold: string): string =>
  `(abs(${incoming} - ${threshold}) > abs(${stored} - ${threshold}) ` +
  `OR (abs(${incoming} - ${threshold}) = abs(${stored} - ${threshold}) AND ${incoming} > ${stored}))`
// Older events do not replace the row but still count towards the peak.
const ALERT_PEAK_SQL = `UPDATE ${TABLES.alerts} AS t SET peak_value = r.peak_value, updated_at = now()
FROM json_to_recordset($1::json) AS r(alert_id text, peak_value float8, threshold float8)
WHERE t.alert_id = r.alert_id AND ${FURTHER('r.peak_value', 't.peak_value', 'r.threshold')}`
const ALERTS_SQL = upsertSql({
  table: TABLES.alerts,
  record: ALERT_RECORD,
  exprs: { started_at: msToTs('r.start_ms'), ended_at: msToTs('r.end_ms'), event_at: msToTs('r.event_ms') },
  columns: ALERT_COLS,
  conflict: `ON CONFLICT (alert_id) DO UPDATE SET ${setAll(ALERT_COLS, ['alert_id', 'peak_value'])},
  peak_value = CASE WHEN ${FURTHER('EXCLUDED.peak_value', 't.peak_value', 'EXCLUDED.threshold')}
    THEN EXCLUDED.peak_value ELSE t.peak_value END
WHERE (EXCLUDED.last_seq, pw_alert_rank(EXCLUDED.last_event), EXCLUDED.token)
   >= (t.last_seq, pw_alert_rank(t.last_event), t.token)`,
})

/** History tables keyed by output id: a copy is rewritten only by a newer owner (higher token). */
function historySql(table: string, record: Columns, exprs: Record<string, string>, columns: string[]): string {
  return upsertSql({
    table,
    record,
    exprs,
    columns,
    conflict: `ON CONFLICT (output_id) DO UPDATE SET ${setAll(columns, ['output_id'])} WHERE EXCLUDED.token > t.token`,
  })
}

const ALERT_EVENT_COLS = [
  'output_id',
  'alert_id',
  'kind',
  'entity',
  'profile',
  'type',
  'severity',
  'event',
  'event_at',
  'started_at',
  'ended_at',
  'value',
  'threshold',
  'explanation',
  'details',
  'seq',
  'site',
  'partition',
  'token',
]
const ALERT_EVENTS_SQL = historySql(
  TABLES.alertEvents,
  {
    alert_id: 'text',
    kind: 'text',
    entity: 'text',
    profile: 'text',
    type: 'text',
    severity: 'text',
    event: 'text',
    event_ms: 'bigint',
    start_ms: 'bigint',
    end_ms: 'bigint',
    value: 'float8',
    threshold: 'float8',
    explanation: 'text',
    details: 'jsonb',
    ...PROVENANCE_COLS,
  },
  { event_at: msToTs('r.event_ms'), started_at: msToTs('r.start_ms'), ended_at: msToTs('r.end_ms') },
  ALERT_EVENT_COLS,
)

const SCORE_RECORD: Columns = {
  kind: 'text',
  entity: 'text',
  name: 'text',
  profile: 'text',
  scored_ms: 'bigint',
  value: 'float8',
  factors: 'jsonb',
  ...PROVENANCE_COLS,
}
const SCORE_COLS = [
  'kind',
  'entity',
  'name',
  'profile',
  'scored_at',
  'value',
  'factors',
  'output_id',
  'seq',
  'site',
  'partition',
  'token',
]
const SCORE_KEY = ['kind', 'entity', 'name']
const SCORES_LATEST_SQL = upsertSql({
  table: TABLES.scoresLatest,
  record: SCORE_RECORD,
  exprs: { scored_at: msToTs('r.scored_ms') },
  columns: SCORE_COLS,
  conflict: `ON CONFLICT (${SCORE_KEY.join(', ')}) DO UPDATE SET ${setAll(SCORE_COLS, SCORE_KEY)}
WHERE (EXCLUDED.seq, EXCLUDED.token) >= (t.seq, t.token)`,
})
const SCORE_HISTORY_SQL = historySql(
  TABLES.scoreHistory,
  SCORE_RECORD,
  { scored_at: msToTs('r.scored_ms') },
  SCORE_COLS,
)

const RECOMMENDATIONS_SQL = historySql(
  TABLES.recommendations,
  {
    kind: 'text',
    entity: 'text',
    profile: 'text',
    recommended_ms: 'bigint',
    action: 'text',
    score: 'float8',
    factors: 'jsonb',
    reason: 'text',
    ...PROVENANCE_COLS,
  },
  { recommended_at: msToTs('r.recommended_ms') },
  [
    'output_id',
    'kind',
    'entity',
    'profile',
    'recommended_at',
    'action',
    'score',
    'factors',
    'reason',
    'seq',
    'site',
    'partition',
    'token',
  ],
)

const LAP_COLS = [
  'kind',
  'entity',
  'lap',
  'profile',
  'lap_start',
  'lap_end',
  'lap_time_ms',
  'min_speed',
  'avg_speed',
  'max_speed',
  'max_brake_temp',
  'max_tyre_temp',
  'samples',
  'output_id',
  'seq',
  'site',
  'partition',
  'token',
]
const LAP_KEY = ['kind', 'entity', 'lap']
const LAPS_SQL = upsertSql({
  table: TABLES.laps,
  record: {
    kind: 'text',
    entity: 'text',
    lap: 'integer',
    profile: 'text',
    start_ms: 'bigint',
    end_ms: 'bigint',
    lap_time_ms: 'bigint',
    min_speed: 'float8',
    avg_speed: 'float8',
    max_speed: 'float8',
    max_brake_temp: 'float8',
    max_tyre_temp: 'float8',
    samples: 'integer',
    ...PROVENANCE_COLS,
  },
  exprs: { lap_start: msToTs('r.start_ms'), lap_end: msToTs('r.end_ms') },
  columns: LAP_COLS,
  conflict: `ON CONFLICT (${LAP_KEY.join(', ')}) DO UPDATE SET ${setAll(LAP_COLS, LAP_KEY)}
WHERE (EXCLUDED.seq, EXCLUDED.token) >= (t.seq, t.token)`,
})

const LATE_SQL = historySql(
  TABLES.late,
  {
    kind: 'text',
    entity: 'text',
    profile: 'text',
    reading_ms: 'bigint',
    watermark_ms: 'bigint',
    reading_seq: 'bigint',
    fields: 'jsonb',
    ...PROVENANCE_COLS,
  },
  { reading_ts: msToTs('r.reading_ms'), watermark: msToTs('r.watermark_ms') },
  [
    'output_id',
    'kind',
    'entity',
    'profile',
    'reading_ts',
    'watermark',
    'reading_seq',
    'fields',
    'seq',
    'site',
    'partition',
    'token',
  ],
)

// Positions share raw_readings with imported raw readings: same key, the first copy stays.
const POSITIONS_SQL = `INSERT INTO ${TABLES.raw} (kind, entity, seq, ts, profile, fields, lat, lon)
SELECT r.kind, r.entity, r.seq, ${msToTs('r.ts_ms')}, r.profile, r.fields, r.lat, r.lon
FROM json_to_recordset($1::json) AS r(kind text, entity text, seq bigint, ts_ms bigint, profile text, fields jsonb,
  lat float8, lon float8)
ON CONFLICT (kind, entity, seq) DO NOTHING`

const FENCES_SQL = `INSERT INTO ${TABLES.fences} AS t (site, partition, token, owner, stream_seq)
SELECT r.site, r.partition, r.token, r.owner, r.stream_seq
FROM json_to_recordset($1::json) AS r(site text, partition integer, token bigint, owner text, stream_seq bigint)
ON CONFLICT (site, partition) DO UPDATE SET token = EXCLUDED.token, owner = EXCLUDED.owner,
  stream_seq = EXCLUDED.stream_seq, updated_at = now()
WHERE EXCLUDED.token > t.token`

const REJECTS_SQL = `INSERT INTO ${TABLES.rejects} (site, stream, stream_seq, subject, reason, payload)
SELECT $2, $3, r.stream_seq, r.subject, r.reason, r.payload
FROM json_to_recordset($1::json) AS r(stream_seq bigint, subject text, reason text, payload text)
ON CONFLICT (site, stream, stream_seq) DO NOTHING`

// Statements in write order; the alert peak fold runs before the alert upsert (see ALERT_PEAK_SQL).
const ROW_STATEMENTS: Array<[keyof BatchRows, string]> = [
  ['windows', WINDOWS_SQL],
  ['alerts', ALERT_PEAK_SQL],
  ['alerts', ALERTS_SQL],
  ['alertEvents', ALERT_EVENTS_SQL],
  ['scoresLatest', SCORES_LATEST_SQL],
  ['scoreHistory', SCORE_HISTORY_SQL],
  ['recommendations', RECOMMENDATIONS_SQL],
  ['laps', LAPS_SQL],
  ['late', LATE_SQL],
  ['positions', POSITIONS_SQL],
]

/** Reads (creating if absent) the cursor row of `key`: the last stream sequence committed. */
export async function readCursor(pool: pg.Pool, key: CursorKey): Promise<number> {
  await pool.query(`INSERT INTO ${TABLES.cursors} (site, stream, durable) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
    key.site,
    key.stream,
    key.durable,
  ])
  const r = await pool.query<{ last_seq: string }>(
    `SELECT last_seq FROM ${TABLES.cursors} WHERE site = $1 AND stream = $2 AND durable = $3`,
    [key.site, key.stream, key.durable],
  )
  return Number(r.rows[0]?.last_seq ?? 0)
}

/** All committed fences, keyed by fenceKey. */
export async function readFences(pool: pg.Pool): Promise<Map<string, number>> {
  const r = await pool.query<{ site: string; partition: number; token: string }>(
    `SELECT site, partition, token FROM ${TABLES.fences}`,
  )
  return new Map(r.rows.map((f) => [fenceKey(f.site, f.partition), Number(f.token)]))
}

/** Serialises the batches of every projector writing to one database (own and peer streams): seals are read and applied in one order. */
const BATCH_LOCK_KEY = 7_146_283_002

/** Output tables and their position column: what a seal retracts. (raw_readings positions are readings; they stay.) */
const RETRACTABLE: ReadonlyArray<[string, string]> = [
  [TABLES.windows, 'seq'],
  [TABLES.alerts, 'last_seq'],
  [TABLES.alertEvents, 'seq'],
  [TABLES.scoresLatest, 'seq'],
  [TABLES.scoreHistory, 'seq'],
  [TABLES.recommendations, 'seq'],
  [TABLES.laps, 'seq'],
  [TABLES.late, 'seq'],
]

async function readSeals(client: pg.PoolClient): Promise<Map<string, number>> {
  const r = await client.query<{ partition: number; site: string; epoch: string; to_seq: string }>(
    `SELECT partition, site, epoch, to_seq FROM ${TABLES.seals}`,
  )
  return new Map(r.rows.map((s) => [sealKey(s.partition, s.site, Number(s.epoch)), Number(s.to_seq)]))
}

/** Records the plan's new seals and deletes the rows they put off the chain; returns the rows deleted. */
async function applySeals(client: pg.PoolClient, plan: BatchPlan): Promise<number> {
  let deleted = 0
  for (const s of plan.seals) {
    const ins = await client.query(
      `INSERT INTO ${TABLES.seals} (partition, site, epoch, to_seq, by_site, by_token, stream_seq)
      VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [s.partition, s.site, s.epoch, s.to_seq, s.by_site, s.by_token, s.stream_seq],
    )
    if (ins.rowCount !== 1) continue
    let n = 0
    for (const [table, col] of RETRACTABLE) {
      const del = await client.query(
        `DELETE FROM ${table} WHERE partition = $1 AND site = $2 AND ${col} > $3 AND ${col} < $4`,
        [s.partition, s.site, position(s.epoch, s.to_seq), position(s.epoch + 1, 0)],
      )
      n += del.rowCount ?? 0
    }
    if (n > 0) {
      await client.query(
        `UPDATE ${TABLES.seals} SET retracted = $4 WHERE partition = $1 AND site = $2 AND epoch = $3`,
        [s.partition, s.site, s.epoch, n],
      )
    }
    deleted += n
  }
  return deleted
}

/**
 * Plans a batch with the seals committed so far (`make`) and commits it, moving the cursor of `key` from
 * `expected` to the plan's lastSeq, all in one transaction; returns the plan and the rows its seals retracted.
 * Throws FencedError (and writes nothing) if the stored cursor is not `expected`: another projector with the
 * same durable name is writing.
 */
export async function writeBatch(
  pool: pg.Pool,
  make: (seals: Seals) => BatchPlan,
  key: CursorKey,
  expected: number,
): Promise<{ plan: BatchPlan; retracted: number }> {
  // On any failure withClient destroys the client, which aborts the transaction: no ROLLBACK that could fail.
  return await withClient(pool, async (client) => {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [BATCH_LOCK_KEY])
    const plan = make(await readSeals(client))
    if (plan.lastSeq <= expected) {
      await client.query('COMMIT')
      return { plan, retracted: 0 }
    }
    await checkCursor(client, key, expected)
    const retracted = await applySeals(client, plan)
    for (const [rows, sql] of ROW_STATEMENTS) {
      if (plan.rows[rows].length > 0) await client.query(sql, [JSON.stringify(plan.rows[rows])])
    }
    if (plan.fences.length > 0) await client.query(FENCES_SQL, [JSON.stringify(plan.fences)])
    if (plan.rejects.length > 0) {
      await client.query(REJECTS_SQL, [JSON.stringify(plan.rejects), key.site, key.stream])
    }
    await client.query(
      `UPDATE ${TABLES.cursors} SET last_seq = $4, applied = applied + $5,
      rejected_stale = rejected_stale + $6, rejected_malformed = rejected_malformed + $7, updated_at = now()
      WHERE site = $1 AND stream = $2 AND durable = $3`,
      [key.site, key.stream, key.durable, plan.lastSeq, plan.counts.applied, plan.counts.stale, plan.counts.malformed],
    )
    await client.query('COMMIT')
    return { plan, retracted }
  })
}

async function checkCursor(client: pg.PoolClient, key: CursorKey, expected: number): Promise<void> {
  // FOR UPDATE also serialises two projectors that share a durable name by mistake.
  const r = await client.query<{ last_seq: string }>(
    `SELECT last_seq FROM ${TABLES.cursors}
    WHERE site = $1 AND stream = $2 AND durable = $3 FOR UPDATE`,
    [key.site, key.stream, key.durable],
  )
  const stored = Number(r.rows[0]?.last_seq ?? 0)
  if (stored !== expected) {
    throw new FencedError(
      `projector cursor ${key.site}/${key.stream}/${key.durable} is at ${stored}, expected ` +
        `${expected}: another projector with the same durable name is writing`,
    )
  }
}

/** One raw reading for `writeRawReadings`. */
export interface RawReading {
  kind: string
  entity: string
  /** Stream sequence of the reading in TLM (with kind and entity, the key). */
  seq: number
  ts: number
  fields: Record<string, unknown>
  profile?: string
  loc?: { lat: number; lon: number }
}

/**
 * Inserts raw readings in one multi-row statement (chunks of `chunk` rows), skipping ones already stored.
 * A multi-row INSERT ... ON CONFLICT DO NOTHING rather than COPY: COPY cannot skip duplicates, and staging
 * through a temp table costs as much as this at these batch sizes. Returns the number of rows inserted.
 */
export async function writeRawReadings(pool: pg.Pool, rows: readonly RawReading[], chunk = 5_000): Promise<number> {
  let inserted = 0
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk).map((r) => ({
      kind: r.kind,
      entity: r.entity,
      seq: r.seq,
      ts_ms: r.ts,
      profile: r.profile ?? null,
      fields: r.fields,
      lat: r.loc?.lat ?? null,
      lon: r.loc?.lon ?? null,
    }))
    const res = await pool.query(
      `INSERT INTO ${TABLES.raw} (kind, entity, seq, ts, profile, fields, lat, lon)
      SELECT r.kind, r.entity, r.seq, ${msToTs('r.ts_ms')}, r.profile, r.fields, r.lat, r.lon
      FROM json_to_recordset($1::json) AS r(kind text, entity text, seq bigint, ts_ms bigint, profile text,
        fields jsonb, lat float8, lon float8)
      ON CONFLICT (kind, entity, seq) DO NOTHING`,
      [JSON.stringify(part)],
    )
    inserted += res.rowCount ?? 0
  }
  return inserted
}
