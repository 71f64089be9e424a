/**
 * Applies the schema migrations in order, each in its own transaction, and records them in
 * `schema_migrations`. A session advisory lock serialises concurrent callers (two projectors starting at
 * once): the second waits, then finds nothing left to do.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { ConfigError } from '../actors/mod.js'
import { PG_SETTING, withClient } from './db.js'
import { MIGRATIONS, TABLES, type Migration } from './schema.js'

// Names "pitwall schema migration" among this database's advisory locks (an arbitrary constant).
const MIGRATION_LOCK_KEY = 7_146_283_001

export interface MigrateResult {
  /** Versions applied by this call, in order. */
  applied: number[]
  /** Highest version now recorded. */
  current: number
}

/** Brings the database at `pool` up to the latest schema; safe to run concurrently and repeatedly. */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  checkOrder(migrations)
  // If anything fails, withClient destroys the session, which also aborts its transaction and frees the lock.
  return await withClient(pool, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    const result = await applyPending(client, migrations)
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    return result
  })
}

async function applyPending(client: pg.PoolClient, migrations: readonly Migration[]): Promise<MigrateResult> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${TABLES.migrations} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`)
  const done = new Map<number, string>()
  const res = await client.query<{ version: number; checksum: string }>(
    `SELECT version, checksum FROM ${TABLES.migrations}`,
  )
  for (const r of res.rows) done.set(r.version, r.checksum)

  const applied: number[] = []
  for (const m of migrations) {
    const sum = checksum(m.sql)
    const recorded = done.get(m.version)
    if (recorded !== undefined) {
      if (recorded !== sum) {
        throw new ConfigError(
          PG_SETTING,
          `migration ${m.version} (${m.name}) was applied with different SQL ` +
            `(checksum ${recorded}, this build has ${sum}); add a new migration instead of editing an applied one`,
        )
      }
      continue
    }
    await client.query('BEGIN')
    await client.query(m.sql)
    await client.query(`INSERT INTO ${TABLES.migrations} (version, name, checksum) VALUES ($1, $2, $3)`, [
      m.version,
      m.name,
      sum,
    ])
    await client.query('COMMIT')
    applied.push(m.version)
    done.set(m.version, sum)
  }
  // Versions this build does not know (a newer build migrated) are left alone: migrations only add.
  return { applied, current: Math.max(0, ...done.keys()) }
}

function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex').slice(0, 16)
}

function checkOrder(migrations: readonly Migration[]): void {
  let prev = 0
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= prev) {
      throw new ConfigError(
        'projector.migrations',
        `versions must be increasing integers; ${m.version} (${m.name}) ` + `follows ${prev}`,
      )
    }
    prev = m.version
  }
}
