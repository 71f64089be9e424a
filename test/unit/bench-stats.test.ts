// The pure parts of the runtime benchmark: latency summaries, the projected count, the lag rule and the rate
// search (bench/stats.ts), the alert-marking generators (bench/load.ts), and the generated report
// (bench/report.ts). No servers, no timing.
import t from 'tap'
import { ActorCell } from '../../actors/cell.js'
import { environment } from '../../actors/kinds/sensor/environment.js'
import { race } from '../../actors/kinds/vehicle/race.js'
import type { Output } from '../../actors/types.js'
import { EnvReadings, RaceReadings, type Generated } from '../../bench/load.js'
import {
  BEGIN,
  END,
  parseResults,
  renderRuntime,
  renderSection,
  renderSummary,
  replaceSection,
  type RuntimeResult,
} from '../../bench/report.js'
import {
  cpuPercent,
  highestSustained,
  lagAt,
  lagSlack,
  machineBusy,
  nextRate,
  parseProcStat,
  SeqIndex,
  summarize,
  sustained,
} from '../../bench/stats.js'

t.test('summarize: nearest-rank percentiles against a naive reference', async (t) => {
  t.same(summarize([]), { n: 0, p50: null, p95: null, p99: null, p999: null, max: null })
  const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i) // 1000..1, unsorted input
  const s = summarize(xs)
  t.equal(s.n, 1000)
  t.equal(s.p50, 500)
  t.equal(s.p95, 950)
  t.equal(s.p99, 990)
  t.equal(s.p999, 999)
  t.equal(s.max, 1000)
  const one = summarize([3.14159])
  t.same([one.p50, one.p99, one.p999, one.max], [3.14, 3.14, 3.14, 3.14], 'one sample is every percentile')
  // Numeric sort, not lexicographic (a default Array sort would put 10 before 9).
  t.equal(summarize([9, 10, 100, 2]).max, 100)
  t.equal(summarize([9, 10, 100, 2]).p50, 9)
})

t.test("SeqIndex: readings counted up to each partition's highest projected input", async (t) => {
  const ix = new SeqIndex(3)
  // Global stream sequences 1..12, partitions in turn 0,1,2,0,1,2,...
  for (let seq = 1; seq <= 12; seq++) ix.add((seq - 1) % 3, seq)
  t.equal(ix.total, 12)
  t.equal(ix.countUpTo(0, 7), 3, 'partition 0 holds 1,4,7,10: three at or below 7')
  t.equal(ix.countUpTo(1, 1), 0)
  t.equal(ix.countUpTo(2, 100), 4)
  t.equal(
    ix.projected(
      new Map([
        [0, 7],
        [2, 6],
      ]),
    ),
    3 + 2,
    'a partition without a projected output counts nothing',
  )
  ix.add(1, 0.5) // out of order: still counted correctly after the sort
  t.equal(ix.countUpTo(1, 2), 2)
  const big = new SeqIndex(1)
  for (let i = 1; i <= 5000; i++) big.add(0, i)
  t.equal(big.countUpTo(0, 4096), 4096, 'grows past its first allocation')
})

t.test('lag and the sustained rule', async (t) => {
  const samples = [
    { t: 250, lag: 100 },
    { t: 500, lag: 300 },
    { t: 750, lag: 200 },
    { t: 9_500, lag: 900 },
    { t: 9_750, lag: 1_100 },
  ]
  t.equal(lagAt(samples, 0, 1_000), 200, 'median of the first second')
  t.equal(lagAt(samples, 9_000, 10_000), 1_000, 'median of an even count')
  t.equal(lagAt(samples, 2_000, 3_000), undefined)
  t.equal(lagSlack(1_000), 2_000, 'at least 2,000 readings')
  t.equal(lagSlack(40_000), 10_000, 'a quarter second of input')
  t.ok(sustained({ rate: 40_000, lag: { start: 5_000, end: 15_000 }, behind: 0 }), 'growth within the slack')
  t.notOk(sustained({ rate: 40_000, lag: { start: 5_000, end: 15_001 }, behind: 0 }), 'growth beyond the slack')
  t.ok(sustained({ rate: 40_000, lag: { start: 50_000, end: 3_000 }, behind: 0 }), 'a shrinking backlog is sustained')
  t.notOk(sustained({ rate: 40_000, lag: { start: 0, end: 0 }, behind: 10_001 }), 'a generator that fell behind is not')
})

t.test('nextRate: geometric steps up, then bisection; down when the first fails', async (t) => {
  const plan = { start: 10_000, factor: 2, maxSteps: 6, refine: 1 }
  t.equal(nextRate(plan, []), 10_000)
  t.equal(nextRate(plan, [[10_000, true]]), 20_000)
  t.equal(
    nextRate(plan, [
      [10_000, true],
      [20_000, true],
      [40_000, false],
    ]),
    30_000,
    'bisects the bracket',
  )
  t.equal(
    nextRate(plan, [
      [10_000, true],
      [20_000, true],
      [40_000, false],
      [30_000, true],
    ]),
    undefined,
    'one refinement only',
  )
  t.equal(nextRate(plan, [[10_000, false]]), 5_000, 'steps down')
  t.equal(
    nextRate(plan, [
      [10_000, false],
      [5_000, true],
    ]),
    7_500,
  )
  t.equal(
    nextRate({ ...plan, maxSteps: 2 }, [
      [10_000, true],
      [20_000, true],
    ]),
    undefined,
    'step budget',
  )
  t.equal(
    nextRate({ ...plan, refine: 0 }, [
      [10_000, true],
      [20_000, false],
    ]),
    undefined,
  )
  t.equal(
    highestSustained([
      [10_000, true],
      [20_000, true],
      [40_000, false],
      [30_000, true],
    ]),
    30_000,
  )
  t.equal(highestSustained([[10_000, false]]), 0)
})

t.test('/proc parsing and CPU shares', async (t) => {
  // A command name with spaces and a parenthesis, as the kernel writes it.
  const stat =
    '4242 (node (a) b) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 11 0 123 456789 3000 18446744073709551615'
  t.same(parseProcStat(stat), { ticks: 300, rssPages: 3000 })
  t.equal(cpuPercent(300, 400, 100, 2_000), 50, '100 ticks at 100 Hz over 2 s = 50 % of a core')
  t.equal(cpuPercent(0, 0, 100, 0), 0)
  t.equal(
    machineBusy([100, 0, 100, 700, 100, 0, 0, 0], [200, 0, 200, 1400, 200, 0, 0, 0]),
    20,
    'idle and iowait are not busy',
  )
})

/** Drives readings of a generator through the real profile and returns which readings produced an alert. */
function alertsOf(
  gen: { next(): Generated },
  n: number,
  def: typeof environment | typeof race,
  alertType?: string,
): { expected: Set<number>; got: Set<number> } {
  const cells = new Map<string, ActorCell>()
  const expected = new Set<number>()
  const got = new Set<number>()
  for (let seq = 1; seq <= n; seq++) {
    const g = gen.next()
    if (g.expectAlert) expected.add(seq)
    let cell = cells.get(g.id)
    if (!cell) cells.set(g.id, (cell = new ActorCell(def as never, def.defaults as never, { kind: g.kind, id: g.id })))
    const r = JSON.parse(g.data) as { ts: number; fields: Record<string, number | string> }
    cell.applyReading(seq, r.ts, r as never, (o: Omit<Output, 'site' | 'partition' | 'token'>) => {
      const b = o.body as { type?: string; state?: string }
      if (o.type === 'alert' && (alertType === undefined || (b.type === alertType && b.state === 'open')))
        got.add(o.seq)
    })
  }
  return { expected, got }
}

t.test('generators mark exactly the readings that produce the timed alert', async (t) => {
  const env = new EnvReadings(50, { alertEvery: 5 })
  const a = alertsOf(env, 2_000, environment)
  t.ok(a.expected.size > 300, `${a.expected.size} flips`)
  t.same(
    [...a.got].sort((x, y) => x - y),
    [...a.expected].sort((x, y) => x - y),
    'battery_low opens and closes on the marked readings only',
  )
  env.setAlertEvery(20)
  const b = alertsOf(env, 1_000, environment)
  t.ok(b.expected.size > 0)
  const rc = new RaceReadings(10)
  const c = alertsOf(rc, 3_000, race, 'brake_overheat')
  t.ok(c.expected.size >= 40, `${c.expected.size} brake_overheat opens`)
  t.same(
    [...c.got].sort((x, y) => x - y),
    [...c.expected].sort((x, y) => x - y),
    'brake_overheat opens on the reading that completes 2 s of heat',
  )
})

const sample: RuntimeResult = {
  meta: {
    at: '2026-12-06T07:00:00.000Z',
    command: 'node dist/bench/runtime.js --json',
    node: 'v20',
    cpus: 2,
    mem_gib: 24,
    loadavg_start: [1, 1, 1],
    loadavg_end: [2, 2, 2],
    sensors: 2000,
    workers: 2,
    partitions: 16,
    duration_s: 10,
    alert_every: 5,
    grace_s: 10,
  },
  baseline: { jetstream_publish_per_s: 80_000 },
  e2e: {
    readings_per_s: 33_750,
    counted_at: 'postgres',
    sustained: true,
    lag: { start: 1_200, end: 1_500 },
    ratio_to_baseline: 0.42,
    out_per_s: 900,
    steps: [
      {
        rate: 33_750,
        published_per_s: 33_700,
        readings_per_s: 33_750,
        out_per_s: 900,
        lag: { start: 1_200, end: 1_500 },
        behind: 3,
        sustained: true,
      },
    ],
  },
  latency: [
    {
      rate: 2_000,
      achieved_per_s: 2_000,
      timed: 4_000,
      lost: 0,
      lost_by_place: { out: 0, pg: 0, sse: 1 },
      out: { n: 4_000, p50: 2.5, p95: 9, p99: 41.25, p999: 80, max: 123.4 },
      pg: { n: 4_000, p50: 25, p95: 40, p99: 90, p999: 120, max: 150 },
      sse: { n: 3_999, p50: 3, p95: 10, p99: 45, p999: 85, max: 130 },
      sustained: true,
      event_loop_ms: { p99: 20, max: 80 },
      gc: { count: 10, total_ms: 50, max_ms: 9 },
      cpu: { nats: 30, 'worker-0': 20, machine_busy_pct: 80 },
    },
  ],
  event_loop_ms: { p99: 30, max: 120 },
  memory: { bytes_per_active_actor: 2_026, active_actors: 100_000 },
}

t.test('report: every figure comes from the JSON', async (t) => {
  const md = renderRuntime(sample)
  t.match(md, '| baseline: raw JetStream publish | 80,000 msg/s |')
  t.match(md, '33,750 /s (0.42 of baseline), sustained, lag 1,200 -> 1,500')
  t.match(
    md,
    '| 2,000 (2,000) | 4,000 | 2.5 / 9 / 41.25 / 80 / 123 | 25 / 40 / 90 / 120 / 150 | 3 / 10 / 45 / 85 / 130 | 0 / 0 / 1 | yes |',
  )
  t.match(md, 'nats 30, worker-0 20 (machine busy 80 %)')
  t.match(md, '2,026 B (100,000 actors)')
  t.notMatch(md, 'NaN')
  const summary = renderSummary(sample)
  t.match(summary, '33,750 readings/s counted at PostgreSQL (sustained')
  t.match(summary, '2,000/s p99 41.25 ms')

  const doc = `# B\nintro\n${BEGIN}\nold figures\n${END}\nafter\n`
  const next = replaceSection(doc, renderSection([sample]))
  t.notMatch(next, 'old figures')
  t.match(next, 'intro')
  t.match(next, 'after')
  t.equal(replaceSection(next, renderSection([sample])), next, 'rewriting is idempotent')
  t.throws(() => replaceSection('no markers here', 'x'))

  const text = `table on stdout?\n${JSON.stringify(sample)}\n{"other":1}\n`
  t.same(parseResults(text), [sample], 'only bench results are taken from the input')
})
