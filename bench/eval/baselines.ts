/**
 * Two peer detectors run on the same plant stream as any detector under test (issue 17), so every figure is a
 * ratio to something simple:
 * - `robustZBaseline`: per sensor, rolling median and MAD of the last hour of values, k = 5; type-agnostic;
 *   one alert per excursion (opens at |z| > k, closes after a minute back under 3).
 * - `isolationForestBaseline`: an Isolation Forest like the reference system's (50 trees, subsample 256), one
 *   forest per sensor on one-minute window features (level against the last hour, spread, largest step,
 *   repeated values, missing values, ten-minute level), trained on the warm-up only, with a per-sensor
 *   threshold set from warm-up scores only. Own implementation (Liu, Ting, Zhou 2008): ~100 lines, no
 *   dependency, deterministic.
 * Both alert with type `anomaly` (they do not type), so they count in the untyped figures only.
 */
import type { Reading } from '../../actors/types.js'
import type { AlertEvent, PlantDetector, DetectorInstance } from './plant-eval.js'

export const BASELINE_ALERT_TYPE = 'anomaly'

// ---------------------------------------------------------------------------------------------------------
// Robust z-score

/** A fixed-capacity window that keeps its values sorted (insert/remove by binary search and block moves). */
export class SortedWindow {
  private readonly ring: Float64Array
  private readonly sorted: Float64Array
  private head = 0
  size = 0

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity)
    this.sorted = new Float64Array(capacity)
  }

  push(v: number): void {
    if (this.size === this.capacity) {
      const old = this.ring[this.head] as number
      const i = this.find(old)
      this.sorted.copyWithin(i, i + 1, this.size)
      this.size--
    }
    this.ring[this.head] = v
    this.head = (this.head + 1) % this.capacity
    const j = this.find(v)
    this.sorted.copyWithin(j + 1, j, this.size)
    this.sorted[j] = v
    this.size++
  }

  median(): number {
    const n = this.size,
      m = n >> 1
    return n % 2 === 1 ? (this.sorted[m] as number) : ((this.sorted[m - 1] as number) + (this.sorted[m] as number)) / 2
  }

  /** Median absolute deviation from `med`, by merging the two sorted runs of deviations (O(n)). */
  mad(med: number): number {
    const n = this.size
    if (n === 0) return 0
    const s = this.sorted
    let r = this.find(med)
    let l = r - 1
    const k = n >> 1
    let last = 0,
      prev = 0
    for (let c = 0; c <= k; c++) {
      const dl = l >= 0 ? med - (s[l] as number) : Infinity
      const dr = r < n ? (s[r] as number) - med : Infinity
      prev = last
      if (dl <= dr) {
        last = dl
        l--
      } else {
        last = dr
        r++
      }
    }
    return n % 2 === 1 ? last : (prev + last) / 2
  }

  /** First index whose value is >= v. */
  private find(v: number): number {
    let lo = 0,
      hi = this.size
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((this.sorted[mid] as number) < v) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export interface RobustZOptions {
  /** Values in the rolling window (default 720: one hour at 5 s). */
  window?: number
  k?: number
  /** |z| under which an excursion counts as over, and for how many values (default 3, 12). */
  closeBelow?: number
  closeAfter?: number
  /** Values needed before scoring (default 120). */
  minFill?: number
}

interface ZState {
  w: SortedWindow
  prev: number | undefined
  step: number
  open: boolean
  calm: number
  since: number
  med: number
  mad: number
}

/** Rolling median/MAD z-score per sensor, type-agnostic. */
export function robustZBaseline(opts: RobustZOptions = {}): PlantDetector {
  const window = opts.window ?? 720
  const k = opts.k ?? 5
  const closeBelow = opts.closeBelow ?? 3
  const closeAfter = opts.closeAfter ?? 12
  const minFill = opts.minFill ?? 120
  return {
    name: `robust-z (median/MAD ${window} values, k=${k})`,
    create(): DetectorInstance {
      const states = new Map<string, ZState>()
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          const v = r.fields['value']
          if (typeof v !== 'number' || !Number.isFinite(v)) return []
          let s = states.get(entity)
          if (s === undefined) {
            s = {
              w: new SortedWindow(window),
              prev: undefined,
              step: Infinity,
              open: false,
              calm: 0,
              since: 0,
              med: 0,
              mad: 0,
            }
            states.set(entity, s)
          }
          // the instrument's resolution, learnt as the smallest change seen: the floor of the scale, so a
          // quantised sensor that sits still (MAD 0) does not turn every step into an infinite z
          if (s.prev !== undefined && v !== s.prev) s.step = Math.min(s.step, Math.abs(v - s.prev))
          s.prev = v
          const out: AlertEvent[] = []
          if (s.w.size >= minFill) {
            s.med = s.w.median()
            if (s.since % 12 === 0) s.mad = s.w.mad(s.med)
            s.since++
            const scale = Math.max(1.4826 * s.mad, Number.isFinite(s.step) ? s.step : 1e-9)
            const z = Math.abs(v - s.med) / scale
            if (!s.open && z > k) {
              s.open = true
              s.calm = 0
              out.push({ entity, type: BASELINE_ALERT_TYPE, state: 'open', ts: r.ts })
            } else if (s.open) {
              s.calm = z < closeBelow ? s.calm + 1 : 0
              if (s.calm >= closeAfter) {
                s.open = false
                out.push({ entity, type: BASELINE_ALERT_TYPE, state: 'close', ts: r.ts })
              }
            }
          }
          s.w.push(v)
          return out
        },
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------------------
// Isolation Forest

const EULER = 0.5772156649

/** Average path length of an unsuccessful BST search among n points: the normaliser of path lengths. */
export function cFactor(n: number): number {
  if (n <= 1) return 0
  if (n === 2) return 1
  return 2 * (Math.log(n - 1) + EULER) - (2 * (n - 1)) / n
}

interface Tree {
  /** Per node: split feature (-1 = leaf), split value, range of that feature among the node's points, children, leaf size. */
  feat: Int16Array
  split: Float64Array
  lo: Float64Array
  hi: Float64Array
  left: Int32Array
  right: Int32Array
  size: Int32Array
}

/** An Isolation Forest over fixed-length numeric vectors. */
export class IsolationForest {
  private readonly trees: Tree[] = []
  private readonly c: number

  constructor(data: readonly Float64Array[], opts: { trees?: number; sample?: number; seed?: number } = {}) {
    const nTrees = opts.trees ?? 50
    const psi = Math.min(opts.sample ?? 256, data.length)
    this.c = cFactor(psi)
    const maxDepth = Math.ceil(Math.log2(Math.max(psi, 2)))
    let seed = (opts.seed ?? 1) >>> 0
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) >>> 0
      let t = seed
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    const dims = data[0]?.length ?? 0
    for (let k = 0; k < nTrees; k++) {
      // subsample without replacement (partial Fisher-Yates)
      const idx = data.map((_, i) => i)
      for (let i = 0; i < psi; i++) {
        const j = i + Math.floor(rand() * (idx.length - i))
        const t = idx[i] as number
        idx[i] = idx[j] as number
        idx[j] = t
      }
      const cap = 2 * psi + 1
      const tree: Tree = {
        feat: new Int16Array(cap).fill(-1),
        split: new Float64Array(cap),
        lo: new Float64Array(cap),
        hi: new Float64Array(cap),
        left: new Int32Array(cap),
        right: new Int32Array(cap),
        size: new Int32Array(cap),
      }
      let nodes = 0
      const build = (pts: number[], depth: number): number => {
        const id = nodes++
        tree.size[id] = pts.length
        if (depth >= maxDepth || pts.length <= 1) return id
        // pick a feature that is not constant on these points
        const order = Array.from({ length: dims }, (_, i) => i)
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1))
          const t = order[i] as number
          order[i] = order[j] as number
          order[j] = t
        }
        for (const f of order) {
          let lo = Infinity,
            hi = -Infinity
          for (const p of pts) {
            const v = (data[p] as Float64Array)[f] as number
            if (v < lo) lo = v
            if (v > hi) hi = v
          }
          if (hi > lo) {
            const sv = lo + rand() * (hi - lo)
            const l: number[] = [],
              r: number[] = []
            for (const p of pts) (((data[p] as Float64Array)[f] as number) < sv ? l : r).push(p)
            tree.feat[id] = f
            tree.split[id] = sv
            tree.lo[id] = lo
            tree.hi[id] = hi
            tree.left[id] = build(l, depth + 1)
            tree.right[id] = build(r, depth + 1)
            return id
          }
        }
        return id
      }
      build(idx.slice(0, psi), 0)
      this.trees.push(tree)
    }
  }

  /**
   * Anomaly score in (0, 1]: 2^(-E[h(x)]/c(psi)); about 0.5 and below is ordinary. One departure from the
   * original: a point beyond the range its node's training points span on the split feature (by more than half
   * that range) is isolated at that node. Splits only ever fall inside the training range, so the original scores a value far beyond
   * anything seen like the most extreme training point; with this rule "never seen" counts as isolated.
   */
  score(x: Float64Array): number {
    let total = 0
    for (const t of this.trees) {
      let node = 0,
        depth = 0,
        isolated = false
      for (;;) {
        const f = t.feat[node] as number
        if (f < 0) break
        const v = x[f] as number
        depth++
        const lo = t.lo[node] as number,
          hi = t.hi[node] as number
        if (v < lo - 0.5 * (hi - lo) || v > hi + 0.5 * (hi - lo)) {
          isolated = true
          break
        }
        node = v < (t.split[node] as number) ? (t.left[node] as number) : (t.right[node] as number)
      }
      total += isolated ? depth : depth + cFactor(t.size[node] as number)
    }
    return this.c === 0 ? 0.5 : 2 ** (-(total / this.trees.length) / this.c)
  }
}

export interface IsolationForestOptions {
  /** Length of the warm-up from the first reading the detector sees (default 6 h). */
  warmupMs: number
  trees?: number
  sample?: number
  /** Added to the highest warm-up score of a sensor to make its threshold (default 0.03). */
  margin?: number
  /** Minutes under the threshold that end an excursion (default 3). */
  closeAfterMin?: number
}

const FEATURES = 6
const HISTORY_MIN = 60

interface IfState {
  bucket: number
  n: number
  nValues: number
  sum: number
  sumSq: number
  maxStep: number
  repeats: number
  prev: number | undefined
  means: number[]
  train: Float64Array[]
  forest: IsolationForest | undefined
  threshold: number
  open: boolean
  calm: number
}

/** Isolation Forest per sensor on one-minute window features, trained and thresholded on the warm-up. */
export function isolationForestBaseline(opts: IsolationForestOptions): PlantDetector {
  const margin = opts.margin ?? 0.03
  const closeAfter = opts.closeAfterMin ?? 3
  return {
    name: `isolation-forest (${opts.trees ?? 50} trees, 1-min features)`,
    create(): DetectorInstance {
      const states = new Map<string, IfState>()
      let first: number | undefined
      let sensorNo = 0
      const finishMinute = (entity: string, s: IfState, endTs: number, out: AlertEvent[]): void => {
        const x = new Float64Array(FEATURES)
        const hist = s.means.slice(-HISTORY_MIN)
        const sortedHist = [...hist].sort((a, b) => a - b)
        const med = sortedHist.length === 0 ? 0 : (sortedHist[sortedHist.length >> 1] as number)
        if (s.nValues > 0) {
          const mean = s.sum / s.nValues
          x[0] = hist.length === 0 ? 0 : mean - med
          x[1] = Math.sqrt(Math.max(0, s.sumSq / s.nValues - mean * mean))
          x[2] = s.maxStep
          x[3] = s.nValues > 1 ? s.repeats / (s.nValues - 1) : 0
          const recent = [...s.means.slice(-9), mean]
          x[5] = hist.length === 0 ? 0 : recent.reduce((a, b) => a + b, 0) / recent.length - med
          s.means.push(mean)
          if (s.means.length > HISTORY_MIN + 10) s.means.shift()
        }
        x[4] = s.n === 0 ? 0 : 1 - s.nValues / s.n
        const inWarmup = first !== undefined && endTs <= first + opts.warmupMs
        if (inWarmup) {
          // the first half hour only fills the history the level features need
          if (s.means.length > 30) s.train.push(x)
          return
        }
        if (s.forest === undefined) {
          if (s.train.length < 16) return
          s.forest = new IsolationForest(s.train, {
            trees: opts.trees ?? 50,
            sample: opts.sample ?? 256,
            seed: 7919 * ++sensorNo,
          })
          let max = 0
          for (const t of s.train) max = Math.max(max, s.forest.score(t))
          s.threshold = max + margin
          s.train = []
        }
        const score = s.forest.score(x)
        if (!s.open && score > s.threshold) {
          s.open = true
          s.calm = 0
          out.push({ entity, type: BASELINE_ALERT_TYPE, state: 'open', ts: endTs })
        } else if (s.open) {
          s.calm = score <= s.threshold ? s.calm + 1 : 0
          if (s.calm >= closeAfter) {
            s.open = false
            out.push({ entity, type: BASELINE_ALERT_TYPE, state: 'close', ts: endTs })
          }
        }
      }
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          first ??= r.ts
          const bucket = Math.floor(r.ts / 60_000)
          let s = states.get(entity)
          const out: AlertEvent[] = []
          if (s === undefined) {
            s = {
              bucket,
              n: 0,
              nValues: 0,
              sum: 0,
              sumSq: 0,
              maxStep: 0,
              repeats: 0,
              prev: undefined,
              means: [],
              train: [],
              forest: undefined,
              threshold: 1,
              open: false,
              calm: 0,
            }
            states.set(entity, s)
          } else if (bucket !== s.bucket) {
            finishMinute(entity, s, bucket * 60_000, out)
            s.bucket = bucket
            s.n = 0
            s.nValues = 0
            s.sum = 0
            s.sumSq = 0
            s.maxStep = 0
            s.repeats = 0
          }
          s.n++
          const v = r.fields['value']
          if (typeof v === 'number' && Number.isFinite(v)) {
            s.nValues++
            s.sum += v
            s.sumSq += v * v
            if (s.prev !== undefined) {
              const d = Math.abs(v - s.prev)
              if (d > s.maxStep) s.maxStep = d
              if (d === 0) s.repeats++
            }
            s.prev = v
          }
          return out
        },
      }
    },
  }
}
