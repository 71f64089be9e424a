/**
 * Sensor profile `process-pair`: one actor per redundant pair of plant probes (two instruments on one P&ID tag,
 * `bio-do-01a` / `bio-do-01b`), fed with BOTH members' readings (issue 17; docs/profiles.md "Redundant pairs").
 *
 * Why an actor of its own: "one probe of a pair departs from its healthy partner" and "one probe's offset creeps
 * away over hours" are invisible to each probe's own actor (the process moves both the same way, and a 1-3 sigma
 * offset is far inside a nonlinear plant's unexplained swings), and obvious in the pair's difference, where the
 * shared process cancels. The runtime has no actor-to-actor calls (ARCHITECTURE.md: an actor sees only its own
 * input log), so the pair gets an input log of its own: every reading of a member is ALSO a reading of the pair
 * entity (`sensor:<tag>`, profile `process-pair`), with the field `member` naming the probe. It is an ordinary
 * actor: its own partition, stream order, rid dedupe, snapshots and replay; exactly-once holds as for any actor,
 * and nothing it computes depends on another actor's state.
 *
 * Readings: `member` (the probe's id) and `value` (absent when the poll got nothing); other fields are ignored.
 * The first two distinct members seen are the pair; a reading naming a third is counted (`foreign`) and ignored.
 *
 * Method, per event-time minute (a minute closes when the pair's max event time passes its end by
 * allowedLatenessMs; readings older than the oldest open minute are `late` and counted):
 *   - each member's minute mean (needs minReadings polls) and whether it moved inside the minute;
 *   - the difference d = a - b, against an EW regression of d on the pair mean m = (a + b) / 2 (memory
 *     regMinutes): two probes of one tag differ by an offset and a gain, so d follows the process level a little;
 *   - r = d - predicted: its fast mean (fastMinutes) and slow mean (slowMinutes), each over its own healthy scale
 *     (EW mean absolute value, learned only while no alert is open and the pair looks healthy);
 *   - process_malfunction: |fast z| > malfunctionZ, same sign, for confirmMinutes (one probe departed within
 *     minutes);  sensor_drift: |slow z| > driftZ for driftMinutes with no fast excursion (an offset creeping in);
 *   - an open drift yields to a malfunction: while it is open the fast mean carries its offset, so the
 *     malfunction run counts the fast mean's departure from the slow one; confirmed, it closes the drift
 *     (`superseded by process_malfunction`) and opens a malfunction on the probe that moved, either member;
 *   - the probe blamed: the member whose minute mean moved further from its own reference level (an EW mean
 *     frozen while the pair disagrees): the shared process moves both, the fault only one.
 * Minutes where a member is flat (no change inside the minute nor since the last one: stuck, or a
 * sample-and-hold analyser between cycles) teach nothing and confirm nothing: a stuck probe is the probe's own
 * actor's finding (sensor_failure), not a disagreement.
 *
 * Alerts name the member: entity of the output = the pair, `details.sensor` = the probe, alertId
 * `sensor:<probe>:<type>:<start>` (the probe's alert, raised by its pair). One alert per episode: it updates when
 * its |z| grows by updateZ, closes after clearMinutes under clearZ. Out of service (reference `service`): a pair
 * with a member out of service raises nothing, and an open alert closes.
 * State: ~70 numbers.
 */
import { defineActor } from '../../actor.js'
import type { ActorContext } from '../../actor.js'
import { ConfigError, RuntimeErrorCodes, SnapshotError } from '../../errors.js'
import { SERVICE_REF, type ServiceSet } from '../../service.js'
import type { AlertBody, EntityRef, Reading, Severity } from '../../types.js'

export interface PairConfig {
  allowedLatenessMs: number
  /** Polls a member needs in a minute for its minute mean to count. */
  minReadings: number
  /** Minutes with both members before anything is judged. */
  warmupMinutes: number
  /** Memory of the regression of the difference on the pair level, and of the residual scales, in minutes. */
  regMinutes: number
  /** Memory of the healthy scales of the fast and of the slow mean (the fast one follows the level: many analysers' noise grows with it). */
  fastScaleMinutes: number
  slowScaleMinutes: number
  /** After a member comes back in service (a calibration moves its offset): minutes the pair re-learns its difference and judges nothing. */
  graceMinutes: number
  fastMinutes: number
  slowMinutes: number
  /** Memory of each member's reference level (the probe blamed is the one that left its own). */
  refMinutes: number
  malfunctionZ: number
  confirmMinutes: number
  driftZ: number
  driftMinutes: number
  /** |fast z| and |slow z| under which a minute is healthy enough for the regression to learn from. */
  learnZ: number
  /** A minute teaches a scale its |mean| clipped at this many scales. */
  scaleClipZ: number
  clearZ: number
  clearMinutes: number
  updateZ: number
  /**
   * Above the pair's usual level (EW mean |level| over fastScaleMinutes of healthy minutes) both scales grow in
   * proportion to the level: two probes' gain and noise differences grow with what they measure (plant7).
   */
  levelScale: boolean
  /** levelScale acts above this many times the usual level (a day's own swing stays judged as before). */
  levelScaleAbove: number
  severities: { process_malfunction: Severity; sensor_drift: Severity }
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

export const PAIR_DEFAULTS: PairConfig = deepFreeze({
  allowedLatenessMs: 15_000,
  minReadings: 4,
  warmupMinutes: 120,
  regMinutes: 720,
  fastScaleMinutes: 120,
  slowScaleMinutes: 720,
  graceMinutes: 20,
  fastMinutes: 3,
  slowMinutes: 30,
  refMinutes: 10,
  malfunctionZ: 5,
  confirmMinutes: 3,
  driftZ: 4.5,
  driftMinutes: 40,
  learnZ: 2,
  scaleClipZ: 3,
  clearZ: 1.5,
  clearMinutes: 5,
  updateZ: 1,
  levelScale: true,
  levelScaleAbove: 1.5,
  severities: { process_malfunction: 'critical', sensor_drift: 'warning' },
})

/** Checks a pair config; throws ConfigError naming the setting. */
export function validatePairConfig(c: PairConfig): void {
  const num = (k: string, v: unknown, min: number, integer = false): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      throw new ConfigError(
        `process-pair.${k}`,
        `must be a finite ${integer ? 'integer' : 'number'} >= ${min}, got ${String(v)}`,
      )
    }
  }
  num('allowedLatenessMs', c.allowedLatenessMs, 0)
  if (c.allowedLatenessMs >= 60_000)
    throw new ConfigError('process-pair.allowedLatenessMs', 'must be < 60000 (one minute)')
  for (const k of [
    'minReadings',
    'warmupMinutes',
    'regMinutes',
    'fastScaleMinutes',
    'slowScaleMinutes',
    'fastMinutes',
    'slowMinutes',
    'refMinutes',
    'confirmMinutes',
    'driftMinutes',
    'clearMinutes',
  ] as const)
    num(k, c[k], 1, true)
  num('graceMinutes', c.graceMinutes, 0, true)
  for (const k of ['malfunctionZ', 'driftZ', 'learnZ', 'scaleClipZ', 'clearZ', 'updateZ'] as const) num(k, c[k], 0)
  num('levelScaleAbove', c.levelScaleAbove, 1)
  if (c.clearZ > c.malfunctionZ) throw new ConfigError('process-pair.clearZ', 'must be <= malfunctionZ')
  if (typeof c.levelScale !== 'boolean') throw new ConfigError('process-pair.levelScale', 'must be a boolean')
  if (!c.severities || typeof c.severities !== 'object')
    throw new ConfigError('process-pair.severities', 'must be an object')
  for (const k of ['process_malfunction', 'sensor_drift'] as const) {
    if (!['info', 'warning', 'critical'].includes(c.severities[k]))
      throw new ConfigError(`process-pair.severities.${k}`, 'must be info, warning or critical')
  }
}

const validated = new WeakSet<PairConfig>()
function checked(c: PairConfig): PairConfig {
  if (!validated.has(c)) {
    validatePairConfig(c)
    validated.add(c)
  }
  return c
}

/** Slots of `v`. NaN = none. */
const P = {
  /** Oldest open minute (index = floor(ts / 60 s)), max event time. */
  OPEN: 0,
  MAXTS: 1,
  /** Minute accumulators, two open minutes x two members: sum, count, min, max (4 x 4 slots from ACC). */
  ACC: 2,
  /** Last minute mean of each member, and its reference level. */
  LASTA: 18,
  LASTB: 19,
  REFA: 20,
  REFB: 21,
  /** Minutes with both members; EW regression of d on m: weight-free means m, d, mm, md. */
  N: 22,
  RM: 23,
  RD: 24,
  RMM: 25,
  RMD: 26,
  /** Residual fast and slow means, their healthy scales. */
  FAST: 27,
  SLOW: 28,
  FSCALE: 29,
  SSCALE: 30,
  /** Minutes beyond the malfunction threshold (sign in OSIGN), beyond the drift threshold, under clear. */
  OVER: 31,
  OSIGN: 32,
  SRUN: 33,
  CLEAR: 34,
  /** Open alert: type (NONE, MAL, DRIFT), member index (0 a, 1 b), start, |z| last reported. */
  AT: 35,
  AM: 36,
  AS: 37,
  UPD: 38,
  /** Minutes not learned in a row because of the slow mean alone. */
  GATED: 39,
  /** Minutes of re-learning left after a member came back in service. */
  GRACE: 40,
  /** The regression's second regressor g (the pair level's change over the minute: probe lags differ, so d follows it): means g, mg, gg, gd; last m. */
  RG: 41,
  RMG: 42,
  RGG: 43,
  RGD: 44,
  PREVM: 45,
  /** EW mean |pair level| over the healthy minutes the scales learn from (levelScale). */
  LEVEL: 46,
} as const
const P_SLOTS = 47
/** Slots of a snapshot written before LEVEL (plant7): restored with LEVEL unknown. */
const P_SLOTS_V1 = 46
const NONE = -1,
  MAL = 0,
  DRIFT = 1
const TYPES = ['process_malfunction', 'sensor_drift'] as const
const MINUTE = 60_000

export interface PairState {
  /** The two members, in the order first seen ('' = not seen yet). */
  a: string
  b: string
  v: number[]
  late: number
  foreign: number
}

function init(_e: EntityRef, c: PairConfig): PairState {
  checked(c)
  const v = new Array<number>(P_SLOTS).fill(NaN)
  for (let i = 0; i < 16; i += 4) {
    v[P.ACC + i] = 0
    v[P.ACC + i + 1] = 0
  }
  for (const k of [P.N, P.OVER, P.OSIGN, P.SRUN, P.CLEAR, P.GATED, P.FAST, P.SLOW, P.GRACE, P.RG, P.RMG, P.RGG, P.RGD])
    v[k] = 0
  v[P.AT] = NONE
  return { a: '', b: '', v, late: 0, foreign: 0 }
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined)
const ewa = (prev: number, x: number, n: number, memory: number): number =>
  Number.isNaN(prev) ? x : prev + (x - prev) / Math.min(n + 1, memory)
const fmt = (x: number): string => String(Math.round(x * 1000) / 1000)

/** Accumulator base of member `m` (0, 1) in the slot of minute `k`. */
const accAt = (k: number, m: number): number => P.ACC + ((k & 1) * 2 + m) * 4

function accumulate(v: number[], k: number, m: number, x: number): void {
  const o = accAt(k, m)
  v[o] = (v[o] as number) + x
  v[o + 1] = (v[o + 1] as number) + 1
  if (!(x >= (v[o + 2] as number))) v[o + 2] = x
  if (!(x <= (v[o + 3] as number))) v[o + 3] = x
}

/** Minute mean of member m in minute k (NaN when too few polls) and whether it was flat; resets the slot. */
function take(v: number[], k: number, m: number, c: PairConfig): { mean: number; flat: boolean } {
  const o = accAt(k, m)
  const n = v[o + 1] as number
  const mean = n >= c.minReadings ? (v[o] as number) / n : NaN
  const flat = n > 0 && v[o + 2] === v[o + 3]
  v[o] = 0
  v[o + 1] = 0
  v[o + 2] = NaN
  v[o + 3] = NaN
  return { mean, flat }
}

function isOut(ctx: ActorContext, s: PairState): string | undefined {
  const ref = ctx.reference(SERVICE_REF)
  const set = ref?.data as ServiceSet | undefined
  if (!set?.sensors) return undefined
  for (const id of [s.a, s.b]) {
    const e = id ? set.sensors[id] : undefined
    if (e && (e.until === null || e.until === undefined || e.until > ctx.procTime))
      return `${id} out of service: ${e.reason}`
  }
  return undefined
}

function alertBody(
  s: PairState,
  ctx: ActorContext,
  c: PairConfig,
  state: 'open' | 'update' | 'close',
  type: number,
  member: number,
  start: number,
  value: number,
  threshold: number,
  explanation: string,
  extra: Record<string, unknown>,
): { alertId: string; body: AlertBody } {
  const probe = member === 0 ? s.a : s.b
  const partner = member === 0 ? s.b : s.a
  const name = TYPES[type] as (typeof TYPES)[number]
  const alertId = `${ctx.entity.kind}:${probe}:${name}:${start}`
  const body: AlertBody = {
    alertId,
    type: name,
    severity: c.severities[name],
    state,
    start,
    value,
    threshold,
    explanation: `${probe}: ${explanation}`,
    details: { sensor: probe, partner, pair: ctx.entity.id, ...extra },
  }
  return { alertId, body }
}

function closeAlert(s: PairState, ctx: ActorContext, c: PairConfig, ts: number, why: string): void {
  const v = s.v
  const at = v[P.AT] as number
  if (at === NONE) return
  const { alertId, body } = alertBody(s, ctx, c, 'close', at, v[P.AM] as number, v[P.AS] as number, 0, 0, why, {})
  body.end = ts
  ctx.emit('alert', `${alertId}:close:${ctx.seq}`, ts, body)
  v[P.AT] = NONE
  v[P.CLEAR] = 0
  // What was under the alert is not evidence of the next one.
  v[P.SLOW] = 0
  v[P.SRUN] = 0
  v[P.OVER] = 0
}

/** Judges one closed minute with both members' means. */
function judge(
  s: PairState,
  ctx: ActorContext,
  c: PairConfig,
  ts: number,
  ma: number,
  mb: number,
  flat: boolean,
  out: string | undefined,
): void {
  const v = s.v
  const n = v[P.N] as number
  const m = (ma + mb) / 2,
    d = ma - mb
  const g = Number.isNaN(v[P.PREVM] as number) ? 0 : m - (v[P.PREVM] as number)
  v[P.PREVM] = m
  // Predicted difference from the EW regression of d on m and g (centred; coefficients 0 until they can be told).
  const rm = v[P.RM] as number,
    rg = v[P.RG] as number,
    rd = v[P.RD] as number
  const smm = (v[P.RMM] as number) - rm * rm,
    sgg = (v[P.RGG] as number) - rg * rg,
    smg = (v[P.RMG] as number) - rm * rg
  const smd = (v[P.RMD] as number) - rm * rd,
    sgd = (v[P.RGD] as number) - rg * rd
  const tiny = 1e-12 * (1 + rm * rm)
  const det = smm * sgg - smg * smg
  let beta = 0,
    gamma = 0
  if (n > 2 && det > tiny * tiny && smm > tiny && sgg > tiny) {
    beta = (smd * sgg - sgd * smg) / det
    gamma = (sgd * smm - smd * smg) / det
  } else if (n > 1 && smm > tiny) beta = smd / smm
  const pred = n > 0 ? rd + beta * (m - rm) + gamma * (g - rg) : d
  const r = d - pred
  v[P.FAST] = ewa(n > 0 ? (v[P.FAST] as number) : NaN, r, Infinity, c.fastMinutes)
  v[P.SLOW] = ewa(n > 0 ? (v[P.SLOW] as number) : NaN, r, Infinity, c.slowMinutes)
  const quantum = 1e-9 * (1 + Math.abs(m))
  // Above its usual level the pair's scales grow with it (levelScale): gain and noise differences of two probes
  // grow with what they measure, so a storm's three-fold flow or first flush of solids is not a disagreement.
  const lvl = v[P.LEVEL] as number
  const grow = c.levelScale && lvl > 0 ? Math.max(1, Math.abs(m) / (c.levelScaleAbove * lvl)) : 1
  const fs = grow * Math.max(Number.isNaN(v[P.FSCALE] as number) ? 0 : 1.2533 * (v[P.FSCALE] as number), quantum)
  const ss = grow * Math.max(Number.isNaN(v[P.SSCALE] as number) ? 0 : 1.2533 * (v[P.SSCALE] as number), quantum)
  const zf = (v[P.FAST] as number) / fs,
    zs = (v[P.SLOW] as number) / ss
  const warm = n >= c.warmupMinutes
  const at = v[P.AT] as number

  if (out) v[P.GRACE] = c.graceMinutes
  else if ((v[P.GRACE] as number) > 0) {
    // Back from maintenance with a new offset: the difference's level restarts here, the slope and scales stay.
    v[P.GRACE] = (v[P.GRACE] as number) - 1
    const shift = d - pred
    v[P.RD] = rd + shift
    v[P.RMD] = (v[P.RMD] as number) + rm * shift
    v[P.RGD] = (v[P.RGD] as number) + rg * shift
    v[P.FAST] = 0
    v[P.SLOW] = 0
    v[P.OVER] = 0
    v[P.SRUN] = 0
    return
  }
  // Learning: healthy-looking minutes only, so a fault never becomes the pair's normal.
  let learn = !out && !flat && at === NONE && (!warm || Math.abs(zf) < c.learnZ)
  if (learn && warm && Math.abs(zs) >= c.learnZ) {
    // ... unless the slow mean has sat there far longer than a drift takes to confirm: the regression is off.
    v[P.GATED] = (v[P.GATED] as number) + 1
    learn = (v[P.GATED] as number) > 8 * c.driftMinutes
  } else if (learn) v[P.GATED] = 0
  if (learn) {
    const mem = c.regMinutes
    v[P.RM] = ewa(n > 0 ? rm : NaN, m, n, mem)
    v[P.RD] = ewa(n > 0 ? rd : NaN, d, n, mem)
    v[P.RMM] = ewa(n > 0 ? (v[P.RMM] as number) : NaN, m * m, n, mem)
    v[P.RMD] = ewa(n > 0 ? (v[P.RMD] as number) : NaN, m * d, n, mem)
    v[P.RG] = ewa(n > 0 ? rg : NaN, g, n, mem)
    v[P.RMG] = ewa(n > 0 ? (v[P.RMG] as number) : NaN, m * g, n, mem)
    v[P.RGG] = ewa(n > 0 ? (v[P.RGG] as number) : NaN, g * g, n, mem)
    v[P.RGD] = ewa(n > 0 ? (v[P.RGD] as number) : NaN, g * d, n, mem)
    v[P.N] = n + 1
  }
  // The scales learn from every minute no alert holds and whose fast |z| is within malfunctionZ, its |mean|
  // clipped at scaleClipZ scales: gating them at learnZ would cut the tails off and shrink them minute after
  // minute; the clip keeps an excursion that builds up from teaching them much.
  if (!out && !flat && at === NONE && n > 0) {
    // (Unclipped while the pair warms up: the scales are still being found.)
    if (!warm || Math.abs(zf) <= c.malfunctionZ) {
      v[P.LEVEL] = ewa(v[P.LEVEL] as number, Math.abs(m), n, c.fastScaleMinutes)
      v[P.FSCALE] = ewa(
        v[P.FSCALE] as number,
        Math.min(Math.abs(v[P.FAST] as number), warm ? c.scaleClipZ * fs : Infinity),
        n,
        c.fastScaleMinutes,
      )
    }
    // The slow scale only while the slow mean is within scaleClipZ: a drift creeps under malfunctionZ for hours.
    if (!warm || (Math.abs(zf) <= c.malfunctionZ && Math.abs(zs) < c.scaleClipZ)) {
      v[P.SSCALE] = ewa(
        v[P.SSCALE] as number,
        Math.min(Math.abs(v[P.SLOW] as number), warm ? c.scaleClipZ * ss : Infinity),
        n,
        c.slowScaleMinutes,
      )
    }
  }
  // Under an open drift the offset is in the fast mean too: a sudden departure is the fast mean leaving the slow
  // one (zm), which is what the malfunction run counts and what stops the reference levels then.
  const zm = at === DRIFT ? ((v[P.FAST] as number) - (v[P.SLOW] as number)) / fs : zf
  // The reference levels stand still while the pair disagrees; under an open drift only a sudden departure stops
  // them (a malfunction that supersedes the drift is blamed against the levels just before it).
  const refMoved = Math.abs(zm) >= c.learnZ || at === MAL || (at === NONE && Math.abs(zs) >= c.learnZ)
  if (!refMoved || Number.isNaN(v[P.REFA] as number)) {
    v[P.REFA] = ewa(v[P.REFA] as number, ma, Infinity, c.refMinutes)
    v[P.REFB] = ewa(v[P.REFB] as number, mb, Infinity, c.refMinutes)
  }
  if (!warm) return

  // Evidence runs.
  const sign = zm > 0 ? 1 : -1
  if (!flat && Math.abs(zm) > c.malfunctionZ && ((v[P.OVER] as number) === 0 || v[P.OSIGN] === sign)) {
    v[P.OVER] = (v[P.OVER] as number) + 1
    v[P.OSIGN] = sign
  } else v[P.OVER] = 0
  if (!flat && Math.abs(zs) > c.driftZ && Math.abs(zf) <= c.malfunctionZ) v[P.SRUN] = (v[P.SRUN] as number) + 1
  else if (!(Math.abs(zs) > c.driftZ)) v[P.SRUN] = 0

  if (out) {
    closeAlert(s, ctx, c, ts, out)
    v[P.OVER] = 0
    v[P.SRUN] = 0
    return
  }
  const blame = Math.abs(ma - (v[P.REFA] as number)) >= Math.abs(mb - (v[P.REFB] as number)) ? 0 : 1
  const feats = (zPart: number, what: string): Array<{ feature: string; value: number; z: number; share: number }> => {
    const da = Math.abs(ma - (v[P.REFA] as number)),
      db = Math.abs(mb - (v[P.REFB] as number))
    const tot = Math.abs(zPart) + 1e-12
    return [
      { feature: what, value: r, z: Math.round(zPart * 100) / 100, share: 1 },
      { feature: 'moved_a', value: da, z: 0, share: 0 },
      { feature: 'moved_b', value: db, z: 0, share: 0 },
    ].map((f) => ({ ...f, share: Math.round((Math.abs(f.z) / tot) * 1000) / 1000 }))
  }
  if (at === DRIFT && (v[P.OVER] as number) >= c.confirmMinutes) {
    // A sudden disagreement while a slow one is open is a new fault (either probe): the open drift would hide it.
    const over = v[P.OVER] as number
    closeAlert(s, ctx, c, ts, 'superseded by process_malfunction')
    v[P.OVER] = over
  }
  if ((v[P.AT] as number) === NONE) {
    let type = NONE,
      z = 0,
      why = ''
    if ((v[P.OVER] as number) >= c.confirmMinutes) {
      type = MAL
      z = zm
      why = `disagrees with its redundant partner by ${fmt(Math.abs(zm))} sigma of the pair's difference for ${v[P.OVER] as number} min (it moved, its partner did not)`
    } else if ((v[P.SRUN] as number) >= c.driftMinutes) {
      type = DRIFT
      z = zs
      why = `its offset to its redundant partner has crept ${fmt(Math.abs(zs))} sigma (30 min mean) away for ${v[P.SRUN] as number} min`
    }
    if (type === NONE) return
    const start = ts
    const { alertId, body } = alertBody(
      s,
      ctx,
      c,
      'open',
      type,
      blame,
      start,
      blame === 0 ? ma : mb,
      type === MAL ? c.malfunctionZ : c.driftZ,
      why,
      {
        features: feats(z, type === MAL ? 'difference_fast' : 'difference_slow'),
        difference: d,
        expectedDifference: pred,
        reason: why,
      },
    )
    ctx.emit('alert', `${alertId}:open:${ctx.seq}`, ts, body)
    v[P.AT] = type
    v[P.AM] = blame
    v[P.AS] = start
    v[P.UPD] = Math.abs(z)
    v[P.CLEAR] = 0
    return
  }
  const z = at === MAL ? zf : zs
  if (Math.abs(z) >= (v[P.UPD] as number) + c.updateZ) {
    const member = v[P.AM] as number
    const why = `difference now ${fmt(Math.abs(z))} sigma`
    const { alertId, body } = alertBody(
      s,
      ctx,
      c,
      'update',
      at,
      member,
      v[P.AS] as number,
      member === 0 ? ma : mb,
      at === MAL ? c.malfunctionZ : c.driftZ,
      why,
      {
        features: feats(z, at === MAL ? 'difference_fast' : 'difference_slow'),
        difference: d,
        expectedDifference: pred,
        reason: why,
      },
    )
    ctx.emit('alert', `${alertId}:update:${ctx.seq}`, ts, body)
    v[P.UPD] = Math.abs(z)
  }
  const clear = at === MAL ? Math.abs(zf) < c.clearZ : Math.abs(zs) < c.clearZ && Math.abs(zf) < c.malfunctionZ
  v[P.CLEAR] = clear ? (v[P.CLEAR] as number) + 1 : 0
  if ((v[P.CLEAR] as number) >= c.clearMinutes) closeAlert(s, ctx, c, ts, 'the pair agrees again')
}

/** Closes minute k: both members' means, then the judgement. */
function closeMinute(s: PairState, ctx: ActorContext, c: PairConfig, k: number): void {
  const v = s.v
  const a = take(v, k, 0, c),
    b = take(v, k, 1, c)
  const fa = a.flat && a.mean === v[P.LASTA],
    fb = b.flat && b.mean === v[P.LASTB]
  if (!Number.isNaN(a.mean)) v[P.LASTA] = a.mean
  if (!Number.isNaN(b.mean)) v[P.LASTB] = b.mean
  if (Number.isNaN(a.mean) || Number.isNaN(b.mean)) return
  judge(s, ctx, c, (k + 1) * MINUTE, a.mean, b.mean, fa || fb, isOut(ctx, s))
}

function onReading(s: PairState, r: Reading, ctx: ActorContext, c: PairConfig): void {
  checked(c)
  const f = r.fields
  const member = typeof f['member'] === 'string' ? f['member'] : undefined
  if (member === undefined || member === '') {
    s.foreign++
    return
  }
  if (s.a === '') s.a = member
  else if (s.b === '' && member !== s.a) s.b = member
  const m = member === s.a ? 0 : member === s.b ? 1 : -1
  if (m < 0) {
    s.foreign++
    return
  }
  const v = s.v
  const k = Math.floor(r.ts / MINUTE)
  if (Number.isNaN(v[P.OPEN] as number)) v[P.OPEN] = k
  if (k < (v[P.OPEN] as number)) {
    s.late++
    return
  }
  if (!(r.ts <= (v[P.MAXTS] as number))) v[P.MAXTS] = r.ts
  // Close every minute whose end the max event time passed by the lateness. Only minutes `open` and `open + 1`
  // can hold data (lateness < 1 min), so a gap of many minutes costs two closes, not one per minute.
  const due = Math.floor(((v[P.MAXTS] as number) - c.allowedLatenessMs) / MINUTE)
  let open = v[P.OPEN] as number
  if (open < due) {
    closeMinute(s, ctx, c, open)
    if (open + 1 < due) closeMinute(s, ctx, c, open + 1)
    open = due
  }
  v[P.OPEN] = open
  if (k < open || k > open + 1) {
    s.late++
    return
  }
  const x = num(f['value'])
  if (x !== undefined) accumulate(v, k, m, x)
}

function query(s: PairState, ctx: { entity: EntityRef; watermark: number; lastSeq: number }, c: PairConfig): unknown {
  const v = s.v
  const at = v[P.AT] as number
  const z = (x: number): number | null => (Number.isFinite(x) ? x : null)
  return {
    members: [s.a || null, s.b || null],
    minutes: v[P.N],
    warm: (v[P.N] as number) >= c.warmupMinutes,
    difference: {
      fast: z(v[P.FAST] as number),
      slow: z(v[P.SLOW] as number),
      fastScale: z(v[P.FSCALE] as number),
      slowScale: z(v[P.SSCALE] as number),
    },
    alert: at === NONE ? null : { type: TYPES[at], sensor: (v[P.AM] as number) === 0 ? s.a : s.b, start: v[P.AS] },
    lateCount: s.late,
    foreignCount: s.foreign,
    lastSeq: ctx.lastSeq,
  }
}

interface Encoded {
  a: string
  b: string
  v: Array<number | null>
  l: number
  f: number
}

function encode(s: PairState): Encoded {
  return { a: s.a, b: s.b, v: s.v.map((x) => (Number.isFinite(x) ? x : null)), l: s.late, f: s.foreign }
}

function decode(data: unknown, version: number): PairState {
  if (version !== 1)
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_VERSION, `process-pair snapshot version ${version} is not 1`)
  const e = data as Partial<Encoded> | null
  if (
    !e ||
    typeof e !== 'object' ||
    typeof e.a !== 'string' ||
    typeof e.b !== 'string' ||
    !Number.isSafeInteger(e.l) ||
    !Number.isSafeInteger(e.f) ||
    !Array.isArray(e.v) ||
    (e.v.length !== P_SLOTS && e.v.length !== P_SLOTS_V1) ||
    !e.v.every((x) => x === null || (typeof x === 'number' && Number.isFinite(x)))
  ) {
    throw new SnapshotError(RuntimeErrorCodes.SNAPSHOT_CORRUPT, 'process-pair snapshot is not a pair state')
  }
  return {
    a: e.a,
    b: e.b,
    v: [...(e.v as Array<number | null>).map((x) => x ?? NaN), ...new Array<number>(P_SLOTS - e.v.length).fill(NaN)],
    late: e.l as number,
    foreign: e.f as number,
  }
}

/** The redundant-pair profile (kind `sensor`, one actor per P&ID tag with two probes). */
export const processPairProfile = defineActor<PairState, PairConfig>({
  kind: 'sensor',
  profile: 'process-pair',
  defaults: PAIR_DEFAULTS,
  // Minutes are closed by the profile's own lateness; the runtime's watermark lateness is the same.
  allowedLatenessMs: (c) => checked(c).allowedLatenessMs,
  init,
  codec: { version: 1, encode, decode },
  onReading,
  query,
})

/**
 * The pair actor's id for two probes: their shared P&ID tag (`bio-do-01a` + `bio-do-01b` -> `bio-do-01`) when
 * they differ only in a last letter, else both ids joined by `--`.
 */
export function pairEntityId(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a]
  if (x.length === y.length && x.length > 1 && x.slice(0, -1) === y.slice(0, -1)) return x.slice(0, -1)
  return `${x}--${y}`
}
