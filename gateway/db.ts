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
]

/** Applies the migrations not yet recorded in gw_schema_migrations, each in its own transaction. */
export async function migrate(pool: pg.Pool): Promise<number[]> {
  const c = await pool.connect()
  const applied: number[] = []
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    try {
      await c.query('CREATE TABLE IF NOT EXISTS gw_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
      const done = new Set((await c.query<{ version: number }>('SELECT version FROM gw_schema_migrations')).rows.map((r) => r.version))
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
    'INSERT INTO device_credentials (id, kind, entity, secret_hash, mqtt_hash) VALUES ($1, $2, $3, $4, $5) RETURNING created_at', [id, kind, entity, stored, mqttHash])
  return { id, kind, entity, token: `${id}.${secret}`, createdAt: (r.rows[0]?.created_at ?? new Date()).toISOString() }
}

/** Revokes a credential; false when there is no such credential (or it was revoked before). */
export async function revokeCredential(pool: pg.Pool, id: string): Promise<boolean> {
  const r = await pool.query('UPDATE device_credentials SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id])
  return (r.rowCount ?? 0) > 0
}

export async function loadCredential(pool: pg.Pool, id: string): Promise<StoredCredential | undefined> {
  const r = await pool.query<{ id: string; kind: EntityKind; entity: string; secret_hash: string; revoked_at: Date | null }>(
    'SELECT id, kind, entity, secret_hash, revoked_at FROM device_credentials WHERE id = $1', [id])
  const row = r.rows[0]
  return row && { id: row.id, kind: row.kind, entity: row.entity, secretHash: row.secret_hash, revoked: row.revoked_at !== null }
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
    'SELECT id, kind, entity, mqtt_hash FROM device_credentials WHERE revoked_at IS NULL ORDER BY id')
  return r.rows.map((row) => ({ id: row.id, kind: row.kind, entity: row.entity, mqttHash: row.mqtt_hash }))
}
