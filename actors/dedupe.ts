/**
 * Reading ids (`rid`) an actor applied recently, so a re-sent reading is applied once per entity whatever path
 * re-sent it: an MQTT QoS 1 redelivery, a device retry after a reconnect, an HTTP retry after JetStream's
 * two-minute duplicate window, a re-send acked at the other site after a failover. JetStream's own window knows
 * one stream and two minutes; this set lives in the actor's snapshot, so it follows the actor through crashes,
 * rebalances, failover and failback (the peer adopts snapshots).
 *
 * Bounded by event time and by count, both deterministic functions of the log (replays rebuild the same set):
 * - `horizonMs`: ids whose reading is older than the actor's newest event time minus the horizon are dropped;
 * - `maxIds`: above it the oldest ids (by event time) are dropped, down to 3/4 of it (batched, so the cost of
 *   sorting is paid once per maxIds/4 readings, not per reading).
 * `floor` is the event time at or below which the set is no longer complete: a rid not in the set with a reading
 * at or below the floor may have been applied before, so it is "unverifiable" (applied and counted, never silent).
 *
 * Memory: nothing for actors whose readings carry no rid (the cell holds `undefined`); with rids, 16 bytes per
 * retained id: ids are kept as 52-bit hashes beside their event times in one Float64Array (a Map of strings cost
 * ~80 bytes an id: 6.8 KB for an environment sensor's 10 minutes of ids, `node --expose-gc dist/bench/memory.js`).
 * Two different rids of one entity hashing alike (~n^2 / 2^53 for n ids held: 10^-11 at 256) would drop the
 * second as a duplicate; a device can only collide with its own readings.
 */

export interface DedupeLimits {
  /** Event-time span (ms) behind the actor's newest reading within which re-sends are always recognised. */
  readonly horizonMs: number
  /** Most ids kept per actor; the oldest by event time go first. */
  readonly maxIds: number
}

export const DEFAULT_DEDUPE: DedupeLimits = Object.freeze({ horizonMs: 600_000, maxIds: 256 })

/** What happened to one reading (ActorCell.applyReading). */
export const ReadingOutcome = {
  /** Applied; its rid is recorded. */
  APPLIED: 'applied',
  /** Applied; it has no rid, so nothing can tell a re-send of it (at-least-once, as before rids). */
  NO_RID: 'no-rid',
  /** Applied; its rid is not in the set but its event time is at or below the floor, so it may be a re-send. */
  UNVERIFIABLE: 'unverifiable',
  /** Not applied: the actor applied this rid already. */
  DUPLICATE: 'duplicate',
  /** Not applied: the stream position was applied already (a replay after a crash or move). */
  REPLAY: 'replay',
} as const
export type ReadingOutcome = (typeof ReadingOutcome)[keyof typeof ReadingOutcome]

/** Snapshot form: `f` floor (null = -Infinity), id hashes (`ridHash`) and their event times in insertion order. */
export interface RecentIdsRecord {
  f: number | null
  h: number[]
  ts: number[]
}

/** murmur3's 32-bit finaliser: every input bit affects every output bit. */
function fmix(x: number): number {
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}

/** A 52-bit hash of a reading id (two independent 32-bit FNV-1a style lanes, finalised), exact as a double. */
export function ridHash(rid: string): number {
  let a = 0x811c9dc5
  let b = 0x2b992ddf
  for (let i = 0; i < rid.length; i++) {
    const c = rid.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  return fmix(a) * 2 ** 20 + (fmix(b) >>> 12)
}

export class RecentIds {
  /** Interleaved (hash, event time) pairs; `n` pairs in use, in insertion order. */
  private a: Float64Array
  private n = 0
  /** Every applied rid whose reading's event time is above this is held. */
  private floor = -Infinity
  private lastRid: string | undefined
  private lastHash = 0

  constructor(capacity = 8) {
    this.a = new Float64Array(2 * capacity)
  }

  static restore(rec: RecentIdsRecord): RecentIds {
    const r = new RecentIds(Math.max(8, rec.h.length))
    r.floor = rec.f ?? -Infinity
    for (let i = 0; i < rec.h.length; i++) {
      r.a[2 * i] = rec.h[i] as number
      r.a[2 * i + 1] = rec.ts[i] as number
    }
    r.n = rec.h.length
    return r
  }

  get size(): number {
    return this.n
  }

  private hash(rid: string): number {
    if (rid !== this.lastRid) {
      this.lastRid = rid
      this.lastHash = ridHash(rid)
    }
    return this.lastHash
  }

  private has(h: number): boolean {
    const a = this.a
    for (let i = 0, end = 2 * this.n; i < end; i += 2) if (a[i] === h) return true
    return false
  }

  /**
   * Duplicate (rid seen), unverifiable (not seen, but at or below what the set still covers) or new. `newest` is
   * the actor's newest event time before this reading.
   */
  check(rid: string, ts: number, newest: number, limits: DedupeLimits): 'duplicate' | 'unverifiable' | 'new' {
    if (this.has(this.hash(rid))) return 'duplicate'
    return ts <= Math.max(this.floor, newest - limits.horizonMs) ? 'unverifiable' : 'new'
  }

  /** Records an applied rid; prunes once the count passes `maxIds`. `newest` includes this reading. */
  add(rid: string, ts: number, newest: number, limits: DedupeLimits): void {
    if (2 * this.n === this.a.length) {
      const grown = new Float64Array(this.a.length * 2)
      grown.set(this.a)
      this.a = grown
    }
    this.a[2 * this.n] = this.hash(rid)
    this.a[2 * this.n + 1] = ts
    this.n++
    if (this.n > limits.maxIds) this.prune(newest, limits)
  }

  /** Keeps the pairs whose event time is above `cut`, in order. */
  private keepAbove(cut: number): void {
    const a = this.a
    let w = 0
    for (let i = 0; i < this.n; i++) {
      if ((a[2 * i + 1] as number) > cut) {
        a[2 * w] = a[2 * i] as number
        a[2 * w + 1] = a[2 * i + 1] as number
        w++
      }
    }
    this.n = w
  }

  private prune(newest: number, limits: DedupeLimits): void {
    const cut = newest - limits.horizonMs
    if (cut > this.floor) {
      this.floor = cut
      this.keepAbove(cut)
    }
    const keep = Math.floor((limits.maxIds * 3) / 4)
    if (this.n <= keep) return
    const byTs = new Float64Array(this.n)
    for (let i = 0; i < this.n; i++) byTs[i] = this.a[2 * i + 1] as number
    byTs.sort()
    // Everything at or below the (size - keep)-th oldest event time goes, so the floor stays exact.
    const drop = byTs[this.n - keep - 1] as number
    this.keepAbove(drop)
    if (drop > this.floor) this.floor = drop
  }

  record(): RecentIdsRecord {
    const h: number[] = []
    const ts: number[] = []
    for (let i = 0; i < this.n; i++) {
      h.push(this.a[2 * i] as number)
      ts.push(this.a[2 * i + 1] as number)
    }
    return { f: Number.isFinite(this.floor) ? this.floor : null, h, ts }
  }
}
