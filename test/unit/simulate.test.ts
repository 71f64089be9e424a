/**
 * The domain simulators of simulators/ (plant, asset, road): layout, determinism per seed and per entity,
 * physics of healthy readings against the profiles' physical limits, the signature of every injected episode in
 * the readings it covers, the maintenance log, VINs, and the ground-truth writers.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ID_PATTERN } from '../../actors/subjects.js'
import { PROCESS_DEFAULTS } from '../../actors/kinds/sensor/process.js'
import { PLANT_ANOMALY_TYPES, PLANT_STAGES, PlantSimulator, plantLayout } from '../../simulators/plant.js'
import { AssetSimulator } from '../../simulators/asset.js'
import { RoadSimulator, vinCheckDigit } from '../../simulators/road.js'
import { writeGroundTruth, type DomainItem, type DomainSimulator, type Episode } from '../../simulators/truth.js'

const take = (sim: DomainSimulator, n: number): DomainItem[] => Array.from({ length: n }, () => sim.next())
const HOUR = 3_600_000

void t.test('plant layout: 127 sensors, the 8 stages of DOMAIN.md, 20+ types, valid ids', async (t) => {
  const l = plantLayout()
  t.equal(l.length, 127)
  for (const [stage, , count] of PLANT_STAGES) t.equal(l.filter((x) => x.stage === stage).length, count, stage)
  t.ok(new Set(l.map((x) => x.type)).size >= 20, `${new Set(l.map((x) => x.type)).size} sensor types`)
  t.equal(new Set(l.map((x) => x.id)).size, 127, 'unique ids')
  t.ok(l.every((x) => ID_PATTERN.test(x.id)))
  t.ok(
    l.every((x) => PROCESS_DEFAULTS.limits[x.type] !== undefined),
    'every type has physical limits in the profile',
  )
  t.equal(plantLayout(300).length, 300)
})

void t.test('plant: deterministic per seed; more sensors leave the others unchanged', async (t) => {
  const a = take(new PlantSimulator({ seed: 3, anomalies: true, warmupMs: 0, anomalyShare: 0.2 }), 20_000)
  const b = take(new PlantSimulator({ seed: 3, anomalies: true, warmupMs: 0, anomalyShare: 0.2 }), 20_000)
  t.same(a, b)
  const c = take(new PlantSimulator({ seed: 4 }), 200)
  t.not(JSON.stringify(c), JSON.stringify(a.slice(0, 200)))
  const small = take(new PlantSimulator({ seed: 3, sensors: 127 }), 127 * 50)
  const ids = new Set(small.map((x) => x.id))
  const big = take(new PlantSimulator({ seed: 3, sensors: 140 }), 140 * 50).filter((x) => ids.has(x.id))
  t.same(
    big.map((x) => x.reading),
    small.map((x) => x.reading),
    'the first 127 sensors read the same with 140',
  )
  t.ok(
    a.every((x, i) => i === 0 || x.reading.ts >= (a[i - 1] as DomainItem).reading.ts),
    'event-time order',
  )
})

void t.test('plant healthy day: within physical limits and rates, never stuck, storms raise the flow', async (t) => {
  const sim = new PlantSimulator({ seed: 5 })
  const last = new Map<string, { v: number; ts: number; same: number }>()
  let worst = 0,
    maxSame = 0,
    n = 0
  let minFlow = Infinity,
    maxFlow = 0
  for (let i = 0; i < 127 * 17_280; i++) {
    const it = sim.next()
    const f = it.reading.fields
    const v = f['value'] as number
    const lim = PROCESS_DEFAULTS.limits[f['type'] as string]
    if (!lim) throw new Error('unknown type')
    if (v < lim.lo || v > lim.hi) throw new Error(`${it.id} ${v} outside ${lim.lo}..${lim.hi}`)
    const p = last.get(it.id)
    if (p) {
      worst = Math.max(worst, Math.abs(v - p.v) / ((it.reading.ts - p.ts) / 1000) / lim.maxRatePerS)
      p.same = v === p.v ? p.same + 1 : 0
      maxSame = Math.max(maxSame, p.same)
      p.v = v
      p.ts = it.reading.ts
    } else last.set(it.id, { v, ts: it.reading.ts, same: 0 })
    if (it.id === 'pre-flow-01') {
      minFlow = Math.min(minFlow, f['flow'] as number)
      maxFlow = Math.max(maxFlow, f['flow'] as number)
    }
    n++
  }
  t.equal(n, 127 * 17_280)
  t.ok(worst < 0.5, `fastest change is ${worst.toFixed(3)} of the physical max rate`)
  t.ok(maxSame < 3, `at most ${maxSame + 1} equal values in a row`)
  t.ok(maxFlow / minFlow > 1.5, `flow spans ${minFlow}..${maxFlow} m³/h (daily cycle and rain)`)
  t.same(sim.episodes(Infinity), [], 'no episodes without anomalies')
})

void t.test('plant episodes: every type injected, each with its signature, about the configured share', async (t) => {
  const sim = new PlantSimulator({ seed: 9, anomalies: true, anomalyShare: 0.1, warmupMs: 2 * HOUR })
  const end = sim.startTs + 14 * HOUR
  const byId = new Map<string, DomainItem[]>()
  for (;;) {
    const it = sim.next()
    if (it.reading.ts >= end) break
    let l = byId.get(it.id)
    if (!l) byId.set(it.id, (l = []))
    l.push(it)
  }
  const eps = sim.episodes(end)
  const types = new Set(eps.map((e) => e.type))
  t.same([...types].sort(), [...PLANT_ANOMALY_TYPES].sort(), 'all five types')
  let checked = 0,
    inside = 0
  for (const e of eps) {
    const rs = (byId.get(e.entity) ?? []).filter((x) => x.reading.ts >= e.start && x.reading.ts <= e.end)
    const before = (byId.get(e.entity) ?? []).filter((x) => x.reading.ts < e.start)
    inside += rs.length
    t.ok(e.start >= sim.startTs + 2 * HOUR, 'after the warm-up')
    const vals = rs.map((x) => x.reading.fields['value'])
    const lim = PROCESS_DEFAULTS.limits[rs[0]?.reading.fields['type'] as string]
    if (e.mode === 'stuck' && !vals.every((v) => v === vals[0])) t.fail(`${e.entity} stuck episode varies`)
    if (e.mode === 'dropout' && !vals.every((v) => v === undefined)) t.fail(`${e.entity} dropout has values`)
    if (e.mode === 'out_of_range' && lim && !vals.every((v) => typeof v === 'number' && (v < lim.lo || v > lim.hi)))
      t.fail(`${e.entity} in range`)
    if (e.mode === 'replay') {
      const seen = new Set(
        before.map((x) =>
          JSON.stringify([x.reading.fields['value'], x.reading.fields['flow'], x.reading.fields['temp']]),
        ),
      )
      if (
        !rs.every((x) =>
          seen.has(JSON.stringify([x.reading.fields['value'], x.reading.fields['flow'], x.reading.fields['temp']])),
        )
      )
        t.fail(`${e.entity} replay is not a replay`)
    }
    if (
      e.type === 'pollution_spike' &&
      !PROCESS_DEFAULTS.limits[rs[0]?.reading.fields['type'] as string]?.outlet &&
      !['turbidity', 'conductivity', 'nitrate', 'nitrite'].includes(rs[0]?.reading.fields['type'] as string)
    ) {
      t.fail(`${e.entity}: a pollution spike on a non-concentration sensor`)
    }
    checked++
  }
  t.equal(checked, eps.length)
  const share = inside / (127 * 12 * 720)
  t.ok(share > 0.04 && share < 0.16, `anomalous share ${share.toFixed(3)} (configured 0.1)`)
})

void t.test(
  'asset: degradation reaches the danger zone before its repair; maintenance log; deterministic',
  async (t) => {
    const sim = new AssetSimulator({ seed: 2, locomotives: 10, anomalies: true })
    const end = sim.startTs + 10 * 24 * HOUR
    const items: DomainItem[] = []
    for (let it = sim.next(); it.reading.ts < end; it = sim.next()) items.push(it)
    const eps = sim.episodes(Infinity).filter((e) => e.end < end)
    t.ok(eps.length >= 5, `${eps.length} degradation episodes`)
    const log = sim.maintenance(end)
    for (const e of eps) {
      const rs = items.filter((x) => x.id === e.entity && x.reading.ts >= e.end - 30 * 60_000 && x.reading.ts <= e.end)
      const vib = Math.max(...rs.map((x) => x.reading.fields['vibration'] as number))
      const temp = Math.max(...rs.map((x) => x.reading.fields['temperature'] as number))
      t.ok(vib >= 7 && temp >= 85, `${e.entity} ends at vibration ${vib}, temperature ${temp}`)
      t.ok(
        log.some((m) => m.entity === e.entity && m.action === 'repair' && m.ts === e.end),
        'a repair closes it',
      )
      const after = items.find((x) => x.id === e.entity && x.reading.ts > e.end + 3_600_000)
      if (after) t.ok((after.reading.fields['vibration'] as number) < 4, 'healthy after the repair')
    }
    t.ok(
      log.some((m) => m.action === 'routine'),
      'routine maintenance logged',
    )
    const all = sim.episodes(Infinity)
    const healthy = items.filter(
      (x) => !all.some((e) => e.entity === x.id && x.reading.ts >= e.start && x.reading.ts <= e.end),
    )
    t.ok(
      healthy.every((x) => (x.reading.fields['vibration'] as number) < 5),
      'healthy vibration stays low',
    )
    t.same(
      take(new AssetSimulator({ seed: 2, locomotives: 10 }), 500),
      take(new AssetSimulator({ seed: 2, locomotives: 10 }), 500),
    )
  },
)

void t.test('road: valid VINs, event-time order, trips with parked gaps, injected events visible', async (t) => {
  const sim = new RoadSimulator({ seed: 4, vehicles: 20, anomalies: true })
  const end = sim.startTs + 48 * HOUR
  const items: DomainItem[] = []
  for (let it = sim.next(); it.reading.ts < end; it = sim.next()) items.push(it)
  const ids = new Set(items.map((x) => x.id))
  t.equal(ids.size, 20)
  for (const id of ids) {
    t.equal(id.length, 17)
    t.equal(id[8], vinCheckDigit(id), `${id} check digit`)
  }
  t.ok(
    items.every((x, i) => i === 0 || x.reading.ts >= (items[i - 1] as DomainItem).reading.ts),
    'event-time order',
  )
  const one = items.filter((x) => x.id === items[0]?.id)
  t.ok(
    one.some((x, i) => i > 0 && x.reading.ts - (one[i - 1] as DomainItem).reading.ts >= 20 * 60_000),
    'parked gaps (unit off)',
  )
  const eps = sim.episodes(end)
  const kinds = new Set(eps.map((e) => e.type))
  t.ok(kinds.has('engine_overheat') && kinds.has('dtc') && kinds.has('low_fuel'), `types ${[...kinds].join(', ')}`)
  const during = (e: Episode): DomainItem[] =>
    items.filter((x) => x.id === e.entity && x.reading.ts >= e.start && x.reading.ts <= e.end)
  for (const e of eps.filter((x) => x.type === 'engine_overheat')) {
    t.ok(
      during(e).some((x) => (x.reading.fields['coolant_temp'] as number) > 112),
      `${e.entity} overheats`,
    )
  }
  for (const e of eps.filter((x) => x.type === 'dtc')) {
    const rs = during(e)
    if (rs.length > 0 && !rs.every((x) => x.reading.fields['dtc'] === e.mode))
      t.fail(`${e.entity} dtc ${e.mode} missing`)
  }
  for (const e of eps.filter((x) => x.type === 'low_fuel')) {
    if (!during(e).every((x) => (x.reading.fields['fuel_level'] as number) < 10))
      t.fail(`${e.entity} low fuel above 10 %`)
  }
})

void t.test('ground truth files: NDJSON and CSV', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-gt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const eps: Episode[] = [
    { kind: 'sensor', entity: 'bio-do-01', type: 'sensor_drift', start: 1, end: 2, mode: 'ramp' },
    { kind: 'vehicle', entity: 'V1', type: 'dtc', start: 3, end: 4 },
  ]
  await writeGroundTruth(join(dir, 'gt.ndjson'), eps)
  t.same(
    readFileSync(join(dir, 'gt.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Episode),
    eps,
  )
  await writeGroundTruth(join(dir, 'gt.csv'), eps)
  t.equal(
    readFileSync(join(dir, 'gt.csv'), 'utf8'),
    'kind,entity,type,start,end,mode\nsensor,bio-do-01,sensor_drift,1,2,ramp\nvehicle,V1,dtc,3,4,\n',
  )
})
