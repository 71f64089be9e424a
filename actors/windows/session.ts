/** SessionWindows: gap-closed sessions per entity. See actors/windows/mod.ts for the semantics. */
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../errors.js'
import type { FieldValue, WindowBody } from '../types.js'
import { corrupt, decodeRecords, encodeRecords, stringList, unnum } from './codec.js'
import { body } from './compact.js'
import { compileWindows, type WindowLayout } from './layout.js'
import { addReading, emptyRecord, mergeRecord } from './records.js'

// ---- SessionWindows ---------------------------------------------------------------------------------------

/**
 * Session windows with gap G. Semantics:
 * - A session holds readings chained by event-time gaps < G; its window is [first ts, last ts + G).
 * - `closedThrough` = max(every watermark passed to `advance`, end of every session `flushAll` closed). A
 *   session whose end <= closedThrough is closed and never reopens.
 * - `add(ts)`: the reading joins every open session with start - G < ts < end, merging them into one; if it
 *   joins none it starts a new session, unless ts + G <= closedThrough, in which case it is LATE (returns true).
 *   A reading within G of a session that is already closed starts a new session: closed sessions stay closed.
 * - `advance(wm)` closes sessions with end <= wm; `flushAll()` closes all; both sorted by (end, start).
 * - Aggregates and counters: as for `EventWindows`.
 * Records: [start, readings, counters..., fields x 9, last ts] (the session's end is last ts + G).
 */
export class SessionWindows {
  private readonly l: WindowLayout
  private readonly gap: number
  private readonly name: string
  private h = -Infinity
  /** Session records sorted by start; each is `stride + 1` numbers (the last one is the session's last ts). */
  private s: number[] = []

  constructor(opts: { name: string; gapMs: number; fields: readonly string[]; counts?: readonly string[] }) {
    if (!Number.isFinite(opts.gapMs) || opts.gapMs <= 0)
      throw new ConfigError(`sessions.${opts.name}.gapMs`, `must be > 0, got ${opts.gapMs}`)
    const base = compileWindows({
      windows: [{ name: opts.name, sizeMs: 1 }],
      fields: opts.fields,
      counts: opts.counts ?? [],
    })
    this.l = Object.freeze({ ...base, stride: base.stride + 1, signature: `${opts.name}:session:${opts.gapMs}` })
    this.gap = opts.gapMs
    this.name = opts.name
  }

  get closedThrough(): number {
    return this.h
  }
  /** Number of open sessions. */
  get sessionCount(): number {
    return this.s.length / this.l.stride
  }

  /** Adds a reading; returns true when it is late (see the class doc) and was not added. */
  add(
    ts: number,
    fields: Readonly<Record<string, FieldValue | undefined>>,
    counts?: Readonly<Record<string, number>>,
  ): boolean {
    if (!Number.isFinite(ts)) return true
    const l = this.l,
      st = l.stride,
      g = this.gap
    let first = -1,
      last = -1
    for (let at = 0; at < this.s.length; at += st) {
      const start = this.s[at] as number,
        end = (this.s[at + st - 1] as number) + g
      if (start - g < ts && ts < end) {
        if (first < 0) first = at
        last = at
      }
    }
    if (first < 0) {
      if (ts + g <= this.h) return true
      const rec = emptyRecord(l, ts)
      rec[st - 1] = ts
      let at = 0
      while (at < this.s.length && (this.s[at] as number) <= ts) at += st
      this.s = this.s.slice(0, at).concat(rec, this.s.slice(at))
      first = last = at
    } else if (last > first) {
      // The reading bridges sessions first..last (contiguous in start order): merge them into the first.
      for (let at = first + st; at <= last; at += st) {
        mergeRecord(l, this.s, first, this.s, at)
        if ((this.s[at + st - 1] as number) > (this.s[first + st - 1] as number))
          this.s[first + st - 1] = this.s[at + st - 1] as number
      }
      this.s = this.s.slice(0, first + st).concat(this.s.slice(last + st))
    }
    addReading(l, this.s, first, ts, fields, counts)
    if (ts < (this.s[first] as number)) this.s[first] = ts
    if (ts > (this.s[first + st - 1] as number)) this.s[first + st - 1] = ts
    return false
  }

  /** Closes sessions whose end <= watermark; returns them sorted by (end, start). */
  advance(watermark: number): WindowBody[] {
    if (!(watermark > this.h)) return []
    this.h = watermark
    return this.close((end) => end <= watermark, false)
  }

  /** Closes every open session (idle timeout). */
  flushAll(): WindowBody[] {
    const out = this.close(() => true, true)
    for (const w of out) if (w.end > this.h) this.h = w.end
    return out
  }

  /** Open sessions with partial aggregates. */
  openWindows(): WindowBody[] {
    return this.collect(() => true, false).out
  }

  private close(pred: (end: number) => boolean, idle: boolean): WindowBody[] {
    const { out, keep } = this.collect(pred, idle)
    if (out.length > 0) this.s = keep
    return out
  }

  private collect(pred: (end: number) => boolean, idle: boolean): { out: WindowBody[]; keep: number[] } {
    const l = this.l,
      st = l.stride
    const out: WindowBody[] = []
    const keep: number[] = []
    for (let at = 0; at < this.s.length; at += st) {
      const start = this.s[at] as number,
        end = (this.s[at + st - 1] as number) + this.gap
      if (pred(end)) out.push(body(l, this.name, start, end, this.s, at, idle))
      else for (let k = 0; k < st; k++) keep.push(this.s[at + k] as number)
    }
    return { out: out.sort((a, b) => a.end - b.end || a.start - b.start), keep }
  }

  /** Compact JSON form (restores exactly with `fromJSON`). */
  toJSON(): {
    k: string
    f: string[]
    c: string[]
    h: number | null
    p: Array<number | string | number[]>
    t: number[]
  } {
    const st = this.l.stride
    const inner = { ...this.l, stride: st - 1 }
    const recs: number[] = []
    const lastTs: number[] = []
    for (let at = 0; at < this.s.length; at += st) {
      for (let k = 0; k < st - 1; k++) recs.push(this.s[at + k] as number)
      lastTs.push(this.s[at + st - 1] as number)
    }
    return {
      k: this.l.signature,
      f: [...this.l.fields],
      c: [...this.l.counts],
      h: Number.isFinite(this.h) ? this.h : null,
      p: encodeRecords(inner, recs),
      t: lastTs,
    }
  }

  /** Restores from `toJSON()` output (same name and gap, else SnapshotError). */
  static fromJSON(
    opts: { name: string; gapMs: number; fields: readonly string[]; counts?: readonly string[] },
    data: unknown,
  ): SessionWindows {
    const w = new SessionWindows(opts)
    const d = data as { k?: unknown; f?: unknown; c?: unknown; h?: unknown; p?: unknown; t?: unknown } | null
    if (d === null || typeof d !== 'object') throw corrupt('not an object')
    if (d.k !== w.l.signature)
      throw new SnapshotError(
        RuntimeErrorCodes.SNAPSHOT_VERSION,
        `session snapshot ${String(d.k)} is not ${w.l.signature}`,
      )
    if (d.h !== null && !(typeof d.h === 'number' && Number.isFinite(d.h))) throw corrupt('horizon is not a number')
    const inner = { ...w.l, stride: w.l.stride - 1 }
    const recs = decodeRecords(inner, d.p, stringList(d.f, 'fields'), stringList(d.c, 'counts'))
    const n = recs.length / inner.stride
    if (!Array.isArray(d.t) || d.t.length !== n) throw corrupt('session end times do not match the sessions')
    const t = d.t as unknown[]
    const s: number[] = []
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < inner.stride; k++) s.push(recs[i * inner.stride + k] as number)
      s.push(unnum(t[i], 'session last ts'))
    }
    w.h = d.h ?? -Infinity
    w.s = s
    return w
  }
}
