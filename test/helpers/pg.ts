/**
 * A fresh PostgreSQL database per test on the server at PGHOST/PGPORT (default 127.0.0.1:5432, trust auth),
 * dropped afterwards. `url` is a connection string for it.
 */
import pg from 'pg'
import { randomBytes } from 'node:crypto'

export interface TestDb {
  url: string
  name: string
  drop(): Promise<void>
}

export function adminUrl(): string {
  const host = process.env.PGHOST ?? '127.0.0.1'
  const port = process.env.PGPORT ?? '5432'
  const user = process.env.PGUSER ?? 'postgres'
  return `postgres://${user}@${host}:${port}/${process.env.PGDATABASE ?? 'test'}`
}

export async function createTestDb(): Promise<TestDb> {
  const name = `pw_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl() })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const u = new URL(adminUrl())
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl() })
      await c.connect()
      try {
        // Give connections that are still closing (pools ended a moment ago) time to go; FORCE only as a last
        // resort, since it kills sessions whose clients then report errors into whatever test runs next.
        for (let i = 0; ; i++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name}`)
            break
          } catch (err) {
            if ((err as { code?: string }).code !== '55006' || i >= 30) {
              await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
              break
            }
            await new Promise((r) => setTimeout(r, 100))
          }
        }
      } finally {
        await c.end()
      }
    },
  }
}
