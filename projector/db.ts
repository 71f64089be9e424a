/** PostgreSQL plumbing shared by the projector modules: connecting with a coded error, classifying failures. */
import pg from 'pg'
import { RuntimeErrorCodes, UnreachableError } from '../actors/mod.js'

/** The setting that names the database, quoted in errors. */
export const PG_SETTING = 'pg.url (PITWALL_PG_URL)'

/** Checks a pool out; a failure to connect becomes PW_PG_UNREACHABLE naming `pg.url`. */
export async function connectPg(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect()
  } catch (err) {
    throw new UnreachableError(
      RuntimeErrorCodes.PG_UNREACHABLE,
      PG_SETTING,
      `cannot connect to PostgreSQL: ${messageOf(err)}`,
      err,
    )
  }
}

/**
 * Runs `fn` with a checked-out client and releases it; a client that failed is destroyed, not pooled.
 * While checked out, a connection lost between two queries is emitted as an 'error' event (which would
 * crash the process unheard); it is recorded instead, and the next query on the client fails with it.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await connectPg(pool)
  let lost: Error | undefined
  const onError = (err: Error): void => {
    lost = err
  }
  client.on('error', onError)
  let failed: unknown
  try {
    return await fn(client)
  } catch (err) {
    failed = err
    throw err
  } finally {
    client.off('error', onError)
    // Any failure may have left the session mid-transaction or dead: do not hand it to the next caller.
    client.release(lost ?? (failed === undefined ? undefined : asError(failed)))
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new TypeError(String(err))
}

/** A pool for a connection string (the projector's own, when the caller gives a URL rather than a pool). */
export function createPool(url: string, max = 4): pg.Pool {
  return new pg.Pool({ connectionString: url, max })
}

/**
 * Makes lost connections on `pool` reported instead of fatal; returns the undo. node-postgres emits 'error'
 * on a client whose connection drops outside a query; unheard, that crashes the process. Idle clients are
 * covered by the pool's 'error' event, and a checked-out client can get the error before its user had a
 * chance to listen (the server's goodbye can arrive in the same read as the connect's ReadyForQuery), so
 * every new client gets a listener as the pool connects it. The failed query or checkout still reports the
 * failure to the write path, which retries.
 */
export function guardPool(pool: pg.Pool, report: (err: Error) => void): () => void {
  const onConnect = (client: pg.PoolClient): void => {
    client.on('error', report)
  }
  pool.on('connect', onConnect)
  pool.on('error', report)
  return () => {
    pool.off('connect', onConnect)
    pool.off('error', report)
  }
}

/** SQLSTATE of a database error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/**
 * True when the database refused the data itself (class 22 data exception, 23 integrity violation): retrying
 * the same rows cannot help, so the offending message must be set aside. Anything else (connection loss,
 * deadlock, shutdown) is worth retrying.
 */
export function isDataError(err: unknown): boolean {
  const s = sqlState(err)
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'))
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
