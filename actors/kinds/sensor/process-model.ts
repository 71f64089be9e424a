/**
 * The streaming statistics behind the plant (`process`) profile, kept apart from the alert logic so they can be
 * tested alone: an exponentially weighted (EW) bivariate regression of a sensor's value on the two covariates
 * every plant reading carries (stage flow and water temperature), an EW scale of its residual, and replay
 * fingerprints of whole readings.
 *
 * Why a regression: in a treatment plant most of a sensor's daily cycle and its response to rain are explained
 * by the hydraulic load (flow) and by temperature. The residual (value - what flow and temperature predict) is
 * flat when the process is healthy, so one robust scale on it covers day, night and storms alike, and "the value
 * disagrees with its correlated sensors" is exactly a large residual.
 *
 * All state is a flat `number[]` (M_SLOTS numbers), updated in O(1) per reading.
 */

/** Slots of the regression state. */
export const M = {
  /** Number of readings learned (saturates the weight at 1/halfLife-derived alpha). */
  N: 0,
  MF: 1,
  MT: 2,
  MV: 3,
  /** EW covariances: flow-flow, flow-temp, temp-temp, flow-value, temp-value, value-value. */
  CFF: 4,
  CFT: 5,
  CTT: 6,
  CFV: 7,
  CTV: 8,
  CVV: 9,
  /** EW variance of the residual (learned from healthy readings only). */
  S2: 10,
  /** Range of flow and temperature learned so far. */
  FMIN: 11,
  FMAX: 12,
  TMIN: 13,
  TMAX: 14,
} as const
export const M_SLOTS = 15

export function blankModel(): number[] {
  const m = new Array<number>(M_SLOTS).fill(0)
  m[M.FMIN] = m[M.TMIN] = Number.MAX_VALUE
  m[M.FMAX] = m[M.TMAX] = -Number.MAX_VALUE
  return m
}

/**
 * True when (flow, temp) lies outside the learned range by more than `margin` of its width (flow) or twice that
 * (temperature, which wanders slowly with the weather): the regression would extrapolate, so its residual is no
 * evidence yet; the reading is learned instead.
 */
export function novel(m: readonly number[], flow: number, temp: number, margin: number): boolean {
  const fl = m[M.FMIN] as number,
    fh = m[M.FMAX] as number,
    tl = m[M.TMIN] as number,
    th = m[M.TMAX] as number
  const fw = (fh - fl) * margin,
    tw = (th - tl) * margin * 2
  return flow < fl - fw || flow > fh + fw || temp < tl - tw || temp > th + tw
}

/** Alpha of an EW average after `n` samples: exact mean at first, then 1 / minN (a window of ~minN samples). */
function alphaOf(n: number, minN: number): number {
  return 1 / Math.min(n + 1, minN)
}

export interface Prediction {
  /** Expected value from flow and temperature. */
  expected: number
  /** Residual scale (standard deviation), floored. */
  sigma: number
  /** Coefficients: value change per unit of flow, per °C. */
  bf: number
  bt: number
}

/** Ridge term (relative to the covariate variances): keeps the 2x2 solve sane while flow barely moves. */
const RIDGE = 1e-3

/** What the model expects for (flow, temp); `sigmaFloor` bounds the scale from below (units of the value). */
export function predict(m: readonly number[], flow: number, temp: number, sigmaFloor: number): Prediction {
  const cff = (m[M.CFF] as number) * (1 + RIDGE) + 1e-12
  const ctt = (m[M.CTT] as number) * (1 + RIDGE) + 1e-12
  const cft = m[M.CFT] as number
  const cfv = m[M.CFV] as number,
    ctv = m[M.CTV] as number
  const det = cff * ctt - cft * cft
  let bf = 0,
    bt = 0
  if (det > 0) {
    bf = (cfv * ctt - ctv * cft) / det
    bt = (ctv * cff - cfv * cft) / det
  }
  const expected = (m[M.MV] as number) + bf * (flow - (m[M.MF] as number)) + bt * (temp - (m[M.MT] as number))
  const s2 = m[M.S2] as number
  return { expected, sigma: Math.max(Math.sqrt(s2), sigmaFloor), bf, bt }
}

/** Readings learned before the residual scale starts. */
export const SCALE_AFTER = 120

/** Learns one healthy reading; `residual` is the one `predict` gave before this update (NaN: not learned). */
export function learn(
  m: number[],
  flow: number,
  temp: number,
  value: number,
  residual: number,
  halfLife: number,
): void {
  const n = m[M.N] as number
  const a = alphaOf(n, halfLife)
  const df = flow - (m[M.MF] as number),
    dt = temp - (m[M.MT] as number),
    dv = value - (m[M.MV] as number)
  m[M.MF] = (m[M.MF] as number) + a * df
  m[M.MT] = (m[M.MT] as number) + a * dt
  m[M.MV] = (m[M.MV] as number) + a * dv
  const k = 1 - a
  m[M.CFF] = k * ((m[M.CFF] as number) + a * df * df)
  m[M.CFT] = k * ((m[M.CFT] as number) + a * df * dt)
  m[M.CTT] = k * ((m[M.CTT] as number) + a * dt * dt)
  m[M.CFV] = k * ((m[M.CFV] as number) + a * df * dv)
  m[M.CTV] = k * ((m[M.CTV] as number) + a * dt * dv)
  m[M.CVV] = k * ((m[M.CVV] as number) + a * dv * dv)
  // The residual scale starts once the regression has seen SCALE_AFTER readings: earlier residuals reflect an
  // unsettled fit, not the process.
  if (n >= SCALE_AFTER && Number.isFinite(residual)) {
    const as = alphaOf(n - SCALE_AFTER, halfLife)
    m[M.S2] = (1 - as) * (m[M.S2] as number) + as * residual * residual
  }
  if (flow < (m[M.FMIN] as number)) m[M.FMIN] = flow
  if (flow > (m[M.FMAX] as number)) m[M.FMAX] = flow
  if (temp < (m[M.TMIN] as number)) m[M.TMIN] = temp
  if (temp > (m[M.TMAX] as number)) m[M.TMAX] = temp
  m[M.N] = n + 1
}

/** z of `x` against the EW mean/variance of flow or temperature held in the model. */
export function covariateZ(m: readonly number[], which: 'flow' | 'temp', x: number): number {
  const mean = m[which === 'flow' ? M.MF : M.MT] as number
  const v = m[which === 'flow' ? M.CFF : M.CTT] as number
  return v > 0 ? (x - mean) / Math.sqrt(v) : 0
}

// ---- replay fingerprints -------------------------------------------------------------------------------

const f64 = new Float64Array(1)
const u32 = new Uint32Array(f64.buffer)

/** A 32-bit fingerprint of (value, flow, temp) exactly as sent: a replayed reading repeats all three bits for bit. */
export function fingerprint(value: number, flow: number, temp: number): number {
  let h = 0x811c9dc5
  for (const x of [value, flow, temp]) {
    f64[0] = x
    h = Math.imul(h ^ (u32[0] as number), 0x01000193)
    h = Math.imul(h ^ (u32[1] as number), 0x01000193)
    h ^= h >>> 15
  }
  return h >>> 0
}

/**
 * Recent fingerprints: a ring (kept in the state, snapshotted) plus an index rebuilt from it on demand (not
 * snapshotted; a WeakMap keyed by the ring array, so it goes away with the state). The index is an open-addressing
 * table of ring positions (linear probing, backward-shift deletion) in one Int32Array of a power of two >= twice
 * the ring: 8 KB for the default 720, where a Map would cost several times that per actor.
 */
interface RingIndex {
  table: Int32Array
  mask: number
}
const indexes = new WeakMap<number[], RingIndex>()

function insertAt(ix: RingIndex, ring: readonly number[], pos: number): void {
  let i = (ring[pos] as number) & ix.mask
  while (ix.table[i] !== 0) i = (i + 1) & ix.mask
  ix.table[i] = pos + 1
}

function indexOf(ring: number[]): RingIndex {
  let ix = indexes.get(ring)
  if (!ix) {
    let size = 8
    while (size < 2 * ring.length) size *= 2
    ix = { table: new Int32Array(size), mask: size - 1 }
    for (let p = 0; p < ring.length; p++) if (!Number.isNaN(ring[p] as number)) insertAt(ix, ring, p)
    indexes.set(ring, ix)
  }
  return ix
}

/** True when `h` is among the recent fingerprints. */
export function seen(ring: number[], h: number): boolean {
  const ix = indexOf(ring)
  for (let i = h & ix.mask; ; i = (i + 1) & ix.mask) {
    const e = ix.table[i] as number
    if (e === 0) return false
    if (ring[e - 1] === h) return true
  }
}

/** Removes ring position `pos` from the index (backward-shift deletion keeps every probe chain unbroken). */
function removeAt(ix: RingIndex, ring: readonly number[], pos: number): void {
  const { table, mask } = ix
  let i = (ring[pos] as number) & mask
  while (table[i] !== pos + 1) {
    if (table[i] === 0) return
    i = (i + 1) & mask
  }
  for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
    const home = (ring[(table[j] as number) - 1] as number) & mask
    // Move entry j into the hole at i unless its home lies cyclically in (i, j].
    const inside = i < j ? home > i && home <= j : home > i || home <= j
    if (!inside) {
      table[i] = table[j] as number
      i = j
    }
  }
  table[i] = 0
}

/** Adds `h` at `pos` (overwriting the oldest); returns the next position. */
export function remember(ring: number[], pos: number, h: number): number {
  const ix = indexOf(ring)
  if (!Number.isNaN(ring[pos] as number)) removeAt(ix, ring, pos)
  ring[pos] = h
  insertAt(ix, ring, pos)
  return (pos + 1) % ring.length
}
