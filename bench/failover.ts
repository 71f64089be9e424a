/**
 * `npm run bench:failover -- [--json] [--rate 10000] [--before 10] [--after 6] [--detect-ms 5000] [--link-delay-ms 100]
 *   [--link-rate-kbps 0] [--only-lagging] [--profiles testsum|production]`
 *
 * Two local sites (real nats-servers from the rendered configs), a worker per site, site b's failover
 * controller, and a producer routing readings to the owning site at `rate`/s (test/helpers/failover.ts).
 * Site a is killed with -9 under load, twice: once with automatic detection (link and health down for
 * `detect-ms`), once with the operator's command right after the kill; the automatic run then fails back.
 * A third run puts WAN latency (`--link-delay-ms`, alias `--link-latency-ms`, and a quarter of it as jitter) and
 * optionally a bandwidth limit (`--link-rate-kbps`) on the leafnode link, so the mirror lags at the kill (a slow
 * peer site); it reports RTO, RPO (counted from the producer's log and as the system reports it once a is back:
 * rpo_reported) and the mirror's lag. `--only-lagging` runs that one alone.
 * Reports RTO, RPO (readings acked at a that never reached b, counted exactly from the streams), readings lost
 * after they were mirrored, duplicates and failback losses (window outputs vs the reference computation).
 * The last line is one JSON object:
 * {"rate_per_s":N,"rto_ms":N,"rpo_readings":N,"rpo_ms":N,"lost_after_mirror":N,"duplicates":N,"failback_lost":N,...}
 */
import { runFailoverScenario, type ScenarioResult } from '../test/helpers/failover.js'

const args = process.argv.slice(2)
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const JSON_ONLY = args.includes('--json')
const RATE = arg('rate', 10_000)
const BEFORE = arg('before', 10)
const AFTER = arg('after', 6)
const DETECT = arg('detect-ms', 5_000)
const LATENCY = arg('link-delay-ms', arg('link-latency-ms', 100))
const RATE_KBPS = arg('link-rate-kbps', 0)
const ONLY_LAGGING = args.includes('--only-lagging')
const PROFILES = args.includes('--profiles') ? args[args.indexOf('--profiles') + 1] : 'testsum'
if (PROFILES !== 'testsum' && PROFILES !== 'production') {
  process.stderr.write(`--profiles: must be testsum or production, got ${JSON.stringify(PROFILES)}\n`)
  process.exit(2)
}
for (const [name, v] of [
  ['rate', RATE],
  ['before', BEFORE],
  ['after', AFTER],
  ['detect-ms', DETECT],
  ['link-delay-ms', LATENCY],
  ['link-rate-kbps', RATE_KBPS],
] as const) {
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`--${name}: must be a number >= 0, got ${JSON.stringify(v)}\n`)
    process.exit(2)
  }
}
const say = (s: string): void => {
  if (!JSON_ONLY) process.stderr.write(`${s}\n`)
}

const profiles = PROFILES as 'testsum' | 'production'
const auto = ONLY_LAGGING
  ? undefined
  : await runFailoverScenario({
      ratePerS: RATE,
      beforeS: BEFORE,
      afterS: AFTER,
      failoverAfterMs: DETECT,
      failback: true,
      failbackS: 5,
      entities: 2_000,
      profiles,
      log: say,
    })
const operator = ONLY_LAGGING
  ? undefined
  : await runFailoverScenario({
      ratePerS: RATE,
      beforeS: BEFORE,
      afterS: AFTER,
      failoverAfterMs: 0,
      failback: false,
      entities: 2_000,
      profiles,
      log: say,
    })
// A lagging link (WAN latency on the leafnode): the mirror is behind at the kill; the RPO is counted exactly, and
// the failback reads what a's disk kept.
const lagging = await runFailoverScenario({
  ratePerS: RATE,
  beforeS: BEFORE,
  afterS: AFTER,
  failoverAfterMs: 0,
  failback: true,
  failbackS: 5,
  entities: 2_000,
  linkLatencyMs: LATENCY,
  linkJitterMs: LATENCY / 4,
  linkRateKbps: RATE_KBPS,
  profiles,
  log: say,
})

const row = (name: string, r: ScenarioResult | undefined): string[] =>
  r === undefined
    ? []
    : [
        `${name.padEnd(28)} ${String(r.rate_per_s).padStart(7)} ${String(r.rto_ms).padStart(8)} ${String(r.rpo_readings).padStart(6)} ${String(r.rpo_reported).padStart(6)} ${String(r.rpo_ms).padStart(7)} ` +
          `${String(r.lost_after_mirror).padStart(6)} ${String(r.duplicates).padStart(5)} ${String(r.failback_lost).padStart(9)} ${String(r.rpo_recovered).padStart(7)} ${String(r.acked).padStart(8)} ${String(r.windows_checked).padStart(8)}`,
      ]
const link = `${LATENCY} ms${RATE_KBPS > 0 ? `, ${RATE_KBPS} kbps` : ''}`
process.stdout.write(
  [
    '',
    `failover benchmark: two local sites, kill -9 of site a at ${RATE} readings/s (automatic detection after ${DETECT} ms, and operator-triggered; profiles ${PROFILES})`,
    `${'run'.padEnd(28)} ${'rate/s'.padStart(7)} ${'rto_ms'.padStart(8)} ${'rpo_n'.padStart(6)} ${'rpo_rp'.padStart(6)} ${'rpo_ms'.padStart(7)} ${'lost'.padStart(6)} ${'dups'.padStart(5)} ${'fb_lost'.padStart(9)} ${'rpo_rec'.padStart(7)} ${'acked'.padStart(8)} ${'windows'.padStart(8)}`,
    ...row('automatic + failback', auto),
    ...row('operator', operator),
    ...row(`operator, link ${link} + fb`, lagging),
    '',
    "rpo_n: readings acked at a and not in b's mirror at the kill (producer's log); rpo_rp: the system's count once a is back ('not yet applied' at a, by sequence; -1 without failback);",
    "rpo_ms: how long before the kill the oldest of them was acked (the mirror's lag); rpo_rec: of those, read after the failback from a's disk (its new segment starts after the seal)",
    'targets: automatic RTO <= 15,000 ms (operator <= 5,000 ms), RPO <= 1 s of readings on a healthy link, lost_after_mirror = 0, duplicates = 0, failback_lost = 0, rpo_rp = rpo_n (+ publishes in flight at the kill)',
    '',
  ].join('\n'),
)
const both =
  auto && operator
    ? {
        rate_per_s: RATE,
        rto_ms: auto.rto_ms,
        rpo_readings: Math.max(auto.rpo_readings, operator.rpo_readings),
        rpo_ms: Math.max(auto.rpo_ms, operator.rpo_ms),
        lost_after_mirror: auto.lost_after_mirror + operator.lost_after_mirror,
        duplicates: auto.duplicates + operator.duplicates,
        failback_lost: auto.failback_lost,
        operator_rto_ms: operator.rto_ms,
        detect_ms: DETECT,
        acked: auto.acked + operator.acked,
        achieved_rate_per_s: Math.round(Math.min(auto.achieved_rate_per_s, operator.achieved_rate_per_s)),
      }
    : { rate_per_s: RATE }
const out = {
  ...both,
  profiles: PROFILES,
  lagging_link: {
    latency_ms: LATENCY,
    rate_kbps: RATE_KBPS,
    rto_ms: lagging.rto_ms,
    rpo_readings: lagging.rpo_readings,
    rpo_reported: lagging.rpo_reported,
    in_flight_at_kill: lagging.in_flight_at_kill,
    mirror_lag_at_kill: lagging.mirror_lag_at_kill,
    seal_age_ms: lagging.seal_age_ms,
    last_heard_ms: lagging.last_heard_ms,
    failover_after_kill_ms: lagging.failover_after_kill_ms,
    rpo_ms: lagging.rpo_ms,
    rpo_recovered: lagging.rpo_recovered,
    lost_after_mirror: lagging.lost_after_mirror,
    duplicates: lagging.duplicates,
    failback_lost: lagging.failback_lost,
    achieved_rate_per_s: lagging.achieved_rate_per_s,
  },
}
process.stdout.write(`${JSON.stringify(out)}\n`)
process.exit(0)
