/**
 * The projection's tables and the versioned migrations that create them. Migrations live in TypeScript (not
 * .sql files) so `tsc` ships them in dist/ with no copy step; each is applied once, in order, in its own
 * transaction (see migrate.ts). Never edit an applied migration: add a new one (migrate() refuses a changed one).
 *
 * Times are `timestamptz` (exact: built from epoch milliseconds with an interval, see `msToTs`); stream and
 * input sequences and fencing tokens are `bigint`. `window` is a reserved word in SQL, hence `window_name`.
 */

/** Table names, for queries elsewhere (gateway) and tests. */
export const TABLES = {
  migrations: 'schema_migrations',
  windows: 'window_aggregates',
  alerts: 'alerts',
  alertEvents: 'alert_events',
  scoresLatest: 'scores_latest',
  scoreHistory: 'score_history',
  recommendations: 'recommendations',
  laps: 'lap_stats',
  late: 'late_readings',
  raw: 'raw_readings',
  fences: 'projector_fences',
  cursors: 'projector_cursors',
  rejects: 'projector_rejects',
  seals: 'projector_seals',
  identity: 'projector_identity',
} as const
export type TableName = (typeof TABLES)[keyof typeof TABLES]

export interface Migration {
  version: number
  name: string
  sql: string
}

/** SQL expression turning epoch milliseconds (bigint) into an exact timestamptz. */
export function msToTs(expr: string): string {
  return `('epoch'::timestamptz + (${expr}) * interval '1 millisecond')`
}

// Columns every projected row carries: where it came from (output id, input seq) and who wrote it.
const PROVENANCE = `
  output_id text NOT NULL,
  seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()`

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'projection_tables',
    sql: `
CREATE TABLE ${TABLES.windows} (
  kind text NOT NULL,
  entity text NOT NULL,
  window_name text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  profile text NOT NULL,
  fields jsonb NOT NULL,
  counts jsonb NOT NULL,
  idle_closed boolean NOT NULL,${PROVENANCE},
  PRIMARY KEY (kind, entity, window_name, window_start)
);
-- The primary key serves per-entity history; this serves fleet-wide rollups over a time range.
CREATE INDEX window_aggregates_by_time ON ${TABLES.windows} (window_name, window_start);

-- Order of alert events for the same input seq: a close outranks an update, an update outranks an open.
CREATE FUNCTION pw_alert_rank(event text) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  $$ SELECT CASE event WHEN 'open' THEN 0 WHEN 'update' THEN 1 ELSE 2 END $$;

CREATE TABLE ${TABLES.alerts} (
  alert_id text PRIMARY KEY,
  kind text NOT NULL,
  entity text NOT NULL,
  profile text NOT NULL,
  type text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  state text NOT NULL CHECK (state IN ('open', 'closed')),
  last_event text NOT NULL CHECK (last_event IN ('open', 'update', 'close')),
  started_at timestamptz NOT NULL,
  ended_at timestamptz,
  event_at timestamptz NOT NULL,
  value double precision NOT NULL,
  threshold double precision NOT NULL,
  peak_value double precision NOT NULL,
  explanation text NOT NULL,
  details jsonb,
  last_output_id text NOT NULL,
  last_seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_by_entity ON ${TABLES.alerts} (kind, entity, started_at DESC);
CREATE INDEX alerts_open ON ${TABLES.alerts} (started_at DESC) WHERE state = 'open';

CREATE TABLE ${TABLES.alertEvents} (
  output_id text PRIMARY KEY,
  alert_id text NOT NULL,
  kind text NOT NULL,
  entity text NOT NULL,
  profile text NOT NULL,
  type text NOT NULL,
  severity text NOT NULL,
  event text NOT NULL CHECK (event IN ('open', 'update', 'close')),
  event_at timestamptz NOT NULL,
  started_at timestamptz NOT NULL,
  ended_at timestamptz,
  value double precision NOT NULL,
  threshold double precision NOT NULL,
  explanation text NOT NULL,
  details jsonb,
  seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_by_alert ON ${TABLES.alertEvents} (alert_id, seq);
CREATE INDEX alert_events_by_entity ON ${TABLES.alertEvents} (kind, entity, event_at);

CREATE TABLE ${TABLES.scoresLatest} (
  kind text NOT NULL,
  entity text NOT NULL,
  name text NOT NULL,
  profile text NOT NULL,
  scored_at timestamptz NOT NULL,
  value double precision NOT NULL,
  factors jsonb NOT NULL,${PROVENANCE},
  PRIMARY KEY (kind, entity, name)
);

CREATE TABLE ${TABLES.scoreHistory} (
  output_id text PRIMARY KEY,
  kind text NOT NULL,
  entity text NOT NULL,
  name text NOT NULL,
  profile text NOT NULL,
  scored_at timestamptz NOT NULL,
  value double precision NOT NULL,
  factors jsonb NOT NULL,
  seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX score_history_by_entity ON ${TABLES.scoreHistory} (kind, entity, name, scored_at);

CREATE TABLE ${TABLES.recommendations} (
  output_id text PRIMARY KEY,
  kind text NOT NULL,
  entity text NOT NULL,
  profile text NOT NULL,
  recommended_at timestamptz NOT NULL,
  action text NOT NULL,
  score double precision NOT NULL,
  factors jsonb NOT NULL,
  reason text NOT NULL,
  seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendations_by_entity ON ${TABLES.recommendations} (kind, entity, recommended_at);

CREATE TABLE ${TABLES.laps} (
  kind text NOT NULL,
  entity text NOT NULL,
  lap integer NOT NULL,
  profile text NOT NULL,
  lap_start timestamptz NOT NULL,
  lap_end timestamptz NOT NULL,
  lap_time_ms bigint NOT NULL,
  min_speed double precision NOT NULL,
  avg_speed double precision NOT NULL,
  max_speed double precision NOT NULL,
  max_brake_temp double precision NOT NULL,
  max_tyre_temp double precision NOT NULL,
  samples integer NOT NULL,${PROVENANCE},
  PRIMARY KEY (kind, entity, lap)
);
CREATE INDEX lap_stats_by_time ON ${TABLES.laps} (lap_end);

CREATE TABLE ${TABLES.late} (
  output_id text PRIMARY KEY,
  kind text NOT NULL,
  entity text NOT NULL,
  profile text NOT NULL,
  reading_ts timestamptz NOT NULL,
  watermark timestamptz NOT NULL,
  reading_seq bigint NOT NULL,
  fields jsonb NOT NULL,
  seq bigint NOT NULL,
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX late_readings_by_entity ON ${TABLES.late} (kind, entity, reading_ts);

-- Raw readings: one row per reading, keyed by its TLM sequence (unique per entity across replays).
CREATE TABLE ${TABLES.raw} (
  kind text NOT NULL,
  entity text NOT NULL,
  seq bigint NOT NULL,
  ts timestamptz NOT NULL,
  profile text,
  fields jsonb NOT NULL,
  lat double precision,
  lon double precision,
  PRIMARY KEY (kind, entity, seq)
);
CREATE INDEX raw_readings_by_entity_time ON ${TABLES.raw} (kind, entity, ts);

-- Highest fencing token seen per (site, partition); outputs with a lower token are stale.
CREATE TABLE ${TABLES.fences} (
  site text NOT NULL,
  partition integer NOT NULL,
  token bigint NOT NULL,
  owner text NOT NULL,
  stream_seq bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, partition)
);

-- Each projector's position in its stream, advanced in the same transaction as the rows it wrote, so a
-- restart resumes exactly after the last committed message whatever JetStream's ack state says.
CREATE TABLE ${TABLES.cursors} (
  site text NOT NULL,
  stream text NOT NULL,
  durable text NOT NULL,
  last_seq bigint NOT NULL DEFAULT 0,
  applied bigint NOT NULL DEFAULT 0,
  rejected_stale bigint NOT NULL DEFAULT 0,
  rejected_malformed bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, stream, durable)
);

-- Messages that could not be projected (undecodable, or refused by the database): kept, never dropped.
CREATE TABLE ${TABLES.rejects} (
  site text NOT NULL,
  stream text NOT NULL,
  stream_seq bigint NOT NULL,
  subject text NOT NULL,
  reason text NOT NULL,
  payload text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, stream, stream_seq)
);
`,
  },
  {
    version: 2,
    name: 'seals: positions of a site that a move put off the chain (docs/sites.md, split and heal)',
    sql: `
-- Learnt from fence outputs that carry a moved partition's chain: outputs of (partition, site) at positions
-- of epoch beyond to_seq are off the chain; rows already written for them are deleted (retracted) once.
CREATE TABLE ${TABLES.seals} (
  partition integer NOT NULL,
  site text NOT NULL,
  epoch bigint NOT NULL,
  to_seq bigint NOT NULL,
  by_site text NOT NULL,
  by_token bigint NOT NULL,
  stream_seq bigint NOT NULL,
  retracted integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partition, site, epoch)
);
`,
  },
  {
    version: 3,
    name: 'identity: the deployment this database belongs to (issue 13 part 4, projector/identity.ts)',
    sql: `
-- One row, written create-only by the first projector to start: a projector of another deployment is refused.
CREATE TABLE ${TABLES.identity} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  deployment text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
]
