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
 * Memory: nothing for actors whose readings carry no rid (the cell holds `undefined`); with rids, one Map entry
 * per retained id (measured in docs/benchmarks.md, "heap per actor").
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

/** Snapshot form: `f` floor (null = -Infinity), ids and their event times in insertion order. */
export interface RecentIdsRecord {
  f: number | null
  ids: string[]
  ts: number[]
}

export class RecentIds {
  private readonly ids = new Map<string, number>()
  /** Every applied rid whose reading's event time is above this is in `ids`. */
  private floor = -Infinity

  static restore(rec: RecentIdsRecord): RecentIds {
    const r = new RecentIds()
    r.floor = rec.f ?? -Infinity
    for (let i = 0; i < rec.ids.length; i++) r.ids.set(rec.ids[i] as string, rec.ts[i] as number)
    return r
  }

  get size(): number {
    return this.ids.size
  }

  /**
   * Duplicate (rid seen), unverifiable (not seen, but at or below what the set still covers) or new. `newest` is
   * the actor's newest event time before this reading.
   */
  check(rid: string, ts: number, newest: number, limits: DedupeLimits): 'duplicate' | 'unverifiable' | 'new' {
    if (this.ids.has(rid)) return 'duplicate'
    return ts <= Math.max(this.floor, newest - limits.horizonMs) ? 'unverifiable' : 'new'
  }

  /** Records an applied rid; prunes once the count passes `maxIds`. `newest` includes this reading. */
  add(rid: string, ts: number, newest: number, limits: DedupeLimits): void {
    this.ids.set(rid, ts)
    if (this.ids.size > limits.maxIds) this.prune(newest, limits)
  }

  private prune(newest: number, limits: DedupeLimits): void {
    const cut = newest - limits.horizonMs
    if (cut > this.floor) {
      this.floor = cut
      for (const [rid, ts] of this.ids) if (ts <= cut) this.ids.delete(rid)
    }
    const keep = Math.floor(limits.maxIds * 3 / 4)
    if (this.ids.size <= keep) return
    const byTs = [...this.ids.values()].sort((a, b) => a - b)
    // Everything at or below the (size - keep)-th oldest event time goes, so the floor stays exact.
    const drop = byTs[this.ids.size - keep - 1] as number
    for (const [rid, ts] of this.ids) if (ts <= drop) this.ids.delete(rid)
    if (drop > this.floor) this.floor = drop
  }

  record(): RecentIdsRecord {
    const ids: string[] = []
    const ts: number[] = []
    for (const [rid, t] of this.ids) {
      ids.push(rid)
      ts.push(t)
    }
    return { f: Number.isFinite(this.floor) ? this.floor : null, ids, ts }
  }
}
