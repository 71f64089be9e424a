/**
 * Snapshot prefetch for a partition that is starting: the latest snapshot of every actor of the partition, read in
 * one pass (a consumer delivering the last message per subject) instead of one request per actor on its first
 * reading. A worker that takes over a partition after a crash, a failover or a failback replays a backlog in
 * which hundreds of actors activate one after the other; a request per activation (two with a peer site: our
 * bucket and our mirror of the peer's) made the replay wait on round trips, seconds per partition on a busy
 * machine (bench:failover, docs/sites.md).
 *
 * Valid only for what was there when the partition started: a key is answered from the prefetch once, on its
 * actor's first activation; after that the actor's own writes are the truth and reads go to the bucket again.
 * Only this partition's owner writes its snapshots (fenced by token), so nothing else changes them meanwhile;
 * the peer's mirrored snapshots only change before a move, which waits for them (actors/handover.ts).
 * Bounded: past `maxEntries` keys or `maxBytes` bytes the prefetch stops and every miss goes to the bucket.
 */
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { nanos } from '@nats-io/transport-node'

export interface PrefetchedEntry {
  data: Uint8Array
  /** Stream sequence of the message (the KV revision, for our own bucket). */
  seq: number
  /** KV-Operation header: DEL or PURGE for a deleted key, undefined for a put. */
  op: string | undefined
}

/** What the prefetch knows of a key: its entry, known absent, or not known (ask the bucket). */
export type Lookup = { found: PrefetchedEntry } | 'absent' | 'unknown'

export interface PrefetchLimits {
  maxEntries: number
  maxBytes: number
}

export const DEFAULT_PREFETCH_LIMITS: PrefetchLimits = { maxEntries: 50_000, maxBytes: 64 * 1024 * 1024 }

export class SnapshotPrefetch {
  private readonly taken = new Set<string>()
  constructor(
    private readonly entries: Map<string, PrefetchedEntry>,
    readonly complete: boolean,
    readonly bytes: number,
  ) {}

  static empty(): SnapshotPrefetch {
    return new SnapshotPrefetch(new Map(), false, 0)
  }

  get size(): number {
    return this.entries.size
  }

  /** The entries not taken yet (a copy). */
  pending(): Array<[string, PrefetchedEntry]> {
    return [...this.entries]
  }

  /** Whether `subject` has an entry not taken yet. */
  has(subject: string): boolean {
    return this.entries.has(subject)
  }

  /** The prefetched state of `subject`, once per key; later lookups of the same key say 'unknown'. */
  take(subject: string): Lookup {
    if (this.taken.has(subject)) return 'unknown'
    this.taken.add(subject)
    const e = this.entries.get(subject)
    if (e) {
      this.entries.delete(subject)
      return { found: e }
    }
    return this.complete ? 'absent' : 'unknown'
  }
}

/**
 * Reads the last message of every subject under `filter` in `stream`. An incomplete result (limits reached,
 * stream missing, an error) is still correct for the keys it holds; the caller asks the bucket for the rest.
 */
export async function prefetchLastPerSubject(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  limits: PrefetchLimits = DEFAULT_PREFETCH_LIMITS,
): Promise<SnapshotPrefetch> {
  let name: string | undefined
  try {
    const ci = await jsm.consumers.add(stream, {
      filter_subject: filter,
      deliver_policy: DeliverPolicy.LastPerSubject,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(30_000),
      mem_storage: true,
    })
    name = ci.name
    let left = ci.num_pending
    const entries = new Map<string, PrefetchedEntry>()
    if (left === 0) return new SnapshotPrefetch(entries, true, 0)
    const consumer = await js.consumers.get(stream, name)
    let bytes = 0
    while (left > 0) {
      if (entries.size >= limits.maxEntries || bytes >= limits.maxBytes)
        return new SnapshotPrefetch(entries, false, bytes)
      const batch = await consumer.fetch({ max_messages: Math.min(left, 1_000), expires: 2_000 })
      let got = 0
      for await (const m of batch) {
        got++
        entries.set(m.subject, { data: m.data, seq: m.seq, op: m.headers?.get('KV-Operation') || undefined })
        bytes += m.data.length
        left = m.info.pending
        if (left === 0) break
      }
      // Nothing within the fetch's expiry: the server is slow or gone; what we have is still right.
      if (got === 0) return new SnapshotPrefetch(entries, false, bytes)
    }
    return new SnapshotPrefetch(entries, true, bytes)
  } catch {
    return SnapshotPrefetch.empty()
  } finally {
    if (name) void jsm.consumers.delete(stream, name).catch(() => undefined)
  }
}
