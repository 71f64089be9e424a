/**
 * bench/detect.ts: the scoring rules on hand-made cases (overlap, entity and type must match, episodes still
 * running at the end, aliases), then a short seeded run of every profile against its simulator's ground truth
 * that must meet the targets (plant precision >= 0.95 and recall >= 0.90 per type, race overheats exact).
 */
import t from 'tap'
import { alertSpans, benchDetect, percentile, score } from '../../bench/detect.js'
import type { AlertBody, Output } from '../../actors/types.js'
import type { Episode } from '../../simulators/truth.js'

const ep = (entity: string, type: string, start: number, end: number): Episode => ({
  kind: 'sensor',
  entity,
  type,
  start,
  end,
})
const out = (entity: string, b: Partial<AlertBody>): Pick<Output, 'entity' | 'type' | 'body'> => ({
  entity,
  type: 'alert',
  body: {
    alertId: `${entity}:${b.type}:${b.start}`,
    severity: 'warning',
    value: 0,
    threshold: 0,
    explanation: '',
    ...b,
  } as AlertBody,
})

void t.test('scoring: overlap on the same entity and type; precision and recall per type', async (t) => {
  const spans = alertSpans(
    [
      out('a', { type: 'x', state: 'open', start: 10 }),
      out('a', { type: 'x', state: 'close', start: 10, end: 20 }),
      out('a', { type: 'x', state: 'open', start: 50 }), // still open at the end (100)
      out('b', { type: 'x', state: 'open', start: 10 }),
      out('b', { type: 'x', state: 'close', start: 10, end: 12 }),
      out('a', { type: 'y', state: 'open', start: 30 }),
      out('a', { type: 'y', state: 'close', start: 30, end: 31 }),
    ],
    100,
  )
  t.same(spans.map((s) => [s.entity, s.type, s.start, s.end]).sort(), [
    ['a', 'x', 10, 20],
    ['a', 'x', 50, 100],
    ['a', 'y', 30, 31],
    ['b', 'x', 10, 12],
  ])
  const eps = [
    ep('a', 'x', 20, 25),
    ep('a', 'x', 200, 300),
    ep('b', 'y', 10, 12),
    ep('a', 'y', 32, 40),
    ep('c', 'x', 90, 150),
  ]
  const s = score(spans, eps, ['x', 'y'], undefined, 100)
  // x: alerts a[10,20] matches [20,25] (touching counts), a[50,100] matches nothing, b[10,12] has no b/x episode.
  t.match(s['x'], { alerts: 3, matched: 1, episodes: 1, detected: 1, precision: 1 / 3, recall: 1 })
  // y: a[30,31] does not reach [32,40]; b/y is missed.
  t.match(s['y'], { alerts: 1, matched: 0, episodes: 2, detected: 0, precision: 0, recall: 0 })
  const aliased = score(spans, [ep('a', 'deg', 0, 15)], ['deg'], (ty) => (ty === 'x' ? 'deg' : undefined))
  t.match(aliased['deg'], { alerts: 3, matched: 1, recall: 1 })
  t.match(score([], [], ['z'])['z'], { precision: 1, recall: 1 }, 'nothing injected, nothing raised')
  t.equal(percentile([5, 1, 3, 2, 4], 95), 5)
  t.equal(percentile([5, 1, 3, 2, 4], 50), 3)
})

void t.test('short seeded run of every profile meets the targets', async (t) => {
  const rep = benchDetect({ seed: 11, plantHours: 20, raceMinutes: 10, assetDays: 7, roadHours: 24 })
  let plantEpisodes = 0
  for (const [type, s] of Object.entries(rep.plant)) {
    plantEpisodes += s.episodes
    t.ok(s.precision >= 0.95, `plant ${type} precision ${s.precision} (${s.matched}/${s.alerts})`)
    t.ok(s.recall >= 0.9, `plant ${type} recall ${s.recall} (${s.detected}/${s.episodes})`)
  }
  t.ok(plantEpisodes >= 30, `${plantEpisodes} plant episodes`)
  for (const [type, s] of Object.entries(rep.race)) {
    t.ok(s.episodes > 0, `race ${type}: ${s.episodes} episodes`)
    t.same([s.precision, s.recall], [1, 1], `race ${type} exact`)
  }
  for (const d of ['asset', 'road'] as const) {
    for (const [type, s] of Object.entries(rep[d]))
      t.ok(
        s.precision >= 0.95 && s.recall >= 0.9,
        `${d} ${type}: ${s.precision}/${s.recall} over ${s.episodes} episodes`,
      )
  }
  t.ok(
    rep.inference.samples === rep.readings['plant'] && rep.inference.p95 > 0,
    `p95 ${rep.inference.p95.toFixed(2)} µs over ${rep.inference.samples} readings`,
  )
})
