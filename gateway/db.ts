/**
 * The gateway's PostgreSQL: its own versioned migrations (applied under an advisory lock, so several gateways
 * starting together apply each once) and the device credential store. A credential is `<id>.<secret>`; only
 * an HMAC-SHA256 of the secret under a per-credential salt is stored. The secret is 32 random bytes, so a fast
 * keyed hash is enough: there is nothing to brute-force, unlike a password. A bcrypt hash of the same secret is
 * stored next to it for nats-server, which checks MQTT device passwords against bcrypt only (mqtt-users.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import bcrypt from 'bcryptjs'
import type pg from 'pg'
import type { EntityKind } from '../actors/mod.js'

/** Arbitrary, fixed: the advisory lock key of the gateway's migrations ("pwgw"). */
const MIGRATION_LOCK = 0x70776777

const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `CREATE TABLE device_credentials (
      id          text PRIMARY KEY,
      kind        text NOT NULL CHECK (kind IN ('sensor', 'vehicle')),
      entity      text NOT NULL,
      secret_hash text NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      revoked_at  timestamptz
    );
    CREATE INDEX device_credentials_entity ON device_credentials (kind, entity) WHERE revoked_at IS NULL;`,
  },
  {
    // The entity registry (registry.ts). Keys are COLLATE "C" so the primary-key index gives the byte order the
    // cursor pagination relies on. A customer still referenced by a sensor or vehicle cannot be deleted.
    version: 2,
    sql: `CREATE TABLE customers (
      id         text COLLATE "C" PRIMARY KEY,
      name       text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE sensors (
      id            text COLLATE "C" PRIMARY KEY,
      type          text NOT NULL,
      profile       text NOT NULL,
      lat           double precision CHECK (lat BETWEEN -90 AND 90),
      lon           double precision CHECK (lon BETWEEN -180 AND 180),
      process_stage text,
      site          text NOT NULL,
      customer_id   text COLLATE "C" REFERENCES customers (id) ON DELETE RESTRICT,
      created_at    timestamptz NOT NULL DEFAULT now(),
      updated_at    timestamptz NOT NULL DEFAULT now(),
      CHECK ((lat IS NULL) = (lon IS NULL))
    );
    CREATE INDEX sensors_customer ON sensors (customer_id);
    CREATE INDEX sensors_site ON sensors (site);
    CREATE TABLE vehicles (
      vin         text COLLATE "C" PRIMARY KEY,
      brand       text NOT NULL,
      model       text NOT NULL,
      year        integer NOT NULL,
      customer_id text COLLATE "C" REFERENCES customers (id) ON DELETE RESTRICT,
      profile     text NOT NULL CHECK (profile IN ('road', 'race')),
      created_at  timestamptz NOT NULL DEFAULT now(),
      updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX vehicles_customer ON vehicles (customer_id);`,
  },
  {
    // MQTT: nats-server verifies device passwords against a bcrypt hash (mqtt-users.ts writes them into its
    // authorization). Credentials issued before this version have none and cannot be used over MQTT.
    version: 3,
    sql: 'ALTER TABLE device_credentials ADD COLUMN mqtt_hash text',
  },
  {
    // Geofences as data (geofences.ts): one row per fence, the shape as JSON (circle or GeoJSON polygon rings),
    // assignment to customers (fleets) and vehicles; `geofence_meta.version` is the last set version published.
    version: 4,
    sql: `CREATE SEQUENCE geofence_version;
    CREATE TABLE geofence_meta (version bigint NOT NULL);
    INSERT INTO geofence_meta (version) VALUES (0);
    CREATE TABLE geofences (
      id           text COLLATE "C" PRIMARY KEY,
      name         text,
      shape        jsonb NOT NULL,
      customers    text[] NOT NULL DEFAULT '{}',
      vehicles     text[] NOT NULL DEFAULT '{}',
      margin_m     double precision,
      min_dwell_ms integer,
      version      bigint NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now(),
      updated_at   timestamptz NOT NULL DEFAULT now()
    );`,
  },
  {
    // Out of service (service.ts, ISA-18.2): the current state per sensor, and the audit trail of every change
    // (who, when, why). `until` is ms since the epoch. No foreign key to sensors: the audit outlives a deleted
    // sensor.
    version: 5,
    sql: `CREATE SEQUENCE service_version;
    CREATE TABLE sensor_service (
      sensor_id  text COLLATE "C" PRIMARY KEY,
      in_service boolean NOT NULL,
      reason     text,
      until      bigint,
      changed_by text NOT NULL,
      changed_at timestamptz NOT NULL DEFAULT now(),
      version    bigint NOT NULL
    );
    CREATE TABLE sensor_service_audit (
      id         bigserial PRIMARY KEY,
      sensor_id  text COLLATE "C" NOT NULL,
      in_service boolean NOT NULL,
      reason     text,
      until      bigint,
      changed_by text NOT NULL,
      changed_at timestamptz NOT NULL DEFAULT now(),
      version    bigint NOT NULL
    );
    CREATE INDEX sensor_service_audit_sensor ON sensor_service_audit (sensor_id, id);`,
  },
  {
    // The alarm workflow (alarms.ts): what people did to an alert (acknowledge, assign, clear) next to the
    // projector's `alerts` row, and the append-only audit trail of every action with who and when. The runner
    // applies whatever versions are missing, in list order.
    // No foreign key to `alerts`: that table is the projector's (it may not exist yet, and seals retract rows).
    version: 6,
    sql: `CREATE TABLE alert_workflow (
      alert_id         text COLLATE "C" PRIMARY KEY,
      acknowledged_at  timestamptz,
      acknowledged_by  text,
      assignee         text,
      assigned_at      timestamptz,
      assigned_by      text,
      cleared_at       timestamptz,
      cleared_by       text,
      updated_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE alert_audit (
      id         bigserial PRIMARY KEY,
      alert_id   text COLLATE "C" NOT NULL,
      action     text NOT NULL CHECK (action IN ('acknowledge', 'assign', 'unassign', 'comment', 'clear')),
      actor      text NOT NULL,
      actor_type text NOT NULL CHECK (actor_type IN ('user', 'key', 'dev')),
      at         timestamptz NOT NULL DEFAULT clock_timestamp(),
      comment    text,
      assignee   text
    );
    CREATE INDEX alert_audit_by_alert ON alert_audit (alert_id, id);`,
  },
  {
    // Webhook notifications (notify.ts, notify-worker.ts): subscriptions, the outbox (one row per delivery:
    // an alert event x a subscription that selects it) and the attempts log. Rows enter the outbox from
    // triggers, in the same transaction as the alert event (the projector's alert_events, through the hook its
    // migration 4 installs) or the workflow action (alert_audit), so an event is never written without its
    // deliveries nor a delivery without its event. `notify_alert_seq` numbers each alert's events; its row
    // lock, held to commit, makes that number follow commit order, which the worker's per-alert order needs.
    version: 7,
    sql: `CREATE TABLE notify_subscriptions (
      id          text COLLATE "C" PRIMARY KEY,
      name        text NOT NULL,
      url         text NOT NULL,
      secret      text NOT NULL,
      enabled     boolean NOT NULL DEFAULT true,
      events      text[],
      profiles    text[],
      types       text[],
      severities  text[],
      kinds       text[],
      entities    text[],
      fleets      text[],
      sites       text[],
      created_by  text NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE notify_alert_seq (
      alert_id text COLLATE "C" PRIMARY KEY,
      last_seq bigint NOT NULL
    );
    -- No foreign key to notify_subscriptions: its per-row check would cost every fan-out. Rows are inserted only
    -- for subscriptions selected in the same statement; deleting a subscription deletes its rows (notify.ts), and
    -- the worker claims only rows whose subscription exists (the sweep removes any left by a race).
    CREATE TABLE notify_outbox (
      id               bigserial PRIMARY KEY,
      delivery_id      uuid NOT NULL UNIQUE,
      subscription_id  text COLLATE "C" NOT NULL,
      alert_id         text COLLATE "C" NOT NULL,
      alert_seq        bigint NOT NULL,
      event            text NOT NULL,
      payload          jsonb NOT NULL,
      status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'expired', 'dropped')),
      attempts         integer NOT NULL DEFAULT 0,
      created_at       timestamptz NOT NULL DEFAULT now(),
      next_attempt_at  timestamptz NOT NULL DEFAULT now(),
      lease_until      timestamptz,
      lease_owner      text,
      last_status_code integer,
      last_error       text,
      finished_at      timestamptz,
      UNIQUE (subscription_id, alert_id, alert_seq)
    );
    CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_at, id) WHERE status = 'pending';
    CREATE INDEX notify_outbox_finished ON notify_outbox (finished_at) WHERE status <> 'pending';
    CREATE TABLE notify_attempts (
      outbox_id   bigint NOT NULL REFERENCES notify_outbox (id) ON DELETE CASCADE,
      attempt     integer NOT NULL,
      started_at  timestamptz NOT NULL,
      duration_ms integer NOT NULL,
      status_code integer,
      error       text,
      outcome     text NOT NULL CHECK (outcome IN ('delivered', 'failed')),
      worker      text NOT NULL,
      PRIMARY KEY (outbox_id, attempt)
    );

    CREATE FUNCTION pw_iso(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS
      $f$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $f$;

    -- Fan-out of one alert event to the subscriptions that select it (their filters: NULL = any); used for
    -- people's actions, one row at a time. The detector's events (below) do the same set-wise. The delivery id of
    -- a detector event is derived from the subscription id and the output id (the same at both sites, whose
    -- projectors both write every alert event), so a subscription created with the same id at both sites sends
    -- each detector event twice under one delivery id, which receivers dedupe; people's actions (a_key NULL) are
    -- written at one site only and get a random id.
    CREATE FUNCTION pw_notify_enqueue(a_id text, a_kind text, a_entity text, a_profile text, a_type text, a_severity text,
        a_event text, a_key text, a_body jsonb) RETURNS void LANGUAGE plpgsql AS $f$
    DECLARE
      n bigint;
      e_fleet text;
      e_site text;
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM notify_subscriptions WHERE enabled) THEN RETURN; END IF;
      INSERT INTO notify_alert_seq AS q (alert_id, last_seq) VALUES (a_id, 1)
        ON CONFLICT (alert_id) DO UPDATE SET last_seq = q.last_seq + 1 RETURNING last_seq INTO n;
      IF a_kind = 'sensor' THEN
        SELECT customer_id, site INTO e_fleet, e_site FROM sensors WHERE id = a_entity;
      ELSIF a_kind = 'vehicle' THEN
        SELECT customer_id INTO e_fleet FROM vehicles WHERE vin = a_entity;
      END IF;
      INSERT INTO notify_outbox (delivery_id, subscription_id, alert_id, alert_seq, event, payload)
      SELECT x.d, x.id, a_id, n, a_event, jsonb_build_object('deliveryId', x.d, 'subscriptionId', x.id, 'sequence', n) || a_body
      FROM (SELECT CASE WHEN a_key IS NULL THEN gen_random_uuid() ELSE md5(s.id || chr(10) || a_key)::uuid END AS d, s.id
        FROM notify_subscriptions s
        WHERE s.enabled
          AND (s.events IS NULL OR a_event = ANY (s.events))
          AND (s.profiles IS NULL OR a_profile = ANY (s.profiles))
          AND (s.types IS NULL OR a_type = ANY (s.types))
          AND (s.severities IS NULL OR a_severity = ANY (s.severities))
          AND (s.kinds IS NULL OR a_kind = ANY (s.kinds))
          AND (s.entities IS NULL OR a_entity = ANY (s.entities))
          AND (s.fleets IS NULL OR e_fleet = ANY (s.fleets))
          AND (s.sites IS NULL OR e_site = ANY (s.sites))) x;
    END $f$;

    -- The detector's open, update and close, as the projector inserts them into alert_events.
    -- The detector's open, update and close, as the projector inserts them into alert_events: once per statement
    -- (a projector batch), set-wise, over the transition table new_rows. Within a batch an alert's events are
    -- numbered in stream order (input seq, then open < update < close as pw_alert_rank says). The counter rows are
    -- locked in alert id order, so two such statements never deadlock on them.
    CREATE OR REPLACE FUNCTION pw_alert_event_hook() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM notify_subscriptions WHERE enabled) THEN RETURN NULL; END IF;
      WITH counted AS (
        INSERT INTO notify_alert_seq AS q (alert_id, last_seq)
        SELECT alert_id, count(*) FROM new_rows GROUP BY alert_id ORDER BY alert_id
        ON CONFLICT (alert_id) DO UPDATE SET last_seq = q.last_seq + EXCLUDED.last_seq
        RETURNING q.alert_id, q.last_seq
      ), ev AS (
        SELECT r.*, c.last_seq - count(*) OVER (PARTITION BY r.alert_id)
            + row_number() OVER (PARTITION BY r.alert_id ORDER BY r.seq, pw_alert_rank(r.event), r.output_id) AS n,
          coalesce(sn.customer_id, vh.customer_id) AS e_fleet, sn.site AS e_site,
          w.assignee AS w_assignee, w.cleared_at AS w_cleared, w.acknowledged_at AS w_acked
        FROM new_rows r JOIN counted c ON c.alert_id = r.alert_id
          LEFT JOIN sensors sn ON r.kind = 'sensor' AND sn.id = r.entity
          LEFT JOIN vehicles vh ON r.kind = 'vehicle' AND vh.vin = r.entity
          LEFT JOIN alert_workflow w ON w.alert_id = r.alert_id
      ), sel AS (
        SELECT md5(s.id || chr(10) || e.output_id)::uuid AS d, s.id AS sub, e.*
        FROM ev e JOIN notify_subscriptions s ON s.enabled
          AND (s.events IS NULL OR e.event = ANY (s.events))
          AND (s.profiles IS NULL OR e.profile = ANY (s.profiles))
          AND (s.types IS NULL OR e.type = ANY (s.types))
          AND (s.severities IS NULL OR e.severity = ANY (s.severities))
          AND (s.kinds IS NULL OR e.kind = ANY (s.kinds))
          AND (s.entities IS NULL OR e.entity = ANY (s.entities))
          AND (s.fleets IS NULL OR e.e_fleet = ANY (s.fleets))
          AND (s.sites IS NULL OR e.e_site = ANY (s.sites))
      )
      INSERT INTO notify_outbox (delivery_id, subscription_id, alert_id, alert_seq, event, payload)
      SELECT d, sub, alert_id, n, event, jsonb_build_object('deliveryId', d, 'subscriptionId', sub, 'sequence', n,
          'event', event, 'at', pw_iso(event_at), 'by', 'system', 'byType', 'system', 'comment', NULL, 'assignee', w_assignee,
          'alert', jsonb_build_object('alertId', alert_id, 'kind', kind, 'entity', entity, 'profile', profile,
            'type', type, 'severity', severity, 'explanation', explanation, 'startedAt', pw_iso(started_at),
            'endedAt', pw_iso(ended_at), 'value', value, 'threshold', threshold, 'details', details,
            'active', event <> 'close' AND w_cleared IS NULL, 'acknowledged', w_acked IS NOT NULL))
      FROM sel ORDER BY alert_id, n;
      RETURN NULL;
    END $f$;
    DO $d$ BEGIN
      IF to_regclass('alert_events') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'alert_events_hook') THEN
        CREATE TRIGGER alert_events_hook AFTER INSERT ON alert_events REFERENCING NEW TABLE AS new_rows
          FOR EACH STATEMENT EXECUTE FUNCTION pw_alert_event_hook();
      END IF;
    END $d$;

    -- People's acknowledge, assign, unassign, comment and clear (alarms.ts writes the workflow row first).
    CREATE FUNCTION pw_alert_audit_hook() RETURNS trigger LANGUAGE plpgsql AS $f$
    DECLARE
      a_body jsonb;
      a_kind text; a_entity text; a_profile text; a_type text; a_severity text;
      w_assignee text;
    BEGIN
      SELECT a.kind, a.entity, a.profile, a.type, a.severity, w.assignee,
          jsonb_build_object('alertId', a.alert_id, 'kind', a.kind, 'entity', a.entity, 'profile', a.profile,
            'type', a.type, 'severity', a.severity, 'explanation', a.explanation, 'startedAt', pw_iso(a.started_at),
            'endedAt', pw_iso(a.ended_at), 'value', a.value, 'threshold', a.threshold, 'details', a.details,
            'active', a.state = 'open' AND w.cleared_at IS NULL, 'acknowledged', w.acknowledged_at IS NOT NULL)
        INTO a_kind, a_entity, a_profile, a_type, a_severity, w_assignee, a_body
        FROM alerts a LEFT JOIN alert_workflow w ON w.alert_id = a.alert_id WHERE a.alert_id = NEW.alert_id;
      IF NOT FOUND THEN RETURN NULL; END IF;
      PERFORM pw_notify_enqueue(NEW.alert_id, a_kind, a_entity, a_profile, a_type, a_severity, NEW.action, NULL,
        jsonb_build_object('event', NEW.action, 'at', pw_iso(NEW.at), 'by', NEW.actor, 'byType', NEW.actor_type,
          'comment', NEW.comment, 'assignee', w_assignee, 'alert', a_body));
      RETURN NULL;
    END $f$;
    CREATE TRIGGER alert_audit_notify AFTER INSERT ON alert_audit FOR EACH ROW EXECUTE FUNCTION pw_alert_audit_hook();`,
  },
  {
    // Operator site commands (site-commands.ts): every failover/failback asked through the gateway, with who,
    // when, why and what the site controller answered (accepted with its operation id, busy, unreachable).
    version: 8,
    sql: `CREATE TABLE site_command_audit (
      id          bigserial PRIMARY KEY,
      at          timestamptz NOT NULL DEFAULT now(),
      site        text NOT NULL,
      command     text NOT NULL CHECK (command IN ('failover', 'failback')),
      actor       text NOT NULL,
      actor_type  text NOT NULL,
      reason      text NOT NULL,
      outcome     text NOT NULL CHECK (outcome IN ('accepted', 'busy', 'refused', 'unreachable')),
      operation   text,
      detail      text
    );
    CREATE INDEX site_command_audit_at ON site_command_audit (at DESC);`,
  },
]

/** Applies the migrations not yet recorded in gw_schema_migrations, each in its own transaction. */
export async function migrate(pool: pg.Pool): Promise<number[]> {
  const c = await pool.connect()
  const applied: number[] = []
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    try {
      await c.query(
        'CREATE TABLE IF NOT EXISTS gw_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      )
      const done = new Set(
        (await c.query<{ version: number }>('SELECT version FROM gw_schema_migrations')).rows.map((r) => r.version),
      )
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue
        await c.query('BEGIN')
        try {
          await c.query(m.sql)
          await c.query('INSERT INTO gw_schema_migrations (version) VALUES ($1)', [m.version])
          await c.query('COMMIT')
        } catch (err) {
          await c.query('ROLLBACK')
          throw err
        }
        applied.push(m.version)
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
    }
  } finally {
    c.release()
  }
  return applied
}

export interface StoredCredential {
  id: string
  kind: EntityKind
  entity: string
  secretHash: string
  revoked: boolean
}

export interface IssuedCredential {
  id: string
  kind: EntityKind
  entity: string
  /** `<id>.<secret>`: returned once, never stored. */
  token: string
  createdAt: string
}

const hashSecret = (salt: Buffer, secret: string): Buffer => createHmac('sha256', salt).update(secret).digest()
/** bcrypt cost of the MQTT hash: nats-server pays it once per MQTT connection, the gateway once per issue. */
const MQTT_BCRYPT_COST = 10

/** Whether `secret` matches a stored `hmac-sha256:<salt hex>:<hash hex>`, in constant time. */
export function secretMatches(stored: string, secret: string): boolean {
  const [scheme, saltHex, hashHex] = stored.split(':')
  if (scheme !== 'hmac-sha256' || saltHex === undefined || hashHex === undefined) return false
  const expected = Buffer.from(hashHex, 'hex')
  const got = hashSecret(Buffer.from(saltHex, 'hex'), secret)
  return expected.length === got.length && timingSafeEqual(expected, got)
}

/** Issues a new credential; earlier ones of the entity stay valid until revoked (rotation without downtime). */
export async function issueCredential(pool: pg.Pool, kind: EntityKind, entity: string): Promise<IssuedCredential> {
  const id = `dc_${randomBytes(12).toString('hex')}`
  const secret = randomBytes(32).toString('base64url')
  const salt = randomBytes(16)
  const stored = `hmac-sha256:${salt.toString('hex')}:${hashSecret(salt, secret).toString('hex')}`
  const mqttHash = await bcrypt.hash(secret, MQTT_BCRYPT_COST)
  const r = await pool.query<{ created_at: Date }>(
    'INSERT INTO device_credentials (id, kind, entity, secret_hash, mqtt_hash) VALUES ($1, $2, $3, $4, $5) RETURNING created_at',
    [id, kind, entity, stored, mqttHash],
  )
  return { id, kind, entity, token: `${id}.${secret}`, createdAt: (r.rows[0]?.created_at ?? new Date()).toISOString() }
}

/** Revokes a credential; false when there is no such credential (or it was revoked before). */
export async function revokeCredential(pool: pg.Pool, id: string): Promise<boolean> {
  const r = await pool.query('UPDATE device_credentials SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [
    id,
  ])
  return (r.rowCount ?? 0) > 0
}

export async function loadCredential(pool: pg.Pool, id: string): Promise<StoredCredential | undefined> {
  const r = await pool.query<{
    id: string
    kind: EntityKind
    entity: string
    secret_hash: string
    revoked_at: Date | null
  }>('SELECT id, kind, entity, secret_hash, revoked_at FROM device_credentials WHERE id = $1', [id])
  const row = r.rows[0]
  return (
    row && {
      id: row.id,
      kind: row.kind,
      entity: row.entity,
      secretHash: row.secret_hash,
      revoked: row.revoked_at !== null,
    }
  )
}

/** An active credential as nats-server needs it: MQTT username (the credential id), bcrypt hash, entity. */
export interface MqttCredential {
  id: string
  kind: EntityKind
  entity: string
  /** bcrypt of the secret; null for credentials issued before migration 3 (not usable over MQTT). */
  mqttHash: string | null
}

/** Every active (not revoked) credential, in id order. */
export async function activeCredentials(pool: pg.Pool): Promise<MqttCredential[]> {
  const r = await pool.query<{ id: string; kind: EntityKind; entity: string; mqtt_hash: string | null }>(
    'SELECT id, kind, entity, mqtt_hash FROM device_credentials WHERE revoked_at IS NULL ORDER BY id',
  )
  return r.rows.map((row) => ({ id: row.id, kind: row.kind, entity: row.entity, mqttHash: row.mqtt_hash }))
}
