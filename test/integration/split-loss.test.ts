/**
 * Split and heal over a lossy link (issue 18), the scenario of test/helpers/split.ts: from the start the
 * leafnode link loses 5 % of what a sends to b (the direction of b's mirrors of a's TLM, OUT and state, and of
 * a's answers to b's JetStream requests) with 80 ms ± 60 ms of WAN latency and jitter both ways. Over TCP a
 * loss is a retransmission: the proxy holds the lost chunk and everything behind it for an RTO (200 ms, doubled
 * on each loss in a row; test/helpers/proxy.ts `loss`); holes and reordering cannot happen. Then a clean cut
 * while a's health answers over another path, the operator's failover at b, and the heal. The workers run the
 * production profile list with `environment` readings; the checks are the clean cut's (test/integration/split.test.ts):
 * both databases converge to the docs-only reference over the winner's chains, a's readings past the seal
 * reach b, every reading of the producers' log is in the winner's chains.
 */
import t from 'tap'
import { splitAndHeal } from '../helpers/split.js'

t.test(
  'split over a lossy link (5 % one-way loss a -> b, 80 ms ± 60 ms WAN), production profiles: operator failover; heal converges',
  async (t) => {
    await splitAndHeal(t, {
      fault: 'cut',
      healthOverLink: false,
      latencyMs: 80,
      jitterMs: 60,
      loss: { dir: 'down', rate: 0.05 },
      profiles: 'production',
    })
  },
)
