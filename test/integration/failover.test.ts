/**
 * Two sites on loopback (real nats-servers from the rendered configs): site loss with kill -9, automatic
 * failover, then failback. Checks the invariants of docs/sites.md exactly (see test/helpers/failover.ts). The
 * first run is on the production profile list (`environment` readings; windows against the docs-only reference,
 * issue 13 part 5), the lagging-link run on the test profile (per-entity count and sum from the producer's log).
 */
import t from 'tap'
import { assertDatabases, runFailoverScenario } from '../helpers/failover.js'

t.test('site a killed (-9) under load: b fails over automatically, then a takes its partitions back', async (t) => {
  const r = await runFailoverScenario({
    ratePerS: 400,
    beforeS: 4,
    afterS: 3,
    failoverAfterMs: 1_500,
    failback: true,
    failbackS: 3,
    profiles: 'production',
    log: (m) => t.comment(m),
  })
  t.comment(JSON.stringify(r))
  t.ok(r.acked_at_a_before_kill > 500, `readings were acked at a before the kill (${r.acked_at_a_before_kill})`)
  t.ok(r.rto_ms > 0 && r.rto_ms < 15_000, `b processed a's partitions again within 15 s (${r.rto_ms} ms)`)
  t.ok(r.rpo_readings <= r.rate_per_s, `at most 1 s of readings lost (${r.rpo_readings})`)
  t.equal(r.lost_after_mirror, 0, 'everything mirrored before the loss is in the results')
  t.equal(r.duplicates, 0, 'nothing counted twice')
  t.ok(
    r.straddled_resends >= 50,
    `re-sends straddling the failover (first copy acked at a, second at b) were sent (${r.straddled_resends}) and none was applied twice (duplicates 0)`,
  )
  t.equal(r.failback_lost, 0, 'nothing lost in the failback')
  t.equal(r.windows_wrong, 0, "every window's count, sum, min and max of every field equal the reference")
  t.ok(r.windows_checked > 100, `environment windows compared with the docs-only reference (${r.windows_checked})`)
  assertDatabases(t, r, ['a', 'b'])
  t.equal(
    r.producer_log.missing,
    0,
    `every reading of the producer's log (${r.producer_log.readings}) is in a partition's chain`,
  )
})

t.test(
  'a lagging link (200 ms WAN): the mirror is behind at the kill; the RPO is counted exactly and read at failback',
  async (t) => {
    const r = await runFailoverScenario({
      ratePerS: 400,
      beforeS: 4,
      afterS: 3,
      failoverAfterMs: 0,
      failback: true,
      failbackS: 3,
      linkLatencyMs: 200,
      linkJitterMs: 50,
      log: (m) => t.comment(m),
    })
    t.comment(JSON.stringify(r))
    t.ok(
      r.rpo_readings > 0,
      `with the link 200 ms behind, some readings acked at a were not in b's mirror at the kill (${r.rpo_readings}, oldest ${r.rpo_ms} ms before it)`,
    )
    t.equal(
      r.rpo_recovered,
      r.rpo_readings,
      "every one of them is read after the failback (a's new segment starts after the seal): counted, never silently lost",
    )
    t.ok(
      r.rpo_reported >= r.rpo_readings && r.rpo_reported <= r.rpo_readings + r.in_flight_at_kill,
      `once a is back the system reports ${r.rpo_reported} of them ('not yet applied' at a; + up to ${r.in_flight_at_kill} publishes unanswered at the kill)`,
    )
    t.equal(r.lost_after_mirror, 0, 'everything mirrored before the loss is in the results')
    t.equal(r.duplicates, 0, 'nothing counted twice')
    t.equal(r.failback_lost, 0, 'nothing lost in the failback')
    t.same(
      { missing: r.producer_log.missing, extra: r.producer_log.extra },
      { missing: 0, extra: 0 },
      `every reading of the producer's log (${r.producer_log.readings}), the recovery point included, applied exactly once`,
    )
  },
)
