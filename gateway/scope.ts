/**
 * People scoping: a person's JWT may carry `fleets` (customer ids) and `sites` (site ids). A scoped person sees
 * an entity when it is a registered sensor whose customer is in `fleets` or whose site is in `sites`, or a
 * registered vehicle whose customer is in `fleets`; nothing else (unregistered entities included). Admins,
 * service keys, devices and people without either claim are unrestricted. Lists leave out what is not visible;
 * a route naming one invisible entity answers 404 GW_ERR_NOT_FOUND, as if it did not exist (no existence leak).
 */
import type pg from 'pg'
import type { Principal } from './auth.js'
import { GatewayError } from './errors.js'

/** What a scoped person may see; `null` is everything. */
export interface Scope {
  readonly fleets: readonly string[]
  readonly sites: readonly string[]
}

/** The scope of a caller, or null when unrestricted. */
export function scopeOf(p: Principal | null): Scope | null {
  if (!p || p.type !== 'user' || p.role === 'admin') return null
  if (p.fleets === undefined && p.sites === undefined) return null
  return { fleets: p.fleets ?? [], sites: p.sites ?? [] }
}

/** Parameter collector: `p(v)` appends a value and returns its `$n` placeholder. */
export class Params {
  readonly values: unknown[] = []
  p(v: unknown): string {
    this.values.push(v)
    return `$${this.values.length}`
  }
}

/** SQL condition: the row's (kind, entity) columns name an entity the scope sees (`TRUE` when unrestricted). */
export function scopeSql(scope: Scope | null, kindCol: string, entityCol: string, q: Params): string {
  if (!scope) return 'TRUE'
  const f = q.p(scope.fleets)
  const s = q.p(scope.sites)
  return (
    `(EXISTS (SELECT 1 FROM sensors sc WHERE ${kindCol} = 'sensor' AND sc.id = ${entityCol} AND (sc.customer_id = ANY(${f}::text[]) OR sc.site = ANY(${s}::text[])))` +
    ` OR EXISTS (SELECT 1 FROM vehicles vc WHERE ${kindCol} = 'vehicle' AND vc.vin = ${entityCol} AND vc.customer_id = ANY(${f}::text[])))`
  )
}

/** Throws 404 GW_ERR_NOT_FOUND unless the scope sees this entity; `item` names the parameter that named it. */
export async function assertVisible(
  pool: pg.Pool,
  scope: Scope | null,
  kind: string,
  id: string,
  item = 'params.id',
): Promise<void> {
  if (!scope) return
  const q = new Params()
  const cond = scopeSql(scope, q.p(kind), q.p(id), q)
  const r = await pool.query<{ ok: boolean }>(`SELECT ${cond} AS ok`, q.values)
  if (r.rows[0]?.ok !== true) throw new GatewayError('GW_ERR_NOT_FOUND', `no ${kind} ${JSON.stringify(id)}`, { item })
}

/** Of the given entities, those the scope sees, as `kind.id` keys; one query for a whole batch. */
export async function visibleEntities(
  pool: pg.Pool,
  scope: Scope,
  entities: Iterable<{ kind: string; id: string }>,
): Promise<Set<string>> {
  const kinds: string[] = []
  const ids: string[] = []
  const seen = new Set<string>()
  for (const e of entities) {
    const key = `${e.kind}.${e.id}`
    if (seen.has(key)) continue
    seen.add(key)
    kinds.push(e.kind)
    ids.push(e.id)
  }
  if (kinds.length === 0) return new Set()
  const q = new Params()
  const k = q.p(kinds)
  const i = q.p(ids)
  const r = await pool.query<{ k: string; e: string }>(
    `SELECT t.k, t.e FROM unnest(${k}::text[], ${i}::text[]) AS t(k, e) WHERE ${scopeSql(scope, 't.k', 't.e', q)}`,
    q.values,
  )
  return new Set(r.rows.map((row) => `${row.k}.${row.e}`))
}
