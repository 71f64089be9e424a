/**
 * Deterministic traces for runtime tests, and the independent reference computation of the test profile
 * (test/fixtures/sum-profile.ts) over a stream's contents.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { parsePartitioned } from '../../actors/subjects.js'
import type { Output } from '../../actors/types.js'

/** Mulberry32: a small seeded PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Interleaves re-sends into a send plan: after each item, with probability `p` (one draw of `r`), a copy marked
 * `resend` is scheduled 1..`within` items later (a second draw); copies due past the end follow it. Returns the
 * plan with the copies and their count. Both crash tests (env-trace.ts, crash-race.test.ts) draw through this.
 */
export function interleaveResends<T extends { resend: boolean }>(
  plan: readonly T[],
  r: () => number,
  p: number,
  within: number,
): { plan: T[]; resends: number } {
  let resends = 0
  const out: T[] = []
  const later = new Map<number, T[]>()
  for (let i = 0; i < plan.length; i++) {
    const s = plan[i] as T
    out.push(s, ...(later.get(i) ?? []))
    later.delete(i)
    if (r() < p) {
      const at = Math.min(plan.length - 1, i + 1 + Math.floor(r() * within))
      later.set(at, [...(later.get(at) ?? []), { ...s, resend: true }])
      resends++
    }
  }
  for (const rest of later.values()) out.push(...rest)
  return { plan: out, resends }
}

export interface TraceItem {
  kind: 'sensor'
  id: string
  ts: number
  v: number
  rid: string
  dup: boolean
}

/**
 * `n` readings over `entities` sensors: event time advances ~`stepMs` per entity reading with jitter
 * (out of order), a fraction far behind (late), a fraction re-sent with the same rid (duplicates).
 */
export function makeTrace(
  seed: number,
  n: number,
  entities: number,
  opts: { stepMs?: number; lateFrac?: number; dupFrac?: number } = {},
): TraceItem[] {
  const r = rng(seed)
  const step = opts.stepMs ?? 1000
  const base = 1_700_000_000_000
  const clock = new Array<number>(entities).fill(base)
  const out: TraceItem[] = []
  for (let i = 0; i < n; i++) {
    const e = Math.floor(r() * entities)
    clock[e] = (clock[e] as number) + step
    let ts = (clock[e] as number) - Math.floor(r() * 3 * step)
    if (r() < (opts.lateFrac ?? 0.02)) ts -= 30_000 + Math.floor(r() * 30_000)
    const item: TraceItem = { kind: 'sensor', id: `s${e}`, ts, v: Math.floor(r() * 100), rid: `r${i}`, dup: false }
    out.push(item)
    if (r() < (opts.dupFrac ?? 0.01)) out.push({ ...item, dup: true })
  }
  return out
}

export interface StreamMsg {
  seq: number
  kind: string
  id: string
  ts: number
  v: number
  rid?: string
  fields?: Record<string, number | string>
}

/** Reads every reading of a TLM stream in sequence order (skipping runtime ticks). */
export async function readStream(jsm: JetStreamManager, stream: string): Promise<StreamMsg[]> {
  const info = await jsm.streams.info(stream)
  const out: StreamMsg[] = []
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null)
    if (!m) continue
    const p = parsePartitioned(m.subject)
    if (!p || p.kind === '_sys') continue
    const r = m.json<{ ts: number; fields: { v: number } }>()
    out.push({ seq, kind: p.kind, id: p.id, ts: r.ts, v: r.fields.v })
  }
  return out
}

export interface SumResult {
  windows: Map<string, { count: number; sum: number }>
  late: Set<string>
}

/** Independent reference of the sum profile: windows closed by watermark, late readings, per entity. */
export function referenceSum(msgs: StreamMsg[], windowMs: number, latenessMs: number): SumResult {
  const st = new Map<string, { max: number; closed: number; open: Map<number, { count: number; sum: number }> }>()
  const res: SumResult = { windows: new Map(), late: new Set() }
  // A reading with a rid counts once per entity, its first copy in stream order (docs/runtime.md, "Reading ids";
  // every re-send in these tests is within the dedupe horizon).
  const applied = new Set<string>()
  for (const m of msgs) {
    const key = `${m.kind}:${m.id}`
    if (m.rid !== undefined) {
      if (applied.has(`${key}:${m.rid}`)) continue
      applied.add(`${key}:${m.rid}`)
    }
    let s = st.get(key)
    if (!s) st.set(key, (s = { max: -Infinity, closed: -Infinity, open: new Map() }))
    s.max = Math.max(s.max, m.ts)
    const start = Math.floor(m.ts / windowMs) * windowMs
    if (start + windowMs <= s.closed) {
      res.late.add(`${key}:late:late:${m.seq}`)
      continue
    }
    const w = s.open.get(start) ?? { count: 0, sum: 0 }
    w.count++
    w.sum += m.v
    s.open.set(start, w)
    const wm = s.max - latenessMs
    for (const st0 of [...s.open.keys()].sort((a, b) => a - b)) {
      if (st0 + windowMs > wm) break
      res.windows.set(`${key}:window:w:${st0}`, s.open.get(st0) as { count: number; sum: number })
      s.open.delete(st0)
      s.closed = Math.max(s.closed, st0 + windowMs)
    }
  }
  return res
}

/** Reads OUT and applies the projector's fence rule: outputs with a token below the partition's fence are stale. */
export async function readOutputs(
  nc: NatsConnection,
  stream: string,
): Promise<{ accepted: Map<string, Output>; stale: number; conflicts: number }> {
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(stream)
  const fence = new Map<number, number>()
  const accepted = new Map<string, Output>()
  let stale = 0
  let conflicts = 0
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null)
    if (!m) continue
    const o = m.json<Output>()
    if (o.type === 'fence') {
      fence.set(o.partition, Math.max(fence.get(o.partition) ?? 0, o.token))
      continue
    }
    if (o.token < (fence.get(o.partition) ?? 0)) {
      stale++
      continue
    }
    const prev = accepted.get(o.id)
    if (prev && JSON.stringify(prev.body) !== JSON.stringify(o.body)) conflicts++
    accepted.set(o.id, o)
  }
  return { accepted, stale, conflicts }
}
