/**
 * Independent reference of the production `environment` profile (issue 13 part 5), written only from the
 * documentation: README.md (Concepts: event time, the late rule, reading ids), docs/profiles.md (environment) and
 * docs/runtime.md (reading ids, timers). Nothing of actors/windows/, actors/detectors.ts or actors/kinds/ is
 * read or imported; only the wire types.
 *
 * Given the readings of a stream in stream order, it computes per entity:
 * - the windows closed by the watermark: tumbling 1 min (`tumbling_1m`) and sliding 5 min every 1 min
 *   (`sliding_5m_1m`), with count, sum, min, max and mean of temperature, humidity, co2 and battery;
 * - the late readings (every window of the reading had closed when it was applied);
 * - the counters `readings` and `alerts` (alerts opened by the window's readings) of each window;
 * - the threshold-for-duration alerts (`temperature_high` > 40 °C for 60 s, `co2_high` > 1500 ppm for 120 s)
 *   and the threshold alert `battery_low` (< 15 %), with their open and close times.
 *
 * Readings of the docs where they leave a question open (each also in the final report of the branch):
 * Q1 Window alignment: windows start at multiples of their slide since the Unix epoch (a 1-minute window is
 *    [k*60 s, (k+1)*60 s)); a sliding window is [k*60 s, k*60 s + 5 min). A window with no reading emits nothing.
 * Q2 When a window closes: when the watermark (newest event time - 30 s) is at or past its end (end exclusive).
 * Q3 A reading behind the watermark whose 1-minute window closed but whose sliding windows are open is counted
 *    in the open sliding windows (README: "a reading behind the watermark whose window is still open is counted
 *    in it"). Is it `late`? README and docs/profiles.md said "late when every window it belongs to has closed",
 *    which first read as: no. The system writes a `late` record for it (late for the 1-minute definition) and
 *    counts it in the open sliding windows; its unit tests and code comments say the same. The docs now say it
 *    per window definition, and so does this reference: `late` when, for at least one definition, every window
 *    of the reading there has closed; the reading still counts in the open windows of the other definitions.
 * Q4 Which fields are aggregated: temperature, humidity, co2 and battery (docs/profiles.md lists these; pressure
 *    is an input but not in the list, so it is not expected in a window).
 * Q5 Duration alerts: the docs did not say which readings feed them when readings arrive out of order. First
 *    reading here: every applied reading in stream order. The system disagreed (an out-of-order reading under the
 *    threshold closed the alert at an event time before its start in that reading): the actor feeds its alert
 *    detectors only with readings at or after the newest event time seen so far (equal: the later arrival), so
 *    alerts follow event time; out-of-order readings count in their windows only. docs/profiles.md now says so,
 *    and this reference follows it. The run starts at the first such reading over the threshold (start = its
 *    event time), the alert opens at the first such reading over the threshold whose event time is >= start +
 *    duration, and it closes at the first such reading not over the threshold (end = its event time;
 *    docs/profiles.md, end to end: "start = first reading over the threshold, end = first reading after the
 *    episode"). A run that ends before the duration opens nothing. Hysteresis has no documented default: the
 *    traces of the tests go back far below each threshold, so any small band agrees.
 * Q6 A reading late for every definition takes part in nothing but its `late` record (README: "late readings
 *    are written aside"); it is behind the newest event time, so it never feeds an alert (Q5).
 * Q7 Reading ids: the first copy in stream order of an (entity, rid) is applied, later copies are dropped; the
 *    traces keep every re-send within the documented horizon (10 minutes of event time, 256 ids).
 */
import type { FieldValue } from '../../actors/types.js'

export const ENV_FIELDS = ['temperature', 'humidity', 'co2', 'battery'] as const
export const ENV_LATENESS_MS = 30_000

export interface EnvWindowDef {
  name: string
  sizeMs: number
  slideMs: number
}
export const ENV_WINDOWS: readonly EnvWindowDef[] = [
  { name: 'tumbling_1m', sizeMs: 60_000, slideMs: 60_000 },
  { name: 'sliding_5m_1m', sizeMs: 300_000, slideMs: 60_000 },
]

export interface EnvRule {
  type: string
  field: string
  above?: number
  below?: number
  durationMs: number
}
export const ENV_RULES: readonly EnvRule[] = [
  { type: 'temperature_high', field: 'temperature', above: 40, durationMs: 60_000 },
  { type: 'co2_high', field: 'co2', above: 1500, durationMs: 120_000 },
  { type: 'battery_low', field: 'battery', below: 15, durationMs: 0 },
]

export interface EnvMsg {
  seq: number
  kind: string
  id: string
  ts: number
  fields: Record<string, FieldValue>
  rid?: string
}

export interface Agg {
  count: number
  sum: number
  min: number
  max: number
}
/** `readings` and `alerts` are the window's counters: readings counted, alerts their readings opened. */
export interface RefWindow {
  entity: string
  window: string
  start: number
  end: number
  readings: number
  alerts: number
  fields: Record<string, Agg>
}
export interface RefAlert {
  alertId: string
  entity: string
  type: string
  start: number
  openedAt: number
  end?: number
}
export interface RefLate {
  entity: string
  seq: number
  ts: number
}

export interface EnvReference {
  /** Closed windows by `<kind>:<id>|<window>|<start>`. */
  windows: Map<string, RefWindow>
  /** Windows still open after the last reading (not expected in OUT). */
  open: Map<string, RefWindow>
  late: RefLate[]
  /** Alerts by alert id `<kind>:<id>:<type>:<start>`. */
  alerts: Map<string, RefAlert>
  /** Runs over a threshold that ended before the rule's duration: no alert. */
  shortRuns: number
  /** Copies of an (entity, rid) after the first, dropped. */
  duplicates: number
  /** Readings counted in at least one window, and the late ones among them (`<kind>:<id>|<seq>`). */
  applied: number
  counted: Set<string>
}

export function windowKey(entity: string, window: string, start: number): string {
  return `${entity}|${window}|${start}`
}

interface EntityState {
  maxTs: number
  open: Map<string, RefWindow>
  runs: Map<string, { start: number; opened: boolean } | null>
}

const fieldValue = (v: FieldValue | undefined): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined

/** Every window (of every definition) a reading at `ts` belongs to: [start, start + size) with start = k * slide. */
function windowsOf(ts: number): Array<{ def: EnvWindowDef; start: number }> {
  const out: Array<{ def: EnvWindowDef; start: number }> = []
  for (const def of ENV_WINDOWS) {
    const last = Math.floor(ts / def.slideMs) * def.slideMs
    for (let s = last; s > ts - def.sizeMs; s -= def.slideMs) out.push({ def, start: s })
  }
  return out
}

export function referenceEnvironment(msgs: readonly EnvMsg[], latenessMs = ENV_LATENESS_MS): EnvReference {
  const res: EnvReference = {
    windows: new Map(),
    open: new Map(),
    late: [],
    alerts: new Map(),
    shortRuns: 0,
    duplicates: 0,
    applied: 0,
    counted: new Set(),
  }
  const states = new Map<string, EntityState>()
  const seen = new Set<string>()
  for (const m of msgs) {
    const entity = `${m.kind}:${m.id}`
    if (m.rid !== undefined) {
      const k = `${entity}\u0000${m.rid}`
      if (seen.has(k)) {
        res.duplicates++
        continue
      }
      seen.add(k)
    }
    let s = states.get(entity)
    if (!s) states.set(entity, (s = { maxTs: -Infinity, open: new Map(), runs: new Map() }))
    const newest = !(m.ts < s.maxTs)
    s.maxTs = Math.max(s.maxTs, m.ts)
    const wm = s.maxTs - latenessMs
    // Close every window the watermark passed (Q2).
    for (const [k, w] of s.open) {
      if (w.end <= wm) {
        res.windows.set(k, w)
        s.open.delete(k)
      }
    }
    let opened = 0
    if (newest) for (const rule of ENV_RULES) if (applyRule(res, s, entity, rule, m)) opened++
    const mine = windowsOf(m.ts).filter((w) => w.start + w.def.sizeMs > wm)
    // Late for a definition: every window of the reading there has closed (Q3).
    const late = ENV_WINDOWS.some((def) => !mine.some((w) => w.def === def))
    if (late) res.late.push({ entity, seq: m.seq, ts: m.ts })
    if (mine.length > 0) {
      res.applied++
      if (late) res.counted.add(`${entity}|${m.seq}`)
    }
    for (const { def, start } of mine) {
      const k = windowKey(entity, def.name, start)
      let w = s.open.get(k)
      if (!w)
        s.open.set(
          k,
          (w = { entity, window: def.name, start, end: start + def.sizeMs, readings: 0, alerts: 0, fields: {} }),
        )
      w.readings++
      w.alerts += opened
      for (const f of ENV_FIELDS) {
        const v = fieldValue(m.fields[f])
        if (v === undefined) continue
        const a = w.fields[f]
        if (!a) w.fields[f] = { count: 1, sum: v, min: v, max: v }
        else {
          a.count++
          a.sum += v
          a.min = Math.min(a.min, v)
          a.max = Math.max(a.max, v)
        }
      }
    }
  }
  for (const s of states.values()) for (const [k, w] of s.open) res.open.set(k, w)
  return res
}

/** Feeds one reading to one rule; true when it opened the alert. */
function applyRule(res: EnvReference, s: EntityState, entity: string, rule: EnvRule, m: EnvMsg): boolean {
  const v = fieldValue(m.fields[rule.field])
  if (v === undefined) return false
  const over = rule.above !== undefined ? v > rule.above : v < (rule.below as number)
  const run = s.runs.get(rule.type) ?? null
  if (over) {
    const r = run ?? { start: m.ts, opened: false }
    s.runs.set(rule.type, r)
    if (!r.opened && m.ts - r.start >= rule.durationMs) {
      r.opened = true
      const alertId = `${entity}:${rule.type}:${r.start}`
      res.alerts.set(alertId, { alertId, entity, type: rule.type, start: r.start, openedAt: m.ts })
      return true
    }
    return false
  }
  if (run && !run.opened) res.shortRuns++
  if (run?.opened) {
    const a = res.alerts.get(`${entity}:${rule.type}:${run.start}`) as RefAlert
    a.end = m.ts
  }
  s.runs.set(rule.type, null)
  return false
}
