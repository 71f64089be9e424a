/** EventWindows: tumbling and sliding windows over one pane store. See actors/windows/mod.ts for the semantics. */
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../errors.js'
import type { FieldValue, WindowBody } from '../types.js'
import { corrupt, decodeRecords, encodeRecords, stringList } from './codec.js'
import { addCompact, body, compactRecord, compactShape, dropLast, expandRecord, recordLength } from './compact.js'
import { compileWindows, type WindowLayout, type WindowOptions } from './layout.js'
import { addReading, emptyRecord, mergeRecord } from './records.js'

// ---- EventWindows -----------------------------------------------------------------------------------------

/** JSON form of `EventWindows`. */
export interface EventWindowsJSON {
  /** Window definitions signature (`name:size:slide,...`). */
  k: string
  f: string[]
  c: string[]
  /** closedThrough per definition (null = -Infinity). */
  h: Array<number | null>
  /** Pane records, flat. */
  p: Array<number | string | number[]>
}

/** Tumbling and sliding windows of one entity, several definitions sharing one pane store. */
export class EventWindows {
  private readonly l: WindowLayout
  /**
   * closedThrough per definition (`specs.length` numbers), then the pane records sorted by start, `l.stride`
   * numbers each: one array per entity, as every array costs a header and a pointer on top of its numbers.
   */
  private p: number[]

  /** `layout`: from `compileWindows` (or options, compiled here; prefer sharing one layout). */
  constructor(layout: WindowLayout | WindowOptions) {
    this.l = 'stride' in layout ? layout : compileWindows(layout)
    this.p = new Array<number>(this.l.specs.length).fill(-Infinity)
  }

  get layout(): WindowLayout {
    return this.l
  }

  /** The horizon of definition `i` (index or name): windows ending at or before it are closed. */
  closedThrough(i: number | string): number {
    const idx = typeof i === 'number' ? i : this.l.specs.findIndex((s) => s.name === i)
    const v = idx >= 0 && idx < this.l.specs.length ? this.p[idx] : undefined
    if (v === undefined) throw new ConfigError('windows', `no window definition ${String(i)}`)
    return v
  }

  /** Number of panes held (memory and tests). */
  get paneCount(): number {
    let n = 0
    for (let at = this.l.specs.length; at < this.p.length; at += recordLength(this.l, this.p, at)) n++
    return n
  }

  /**
   * Adds a reading to each of its open windows. Returns a bit mask: bit i set = late for definition i (all its
   * windows there are closed). 0 = accepted by every definition.
   */
  add(
    ts: number,
    fields: Readonly<Record<string, FieldValue | undefined>>,
    counts?: Readonly<Record<string, number>>,
  ): number {
    const l = this.l
    let late = 0
    for (let i = 0; i < l.specs.length; i++) {
      const s = l.specs[i] as WindowLayout['specs'][number]
      // The reading's last window ends latest: if that one is closed, all of them are.
      if (Math.floor(ts / s.slide) * s.slide + s.size <= (this.p[i] as number)) late |= 1 << i
    }
    if (late === (1 << l.specs.length) - 1 || !Number.isFinite(ts)) return (1 << l.specs.length) - 1
    // Shared panes are safe: every window of a pane that is closed has already been emitted, so data added now
    // only reaches windows that are still open, and those contain the reading.
    const start = Math.floor(ts / l.pane) * l.pane
    const p = this.p
    let at = l.specs.length
    while (at < p.length && (p[at] as number) < start) at += recordLength(l, p, at)
    if (at < p.length && p[at] === start) {
      if (addCompact(l, p, at, ts, fields, counts)) return late
      if ((p[at + 1] as number) >= 0) {
        addReading(l, p, at, ts, fields, counts)
        return late
      }
      // A compact pane that this reading does not fit: rebuild it in full (or compact with counters).
      const full = emptyRecord(l, start)
      expandRecord(l, p, at, full, 0)
      addReading(l, full, 0, ts, fields, counts)
      this.p = p.slice(0, at).concat(compactRecord(l, full, 0), p.slice(at + recordLength(l, p, at)))
      return late
    }
    // A new pane; a new array of exact size: push/splice would leave spare capacity in every actor.
    const rec = emptyRecord(l, start)
    addReading(l, rec, 0, ts, fields, counts)
    this.p = p.slice(0, at).concat(compactRecord(l, rec, 0), p.slice(at))
    return late
  }

  /** Closes the windows the watermark passed; returns them sorted by (end, start, definition). */
  advance(watermark: number): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) {
      const h0 = this.p[i] as number
      if (!(watermark > h0)) continue
      this.collect(i, h0, watermark, false, out)
      this.p[i] = watermark
    }
    if (out.length === 0) return out
    this.prune()
    return sortWindows(out, this.l)
  }

  /** Closes every open window that holds a reading (idle timeout); returns them sorted like `advance`. */
  flushAll(): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) {
      const before = out.length
      this.collect(i, this.p[i] as number, Infinity, true, out)
      for (let j = before; j < out.length; j++) {
        const end = (out[j] as WindowBody).end
        if (end > (this.p[i] as number)) this.p[i] = end
      }
    }
    this.prune()
    return sortWindows(out, this.l)
  }

  /** The open windows with their partial aggregates (for live queries); changes nothing. */
  openWindows(): WindowBody[] {
    const out: WindowBody[] = []
    for (let i = 0; i < this.l.specs.length; i++) this.collect(i, this.p[i] as number, Infinity, false, out)
    return sortWindows(out, this.l)
  }

  /** Windows of definition i with h0 < end <= h1 that contain at least one pane, appended to `out`. */
  private collect(i: number, h0: number, h1: number, idle: boolean, out: WindowBody[]): void {
    const l = this.l,
      p = this.p
    const { name, size, slide } = l.specs[i] as WindowLayout['specs'][number]
    // Window ends are multiples of the slide (size is one). For a pane at ps the windows containing it end in
    // [ceil((ps + P - size) / slide) * slide + size, floor(ps / slide) * slide + size].
    const lowest = Math.floor(h0 / slide) * slide + slide
    const highest = Math.floor(h1 / slide) * slide
    // The common case on every reading: the watermark moved but crossed no slide boundary.
    if (lowest > highest) return
    let ends: number[] | undefined
    for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
      const ps = p[at] as number
      const lo = Math.max(Math.ceil((ps + l.pane - size) / slide) * slide + size, lowest)
      const hi = Math.min(Math.floor(ps / slide) * slide + size, highest)
      for (let e = lo; e <= hi; e += slide) {
        ends ??= []
        if (!ends.includes(e)) ends.push(e)
      }
    }
    if (ends === undefined) return
    ends.sort((a, b) => a - b)
    const acc = emptyRecord(l, 0)
    const full = emptyRecord(l, 0)
    for (const end of ends) {
      const start = end - size
      acc.fill(0)
      for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
        const ps = p[at] as number
        if (ps < start || ps >= end) continue
        if ((p[at + 1] as number) >= 0) {
          mergeRecord(l, acc, 0, p, at)
        } else {
          expandRecord(l, p, at, full, 0)
          mergeRecord(l, acc, 0, full, 0)
        }
      }
      out.push(body(l, name, start, end, acc, 0, idle))
    }
  }

  /**
   * Drops panes whose every window is closed in every definition, and the last values of each compact pane P
   * followed by a compact pane Q once every window holding P but not Q is closed (for each definition, the
   * window end floor(Q.start / slide) * slide, the latest such end, is at or below its horizon): every open
   * window holding P then holds Q, whose every field has a later reading, so P's last values are never used.
   */
  private prune(): void {
    const l = this.l,
      p = this.p,
      first = l.specs.length
    let keep = first
    while (keep < p.length && this.paneClosed(p[keep] as number)) keep += recordLength(l, p, keep)
    let parts: number[][] | undefined
    let from = keep
    for (let at = keep; at < p.length;) {
      const next = at + recordLength(l, p, at)
      if (next >= p.length) break
      if (
        (p[at + 1] as number) < 0 &&
        compactShape(l, p, at).noLast === 0 &&
        (p[next + 1] as number) < 0 &&
        this.lastUnused(p[next] as number)
      ) {
        parts ??= [p.slice(0, first)]
        parts.push(p.slice(from, at), dropLast(l, p, at))
        from = next
      }
      at = next
    }
    if (parts) {
      parts.push(p.slice(from))
      this.p = ([] as number[]).concat(...parts)
    } else if (keep > first) {
      this.p = p.slice(0, first).concat(p.slice(keep))
    }
  }

  /** True when every window ending at or before `qs` is closed in every definition. */
  private lastUnused(qs: number): boolean {
    const specs = this.l.specs
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i] as WindowLayout['specs'][number]
      if (Math.floor(qs / s.slide) * s.slide > (this.p[i] as number)) return false
    }
    return true
  }

  private paneClosed(ps: number): boolean {
    const specs = this.l.specs
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i] as WindowLayout['specs'][number]
      if (Math.floor(ps / s.slide) * s.slide + s.size > (this.p[i] as number)) return false
    }
    return true
  }

  /** The pane records in full form, flat (`stride` each). */
  private fullRecords(): number[] {
    const l = this.l,
      p = this.p
    const out: number[] = []
    for (let at = l.specs.length; at < p.length; at += recordLength(l, p, at)) {
      const at2 = out.length
      for (let k = 0; k < l.stride; k++) out.push(0)
      expandRecord(l, p, at, out, at2)
    }
    return out
  }

  /** Compact JSON form (restores exactly with `fromJSON`). */
  toJSON(): EventWindowsJSON {
    return {
      k: this.l.signature,
      f: [...this.l.fields],
      c: [...this.l.counts],
      h: this.p.slice(0, this.l.specs.length).map((v) => (Number.isFinite(v) ? v : null)),
      p: encodeRecords(this.l, this.fullRecords()),
    }
  }

  /**
   * Restores from `toJSON()` output. The window definitions must be the same (else SnapshotError); fields and
   * counters are matched by name, so adding or removing one in the configuration keeps the others.
   */
  static fromJSON(layout: WindowLayout | WindowOptions, data: unknown): EventWindows {
    const w = new EventWindows(layout)
    const l = w.l
    const d = data as Partial<EventWindowsJSON> | null
    if (d === null || typeof d !== 'object') throw corrupt('not an object')
    if (d.k !== l.signature) {
      throw new SnapshotError(
        RuntimeErrorCodes.SNAPSHOT_VERSION,
        `window snapshot has definitions ${String(d.k)}, the configuration has ${l.signature}`,
      )
    }
    if (!Array.isArray(d.h) || d.h.length !== l.specs.length) throw corrupt('horizons do not match the definitions')
    d.h.forEach((v, i) => {
      if (v !== null && !(typeof v === 'number' && Number.isFinite(v))) throw corrupt('horizon is not a number')
      w.p[i] = v ?? -Infinity
    })
    const recs = decodeRecords(l, d.p, stringList(d.f, 'fields'), stringList(d.c, 'counts'))
    for (let at = 0; at < recs.length; at += l.stride) {
      const ps = recs[at] as number
      if (ps % l.pane !== 0 || (at > 0 && ps <= (recs[at - l.stride] as number)))
        throw corrupt('panes are not aligned and sorted')
    }
    const parts: number[][] = [w.p]
    for (let at = 0; at < recs.length; at += l.stride) parts.push(compactRecord(l, recs, at))
    w.p = ([] as number[]).concat(...parts)
    w.prune()
    return w
  }
}

export function sortWindows(out: WindowBody[], l: WindowLayout): WindowBody[] {
  if (out.length < 2) return out
  const order = new Map(l.specs.map((s, i) => [s.name, i]))
  return out.sort(
    (a, b) => a.end - b.end || a.start - b.start || (order.get(a.window) ?? 0) - (order.get(b.window) ?? 0),
  )
}
