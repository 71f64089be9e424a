/**
 * One actor's in-memory cell: its profile state plus what the runtime keeps for it (last applied stream
 * position, event-time clock, timers). Pure: no I/O. The partition runner feeds it messages in stream order;
 * everything it does is a function of the input log, so replays reproduce states and outputs exactly.
 */
import type { ActorContext, ActorDefinition, FiredTimer, ReferenceLookup, TimerOptions } from './actor.js'
import { DEFAULT_DEDUPE, type DedupeLimits, ReadingOutcome, RecentIds, type RecentIdsRecord } from './dedupe.js'
import { SnapshotError, RuntimeErrorCodes } from './errors.js'
import type { EntityRef, Output, OutputBodies, OutputType, Reading } from './types.js'

export interface TimerEntry {
  name: string
  domain: 'event' | 'processing'
  at: number
  periodMs?: number
  catchUp?: 'coalesce' | 'replay'
}

/** Where outputs go; the partition runner stamps site, partition and token. */
export type EmitFn = (o: Omit<Output, 'site' | 'partition' | 'token'>) => void

/** Snapshot format stored in KV (JSON). `v` is the profile codec version, `f` the runtime format version. */
export interface SnapshotRecord {
  f: 1
  profile: string
  v: number
  lastSeq: number
  maxEventTs: number | null
  timers: TimerEntry[]
  /** Fencing token of the owner that wrote it. */
  token: number
  state: unknown
  /** Reading ids applied recently (actors/dedupe.ts); absent while the actor has seen none. */
  rids?: RecentIdsRecord
}

/** Shared empty timer list: most actors hold zero or one timer, so the list is copy-on-write. */
const NO_TIMERS: TimerEntry[] = Object.freeze([]) as unknown as TimerEntry[]

type AnyDef = ActorDefinition<any, any>

/** What every actor of one profile configuration shares: held once, one pointer per cell. */
interface Profile {
  readonly def: AnyDef
  readonly config: unknown
  readonly lateness: number
  readonly dedupe: DedupeLimits
}

const profiles = new WeakMap<AnyDef, WeakMap<object, WeakMap<DedupeLimits, Profile>>>()

function profileOf(def: AnyDef, config: unknown, dedupe: DedupeLimits): Profile {
  const fresh = (): Profile => Object.freeze({ def, config, lateness: def.allowedLatenessMs(config), dedupe })
  // Non-object configurations cannot key a WeakMap: such cells keep their own (rare; tests only).
  if (config === null || (typeof config !== 'object' && typeof config !== 'function')) return fresh()
  let byConfig = profiles.get(def)
  if (!byConfig) profiles.set(def, (byConfig = new WeakMap()))
  let byLimits = byConfig.get(config)
  if (!byLimits) byConfig.set(config, (byLimits = new WeakMap()))
  let p = byLimits.get(dedupe)
  if (!p) byLimits.set(dedupe, (p = fresh()))
  return p
}

function ridsOf(entity: EntityRef, rec: RecentIdsRecord | undefined): RecentIds | undefined {
  if (rec === undefined) return undefined
  const ok =
    rec !== null &&
    typeof rec === 'object' &&
    Array.isArray(rec.h) &&
    Array.isArray(rec.ts) &&
    rec.h.length === rec.ts.length &&
    (rec.f === null || typeof rec.f === 'number') &&
    rec.h.every((h) => Number.isSafeInteger(h) && h >= 0) &&
    rec.ts.every((t) => typeof t === 'number')
  if (!ok) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_CORRUPT,
      `snapshot of ${entity.kind}/${entity.id} has a malformed reading-id set`,
    )
  }
  return RecentIds.restore(rec)
}

export class ActorCell {
  readonly entity: EntityRef
  /** Definition, configuration and lateness, shared by every cell of the same configuration object. */
  private readonly profile: Profile
  state: unknown
  /** Stream sequence of the last message applied to this actor (0 = none). */
  lastSeq = 0
  maxEventTs = -Infinity
  timers: TimerEntry[] = NO_TIMERS
  dirty = false
  /** Position of the first message applied since the last captured snapshot (meaningful while dirty). */
  dirtyFrom = 0
  /** Processing time (ms, stream timestamp) of the last message handled: drives idle passivation. */
  lastActive = 0
  /** Reading ids applied recently; created on the first reading with a rid (none: no memory). */
  private rids: RecentIds | undefined

  /** `dedupe`: limits of the reading-id set; pass one shared object (the runtime config's) for all cells. */
  constructor(
    def: AnyDef,
    config: unknown,
    entity: EntityRef,
    snap?: SnapshotRecord,
    dedupe: DedupeLimits = DEFAULT_DEDUPE,
  ) {
    this.entity = entity
    this.profile = profileOf(def, config, dedupe)
    if (snap) {
      if (snap.profile !== def.profile) {
        throw new SnapshotError(
          RuntimeErrorCodes.SNAPSHOT_CORRUPT,
          `snapshot of ${entity.kind}/${entity.id} has profile ${snap.profile}, expected ${def.profile}`,
        )
      }
      if (snap.v > def.codec.version) {
        throw new SnapshotError(
          RuntimeErrorCodes.SNAPSHOT_VERSION,
          `snapshot of ${entity.kind}/${entity.id} has codec version ${snap.v}, newer than ${def.codec.version}`,
        )
      }
      try {
        this.state = def.codec.decode(snap.state, snap.v)
      } catch (err) {
        throw new SnapshotError(
          RuntimeErrorCodes.SNAPSHOT_CORRUPT,
          `snapshot of ${entity.kind}/${entity.id} cannot be decoded`,
          err,
        )
      }
      this.lastSeq = snap.lastSeq
      this.maxEventTs = snap.maxEventTs ?? -Infinity
      this.timers = snap.timers
      this.rids = ridsOf(entity, snap.rids)
    } else {
      this.state = def.init(entity, config)
    }
  }

  get def(): AnyDef {
    return this.profile.def
  }

  get config(): unknown {
    return this.profile.config
  }

  get watermark(): number {
    return this.maxEventTs - this.profile.lateness
  }

  /** Earliest processing-time timer, or undefined. */
  nextProcTimer(): number | undefined {
    let min: number | undefined
    for (const t of this.timers) if (t.domain === 'processing' && (min === undefined || t.at < min)) min = t.at
    return min
  }

  /**
   * Applies one reading unless its stream position (`replay`) or its rid (`duplicate`) was applied already; then
   * it does nothing at all. A duplicate changes no state, so a replay meets it as a duplicate again.
   */
  applyReading(seq: number, procTime: number, reading: Reading, emit: EmitFn, refs?: ReferenceLookup): ReadingOutcome {
    if (seq <= this.lastSeq) return ReadingOutcome.REPLAY
    let outcome: ReadingOutcome = ReadingOutcome.NO_RID
    const rid = reading.rid
    if (typeof rid === 'string') {
      const limits = this.profile.dedupe
      const seen = this.rids?.check(rid, reading.ts, this.maxEventTs, limits) ?? 'new'
      if (seen === 'duplicate') return ReadingOutcome.DUPLICATE
      if (seen === 'new') {
        this.rids ??= new RecentIds()
        this.rids.add(rid, reading.ts, Math.max(this.maxEventTs, reading.ts), limits)
        outcome = ReadingOutcome.APPLIED
      } else outcome = ReadingOutcome.UNVERIFIABLE
    }
    if (reading.ts > this.maxEventTs) this.maxEventTs = reading.ts
    const ctx = this.context(seq, procTime, emit, refs)
    this.def.onReading(this.state, reading, ctx, this.config)
    this.fireDue('event', this.watermark, ctx)
    this.fireDue('processing', procTime, ctx)
    this.lastSeq = seq
    this.lastActive = procTime
    this.markDirty(seq)
    return outcome
  }

  /** Fires processing-time timers due at `procTime` (a tick message at stream position `seq`). */
  applyTick(seq: number, procTime: number, emit: EmitFn, refs?: ReferenceLookup): boolean {
    if (seq <= this.lastSeq) return false
    const ctx = this.context(seq, procTime, emit, refs)
    const fired = this.fireDue('processing', procTime, ctx)
    if (fired > 0) {
      this.lastSeq = seq
      this.markDirty(seq)
    }
    return fired > 0
  }

  private markDirty(seq: number): void {
    if (!this.dirty) this.dirtyFrom = seq
    this.dirty = true
  }

  snapshot(token: number): SnapshotRecord {
    const rec: SnapshotRecord = {
      f: 1,
      profile: this.def.profile,
      v: this.def.codec.version,
      lastSeq: this.lastSeq,
      maxEventTs: Number.isFinite(this.maxEventTs) ? this.maxEventTs : null,
      timers: this.timers,
      token,
      state: this.def.codec.encode(this.state),
    }
    if (this.rids) rec.rids = this.rids.record()
    return rec
  }

  query(): unknown {
    const view = this.def.query?.(
      this.state,
      { entity: this.entity, watermark: this.watermark, lastSeq: this.lastSeq },
      this.config,
    )
    return view ?? this.def.codec.encode(this.state)
  }

  private fireDue(domain: 'event' | 'processing', now: number, ctx: ActorContext): number {
    let fired = 0
    // Handlers may set or cancel timers while we fire; loop until nothing in this domain is due.
    for (let guard = 0; guard < 10_000; guard++) {
      let idx = -1
      for (let i = 0; i < this.timers.length; i++) {
        const t = this.timers[i] as TimerEntry
        if (t.domain === domain && t.at <= now && (idx < 0 || t.at < (this.timers[idx] as TimerEntry).at)) idx = i
      }
      if (idx < 0) return fired
      const t = this.timers[idx] as TimerEntry
      this.timers = this.timers.filter((_, i) => i !== idx)
      let missed = 1
      if (t.periodMs && t.periodMs > 0) {
        missed = Math.floor((now - t.at) / t.periodMs) + 1
        if (t.catchUp === 'replay' && missed > 1) {
          // Fire the first due period now and re-arm at the next one: the loop fires each period in turn.
          this.timers = [...this.timers, { ...t, at: t.at + t.periodMs }]
          missed = 1
        } else {
          this.timers = [...this.timers, { ...t, at: t.at + missed * t.periodMs }]
        }
      }
      const ft: FiredTimer = { name: t.name, domain, at: t.at, now, missed }
      this.def.onTimer?.(this.state, ft, ctx, this.config)
      fired++
    }
    return fired
  }

  private context(seq: number, procTime: number, emit: EmitFn, refs: ReferenceLookup | undefined): ActorContext {
    const cell = this
    const { kind, id } = this.entity
    return {
      entity: this.entity,
      profile: this.def.profile,
      seq,
      procTime,
      get watermark() {
        return cell.watermark
      },
      get maxEventTime() {
        return cell.maxEventTs
      },
      emit<T extends Exclude<OutputType, 'fence'>>(type: T, key: string, ts: number, body: OutputBodies[T]) {
        emit({ id: `${kind}:${id}:${type}:${key}`, type, kind, entity: id, profile: cell.def.profile, ts, seq, body })
      },
      setTimer(name: string, domain: 'event' | 'processing', at: number, opts?: TimerOptions) {
        const cur = cell.timers.find((t) => t.name === name)
        if (cur && cur.domain === domain && cur.periodMs === opts?.periodMs && cur.catchUp === opts?.catchUp) {
          // Re-arming the same timer (e.g. an idle timeout on every reading) allocates nothing.
          cur.at = at
          return
        }
        const entry: TimerEntry = { name, domain, at }
        if (opts?.periodMs !== undefined) entry.periodMs = opts.periodMs
        if (opts?.catchUp !== undefined) entry.catchUp = opts.catchUp
        cell.timers = [...cell.timers.filter((t) => t.name !== name), entry]
      },
      cancelTimer(name: string) {
        if (cell.timers.some((t) => t.name === name)) cell.timers = cell.timers.filter((t) => t.name !== name)
      },
      reference(name: string) {
        return refs?.(name, procTime)
      },
    }
  }
}
