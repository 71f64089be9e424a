/**
 * End to end, one seeded run per profile: `pitwall simulate` (cmd/simulate.ts) publishes into a real
 * nats-server (the environment sensors over MQTT through its listener, the rest over NATS) -> a real Worker runs the actors -> the real projector writes OUT into a fresh PostgreSQL database ->
 * the gateway's HTTP routes (inject, auth on) answer; the answers are checked against the simulator's ground truth
 * (test/helpers/e2e.ts). Where the detector is exact (threshold-for-duration on values the simulator guarantees:
 * race overheats, environment alerts, road DTCs and low fuel) the alerts must equal the ground truth to the
 * millisecond; where it is statistical (plant, asset, engine overheat) every injected anomaly that finished must
 * be found and nothing may alert on an entity with no injected anomaly. Road also shows trips and positions live
 * (position outputs -> raw_readings -> GeoJSON), compared with the same readings run through in-memory cells.
 * All five runs go into one pipeline (their entities differ), published first and processed together.
 */
import t from 'tap'
import type { ActorDefinition } from '../../actors/actor.js'
import { environment } from '../../actors/kinds/sensor/environment.js'
import { road } from '../../actors/kinds/vehicle/road.js'
import type { LateBody, PositionBody, ScoreBody } from '../../actors/types.js'
import { runCells, score } from '../../bench/detect.js'
import { PLANT_ANOMALY_TYPES } from '../../simulators/plant.js'
import type { DomainItem, Episode } from '../../simulators/truth.js'
import { alertsOf, msOf, startPipeline, type SimRun } from '../helpers/e2e.js'
import { VIEW_KEY } from '../helpers/gateway.js'

type Json = Record<string, unknown>
const T0 = Date.UTC(2025, 0, 6, 8, 0, 0)

/** Event times of each entity's readings, ascending. */
function timesByEntity(items: readonly DomainItem[]): Map<string, number[]> {
  const m = new Map<string, number[]>()
  for (const it of items) {
    let l = m.get(it.id)
    if (!l) m.set(it.id, (l = []))
    l.push(it.reading.ts)
  }
  for (const l of m.values()) l.sort((a, b) => a - b)
  return m
}
/** The first event time of `id` strictly after `ts`, or null. */
const firstAfter = (times: Map<string, number[]>, id: string, ts: number): number | null =>
  (times.get(id) ?? []).find((x) => x > ts) ?? null
const ids = (items: readonly DomainItem[]): Set<string> => new Set(items.map((i) => i.id))
const overlaps = (a: { start: number; end: number }, e: Episode): boolean => e.start <= a.end && a.start <= e.end
/** An alert row from the API as a span (still open: runs to `endTs`). */
const span = (a: Json, endTs: number): { entity: string; type: string; start: number; end: number } => ({
  entity: String(a.entity),
  type: String(a.type),
  start: msOf(a.startedAt),
  end: a.endedAt === null ? endTs : msOf(a.endedAt),
})

void t.test('five profiles, simulator -> worker -> PostgreSQL -> gateway', async (t) => {
  const p = await startPipeline(t)
  const runs: Record<string, SimRun> = {}
  runs.race = await p.simulate({ profile: 'race', seed: 1, entities: 3, startTs: T0, durationS: 480 })
  // The environment sensors publish over MQTT (QoS 1) through nats-server's listener, the others over NATS.
  runs.environment = await p.simulate({
    profile: 'environment',
    seed: 1,
    entities: 10,
    startTs: T0,
    durationS: 7200,
    mqtt: true,
  })
  runs.plant = await p.simulate({
    profile: 'plant',
    seed: 25,
    entities: 16,
    startTs: T0,
    durationS: 3 * 3600,
    extra: ['--warmup', '5400', '--anomaly-share', '0.25'],
  })
  runs.asset = await p.simulate({ profile: 'asset', seed: 9, entities: 4, startTs: T0, durationS: 39 * 3600 })
  runs.road = await p.simulate({ profile: 'road', seed: 1, entities: 10, startTs: T0, durationS: 12 * 3600 })
  const total = Object.values(runs).reduce((n, r) => n + r.sent, 0)
  await p.settle(total)
  t.ok(p.worker.stats.processed >= total, `${total} readings processed`)
  t.same(p.projector.stats().failed, undefined, 'projector healthy')
  t.equal(p.projector.stats().rejectedMalformed, 0, 'no output set aside')

  await t.test('race: brake/tyre overheat alerts equal the ground truth; laps', async (t) => {
    const run = runs.race as SimRun
    const eps = run.episodes.filter((e) => e.type === 'brake_overheat' || e.type === 'tire_overheat')
    t.ok(eps.length >= 3, `${eps.length} overheat episodes injected`)
    t.ok(
      eps.every((e) => e.end < run.endTs - 1000),
      'every episode ended within the run',
    )
    const times = timesByEntity(run.items)
    const want = eps
      .map((e) => ({
        alertId: `vehicle:${e.entity}:${e.type}:${e.start}`,
        entity: e.entity,
        type: e.type,
        state: 'closed',
        severity: e.type === 'brake_overheat' ? 'critical' : 'warning',
        startedAt: new Date(e.start).toISOString(),
        endedAt: new Date(firstAfter(times, e.entity, e.end) as number).toISOString(),
      }))
      .sort((a, b) => a.alertId.localeCompare(b.alertId))
    const cars = ids(run.items)
    const got = (await alertsOf(p, 'vehicle')).filter((a) => cars.has(String(a.entity)))
    t.same(
      got
        .map((a) => ({
          alertId: a.alertId,
          entity: a.entity,
          type: a.type,
          state: a.state,
          severity: a.severity,
          startedAt: a.startedAt,
          endedAt: a.endedAt,
        }))
        .sort((a, b) => String(a.alertId).localeCompare(String(b.alertId))),
      want,
      'one alert per episode: start = first reading over, end = first reading after',
    )
    for (const a of got)
      t.ok(
        Number(a.peakValue) > Number(a.threshold),
        `${String(a.alertId)}: peak ${String(a.peakValue)} over ${String(a.threshold)}`,
      )
    for (const car of cars) {
      const seen = [...new Set(run.items.filter((i) => i.id === car).map((i) => i.reading.fields.lap as number))]
      const laps = await p.all(`/v1/entities/vehicle/${car}/laps`)
      t.same(
        laps.map((l) => l.lap),
        seen.slice(0, -1),
        `${car}: every finished lap (${seen.length - 1})`,
      )
      for (const l of laps.slice(1))
        t.ok(
          Number(l.lapTimeMs) > 70_000 && Number(l.lapTimeMs) < 130_000,
          `${car} lap ${String(l.lap)}: ${String(l.lapTimeMs)} ms`,
        )
    }
  })

  await t.test(
    'environment (over MQTT): threshold-for-duration alerts equal the ground truth; late readings kept',
    async (t) => {
      const run = runs.environment as SimRun
      const alias: Record<string, string> = {
        high_temperature: 'temperature_high',
        high_co2: 'co2_high',
        sensor_failure: 'device_failure',
      }
      const sensors = ids(run.items)
      // Alerts follow the newest reading: the first reading inside an episode, in delivery order, that was newer
      // than everything before it opens it; the first such reading after the end closes it.
      const newest = new Map<string, Array<{ ts: number }>>()
      const maxTs = new Map<string, number>()
      for (const it of run.items) {
        if (it.reading.ts < (maxTs.get(it.id) ?? -Infinity)) continue
        maxTs.set(it.id, it.reading.ts)
        let l = newest.get(it.id)
        if (!l) newest.set(it.id, (l = []))
        l.push({ ts: it.reading.ts })
      }
      const eps = run.episodes.filter((e) => e.end < run.endTs - 60_000)
      t.ok(eps.length >= 10, `${eps.length} finished episodes`)
      const want = eps
        .map((e) => {
          const l = newest.get(e.entity) ?? []
          const start = l.find((x) => x.ts >= e.start)?.ts
          const end = l.find((x) => x.ts > e.end)?.ts
          return { entity: e.entity, type: alias[e.type] as string, start, end }
        })
        .sort((a, b) => `${a.entity}${a.start}`.localeCompare(`${b.entity}${b.start}`))
      const got = (await alertsOf(p, 'sensor')).filter((a) => sensors.has(String(a.entity)))
      // Episodes still running at the end may have opened an alert; stale alerts are processing-time (wall clock).
      const open = run.episodes.filter((e) => !eps.includes(e))
      const scored = got.filter(
        (a) =>
          a.type !== 'stale' &&
          !open.some((e) => e.entity === a.entity && alias[e.type] === a.type && overlaps(span(a, run.endTs), e)),
      )
      t.same(
        scored
          .map((a) => ({ entity: a.entity, type: a.type, start: msOf(a.startedAt), end: msOf(a.endedAt) }))
          .sort((a, b) => `${a.entity}${a.start}`.localeCompare(`${b.entity}${b.start}`)),
        want,
        `${want.length} alerts, exact starts and ends`,
      )
      const clean = [...sensors].filter((s) => !run.episodes.some((e) => e.entity === s))
      t.same(
        got.filter((a) => clean.includes(String(a.entity)) && a.type !== 'stale'),
        [],
        `no alert on the ${clean.length} sensors without an episode`,
      )
      // Windows reached PostgreSQL too: one tumbling minute per minute of the run, but for the last ones the
      // watermark has not closed yet.
      // Readings delivered more than the allowed lateness (30 s) behind their sensor's newest are written aside:
      // the same ones as through in-memory cells, each a reading the sensor sent late.
      let k = 0
      const ref = runCells(environment as unknown as ActorDefinition<unknown, unknown>, () => run.items[k++])
      const late = (await p.all('/v1/late-readings?kind=sensor')).filter((l) => sensors.has(String(l.entity)))
      const key = (entity: unknown, ts: number): string => `${String(entity)}@${ts}`
      t.same(
        late.map((l) => key(l.entity, msOf(l.readingTs))).sort(),
        ref
          .filter((o) => o.type === 'late')
          .map((o) => key(o.entity, (o.body as LateBody).readingTs))
          .sort(),
        `${late.length} late readings`,
      )
      const delayed = new Set(run.items.filter((i) => i.at > i.reading.ts).map((i) => key(i.id, i.reading.ts)))
      t.ok(
        late.every((l) => delayed.has(key(l.entity, msOf(l.readingTs)))),
        'each one was delivered late by the simulator',
      )
      const w = await p.all('/v1/entities/sensor/env-0001/windows?window=tumbling_1m')
      t.ok(w.length >= 118 && w.length <= 120, `${w.length} one-minute windows`)
      t.equal(
        msOf(w[0]?.start),
        Math.floor((run.items.find((i) => i.id === 'env-0001')?.reading.ts ?? 0) / 60_000) * 60_000,
        'from the first minute',
      )
    },
  )

  await t.test('plant: every finished anomaly of the five types found on its sensor, no false alert', async (t) => {
    const run = runs.plant as SimRun
    const sensors = ids(run.items)
    const got = (await alertsOf(p, 'sensor')).filter((a) => sensors.has(String(a.entity)))
    t.ok(got.length >= 4, `${got.length} plant alerts`)
    // Episodes reaching the last reading are still running: not owed a detection (score() skips end > endTs).
    const s = score(
      got.map((a) => span(a, run.endTs)),
      run.episodes,
      PLANT_ANOMALY_TYPES,
      undefined,
      run.lastTs - 1,
    )
    let episodes = 0
    for (const [type, r] of Object.entries(s)) {
      episodes += r.episodes
      t.ok(r.episodes >= 1, `${type}: injected and finished within the run`)
      t.same(
        { precision: r.precision, recall: r.recall },
        { precision: 1, recall: 1 },
        `${type}: ${r.alerts} alerts, ${r.detected}/${r.episodes} episodes`,
      )
    }
    t.ok(episodes >= 5, `${episodes} finished episodes scored`)
    for (const a of got) {
      const d = a.details as { features?: unknown } | null
      t.ok(
        d && typeof d === 'object' && Object.keys(d).length > 0,
        `${String(a.alertId)} explains itself: ${JSON.stringify(d).slice(0, 120)}`,
      )
    }
    const clean = [...sensors].filter((x) => !run.episodes.some((e) => e.entity === x))
    t.same(
      got.filter((a) => clean.includes(String(a.entity))).map((a) => a.alertId),
      [],
      `nothing on the ${clean.length} clean sensors`,
    )
  })

  await t.test(
    'asset: the degrading locomotive raises risk and alerts; its risk and reasons through the API key',
    async (t) => {
      const run = runs.asset as SimRun
      const locos = ids(run.items)
      const finished = run.episodes.filter((e) => e.end < run.lastTs)
      t.ok(finished.length >= 1, `${finished.length} degradation finished within the run`)
      const got = (await alertsOf(p, 'sensor')).filter((a) => locos.has(String(a.entity)))
      for (const e of finished) {
        const mine = got.filter((a) => a.entity === e.entity && overlaps(span(a, run.endTs), e))
        t.ok(
          mine.some((a) => a.type === 'risk_high'),
          `${e.entity}: risk_high during its degradation`,
        )
        t.ok(
          mine.some((a) => a.type === 'asset_danger' && a.severity === 'critical'),
          `${e.entity}: asset_danger during its degradation`,
        )
      }
      t.same(
        got
          .filter((a) => !run.episodes.some((e) => e.entity === a.entity && overlaps(span(a, run.endTs), e)))
          .map((a) => a.alertId),
        [],
        'every alert lies on an injected degradation',
      )
      const key = { 'x-api-key': VIEW_KEY }
      for (const id of locos) {
        const r = await p.get(`/v1/entities/sensor/${id}/state`, key)
        t.equal(r.status, 200, `${id} live state ${JSON.stringify(r.body).slice(0, 200)}`)
        const st = r.body.state as { risk: number; reasons: Array<{ feature: string }> }
        const row = await p.pool.query<{ value: number }>(
          `SELECT value FROM scores_latest WHERE kind = 'sensor' AND entity = $1 AND name = 'failure_risk'`,
          [id],
        )
        t.equal(st.risk, row.rows[0]?.value, `${id}: live risk ${st.risk} = the projected latest score`)
        t.ok(
          st.reasons.length >= 1 && st.reasons.every((x) => typeof x.feature === 'string'),
          `${id}: reasons ${st.reasons.map((x) => x.feature).join(', ')}`,
        )
      }
      const peak = await p.pool.query<{ entity: string; max: number }>(
        `SELECT entity, max(value) AS max FROM score_history WHERE kind = 'sensor' AND name = 'failure_risk' AND entity = ANY($1) GROUP BY entity`,
        [[...locos]],
      )
      const degraded = new Set(finished.map((e) => e.entity))
      for (const r of peak.rows) {
        if (degraded.has(r.entity)) t.equal(r.max, 100, `${r.entity}: risk reached the danger floor`)
        else if (!run.episodes.some((e) => e.entity === r.entity))
          t.ok(r.max < 50, `${r.entity} (healthy): risk at most ${r.max.toFixed(2)}`)
      }
    },
  )

  await t.test('road: DTC, overheat and low-fuel alerts; trips and positions live', async (t) => {
    const run = runs.road as SimRun
    const vins = ids(run.items)
    const times = timesByEntity(run.items)
    const got = (await alertsOf(p, 'vehicle')).filter((a) => vins.has(String(a.entity)))
    const types = ['dtc', 'engine_overheat', 'low_fuel']
    t.ok(
      run.episodes.length >= 5 && types.every((ty) => run.episodes.some((e) => e.type === ty)),
      `${run.episodes.length} episodes of every type`,
    )
    for (const e of run.episodes) {
      const mine = got.filter((a) => a.entity === e.entity && a.type === e.type && overlaps(span(a, run.endTs), e))
      t.equal(mine.length, 1, `${e.type} on ${e.entity} at +${(e.start - run.startTs) / 1000} s: one alert`)
      const a = mine[0]
      if (!a) continue
      if (e.type === 'dtc') {
        // Exact: opens on the first reading with the code, closes on the first one without it.
        t.equal(msOf(a.startedAt), e.start, 'dtc start')
        t.same(a.details, { code: e.mode }, 'dtc code')
        const end = firstAfter(times, e.entity, e.end)
        t.equal(a.endedAt === null ? null : msOf(a.endedAt), end === null ? null : end, 'dtc end')
      } else if (e.type === 'low_fuel') {
        // Dated where the level's trend line crossed 10 % (docs/profiles.md, `fuelTrendMs`), not at the first raw
        // reading under it: within a minute of it either way.
        const off = msOf(a.startedAt) - e.start
        t.ok(Math.abs(off) <= 60_000, `low fuel within 60 s of the first reading under 10 % (${off / 1000} s)`)
      } else {
        t.ok(msOf(a.startedAt) >= e.start && msOf(a.startedAt) <= e.end, 'overheat starts inside the episode')
        t.equal(a.severity, 'critical')
      }
    }
    const clean = [...vins].filter((v) => !run.episodes.some((e) => e.entity === v))
    t.same(
      got.filter((a) => clean.includes(String(a.entity)) && a.type !== 'unit_offline').map((a) => a.alertId),
      [],
      `no alert on the ${clean.length} vehicles without an episode`,
    )
    t.same(
      got
        .filter(
          (a) =>
            types.includes(String(a.type)) &&
            !run.episodes.some((e) => e.entity === a.entity && e.type === a.type && overlaps(span(a, run.endTs), e)),
        )
        .map((a) => a.alertId),
      [],
      'every DTC/overheat/low-fuel alert lies on an episode',
    )

    // Trips and positions: what the live pipeline projected equals the same readings through in-memory cells.
    let k = 0
    const ref = runCells(road as unknown as ActorDefinition<unknown, unknown>, () => run.items[k++])
    let trips = 0
    let positions = 0
    for (const vin of vins) {
      const wantTrips = ref
        .filter((o) => o.entity === vin && o.type === 'score' && (o.body as ScoreBody).name === 'trip')
        .map((o) => (o.body as ScoreBody).factors)
      const wantPos = ref
        .filter((o) => o.entity === vin && o.type === 'position')
        .map((o) => ({ ts: o.ts, body: o.body as PositionBody }))
      const tr = await p.get(`/v1/entities/vehicle/${vin}/trips?limit=100`)
      t.equal(tr.status, 200)
      const feats = (tr.body.features ?? []) as Array<{
        geometry: { type: string; coordinates: number[][] } | null
        properties: Json
      }>
      t.same(
        feats.map((f) => [msOf(f.properties.start), msOf(f.properties.end), f.properties.distanceKm]),
        wantTrips.map((f) => [f.start_ts, f.end_ts, f.distance_km]),
        `${vin}: ${wantTrips.length} trips`,
      )
      const pos = (await p.all(`/v1/entities/vehicle/${vin}/positions`)) as Array<{
        geometry: { coordinates: number[] }
        properties: Json
      }>
      t.same(
        pos.map((f) => [
          msOf(f.properties.ts),
          f.geometry.coordinates[1],
          f.geometry.coordinates[0],
          f.properties.reason,
        ]),
        wantPos.map((x) => [x.ts, x.body.lat, x.body.lon, x.body.reason]),
        `${vin}: ${wantPos.length} positions`,
      )
      // Independent of the actor: each position is a fix the vehicle sent at that time, samples >= 60 s apart.
      const sent = new Map(
        run.items.filter((i) => i.id === vin).map((i) => [i.reading.ts, [i.reading.fields.lat, i.reading.fields.lon]]),
      )
      t.ok(
        pos.every(
          (f) =>
            JSON.stringify(sent.get(msOf(f.properties.ts))) ===
            JSON.stringify([f.geometry.coordinates[1], f.geometry.coordinates[0]]),
        ),
        `${vin}: positions are sent fixes`,
      )
      const samples = pos.filter((f) => f.properties.reason === 'sample').map((f) => msOf(f.properties.ts))
      t.ok(
        samples.every((ts, i) => i === 0 || ts - (samples[i - 1] as number) >= 60_000),
        `${vin}: at most one sampled position a minute`,
      )
      t.ok(
        pos.length < (times.get(vin)?.length ?? 0) / 2,
        `${vin}: ${pos.length} positions for ${times.get(vin)?.length} readings`,
      )
      for (const f of feats) {
        const start = msOf(f.properties.start)
        const end = msOf(f.properties.end)
        const inTrip = pos.filter((x) => msOf(x.properties.ts) >= start && msOf(x.properties.ts) <= end)
        t.same(
          f.geometry?.coordinates,
          inTrip.map((x) => x.geometry.coordinates),
          `${vin} trip at ${new Date(start).toISOString()}: the path of its positions`,
        )
        t.equal(inTrip[0]?.properties.reason, 'trip_start', 'starts at the trip start fix')
      }
      trips += feats.length
      positions += pos.length
      // Last known position: the live state of the actor.
      const st = await p.get(`/v1/entities/vehicle/${vin}/state`)
      const lastTs = (times.get(vin) ?? []).at(-1)
      const last = run.items.filter((i) => i.id === vin).at(-1)?.reading
      t.match(
        st.body.state,
        { position: { ts: lastTs, lat: last?.fields.lat, lon: last?.fields.lon } },
        `${vin}: last position`,
      )
    }
    t.ok(trips >= 20 && positions >= 500, `${trips} trips, ${positions} positions`)
  })
})
