/**
 * Placement: which worker owns which partition.
 *
 * - Membership: every worker publishes a heartbeat on `pw.<site>.hb.<worker>` each `heartbeatMs`; a worker is
 *   live while its last heartbeat is younger than 3 heartbeats. A draining worker announces it and drops out.
 * - Assignment: rendezvous (highest random weight) hashing of (worker, partition) over the live set, so a join
 *   or leave moves only the partitions that must move (about P/N).
 * - Ownership: a partition record in the state bucket, key `part.<p>`, written only with compare-and-set on its
 *   KV revision. Acquiring bumps the fencing `token`; checkpoints and renewals are CAS writes from the owner's
 *   last revision, so any write by a stale owner fails. A record is free when released (owner null) or
 *   expired (renewedAt + ttl < now; clocks of one site are assumed within a fraction of the TTL).
 */
import type { KV } from '@nats-io/kv'
import { FencedError } from './errors.js'
import type { Segment } from './sitemap.js'
import { exportKey, partitionKey } from './subjects.js'

export interface PartitionRecord {
  owner: string | null
  /** Fencing token: bumped on every acquisition, never decreases. */
  token: number
  /**
   * Last position whose effects are checkpointed (0 = none). In epoch 0 a position is the TLM stream
   * sequence; see actors/sitemap.ts for positions across sites.
   */
  cursor: number
  renewedAt: number
  ttlMs: number
  /** Processing-time timers of passivated actors: entity key (`kind.id`) -> due time. */
  dormant?: Record<string, number>
  /**
   * Recent claims as [token, KV revision of the acquiring write]. A snapshot with token t written at revision
   * r is stale when some claim has token > t and revision < r: an older owner wrote it after being replaced.
   */
  claims?: Array<[number, number]>
  /** Epoch of this site's tenure of the partition (two sites; absent = 0). */
  epoch?: number
  /** The partition's input chain (absent = one segment: this site's TLM from the start). */
  segments?: Segment[]
}

export interface HeldRecord {
  record: PartitionRecord
  revision: number
}

/** FNV-1a 32 of a string, used for rendezvous weights. */
function fnv(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  // Final avalanche (murmur3 fmix32) so nearby inputs spread well.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b) >>> 0
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35) >>> 0
  h ^= h >>> 16
  return h >>> 0
}

/**
 * Rendezvous hashing with bounded load: each partition goes to the live worker with the highest weight that
 * still has room (floor(P/N) each, P mod N of them one more). Plain rendezvous leaves 48 partitions over 3 workers
 * as unevenly as 20/18/10; the bound keeps it within one partition while moving little on a join or leave.
 * Every worker computes the same table from the same live set.
 */
export function placementTable(partitions: number, workers: readonly string[]): string[] {
  const sorted = [...workers].sort()
  if (sorted.length === 0) return []
  // Loads end in {base, base + 1}: only `extra` workers may take a (base + 1)th partition.
  const base = Math.floor(partitions / sorted.length)
  let extra = partitions % sorted.length
  const load = new Map<string, number>()
  const out: string[] = []
  for (let p = 0; p < partitions; p++) {
    const ranked = sorted
      .map((w) => ({ w, weight: fnv(`${w}/${p}`) }))
      .sort((a, b) => b.weight - a.weight || (a.w < b.w ? -1 : 1))
    const pick = ranked.find((r) => (load.get(r.w) ?? 0) < base || ((load.get(r.w) ?? 0) === base && extra > 0)) as {
      w: string
    }
    if ((load.get(pick.w) ?? 0) === base) extra--
    load.set(pick.w, (load.get(pick.w) ?? 0) + 1)
    out.push(pick.w)
  }
  return out
}

/**
 * `placementTable` over a subset of the partitions (a site's share in a two-site deployment): the same
 * rendezvous weights per (worker, partition), bounded load over the subset. Returns partition -> worker.
 */
export function placementOf(partitions: readonly number[], workers: readonly string[]): Map<number, string> {
  const sorted = [...workers].sort()
  const out = new Map<number, string>()
  if (sorted.length === 0) return out
  const base = Math.floor(partitions.length / sorted.length)
  let extra = partitions.length % sorted.length
  const load = new Map<string, number>()
  for (const p of partitions) {
    const ranked = sorted
      .map((w) => ({ w, weight: fnv(`${w}/${p}`) }))
      .sort((a, b) => b.weight - a.weight || (a.w < b.w ? -1 : 1))
    const pick = ranked.find((r) => (load.get(r.w) ?? 0) < base || ((load.get(r.w) ?? 0) === base && extra > 0)) as {
      w: string
    }
    if ((load.get(pick.w) ?? 0) === base) extra--
    load.set(pick.w, (load.get(pick.w) ?? 0) + 1)
    out.set(p, pick.w)
  }
  return out
}

/** The owner of one partition among `workers`. */
export function ownerFor(partition: number, partitions: number, workers: readonly string[]): string | undefined {
  return placementTable(partitions, workers)[partition]
}

/** The partitions assigned to `worker` among `workers`. */
export function assignment(partitions: number, workers: readonly string[], worker: string): number[] {
  const out: number[] = []
  placementTable(partitions, workers).forEach((w, p) => {
    if (w === worker) out.push(p)
  })
  return out
}

/** True when a write with `token` at KV `revision` came from an owner that a newer claim had already replaced. */
export function isStaleWrite(
  claims: ReadonlyArray<readonly [number, number]>,
  token: number,
  revision: number,
): boolean {
  return claims.some(([t, r]) => t > token && r < revision)
}

export function isFree(r: PartitionRecord | undefined, now: number): boolean {
  return !r || r.owner === null || r.renewedAt + r.ttlMs < now
}

function decode(value: Uint8Array): PartitionRecord {
  return JSON.parse(new TextDecoder().decode(value)) as PartitionRecord
}
const enc = (r: PartitionRecord): string => JSON.stringify(r)

/** Reads the record of a partition (undefined when never written). */
export async function readRecord(kv: KV, partition: number): Promise<HeldRecord | undefined> {
  const e = await kv.get(partitionKey(partition))
  if (!e || e.operation !== 'PUT') return undefined
  return { record: decode(e.value), revision: e.revision }
}

/**
 * Tries to take a free partition: CAS from the revision read, with token + 1. Returns the held record, or
 * undefined when it is not free or someone else won the race.
 */
export async function tryAcquire(
  kv: KV,
  partition: number,
  worker: string,
  ttlMs: number,
  now = Date.now(),
  gate: { minEpoch: number; slot: { index: number; stride: number }; exportCopy?: boolean } = {
    minEpoch: 0,
    slot: { index: 0, stride: 1 },
  },
): Promise<HeldRecord | undefined> {
  const cur = await readRecord(kv, partition)
  if (cur && !isFree(cur.record, now)) return undefined
  // Two sites: the record must belong to the current tenure (the controller writes it when the site takes over).
  if ((cur?.record.epoch ?? 0) < gate.minEpoch) return undefined
  let token = (cur?.record.token ?? 0) + 1
  while (token % gate.slot.stride !== gate.slot.index) token++
  const record: PartitionRecord = {
    owner: worker,
    token,
    cursor: cur?.record.cursor ?? 0,
    renewedAt: now,
    ttlMs,
  }
  if (cur?.record.dormant) record.dormant = cur.record.dormant
  if (cur?.record.claims) record.claims = cur.record.claims
  if (cur?.record.epoch !== undefined) record.epoch = cur.record.epoch
  if (cur?.record.segments) record.segments = cur.record.segments
  try {
    const revision = cur
      ? await kv.update(partitionKey(partition), enc(record), cur.revision)
      : await kv.create(partitionKey(partition), enc(record))
    if (gate.exportCopy) await kv.put(exportKey(partitionKey(partition)), enc(record))
    return { record, revision }
  } catch (err) {
    if (isCasConflict(err)) return undefined
    throw err
  }
}

/** True when a KV create/update failed because the revision moved (another writer won). */
export function isCasConflict(err: unknown): boolean {
  const msg = err instanceof Error ? `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}` : String(err)
  return /wrong last sequence|key exists|10071/.test(msg)
}

/**
 * Writes a new version of a held record (renewal, checkpoint or release) with CAS from the held revision.
 * Throws FencedError when the revision moved: someone else owns the partition now.
 */
export async function writeHeld(
  kv: KV,
  partition: number,
  held: HeldRecord,
  next: PartitionRecord,
  exportCopy = false,
): Promise<HeldRecord> {
  try {
    const revision = await kv.update(partitionKey(partition), enc(next), held.revision)
    // After the CAS: a crash in between leaves the peer an older cursor, which replay makes good.
    if (exportCopy) await kv.put(exportKey(partitionKey(partition)), enc(next))
    return { record: next, revision }
  } catch (err) {
    if (isCasConflict(err)) {
      throw new FencedError(
        `partition ${partition}: record moved past revision ${held.revision} (token ${held.record.token}); ownership lost`,
        err,
      )
    }
    throw err
  }
}
