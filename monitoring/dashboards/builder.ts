/**
 * A tiny typed builder for Grafana dashboards (JSON model, schemaVersion 39): dashboards made of rows of
 * timeseries, stat, table and geomap panels, each with PromQL (or, for PostgreSQL panels, SQL) targets and thresholds. Layout is computed
 * (panels flow left to right, 24 columns), ids and refIds are assigned, so the generated JSON is a pure function
 * of the typed description: `npm run dashboards` (monitoring/generate.ts) writes it, a test compares it.
 */

/** The provisioned Prometheus datasource every panel uses (monitoring/grafana/provisioning/datasources). */
export const DATASOURCE = { type: 'prometheus', uid: 'pitwall-prometheus' } as const
/** The provisioned PostgreSQL datasource (the projector's database) of SQL panels. */
export const PG_DATASOURCE = { type: 'grafana-postgresql-datasource', uid: 'pitwall-postgres' } as const

export type PanelKind = 'timeseries' | 'stat' | 'table' | 'geomap'

/** Grafana units used here (a subset of Grafana's unit ids). */
export type Unit = 'short' | 'percent' | 'percentunit' | 's' | 'ms' | 'bytes' | 'reqps' | 'ops' | 'celsius' | 'none'

export interface Target {
  /** PromQL. */
  expr: string
  /** Legend, e.g. `{{site}}`. */
  legend?: string
  /** Evaluate at one instant (tables, stats of the current value) instead of over the range. */
  instant?: boolean
}

/** A SQL target on the PostgreSQL datasource: one table-format query (Grafana macros such as `$__timeFilter(ts)` allowed). */
export interface SqlTarget {
  sql: string
}

/** Threshold steps: the base colour, then the value from which each next colour applies. */
export interface Thresholds {
  base: string
  steps: ReadonlyArray<{ value: number; color: string }>
}

export interface Panel {
  kind: PanelKind
  title: string
  description?: string
  targets: readonly Target[] | readonly SqlTarget[]
  unit?: Unit
  min?: number
  max?: number
  thresholds?: Thresholds
  /** Width in grid columns (of 24) and height in rows; defaults per kind. */
  w?: number
  h?: number
}

export interface Row {
  title: string
  panels: readonly Panel[]
}

export interface Dashboard {
  uid: string
  title: string
  description: string
  tags: readonly string[]
  /** Default time range, e.g. `now-1h`. */
  from?: string
  refresh?: string
  rows: readonly Row[]
}

const panel =
  (kind: PanelKind) =>
  (
    title: string,
    targets: Target | readonly Target[] | SqlTarget,
    opts: Omit<Panel, 'kind' | 'title' | 'targets'> = {},
  ): Panel => ({
    kind,
    title,
    targets: Array.isArray(targets)
      ? (targets as readonly Target[])
      : 'sql' in targets
        ? [targets]
        : [targets as Target],
    ...opts,
  })

export const timeseries = panel('timeseries')
export const stat = panel('stat')
export const table = panel('table')
export const geomap = panel('geomap')

/** A target. */
export function q(expr: string, legend?: string, instant?: boolean): Target {
  const t: Target = { expr }
  if (legend !== undefined) t.legend = legend
  if (instant) t.instant = true
  return t
}

/** A SQL target (PostgreSQL datasource). */
export function sql(text: string): SqlTarget {
  return { sql: text }
}

const isSql = (t: Target | SqlTarget): t is SqlTarget => 'sql' in t

/** Thresholds: green below `warn`, orange from `warn`, red from `crit`. */
export function levels(warn: number, crit?: number): Thresholds {
  const steps = [{ value: warn, color: 'orange' }]
  if (crit !== undefined) steps.push({ value: crit, color: 'red' })
  return { base: 'green', steps }
}

/** Quantile targets over a histogram's buckets, e.g. p50/p95/p99 of `metric_bucket`. */
export function quantiles(
  bucket: string,
  by: string,
  qs: readonly number[] = [0.5, 0.95, 0.99],
  window = '1m',
): Target[] {
  const grp = by ? `${by}, le` : 'le'
  return qs.map((x) =>
    q(
      `histogram_quantile(${x}, sum by (${grp}) (rate(${bucket}[${window}])))`,
      `p${Math.round(x * 100)}${by ? ` {{${by.split(',')[0]?.trim()}}}` : ''}`,
    ),
  )
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

const SIZE: Record<PanelKind, { w: number; h: number }> = {
  timeseries: { w: 12, h: 8 },
  stat: { w: 6, h: 4 },
  table: { w: 12, h: 8 },
  geomap: { w: 12, h: 10 },
}

function panelJson(p: Panel, id: number, x: number, y: number, w: number, h: number): Json {
  const defaults: { [k: string]: Json } = { unit: p.unit ?? 'short' }
  if (p.min !== undefined) defaults.min = p.min
  if (p.max !== undefined) defaults.max = p.max
  const th = p.thresholds ?? { base: 'green', steps: [] }
  defaults.thresholds = {
    mode: 'absolute',
    steps: [{ color: th.base, value: null }, ...th.steps.map((s) => ({ color: s.color, value: s.value }))],
  }
  if (p.kind === 'timeseries' && p.thresholds) defaults.custom = { thresholdsStyle: { mode: 'line+area' } }
  const options: { [k: string]: Json } =
    p.kind === 'timeseries'
      ? {
          legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
          tooltip: { mode: 'multi', sort: 'desc' },
        }
      : p.kind === 'stat'
        ? {
            reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
            colorMode: 'value',
            graphMode: 'area',
            textMode: 'auto',
          }
        : p.kind === 'table'
          ? { showHeader: true, cellHeight: 'sm' }
          : {
              view: { id: 'fit', lat: 0, lon: 0, zoom: 1 },
              controls: { showZoom: true },
              // Markers placed by the `lat` and `lon` fields of each row (SQL) or series (PromQL labels).
              layers: [
                {
                  type: 'markers',
                  name: 'entities',
                  config: {},
                  location: { mode: 'coords', latitude: 'lat', longitude: 'lon' },
                  tooltip: true,
                },
              ],
            }
  const ds = p.targets.length > 0 && p.targets.every(isSql) ? PG_DATASOURCE : DATASOURCE
  const out: { [k: string]: Json } = {
    id,
    type: p.kind,
    title: p.title,
    datasource: { ...ds },
    gridPos: { h, w, x, y },
    targets: p.targets.map((t: Target | SqlTarget, i) => {
      if (isSql(t))
        return {
          refId: String.fromCharCode(65 + i),
          datasource: { ...PG_DATASOURCE },
          editorMode: 'code',
          format: 'table',
          rawQuery: true,
          rawSql: t.sql,
        }
      const tj: { [k: string]: Json } = {
        refId: String.fromCharCode(65 + i),
        datasource: { ...DATASOURCE },
        expr: t.expr,
        range: !t.instant && p.kind !== 'table',
        instant: t.instant === true || p.kind === 'table',
      }
      if (t.legend !== undefined) tj.legendFormat = t.legend
      if (p.kind === 'table') tj.format = 'table'
      return tj
    }),
    fieldConfig: { defaults, overrides: [] },
    options,
  }
  if (p.description !== undefined) out.description = p.description
  if (p.kind === 'table') out.transformations = [{ id: 'organize', options: { excludeByName: { Time: true } } }]
  return out
}

/** The Grafana JSON model of `d`. */
export function render(d: Dashboard): Json {
  const panels: Json[] = []
  let id = 1
  let y = 0
  for (const row of d.rows) {
    panels.push({
      id: id++,
      type: 'row',
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: [],
    })
    y += 1
    let x = 0
    let rowH = 0
    for (const p of row.panels) {
      const w = p.w ?? SIZE[p.kind].w
      const h = p.h ?? SIZE[p.kind].h
      if (x + w > 24) {
        x = 0
        y += rowH
        rowH = 0
      }
      panels.push(panelJson(p, id++, x, y, w, h))
      x += w
      rowH = Math.max(rowH, h)
    }
    y += rowH
  }
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: [...d.tags],
    editable: false,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: d.from ?? 'now-1h', to: 'now' },
    refresh: d.refresh ?? '10s',
    timezone: 'browser',
    templating: { list: [] },
    annotations: { list: [] },
    links: [],
    panels,
  }
}

/** Every PromQL expression of a dashboard, with the panel it belongs to. */
export function expressions(d: Dashboard): Array<{ panel: string; expr: string; instant: boolean }> {
  return d.rows.flatMap((r) =>
    r.panels.flatMap((p) =>
      (p.targets as ReadonlyArray<Target | SqlTarget>).flatMap((t) =>
        isSql(t)
          ? []
          : [
              {
                panel: `${d.uid}/${p.title}`,
                expr: t.expr,
                instant: t.instant === true || p.kind === 'table',
              },
            ],
      ),
    ),
  )
}

/** Every SQL query of a dashboard (PostgreSQL panels), with the panel it belongs to. */
export function sqlQueries(d: Dashboard): Array<{ panel: string; sql: string }> {
  return d.rows.flatMap((r) =>
    r.panels.flatMap((p) =>
      (p.targets as ReadonlyArray<Target | SqlTarget>).flatMap((t) =>
        isSql(t) ? [{ panel: `${d.uid}/${p.title}`, sql: t.sql }] : [],
      ),
    ),
  )
}
