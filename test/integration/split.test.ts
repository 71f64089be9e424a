/**
 * Split and heal (docs/sites.md, "Split"), the scenario of test/helpers/split.ts: a clean cut with 50 ms WAN
 * while the health path answers (no automatic failover; the operator forces one), and a silent blackhole of
 * the link and the health path with 100 ms WAN (b fails over by itself once its probes time out).
 */
import t from 'tap'
import { splitAndHeal } from '../helpers/split.js'

t.test(
  'split (clean cut, health answers over another path, 50 ms WAN): no automatic failover; operator failover; heal converges',
  async (t) => {
    await splitAndHeal(t, { fault: 'cut', healthOverLink: false, latencyMs: 50, jitterMs: 20 })
  },
)

t.test(
  'silent partition (blackhole of the link and the health path, 100 ms WAN): b fails over by itself; heal converges',
  async (t) => {
    await splitAndHeal(t, { fault: 'blackhole', healthOverLink: true, latencyMs: 100, jitterMs: 50 })
  },
)
