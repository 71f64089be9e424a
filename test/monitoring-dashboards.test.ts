/**
 * Grafana dashboards as code (monitoring/dashboards/*.ts): the checked-in JSON and provisioning YAML under
 * monitoring/grafana/ are exactly what monitoring/generate.ts writes; every dashboard and panel has a valid
 * structure (ids, layout on the 24-column grid without overlaps, the provisioned datasource, targets, thresholds);
 * every metric an expression names exists in actors/metrics.ts (or is a prom-client default), every recording
 * rule it names is defined in the rules file. Whether each expression parses and returns data is checked against
 * a real Prometheus in test/monitoring-live.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DASHBOARDS, DATASOURCE, expressions, generatedFiles, render, type Dashboard } from '../monitoring/dashboards/mod.js'
import { geomap, levels, q, stat, table, timeseries } from '../monitoring/dashboards/builder.js'
import { writeGenerated } from '../monitoring/generate.js'
import { knownMetrics } from '../monitoring/metric-names.js'

const MON = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'monitoring')

interface PanelJson {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  datasource?: { type: string; uid: string }
  targets?: Array<{ refId: string; expr: string; datasource: { uid: string } }>
  fieldConfig?: { defaults: { thresholds: { mode: string; steps: Array<{ color: string; value: number | null }> } } }
}

t.test('checked-in Grafana files are exactly the generator output (run `npx tsx monitoring/generate.ts`)', async (t) => {
  const files = generatedFiles()
  for (const [rel, text] of files) t.equal(readFileSync(join(MON, rel), 'utf8'), text, `monitoring/${rel} is up to date`)
  const onDisk = readdirSync(join(MON, 'grafana', 'dashboards')).map((f) => `grafana/dashboards/${f}`)
  t.same(onDisk.sort(), [...files.keys()].filter((k) => k.startsWith('grafana/dashboards/')).sort(), 'no stale dashboard files')
  t.equal(DASHBOARDS.length, 5, 'SRE overview, race pit wall, environment, plant, fleet')
  // The generator writes the same bytes (into a temp dir here).
  const dir = mkdtempSync(join(tmpdir(), 'pw-gen-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const rel of writeGenerated(dir)) t.equal(readFileSync(join(dir, rel), 'utf8'), files.get(rel), `generator writes ${rel}`)
})

t.test('every dashboard and panel has a valid structure', async (t) => {
  const uids = new Set<string>()
  for (const [rel, text] of generatedFiles()) {
    if (!rel.endsWith('.json')) continue
    const d = JSON.parse(text) as { uid: string; title: string; schemaVersion: number; panels: PanelJson[]; time: { from: string } }
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
      for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
        const k = `${x},${y}`
        if (cells.has(k)) overlap = true
        cells.add(k)
      }
      t.notOk(overlap, `${d.uid}/${p.title}: overlaps no other panel`)
      if (p.type === 'row') continue
      charts++
      t.ok(['timeseries', 'stat', 'table', 'geomap'].includes(p.type), `${d.uid}/${p.title}: type ${p.type}`)
      t.equal(p.datasource?.uid, DATASOURCE.uid, `${d.uid}/${p.title}: provisioned datasource`)
      const targets = p.targets ?? []
      t.ok(targets.length > 0, `${d.uid}/${p.title}: has targets`)
      t.equal(new Set(targets.map((x) => x.refId)).size, targets.length, `${d.uid}/${p.title}: distinct refIds`)
      for (const x of targets) {
        t.ok(x.expr.trim().length > 0 && x.datasource.uid === DATASOURCE.uid, `${d.uid}/${p.title} ${x.refId}: expression and datasource`)
        let depth = 0
        for (const c of x.expr) {
          if ('([{'.includes(c)) depth++
          if (')]}'.includes(c)) depth--
          if (depth < 0) break
        }
        t.equal(depth, 0, `${d.uid}/${p.title} ${x.refId}: balanced brackets`)
      }
      const steps = p.fieldConfig?.defaults.thresholds.steps ?? []
      t.ok(steps.length > 0 && steps[0]?.value === null, `${d.uid}/${p.title}: thresholds start with a base step`)
      const vals = steps.slice(1).map((s) => s.value as number)
      t.same(vals, [...vals].sort((a, b) => a - b), `${d.uid}/${p.title}: threshold steps ascending`)
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
      for (const name of expr.match(/\b(?:pitwall|process|nodejs)_[a-z0-9_]+/g) ?? []) t.ok(known(name), `${panel}: ${name} exists`)
      for (const rec of expr.match(/\bpitwall:[a-z0-9_:]+/g) ?? []) t.ok(recorded.has(rec), `${panel}: recording rule ${rec} is defined`)
    }
  }
  t.ok(n >= 60, `${n} expressions checked`)
})

t.test('the builder: every panel kind, layout wrapping at 24 columns, table targets instant, thresholds', async (t) => {
  const d: Dashboard = {
    uid: 'pw-builder-test', title: 'builder', description: 'every kind', tags: ['t'],
    rows: [{ title: 'r', panels: [
      timeseries('ts', [q('up', '{{job}}')], { thresholds: levels(1, 2), unit: 's' }),
      stat('st', q('up')),
      stat('st2', q('up')),
      table('tb', q('up')),
      geomap('gm', q('up', undefined, true), { w: 24 }),
    ] }],
  }
  const j = render(d) as { panels: Array<{ type: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ instant: boolean; range: boolean; format?: string; legendFormat?: string }>; fieldConfig?: { defaults: { unit: string; thresholds: { steps: Array<{ value: number | null; color: string }> }; custom?: unknown } } }> }
  t.same(j.panels.map((p) => p.type), ['row', 'timeseries', 'stat', 'stat', 'table', 'geomap'])
  t.same(j.panels.map((p) => [p.gridPos.x, p.gridPos.y]), [[0, 0], [0, 1], [12, 1], [18, 1], [0, 9], [0, 17]], 'panels flow left to right and wrap')
  const [, ts, , , tb, gm] = j.panels
  t.same(ts?.fieldConfig?.defaults.thresholds.steps, [{ color: 'green', value: null }, { color: 'orange', value: 1 }, { color: 'red', value: 2 }])
  t.equal(ts?.fieldConfig?.defaults.unit, 's')
  t.ok(ts?.fieldConfig?.defaults.custom, 'threshold lines drawn on a timeseries with thresholds')
  t.same([ts?.targets?.[0]?.range, ts?.targets?.[0]?.instant, ts?.targets?.[0]?.legendFormat], [true, false, '{{job}}'])
  t.same([tb?.targets?.[0]?.instant, tb?.targets?.[0]?.format], [true, 'table'], 'table targets are instant, table format')
  t.same([gm?.targets?.[0]?.instant, gm?.gridPos.w], [true, 24])
  t.same(expressions(d).map((e) => e.expr), ['up', 'up', 'up', 'up', 'up'])
})
