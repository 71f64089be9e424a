/**
 * `npm run bench:report -- [results.json ...]` (or `node dist/bench/report.js < results.json`): turns the JSON
 * line(s) of `npm run bench -- --json` into the generated section of docs/benchmarks.md and the figures line of
 * README.md, each between its `<!-- bench:runtime:begin -->` / `<!-- bench:runtime:end -->` markers. Nothing in
 * those sections is typed by hand: rerun the bench and this script to change them. Several runs may be given
 * (one JSON line each, e.g. `cat run1.json run2.json`): the section shows each run, the README the first.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface Summary {
  n: number
  p50: number | null
  p95: number | null
  p99: number | null
  p999: number | null
  max: number | null
}
export interface LatencyEntry {
  rate: number
  achieved_per_s: number
  timed: number
  out: Summary
  pg: Summary
  sse: Summary
  lost: number
  lost_by_place: { out: number; pg: number; sse: number }
  sustained?: boolean
  lag?: { start: number; end: number }
  event_loop_ms?: { p99: number; max: number }
  gc?: { count: number; total_ms: number; max_ms: number; ms_per_s?: number }
  cpu?: Record<string, number>
  observer_loop_ms?: { p99: number; max: number }
  /** Hops of the alert's way (runs before these were measured lack them). */
  due_to_ack?: Summary
  alert_emit_ms?: { p50: number; p99: number; p999: number; max: number }
  /** The first part of alert_emit_ms: stored -> taken from the consumer by the partition's runner. */
  alert_wait_ms?: { p50: number; p99: number; p999: number; max: number }
  /** The first part of alert_wait_ms: stored -> read off the socket by the worker's client. */
  alert_recv_ms?: { p50: number; p99: number; p999: number; max: number }
  /** Waiting for a core over the window, per process (bench/runtime.ts CpuMeter). */
  runq_ms?: Record<string, { ms_per_s: number; main_ms_per_s: number; main_per_wakeup_ms: number }>
  /** PSI: share of the window in which some runnable task waited for a core (-1: no PSI). */
  cpu_pressure_pct?: number
  /** Per reading published: what each process sent the broker (in) and got from it (out). */
  nats_per_reading?: Record<string, { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number }>
}
export interface RuntimeResult {
  meta?: {
    at: string
    command: string
    node: string
    cpus: number
    mem_gib: number
    loadavg_start: number[]
    loadavg_end: number[]
    /** Linux scheduler autogroup (bench/runtime.ts schedAutogroup); absent in runs before it was recorded. */
    sched_autogroup?: boolean | null
    sensors: number
    workers: number
    partitions: number
    duration_s: number
    alert_every: number
    grace_s: number
  }
  baseline: { jetstream_publish_per_s: number; ack_ms?: Array<{ rate: number } & Summary> }
  e2e: {
    readings_per_s: number
    counted_at: string
    sustained: boolean
    lag: { start: number; end: number }
    target_per_s?: number
    out_per_s?: number
    ratio_to_baseline?: number
    steps?: Array<{
      rate: number
      published_per_s: number
      readings_per_s: number
      out_per_s: number
      lag: { start: number; end: number }
      behind: number
      sustained: boolean
    }>
  }
  latency: LatencyEntry[]
  race?: Array<Omit<LatencyEntry, 'sustained' | 'lag' | 'event_loop_ms' | 'gc' | 'cpu'> & { cars: number }>
  event_loop_ms: {
    p99: number
    max: number
    workers?: Record<string, { p50: number; p99: number; p999: number; max: number }>
  }
  gc?: { count: number; total_ms: number; max_ms: number; ms_per_s?: number }
  cpu?: Record<string, number>
  memory: {
    bytes_per_active_actor: number
    active_actors: number
    fresh_bytes_per_actor?: number
    with_rids_bytes_per_actor?: number
    rss_mb?: Record<string, number>
  }
}

export const BEGIN = '<!-- bench:runtime:begin -->'
export const END = '<!-- bench:runtime:end -->'

const num = (x: number | null | undefined): string =>
  x === null || x === undefined || Number.isNaN(x) ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: 2 })
const ms = (x: number | null | undefined): string =>
  x === null || x === undefined ? '-' : x >= 100 ? num(Math.round(x)) : num(x)
const lat = (s: Summary): string => `${ms(s.p50)} / ${ms(s.p95)} / ${ms(s.p99)} / ${ms(s.p999)} / ${ms(s.max)}`
const cpuLine = (c: Record<string, number> | undefined): string =>
  c
    ? Object.entries(c)
        .filter(([k]) => k !== 'machine_busy_pct')
        .map(([k, v]) => `${k} ${num(v)}`)
        .join(', ') + ` (machine busy ${num(c.machine_busy_pct)} %)`
    : '-'

/** The markdown of one run: e2e, the latency curve with its cause, race, memory. */
export function renderRuntime(r: RuntimeResult): string {
  const out: string[] = []
  const m = r.meta
  if (m) {
    out.push(
      `Run of ${m.at} (\`${m.command}\`): ${m.cpus} CPUs, ${m.mem_gib} GiB, Node ${m.node}; load average ` +
        `${m.loadavg_start.join(' ')} before, ${m.loadavg_end.join(' ')} after` +
        (typeof m.sched_autogroup === 'boolean' ? `; scheduler autogroup ${m.sched_autogroup ? 'on' : 'off'}` : '') +
        `; ${m.sensors} sensors, ${m.workers} workers, ` +
        `P = ${m.partitions}, ${m.duration_s} s per measured window.`,
      '',
    )
  }
  out.push('| measure | result |', '|---|---|')
  out.push(`| baseline: raw JetStream publish | ${num(r.baseline.jetstream_publish_per_s)} msg/s |`)
  if (r.baseline.ack_ms?.length)
    out.push(
      `| baseline: publish -> ack p50 / p99, open loop, nothing else running | ` +
        r.baseline.ack_ms.map((a) => `${num(a.rate)}/s ${ms(a.p50)} / ${ms(a.p99)} ms`).join(', ') +
        ' |',
    )
  out.push(
    `| e2e readings/s counted at ${r.e2e.counted_at} | ${num(r.e2e.readings_per_s)} /s` +
      `${r.e2e.ratio_to_baseline !== undefined ? ` (${num(r.e2e.ratio_to_baseline)} of baseline)` : ''}, ` +
      `${r.e2e.sustained ? 'sustained' : '**not sustained**'}, lag ${num(r.e2e.lag.start)} -> ${num(r.e2e.lag.end)}` +
      `${r.e2e.out_per_s !== undefined ? `; ${num(r.e2e.out_per_s)} outputs/s on OUT` : ''} |`,
  )
  out.push(`| worker event loop in that step | p99 ${ms(r.event_loop_ms.p99)} ms, max ${ms(r.event_loop_ms.max)} ms |`)
  if (r.gc)
    out.push(
      `| GC in that step (all workers) | ${num(r.gc.count)} pauses, ${ms(r.gc.total_ms)} ms total, longest ${ms(r.gc.max_ms)} ms |`,
    )
  if (r.cpu) out.push(`| CPU in that step, % of one core | ${cpuLine(r.cpu)} |`)
  out.push(
    `| heap per active environment actor | ${num(r.memory.bytes_per_active_actor)} B (${num(r.memory.active_actors)} actors` +
      `${r.memory.fresh_bytes_per_actor !== undefined ? `; fresh actor ${num(r.memory.fresh_bytes_per_actor)} B` : ''}` +
      `${r.memory.with_rids_bytes_per_actor !== undefined ? `; with a rid on every reading ${num(r.memory.with_rids_bytes_per_actor)} B` : ''}) |`,
  )
  if (r.e2e.steps?.length) {
    out.push(
      '',
      'e2e steps (open loop; lag = acked - counted at PostgreSQL):',
      '',
      '| target/s | published/s | counted/s | outputs/s | lag start -> end | generator behind | sustained |',
      '|---|---|---|---|---|---|---|',
    )
    for (const s of r.e2e.steps) {
      out.push(
        `| ${num(s.rate)} | ${num(s.published_per_s)} | ${num(s.readings_per_s)} | ${num(s.out_per_s)} | ${num(s.lag.start)} -> ${num(s.lag.end)} | ${num(s.behind)} | ${s.sustained ? 'yes' : 'no'} |`,
      )
    }
  }
  out.push(
    '',
    "Latency from each reading's due time, ms, p50 / p95 / p99 / p99.9 / max:",
    '',
    '| rate (achieved) | alerts | publish -> OUT | -> PostgreSQL row | -> SSE event | lost (out/pg/sse) | sustained | worker loop p99 / max | GC ms | CPU % |',
    '|---|---|---|---|---|---|---|---|---|---|',
  )
  for (const l of r.latency) {
    out.push(
      `| ${num(l.rate)} (${num(l.achieved_per_s)}) | ${num(l.timed)} | ${lat(l.out)} | ${lat(l.pg)} | ${lat(l.sse)} | ` +
        `${l.lost_by_place.out} / ${l.lost_by_place.pg} / ${l.lost_by_place.sse} | ${l.sustained === undefined ? '-' : l.sustained ? 'yes' : 'no'} | ` +
        `${l.event_loop_ms ? `${ms(l.event_loop_ms.p99)} / ${ms(l.event_loop_ms.max)}` : '-'} | ${l.gc ? `${ms(l.gc.total_ms)} (${l.gc.count})` : '-'} | ${cpuLine(l.cpu)} |`,
    )
  }
  const hops = r.latency.filter((l) => l.due_to_ack && l.alert_emit_ms)
  if (hops.length > 0) {
    out.push(
      '',
      "Where an alert's time goes, ms, p50 / p99 / max: due -> the generator holds JetStream's ack (publish and store);" +
        ' stored -> emitted by the worker (its own histogram, worst worker), and of it stored -> taken, until the' +
        " partition's runner took the input from its consumer (the server's delivery, the client's buffer, the" +
        " messages ahead of it), and of that stored -> read, until the worker's client read the input off the socket" +
        " (the server's delivery and the wait for the worker to get a core); the rest of publish -> OUT is the way" +
        " back (the output's store and delivery to the bench, and the bench's own loop: observer loop p99 / max).",
      '',
      '| rate | due -> acked | stored -> emitted (worker) | of it stored -> taken | of that stored -> read | publish -> OUT | bench loop p99 / max |',
      '|---|---|---|---|---|---|---|',
    )
    for (const l of hops) {
      const a = l.due_to_ack as Summary
      const e = l.alert_emit_ms as NonNullable<LatencyEntry['alert_emit_ms']>
      const w = l.alert_wait_ms
      const rv = l.alert_recv_ms
      out.push(
        `| ${num(l.rate)} | ${ms(a.p50)} / ${ms(a.p99)} / ${ms(a.max)} | ${ms(e.p50)} / ${ms(e.p99)} / ${ms(e.max)} | ` +
          `${w && w.max > 0 ? `${ms(w.p50)} / ${ms(w.p99)} / ${ms(w.max)}` : '-'} | ` +
          `${rv && rv.max > 0 ? `${ms(rv.p50)} / ${ms(rv.p99)} / ${ms(rv.max)}` : '-'} | ` +
          `${ms(l.out.p50)} / ${ms(l.out.p99)} / ${ms(l.out.max)} | ` +
          `${l.observer_loop_ms ? `${ms(l.observer_loop_ms.p99)} / ${ms(l.observer_loop_ms.max)}` : '-'} |`,
      )
    }
  }
  const queued = r.latency.filter((l) => l.runq_ms)
  if (queued.length > 0) {
    const names = Object.keys(queued[0]?.runq_ms ?? {})
    out.push(
      '',
      "Waiting for a core (the kernel's schedstat over the measured window): ms per second each process spent" +
        ' runnable but not running, all threads; for Node processes also the main thread (the event loop) and its' +
        ' mean wait per wake-up, which a message arriving on an idle loop waits before it is read. CPU pressure' +
        ' (PSI `some`): the share of the window in which any runnable task waited.',
      '',
      `| rate | CPU pressure | ${names.join(' | ')} |`,
      `|---|---|${names.map(() => '---|').join('')}`,
    )
    for (const l of queued) {
      const q = l.runq_ms ?? {}
      const cell = (n: string): string => {
        const e = q[n]
        if (!e) return '-'
        return e.main_ms_per_s > 0 && e.main_ms_per_s !== e.ms_per_s
          ? `${ms(e.ms_per_s)} (main ${ms(e.main_ms_per_s)}, ${ms(e.main_per_wakeup_ms)} per wake-up)`
          : `${ms(e.ms_per_s)}`
      }
      out.push(
        `| ${num(l.rate)} | ${l.cpu_pressure_pct !== undefined && l.cpu_pressure_pct >= 0 ? `${l.cpu_pressure_pct} %` : '-'} | ${names.map(cell).join(' | ')} |`,
      )
    }
  }
  const traffic = r.latency.filter((l) => l.nats_per_reading)
  if (traffic.length > 0) {
    out.push(
      '',
      "The broker's work per reading published (its monitoring endpoint's connz over the measured window): messages" +
        ' / bytes each process published to it (in) and was sent by it (out). A reading is ~120 bytes; what the' +
        " workers publish beyond their outputs is their checkpoints' snapshots and acks.",
      '',
      '| rate | process | in msgs | in bytes | out msgs | out bytes |',
      '|---|---|---|---|---|---|',
    )
    for (const l of traffic) {
      const rows = Object.entries(l.nats_per_reading ?? {}).sort(([a], [b]) =>
        a === 'total' ? 1 : b === 'total' ? -1 : a.localeCompare(b),
      )
      for (const [who, t] of rows)
        out.push(
          `| ${num(l.rate)} | ${who} | ${t.in_msgs} | ${num(t.in_bytes)} | ${t.out_msgs} | ${num(t.out_bytes)} |`,
        )
    }
  }
  if (r.race?.length) {
    out.push(
      '',
      'Race: from the reading that completes 2 s of brake heat (> 950 °C) to the `brake_overheat` open, ms, p50 / p95 / p99 / p99.9 / max:',
      '',
      '| rate (achieved) | cars | alerts | -> OUT | -> PostgreSQL row | -> SSE event | lost (out/pg/sse) |',
      '|---|---|---|---|---|---|---|',
    )
    for (const l of r.race) {
      out.push(
        `| ${num(l.rate)} (${num(l.achieved_per_s)}) | ${num(l.cars)} | ${num(l.timed)} | ${lat(l.out)} | ${lat(l.pg)} | ${lat(l.sse)} | ${l.lost_by_place.out} / ${l.lost_by_place.pg} / ${l.lost_by_place.sse} |`,
      )
    }
  }
  return out.join('\n')
}

/** One line for the README: the headline figures of a run. */
export function renderSummary(r: RuntimeResult): string {
  const at = (rate: number): LatencyEntry | undefined => r.latency.find((l) => l.rate === rate)
  const parts = r.latency.map((l) => `${num(l.rate)}/s p99 ${ms(l.out.p99)} ms`)
  const ten = at(10_000)
  return (
    `Last generated run${r.meta ? ` (${r.meta.at.slice(0, 10)}, \`${r.meta.command}\`, load average ${r.meta.loadavg_start[0]} at start)` : ''}: ` +
    `${num(r.e2e.readings_per_s)} readings/s counted at PostgreSQL (${r.e2e.sustained ? 'sustained' : 'not sustained'}; ` +
    `raw JetStream publish ${num(r.baseline.jetstream_publish_per_s)} msg/s); publish -> alert on OUT ${parts.join(', ')}` +
    `${ten ? `; -> SSE at 10,000/s p99 ${ms(ten.sse.p99)} ms` : ''}; ${num(r.memory.bytes_per_active_actor)} B per active environment actor.`
  )
}

/** `doc` with the text between the markers replaced by `body`; throws when the markers are missing. */
export function replaceSection(doc: string, body: string, begin = BEGIN, end = END): string {
  const a = doc.indexOf(begin)
  const b = doc.indexOf(end)
  if (a < 0 || b < a) throw new Error(`markers ${begin} ... ${END} not found`)
  return `${doc.slice(0, a + begin.length)}\n${body}\n${doc.slice(b)}`
}

/** The JSON results in `text`: every line that parses as an object with `baseline` and `e2e`. */
export function parseResults(text: string): RuntimeResult[] {
  const out: RuntimeResult[] = []
  for (const line of text.split('\n')) {
    const t = line.trim()
    if (!t.startsWith('{')) continue
    const o = JSON.parse(t) as Partial<RuntimeResult>
    if (o.baseline && o.e2e && Array.isArray(o.latency)) out.push(o as RuntimeResult)
  }
  return out
}

export function renderSection(runs: readonly RuntimeResult[]): string {
  return [
    '',
    '_Generated by `npm run bench:report` from `npm run bench -- --json`; do not edit by hand._',
    '',
    runs.map((r, i) => `${runs.length > 1 ? `#### Run ${i + 1}\n\n` : ''}${renderRuntime(r)}`).join('\n\n'),
    '',
  ].join('\n')
}

async function main(): Promise<void> {
  const files = process.argv.slice(2)
  let text = ''
  if (files.length) for (const f of files) text += `${readFileSync(f, 'utf8')}\n`
  else for await (const chunk of process.stdin) text += String(chunk)
  const runs = parseResults(text)
  if (runs.length === 0) throw new Error('no bench result found: give the output of `npm run bench -- --json`')
  const root = join(import.meta.dirname, '..', '..')
  const docs = join(root, 'docs', 'benchmarks.md')
  writeFileSync(docs, replaceSection(readFileSync(docs, 'utf8'), renderSection(runs)))
  const readme = join(root, 'README.md')
  // The README line sits in a list item: indented so it stays part of it.
  writeFileSync(readme, replaceSection(readFileSync(readme, 'utf8'), `  ${renderSummary(runs[0] as RuntimeResult)}`))
  process.stderr.write(
    `rewrote the generated sections of docs/benchmarks.md and README.md from ${runs.length} run(s)\n`,
  )
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:report failed: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
