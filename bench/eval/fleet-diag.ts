/**
 * Why each missing geofence event is missing (issue 22): runs the fleet evaluation with the road profile, follows
 * the profile's state after every reading (accepted fix, distance anchor, pending candidate, fences entered) and
 * puts every missing true event in one class:
 *
 *   node dist/bench/eval/fleet-diag.js [--rate-s 1..10] [--seed S] [--vehicles N] [--profile-config JSON] [--list]
 *
 * Classes: `exit-in-margin` (every fix of the outside episode is within the exit margin), `fix-not-accepted`
 * (the fixes on the event's side were held as candidates or dropped by the GPS filter), `anchor-held` (accepted
 * on that side, but the standing vehicle's anchor, which the fences follow, stayed on the other side),
 * `chained` (the previous event of the fence was missed, so the profile's state was already on this side),
 * `taken` (a report within the tolerance was matched to another true event of the fence), `other`. Only the
 * fixes within the match tolerance after the event count (a later report is a miss). Reads the road profile's state by its documented
 * field names (RoadState); a diagnostic, not part of the score.
 */
import { runFleetEval } from './fleet-eval.js'
import type { EvalOptions } from './fleet-eval.js'
import { fenceDepthM } from './geo.js'
import type { Fence, LatLon } from './geo.js'
import { FENCE_TOL_MS, matchFenceEvents, reportedFenceEvents } from './fleet-score.js'
import type { TrueFenceEvent } from './fleet-scenario.js'

interface Step {
  ts: number
  fix: LatLon | null
  jump: boolean
  accepted: boolean
  anc: LatLon | null
  inside: Set<string>
}

interface Explained {
  vin: string
  fence: string
  kind: string
  t: number
  cls: string
  why: string
}

/** The class of one missing event from the trace of its vehicle. */
function classify(
  te: TrueFenceEvent,
  all: TrueFenceEvent[],
  f: Fence,
  steps: Step[],
  reported: Array<{ kind: string; t: number }>,
  marginM: number,
): [string, string] {
  const evs = all.filter((e) => e.fence === te.fence).sort((a, b) => a.t - b.t)
  const i = evs.indexOf(te)
  const next = evs[i + 1]?.t ?? Infinity
  const insideSide = te.kind === 'enter'
  const before = [...steps].reverse().find((s) => s.ts < te.t)
  const profIn = before ? before.inside.has(te.fence) : false
  if (profIn === insideSide) return ['chained', `profile already ${insideSide ? 'inside' : 'outside'} before the event`]
  // What a tracker could use to report the event in time: the fixes of its episode within the match tolerance.
  const ep = steps.filter(
    (s) => s.ts >= te.t && s.ts < Math.min(next, te.t + FENCE_TOL_MS) && s.fix !== null && !s.jump,
  )
  const taken = reported.some((r) => r.kind === te.kind && Math.abs(r.t - te.t) <= FENCE_TOL_MS)
  if (taken) return ['taken', 'a report within the tolerance matched another true event of the fence']
  const depth = (p: LatLon): number => fenceDepthM(f, p)
  const onSide = ep.filter((s) => depth(s.fix as LatLon) <= 0 === insideSide)
  const near = reported
    .filter((r) => r.kind === te.kind)
    .map((r) => (r.t - te.t) / 1000)
    .filter((d) => Math.abs(d) < 900)
  const lateNote = near.length ? ` (reported at ${near.map((d) => d.toFixed(0)).join(', ')} s)` : ''
  if (!insideSide) {
    const far = ep.map((s) => depth(s.fix as LatLon))
    const maxOut = far.length ? Math.max(...far) : -Infinity
    if (maxOut <= marginM)
      return ['exit-in-margin', `${far.length} fixes, deepest outside ${maxOut.toFixed(1)} m${lateNote}`]
    const acc = ep.filter((s) => s.accepted && depth(s.fix as LatLon) > marginM)
    if (acc.length === 0)
      return [
        'fix-not-accepted',
        `fixes > margin outside: ${far.filter((d) => d > marginM).length}, none accepted${lateNote}`,
      ]
    const anc = ep.filter((s) => s.anc && depth(s.anc) > marginM)
    if (anc.length === 0)
      return ['anchor-held', `${acc.length} accepted fixes > margin outside, anchor never${lateNote}`]
    return ['other', `anchor outside ${anc.length}×${lateNote}`]
  }
  const acc = onSide.filter((s) => s.accepted)
  if (acc.length === 0) return ['fix-not-accepted', `${onSide.length} fixes inside, none accepted${lateNote}`]
  const anc = ep.filter((s) => s.anc && depth(s.anc) <= 0)
  if (anc.length === 0) return ['anchor-held', `${acc.length} accepted fixes inside, anchor never${lateNote}`]
  return ['other', `anchor inside ${anc.length}×${lateNote}`]
}

function main(): void {
  const argv = process.argv.slice(2)
  const opts: EvalOptions = { keepRuns: true }
  let list = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1] ?? ''
    if (a === '--rate-s') {
      opts.rateS = Number(v)
      i++
    } else if (a === '--seed') {
      opts.seed = Number(v)
      i++
    } else if (a === '--vehicles') {
      opts.vehicles = Number(v)
      i++
    } else if (a === '--profile-config') {
      opts.profileConfig = JSON.parse(v) as Record<string, unknown>
      i++
    } else if (a === '--list') list = true
    else {
      process.stderr.write(`fleet-diag: unknown argument ${String(a)}\n`)
      process.exit(2)
    }
  }
  const trace = new Map<string, Step[]>()
  opts.observe = (vin, index, cell) => {
    let a = trace.get(vin)
    if (!a) trace.set(vin, (a = []))
    const st = cell.state as {
      fix: [number, number, number] | null
      anc: [number, number, number] | null
      gf: Record<string, [number | null, number | null]>
      lastTs: number
    }
    const inside = new Set(
      Object.entries(st.gf)
        .filter(([, g]) => g[0] !== null)
        .map(([id]) => id),
    )
    a[index] = {
      ts: st.lastTs,
      fix: null,
      jump: false,
      accepted: st.fix !== null && st.fix[0] === st.lastTs,
      anc: st.anc ? [st.anc[1], st.anc[2]] : null,
      inside,
    }
  }
  const r = runFleetEval(opts)
  const { scenario, runs } = r.runs as NonNullable<typeof r.runs>
  const marginM = Number((opts.profileConfig ?? {})['geofenceMarginM'] ?? 5)
  const fences = new Map(scenario.fences.map((f) => [f.id, f]))
  const out: Explained[] = []
  const extras: string[] = []
  for (const v of scenario.vehicles) {
    const steps = trace.get(v.vin) as Step[]
    const jumps = new Set(v.faults.jumps.map((j) => j.t))
    v.readings.forEach(({ reading }, k) => {
      const s = steps[k] as Step
      const { lat, lon } = reading.fields
      if (typeof lat === 'number' && typeof lon === 'number') s.fix = [lat, lon]
      s.jump = jumps.has(reading.ts)
    })
    const run = runs.find((x) => x.vin === v.vin)
    if (!run) continue
    const rf = reportedFenceEvents(run.outputs)
    const m = matchFenceEvents(v.truth, rf)
    for (const te of m.missing) {
      const f = fences.get(te.fence) as Fence
      const [cls, why] = classify(
        te,
        v.truth.fenceEvents,
        f,
        steps,
        rf.filter((x) => x.fence === te.fence),
        marginM,
      )
      out.push({ vin: v.vin, fence: te.fence, kind: te.kind, t: te.t, cls, why })
    }
    for (const re of m.extra) extras.push(`${v.vin} ${re.fence} ${re.kind} ${new Date(re.t).toISOString()} extra`)
  }
  const counts: Record<string, number> = {}
  for (const e of out) counts[`${e.cls}/${e.kind}`] = (counts[`${e.cls}/${e.kind}`] ?? 0) + 1
  if (list)
    for (const e of out)
      process.stdout.write(`${e.vin} ${e.fence} ${e.kind} ${new Date(e.t).toISOString()} ${e.cls}: ${e.why}\n`)
  if (list) for (const e of extras) process.stdout.write(`${e}\n`)
  process.stdout.write(
    JSON.stringify({
      rateS: r.options.rateS,
      seed: r.options.seed,
      missing: r.score.fences.missing,
      extra: r.score.fences.extra,
      extraByKind: r.score.fences.extraByKind,
      truth: r.score.fences.truth,
      classes: counts,
    }) + '\n',
  )
}

if (import.meta.url === `file://${process.argv[1]}`) main()
