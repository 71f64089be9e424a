/**
 * Sensor profile `environment`: one actor per environmental sensor (DOMAIN.md section 2).
 *
 * Reading fields (all optional per reading): temperature °C, humidity %, co2 ppm, pressure hPa, battery %,
 * status `ok` | `warning` | `failure`; `loc` {lat, lon} for the map. Only the configured numeric fields are
 * aggregated; any other field is ignored here (it still reaches the raw-reading consumers).
 *
 * On each reading, in this order:
 *  1. windows: `advance(ctx.watermark)` first (the watermark already includes this reading), emitting each
 *     closed window as `window`, key `<window>:<start>`, ts = end, idleClosed false; then `add`. A reading that
 *     is late for at least one window definition (all of its windows there are closed) is emitted as `late`,
 *     key `late:<seq>`, and counted in `late` (see actors/windows/ for the exact definition);
 *  2. staleness: an open `stale` alert closes (end = max event time); the processing-time timer `idle` is
 *     re-armed at procTime + idleTimeoutMs;
 *  3. alerts, fed only with readings at or after the newest event time seen (older ones skip the detectors):
 *     threshold alerts per configured field, and `device_failure` (status failure opens at once; status ok
 *     closes; warning leaves it as it is). Output `alert`, key `<alertId>:<state>:<seq>`, alertId
 *     `<kind>:<id>:<type>:<start>`, ts = the reading's event time;
 *  4. window counters: `alerts` (alerts this reading opened), `failures` / `warnings` (status of the reading),
 *     and `readings`, go into the same windows as the reading's fields.
 * When `idle` fires (no reading for idleTimeoutMs of processing time): every open window is flushed
 * (idleClosed true) and a `stale` alert opens (start = max event time seen). The live view (`query`) follows
 * the newest reading in event time: late readings do not change it.
 *
 * State is a handful of flat number arrays (see EnvironmentState) so an active sensor stays well under 2 KiB.
 */
import { defineActor } from '../../actor.js'
import * as alert from '../../alerts.js'
import type { ActorContext, FiredTimer } from '../../actor.js'
import { Staleness, ThresholdForDuration } from '../../detectors.js'
import type { DetectorEvent, ThresholdOptions } from '../../detectors.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import type { AlertBody, EntityRef, FieldValue, Reading, Severity, WindowBody } from '../../types.js'
import { EventWindows, compileWindows } from '../../windows/mod.js'
import type { WindowLayout, WindowSpec } from '../../windows/mod.js'

/** A threshold alert on one numeric field. */
export interface FieldAlertConfig extends ThresholdOptions {
  type: string
  field: string
  severity: Severity
  unit: string
}

export interface EnvironmentConfig {
  /** Watermark = max event time - allowedLatenessMs. */
  allowedLatenessMs: number
  /** Processing time without readings after which windows are flushed and a stale alert opens. */
  idleTimeoutMs: number
  /** Numeric fields shown in the live view (and usable by alerts). */
  fields: readonly string[]
  /** Numeric fields aggregated in windows (each window holds their aggregates, so each costs memory). */
  windowFields: readonly string[]
  windows: readonly WindowSpec[]
  alerts: readonly FieldAlertConfig[]
  failure: { type: string; severity: Severity }
  stale: { type: string; severity: Severity }
}

/** The domain's numbers (DOMAIN.md section 2), overridable by deployment config. */
export const ENVIRONMENT_DEFAULTS: EnvironmentConfig = deepFreeze({
  allowedLatenessMs: 30_000,
  idleTimeoutMs: 120_000,
  fields: ['temperature', 'humidity', 'co2', 'pressure', 'battery'],
  // The domain asks for window means of these; pressure stays in the live view only.
  windowFields: ['temperature', 'humidity', 'co2', 'battery'],
  windows: [
    { name: 'tumbling_1m', sizeMs: 60_000 },
    { name: 'sliding_5m_1m', sizeMs: 300_000, slideMs: 60_000 },
  ],
  alerts: [
    {
      type: 'temperature_high',
      field: 'temperature',
      unit: '°C',
      severity: 'warning',
      above: 40,
      durationMs: 60_000,
      hysteresis: 1,
      updateDelta: 2,
      updateIntervalMs: 60_000,
    },
    {
      type: 'co2_high',
      field: 'co2',
      unit: 'ppm',
      severity: 'warning',
      above: 1500,
      durationMs: 120_000,
      hysteresis: 50,
      updateDelta: 250,
      updateIntervalMs: 60_000,
    },
    { type: 'battery_low', field: 'battery', unit: '%', severity: 'info', below: 15, durationMs: 0, hysteresis: 2 },
  ],
  failure: { type: 'device_failure', severity: 'critical' },
  stale: { type: 'stale', severity: 'info' },
})

/** Freezes a configuration object and everything in it (defaults are shared by every actor). */
function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

export const IDLE_TIMER = 'idle'
const COUNTS = ['alerts', 'failures', 'warnings'] as const
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical']
const TS = ThresholdForDuration.SLOTS
// Status as a number for a threshold detector: failure (1) opens, ok (0) clears, warning sits in the band.
const STATUS_CODE: Readonly<Record<string, number>> = { ok: 0, warning: 0.5, failure: 1 }
const FAILURE_OPTS: ThresholdOptions = Object.freeze({ above: 0.5, durationMs: 0, hysteresis: 0.5 })
// Live values: [event time of the newest reading, lat, lon, ...fields]; NaN = none.
const V_TS = 0,
  V_LAT = 1,
  V_LON = 2,
  V_FIELDS = 3

/**
 * Per-actor state, kept small (an active sensor should cost well under 2 KiB): the windows and one number array
 * `s` = live values (`V_*`: newest event time, lat, lon, then `fields`) followed by the detector slots of all
 * alerts (threshold alerts in config order, then device_failure, then staleness). The detector slots are held
 * sparse while the detectors are near their blank state (see `packSlots`) and expanded into a scratch buffer
 * only while a message is handled.
 */
export interface EnvironmentState {
  /** The compiled configuration (shared by all actors); null right after decode until a message brings it. */
  k: Compiled | null
  /** Windows, or right after decode the snapshot's windows and names until the first message brings the config. */
  w: EventWindows | Pending
  s: number[]
  /** Status of the newest reading. */
  st: string | null
  /** Readings late for at least one window definition. */
  late: number
}

/** A decoded snapshot not yet bound to a configuration: `s` then holds its live values and full detector slots. */
interface Pending {
  w: unknown
  a: string[]
  f: string[]
}

/** A configuration compiled for the handlers; one per configuration object. */
export interface Compiled {
  layout: WindowLayout
  /** Frozen copies of the field alerts (frozen options are validated once by the detectors). */
  alerts: readonly FieldAlertConfig[]
  fields: readonly string[]
  /** Alert types in slot order: field alerts, failure, stale. */
  types: string[]
  failureOff: number
  staleOff: number
  stale: { timeoutMs: number }
  /** Blank detector slots (full form). */
  blank: number[]
  /** Offset of the detector slots in `s` (V_FIELDS + fields). */
  dOff: number
}

function validate(c: EnvironmentConfig): void {
  const nonNeg = (setting: string, v: number, min: number): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
      throw new ConfigError(setting, `must be a finite number >= ${min}, got ${String(v)}`)
  }
  nonNeg('environment.allowedLatenessMs', c.allowedLatenessMs, 0)
  nonNeg('environment.idleTimeoutMs', c.idleTimeoutMs, 1)
  const types = new Set<string>()
  for (const [i, a] of [...c.alerts.map((a, i) => [i, a] as const), [-1, c.failure] as const, [-2, c.stale] as const]) {
    const where = i >= 0 ? `environment.alerts[${i}]` : i === -1 ? 'environment.failure' : 'environment.stale'
    if (typeof a.type !== 'string' || a.type.length === 0 || types.has(a.type))
      throw new ConfigError(`${where}.type`, `missing or duplicate alert type ${String(a.type)}`)
    types.add(a.type)
    if (!SEVERITIES.includes(a.severity))
      throw new ConfigError(`${where}.severity`, `must be one of ${SEVERITIES.join(', ')}`)
  }
  c.alerts.forEach((a, i) => {
    if (!c.fields.includes(a.field))
      throw new ConfigError(`environment.alerts[${i}].field`, `${a.field} is not one of the configured fields`)
    // Validates the threshold options (throws ConfigError naming the setting).
    new ThresholdForDuration(a)
  })
}

// Compiled once per configuration object; the runtime passes the same frozen config to every actor.
const compiledByConfig = new WeakMap<EnvironmentConfig, Compiled>()

function compiled(c: EnvironmentConfig): Compiled {
  let k = compiledByConfig.get(c)
  if (k) return k
  validate(c)
  const layout = compileWindows({ windows: c.windows, fields: c.windowFields, counts: COUNTS })
  const failureOff = c.alerts.length * TS
  const staleOff = failureOff + TS
  const blank: number[] = []
  for (let i = 0; i <= c.alerts.length; i++) blank.push(...ThresholdForDuration.blank())
  blank.push(...Staleness.blank())
  k = {
    layout,
    alerts: c.alerts.map((a) => Object.freeze({ ...a })),
    fields: c.fields,
    types: [...c.alerts.map((a) => a.type), c.failure.type, c.stale.type],
    failureOff,
    staleOff,
    stale: { timeoutMs: c.idleTimeoutMs },
    blank,
    dOff: V_FIELDS + c.fields.length,
  }
  compiledByConfig.set(c, k)
  return k
}

// ---- detector slots ----------------------------------------------------------------------------------------
//
// Most of the time every detector is idle and its slots equal the blank ones except for a few (last sample
// time, staleness clock). Sparse form: [mask, the slots that differ from blank, in order], mask = sum of 2^i
// over the differing positions i (exact in a double for up to 52 slots). The full form is used when it is not
// longer, so `s.length - dOff` tells them apart (sparse is always shorter than full).

/** Slots compared to blank: NaN equals NaN, -0 differs from 0 (the stored form must give back the same value). */
function same(a: number, b: number): boolean {
  return Object.is(a, b)
}

/** Scratch buffer for the full detector slots while one message is handled (single-threaded, never retained). */
const scratch: number[] = []

/** Expands the detector slots of `s` (sparse or full, from `off`) into `scratch`; returns it. */
function unpackSlots(s: readonly number[], off: number, blank: readonly number[]): number[] {
  const n = blank.length
  scratch.length = n
  if (s.length - off === n) {
    for (let i = 0; i < n; i++) scratch[i] = s[off + i] as number
    return scratch
  }
  let mask = s[off] as number,
    j = off + 1
  for (let i = 0; i < n; i++) {
    const bit = mask % 2
    mask = (mask - bit) / 2
    scratch[i] = bit === 1 ? (s[j++] as number) : (blank[i] as number)
  }
  return scratch
}

/** Stores full detector slots `d` into `st.s` from `off`, sparse when shorter; reallocates only when the size changes. */
function packSlots(st: EnvironmentState, off: number, d: readonly number[], blank: readonly number[]): void {
  const n = blank.length
  let diff = 0
  for (let i = 0; i < n; i++) if (!same(d[i] as number, blank[i] as number)) diff++
  const sparse = n <= 52 && diff + 1 < n
  const len = off + (sparse ? diff + 1 : n)
  // An exact-size array: a grown one would keep spare capacity in every actor.
  const s = st.s.length === len ? st.s : st.s.slice(0, off).concat(new Array<number>(len - off).fill(0))
  if (!sparse) {
    for (let i = 0; i < n; i++) s[off + i] = d[i] as number
  } else {
    let mask = 0,
      bit = 1,
      j = off + 1
    for (let i = 0; i < n; i++, bit *= 2) {
      if (same(d[i] as number, blank[i] as number)) continue
      mask += bit
      s[j++] = d[i] as number
    }
    s[off] = mask
  }
  st.s = s
}

function init(_entity: EntityRef, c: EnvironmentConfig): EnvironmentState {
  const k = compiled(c)
  const st: EnvironmentState = {
    k,
    w: new EventWindows(k.layout),
    s: new Array<number>(k.dOff).fill(NaN),
    st: null,
    late: 0,
  }
  packSlots(st, k.dOff, k.blank, k.blank)
  return st
}

/** Rebuilds the windows (and remaps detector and live slots by name) after a decode; no-op otherwise. */
function hydrate(s: EnvironmentState, c: EnvironmentConfig, k: Compiled): EventWindows {
  if (s.k === k && s.w instanceof EventWindows) return s.w
  let p: Pending, src: number[]
  if (s.w instanceof EventWindows && s.k) {
    // A different configuration object for a live state: remap through the snapshot form, like a restore.
    p = { w: s.w.toJSON(), a: s.k.types, f: [...s.k.fields] }
    src = [...s.s.slice(0, s.k.dOff), ...unpackSlots(s.s, s.k.dOff, s.k.blank)]
  } else if (!(s.w instanceof EventWindows)) {
    p = s.w
    src = s.s
  } else {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'environment state has windows but no configuration')
  }
  const w = EventWindows.fromJSON(k.layout, p.w)
  const srcOff = V_FIELDS + p.f.length
  const d = k.blank.slice()
  k.types.forEach((type, i) => {
    const j = p.a.indexOf(type)
    // Field alerts, failure and stale have different slot counts: only copy between slots of the same kind.
    const size = i === k.types.length - 1 ? Staleness.SLOTS : TS
    const jSize = j === p.a.length - 1 ? Staleness.SLOTS : TS
    if (j < 0 || size !== jSize) return
    for (let x = 0; x < size; x++) d[i * TS + x] = src[srcOff + j * TS + x] as number
  })
  const v = new Array<number>(k.dOff).fill(NaN)
  for (let i = 0; i < V_FIELDS; i++) v[i] = src[i] as number
  c.fields.forEach((f, i) => {
    const j = p.f.indexOf(f)
    if (j >= 0) v[V_FIELDS + i] = src[V_FIELDS + j] as number
  })
  s.k = k
  s.w = w
  s.s = v
  packSlots(s, k.dOff, d, k.blank)
  return w
}

function emitWindows(ctx: ActorContext, ws: WindowBody[]): void {
  for (const b of ws) ctx.emit('window', `${b.window}:${b.start}`, b.end, b)
}

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100)
}

function emitAlert(
  ctx: ActorContext,
  type: string,
  severity: Severity,
  ev: DetectorEvent,
  ts: number,
  explanation: string,
  details: Record<string, unknown>,
): void {
  const alertId = alert.alertId(ctx.entity, type, ev.start)
  const body: AlertBody = {
    alertId,
    type,
    severity,
    state: ev.state,
    start: ev.start,
    value: ev.value,
    threshold: ev.threshold,
    explanation,
    details: { peak: ev.peak, ...details },
  }
  if (ev.end !== undefined) body.end = ev.end
  alert.emitAlert(ctx, ts, body)
}

function explainField(a: FieldAlertConfig, ev: DetectorEvent): string {
  const up = a.above !== undefined
  const word = up ? 'above' : 'below'
  if (ev.state === 'close') {
    const clear = up ? ev.threshold - (a.hysteresis ?? 0) : ev.threshold + (a.hysteresis ?? 0)
    return `${a.field} back to ${fmt(ev.value)} ${a.unit} (${up ? '<=' : '>='} ${fmt(clear)} ${a.unit}); peak ${fmt(ev.peak)} ${a.unit}`
  }
  if (ev.state === 'update')
    return `${a.field} peak ${fmt(ev.peak)} ${a.unit}, ${word} ${fmt(ev.threshold)} ${a.unit} since ${new Date(ev.start).toISOString()}`
  return `${a.field} ${fmt(ev.value)} ${a.unit} ${word} ${fmt(ev.threshold)} ${a.unit} for >= ${fmt(a.durationMs / 1000)} s`
}

function onReading(s: EnvironmentState, r: Reading, ctx: ActorContext, c: EnvironmentConfig): void {
  const k = compiled(c)
  const w = hydrate(s, c, k)
  emitWindows(ctx, w.advance(ctx.watermark))

  // Detector slots in full form for this message (a scratch buffer: handlers do not re-enter), stored back at the end.
  const d = unpackSlots(s.s, k.dOff, k.blank)
  const stale = new Staleness(k.stale, d, k.staleOff)
  const sev = stale.seen(ctx.procTime, ctx.maxEventTime)
  if (sev) {
    emitAlert(
      ctx,
      c.stale.type,
      c.stale.severity,
      sev,
      r.ts,
      `readings resumed after ${fmt(sev.value / 1000)} s of silence`,
      {},
    )
  }
  ctx.setTimer(IDLE_TIMER, 'processing', ctx.procTime + c.idleTimeoutMs)

  const f = r.fields
  const v = s.s
  // Detectors and the live view follow the newest reading; `!(<)` also takes the first one (NaN). Equal event
  // times: the later arrival counts as the newest.
  const newest = !(r.ts < (v[V_TS] as number))
  let opened = 0
  for (let i = 0; newest && i < k.alerts.length; i++) {
    const a = k.alerts[i] as FieldAlertConfig
    const x = f[a.field]
    if (typeof x !== 'number') continue
    const ev = new ThresholdForDuration(a, d, i * TS).update(r.ts, x)
    if (!ev) continue
    if (ev.state === 'open') opened++
    emitAlert(ctx, a.type, a.severity, ev, r.ts, explainField(a, ev), { field: a.field, unit: a.unit })
  }
  const status = f.status
  const code = typeof status === 'string' ? STATUS_CODE[status] : undefined
  if (newest && code !== undefined) {
    const ev = new ThresholdForDuration(FAILURE_OPTS, d, k.failureOff).update(r.ts, code)
    if (ev) {
      if (ev.state === 'open') opened++
      emitAlert(
        ctx,
        c.failure.type,
        c.failure.severity,
        ev,
        r.ts,
        ev.state === 'open' ? 'device reports status failure' : 'device reports status ok again',
        { status },
      )
    }
  }

  if (newest) {
    v[V_TS] = r.ts
    if (r.loc && Number.isFinite(r.loc.lat) && Number.isFinite(r.loc.lon)) {
      v[V_LAT] = r.loc.lat
      v[V_LON] = r.loc.lon
    }
    for (let i = 0; i < c.fields.length; i++) {
      const x = f[c.fields[i] as string]
      if (typeof x === 'number' && Number.isFinite(x)) v[V_FIELDS + i] = x
    }
    if (typeof status === 'string') s.st = status
  }
  packSlots(s, k.dOff, d, k.blank)

  const late = w.add(r.ts, f, {
    alerts: opened,
    failures: status === 'failure' ? 1 : 0,
    warnings: status === 'warning' ? 1 : 0,
  })
  if (late !== 0) {
    s.late++
    ctx.emit('late', `late:${ctx.seq}`, r.ts, {
      readingTs: r.ts,
      watermark: ctx.watermark,
      readingSeq: ctx.seq,
      fields: f,
    })
  }
}

function onTimer(s: EnvironmentState, t: FiredTimer, ctx: ActorContext, c: EnvironmentConfig): void {
  if (t.name !== IDLE_TIMER) return
  const k = compiled(c)
  emitWindows(ctx, hydrate(s, c, k).flushAll())
  const d = unpackSlots(s.s, k.dOff, k.blank)
  const ev = new Staleness(k.stale, d, k.staleOff).fire(ctx.procTime)
  packSlots(s, k.dOff, d, k.blank)
  if (ev) {
    emitAlert(
      ctx,
      c.stale.type,
      c.stale.severity,
      ev,
      ev.start,
      `no reading for ${fmt(ev.value / 1000)} s (idle timeout ${fmt(c.idleTimeoutMs / 1000)} s); open windows flushed`,
      {},
    )
  }
}

function orNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null
}

function query(
  s: EnvironmentState,
  ctx: { entity: EntityRef; watermark: number; lastSeq: number },
  c: EnvironmentConfig,
): unknown {
  const k = compiled(c)
  const w = hydrate(s, c, k)
  const last: Record<string, FieldValue> = {}
  c.fields.forEach((f, i) => {
    const x = s.s[V_FIELDS + i] as number
    if (!Number.isNaN(x)) last[f] = x
  })
  if (s.st !== null) last.status = s.st
  const alerts: Array<{ type: string; severity: Severity; alertId: string; start: number; peak: number | null }> = []
  const open = (type: string, severity: Severity, start: number | undefined, peak: number | undefined): void => {
    if (start === undefined) return
    alerts.push({ type, severity, alertId: alert.alertId(ctx.entity, type, start), start, peak: orNull(peak) })
  }
  const d = unpackSlots(s.s, k.dOff, k.blank)
  k.alerts.forEach((a, i) => {
    const td = new ThresholdForDuration(a, d, i * TS)
    if (td.active) open(a.type, a.severity, td.start, td.peak)
  })
  const fd = new ThresholdForDuration(FAILURE_OPTS, d, k.failureOff)
  if (fd.active) open(c.failure.type, c.failure.severity, fd.start, fd.peak)
  if (new Staleness(k.stale, d, k.staleOff).active) open(c.stale.type, c.stale.severity, d[k.staleOff + 2], undefined)
  const lat = s.s[V_LAT] as number,
    lon = s.s[V_LON] as number
  return {
    lastTs: orNull(s.s[V_TS]),
    watermark: orNull(ctx.watermark),
    lastSeq: ctx.lastSeq,
    last,
    loc: Number.isNaN(lat) ? null : { lat, lon },
    windows: w.openWindows(),
    alerts,
    lateCount: s.late,
  }
}

// ---- snapshot codec (version 1) -------------------------------------------------------------------------

const CODEC_VERSION = 1

/** Encoded state: windows, detector slots and live values with null for NaN, and the names that key them. */
interface Encoded {
  w: unknown
  a: string[]
  f: string[]
  d: Array<number | null>
  v: Array<number | null>
  s: string | null
  l: number
}

function slotsOut(xs: readonly number[]): Array<number | null> {
  return xs.map((x) => (Number.isFinite(x) ? x : null))
}

function slotsIn(xs: unknown, what: string): number[] {
  if (!Array.isArray(xs) || !xs.every((x) => x === null || (typeof x === 'number' && Number.isFinite(x)))) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_CORRUPT,
      `environment snapshot: ${what} is not a list of numbers`,
    )
  }
  return (xs as Array<number | null>).map((x) => x ?? NaN)
}

function encode(s: EnvironmentState): Encoded {
  const k = s.k
  if (!(s.w instanceof EventWindows) || !k) {
    // A state decoded but never hydrated re-encodes its pending snapshot unchanged.
    const p = s.w as Pending
    const vLen = V_FIELDS + p.f.length
    return { w: p.w, a: p.a, f: p.f, d: slotsOut(s.s.slice(vLen)), v: slotsOut(s.s.slice(0, vLen)), s: s.st, l: s.late }
  }
  return {
    w: s.w.toJSON(),
    a: k.types,
    f: [...k.fields],
    d: slotsOut(unpackSlots(s.s, k.dOff, k.blank)),
    v: slotsOut(s.s.slice(0, k.dOff)),
    s: s.st,
    l: s.late,
  }
}

function decode(data: unknown, version: number): EnvironmentState {
  if (version !== CODEC_VERSION) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_VERSION,
      `environment snapshot version ${version} is not ${CODEC_VERSION}`,
    )
  }
  const e = data as Partial<Encoded> | null
  const names = (x: unknown): x is string[] => Array.isArray(x) && x.every((y) => typeof y === 'string')
  if (
    !e ||
    typeof e !== 'object' ||
    !names(e.a) ||
    !names(e.f) ||
    !(e.s === null || typeof e.s === 'string') ||
    !Number.isSafeInteger(e.l) ||
    (e.l as number) < 0 ||
    e.w === undefined
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'environment snapshot is not an environment state')
  }
  const d = slotsIn(e.d, 'detector slots')
  const v = slotsIn(e.v, 'live values')
  if (d.length !== e.a.length * TS - TS + Staleness.SLOTS || v.length !== V_FIELDS + e.f.length) {
    throw new SnapshotError(
      RuntimeErrorCodes.SNAPSHOT_CORRUPT,
      'environment snapshot: slot counts do not match its names',
    )
  }
  return { k: null, w: { w: e.w, a: e.a, f: e.f }, s: v.concat(d), st: e.s ?? null, late: e.l as number }
}

/** The environment profile (kind `sensor`). */
export const environment = defineActor<EnvironmentState, EnvironmentConfig>({
  kind: 'sensor',
  profile: 'environment',
  defaults: ENVIRONMENT_DEFAULTS,
  allowedLatenessMs: (c) => c.allowedLatenessMs,
  init,
  codec: { version: CODEC_VERSION, encode, decode },
  onReading,
  onTimer,
  query,
})
