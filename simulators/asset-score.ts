/**
 * Lead-time scoring of asset alerts against failures, the real `asset` profile run through `ActorCell` over a
 * history, and the naive baseline of issue 20. Used by `pitwall train` (validation on a held-out period) and by
 * the asset bench (bench/asset-eval-run.ts), so both count the same way:
 * - a failure is caught when an alert (`risk_high` or `asset_danger`) of the same entity opened within
 *   [failure - maxLead, failure - minLead]; its lead is failure - the earliest such opening;
 *   `caught6h` counts those whose earliest opening is at least `warnMs` (6 h) ahead;
 * - an alert opening is false when no failure of its entity follows within maxLead (72 h);
 * - false alerts per asset-month = false openings / (assets x test days / 30).
 */
import { ActorCell, ASSET_DEFAULTS, asset, mergeAssetModel } from '../actors/mod.js'
import type { AlertBody, AssetConfig, AssetModel, Output, Reading } from '../actors/mod.js'

const HOUR = 3_600_000

export interface AlertOpen {
  entity: string
  ts: number
  type: string
  /** Family of the top reason (vibration, temperature, pressure, flow; `danger` for the danger floor). */
  family: string | null
}

export interface Failure {
  entity: string
  ts: number
  /** Failure mode when known (bearing, cooling, hydraulic, sudden). */
  mode?: string
}

export interface LeadScore {
  failures: number
  caught: number
  /** Caught with at least `warnMs` of warning. */
  caught6h: number
  recall6h: number
  medianLeadHours: number | null
  falseAlerts: number
  alerts: number
  falsePerAssetMonth: number
  /** Share of true alerts (opened before a predictable failure) whose top reason is the failure mode's family. */
  rightFamily: number | null
  byMode: Record<string, { failures: number; caught6h: number; recall6h: number; medianLeadHours: number | null }>
}

/** The feature family expected to explain each failure mode. */
export const MODE_FAMILIES: Record<string, readonly string[]> = {
  bearing: ['vibration'],
  cooling: ['temperature'],
  hydraulic: ['pressure', 'flow'],
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null
  const a = [...xs].sort((x, y) => x - y)
  const m = Math.floor(a.length / 2)
  return a.length % 2 ? (a[m] as number) : ((a[m - 1] as number) + (a[m] as number)) / 2
}

/** Scores alert openings against failures inside [from, to) (alerts and failures outside are ignored). */
export function scoreLeadTime(
  opens: readonly AlertOpen[],
  failures: readonly Failure[],
  o: { from: number; to: number; assets: number; minLeadMs?: number; maxLeadMs?: number; warnMs?: number },
): LeadScore {
  const minLead = o.minLeadMs ?? HOUR,
    maxLead = o.maxLeadMs ?? 72 * HOUR,
    warn = o.warnMs ?? 6 * HOUR
  const inOpens = opens.filter((a) => a.ts >= o.from && a.ts < o.to)
  const inFails = failures.filter((f) => f.ts >= o.from && f.ts < o.to)
  const byEntity = new Map<string, AlertOpen[]>()
  for (const a of inOpens) {
    let l = byEntity.get(a.entity)
    if (!l) byEntity.set(a.entity, (l = []))
    l.push(a)
  }
  const leads: number[] = []
  const byMode: LeadScore['byMode'] = {}
  const modeLeads = new Map<string, number[]>()
  let caught = 0,
    caught6h = 0,
    right = 0,
    trueAlerts = 0
  for (const f of inFails) {
    const mode = f.mode ?? 'unknown'
    const m = (byMode[mode] ??= { failures: 0, caught6h: 0, recall6h: 0, medianLeadHours: null })
    m.failures++
    const hits = (byEntity.get(f.entity) ?? []).filter((a) => a.ts >= f.ts - maxLead && a.ts <= f.ts - minLead)
    if (hits.length === 0) continue
    const first = hits.reduce((x, y) => (y.ts < x.ts ? y : x))
    const lead = (f.ts - first.ts) / HOUR
    caught++
    leads.push(lead)
    let ml = modeLeads.get(mode)
    if (!ml) modeLeads.set(mode, (ml = []))
    ml.push(lead)
    if (f.ts - first.ts >= warn) {
      caught6h++
      m.caught6h++
    }
    const fam = MODE_FAMILIES[mode]
    if (fam) {
      for (const h of hits) {
        trueAlerts++
        if (h.family !== null && fam.includes(h.family)) right++
      }
    }
  }
  for (const [mode, m] of Object.entries(byMode)) {
    m.recall6h = m.failures === 0 ? 1 : m.caught6h / m.failures
    m.medianLeadHours = median(modeLeads.get(mode) ?? [])
  }
  let falseAlerts = 0
  for (const a of inOpens) {
    if (!failures.some((f) => f.entity === a.entity && f.ts > a.ts && f.ts - a.ts <= maxLead)) falseAlerts++
  }
  const months = (o.assets * (o.to - o.from)) / (30 * 24 * HOUR)
  return {
    failures: inFails.length,
    caught,
    caught6h,
    recall6h: inFails.length ? caught6h / inFails.length : 1,
    medianLeadHours: median(leads),
    falseAlerts,
    alerts: inOpens.length,
    falsePerAssetMonth: months > 0 ? falseAlerts / months : 0,
    rightFamily: trueAlerts ? right / trueAlerts : null,
    byMode,
  }
}

export interface HistoryRow {
  entity: string
  ts: number
  fields: Reading['fields']
}

/**
 * Runs the real asset profile (one ActorCell per entity, stream order = row order) over a history and returns
 * the alert openings, with the family of each alert's top reason. `model` replaces the configured model.
 */
export async function runAssetProfile(
  rows: AsyncIterable<HistoryRow> | Iterable<HistoryRow>,
  o: { config?: AssetConfig; model?: AssetModel } = {},
): Promise<{ opens: AlertOpen[]; readings: number }> {
  const config = o.model ? mergeAssetModel(o.config ?? ASSET_DEFAULTS, o.model) : (o.config ?? ASSET_DEFAULTS)
  const cells = new Map<string, ActorCell>()
  const opens: AlertOpen[] = []
  const emit = (out: Omit<Output, 'site' | 'partition' | 'token'>): void => {
    if (out.type !== 'alert') return
    const b = out.body as AlertBody
    if (b.state !== 'open') return
    const fam =
      b.type === config.danger.type ? 'danger' : ((b.details?.['family'] as string | null | undefined) ?? null)
    opens.push({ entity: out.entity, ts: b.start, type: b.type, family: fam })
  }
  let seq = 0
  for await (const r of rows) {
    let cell = cells.get(r.entity)
    if (!cell) cells.set(r.entity, (cell = new ActorCell(asset, config, { kind: 'sensor', id: r.entity })))
    cell.applyReading(++seq, r.ts, { ts: r.ts, fields: r.fields }, emit)
  }
  return { opens, readings: seq }
}

/**
 * The naive baseline of issue 20: per entity, hourly mean vibration or temperature more than `sigmas` robust
 * sigmas (1.4826 x MAD) above its own median over the previous `windowDays` days opens an alert; it closes
 * (re-arms) after `rearmHours` hours below. Needs a week of hours before it judges.
 */
export async function naiveBaseline(
  rows: AsyncIterable<HistoryRow> | Iterable<HistoryRow>,
  o: { windowDays?: number; sigmas?: number; rearmHours?: number } = {},
): Promise<AlertOpen[]> {
  const windowH = (o.windowDays ?? 30) * 24,
    k = o.sigmas ?? 4,
    rearm = o.rearmHours ?? 12
  interface U {
    h: number
    n: number
    sv: number
    st: number
    vib: number[]
    temp: number[]
    open: boolean
    calm: number
  }
  const units = new Map<string, U>()
  const opens: AlertOpen[] = []
  const med = (a: number[]): number => {
    const s = [...a].sort((x, y) => x - y)
    return s[Math.floor(s.length / 2)] as number
  }
  const judge = (hist: number[], x: number): boolean => {
    if (hist.length < 168) return false
    const m = med(hist)
    const mad = med(hist.map((v) => Math.abs(v - m))) * 1.4826
    return x > m + k * Math.max(mad, 1e-6)
  }
  const close = (id: string, u: U, ts: number): void => {
    if (u.n === 0) return
    const v = u.sv / u.n,
      t = u.st / u.n
    const hotV = judge(u.vib, v),
      hotT = judge(u.temp, t)
    if (hotV || hotT) {
      u.calm = 0
      if (!u.open) {
        u.open = true
        opens.push({ entity: id, ts, type: 'naive', family: hotV ? 'vibration' : 'temperature' })
      }
    } else if (u.open && ++u.calm >= rearm) u.open = false
    u.vib.push(v)
    u.temp.push(t)
    if (u.vib.length > windowH) {
      u.vib.shift()
      u.temp.shift()
    }
  }
  for await (const r of rows) {
    const h = Math.floor(r.ts / HOUR)
    let u = units.get(r.entity)
    if (!u) units.set(r.entity, (u = { h, n: 0, sv: 0, st: 0, vib: [], temp: [], open: false, calm: 0 }))
    if (h > u.h) {
      close(r.entity, u, r.ts)
      u.h = h
      u.n = 0
      u.sv = 0
      u.st = 0
    }
    const v = r.fields['vibration'],
      t = r.fields['temperature']
    if (typeof v === 'number' && typeof t === 'number') {
      u.n++
      u.sv += v
      u.st += t
    }
  }
  return opens
}
