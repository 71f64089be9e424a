/**
 * The independent plant evaluation (bench/eval): the scenario generator's guarantees (determinism, 2 %
 * anomalous time, realism the detector must cope with), the event-based scorer on hand-made cases, and the
 * baselines on a plain spike. Quick sizes only (a few hours of plant), well under a minute.
 */
import t from 'tap'
import {
  plantScenario,
  Rng,
  STAGES,
  ANOMALY_TYPES,
  QUICK_HOURS,
  type PlantReading,
} from '../../bench/eval/plant-scenario.js'
import { scoreAlerts, type ScoreRun } from '../../bench/eval/score.js'
import { IsolationForest, SortedWindow, isolationForestBaseline, robustZBaseline } from '../../bench/eval/baselines.js'
import {
  evaluatePlant,
  HELDOUT_SEEDS,
  PAST_HELDOUT_SEEDS,
  TUNING_SEEDS,
  type AlertEvent,
} from '../../bench/eval/plant-eval.js'
import type { Reading } from '../../actors/types.js'

const MIN = 60_000

/** FNV-1a over the JSON of the first n readings: deep-comparing 100k objects in tap takes minutes. */
function digest(it: Iterator<PlantReading>, n: number): string {
  let h = 0x811c9dc5
  for (let i = 0; i < n; i++) {
    const r = it.next()
    if (r.done === true) break
    const s = JSON.stringify(r.value)
    for (let j = 0; j < s.length; j++) h = Math.imul(h ^ s.charCodeAt(j), 16777619) >>> 0
  }
  return h.toString(16)
}

function take(it: Iterator<PlantReading>, n: number): PlantReading[] {
  const out: PlantReading[] = []
  for (let i = 0; i < n; i++) {
    const r = it.next()
    if (r.done === true) break
    out.push(r.value)
  }
  return out
}

t.test('scenario: plant layout as DOMAIN.md describes it', async (t) => {
  const sc = plantScenario({ seed: 1 })
  t.equal(sc.sensors.length, 127)
  const perStage = Object.fromEntries(STAGES.map((s) => [s, sc.sensors.filter((x) => x.stage === s).length]))
  t.same(perStage, {
    pretreatment: 15,
    primary: 18,
    biological: 35,
    secondary: 16,
    tertiary: 12,
    disinfection: 8,
    sludge: 10,
    outlet: 13,
  })
  t.ok(new Set(sc.sensors.map((s) => s.type)).size >= 20, '20+ sensor types')
  t.equal(new Set(sc.sensors.map((s) => s.id)).size, 127, 'unique ids')
  for (const s of sc.sensors)
    if (s.pair !== undefined) t.equal(sc.sensors.find((x) => x.id === s.pair)?.pair, s.id, `pair ${s.id} is mutual`)
  t.equal(sc.hours, 48)
  t.equal(sc.evalStart - sc.start, 6 * 3_600_000)
})

t.test('scenario: about 2 % anomalous time after the warm-up, all five types, no overlaps', async (t) => {
  for (const seed of [...TUNING_SEEDS, ...HELDOUT_SEEDS, ...PAST_HELDOUT_SEEDS]) {
    const sc = plantScenario({ seed })
    t.ok(sc.anomalousFraction > 0.018 && sc.anomalousFraction < 0.025, `seed ${seed}: fraction ${sc.anomalousFraction}`)
    t.ok(sc.episodes.length >= 80 && sc.episodes.length <= 170, `seed ${seed}: ${sc.episodes.length} episodes`)
    t.same(new Set(sc.episodes.map((e) => e.type)), new Set(ANOMALY_TYPES), `seed ${seed}: every type`)
    t.ok(
      sc.episodes.every((e) => e.start >= sc.evalStart && e.end <= sc.end && e.end > e.start),
      'inside the scored period',
    )
    const byEntity = new Map<string, { start: number; end: number }[]>()
    for (const w of [...sc.episodes, ...sc.maintenance]) byEntity.set(w.entity, [...(byEntity.get(w.entity) ?? []), w])
    let overlaps = 0
    for (const l of byEntity.values()) {
      l.sort((a, b) => a.start - b.start)
      for (let i = 1; i < l.length; i++) if ((l[i]?.start ?? 0) < (l[i - 1]?.end ?? 0)) overlaps++
    }
    t.equal(overlaps, 0, `seed ${seed}: no two windows overlap on one sensor`)
    t.ok(
      sc.maintenance.some((m) => m.kind === 'calibration') && sc.maintenance.some((m) => m.kind === 'backwash'),
      'calibrations and backwashes',
    )
  }
})

t.test('scenario: deterministic per seed, different across seeds, in time order', async (t) => {
  t.equal(
    digest(plantScenario({ seed: 7, hours: 8 }).readings(), 150_000),
    digest(plantScenario({ seed: 7, hours: 8 }).readings(), 150_000),
    'same seed, same readings',
  )
  t.not(
    digest(plantScenario({ seed: 8, hours: 8 }).readings(), 2_000),
    digest(plantScenario({ seed: 7, hours: 8 }).readings(), 2_000),
    'another seed, other readings',
  )
  const a = take(plantScenario({ seed: 7, hours: 8 }).readings(), 50_000)
  let ordered = true
  for (let i = 1; i < a.length; i++) if ((a[i]?.reading.ts ?? 0) < (a[i - 1]?.reading.ts ?? 0)) ordered = false
  t.ok(ordered, 'event-time order')
  const f = a[0]?.reading.fields
  t.ok(typeof f?.['type'] === 'string' && typeof f['stage'] === 'string', 'type and stage on every reading')
  t.ok(
    a.some((r) => r.reading.fields['inlet'] !== undefined),
    'outlet analysers carry inlet',
  )
  t.throws(() => plantScenario({ seed: 1, hours: 6 }), RangeError)
})

t.test(
  'scenario: realism a detector must live with (quantised pH repeats, lost readings, missing covariates)',
  async (t) => {
    const sc = plantScenario({ seed: 2, hours: QUICK_HOURS })
    const windows = [...sc.episodes, ...sc.maintenance]
    const quiet = (e: string, ts: number): boolean =>
      !windows.some((w) => w.entity === e && ts >= w.start && ts < w.end)
    const last = new Map<string, number>()
    let ph = 0,
      phRepeats = 0,
      n = 0,
      noFlow = 0,
      noTemp = 0,
      noValue = 0
    const perEntity = new Map<string, number>()
    for (const { entity, reading } of sc.readings()) {
      n++
      perEntity.set(entity, (perEntity.get(entity) ?? 0) + 1)
      const v = reading.fields['value']
      if (reading.fields['flow'] === undefined) noFlow++
      if (reading.fields['temp'] === undefined) noTemp++
      if (v === undefined) noValue++
      if (reading.fields['type'] === 'ph' && typeof v === 'number' && quiet(entity, reading.ts)) {
        if (last.get(entity) === v) phRepeats++
        ph++
      }
      if (typeof v === 'number') last.set(entity, v)
    }
    const expected = 127 * QUICK_HOURS * 720
    const lost = 1 - n / expected
    t.ok(lost > 0.01 && lost < 0.03, `lost readings ${lost.toFixed(4)} (about 2 %)`)
    t.ok(
      phRepeats / ph > 0.25,
      `healthy pH repeats its previous value in ${((100 * phRepeats) / ph).toFixed(1)} % of readings`,
    )
    t.ok(noFlow / n > 0.02 && noTemp / n > 0.02, 'covariates sometimes missing')
    t.ok(noValue > 0, 'some polls get nothing')
  },
)

t.test('scenario: anomalies show in the readings (loop break below range, dropout, stuck)', async (t) => {
  // find a seed whose schedule holds each variant early enough for a short run
  const found: Record<string, boolean> = { dropout: false, stuck: false, loop_break: false }
  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
    if (Object.values(found).every(Boolean)) break
    const sc = plantScenario({ seed, hours: 12 })
    const eps = sc.episodes.filter((e) => ['loop_break', 'dropout', 'stuck'].includes(e.variant))
    if (eps.length === 0) continue
    const byEntity = new Map(eps.map((e) => [e.entity, e]))
    const last = Math.max(...eps.map((e) => e.end))
    const vals = new Map<string, (number | undefined)[]>()
    for (const { entity, reading } of sc.readings()) {
      if (reading.ts > last) break
      const e = byEntity.get(entity)
      if (e === undefined || reading.ts < e.start + MIN || reading.ts >= e.end) continue
      const k = `${e.entity}|${e.start}|${e.variant}`
      const l = vals.get(k)
      if (l === undefined) vals.set(k, [reading.fields['value'] as number | undefined])
      else l.push(reading.fields['value'] as number | undefined)
    }
    for (const [k, vs] of vals) {
      const variant = k.split('|')[2] ?? ''
      const numbers = vs.filter((v): v is number => v !== undefined)
      if (variant === 'dropout') found['dropout'] ||= numbers.length === 0
      if (variant === 'stuck') found['stuck'] ||= numbers.length > 5 && new Set(numbers).size === 1
      if (variant === 'loop_break') found['loop_break'] ||= numbers.length > 0 && numbers.every((v) => v < 0)
    }
  }
  t.same(found, { dropout: true, stuck: true, loop_break: true })
})

t.test('scorer: hits, grace, duplicates, types, maintenance, delays', async (t) => {
  const H = 3_600_000
  const run: ScoreRun = {
    evalStart: 0,
    evalEnd: 24 * H,
    entities: 10,
    episodes: [
      { entity: 'a', type: 'spike', start: 2 * H, end: 2 * H + 10 * MIN },
      { entity: 'b', type: 'drift', start: 5 * H, end: 7 * H },
      { entity: 'c', type: 'failure', start: 10 * H, end: 10 * H + 5 * MIN },
      { entity: 'd', type: 'spike', start: 12 * H, end: 12 * H + 5 * MIN },
    ],
    maintenance: [{ entity: 'e', start: 15 * H, end: 15 * H + 20 * MIN }],
    alerts: [
      { entity: 'a', type: 'spike', start: 2 * H + MIN }, // typed hit, delay 60 s
      { entity: 'a', type: 'drift', start: 2 * H + 3 * MIN }, // duplicate
      { entity: 'b', type: 'spike', start: 7 * H + 9 * MIN }, // untyped hit within grace, wrong type
      { entity: 'c', type: 'failure', start: 10 * H + 16 * MIN }, // 11 min after the end: false
      { entity: 'd', type: 'spike', start: 12 * H - MIN }, // before the start: false
      { entity: 'e', type: 'spike', start: 15 * H + 5 * MIN }, // in maintenance: false, counted apart
      { entity: 'z', type: 'spike', start: -MIN }, // warm-up: not scored
    ],
  }
  const s = scoreAlerts([run], { types: ['spike', 'drift', 'failure'], chanceDraws: 5 })
  t.equal(s.alerts, 6)
  t.equal(s.warmupAlerts, 1)
  t.equal(s.hits, 2)
  t.equal(s.duplicates, 1)
  t.equal(s.falseAlerts, 3)
  t.equal(s.falseAlertsInMaintenance, 1)
  t.equal(s.recall, 2 / 4)
  t.equal(s.precision, 2 / 6)
  t.equal(s.recallTyped, 1 / 4)
  t.equal(s.perType['spike']?.recall, 1 / 2)
  t.equal(s.perType['spike']?.recallTyped, 1 / 2)
  t.equal(s.perType['spike']?.alerts, 4)
  t.equal(s.perType['spike']?.precisionTyped, 1 / 4)
  t.equal(s.perType['drift']?.recall, 1)
  t.equal(s.perType['drift']?.recallTyped, 0)
  t.equal(s.perType['spike']?.medianDelayS, 60)
  t.equal(s.perType['drift']?.medianDelayS, 2 * 3600 + 9 * 60)
  t.same(s.confusion['drift'], { spike: 1 })
  t.same(s.confusion['failure'], { missed: 1 })
  t.same(s.confusion['none'], { failure: 1, spike: 2 })
  t.equal(s.falseAlertsPerEntityDay, 3 / 10)
  t.equal(s.alertsPerDay, 6)
})

t.test(
  'scorer: chance level is high for a detector that alarms all the time, zero for one that alarms only on episodes',
  async (t) => {
    const H = 3_600_000
    const episodes = [
      { entity: 'a', type: 'spike', start: 5 * H, end: 5 * H + 10 * MIN },
      { entity: 'b', type: 'drift', start: 8 * H, end: 9 * H },
    ]
    const base = { evalStart: 0, evalEnd: 24 * H, entities: 2, episodes }
    const everywhere = []
    for (let ts = 0; ts < 24 * H; ts += 5 * MIN)
      everywhere.push({ entity: 'a', type: 'spike', start: ts }, { entity: 'b', type: 'drift', start: ts })
    const noisy = scoreAlerts([{ ...base, alerts: everywhere }], { chanceDraws: 50 })
    t.equal(noisy.recall, 1)
    t.equal(noisy.chanceRecall, 1)
    t.equal(noisy.chanceRecallTyped, 1)
    const sharp = scoreAlerts(
      [
        {
          ...base,
          alerts: [
            { entity: 'a', type: 'spike', start: 5 * H + MIN },
            { entity: 'b', type: 'drift', start: 8 * H + 30 * MIN },
          ],
        },
      ],
      { chanceDraws: 50 },
    )
    t.equal(sharp.recall, 1)
    t.equal(sharp.chanceRecall, 0)
    const again = scoreAlerts([{ ...base, alerts: everywhere.slice(0, 40) }], { chanceDraws: 50, seed: 3 })
    t.same(
      again,
      scoreAlerts([{ ...base, alerts: everywhere.slice(0, 40) }], { chanceDraws: 50, seed: 3 }),
      'reproducible with a seed',
    )
  },
)

t.test('baselines: sorted window against a naive median/MAD', async (t) => {
  const rng = new Rng(5)
  const w = new SortedWindow(37)
  const xs: number[] = []
  const med = (a: number[]): number => {
    const s = [...a].sort((p, q) => p - q)
    const m = s.length >> 1
    return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
  }
  for (let i = 0; i < 500; i++) {
    const v = Math.round(rng.normal() * 4) / 2
    w.push(v)
    xs.push(v)
    if (xs.length > 37) xs.shift()
    const m = med(xs)
    if (w.median() !== m || w.mad(m) !== med(xs.map((x) => Math.abs(x - m)))) {
      t.fail(`mismatch at ${i}`)
      return
    }
  }
  t.pass('median and MAD match over 500 pushes')
})

t.test('baselines: both alert on a plain spike, and not before it', async (t) => {
  const rng = new Rng(9)
  const start = Date.UTC(2026, 0, 1)
  const spikeAt = start + 3 * 3_600_000
  const readings: Reading[] = []
  for (let k = 0; k < 4 * 720; k++) {
    const ts = start + k * 5_000
    const inSpike = ts >= spikeAt && ts < spikeAt + 10 * MIN
    readings.push({
      ts,
      fields: {
        value: Math.round((10 + rng.normal() * 0.2 + (inSpike ? 3 : 0)) * 100) / 100,
        type: 'cod',
        stage: 'outlet',
      },
    })
  }
  for (const det of [robustZBaseline(), isolationForestBaseline({ warmupMs: 2 * 3_600_000 })]) {
    const inst = det.create({ sensors: [] })
    const events: AlertEvent[] = []
    for (const r of readings) events.push(...inst.onReading('x', r))
    const opens = events.filter((e) => e.state === 'open')
    t.ok(opens.length >= 1, `${det.name}: alerts`)
    t.ok(
      opens.some((e) => e.ts >= spikeAt && e.ts <= spikeAt + 10 * MIN),
      `${det.name}: an alert starts in the spike`,
    )
    t.ok(
      opens.every((e) => e.ts >= spikeAt),
      `${det.name}: nothing before it`,
    )
  }
})

t.test('isolation forest: outliers score higher than inliers', async (t) => {
  const rng = new Rng(3)
  const data = Array.from({ length: 300 }, () => Float64Array.from([rng.normal(), rng.normal()]))
  const f = new IsolationForest(data, { trees: 50, sample: 256, seed: 1 })
  t.ok(f.score(Float64Array.from([6, 6])) > 0.65)
  t.ok(f.score(Float64Array.from([0, 0])) < 0.5)
})

t.test('evaluatePlant: one pass, every detector, operator out-of-service calls', async (t) => {
  const calls: string[] = []
  const probe = {
    name: 'probe',
    create: () => ({
      onReading: (): AlertEvent[] => [],
      outOfService: (entity: string, inService: boolean, ts: number): AlertEvent[] => {
        calls.push(`${entity}:${inService}:${ts}`)
        return []
      },
    }),
  }
  const r = evaluatePlant({ seeds: [4], hours: 8, detectors: [robustZBaseline(), probe] })
  t.equal(r.detectors.length, 2)
  t.equal(r.detectors[1]?.score.alerts, 0)
  t.ok(r.readings > 100_000)
  const cals = plantScenario({ seed: 4, hours: 8 }).maintenance.filter((m) => m.kind === 'calibration')
  t.equal(calls.length, 2 * cals.length, 'each calibration: out of service, then back')
  t.ok(typeof r.detectors[0]?.score.chanceRecall === 'number')
  t.same(
    TUNING_SEEDS.filter((s) => HELDOUT_SEEDS.includes(s) || PAST_HELDOUT_SEEDS.includes(s)),
    [],
    'tuning and held-out seeds are disjoint',
  )
  t.same(
    HELDOUT_SEEDS.filter((s) => PAST_HELDOUT_SEEDS.includes(s)),
    [],
    'the fresh held-out set shares no seed with the past one',
  )
})
