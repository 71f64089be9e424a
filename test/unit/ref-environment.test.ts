/**
 * The docs-only reference of the environment profile (test/helpers/ref-environment.ts) on small hand-computed
 * cases, so that a mistake in the reference cannot hide behind the crash test's agreement with the system.
 */
import t from 'tap'
import { type EnvMsg, referenceEnvironment, windowKey } from '../helpers/ref-environment.js'

const T0 = 1_800_000_000_000 // a multiple of 60 s
const E = 'sensor:s1'
let seq = 0
const msg = (ts: number, fields: EnvMsg['fields'], rid?: string): EnvMsg => ({
  seq: ++seq,
  kind: 'sensor',
  id: 's1',
  ts,
  fields,
  ...(rid ? { rid } : {}),
})

void t.test('windows: tumbling and sliding, closed by the watermark, aggregates', async (t) => {
  const ref = referenceEnvironment([
    msg(T0 + 10_000, { temperature: 20, co2: 500 }),
    msg(T0 + 50_000, { temperature: 22.5 }),
    msg(T0 + 95_000, { temperature: 30 }), // watermark T0 + 65 s: closes tumbling [T0, T0+60 s)
  ])
  const w = ref.windows.get(windowKey(E, 'tumbling_1m', T0))
  t.same(w?.fields.temperature, { count: 2, sum: 42.5, min: 20, max: 22.5 })
  t.same(w?.fields.co2, { count: 1, sum: 500, min: 500, max: 500 })
  t.equal(w?.readings, 2)
  // Watermark T0 + 65 s: also sliding [T0 - 240 s, T0 + 60 s), which holds the first two readings.
  t.same(
    [...ref.windows.keys()].sort(),
    [windowKey(E, 'sliding_5m_1m', T0 - 240_000), windowKey(E, 'tumbling_1m', T0)].sort(),
  )
  t.equal(ref.windows.get(windowKey(E, 'sliding_5m_1m', T0 - 240_000))?.fields.temperature?.sum, 42.5)
  t.equal(ref.open.get(windowKey(E, 'sliding_5m_1m', T0))?.readings, 3, 'sliding [T0, T0+5 min) is open with all three')
  t.same(ref.late, [])
})

void t.test('late: for one definition (still counted in sliding windows) and for every definition', async (t) => {
  seq = 0
  const ref = referenceEnvironment([
    msg(T0 + 200_000, { temperature: 20 }), // watermark T0 + 170 s
    msg(T0 + 100_000, { temperature: 21 }), // minute [T0+60 s, T0+120 s) closed; sliding windows open: late and counted
    msg(T0 + 900_000, { temperature: 22 }), // watermark T0 + 870 s
    msg(T0 + 500_000, { temperature: 23 }), // last sliding window [T0+480 s, T0+780 s) closed: late, counted nowhere
  ])
  t.same(
    ref.late.map((l) => l.seq),
    [2, 4],
  )
  t.same([...ref.counted], [`${E}|2`])
  t.equal(ref.applied, 3)
  t.equal(
    ref.windows.get(windowKey(E, 'sliding_5m_1m', T0))?.fields.temperature?.count,
    2,
    'the reading behind its minute counts in its sliding window',
  )
  t.notOk(ref.windows.has(windowKey(E, 'tumbling_1m', T0 + 60_000)), 'its closed minute was never opened')
})

void t.test(
  'duration alerts: open after the duration, close at the first in-order reading under, short runs, out of order ignored',
  async (t) => {
    seq = 0
    const ref = referenceEnvironment([
      msg(T0 + 0, { temperature: 41 }),
      msg(T0 + 30_000, { temperature: 42 }),
      msg(T0 + 20_000, { temperature: 10 }), // out of order: does not end the run
      msg(T0 + 60_000, { temperature: 43 }), // 60 s over: opens
      msg(T0 + 70_000, { temperature: 20 }), // closes
      msg(T0 + 80_000, { temperature: 45 }),
      msg(T0 + 100_000, { temperature: 20 }), // a 20 s run: no alert
    ])
    t.same(
      [...ref.alerts.values()],
      [
        {
          alertId: `${E}:temperature_high:${T0}`,
          entity: E,
          type: 'temperature_high',
          start: T0,
          openedAt: T0 + 60_000,
          end: T0 + 70_000,
        },
      ],
    )
    t.equal(ref.shortRuns, 1)
    t.equal(
      ref.open.get(windowKey(E, 'sliding_5m_1m', T0))?.alerts,
      1,
      'the opening reading counts the alert in its windows',
    )
  },
)

void t.test(
  're-sends: the first copy of an (entity, rid) counts, later copies are dropped; no rid counts every time',
  async (t) => {
    seq = 0
    const ref = referenceEnvironment([
      msg(T0 + 1_000, { battery: 50 }, 'a'),
      msg(T0 + 2_000, { battery: 60 }, 'b'),
      msg(T0 + 1_000, { battery: 50 }, 'a'),
      msg(T0 + 3_000, { battery: 70 }),
      msg(T0 + 3_000, { battery: 70 }),
    ])
    t.equal(ref.duplicates, 1)
    t.same(ref.open.get(windowKey(E, 'tumbling_1m', T0))?.fields.battery, { count: 4, sum: 250, min: 50, max: 70 })
  },
)
