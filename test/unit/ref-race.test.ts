/**
 * The docs-only reference of the race profile (test/helpers/ref-race.ts) on small hand-computed cases, so that a
 * mistake in the reference cannot hide behind the crash test's agreement with the system.
 */
import t from 'tap'
import { type RaceMsg, alertKey, lapKey, referenceRace } from '../helpers/ref-race.js'

const T0 = 1_800_000_000_000
const E = 'vehicle:car1'
let seq = 0
const msg = (ts: number, fields: RaceMsg['fields'], rid?: string): RaceMsg => ({
  seq: ++seq,
  kind: 'vehicle',
  id: 'car1',
  ts,
  fields,
  ...(rid ? { rid } : {}),
})
const brakes = (fl: number, rr = 400): RaceMsg['fields'] => ({
  brake_temp_fl: fl,
  brake_temp_fr: 500,
  brake_temp_rl: 400,
  brake_temp_rr: rr,
})

void t.test(
  'brake_overheat: 2 s over opens, 1.8 s does not, the hottest corner counts, hysteresis band, close',
  async (t) => {
    seq = 0
    const ref = referenceRace([
      msg(T0, brakes(960)),
      msg(T0 + 1_800, brakes(960)),
      msg(T0 + 1_900, brakes(950)), // not over 950: the pending run ends, 1.8 s long
      msg(T0 + 3_000, brakes(400, 951)), // another corner: a new run
      msg(T0 + 4_000, brakes(990, 400)), // still over (the hottest corner)
      msg(T0 + 5_000, brakes(951)), // 2 s after the start: opens
      msg(T0 + 6_000, brakes(926)), // inside the band (925, 950]: stays open
      msg(T0 + 7_000, brakes(925)), // closes
    ])
    t.same(
      [...ref.alerts.values()],
      [{ entity: E, type: 'brake_overheat', start: T0 + 3_000, openedAt: T0 + 5_000, end: T0 + 7_000 }],
    )
    t.equal(ref.shortRuns, 1)
  },
)

void t.test('tire_overheat closes at 125 °C; a reading without tyre temperatures changes nothing', async (t) => {
  seq = 0
  const ref = referenceRace([
    msg(T0, { tyre_temp_rl: 131 }),
    msg(T0 + 1_000, { speed: 200 }),
    msg(T0 + 2_000, { tyre_temp_rl: 140, tyre_temp_fl: 90 }), // opens
    msg(T0 + 2_500, { tyre_temp_rl: 125.25 }), // band
    msg(T0 + 3_000, { tyre_temp_rl: 125 }), // closes
  ])
  t.same(ref.alerts.get(alertKey(E, 'tire_overheat', T0)), {
    entity: E,
    type: 'tire_overheat',
    start: T0,
    openedAt: T0 + 2_000,
    end: T0 + 3_000,
  })
})

void t.test('late: behind the newest event time (lateness 0), not at it; a late reading changes nothing', async (t) => {
  seq = 0
  const ref = referenceRace([
    msg(T0, { lap: 1, speed: 100, brake_temp_fl: 960 }),
    msg(T0 + 1_000, { lap: 1, speed: 110, brake_temp_fl: 960 }),
    msg(T0 + 999, { lap: 2, speed: 5, brake_temp_fl: 100 }), // late: neither ends the run nor starts lap 2
    msg(T0 + 1_000, { lap: 1, speed: 120, brake_temp_fl: 960 }), // equal event time: not late
    msg(T0 + 2_000, { lap: 2, speed: 130, brake_temp_fl: 960 }), // 2 s over: opens; finishes lap 1
  ])
  t.same(ref.late, [{ entity: E, seq: 3, ts: T0 + 999, watermark: T0 + 1_000 }])
  t.equal(ref.alerts.get(alertKey(E, 'brake_overheat', T0))?.openedAt, T0 + 2_000)
  t.match(ref.laps.get(lapKey(E, 1)), {
    start: T0,
    end: T0 + 2_000,
    lapTimeMs: 2_000,
    samples: 3,
    minSpeed: 100,
    maxSpeed: 120,
    avgSpeed: 110,
    maxBrakeTemp: 960,
  })
})

void t.test(
  'laps: a higher counter finishes the lap; no lap or a lower one counts in the lap in progress; none before the first',
  async (t) => {
    seq = 0
    const ref = referenceRace([
      msg(T0, { speed: 300 }), // before any lap number: in no lap
      msg(T0 + 100, { lap: 3, speed: 200, tyre_temp_fl: 100, brake_temp_rr: 700 }),
      msg(T0 + 200, { speed: 250 }),
      msg(T0 + 300, { lap: 2, speed: 150, tyre_temp_fr: 110 }),
      msg(T0 + 400, { lap: 3 }), // no speed: counts as a sample, not in the speeds
      msg(T0 + 500, { lap: 5, speed: 210 }), // finishes lap 3 (a jump of two)
      msg(T0 + 600, { lap: 5, speed: 220 }),
    ])
    t.same(
      [...ref.laps.values()],
      [
        {
          entity: E,
          lap: 3,
          start: T0 + 100,
          end: T0 + 500,
          lapTimeMs: 400,
          minSpeed: 150,
          avgSpeed: 200,
          maxSpeed: 250,
          maxBrakeTemp: 700,
          maxTyreTemp: 110,
          samples: 4,
          speeds: 3,
          speedSum: 600,
        },
      ],
    )
    t.equal(ref.strayLap, 2)
    t.match(ref.openLaps.get(lapKey(E, 5)), { samples: 2, start: T0 + 500 })
    t.notOk(ref.laps.has(lapKey(E, 2)), 'the lower counter is not a lap of its own')
  },
)

void t.test(
  're-sends: the first copy of an (entity, rid) counts, later copies are dropped; no rid counts every time',
  async (t) => {
    seq = 0
    const ref = referenceRace([
      msg(T0, { lap: 1, speed: 100 }, 'a'),
      msg(T0 + 100, { lap: 1, speed: 200 }, 'b'),
      msg(T0, { lap: 1, speed: 100 }, 'a'), // a re-send: dropped, so not late either
      msg(T0 + 200, { lap: 1, speed: 300 }),
      msg(T0 + 200, { lap: 1, speed: 300 }),
      msg(T0 + 300, { lap: 2 }),
    ])
    t.equal(ref.duplicates, 1)
    t.same(ref.late, [])
    t.match(ref.laps.get(lapKey(E, 1)), { samples: 4, speedSum: 900 })
  },
)
