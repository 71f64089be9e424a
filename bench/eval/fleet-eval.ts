/**
 * Runs a vehicle profile (by default the real `road` profile from the registry, configured the way the runtime
 * configures it) over a fleet scenario in memory, one ActorCell per vehicle, and scores its outputs. The cell is
 * driven as the partition runner drives it: readings in stream order with a processing time a little after
 * their event time, and processing-time timers fired when due (between readings and, once the unit has gone
 * quiet, for `horizonMs` more), so trips closed by a timer are seen when a deployment would see them.
 */
import { ActorCell } from '../../actors/cell.js'
import { PROFILES, buildProfiles, compileConfig } from '../../actors/mod.js'
import type { LatLon } from './geo.js'
import { buildScenario } from './fleet-scenario.js'
import type { Fence, FleetScenario, ScenarioOptions } from './fleet-scenario.js'
import { baselineDistances, scoreFleet } from './fleet-score.js'
import type { FleetScore, TimedOutput, VehicleRun } from './fleet-score.js'

export interface EvalOptions extends ScenarioOptions {
  /** Profile name in the registry (kind vehicle). */
  profile?: string
  /** Extra profile configuration (merged over the defaults, as PITWALL_PROFILE_CONFIG would be). */
  profileConfig?: Record<string, unknown>
  /** Transport latency: processing time = event time + this. */
  latencyMs?: number
  /** How long after a unit's last reading the run keeps firing its timers. */
  horizonMs?: number
  /** Diagnostics (fleet-diag.ts): called after each reading is applied, with the cell (its state) and the index. */
  observe?: (vin: string, index: number, cell: ActorCell) => void
  /** Diagnostics: keep every vehicle's run (outputs and truth) in the result. */
  keepRuns?: boolean
}

export interface EvalResult {
  options: Required<Pick<EvalOptions, 'profile' | 'latencyMs' | 'horizonMs'>> & FleetScenario['options']
  scenario: {
    vehicles: number
    trips: number
    trueKm: number
    readings: number
    fences: number
    circles: number
    polygons: number
    trueFenceEvents: number
  }
  configuredFences: { circles: number; polygons: number; polygonsAccepted: boolean }
  score: FleetScore
  baseline: ReturnType<typeof baselineDistances>
  ms: { scenario: number; profile: number }
  /** With `keepRuns`: the scenario and every vehicle's run. */
  runs?: { scenario: FleetScenario; runs: VehicleRun[] }
}

/**
 * The profile's geofence configuration for the scenario's fences. The road profile documents `geofences[]`;
 * circles go as `{id, lat, lon, radiusM}`, polygons as `{id, polygon: [[lat, lon], ...]}` (GeoJSON order would
 * be lon/lat; this is the one place to change if the profile settles on another shape).
 */
export function profileFences(fences: Fence[], withPolygons: boolean): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (const f of fences) {
    if (f.kind === 'circle') out.push({ id: f.id, lat: f.center[0], lon: f.center[1], radiusM: f.radiusM })
    else if (withPolygons) out.push({ id: f.id, polygon: f.ring.map(([la, lo]) => [la, lo]) })
  }
  return out
}

type AnyDef = ConstructorParameters<typeof ActorCell>[0]

function profileEntry(name: string, override: Record<string, unknown>): { def: AnyDef; config: unknown } {
  const table = buildProfiles(PROFILES, compileConfig({ profileConfig: { [name]: override } }))
  const e = table.get(name)
  if (!e) throw new Error(`profile ${name} is not in the registry`)
  return e
}

/** Configures the profile with every fence, falling back to circles only when it rejects polygons. */
function configure(
  name: string,
  fences: Fence[],
  extra: Record<string, unknown>,
): { def: AnyDef; config: unknown; polygons: boolean } {
  try {
    const e = profileEntry(name, { ...extra, geofences: profileFences(fences, true) })
    // A profile validates its configuration when a cell first meets it: make one now.
    new ActorCell(e.def, e.config, { kind: 'vehicle', id: 'config-check' })
    return { ...e, polygons: true }
  } catch (err) {
    // A configuration rejection is the answer (a circles-only profile): polygons are then scored as not
    // configured. Anything else is a real failure.
    if ((err as { code?: unknown }).code !== 'PW_CONFIG_INVALID') throw err
    const e = profileEntry(name, { ...extra, geofences: profileFences(fences, false) })
    new ActorCell(e.def, e.config, { kind: 'vehicle', id: 'config-check' })
    return { ...e, polygons: false }
  }
}

/** Builds the scenario, runs the profile over it in memory, and scores the outputs. */
export function runFleetEval(opts: EvalOptions = {}): EvalResult {
  const t0 = Date.now()
  const sc = buildScenario(opts)
  const t1 = Date.now()
  const profile = opts.profile ?? 'road'
  const latencyMs = opts.latencyMs ?? 300
  const horizonMs = opts.horizonMs ?? 2 * 3600_000
  const { def, config, polygons } = configure(profile, sc.fences, opts.profileConfig ?? {})
  const configured = new Set(sc.fences.filter((f) => f.kind === 'circle' || polygons).map((f) => f.id))
  const runs: VehicleRun[] = []
  const fixes: Array<{ truth: FleetScenario['vehicles'][number]['truth']; fixes: Array<{ ts: number; pos: LatLon }> }> =
    []
  let seq = 0
  for (const v of sc.vehicles) {
    const cell = new ActorCell(def, config, { kind: 'vehicle', id: v.vin })
    const outputs: TimedOutput[] = []
    let at = 0
    let proc = 0
    const emit = (o: TimedOutput['output']): void => {
      outputs.push({ output: o, at, procTime: proc })
    }
    const tick = (until: number): void => {
      for (let guard = 0; guard < 100_000; guard++) {
        const due = cell.nextProcTimer()
        if (due === undefined || due > until) return
        proc = Math.max(due, proc)
        at = proc - latencyMs
        if (!cell.applyTick(++seq, proc, emit)) return
      }
    }
    const truthBySeq = new Map<number, { ts: number; pos: LatLon; jump: boolean }>()
    const jumpTs = new Set(v.faults.jumps.map((j) => j.t))
    const vf: Array<{ ts: number; pos: LatLon }> = []
    v.readings.forEach(({ reading }, i) => {
      const p = reading.ts + latencyMs
      tick(p)
      proc = p
      at = reading.ts
      const s = ++seq
      const tp: LatLon = [v.truePos[2 * i] as number, v.truePos[2 * i + 1] as number]
      truthBySeq.set(s, { ts: reading.ts, pos: tp, jump: jumpTs.has(reading.ts) })
      cell.applyReading(s, p, reading, emit)
      opts.observe?.(v.vin, i, cell)
      const { lat, lon } = reading.fields
      if (typeof lat === 'number' && typeof lon === 'number') vf.push({ ts: reading.ts, pos: [lat, lon] })
    })
    tick(v.truth.quietAt + latencyMs + horizonMs)
    const q = cell.query() as Record<string, unknown> | undefined
    const odo = q && typeof q.odometerKm === 'number' ? q.odometerKm : undefined
    const run: VehicleRun = { vin: v.vin, truth: v.truth, faults: v.faults, outputs, horizonMs, truthBySeq }
    if (odo !== undefined) run.odometerKm = odo
    runs.push(run)
    fixes.push({ truth: v.truth, fixes: vf })
  }
  const t2 = Date.now()
  const score = scoreFleet(runs, sc.fences, configured)
  const trips = sc.vehicles.flatMap((v) => v.truth.trips)
  return {
    options: { ...sc.options, profile, latencyMs, horizonMs },
    scenario: {
      vehicles: sc.vehicles.length,
      trips: trips.length,
      trueKm: trips.reduce((a, t) => a + t.distanceM, 0) / 1000,
      readings: sc.vehicles.reduce((a, v) => a + v.readings.length, 0),
      fences: sc.fences.length,
      circles: sc.fences.filter((f) => f.kind === 'circle').length,
      polygons: sc.fences.filter((f) => f.kind === 'polygon').length,
      trueFenceEvents: sc.vehicles.reduce((a, v) => a + v.truth.fenceEvents.length, 0),
    },
    configuredFences: {
      circles: sc.fences.filter((f) => f.kind === 'circle').length,
      polygons: polygons ? sc.fences.filter((f) => f.kind === 'polygon').length : 0,
      polygonsAccepted: polygons,
    },
    score,
    baseline: baselineDistances(fixes),
    ms: { scenario: t1 - t0, profile: t2 - t1 },
    ...(opts.keepRuns ? { runs: { scenario: sc, runs } } : {}),
  }
}
