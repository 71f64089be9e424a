/**
 * Grafana dashboards as code (monitoring/dashboards/*.ts): the checked-in JSON and provisioning YAML under
 * monitoring/grafana/ are exactly what monitoring/generate.ts writes; every dashboard and panel has a valid
 * structure (ids, layout on the 24-column grid without overlaps, the provisioned datasource, targets, thresholds);
 * every metric an expression names exists in actors/metrics.ts (or is a prom-client default), every recording
 * rule it names is defined in the rules file. Whether each expression parses and returns data is checked against
 * a real Prometheus in test/integration/monitoring-live.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import pg from 'pg'
import { migrate } from '../../projector/mod.js'
import { LATEST_POSITIONS_SQL } from '../../monitoring/dashboards/fleet.js'
import {
  DASHBOARDS,
  DATASOURCE,
  expressions,
  generatedFiles,
  PG_DATASOURCE,
  render,
  sqlQueries,
  type Dashboard,
} from '../../monitoring/dashboards/mod.js'
import { createTestDb } from '../helpers/pg.js'
import { geomap, levels, q, stat, table, timeseries } from '../../monitoring/dashboards/builder.js'
import { writeGenerated } from '../../monitoring/generate.js'
import { knownMetrics } from '../../monitoring/metric-names.js'

const MON = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'monitoring')

interface PanelJson {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  datasource?: { type: string; uid: string }
  targets?: Array<{ refId: string; expr?: string; rawSql?: string; format?: string; datasource: { uid: string } }>
  fieldConfig?: { defaults: { thresholds: { mode: string; steps: Array<{ color: string; value: number | null }> } } }
}

t.test(
  'checked-in Grafana files are exactly the generator output (run `npx tsx monitoring/generate.ts`)',
  async (t) => {
    const files = generatedFiles()
    for (const [rel, text] of files)
      t.equal(readFileSync(join(MON, rel), 'utf8'), text, `monitoring/${rel} is up to date`)
    const onDisk = readdirSync(join(MON, 'grafana', 'dashboards')).map((f) => `grafana/dashboards/${f}`)
    t.same(
      onDisk.sort(),
      [...files.keys()].filter((k) => k.startsWith('grafana/dashboards/')).sort(),
      'no stale dashboard files',
    )
    t.equal(DASHBOARDS.length, 5, 'SRE overview, race pit wall, environment, plant, fleet')
    // The generator writes the same bytes (into a temp dir here).
    const dir = mkdtempSync(join(tmpdir(), 'pw-gen-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    for (const rel of writeGenerated(dir))
      t.equal(readFileSync(join(dir, rel), 'utf8'), files.get(rel), `generator writes ${rel}`)
  },
)

t.test('every dashboard and panel has a valid structure', async (t) => {
  const uids = new Set<string>()
  for (const [rel, text] of generatedFiles()) {
    if (!rel.endsWith('.json')) continue
    const d = JSON.parse(text) as {
      uid: string
      title: string
      schemaVersion: number
      panels: PanelJson[]
      time: { from: string }
    }
    t.ok(/^[a-z0-9-]{1,40}$/.test(d.uid) && !uids.has(d.uid), `${rel}: unique uid ${d.uid}`)
    uids.add(d.uid)
    t.ok(d.title.length > 0 && d.schemaVersion >= 36, `${d.uid}: title and schema version`)
    const ids = new Set<number>()
    const cells = new Set<string>()
    let charts = 0
    for (const p of d.panels) {
      t.notOk(ids.has(p.id), `${d.uid}: panel id ${p.id} unique`)
      ids.add(p.id)
      const g = p.gridPos
      t.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${d.uid}/${p.title}: on the 24-column grid`)
      let overlap = false
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          const k = `${x},${y}`
          if (cells.has(k)) overlap = true
          cells.add(k)
        }
      t.notOk(overlap, `${d.uid}/${p.title}: overlaps no other panel`)
      if (p.type === 'row') continue
      charts++
      t.ok(['timeseries', 'stat', 'table', 'geomap'].includes(p.type), `${d.uid}/${p.title}: type ${p.type}`)
      const targets = p.targets ?? []
      const ds = targets.some((x) => x.rawSql !== undefined) ? PG_DATASOURCE : DATASOURCE
      t.equal(p.datasource?.uid, ds.uid, `${d.uid}/${p.title}: provisioned datasource`)
      t.ok(targets.length > 0, `${d.uid}/${p.title}: has targets`)
      t.equal(new Set(targets.map((x) => x.refId)).size, targets.length, `${d.uid}/${p.title}: distinct refIds`)
      for (const x of targets) {
        const text = x.expr ?? x.rawSql ?? ''
        t.ok(
          text.trim().length > 0 && x.datasource.uid === ds.uid,
          `${d.uid}/${p.title} ${x.refId}: expression and datasource`,
        )
        if (x.rawSql !== undefined) t.equal(x.format, 'table', `${d.uid}/${p.title} ${x.refId}: SQL in table format`)
        let depth = 0
        for (const c of text) {
          if ('([{'.includes(c)) depth++
          if (')]}'.includes(c)) depth--
          if (depth < 0) break
        }
        t.equal(depth, 0, `${d.uid}/${p.title} ${x.refId}: balanced brackets`)
      }
      const steps = p.fieldConfig?.defaults.thresholds.steps ?? []
      t.ok(steps.length > 0 && steps[0]?.value === null, `${d.uid}/${p.title}: thresholds start with a base step`)
      const vals = steps.slice(1).map((s) => s.value as number)
      t.same(
        vals,
        [...vals].sort((a, b) => a - b),
        `${d.uid}/${p.title}: threshold steps ascending`,
      )
    }
    t.ok(charts >= 5, `${d.uid}: ${charts} panels`)
  }
})

t.test('expressions name only metrics that exist and recording rules that are defined', async (t) => {
  const known = await knownMetrics()
  const rules = readFileSync(join(MON, 'rules', 'pitwall.rules.yml'), 'utf8')
  const recorded = new Set([...rules.matchAll(/- record: (\S+)/g)].map((m) => m[1] as string))
  let n = 0
  for (const d of DASHBOARDS) {
    for (const { panel, expr } of expressions(d)) {
      n++
      for (const name of expr.match(/\b(?:pitwall|process|nodejs)_[a-z0-9_]+/g) ?? [])
        t.ok(known(name), `${panel}: ${name} exists`)
      for (const rec of expr.match(/\bpitwall:[a-z0-9_:]+/g) ?? [])
        t.ok(recorded.has(rec), `${panel}: recording rule ${rec} is defined`)
    }
  }
  t.ok(n >= 60, `${n} expressions checked`)
})

t.test('the builder: every panel kind, layout wrapping at 24 columns, table targets instant, thresholds', async (t) => {
  const d: Dashboard = {
    uid: 'pw-builder-test',
    title: 'builder',
    description: 'every kind',
    tags: ['t'],
    rows: [
      {
        title: 'r',
        panels: [
          timeseries('ts', [q('up', '{{job}}')], { thresholds: levels(1, 2), unit: 's' }),
          stat('st', q('up')),
          stat('st2', q('up')),
          table('tb', q('up')),
          geomap('gm', q('up', undefined, true), { w: 24 }),
        ],
      },
    ],
  }
  const j = render(d) as {
    panels: Array<{
      type: string
      gridPos: { x: number; y: number; w: number; h: number }
      targets?: Array<{ instant: boolean; range: boolean; format?: string; legendFormat?: string }>
      fieldConfig?: {
        defaults: {
          unit: string
          thresholds: { steps: Array<{ value: number | null; color: string }> }
          custom?: unknown
        }
      }
    }>
  }
  t.same(
    j.panels.map((p) => p.type),
    ['row', 'timeseries', 'stat', 'stat', 'table', 'geomap'],
  )
  t.same(
    j.panels.map((p) => [p.gridPos.x, p.gridPos.y]),
    [
      [0, 0],
      [0, 1],
      [12, 1],
      [18, 1],
      [0, 9],
      [0, 17],
    ],
    'panels flow left to right and wrap',
  )
  const [, ts, , , tb, gm] = j.panels
  t.same(ts?.fieldConfig?.defaults.thresholds.steps, [
    { color: 'green', value: null },
    { color: 'orange', value: 1 },
    { color: 'red', value: 2 },
  ])
  t.equal(ts?.fieldConfig?.defaults.unit, 's')
  t.ok(ts?.fieldConfig?.defaults.custom, 'threshold lines drawn on a timeseries with thresholds')
  t.same([ts?.targets?.[0]?.range, ts?.targets?.[0]?.instant, ts?.targets?.[0]?.legendFormat], [true, false, '{{job}}'])
  t.same(
    [tb?.targets?.[0]?.instant, tb?.targets?.[0]?.format],
    [true, 'table'],
    'table targets are instant, table format',
  )
  t.same([gm?.targets?.[0]?.instant, gm?.gridPos.w], [true, 24])
  t.same(
    expressions(d).map((e) => e.expr),
    ['up', 'up', 'up', 'up', 'up'],
  )
})

/** Grafana's expansion of the macros the SQL panels use (`$__timeFilter(col)` -> col BETWEEN from AND to). */
function expandMacros(text: string, from: Date, to: Date): string {
  return text.replace(
    /\$__timeFilter\(([a-z_]+)\)/g,
    (_, col: string) => `${col} BETWEEN '${from.toISOString()}' AND '${to.toISOString()}'`,
  )
}

t.test(
  "the fleet geomap query against PostgreSQL with the projector's schema: latest position per vehicle",
  async (t) => {
    const all = DASHBOARDS.flatMap((d) => sqlQueries(d))
    t.same(
      all.map((x) => x.panel),
      ['pitwall-fleet/Latest position per vehicle'],
      'one SQL panel: the fleet geomap',
    )
    t.equal(all[0]?.sql, LATEST_POSITIONS_SQL)
    const fleet = JSON.parse(generatedFiles().get('grafana/dashboards/pitwall-fleet.json') ?? '{}') as {
      panels: Array<{
        type: string
        options?: { layers?: Array<{ location?: { mode: string; latitude: string; longitude: string } }> }
      }>
    }
    const gm = fleet.panels.find((p) => p.type === 'geomap')
    t.same(
      gm?.options?.layers?.[0]?.location,
      { mode: 'coords', latitude: 'lat', longitude: 'lon' },
      'markers placed by the lat and lon columns',
    )
    t.match(
      generatedFiles().get('grafana/provisioning/datasources/pitwall.yml') ?? '',
      new RegExp(`uid: ${PG_DATASOURCE.uid}`),
      'the PostgreSQL datasource is provisioned',
    )

    const db = await createTestDb()
    t.teardown(() => db.drop())
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    t.teardown(() => pool.end())
    await migrate(pool)
    // Positions as the projector writes them (raw_readings keyed by kind, entity, reading seq; lat/lon; fields
    // reason and speed): three vehicles, several positions each; a reading without a position, a non-road entity
    // and a position outside the time range must not be picked.
    const base = Date.UTC(2025, 0, 6, 12, 0, 0)
    const rows: Array<
      [string, string, number, number, string | null, number | null, number | null, Record<string, unknown>]
    > = []
    for (let v = 0; v < 3; v++) {
      for (let i = 0; i < 5; i++)
        rows.push([
          'vehicle',
          `truck-${v}`,
          v * 100 + i + 1,
          base + i * 60_000,
          'road',
          45 + v + i / 100,
          7 + v + i / 100,
          { reason: 'sample', speed: 50 + i },
        ])
    }
    rows.push(['vehicle', 'truck-0', 99, base + 10 * 60_000, 'road', null, null, { speed: 1 }])
    rows.push(['vehicle', 'car-7', 700, base + 10 * 60_000, 'race', 43.7, 7.4, { speed: 250 }])
    rows.push(['vehicle', 'truck-1', 150, base + 48 * 3600_000, 'road', 10, 10, { reason: 'trip_end' }])
    for (const r of rows) {
      await pool.query(
        `INSERT INTO raw_readings (kind, entity, seq, ts, profile, lat, lon, fields) VALUES ($1, $2, $3, to_timestamp($4 / 1000.0), $5, $6, $7, $8)`,
        [r[0], r[1], r[2], r[3], r[4], r[5], r[6], JSON.stringify(r[7])],
      )
    }
    const text = expandMacros(LATEST_POSITIONS_SQL, new Date(base - 3600_000), new Date(base + 6 * 3600_000))
    t.notMatch(text, /\$__/, 'every macro expanded')
    const plan = await pool.query(`EXPLAIN ${text}`)
    t.ok(plan.rows.length > 0, 'PostgreSQL plans the query')
    const res = await pool.query<{
      vehicle: string
      time: Date
      lat: number
      lon: number
      speed: number | null
      reason: string | null
    }>(text)
    t.same(
      res.rows.map((r) => r.vehicle).sort(),
      ['truck-0', 'truck-1', 'truck-2'],
      'one row per road vehicle with a position in the range',
    )
    for (const r of res.rows) {
      const v = Number(r.vehicle.split('-')[1])
      t.equal(r.time.getTime(), base + 4 * 60_000, `${r.vehicle}: its latest position in the range`)
      t.same(
        [r.lat, r.lon, r.speed, r.reason],
        [45 + v + 0.04, 7 + v + 0.04, 54, 'sample'],
        `${r.vehicle}: lat, lon, speed and reason of that position`,
      )
    }
    t.same(
      res.fields.map((f) => f.name),
      ['vehicle', 'time', 'lat', 'lon', 'speed', 'reason'],
      'columns the geomap reads (lat, lon) and its tooltip shows',
    )
  },
)
