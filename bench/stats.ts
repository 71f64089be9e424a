/**
 * The pure arithmetic of the runtime benchmark (bench/runtime.ts), kept apart so it is tested without servers
 * (test/unit/bench-stats.test.ts): latency summaries, which readings count as projected, the lag rule that decides
 * whether a rate was sustained, the step search for the highest sustained rate, and CPU from /proc.
 */
import { percentile } from './load.js'

/** Latency summary in ms; `n` samples. Empty: every figure null (JSON has no NaN). */
export interface LatencySummary {
  n: number
  p50: number | null
  p95: number | null
  p99: number | null
  p999: number | null
  max: number | null
}

const r2 = (x: number): number => Math.round(x * 100) / 100

/** p50/p95/p99/p99.9/max of `values` (ms, any order), nearest-rank, rounded to 0.01 ms. */
export function summarize(values: readonly number[]): LatencySummary {
  if (values.length === 0) return { n: 0, p50: null, p95: null, p99: null, p999: null, max: null }
  const s = Float64Array.from(values).sort()
  const a = s as unknown as number[]
  return {
    n: s.length,
    p50: r2(percentile(a, 50)),
    p95: r2(percentile(a, 95)),
    p99: r2(percentile(a, 99)),
    p999: r2(percentile(a, 99.9)),
    max: r2(s[s.length - 1] as number),
  }
}

/**
 * Stream sequences of the readings acknowledged in TLM, per partition, so the bench can count how many of them
 * lie at or below a position. Acks arrive in sequence order on one connection; an out-of-order append is kept
 * correct by a sort before the next count.
 */
export class SeqIndex {
  private readonly seqs: Float64Array[] = []
  private readonly len: number[] = []
  private readonly unsorted = new Set<number>()
  total = 0

  constructor(partitions: number) {
    for (let p = 0; p < partitions; p++) {
      this.seqs.push(new Float64Array(1024))
      this.len.push(0)
    }
  }

  add(partition: number, seq: number): void {
    let a = this.seqs[partition] as Float64Array
    const n = this.len[partition] as number
    if (n === a.length) {
      const b = new Float64Array(a.length * 2)
      b.set(a)
      this.seqs[partition] = b
      a = b
    }
    if (n > 0 && (a[n - 1] as number) > seq) this.unsorted.add(partition)
    a[n] = seq
    this.len[partition] = n + 1
    this.total++
  }

  /** Readings of `partition` with sequence <= `seq`. */
  countUpTo(partition: number, seq: number): number {
    const n = this.len[partition] ?? 0
    const a = this.seqs[partition]
    if (!a || n === 0) return 0
    if (this.unsorted.delete(partition)) a.subarray(0, n).sort()
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((a[mid] as number) <= seq) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /**
   * Readings whose effect reached the sink: in each partition, every reading at or below the highest input
   * sequence of an output the sink holds (a partition is applied in stream order, so an output of input s
   * proves every earlier reading of that partition was applied before it).
   */
  projected(maxSeqByPartition: ReadonlyMap<number, number>): number {
    let n = 0
    for (const [p, s] of maxSeqByPartition) n += this.countUpTo(p, s)
    return n
  }
}

/** Median of the lag samples taken in [from, to] (ms); undefined when there is none. */
export function lagAt(
  samples: ReadonlyArray<{ t: number; lag: number }>,
  from: number,
  to: number,
): number | undefined {
  const xs = samples
    .filter((s) => s.t >= from && s.t <= to)
    .map((s) => s.lag)
    .sort((a, b) => a - b)
  if (xs.length === 0) return undefined
  return xs.length % 2
    ? (xs[(xs.length - 1) / 2] as number)
    : ((xs[xs.length / 2 - 1] as number) + (xs[xs.length / 2] as number)) / 2
}

export interface SustainedInput {
  /** Target rate, readings/s. */
  rate: number
  /** Lag (published - projected) at the start and end of the measured window. */
  lag: { start: number; end: number }
  /** Readings due by the end of the window that the generator had not yet sent (it could not keep up). */
  behind: number
}

/**
 * Growth the rule forgives: a quarter second of input, at least 2,000 readings. Lag is read between
 * projector batches and checkpoints, which move it by a few hundred milliseconds of input either way; a backlog
 * that grows by less over the whole window is noise, one that grows by more is a system falling behind.
 */
export function lagSlack(rate: number): number {
  return Math.max(2_000, Math.round(rate * 0.25))
}

/** The rate was sustained: the lag did not grow beyond the slack and the generator kept its schedule. */
export function sustained(x: SustainedInput): boolean {
  const slack = lagSlack(x.rate)
  return x.lag.end - x.lag.start <= slack && x.behind <= slack
}

export interface StepPlan {
  start: number
  factor: number
  maxSteps: number
  /** Bisection steps between the last sustained and the first unsustained rate. */
  refine: number
}

/**
 * The next rate to try given the outcomes so far (`[rate, sustained]` in the order tried), or undefined when
 * the search is done. Geometric steps up from `start` until a rate is not sustained (down if `start` already
 * fails), then `refine` bisections between the highest sustained and the lowest unsustained rate.
 */
export function nextRate(plan: StepPlan, tried: ReadonlyArray<readonly [number, boolean]>): number | undefined {
  if (tried.length >= plan.maxSteps) return undefined
  if (tried.length === 0) return plan.start
  const ok = tried.filter(([, s]) => s).map(([r]) => r)
  const bad = tried.filter(([, s]) => !s).map(([r]) => r)
  const hi = ok.length ? Math.max(...ok) : undefined
  const lo = bad.length ? Math.min(...bad) : undefined
  if (lo === undefined) return Math.round((hi as number) * plan.factor)
  if (hi === undefined) {
    const next = Math.round(lo / plan.factor)
    return next >= 100 ? next : undefined
  }
  // Index at which the outcomes first held both a sustained and an unsustained rate: refinements come after it.
  let seenOk = false
  let seenBad = false
  let bothAt = -1
  tried.forEach(([, s], i) => {
    if (s) seenOk = true
    else seenBad = true
    if (bothAt < 0 && seenOk && seenBad) bothAt = i
  })
  if (tried.length - 1 - bothAt >= plan.refine) return undefined
  const mid = Math.round((hi + lo) / 2)
  // Not worth a step when the bracket is already within 5 %.
  return lo - hi > lo * 0.05 ? mid : undefined
}

/** Highest sustained rate among the outcomes, or 0. */
export function highestSustained(tried: ReadonlyArray<readonly [number, boolean]>): number {
  return tried.reduce((m, [r, s]) => (s && r > m ? r : m), 0)
}

/** utime + stime (clock ticks) and resident set (pages) from the text of /proc/<pid>/stat. */
export function parseProcStat(text: string): { ticks: number; rssPages: number } {
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state): utime = field 14, stime = 15, rss = 24.
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  const rss = Number(rest[21])
  return { ticks: utime + stime, rssPages: rss }
}

/**
 * The scheduler's figures of one thread from the text of /proc/<pid>/task/<tid>/schedstat: ns on a core, ns
 * runnable but waiting for one (in the run queue), and the number of times it was given a core.
 */
export function parseSchedstat(text: string): { runNs: number; waitNs: number; slices: number } {
  const [run, wait, slices] = text.trim().split(/\s+/).map(Number)
  return { runNs: run ?? 0, waitNs: wait ?? 0, slices: slices ?? 0 }
}

/** CPU of one process over an interval, in % of one core. */
export function cpuPercent(ticksBefore: number, ticksAfter: number, clkTck: number, wallMs: number): number {
  if (wallMs <= 0) return 0
  return Math.round(((ticksAfter - ticksBefore) / clkTck / (wallMs / 1000)) * 1000) / 10
}

/** Busy share of all cores from two readings of the `cpu` line of /proc/stat, in % of the whole machine. */
export function machineBusy(before: readonly number[], after: readonly number[]): number {
  const d = after.map((v, i) => v - (before[i] ?? 0))
  const total = d.reduce((a, b) => a + b, 0)
  // Fields: user nice system idle iowait irq softirq steal ...; idle + iowait are not busy.
  const idle = (d[3] ?? 0) + (d[4] ?? 0)
  return total > 0 ? Math.round(((total - idle) / total) * 1000) / 10 : 0
}
