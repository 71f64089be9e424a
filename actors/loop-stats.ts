/**
 * Event-loop delay and GC pauses of this process, for the benchmark and operators: "why was that alert late?"
 * is usually "the loop was busy" (a long synchronous slice) or "the collector stopped it", and these two say
 * which. Cheap by design: `monitorEventLoopDelay` samples in libuv (no JS callback per sample) into an HDR
 * histogram, and the GC observer gets one callback per collection (tens per second under load). A reader asks
 * for a snapshot, optionally resetting the counters so the next snapshot covers one measured interval only.
 */
import {
  constants,
  createHistogram,
  monitorEventLoopDelay,
  PerformanceObserver,
  type IntervalHistogram,
  type RecordableHistogram,
} from 'node:perf_hooks'

/** Sampling period of the loop-delay timer, ms: short enough to see stalls of a few ms, in C++ (cheap). */
const LOOP_RESOLUTION_MS = 5

export interface LoopDelaySummary {
  /** Samples taken (one per resolution period the loop was free to take one). */
  count: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

export interface GcSummary {
  count: number
  /** Sum of pause durations, ms. */
  total_ms: number
  max_ms: number
  /** Pause totals per collection kind (minor = scavenge, major = mark-sweep-compact, incremental, weakcb). */
  by_kind: Record<string, { count: number; total_ms: number }>
}

export interface ProcessStatsSnapshot {
  /** Length of the interval covered, ms (since start or the last reset). */
  interval_ms: number
  /** Event-loop delay in ms: how late the loop was to run a timer that was due. */
  loop_ms: LoopDelaySummary
  gc: GcSummary
  /**
   * Workers: from an input's JetStream timestamp (stored at the server) to the alert it caused leaving this
   * process, ms (1 ms resolution: the stream's timestamp is in ms here). With the publisher's ack time and the
   * arrival on OUT it splits an alert's latency into hops (bench/runtime.ts).
   */
  alert_ms?: LoopDelaySummary
  /**
   * Workers: the first part of `alert_ms`, from the input's JetStream timestamp to the moment its partition's runner
   * took it from the consumer (the server's delivery, the client's buffer, and the messages ahead of it), ms.
   */
  alert_wait_ms?: LoopDelaySummary
  /**
   * Workers: the first part of `alert_wait_ms`, from the input's JetStream timestamp to the moment this process's
   * client read it off the socket (the server's delivery and the wait for this process to be scheduled), ms. The
   * rest of `alert_wait_ms` is the message queued in the process behind the work ahead of it.
   */
  alert_recv_ms?: LoopDelaySummary
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
}

// The histogram holds the whole interval between two samples (resolution + delay): the delay is the excess.
const ms = (ns: number): number => Math.round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) * 1000) / 1000

/** Loop delay histogram and GC pause totals of this process since start or the last reset. */
export class LoopStats {
  private readonly hist: IntervalHistogram
  private readonly obs: PerformanceObserver
  private since = performance.now()
  private gc: GcSummary = emptyGc()
  private readonly alerts: RecordableHistogram = createHistogram()
  private readonly waits: RecordableHistogram = createHistogram()
  private readonly recvs: RecordableHistogram = createHistogram()

  constructor() {
    this.hist = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
    this.hist.enable()
    this.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = GC_KINDS[(e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other'
        this.gc.count++
        this.gc.total_ms += e.duration
        if (e.duration > this.gc.max_ms) this.gc.max_ms = e.duration
        const k = (this.gc.by_kind[kind] ??= { count: 0, total_ms: 0 })
        k.count++
        k.total_ms += e.duration
      }
    })
    this.obs.observe({ entryTypes: ['gc'] })
  }

  /**
   * An alert emitted `ms` after its input was stored, the input read off the socket `recvMs` and taken by its
   * runner `waitMs` after it was stored (negative: clocks apart; counted as 0).
   */
  alertEmitted(ms: number, waitMs?: number, recvMs?: number): void {
    this.alerts.record(Math.max(1, Math.round(ms * 1000)))
    if (waitMs !== undefined) this.waits.record(Math.max(1, Math.round(waitMs * 1000)))
    if (recvMs !== undefined) this.recvs.record(Math.max(1, Math.round(recvMs * 1000)))
  }

  /** The interval so far; `reset` starts a new one. */
  snapshot(reset = false): ProcessStatsSnapshot {
    const h = this.hist
    const round = (x: number): number => Math.round(x * 1000) / 1000
    const by: GcSummary['by_kind'] = {}
    for (const [k, v] of Object.entries(this.gc.by_kind)) by[k] = { count: v.count, total_ms: round(v.total_ms) }
    const snap: ProcessStatsSnapshot = {
      interval_ms: Math.round(performance.now() - this.since),
      loop_ms: {
        count: h.count,
        // An empty histogram reports NaN mean and a huge min; say 0 rather than ship NaN in JSON.
        mean: h.count ? ms(h.mean) : 0,
        p50: h.count ? ms(h.percentile(50)) : 0,
        p90: h.count ? ms(h.percentile(90)) : 0,
        p99: h.count ? ms(h.percentile(99)) : 0,
        p999: h.count ? ms(h.percentile(99.9)) : 0,
        max: h.count ? ms(h.max) : 0,
      },
      gc: { count: this.gc.count, total_ms: round(this.gc.total_ms), max_ms: round(this.gc.max_ms), by_kind: by },
    }
    const us = (x: number): number => Math.round(x) / 1000
    const summary = (a: RecordableHistogram): LoopDelaySummary => ({
      count: a.count,
      mean: us(a.mean),
      p50: us(a.percentile(50)),
      p90: us(a.percentile(90)),
      p99: us(a.percentile(99)),
      p999: us(a.percentile(99.9)),
      max: us(a.max),
    })
    if (this.alerts.count > 0) snap.alert_ms = summary(this.alerts)
    if (this.waits.count > 0) snap.alert_wait_ms = summary(this.waits)
    if (this.recvs.count > 0) snap.alert_recv_ms = summary(this.recvs)
    if (reset) {
      this.alerts.reset()
      this.waits.reset()
      this.recvs.reset()
      h.reset()
      this.gc = emptyGc()
      this.since = performance.now()
    }
    return snap
  }

  stop(): void {
    this.hist.disable()
    this.obs.disconnect()
  }
}

function emptyGc(): GcSummary {
  return { count: 0, total_ms: 0, max_ms: 0, by_kind: {} }
}
