/**
 * Crash test of the production `environment` profile (issue 13 part 5): 3 worker processes running the real
 * profile list (test/fixtures/worker-prod-main.ts), a deterministic trace of readings for a few hundred sensors
 * (out of order, behind the watermark, late, values over the alert thresholds for longer and shorter than their
 * duration, and re-sends with the same `rid` and no message id, which JetStream's duplicate window cannot catch),
 * a random worker killed with -9 at random moments (>= 6 times) and restarted. At the end OUT (fence rule,
 * highest token per id) equals the independent, docs-only reference test/helpers/ref-environment.ts over the
 * stream as stored: every window (count, sum, min, max exact, mean within 1e-9), every late reading, every
 * duration alert's open and close. PITWALL_CRASH_ENV_READINGS scales it (default 36,000 readings).
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { killLoop, startProdWorkers } from '../helpers/cluster.js'
import { checkEnvironment, feedEnvPlan, makeEnvPlan } from '../helpers/env-trace.js'
import { rng } from '../helpers/trace.js'

const N = Number(process.env.PITWALL_CRASH_ENV_READINGS ?? 36_000)
const SENSORS = Number(process.env.PITWALL_CRASH_ENV_SENSORS ?? 300)
const P = 8
const SITE = 'a'

t.test(
  'environment profile, kill -9 workers at random moments: windows, late readings and alerts equal the docs-based reference',
  async (t) => {
    const { nc, workers, respawn } = await startProdWorkers(t, SITE, P)

    const seed = Number(process.env.PITWALL_CRASH_ENV_SEED ?? 7)
    const { plan, resends } = makeEnvPlan(seed, N, SENSORS)
    t.comment(`seed ${seed}: ${plan.length} sends (${resends} re-sends) over ${SENSORS} sensors`)
    let done = false
    const feeding = feedEnvPlan(jetstream(nc), SITE, P, plan, Number(process.env.PITWALL_CRASH_ENV_RATE ?? 1_000)).then(
      (n) => {
        done = true
        return n
      },
    )
    const kills = await killLoop(workers, respawn, rng(seed + 1), () => done)
    t.equal(await feeding, plan.length, 'whole plan published')

    await checkEnvironment(t, nc, { sends: plan.length, resends, note: `kills=${kills}` })
  },
)
