/**
 * Trip distance of the road profile on noisy bus-like traces (test/helpers/road-trace.ts: curves, stops, GPS
 * noise, single-reading jumps of 200-900 m, dropouts of 30-120 s) at 1, 2, 5 and 10 s readings, against the
 * true arc length: median error <= 1 %, p95 <= 3 % per rate (the targets of issue 22). Also: jumps after a
 * dropout are not counted, and true fixes are not rejected after a jump.
 */
import t from 'tap'
import { road } from '../../actors/kinds/vehicle/road.js'
import type { ScoreBody } from '../../actors/types.js'
import { runActor } from '../helpers/harness.js'
import { makeTrace } from '../helpers/road-trace.js'

const entity = { kind: 'vehicle', id: 'BUS1' } as const
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number
}

for (const periodMs of [1_000, 2_000, 5_000, 10_000]) {
  void t.test(`trip distance at ${periodMs / 1000} s readings`, async (t) => {
    const errs: number[] = []
    let jumps = 0,
      dropouts = 0
    for (let seed = 1; seed <= 24; seed++) {
      const tr = makeTrace({ seed: seed * 7919 + periodMs, periodMs, lengthM: 4_000 + (seed % 5) * 2_000 })
      jumps += tr.jumps
      dropouts += tr.dropouts
      const r = runActor(
        road,
        entity,
        tr.readings.map((reading) => ({ reading })),
      )
      const trips = r.outputs
        .filter((o) => o.type === 'score' && (o.body as ScoreBody).name === 'trip')
        .map((o) => (o.body as ScoreBody).factors)
      t.equal(trips.length, 1, `seed ${seed}: one trip`)
      const km = trips[0]?.['distance_km'] ?? 0
      errs.push((km * 1000 - tr.trueM) / tr.trueM)
    }
    const abs = errs.map(Math.abs)
    const med = quantile(abs, 0.5)
    const p95 = quantile(abs, 0.95)
    t.comment(
      `${periodMs / 1000} s: |error| median ${(med * 100).toFixed(2)} %, p95 ${(p95 * 100).toFixed(2)} %, signed median ${(quantile(errs, 0.5) * 100).toFixed(2)} % (${jumps} jumps, ${dropouts} dropouts)`,
    )
    t.ok(med <= 0.01, `median |error| ${(med * 100).toFixed(2)} % <= 1 %`)
    t.ok(p95 <= 0.03, `p95 |error| ${(p95 * 100).toFixed(2)} % <= 3 %`)
  })
}
