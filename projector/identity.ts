/**
 * Which deployment a database belongs to, and which database this is (issue 13 part 4). The first projector
 * to start records its deployment in `projector_identity` (create-only); a projector of another deployment is
 * then refused with PW_DEPLOYMENT_MISMATCH before it reads or writes anything.
 *
 * The database's identity names the projector's consumer (`<durable>_<deployment>_<dbid>`), so projectors
 * writing to two databases never share a consumer on one stream (each would recreate the other's to resume
 * at its own cursor). It is a hash of what PostgreSQL itself says makes a database unique: the cluster's
 * system_identifier (fixed at initdb, kept by physical replicas, so a failover to a replica keeps the name)
 * and the database name. A dump restored elsewhere gets a new one, and with it a new consumer, which resumes
 * from the cursor restored with the rows.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { assertDeployment } from '../actors/mod.js'
import { withClient } from './db.js'
import { TABLES } from './schema.js'

export interface DatabaseIdentity {
  /** Short stable hash of (system_identifier, database name): 10 hex digits. */
  dbid: string
  /** current_database(), for messages. */
  database: string
  /** The deployment recorded in the database (this one after a first claim). */
  deployment: string
}

/** Hash of a database's identity, as used in consumer names. */
export function databaseId(systemIdentifier: string, database: string): string {
  return createHash('sha256').update(`${systemIdentifier}/${database}`).digest('hex').slice(0, 10)
}

/**
 * Records `deployment` in the database unless one is recorded, and checks the one in force (throws
 * PW_DEPLOYMENT_MISMATCH naming PITWALL_DEPLOYMENT). Needs the schema migrated (migration 3).
 */
export async function claimDatabase(pool: pg.Pool, deployment: string): Promise<DatabaseIdentity> {
  return await withClient(pool, async (client) => {
    const id = await client.query<{ sysid: string; db: string }>(
      'SELECT system_identifier::text AS sysid, current_database() AS db FROM pg_control_system()',
    )
    const { sysid, db } = id.rows[0] as { sysid: string; db: string }
    await client.query(`INSERT INTO ${TABLES.identity} (deployment) VALUES ($1) ON CONFLICT DO NOTHING`, [deployment])
    const r = await client.query<{ deployment: string }>(`SELECT deployment FROM ${TABLES.identity}`)
    const recorded = (r.rows[0] as { deployment: string }).deployment
    assertDeployment(recorded, deployment, `PostgreSQL database ${db} (table ${TABLES.identity})`)
    return { dbid: databaseId(sysid, db), database: db, deployment: recorded }
  })
}
