/**
 * Sensors (environment profile), in two tabs:
 * - **Now**: a MapLibre map of the sensors (registry location, else the reading's `loc`) coloured by state (open
 *   alert, reporting, silent), the table of live values from the feed with each sensor's late readings of the
 *   last 24 h (`GET /v1/rollups/late-readings`), the live alerts, and the picked sensor's window means.
 * - **Trend**: over a period (1 h, 6 h, 24 h, 7 d) the window means (`GET .../windows`, rolled up to a resolution
 *   that keeps each series under 100 points) of up to six picked sensors on one chart; the first picked sensor
 *   this period against the same period a day or a week before (the older series moved onto the newer one's
 *   time axis); the alert distribution of the period by type and severity and over time (`GET
 *   /v1/rollups/alerts`); late readings per sensor in the period.
 * Clicking a sensor in the table or on the map picks it (or unpicks it); the first picked is the one compared with
 * an earlier period.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import type * as MapLibreGl from 'maplibre-gl'
import type { GeoJSONSource, Map as MapLibreMap, StyleSpecification } from 'maplibre-gl'
import { ago, api, enc, follow, fmtTime, num, type Json } from './api.js'
import { frameBatcher } from './live.js'
import { Chart } from './chart.js'
import { SeverityChip } from './alerts.js'
import type { Ctx } from './main.js'

const PROFILE = 'environment'
const FIELDS = ['temperature', 'humidity', 'co2', 'battery'] as const
const WINDOW = 'tumbling_1m'
const SILENT_MS = 5 * 60_000
const MAX_PICKED = 6
const COLOURS = ['#38bdf8', '#f97316', '#a3e635', '#e879f9', '#facc15', '#f87171']
const H = 3_600_000
/** Period -> its length, the windows' roll-up resolution (null: the 1-minute windows as they are) and alert bucket. */
const PERIODS = {
  '1h': { ms: H, resolution: null, bucket: 5 * 60_000, label: 'hour' },
  '6h': { ms: 6 * H, resolution: 5 * 60_000, bucket: 30 * 60_000, label: '6 hours' },
  '24h': { ms: 24 * H, resolution: 15 * 60_000, bucket: H, label: '24 hours' },
  '7d': { ms: 7 * 24 * H, resolution: 2 * H, bucket: 6 * H, label: '7 days' },
} as const
type Period = keyof typeof PERIODS
const OFFSETS = {
  day: { ms: 24 * H, label: 'a day before' },
  week: { ms: 7 * 24 * H, label: 'a week before' },
} as const
type Offset = keyof typeof OFFSETS

interface Row {
  id: string
  type: string | null
  loc: { lat: number; lon: number } | null
  fields: Record<string, unknown>
  ts: number | null
  alerts: Map<string, { type: string; severity: string; start: number }>
}
interface Late {
  count: number
  maxBehindMs: number
}
interface Dist {
  total: number
  byType: { type: string; severity: string; count: number }[]
  byBucket: { start: string; count: number; info: number; warning: number; critical: number }[]
}

const stateOf = (r: Row): 'alert' | 'ok' | 'silent' =>
  r.alerts.size > 0 ? 'alert' : r.ts !== null && Date.now() - r.ts < SILENT_MS ? 'ok' : 'silent'

/** One sensor's window means of `field` over [from, to), oldest first: [bucket start s, mean][]. */
async function means(
  id: string,
  field: string,
  from: number,
  to: number,
  resolution: number | null,
): Promise<[number, number][]> {
  const out: [number, number][] = []
  let cursor: string | null = null
  for (let i = 0; i < 3; i++) {
    const page: { items: Json[]; nextCursor: string | null } = await api(
      `/v1/entities/sensor/${enc(id)}/windows?window=${WINDOW}&from=${from}&to=${to}&limit=100${resolution !== null ? `&resolution=${resolution}` : ''}${cursor !== null ? `&cursor=${enc(cursor)}` : ''}`,
    )
    for (const w of page.items) {
      const agg = (w.fields as Record<string, { mean?: number }>)[field]
      if (agg && typeof agg.mean === 'number') out.push([Date.parse(String(w.start)) / 1000, agg.mean])
    }
    cursor = page.nextCursor
    if (cursor === null) break
  }
  return out
}

/** Series of [x, y][] on one x axis (the union of their x), missing points null. */
function align(series: [number, number][][]): uPlot.AlignedData {
  const xs = [...new Set(series.flatMap((s) => s.map((p) => p[0])))].sort((a, b) => a - b)
  const at = new Map(xs.map((x, i) => [x, i]))
  return [
    xs,
    ...series.map((s) => {
      const ys: (number | null)[] = new Array<number | null>(xs.length).fill(null)
      for (const [x, y] of s) ys[at.get(x) as number] = y
      return ys
    }),
  ] as uPlot.AlignedData
}

function style(tileUrl: string | null): StyleSpecification {
  return {
    version: 8,
    sources: tileUrl === null ? {} : { tiles: { type: 'raster', tiles: [tileUrl], tileSize: 256 } },
    layers: [
      { id: 'bg', type: 'background', paint: { 'background-color': '#0d1526' } },
      ...(tileUrl === null
        ? []
        : [{ id: 'tiles', type: 'raster' as const, source: 'tiles', paint: { 'raster-opacity': 0.85 } }]),
    ],
  }
}

/** The sensors on a map (GeoJSON points on a blank style, or the tile server's raster); a click picks one. */
function SensorMap({
  rows,
  picked,
  onPick,
  tileUrl,
  version,
}: {
  rows: Row[]
  picked: string[]
  onPick: (id: string) => void
  tileUrl: string | null
  version: number
}) {
  const el = useRef<HTMLDivElement>(null)
  const map = useRef<MapLibreMap | null>(null)
  const fitted = useRef(false)
  const [ready, setReady] = useState(false)
  const pick = useRef(onPick)
  pick.current = onPick
  useEffect(() => {
    let gone = false
    let m: MapLibreMap | undefined
    void import('maplibre-gl').then(({ Map: MapLibre, NavigationControl }: typeof MapLibreGl) => {
      if (gone || !el.current) return
      m = new MapLibre({
        container: el.current,
        style: style(tileUrl),
        center: [9.19, 45.46],
        zoom: 9,
        attributionControl: false,
      })
      m.addControl(new NavigationControl({ showCompass: false }), 'top-right')
      m.on('load', () => {
        const mm = m as MapLibreMap
        mm.addSource('sensors', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } })
        mm.addLayer({
          id: 'sensor-halo',
          type: 'circle',
          source: 'sensors',
          filter: ['==', ['get', 'state'], 'alert'],
          paint: { 'circle-radius': 12, 'circle-color': '#ef4444', 'circle-opacity': 0.35 },
        })
        mm.addLayer({
          id: 'sensor',
          type: 'circle',
          source: 'sensors',
          paint: {
            'circle-radius': ['case', ['get', 'picked'], 8, 6],
            'circle-stroke-width': ['case', ['get', 'picked'], 3, 1.5],
            'circle-stroke-color': ['case', ['get', 'picked'], '#ffffff', '#0b1220'],
            'circle-color': ['match', ['get', 'state'], 'alert', '#ef4444', 'ok', '#22c55e', '#64748b'],
          },
        })
        mm.on('click', 'sensor', (e) => {
          const id = e.features?.[0]?.properties?.id
          if (typeof id === 'string') pick.current(id)
        })
        mm.on('mouseenter', 'sensor', () => {
          mm.getCanvas().style.cursor = 'pointer'
        })
        mm.on('mouseleave', 'sensor', () => {
          mm.getCanvas().style.cursor = ''
        })
        map.current = mm
        setReady(true)
      })
    })
    return () => {
      gone = true
      map.current = null
      m?.remove()
    }
  }, [])
  const placed = rows.filter((r) => r.loc !== null)
  useEffect(() => {
    const m = map.current
    if (!m || !ready) return
    void (m.getSource('sensors') as GeoJSONSource | undefined)?.setData({
      type: 'FeatureCollection',
      features: placed.map((r) => ({
        type: 'Feature',
        properties: { id: r.id, state: stateOf(r), picked: picked.includes(r.id) },
        geometry: { type: 'Point', coordinates: [r.loc!.lon, r.loc!.lat] },
      })),
    })
    if (!fitted.current && placed.length > 0) {
      fitted.current = true
      const lons = placed.map((r) => r.loc!.lon)
      const lats = placed.map((r) => r.loc!.lat)
      m.fitBounds(
        [
          [Math.min(...lons), Math.min(...lats)],
          [Math.max(...lons), Math.max(...lats)],
        ],
        { padding: 50, maxZoom: 13, duration: 0 },
      )
    }
  }, [ready, version, picked.join()])
  return (
    <div class="sensor-map-wrap">
      <div class="map sensor-map" ref={el} data-ready={ready ? 'yes' : 'no'} data-placed={placed.length} />
      <div class="map-legend small">
        <span class="lg ok" />
        reporting <span class="lg alert" />
        open alert <span class="lg stale" />
        silent &gt; 5 min · {placed.length} of {rows.length} sensors placed
      </div>
    </div>
  )
}

/** Alerts of the period by type (bars split by severity) and over time (a column per bucket). */
function AlertDistribution({ dist, bucketMs }: { dist: Dist | null; bucketMs: number }) {
  if (dist === null) return <div class="muted small">Loading the alert distribution…</div>
  const types = new Map<string, { info: number; warning: number; critical: number; total: number }>()
  for (const r of dist.byType) {
    const t = types.get(r.type) ?? { info: 0, warning: 0, critical: 0, total: 0 }
    if (r.severity === 'info' || r.severity === 'warning' || r.severity === 'critical') t[r.severity] += r.count
    t.total += r.count
    types.set(r.type, t)
  }
  const maxType = Math.max(1, ...[...types.values()].map((t) => t.total))
  const maxBucket = Math.max(1, ...dist.byBucket.map((b) => b.count))
  const seg = (n: number, of: number, sev: string) =>
    n > 0 ? <i class={`seg sev-${sev}`} style={{ width: `${(n / of) * 100}%` }} title={`${n} ${sev}`} /> : null
  return (
    <div data-alert-dist={dist.total}>
      <div class="muted small">
        {dist.total} {dist.total === 1 ? 'alert' : 'alerts'} started in the period
      </div>
      <table class="grid compact dist">
        <tbody>
          {[...types.entries()]
            .sort((a, b) => b[1].total - a[1].total)
            .map(([type, t]) => (
              <tr key={type} data-type={type}>
                <td>{type.replace(/_/g, ' ')}</td>
                <td class="dist-bar">
                  <div class="stack" style={{ width: `${(t.total / maxType) * 100}%` }}>
                    {seg(t.critical, t.total, 'critical')}
                    {seg(t.warning, t.total, 'warning')}
                    {seg(t.info, t.total, 'info')}
                  </div>
                </td>
                <td class="num">{t.total}</td>
              </tr>
            ))}
          {types.size === 0 && (
            <tr>
              <td colSpan={3} class="empty">
                No alert started in the period.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {dist.byBucket.length > 0 && (
        <>
          <div class="muted small">per {bucketMs >= H ? `${bucketMs / H} h` : `${bucketMs / 60_000} min`}</div>
          <div class="columns" data-buckets={dist.byBucket.length}>
            {dist.byBucket.map((b) => (
              <div
                key={b.start}
                class="col"
                title={`${fmtTime(b.start)}: ${b.count} (${b.critical} critical, ${b.warning} warning, ${b.info} info)`}
              >
                <div class="stack v" style={{ height: `${(b.count / maxBucket) * 100}%` }}>
                  {b.critical > 0 && <i class="seg sev-critical" style={{ flex: b.critical }} />}
                  {b.warning > 0 && <i class="seg sev-warning" style={{ flex: b.warning }} />}
                  {b.info > 0 && <i class="seg sev-info" style={{ flex: b.info }} />}
                </div>
              </div>
            ))}
          </div>
          <div class="muted small cols-axis">
            <span>{fmtTime(dist.byBucket[0]?.start)}</span>
            {dist.byBucket.length > 1 && <span>{fmtTime(dist.byBucket.at(-1)?.start)}</span>}
          </div>
        </>
      )}
    </div>
  )
}

export function SensorsView({ ctx }: { ctx: Ctx }) {
  const rows = useRef(new Map<string, Row>())
  const [version, setVersion] = useState(0)
  const [tab, setTab] = useState<'now' | 'trend'>(() => (/[?&]tab=trend/.test(location.hash) ? 'trend' : 'now'))
  const [picked, setPicked] = useState<string[]>([])
  const [field, setField] = useState<string>('temperature')
  const [period, setPeriod] = useState<Period>('1h')
  const [offset, setOffset] = useState<Offset>('day')
  const [late24, setLate24] = useState<Map<string, Late>>(new Map())
  const [series, setSeries] = useState<{ key: string; data: uPlot.AlignedData; ids: string[] } | null>(null)
  const [periods, setPeriods] = useState<{ key: string; data: uPlot.AlignedData; points: [number, number] } | null>(
    null,
  )
  const [dist, setDist] = useState<Dist | null>(null)
  const [latePeriod, setLatePeriod] = useState<Map<string, Late> | null>(null)
  const [recent, setRecent] = useState<[number, number][] | null>(null)
  const [error, setError] = useState<string | null>(null)

  const pick = (id: string): void =>
    setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : [...p, id].slice(-MAX_PICKED)))

  // Live: readings and outputs of the environment sensors, applied once per frame.
  useEffect(() => {
    const store = rows.current
    const row = (id: string): Row => {
      let r = store.get(id)
      if (!r) {
        r = { id, type: null, loc: null, fields: {}, ts: null, alerts: new Map() }
        store.set(id, r)
      }
      return r
    }
    const batch = frameBatcher<Json | null>((events) => {
      for (const e of events) {
        if (e === null) continue
        const d = e.data as Json
        const id = String(d.entity)
        if (e.event === 'reading') {
          if (d.profile !== PROFILE && !(d.profile === undefined && store.has(id))) continue
          const r = row(id)
          Object.assign(r.fields, d.fields as Json)
          r.ts = Number(d.ts)
          const loc = d.loc as { lat?: unknown; lon?: unknown } | undefined
          if (r.loc === null && typeof loc?.lat === 'number' && typeof loc.lon === 'number')
            r.loc = { lat: loc.lat, lon: loc.lon }
        } else if (d.profile === PROFILE && e.event === 'alert') {
          const b = (d.body ?? {}) as Json
          const r = row(id)
          if (b.state === 'close') r.alerts.delete(String(b.alertId))
          else
            r.alerts.set(String(b.alertId), {
              type: String(b.type),
              severity: String(b.severity),
              start: Number(b.start),
            })
        }
      }
      setVersion((n) => n + 1)
    })
    const ctl = new AbortController()
    follow('type=reading&kind=sensor', (e) => batch.push(e as unknown as Json), ctl.signal)
    const off = ctx.hub.on((e) => {
      if (e.data.kind === 'sensor' && e.event === 'alert') batch.push(e as unknown as Json)
    })
    void (async () => {
      let cursor: string | null = null
      for (let i = 0; i < 20; i++) {
        const page: { items: Json[]; nextCursor: string | null } | null = await api<{
          items: Json[]
          nextCursor: string | null
        }>(`/v1/sensors?profile=${PROFILE}&limit=100${cursor !== null ? `&cursor=${enc(cursor)}` : ''}`).catch(
          () => null,
        )
        if (!page) break
        for (const s of page.items) {
          const r = row(String(s.id))
          r.type = (s.type as string | null) ?? null
          const l = s.location as { lat: number; lon: number } | null
          if (l) r.loc = { lat: l.lat, lon: l.lon }
        }
        cursor = page.nextCursor
        if (cursor === null) break
      }
      let ac: string | null = null
      for (let i = 0; i < 10; i++) {
        const page: { items: Json[]; nextCursor: string | null } | null = await api<{
          items: Json[]
          nextCursor: string | null
        }>(`/v1/alerts?state=open&kind=sensor&limit=100${ac !== null ? `&cursor=${enc(ac)}` : ''}`).catch(() => null)
        if (!page) break
        for (const a of page.items)
          if (a.profile === PROFILE)
            row(String(a.entity)).alerts.set(String(a.alertId), {
              type: String(a.type),
              severity: String(a.severity),
              start: Date.parse(String(a.startedAt)),
            })
        ac = page.nextCursor
        if (ac === null) break
      }
      batch.push(null)
    })()
    return () => {
      ctl.abort()
      off()
      batch.stop()
    }
  }, [])

  // Late readings of the last 24 h per sensor, re-read every 30 s.
  useEffect(() => {
    const read = (): void => {
      void api<{ byEntity: { entity: string; count: number; maxBehindMs: number }[] }>(
        `/v1/rollups/late-readings?kind=sensor&profile=${PROFILE}&from=${Date.now() - 24 * H}`,
      ).then(
        (r) => setLate24(new Map(r.byEntity.map((e) => [e.entity, { count: e.count, maxBehindMs: e.maxBehindMs }]))),
        () => undefined,
      )
    }
    read()
    const timer = setInterval(read, 30_000)
    return () => clearInterval(timer)
  }, [])

  // Now: the first picked sensor's window means of the last hour.
  const primary = picked[0] ?? null
  useEffect(() => {
    setRecent(null)
    if (primary === null || tab !== 'now') return
    void means(primary, field, Date.now() - H, Date.now() + 60_000, null).then(setRecent, () => setRecent([]))
  }, [primary, field, tab, version > 0 && Math.floor(Date.now() / 60_000)])

  // Trend: the picked sensors' means, the first one against an earlier period, the alert distribution, late readings.
  useEffect(() => {
    if (tab !== 'trend') return
    const p = PERIODS[period]
    const to = Date.now()
    const from = to - p.ms
    let gone = false
    setError(null)
    setDist(null)
    setLatePeriod(null)
    const ids = picked.length > 0 ? picked : [...rows.current.keys()].sort().slice(0, 3)
    const key = `${ids.join()}|${field}|${period}`
    void Promise.all(ids.map((id) => means(id, field, from, to, p.resolution))).then(
      (all) => {
        if (!gone) setSeries({ key, data: align(all), ids })
      },
      (err: unknown) => {
        if (!gone) setError(String(err))
      },
    )
    const first = ids[0]
    if (first !== undefined) {
      const back = OFFSETS[offset].ms
      void Promise.all([
        means(first, field, from, to, p.resolution),
        means(first, field, from - back, to - back, p.resolution),
      ]).then(
        ([now, before]) => {
          if (!gone)
            setPeriods({
              key: `${first}|${field}|${period}|${offset}`,
              data: align([now, before.map(([x, y]) => [x + back / 1000, y])]),
              points: [now.length, before.length],
            })
        },
        (err: unknown) => {
          if (!gone) setError(String(err))
        },
      )
    }
    void api<Dist>(`/v1/rollups/alerts?kind=sensor&profile=${PROFILE}&from=${from}&to=${to}&bucket=${p.bucket}`).then(
      (d) => {
        if (!gone) setDist(d)
      },
      (err: unknown) => {
        if (!gone) setError(String(err))
      },
    )
    void api<{ byEntity: { entity: string; count: number; maxBehindMs: number }[] }>(
      `/v1/rollups/late-readings?kind=sensor&profile=${PROFILE}&from=${from}&to=${to}`,
    ).then(
      (r) => {
        if (!gone)
          setLatePeriod(new Map(r.byEntity.map((e) => [e.entity, { count: e.count, maxBehindMs: e.maxBehindMs }])))
      },
      () => undefined,
    )
    return () => {
      gone = true
    }
  }, [tab, picked.join(), field, period, offset, tab === 'trend' && rows.current.size > 0])

  const list = [...rows.current.values()].sort((a, b) => b.alerts.size - a.alerts.size || a.id.localeCompare(b.id))
  const open = list
    .flatMap((r) => [...r.alerts.entries()].map(([alertId, a]) => ({ alertId, entity: r.id, ...a })))
    .sort((a, b) => b.start - a.start)
  const lateTotal = [...late24.values()].reduce((n, l) => n + l.count, 0)
  const shown = FIELDS.filter((f) => list.some((r) => typeof r.fields[f] === 'number'))
  const p = PERIODS[period]
  const sel = primary !== null ? rows.current.get(primary) : undefined
  const periodLabel = `last ${p.label}`
  const setTabTo = (t: 'now' | 'trend'): void => {
    setTab(t)
    history.replaceState(null, '', `#/sensors${t === 'trend' ? '?tab=trend' : ''}`)
  }

  const table = (
    <table class="grid compact">
      <thead>
        <tr>
          <th />
          <th>Sensor</th>
          <th>Type</th>
          {shown.map((f) => (
            <th key={f} class="num">
              {f}
            </th>
          ))}
          <th>Last reading</th>
          <th class="num" title="late readings (behind the watermark) in the last 24 h">
            Late 24 h
          </th>
          <th>Open alerts</th>
        </tr>
      </thead>
      <tbody>
        {list.slice(0, 200).map((r) => {
          const k = picked.indexOf(r.id)
          const late = late24.get(r.id)
          return (
            <tr key={r.id} data-entity={r.id} class={k >= 0 ? 'sel' : ''} onClick={() => pick(r.id)}>
              <td>
                {k >= 0 ? (
                  <span class="swatch" style={{ background: COLOURS[k] }} />
                ) : (
                  <span class={`lg ${stateOf(r) === 'alert' ? 'alert' : stateOf(r) === 'ok' ? 'ok' : 'stale'}`} />
                )}
              </td>
              <td class="mono">{r.id}</td>
              <td>{r.type ?? '—'}</td>
              {shown.map((f) => (
                <td key={f} class="num" data-field={f}>
                  {num(r.fields[f], 1)}
                </td>
              ))}
              <td>{r.ts !== null ? ago(r.ts) : '—'}</td>
              <td
                class="num"
                data-late={late?.count ?? 0}
                title={late ? `up to ${Math.round(late.maxBehindMs / 1000)} s behind the watermark` : ''}
              >
                {late?.count ?? 0}
              </td>
              <td>
                {[...r.alerts.values()].map((a, i) => (
                  <SeverityChip key={i} severity={a.severity} />
                ))}
                {r.alerts.size > 0 && <span class="small"> {[...r.alerts.values()][0]?.type.replace(/_/g, ' ')}</span>}
              </td>
            </tr>
          )
        })}
        {list.length === 0 && (
          <tr>
            <td colSpan={9} class="empty">
              No environment sensor registered or reporting yet.
            </td>
          </tr>
        )}
      </tbody>
    </table>
  )
  const fieldPick = (
    <div class="field-pick">
      {FIELDS.map((f) => (
        <button key={f} class={f === field ? 'on' : 'ghost'} data-field-pick={f} onClick={() => setField(f)}>
          {f}
        </button>
      ))}
    </div>
  )

  return (
    <div class="page with-detail">
      <section class="panel grow">
        <div class="panel-head">
          <h2>Sensors</h2>
          <div class="tabs">
            <button class={tab === 'now' ? 'on' : 'ghost'} data-tab="now" onClick={() => setTabTo('now')}>
              Now
            </button>
            <button class={tab === 'trend' ? 'on' : 'ghost'} data-tab="trend" onClick={() => setTabTo('trend')}>
              Trend
            </button>
          </div>
          <span class="muted">
            <b data-count="entities">{list.length}</b> sensors · {list.filter((r) => stateOf(r) === 'ok').length}{' '}
            reporting · {list.filter((r) => stateOf(r) === 'silent').length} silent · {open.length} open alerts ·{' '}
            <span data-late-total={lateTotal}>{lateTotal}</span> late readings in 24 h
          </span>
        </div>
        {tab === 'now' ? (
          <>
            <SensorMap rows={list} picked={picked} onPick={pick} tileUrl={ctx.settings.tileUrl} version={version} />
            {table}
          </>
        ) : (
          <>
            <div class="trend-controls">
              {fieldPick}
              <div class="field-pick">
                {(Object.keys(PERIODS) as Period[]).map((k) => (
                  <button key={k} class={k === period ? 'on' : 'ghost'} data-period={k} onClick={() => setPeriod(k)}>
                    {k}
                  </button>
                ))}
              </div>
              <label class="small muted">
                compare with{' '}
                <select
                  value={offset}
                  data-offset
                  onChange={(e) => setOffset((e.target as HTMLSelectElement).value as Offset)}
                >
                  {(Object.keys(OFFSETS) as Offset[]).map((k) => (
                    <option key={k} value={k}>
                      {OFFSETS[k].label}
                    </option>
                  ))}
                </select>
              </label>
            </div>
            {error !== null && <div class="error">{error}</div>}
            <h4 class="chart-title">
              {field}: window means of {series?.ids.length ?? 0} sensors, {periodLabel}
              {p.resolution !== null
                ? ` (rolled up to ${p.resolution >= H ? `${p.resolution / H} h` : `${p.resolution / 60_000} min`})`
                : ' (1-minute windows)'}
              {picked.length === 0 ? '; pick sensors below to compare them' : ''}
            </h4>
            {series !== null && series.data[0].length > 0 ? (
              <Chart
                data={series.data}
                series={series.ids.map((id, i) => [id, COLOURS[i % COLOURS.length] as string])}
                solid
                name="compare"
                height={260}
              />
            ) : (
              <div class="empty" data-chart="compare" data-points="0">
                {series === null ? 'Loading…' : `No ${field} window in the ${periodLabel}.`}
              </div>
            )}
            <h4 class="chart-title">
              {series?.ids[0] ?? '—'}: {field}, {periodLabel} against the same {p.label} {OFFSETS[offset].label}
            </h4>
            {periods !== null && periods.data[0].length > 0 ? (
              <Chart
                data={periods.data}
                series={[
                  [`${periodLabel}`, COLOURS[0] as string],
                  [`${OFFSETS[offset].label} (${periods.points[1]} windows)`, '#94a3b8'],
                ]}
                name="periods"
                height={220}
              />
            ) : (
              <div class="empty" data-chart="periods" data-points="0">
                {periods === null ? 'Loading…' : 'No window in either period.'}
              </div>
            )}
            {table}
          </>
        )}
      </section>
      <aside class="detail">
        {tab === 'now' ? (
          <>
            <h4>Live alerts</h4>
            <ul class="plain live-alerts">
              {open.slice(0, 12).map((a) => (
                <li key={a.alertId} data-live-alert={a.alertId}>
                  <SeverityChip severity={a.severity} /> <b class="mono">{a.entity}</b> {a.type.replace(/_/g, ' ')}{' '}
                  <span class="muted small">since {fmtTime(a.start)}</span>
                </li>
              ))}
              {open.length === 0 && <li class="muted">No open alert.</li>}
            </ul>
            {sel ? (
              <>
                <h3 class="mono">{sel.id}</h3>
                {fieldPick}
                {recent !== null && recent.length > 0 ? (
                  <>
                    <div class="muted small">{field}: window means (tumbling 1 min), last hour</div>
                    <Chart data={align([recent])} series={[[field, COLOURS[0] as string]]} name="series" />
                  </>
                ) : (
                  <div class="empty">{recent === null ? 'Loading…' : `No ${field} window in the last hour.`}</div>
                )}
                <dl class="kv">
                  {Object.entries(sel.fields)
                    .slice(0, 12)
                    .map(([k, v]) => (
                      <>
                        <dt>{k}</dt>
                        <dd>{typeof v === 'number' ? num(v, 2) : String(v)}</dd>
                      </>
                    ))}
                </dl>
              </>
            ) : (
              <div class="empty-detail">Pick a sensor on the map or in the table to see its series.</div>
            )}
          </>
        ) : (
          <>
            <h4>Alert distribution · {periodLabel}</h4>
            <AlertDistribution dist={dist} bucketMs={p.bucket} />
            <h4>Late readings · {periodLabel}</h4>
            {latePeriod === null ? (
              <div class="muted small">Loading…</div>
            ) : (
              <table class="grid compact" data-late-period={[...latePeriod.values()].reduce((n, l) => n + l.count, 0)}>
                <thead>
                  <tr>
                    <th>Sensor</th>
                    <th class="num">Late</th>
                    <th class="num">Most behind</th>
                  </tr>
                </thead>
                <tbody>
                  {[...latePeriod.entries()].slice(0, 15).map(([id, l]) => (
                    <tr key={id} onClick={() => pick(id)}>
                      <td class="mono">{id}</td>
                      <td class="num">{l.count}</td>
                      <td class="num">{num(l.maxBehindMs / 1000, 0)} s</td>
                    </tr>
                  ))}
                  {latePeriod.size === 0 && (
                    <tr>
                      <td colSpan={3} class="empty">
                        No late reading in the period.
                      </td>
                    </tr>
                  )}
                </tbody>
              </table>
            )}
          </>
        )}
      </aside>
    </div>
  )
}
