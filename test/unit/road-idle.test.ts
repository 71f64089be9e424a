/**
 * Idle time of the road profile (issue 22): a vehicle is idle while its engine runs and it stands (OBD speed 0,
 * else a speed of at most `stationaryKmh`), not while it brakes or pulls away below the trip's 5 km/h; a trip's
 * `idle_s` holds only the idle inside the trip (not the arrival idle after the stop that ends it); and a silence
 * in the data ends an idle where the data ended when the vehicle is moving after it. Expected values are the
 * durations of the synthetic timeline below, not the profile's arithmetic.
 */
import t from 'tap'
import { ROAD_DEFAULTS, road } from '../../actors/kinds/vehicle/road.js'
import type { FieldValue } from '../../actors/types.js'
import { runActor, type EmittedOutput, type HarnessMessage } from '../helpers/harness.js'

const entity = { kind: 'vehicle', id: 'V1' } as const
const T0 = 1_700_006_400_000
const M_LAT = (6_371_008.8 * Math.PI) / 180
const M_LON = M_LAT * Math.cos((45 * Math.PI) / 180)

/** A timeline of 1 s readings: phases of [seconds, km/h, ignition]; the vehicle drives east along a line. */
function timeline(phases: Array<[number, number, boolean]>, silences: Array<[number, number]> = []): HarnessMessage[] {
  const out: HarnessMessage[] = []
  let x = 0
  let s = 0
  for (const [dur, kmh, ign] of phases) {
    for (let k = 0; k < dur; k++, s++) {
      x += kmh / 3.6
      if (silences.some(([a, b]) => s >= a && s < b)) continue
      const fields: Record<string, FieldValue> = {
        lat: 45,
        lon: 7 + x / M_LON,
        speed: kmh,
        obd_speed: Math.round(kmh),
        ignition: ign,
        rpm: ign ? 700 : 0,
      }
      out.push({ reading: { ts: T0 + s * 1000, fields } })
    }
  }
  return out
}

const scores = (outs: EmittedOutput[], name: string): Array<Record<string, number>> =>
  outs
    .filter((o) => o.type === 'score' && (o.body as { name?: string }).name === name)
    .map((o) => (o.body as { factors: Record<string, number> }).factors)

void t.test('idle is standing with the engine on: braking below 5 km/h is not idle', async (t) => {
  // Drive 120 s, brake through 4 km/h for 5 s, stand 60 s, pull away through 4 km/h for 5 s, drive 120 s, stand 5 min
  // at the terminal with the engine running, ignition off.
  const r = runActor(
    road,
    entity,
    timeline([
      [120, 30, true],
      [5, 4, true],
      [60, 0, true],
      [5, 4, true],
      [120, 30, true],
      [300, 0, true],
      [5, 0, false],
    ]),
    { config: ROAD_DEFAULTS },
  )
  const idles = scores(r.outputs, 'idle')
  t.same(
    idles.map((f) => f.duration_s),
    [60, 300],
    'two idle periods: the 60 s stand and the 5 min at the terminal',
  )
  const trips = scores(r.outputs, 'trip')
  t.equal(trips.length, 1, 'one trip')
  // Inside the trip the vehicle stood 60 s; the 5 min at the terminal follow the stop that ends the trip.
  t.equal(trips[0]?.idle_s, 60, 'trip idle_s: the 60 s stand only')
})

void t.test('a silence ends an idle where the data ended when the vehicle is moving after it', async (t) => {
  // Drive 120 s, stand 90 s, then 60 s without any reading (the vehicle pulls away in it), then drive on.
  const r = runActor(
    road,
    entity,
    timeline(
      [
        [120, 30, true],
        [90, 0, true],
        [60, 30, true],
        [120, 30, true],
      ],
      [[210, 270]],
    ),
    { config: ROAD_DEFAULTS },
  )
  const idles = scores(r.outputs, 'idle')
  t.equal(idles.length, 1, 'one idle period')
  t.equal(
    idles[0]?.duration_s,
    89,
    'from the first to the last standing reading (89 s), not to the reading after the silence',
  )
})
