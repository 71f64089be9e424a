/**
 * Reference data for actors (today: the geofence set and the out-of-service set, actors/service.ts), delivered at run time through a NATS KV bucket
 * (`streams.refBucket`, default `pw_refs`) that the gateway writes and every worker watches: a change needs no
 * restart. One key per name; the bucket keeps the last REF_HISTORY revisions of each.
 *
 * Which version applies to a message (replay determinism): revision r of a name applies from
 * `effectiveAt(r) = created(r) + refActivationMs`, where `created` is the KV entry's JetStream timestamp, the same
 * clock as a message's processing time. A message at processing time T sees the newest revision with
 * effectiveAt <= T. That is a function of the input log and the stored revisions, so a replay after a crash or a
 * partition move sees the same version, provided the handling worker had received the revision by then: the
 * activation delay (default 2 s) is that margin. A worker whose watch lags by more than the delay may evaluate a
 * few readings against the previous version (the road profile records the version it applied, in its snapshot
 * and in each geofence output, so this is visible). Replaying further back than the oldest kept revision uses the
 * oldest kept revision.
 */
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { ReferenceLookup, ReferenceVersion } from './actor.js'
import { GEOFENCES_REF, validateGeofenceSet } from './geo.js'
import { SERVICE_REF, validateServiceSet } from './service.js'
import type { LogFn } from './log.js'

/** Revisions kept per name (the KV maximum). */
export const REF_HISTORY = 64

/** Validators per reference name: a revision they reject is logged and skipped (the previous one stays). */
const VALIDATORS: Readonly<Record<string, (v: unknown) => unknown>> = {
  [GEOFENCES_REF]: validateGeofenceSet,
  [SERVICE_REF]: validateServiceSet,
}

/** Opens (creating when missing) the reference bucket; the gateway and the workers both call this. */
export async function openReferenceBucket(nc: NatsConnection, bucket: string, replicas = 1): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: REF_HISTORY, replicas })
}

/** Versions per name, ordered by effectiveAt; `lookup` is the ReferenceLookup handed to actor cells. */
export class ReferenceTable {
  private readonly byName = new Map<string, ReferenceVersion[]>()
  constructor(private readonly activationMs: number) {}

  /** Adds one KV revision (idempotent per revision); returns false when its value is rejected. */
  add(name: string, revision: number, createdMs: number, value: unknown): boolean {
    const check = VALIDATORS[name]
    if (check) check(value)
    let list = this.byName.get(name)
    if (!list) this.byName.set(name, (list = []))
    if (list.some((v) => v.revision === revision)) return true
    const v: ReferenceVersion = { name, revision, effectiveAt: createdMs + this.activationMs, data: value }
    list.push(v)
    list.sort((a, b) => a.effectiveAt - b.effectiveAt || a.revision - b.revision)
    if (list.length > REF_HISTORY) list.splice(0, list.length - REF_HISTORY)
    return true
  }

  readonly lookup: ReferenceLookup = (name, procTime) => {
    const list = this.byName.get(name)
    if (!list || list.length === 0) return undefined
    // Binary search for the last version with effectiveAt <= procTime.
    let lo = 0
    let hi = list.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if ((list[mid] as ReferenceVersion).effectiveAt <= procTime) {
        found = mid
        lo = mid + 1
      } else hi = mid - 1
    }
    // Older than every kept revision: the oldest one (documented above).
    return list[found < 0 ? 0 : found]
  }

  /** The newest revision of a name (for tools and tests). */
  latest(name: string): ReferenceVersion | undefined {
    const list = this.byName.get(name)
    return list?.[list.length - 1]
  }
}

/** A ReferenceTable kept up to date from the bucket: history first, then a watch from the next revision. */
export class ReferenceStore {
  readonly table: ReferenceTable
  private stopped = false
  private watcher: { stop(): void } | undefined
  private done: Promise<void> | undefined

  private constructor(
    private readonly kv: KV,
    activationMs: number,
    private readonly log: LogFn,
  ) {
    this.table = new ReferenceTable(activationMs)
  }

  /** Loads every kept revision, then follows changes until stop(). */
  static async open(kv: KV, activationMs: number, log: LogFn): Promise<ReferenceStore> {
    const store = new ReferenceStore(kv, activationMs, log)
    let last = 0
    const hist = await kv.history({ key: '>' })
    for await (const e of hist) last = Math.max(last, store.apply(e))
    const w = await kv.watch({
      key: '>',
      include: KvWatchInclude.AllHistory,
      ...(last > 0 ? { resumeFromRevision: last + 1 } : {}),
    })
    store.watcher = w
    store.done = (async () => {
      for await (const e of w) {
        if (store.stopped) break
        store.apply(e)
      }
    })().catch((err: unknown) => {
      if (!store.stopped) log('error', 'reference watch ended', { err: String(err) })
    })
    return store
  }

  private apply(e: KvEntry): number {
    if (e.operation !== 'PUT') return e.revision
    try {
      this.table.add(e.key, e.revision, e.created.getTime(), e.json<unknown>())
      this.log('info', 'reference data revision', { name: e.key, revision: e.revision })
    } catch (err) {
      this.log('warn', 'reference data revision rejected', { name: e.key, revision: e.revision, err: String(err) })
    }
    return e.revision
  }

  readonly lookup: ReferenceLookup = (name, procTime) => this.table.lookup(name, procTime)

  async stop(): Promise<void> {
    this.stopped = true
    this.watcher?.stop()
    await this.done
  }

  get bucket(): KV {
    return this.kv
  }
}
