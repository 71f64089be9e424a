/**
 * The independent asset evaluation (bench/eval/asset-*.ts) on quick sizes: the generator is deterministic, has
 * every failure mode with a precursor of its documented length and healthy rough/hot units that never fail; the
 * scorer gives the hand-computed figures; the naive baseline catches an obvious bearing trend; an oracle detector
 * run end to end through evaluateAssets (with training CSVs) is scored as perfect.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Reading } from '../../actors/types.js'
import {
  AssetFleet,
  DAY_MS,
  HOUR_MS,
  MAX_FAILURE_SLIP_MS,
  PRECURSOR_DAYS,
  PREDICTABLE_MODES,
  type FailureTruth,
  type FleetOptions,
} from '../../bench/eval/asset-scenario.js'
import { auc, median, scoreAssets, type AlertEvent, type ScoreRun } from '../../bench/eval/asset-score.js'
import { medianInPlace, naiveBaseline } from '../../bench/eval/asset-baselines.js'
import { evaluateAssets, HELDOUT_SEEDS, TUNING_SEEDS, type Detector } from '../../bench/eval/asset-eval.js'
import { formatReport, parseArgs } from '../../bench/eval/asset-cli.js'
import { ConfigError } from '../../actors/errors.js'

const QUICK: Omit<FleetOptions, 'seed'> = { units: 12, days: 16 }

function digest(o: FleetOptions): { hash: string; n: number; failures: FailureTruth[] } {
  const fleet = new AssetFleet(o)
  const h = createHash('sha256')
  let n = 0
  let last = -Infinity
  for (const { entity, reading } of fleet.readings()) {
    if (reading.ts < last) throw new Error('readings out of time order')
    last = reading.ts
    h.update(`${entity},${reading.ts},${JSON.stringify(reading.fields)}\n`)
    n++
  }
  return { hash: h.digest('hex'), n, failures: fleet.failures() }
}

t.test('the fleet is a pure function of its options, in time order', async (t) => {
  const a = digest({ seed: 1, ...QUICK })
  const b = digest({ seed: 1, ...QUICK })
  const c = digest({ seed: 2, ...QUICK })
  t.equal(a.hash, b.hash)
  t.same(a.failures, b.failures)
  t.not(a.hash, c.hash)
  // one reading a minute per unit, less the workshop stays and telemetry outages
  const slots = 12 * 16 * 1440
  t.ok(a.n > 0.85 * slots && a.n <= slots, `${a.n} of ${slots} slots`)
  t.not(
    TUNING_SEEDS.some((s) => (HELDOUT_SEEDS as readonly number[]).includes(s)),
    true,
    'tuning and held-out seeds are disjoint',
  )
})

function add(a: number[], i: number, v: number): void {
  a[i] = (a[i] ?? 0) + v
}

interface Hourly {
  vib: number[]
  nVib: number[]
  tex: number[]
  nTex: number[]
  p: number[]
  nP: number[]
}

/** Streams a fleet and keeps per unit and hour: vibration in service, temperature over ambient at load, running pressure. */
function hourly(o: FleetOptions): {
  fleet: AssetFleet
  by: Map<string, Hourly>
  fields: Map<string, { vib: number; tAtLoad: number; n: number; nLoad: number }>
} {
  const fleet = new AssetFleet(o)
  const H = Math.ceil((o.days ?? 72) * 24)
  const by = new Map<string, Hourly>()
  const fields = new Map<string, { vib: number; tAtLoad: number; n: number; nLoad: number }>()
  for (const { entity, reading } of fleet.readings()) {
    const tr = fleet.truth(entity)
    let u = by.get(entity)
    if (!u)
      by.set(
        entity,
        (u = {
          vib: Array(H).fill(0),
          nVib: Array(H).fill(0),
          tex: Array(H).fill(0),
          nTex: Array(H).fill(0),
          p: Array(H).fill(0),
          nP: Array(H).fill(0),
        }),
      )
    let s = fields.get(entity)
    if (!s) fields.set(entity, (s = { vib: 0, tAtLoad: 0, n: 0, nLoad: 0 }))
    const h = Math.floor((reading.ts - fleet.startTs) / HOUR_MS)
    const f = reading.fields as Record<string, number>
    if (tr.duty === 'service') {
      add(u.vib, h, f['vibration'] as number)
      add(u.nVib, h, 1)
      s.vib += f['vibration'] as number
      s.n++
      if (tr.load >= 0.4 && tr.load <= 0.8) {
        add(u.tex, h, (f['temperature'] as number) - tr.ambient)
        add(u.nTex, h, 1)
        s.tAtLoad += (f['temperature'] as number) - tr.ambient
        s.nLoad++
      }
    }
    if (tr.duty === 'service' || tr.duty === 'idle') {
      add(u.p, h, f['pressure'] as number)
      add(u.nP, h, 1)
    }
  }
  return { fleet, by, fields }
}

function mean(u: Hourly, k: 'vib' | 'tex' | 'p', fromMs: number, toMs: number, start: number): number {
  const nk = k === 'vib' ? 'nVib' : k === 'tex' ? 'nTex' : 'nP'
  let s = 0,
    n = 0
  for (let h = Math.max(0, Math.floor((fromMs - start) / HOUR_MS)); h < Math.floor((toMs - start) / HOUR_MS); h++) {
    s += u[k][h] ?? 0
    n += u[nk][h] ?? 0
  }
  return n === 0 ? NaN : s / n
}

t.test(
  'every failure mode, with a precursor of the documented length; healthy rough and hot units never fail',
  async (t) => {
    for (const seed of [1, 2]) {
      const { fleet, by, fields } = hourly({ seed, ...QUICK })
      const failures = fleet.failures()
      const modes = new Set(failures.map((f) => f.mode))
      t.same([...modes].sort(), ['bearing', 'cooling', 'hydraulic', 'sudden'], `seed ${seed}: all modes fail`)
      const repairs = fleet.maintenance().filter((m) => m.action === 'repair')
      t.same(
        repairs.map((m) => `${m.entity}@${m.ts}`),
        failures.map((f) => `${f.entity}@${f.ts}`),
        'one repair entry per failure, at the failure time',
      )
      for (const m of fleet.maintenance())
        t.ok(m.completed > m.ts && Number.isInteger(m.completed), 'the job completes after the withdrawal, in whole ms')
      for (const f of failures) {
        const u = by.get(f.entity) as Hourly
        const S = fleet.startTs
        if (f.mode === 'sudden') {
          t.equal(f.onset, f.ts, 'a sudden failure has no precursor')
          continue
        }
        const doc = PRECURSOR_DAYS[f.mode]
        const len = f.ts - f.onset
        t.ok(
          len >= doc.min * DAY_MS && len <= doc.max * DAY_MS + MAX_FAILURE_SLIP_MS,
          `${f.mode} precursor ${(len / DAY_MS).toFixed(2)} d within [${doc.min}, ${doc.max}] d + slip`,
        )
        const before = [f.onset - 2 * DAY_MS, f.onset] as const
        const mid = [
          f.onset + 0.5 * (f.ts - f.onset) - 12 * HOUR_MS,
          f.onset + 0.5 * (f.ts - f.onset) + 12 * HOUR_MS,
        ] as const
        // the unit may stand in the depot for a while before it fails on its next run: look at the last 36 h
        const end = [f.ts - 37 * HOUR_MS, f.ts - HOUR_MS] as const
        if (f.mode === 'bearing') {
          const b = mean(u, 'vib', ...before, S),
            m = mean(u, 'vib', ...mid, S),
            e = mean(u, 'vib', ...end, S)
          t.ok(e / b >= 1.5, `bearing: vibration in service ${b.toFixed(2)} -> ${e.toFixed(2)} mm/s in the last 36 h`)
          t.ok(m / b > 1.05 && m < e, `bearing: already rising half way (${m.toFixed(2)})`)
        } else if (f.mode === 'cooling') {
          const b = mean(u, 'tex', ...before, S),
            e = mean(u, 'tex', ...end, S)
          t.ok(e - b >= 8, `cooling: temperature over ambient at load ${b.toFixed(1)} -> ${e.toFixed(1)} °C`)
        } else {
          const b = mean(u, 'p', ...before, S),
            m = mean(u, 'p', ...mid, S),
            e = mean(u, 'p', ...end, S)
          t.ok(e / b <= 0.9, `hydraulic: running pressure ${b.toFixed(1)} -> ${e.toFixed(1)}`)
          t.ok(m < b && m > e, `hydraulic: falling half way (${m.toFixed(1)})`)
        }
      }
      const info = fleet.unitInfo()
      const normal = info
        .filter((i) => i.character === 'normal')
        .map((i) => fields.get(i.entity) as { vib: number; n: number; tAtLoad: number; nLoad: number })
      const normVib = median(normal.map((s) => s.vib / s.n)) as number
      const normTex = median(normal.map((s) => s.tAtLoad / s.nLoad)) as number
      const rough = info.filter((i) => i.character === 'rough')
      const hot = info.filter((i) => i.character === 'hot')
      t.ok(rough.length >= 1 && hot.length >= 1, 'rough and hot units present')
      for (const r of rough) {
        const s = fields.get(r.entity) as { vib: number; n: number }
        t.ok(
          s.vib / s.n >= 1.8 * normVib,
          `rough ${r.entity}: ${(s.vib / s.n).toFixed(2)} vs fleet ${normVib.toFixed(2)} mm/s`,
        )
      }
      for (const h of hot) {
        const s = fields.get(h.entity) as { tAtLoad: number; nLoad: number }
        t.ok(
          s.tAtLoad / s.nLoad >= normTex + 8,
          `hot ${h.entity}: ${(s.tAtLoad / s.nLoad).toFixed(1)} vs fleet ${normTex.toFixed(1)} °C over ambient at load`,
        )
      }
      const odd = new Set([...rough, ...hot].map((i) => i.entity))
      t.notOk(
        failures.some((f) => odd.has(f.entity)),
        'rough and hot units never fail',
      )
      t.ok(
        fleet.maintenance().some((m) => m.action === 'routine'),
        'routine exams in the log',
      )
    }
  },
)

const H = HOUR_MS
const open = (entity: string, ts: number, type = 'risk_high'): AlertEvent => ({ entity, type, state: 'open', ts })

t.test('scorer: lead-time rules by hand', async (t) => {
  const T0 = 1_000 * DAY_MS
  const run: ScoreRun = {
    testStart: T0,
    testEnd: T0 + 30 * DAY_MS,
    units: 10,
    oddUnits: ['rough-1'],
    failures: [
      { entity: 'a', mode: 'bearing', ts: T0 + 5 * DAY_MS }, // caught 30 h ahead (earliest of two openings)
      { entity: 'b', mode: 'cooling', ts: T0 + 6 * DAY_MS }, // alert 30 min ahead: too late, not false
      { entity: 'c', mode: 'hydraulic', ts: T0 + 8 * DAY_MS }, // alert 80 h ahead: missed and false
      { entity: 'd', mode: 'cooling', ts: T0 + 9 * DAY_MS }, // caught 3 h ahead: caught, not warned
      { entity: 'e', mode: 'sudden', ts: T0 + 10 * DAY_MS }, // caught apart
      { entity: 'f', mode: 'bearing', ts: T0 - DAY_MS }, // training period: not scored
    ],
    alerts: [
      open('a', T0 + 5 * DAY_MS - 30 * H),
      open('a', T0 + 5 * DAY_MS - 10 * H),
      { entity: 'a', type: 'risk_high', state: 'update', ts: T0 + 5 * DAY_MS - 5 * H },
      open('b', T0 + 6 * DAY_MS - 0.5 * H, 'asset_danger'),
      open('c', T0 + 8 * DAY_MS - 80 * H),
      open('d', T0 + 9 * DAY_MS - 3 * H),
      open('e', T0 + 10 * DAY_MS - 2 * H),
      open('rough-1', T0 + 12 * DAY_MS),
      open('g', T0 + 13 * DAY_MS),
      open('g', T0 + 14 * DAY_MS, 'other_type'), // not a scored type
      open('g', T0 - 2 * DAY_MS), // before the test period
    ],
    riskDays: [],
  }
  const s = scoreAssets([run])
  t.same([s.modes.bearing.caught, s.modes.bearing.total], [1, 1])
  t.same([s.modes.cooling.caught, s.modes.cooling.total, s.modes.cooling.warned], [1, 2, 0])
  t.same([s.modes.hydraulic.caught, s.modes.hydraulic.total], [0, 1])
  t.same([s.modes.sudden.caught, s.modes.sudden.total], [1, 1])
  t.same(s.predictable, { total: 4, caught: 2, warned: 1, shareCaught: 0.5, shareWarned: 0.25, medianLeadH: 16.5 })
  t.equal(s.alerts, 8, 'openings of scored types in the test period')
  t.equal(s.falseAlerts, 3, 'c at -80 h, rough-1, g')
  t.equal(s.falseOnOddUnits, 1)
  t.equal(s.assetMonths, 10)
  t.equal(s.falsePerAssetMonth, 0.3)
  t.equal(s.opensPerCaught, 1.5, 'a opened twice, d once')
  t.same(scoreAssets([run], ['other_type']).alerts, 1, 'the scored types are a parameter')
})

t.test('scorer: AUC of the daily risk', async (t) => {
  t.equal(
    auc([
      { score: 2, label: true },
      { score: 1, label: false },
    ]),
    1,
  )
  t.equal(
    auc([
      { score: 1, label: true },
      { score: 1, label: false },
    ]),
    0.5,
  )
  t.equal(
    auc([
      { score: 0, label: true },
      { score: 1, label: false },
      { score: 2, label: true },
      { score: 3, label: false },
    ]),
    0.25,
  )
  t.equal(auc([{ score: 1, label: false }]), null)
  const T0 = 1_000 * DAY_MS
  const day = (k: number): number => T0 + k * DAY_MS
  const s = scoreAssets([
    {
      testStart: T0,
      testEnd: day(20),
      units: 2,
      failures: [
        { entity: 'a', mode: 'bearing', ts: day(10) + 5 * H },
        { entity: 'b', mode: 'sudden', ts: day(10) },
      ],
      alerts: [],
      riskDays: [
        { entity: 'a', day: day(6), risk: 10 }, // failure 4 days + 5 h later: negative
        { entity: 'a', day: day(7), risk: 50 }, // failure within the day + 72 h: positive
        { entity: 'a', day: day(10), risk: 60 }, // the failure's own day: positive
        { entity: 'b', day: day(9), risk: 90 }, // only a sudden failure ahead: left out
        { entity: 'b', day: day(3), risk: 55 }, // negative, above one positive
      ],
    },
  ])
  t.same([s.aucPositives, s.aucNegatives], [2, 2])
  t.equal(s.auc, 0.75)
})

t.test('naive baseline: one alert on an obvious bearing trend, none on a steady rough unit', async (t) => {
  const inst = naiveBaseline().create()
  const T0 = 1_000 * DAY_MS
  let x = 12345
  const noise = (): number => {
    x = (x * 1103515245 + 12345) % 2147483648
    return x / 2147483648 - 0.5
  }
  const opens: AlertEvent[] = []
  const failAt = T0 + 40 * DAY_MS
  for (let ts = T0; ts < failAt; ts += 60_000) {
    const ramp = Math.max(0, (ts - (failAt - 4 * DAY_MS)) / (4 * DAY_MS)) // 4-day rise to 3x
    const r: Reading = {
      ts,
      fields: {
        vibration: 2 * (1 + 2 * ramp ** 2) + 0.4 * noise(),
        temperature: 45 + noise(),
        pressure: 180,
        flow: 50,
      },
    }
    const rough: Reading = {
      ts,
      fields: { vibration: 6 + 1.5 * noise(), temperature: 45 + noise(), pressure: 180, flow: 50 },
    }
    opens.push(...inst.onReading('loco-a', r).filter((e) => e.state === 'open'))
    opens.push(...inst.onReading('loco-rough', rough).filter((e) => e.state === 'open'))
  }
  t.equal(opens.filter((e) => e.entity === 'loco-rough').length, 0, 'a steady rough unit is its own baseline')
  const mine = opens.filter((e) => e.entity === 'loco-a')
  t.equal(mine.length, 1, `one alert per excursion: ${JSON.stringify(mine)}`)
  t.equal(mine[0]?.type, 'naive_vibration')
  const lead = (failAt - (mine[0]?.ts ?? failAt)) / H
  t.ok(lead >= 24 && lead <= 96, `opened ${lead.toFixed(1)} h before the failure`)
  t.ok((inst.risk?.('loco-a') ?? 0) > 4, 'risk is the robust z of the last hour')
  const a = new Float64Array([5, 1, 4, 2, 3, 9])
  t.equal(medianInPlace(a, 6), 3.5)
  t.equal(medianInPlace(new Float64Array([3, 1, 2]), 3), 2)
})

t.test(
  'evaluateAssets end to end: training CSVs, an oracle detector scored perfect, the baseline alongside',
  async (t) => {
    const seed = 1
    const probe = new AssetFleet({ seed, ...QUICK })
    for (const _ of probe.readings()) {
      /* drain: the ground truth is known once streamed */
    }
    const truth = probe.failures()
    const trainEnd = probe.startTs + 8 * DAY_MS
    const trained: string[] = []
    // The oracle cheats on purpose: it opens an alert 10 h before each known failure (tests the plumbing, not a model).
    const oracle: Detector = {
      name: 'oracle',
      train(readingsPath, maintenancePath) {
        const rows = readFileSync(readingsPath, 'utf8').trim().split('\n')
        t.equal(rows[0], 'entity,ts,vibration,temperature,pressure,flow')
        const ts = rows.slice(1).map((l) => Number(l.split(',')[1]))
        t.ok(
          ts.every((v, i) => i === 0 || v >= (ts[i - 1] as number)),
          'history rows in time order',
        )
        t.ok((ts[ts.length - 1] as number) < trainEnd, 'history ends at the split')
        const log = readFileSync(maintenancePath, 'utf8').trim().split('\n')
        t.equal(log[0], 'entity,ts,action,completed')
        const entries = log.slice(1).map((l) => l.split(','))
        t.same(
          entries.filter((e) => e[2] === 'repair').map((e) => `${e[0]}@${e[1]}`),
          truth.filter((f) => f.ts < trainEnd).map((f) => `${f.entity}@${f.ts}`),
          'repairs at the failure times of the training period',
        )
        trained.push(readingsPath)
      },
      create() {
        const done = new Set<FailureTruth>()
        const last = new Map<string, number>()
        return {
          onReading(entity, r) {
            last.set(entity, r.ts)
            const out: AlertEvent[] = []
            for (const f of truth) {
              if (f.entity === entity && !done.has(f) && r.ts >= f.ts - 10 * H) {
                done.add(f)
                out.push(open(entity, r.ts))
              }
            }
            return out
          },
          risk(entity) {
            const now = last.get(entity) ?? 0
            return truth.some(
              (f) =>
                f.entity === entity &&
                (PREDICTABLE_MODES as readonly string[]).includes(f.mode) &&
                f.ts > now &&
                f.ts <= now + 72 * H,
            )
              ? 1
              : 0
          },
        }
      },
    }
    const report = await evaluateAssets({ seeds: [seed], ...QUICK, detectors: [oracle, naiveBaseline()] })
    t.equal(trained.length, 1, 'trained once per seed')
    const [o, naive] = report.detectors
    const testFails = truth.filter((f) => f.ts >= trainEnd)
    t.ok(testFails.length >= 2, `${testFails.length} failures in the test period`)
    t.equal(o?.score.predictable.caught, o?.score.predictable.total)
    t.equal(o?.score.modes.sudden.caught, o?.score.modes.sudden.total)
    t.equal(o?.score.falseAlerts, 0)
    t.ok(Math.abs((o?.score.predictable.medianLeadH ?? 0) - 10) < 0.1, 'lead of 10 h')
    t.ok((o?.score.auc ?? 0) > 0.9, `oracle daily-risk AUC ${o?.score.auc}`)
    t.equal(naive?.name, 'naive')
    t.same(naive?.alertTypes, ['naive_vibration', 'naive_temperature'])
    t.equal(report.readings, digest({ seed, ...QUICK }).n)
    const table = formatReport(report, 'test')
    t.match(table, /\| oracle \| \d+ of \d+ /)
    t.match(table, /\| naive \| /)
  },
)

t.test('asset-cli arguments', async (t) => {
  t.same(parseArgs([]).seeds, [...TUNING_SEEDS])
  t.same(parseArgs(['--seeds', 'heldout', '--json']), {
    seeds: [...HELDOUT_SEEDS],
    seedSet: 'heldout',
    days: 72,
    units: 60,
    json: true,
  })
  t.same(parseArgs(['--quick', '--days', '20']), {
    seeds: [...TUNING_SEEDS],
    seedSet: 'tuning',
    days: 20,
    units: 12,
    json: false,
  })
  t.same(parseArgs(['--seeds', '7,8']).seeds, [7, 8])
  t.throws(() => parseArgs(['--days', '3']), ConfigError)
  t.throws(() => parseArgs(['--seeds', 'x']), ConfigError)
  t.throws(() => parseArgs(['--bogus']), ConfigError)
  t.throws(() => new AssetFleet({ seed: 1, days: 5 }), ConfigError)
})
