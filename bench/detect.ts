/**
 * `npm run bench:detect -- [--json] [--seed 7] [--plant-hours 48] [--race-minutes 60] [--asset-days 14] [--road-hours 48]
 *   [--asset-eval heldout|tuning|quick|off] [--plant-eval heldout|heldout-past|tuning|quick|off] [--plant-eval-hours 48]`
 *
 * Detection quality, measured: every profile's simulator runs with injected anomalies, its readings go through the
 * real profile code in memory (one `ActorCell` per entity, exactly what a worker runs, no broker), and the alerts
 * that come out are scored against the simulator's ground truth:
 * - an alert matches an episode of the same entity and type whose [start, end] overlaps the alert's
 *   [start, end] (an alert still open at the end runs to the end of the run);
 * - precision = matched alerts / alerts, recall = episodes matched by at least one alert / episodes, per type;
 *   episodes still running when the run ends can match alerts but do not count toward recall.
 * Detection cost: the time of each handler call (`applyReading`) of the plant profile, p50/p95/p99 in µs.
 * Prints a table, then one JSON line last:
 * `{"plant":{"<type>":{"precision":P,"recall":R},...},"race":{...},"asset":{...},"road":{...},"inference_us_p95":N}`.
 * The detectors never see the ground truth: it is only read here, after the run, to score.
 * `asset_eval` in the JSON line: the asset risk model (trained, built-in) and the naive baseline on the independent
 * locomotive fleet by lead time (bench/asset-eval-run.ts; held-out seeds by default).
 * `plant_eval` in the JSON line: the process profile and both baselines (robust z-score, Isolation Forest) on the
 * independent plant scenario, typed and untyped, with the chance level (bench/plant-eval-run.ts; held-out seeds
 * 8001-8003 by default).
 */
import { ActorCell } from '../actors/cell.js'
import type { ActorDefinition } from '../actors/actor.js'
import { processProfile } from '../actors/kinds/sensor/process.js'
import { asset } from '../actors/kinds/sensor/asset.js'
import { race } from '../actors/kinds/vehicle/race.js'
import { road } from '../actors/kinds/vehicle/road.js'
import type { EntityKind } from '../actors/subjects.js'
import type { AlertBody, Output, Reading } from '../actors/types.js'
import { Simulator } from '../simulators/simulator.js'
import { PlantSimulator, PLANT_ANOMALY_TYPES } from '../simulators/plant.js'
import { AssetSimulator, ASSET_TRUTH_TYPES } from '../simulators/asset.js'
import { RoadSimulator, ROAD_TRUTH_TYPES } from '../simulators/road.js'
import type { DomainSimulator, Episode } from '../simulators/truth.js'
import { assetEvalSection } from './asset-eval-run.js'
import { plantEvalSection } from './plant-eval-run.js'

const args = process.argv.slice(2)
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : dflt
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`)
  return v
}
const JSON_ONLY = args.includes('--json')
const SEED = arg('seed', 7)

export interface Scored {
  precision: number
  recall: number
  alerts: number
  matched: number
  episodes: number
  detected: number
}

interface AlertSpan {
  entity: string
  type: string
  start: number
  end: number
}

/** Open/close alert outputs into spans (open ones end at `endTs`). */
export function alertSpans(outs: ReadonlyArray<Pick<Output, 'entity' | 'type' | 'body'>>, endTs: number): AlertSpan[] {
  const open = new Map<string, AlertSpan>()
  const done: AlertSpan[] = []
  for (const o of outs) {
    if (o.type !== 'alert') continue
    const b = o.body as AlertBody
    if (b.state === 'open') open.set(b.alertId, { entity: o.entity, type: b.type, start: b.start, end: endTs })
    else if (b.state === 'close') {
      const a = open.get(b.alertId)
      if (a) {
        a.end = b.end ?? endTs
        open.delete(b.alertId)
        done.push(a)
      }
    }
  }
  return [...done, ...open.values()]
}

/**
 * Precision and recall per truth type. `alias` maps an alert type to the truth type it reports (default: the
 * same name); alert types that map to no truth type are not scored.
 */
export function score(
  alerts: readonly AlertSpan[],
  episodes: readonly Episode[],
  types: readonly string[],
  alias: (alertType: string) => string | undefined = (t) => t,
  endTs = Infinity,
): Record<string, Scored> {
  const byKey = new Map<string, Episode[]>()
  for (const e of episodes) {
    const k = `${e.entity}\u0000${e.type}`
    let l = byKey.get(k)
    if (!l) byKey.set(k, (l = []))
    l.push(e)
  }
  const out: Record<string, Scored> = {}
  for (const t of types) out[t] = { precision: 1, recall: 1, alerts: 0, matched: 0, episodes: 0, detected: 0 }
  const detected = new Set<Episode>()
  for (const a of alerts) {
    const t = alias(a.type)
    if (t === undefined || !out[t]) continue
    const s = out[t] as Scored
    s.alerts++
    const hits = (byKey.get(`${a.entity}\u0000${t}`) ?? []).filter((e) => e.start <= a.end && a.start <= e.end)
    if (hits.length > 0) s.matched++
    for (const e of hits) detected.add(e)
  }
  for (const e of episodes) {
    const s = out[e.type]
    // An episode still running when the run ends may match alerts but is not owed a detection yet.
    if (!s || e.end > endTs) continue
    s.episodes++
    if (detected.has(e)) s.detected++
  }
  for (const s of Object.values(out)) {
    s.precision = s.alerts === 0 ? (s.episodes === 0 ? 1 : 0) : s.matched / s.alerts
    s.recall = s.episodes === 0 ? 1 : s.detected / s.episodes
  }
  return out
}

export function percentile(xs: Float64Array | number[], p: number): number {
  const a = Float64Array.from(xs).sort()
  if (a.length === 0) return NaN
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))] as number
}

type AnyDef = ActorDefinition<unknown, unknown>

/** Runs items through one cell per entity; returns the outputs, and handler times (µs) when `timings` is given. */
export function runCells(
  def: AnyDef,
  next: () => { kind: EntityKind; id: string; reading: Reading } | undefined,
  timings?: { us: Float64Array; n: number },
): Array<Omit<Output, 'site' | 'partition' | 'token'>> {
  const cells = new Map<string, ActorCell>()
  const outs: Array<Omit<Output, 'site' | 'partition' | 'token'>> = []
  const emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => {
    outs.push(o)
  }
  let seq = 0
  for (let it = next(); it; it = next()) {
    let cell = cells.get(it.id)
    if (!cell) cells.set(it.id, (cell = new ActorCell(def, def.defaults, { kind: it.kind, id: it.id })))
    seq++
    if (timings && timings.n < timings.us.length) {
      const t0 = process.hrtime.bigint()
      cell.applyReading(seq, it.reading.ts, it.reading, emit)
      timings.us[timings.n++] = Number(process.hrtime.bigint() - t0) / 1000
    } else {
      cell.applyReading(seq, it.reading.ts, it.reading, emit)
    }
  }
  return outs
}

function runDomain(
  sim: DomainSimulator,
  def: AnyDef,
  hours: number,
  timings?: { us: Float64Array; n: number },
): { outs: ReturnType<typeof runCells>; episodes: Episode[]; endTs: number } {
  const endTs = sim.startTs + hours * 3_600_000
  const outs = runCells(
    def,
    () => {
      const it = sim.next()
      return it.reading.ts < endTs ? it : undefined
    },
    timings,
  )
  return { outs, episodes: sim.episodes(Infinity), endTs }
}

export interface DetectReport {
  plant: Record<string, Scored>
  race: Record<string, Scored>
  asset: Record<string, Scored>
  road: Record<string, Scored>
  inference: { p50: number; p95: number; p99: number; samples: number }
  readings: Record<string, number>
}

export function benchDetect(opts: {
  seed: number
  plantHours: number
  raceMinutes: number
  assetDays: number
  roadHours: number
}): DetectReport {
  const readings: Record<string, number> = {}
  // Plant: 127 sensors, 5 s.
  const plantSim = new PlantSimulator({ seed: opts.seed, anomalies: true })
  const timings = { us: new Float64Array(Math.min(10_000_000, Math.ceil(opts.plantHours * 720 * 127))), n: 0 }
  const plant = runDomain(plantSim, processProfile as AnyDef, opts.plantHours, timings)
  readings['plant'] = timings.n
  const plantScore = score(
    alertSpans(plant.outs, plant.endTs),
    plant.episodes,
    PLANT_ANOMALY_TYPES,
    undefined,
    plant.endTs,
  )
  const us = timings.us.subarray(0, timings.n)

  // Race: the runtime's own simulator (simulators/simulator.ts), cars only, with overheat episodes.
  const raceSim = new Simulator({
    seed: opts.seed,
    sensors: 0,
    cars: 10,
    sensorHz: 1,
    carHz: 10,
    site: 'a',
    partitions: 1,
    anomalies: true,
  })
  const raceEnd = raceSim.startTs + opts.raceMinutes * 60_000
  const raceEps = new Map<string, Episode>()
  let raceN = 0
  const raceOuts = runCells(race as AnyDef, () => {
    const it = raceSim.next()
    if (it.reading.ts >= raceEnd) return undefined
    raceN++
    const t = it.truth
    if (t && t.type !== 'pit_stop')
      raceEps.set(`${it.id}:${t.type}:${t.start}`, {
        kind: 'vehicle',
        entity: it.id,
        type: t.type,
        start: t.start,
        end: t.end,
      })
    return it
  })
  readings['race'] = raceN
  const raceScore = score(
    alertSpans(raceOuts, raceEnd),
    [...raceEps.values()],
    ['brake_overheat', 'tire_overheat'],
    undefined,
    raceEnd,
  )

  const assetSim = new AssetSimulator({ seed: opts.seed, locomotives: 40, anomalies: true })
  const assetRun = runDomain(assetSim, asset as AnyDef, opts.assetDays * 24)
  readings['asset'] = assetSim.produced
  // Both asset alerts report the same injected condition: a unit degrading toward failure.
  const assetScore = score(
    alertSpans(assetRun.outs, assetRun.endTs),
    assetRun.episodes,
    ASSET_TRUTH_TYPES,
    (t) => (t === 'risk_high' || t === 'asset_danger' ? 'degradation' : undefined),
    assetRun.endTs,
  )

  const roadSim = new RoadSimulator({ seed: opts.seed, vehicles: 40, anomalies: true })
  const roadRun = runDomain(roadSim, road as AnyDef, opts.roadHours)
  readings['road'] = roadSim.produced
  const roadScore = score(
    alertSpans(roadRun.outs, roadRun.endTs),
    roadRun.episodes,
    ROAD_TRUTH_TYPES,
    undefined,
    roadRun.endTs,
  )

  return {
    plant: plantScore,
    race: raceScore,
    asset: assetScore,
    road: roadScore,
    inference: { p50: percentile(us, 50), p95: percentile(us, 95), p99: percentile(us, 99), samples: us.length },
    readings,
  }
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000

async function main(): Promise<void> {
  const t0 = Date.now()
  const rep = benchDetect({
    seed: SEED,
    plantHours: arg('plant-hours', 48),
    raceMinutes: arg('race-minutes', 60),
    assetDays: arg('asset-days', 14),
    roadHours: arg('road-hours', 48),
  })
  const compact = (r: Record<string, Scored>): Record<string, { precision: number; recall: number }> =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { precision: r3(v.precision), recall: r3(v.recall) }]))
  if (!JSON_ONLY) {
    console.log(`seed ${SEED}, readings ${JSON.stringify(rep.readings)}, ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    console.log('domain  type                  precision  recall  alerts matched episodes detected')
    for (const d of ['plant', 'race', 'asset', 'road'] as const) {
      for (const [t, s] of Object.entries(rep[d])) {
        console.log(
          `${d.padEnd(7)} ${t.padEnd(21)} ${s.precision.toFixed(3).padStart(9)} ${s.recall.toFixed(3).padStart(7)} ${String(s.alerts).padStart(7)} ${String(s.matched).padStart(7)} ${String(s.episodes).padStart(8)} ${String(s.detected).padStart(8)}`,
        )
      }
    }
    const i = rep.inference
    console.log(
      `plant handler time per reading: p50 ${i.p50.toFixed(2)} µs, p95 ${i.p95.toFixed(2)} µs, p99 ${i.p99.toFixed(2)} µs (${i.samples} readings)`,
    )
  }
  const plantEval = plantEvalSection(args, (s) => {
    if (!JSON_ONLY) console.log(s)
  })
  const assetEval = await assetEvalSection(args, (s) => {
    if (!JSON_ONLY) console.log(s)
  })
  console.log(
    JSON.stringify({
      plant: compact(rep.plant),
      race: compact(rep.race),
      asset: compact(rep.asset),
      road: compact(rep.road),
      inference_us_p95: r3(rep.inference.p95),
      ...(plantEval ? { plant_eval: plantEval } : {}),
      ...(assetEval ? { asset_eval: assetEval } : {}),
    }),
  )
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) await main()
