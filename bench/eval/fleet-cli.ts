/**
 * The fleet evaluation from the command line (issue 22):
 *
 *   node dist/bench/eval/fleet-cli.js [--rate-s 1..10] [--vehicles N] [--trips-per-vehicle 1..5] [--seed S]
 *        [--low-fuel-pct P] [--profile road] [--profile-config JSON] [--no-hdop] [--no-ignition] [--json]
 *
 * Prints a table of what a fleet manager would see wrong, then one JSON line with every figure (only the JSON
 * line with --json). See bench/eval/fleet-README.md for the data, the truth and the scoring rules.
 */
import { runFleetEval } from './fleet-eval.js'
import type { EvalOptions, EvalResult } from './fleet-eval.js'
import type { Dist, PeriodScore } from './fleet-score.js'

function parse(argv: string[]): { opts: EvalOptions; json: boolean } {
  const opts: EvalOptions = {}
  let json = false
  const need = (i: number, name: string): string => {
    const v = argv[i + 1]
    if (v === undefined) throw new Error(`${name} needs a value`)
    return v
  }
  const int = (v: string, name: string, lo: number, hi: number): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`${name} must be an integer ${lo}..${hi}, got ${v}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    switch (a) {
      case '--rate-s':
        opts.rateS = int(need(i++, a), a, 1, 10)
        break
      case '--vehicles':
        opts.vehicles = int(need(i++, a), a, 1, 1000)
        break
      case '--trips-per-vehicle':
        opts.tripsPerVehicle = int(need(i++, a), a, 1, 5)
        break
      case '--seed':
        opts.seed = int(need(i++, a), a, 0, 2 ** 31)
        break
      case '--low-fuel-pct':
        opts.lowFuelPct = Number(need(i++, a))
        break
      case '--profile':
        opts.profile = need(i++, a)
        break
      case '--profile-config':
        opts.profileConfig = JSON.parse(need(i++, a)) as Record<string, unknown>
        break
      case '--no-hdop':
        opts.hdop = false
        break
      case '--no-ignition':
        opts.ignition = false
        break
      case '--json':
        json = true
        break
      default:
        throw new Error(`unknown argument ${a}`)
    }
  }
  return { opts, json }
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-')
/** Median and p95 of magnitudes, and the signed worst case. */
const d = (x: Dist, unit: string): string =>
  `median ${f1(x.medianSigned)}${unit} (|.| ${f1(x.median)}${unit}), p95 |.| ${f1(x.p95)}${unit}, worst ${f1(x.worst)}${unit} (n ${x.n})`

/** Recall per length bucket, extras, and the errors of what was found. */
const periods = (p: PeriodScore): string =>
  `${p.byLength.map((b) => `>= ${b.fromS} s: ${b.found}/${b.truth}`).join(', ')} found; ${p.reported} reported, ${p.extra} extra; start ${d(p.startErrS, ' s')}; duration ${d(p.durationErrS, ' s')}`

/** The human table. */
export function table(r: EvalResult): string {
  const s = r.score
  const rows: Array<[string, string]> = [
    [
      'scenario',
      `${r.scenario.vehicles} vehicles, ${r.scenario.trips} trips, ${f1(r.scenario.trueKm)} km, ${r.scenario.readings} readings every ${r.options.rateS} s, ${r.scenario.fences} fences (${r.scenario.circles} circles, ${r.scenario.polygons} polygons; polygons ${r.configuredFences.polygonsAccepted ? 'configured' : 'rejected by the profile'})`,
    ],
    [
      'faults',
      `${s.faults.jumps} jumps (${s.faults.jumpsAfterDropout} first fix after a dropout), ${s.faults.dropouts} dropouts`,
    ],
    [
      'trips',
      `${s.trips.matched}/${s.trips.truth} matched, ${s.trips.reported} reported, ${s.trips.extra} extra, ${s.trips.split} split`,
    ],
    ['trip start error', d(s.trips.startErrS, ' s')],
    ['trip end error', d(s.trips.endErrS, ' s')],
    ['trip distance error', d(s.trips.distancePct, ' %')],
    ['  baseline (raw fixes)', `${d(r.baseline.distancePct, ' %')}; odometer ${f1(r.baseline.odometerErrPct)} %`],
    [
      'odometer',
      `${f1(s.odometer.reportedKm)} km vs ${f1(s.odometer.trueKm)} km true: ${f1(s.odometer.errPct)} % (${s.odometer.source})`,
    ],
    ['trip closed after ignition off', d(s.trips.closeAfterOffS, ' s')],
    ['last trip closed after quiet', `${d(s.trips.lastTripCloseAfterQuietS, ' s')}`],
    [
      'trips left open',
      `${s.trips.leftOpen} (${s.trips.lastLeftOpen} last of the day) still open ${f1(r.options.horizonMs / 3600_000)} h after the unit went quiet`,
    ],
    [
      'geofence events',
      `${s.fences.matched}/${s.fences.truth} matched, ${s.fences.missing} missing (${JSON.stringify(s.fences.missingByKind)}; ${s.fences.notConfigured} on fences not configured; ${s.fences.missingShallowFixes} whose fixes reach < 1 m beyond the edge), ${s.fences.extra} extra (${f1(s.fences.extraPct)} %, ${JSON.stringify(s.fences.extraByKind)}), ${s.fences.ambiguous} ambiguous or unobserved not scored`,
    ],
    ['geofence time error', d(s.fences.timeErrS, ' s')],
    [
      'low fuel',
      `${s.lowFuel.raised}/${s.lowFuel.crossings} raised, delay ${d(s.lowFuel.delayS, ' s')}, ${s.lowFuel.false} false; ${s.lowFuel.onTime} on time (<= 60 s after, ${s.lowFuel.early} early)`,
    ],
    [
      '  horizon rule',
      `${s.lowFuel.horizon.raised}/${s.lowFuel.crossings} raised, ${s.lowFuel.horizon.onTime} on time (${s.lowFuel.horizon.early} early), ${s.lowFuel.horizon.missed} missed, ${s.lowFuel.horizon.false} false (no crossing within 30 min of engine-on time); delay ${d(s.lowFuel.horizon.delayS, ' s')}; early by ${d(s.lowFuel.horizon.earlyEngineS, ' s')} engine-on`,
    ],
    [
      'refuel',
      `${s.fuelEvents.refuel.detected}/${s.fuelEvents.refuel.truth} detected, ${s.fuelEvents.refuel.extra} extra`,
    ],
    [
      'fuel drop (theft)',
      `${s.fuelEvents.fuelDrop.detected}/${s.fuelEvents.fuelDrop.truth} detected, ${s.fuelEvents.fuelDrop.extra} extra`,
    ],
    ['dtc', `${s.dtc.detected}/${s.dtc.truth} detected, ${s.dtc.extra} extra`],
    ['overheat', `${s.overheat.detected}/${s.overheat.truth} detected, ${s.overheat.extra} extra`],
    ['stops (in trips)', periods(s.stops.stop)],
    ['idle periods', `${periods(s.stops.idle)}; ${f1(s.stops.truthIdleH)} h engine-on standing in truth`],
    ['idling alerts', periods(s.stops.idlingAlert)],
    ['trip idle time error', `${d(s.stops.tripIdleErrS, ' s')}; relative ${d(s.stops.tripIdleErrPct, ' %')}`],
    ['trip fuel used error', `${d(s.stops.tripFuelErrPts, ' points')}; relative ${d(s.stops.tripFuelErrPct, ' %')}`],
    [
      'positions',
      `${s.positions.emitted} emitted, ${s.positions.wrong} > 100 m off (${s.positions.jumpsEmitted} jump fixes emitted, ${s.positions.wrongAtTrueFix} true fixes shown off)`,
    ],
    ['time', `scenario ${r.ms.scenario} ms, profile ${r.ms.profile} ms`],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')
}

function main(): void {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`fleet-cli: ${(err as Error).message}\n`)
    process.exit(2)
  }
  const r = runFleetEval(parsed.opts)
  if (!parsed.json) process.stdout.write(table(r) + '\n')
  process.stdout.write(JSON.stringify(r) + '\n')
}

if (import.meta.url === `file://${process.argv[1]}`) main()
