/**
 * Plant (process) and Assets (asset): the profile's sensors (registry, plus any the feed shows) with their live
 * values (`reading` events), open alerts and latest score, the plant's stages with their alerts, and one sensor's
 * series: window means with their min-max band from `GET .../windows` where the profile has windows, otherwise the
 * values received since the view opened. (Sensors, the environment profile, have their own view: sensors.tsx.) A plant sensor's
 * `value` series carries its expected band (band.ts); an asset shows its stored risk trend (risk.tsx).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import { api, enc, fmtTime, num, type Json, follow } from './api.js'
import { frameBatcher } from './live.js'
import { Chart, type BandSpec } from './chart.js'
import { BAND_K, expectedBand, processModel, type ProcessModel } from './band.js'
import { SeverityChip } from './alerts.js'
import { RiskTrend } from './risk.js'
import type { Ctx } from './main.js'

interface Row {
  id: string
  type: string | null
  stage: string | null
  fields: Record<string, unknown>
  ts: number | null
  alerts: Map<string, { type: string; severity: string }>
  score: { name: string; value: number } | null
  window: string | null
}
const MAIN_FIELDS: Record<string, string[]> = {
  environment: ['temperature', 'humidity', 'co2', 'battery'],
  process: ['value', 'flow', 'temp'],
  asset: ['vibration', 'temperature', 'pressure', 'flow'],
}
const SCORE_NAME: Record<string, string> = { asset: 'failure_risk', process: 'compliance', environment: '' }
const KEEP = 600

export function EntitiesView({ ctx, profile, title }: { ctx: Ctx; profile: string; title: string }) {
  const rows = useRef(new Map<string, Row>())
  const series = useRef(new Map<string, { t: number[]; v: Record<string, number[]> }>())
  const [, setFrame] = useState(0)
  const [selected, setSelected] = useState<string | null>(null)
  const [field, setField] = useState<string | null>(null)
  const [windows, setWindows] = useState<Json[] | null>(null)
  const [kpis, setKpis] = useState<Record<string, number>>({})
  const [model, setModel] = useState<ProcessModel | null>(null)

  useEffect(() => {
    const store = rows.current
    const row = (id: string): Row => {
      let r = store.get(id)
      if (!r) {
        r = { id, type: null, stage: null, fields: {}, ts: null, alerts: new Map(), score: null, window: null }
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
          if (d.profile !== profile && !(d.profile === undefined && store.has(id))) continue
          const r = row(id)
          Object.assign(r.fields, d.fields as Json)
          r.ts = Number(d.ts)
          let s = series.current.get(id)
          if (!s) {
            s = { t: [], v: {} }
            series.current.set(id, s)
          }
          s.t.push(r.ts / 1000)
          for (const [k, v] of Object.entries(d.fields as Json))
            if (typeof v === 'number') (s.v[k] ??= new Array(s.t.length - 1).fill(null)).push(v)
          for (const arr of Object.values(s.v)) while (arr.length < s.t.length) arr.push(null as unknown as number)
          if (s.t.length > KEEP) {
            s.t.splice(0, s.t.length - KEEP)
            for (const arr of Object.values(s.v)) arr.splice(0, arr.length - KEEP)
          }
        } else if (d.profile === profile) {
          const r = row(id)
          const b = (d.body ?? {}) as Json
          if (e.event === 'alert') {
            if (b.state === 'close') r.alerts.delete(String(b.alertId))
            else r.alerts.set(String(b.alertId), { type: String(b.type), severity: String(b.severity) })
          } else if (e.event === 'score') {
            if (SCORE_NAME[profile] === '' || b.name === SCORE_NAME[profile])
              r.score = { name: String(b.name), value: Number(b.value) }
            if (profile === 'process' && typeof b.name === 'string')
              setKpis((k) => ({ ...k, [String(b.name)]: Number(b.value) }))
          } else if (e.event === 'window') r.window = String(b.window)
        }
      }
      setFrame((n) => n + 1)
    })
    const ctl = new AbortController()
    follow('type=reading&kind=sensor', (e) => batch.push(e as unknown as Json), ctl.signal)
    const off = ctx.hub.on((e) => {
      if (e.data.kind === 'sensor') batch.push(e as unknown as Json)
    })
    void (async () => {
      let cursor: string | null = null
      for (let i = 0; i < 20; i++) {
        const page: { items: Json[]; nextCursor: string | null } | null = await api<{
          items: Json[]
          nextCursor: string | null
        }>(`/v1/sensors?profile=${profile}&limit=100${cursor !== null ? `&cursor=${enc(cursor)}` : ''}`).catch(
          () => null,
        )
        if (!page) break
        for (const s of page.items) {
          const r = row(String(s.id))
          r.type = (s.type as string | null) ?? null
          r.stage = (s.processStage as string | null) ?? null
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
          if (a.profile === profile)
            row(String(a.entity)).alerts.set(String(a.alertId), { type: String(a.type), severity: String(a.severity) })
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
  }, [profile])

  const list = [...rows.current.values()].sort((a, b) => b.alerts.size - a.alerts.size || a.id.localeCompare(b.id))
  const sel = selected !== null ? rows.current.get(selected) : undefined
  const fields = useMemo(() => {
    const seen = new Set<string>()
    for (const r of list) for (const [k, v] of Object.entries(r.fields)) if (typeof v === 'number') seen.add(k)
    const main = (MAIN_FIELDS[profile] ?? []).filter((f) => seen.has(f))
    return main.length > 0 ? main : [...seen].slice(0, 4)
  }, [list.length, list.map((r) => Object.keys(r.fields).length).join()])
  const chartField =
    field ??
    (sel
      ? (Object.keys(sel.fields).find(
          (k) => typeof sel.fields[k] === 'number' && (MAIN_FIELDS[profile] ?? []).includes(k),
        ) ??
        Object.keys(sel.fields).find((k) => typeof sel.fields[k] === 'number') ??
        null)
      : null)

  // Window means of the selected sensor (profiles with windows), refreshed when it closes a new window.
  useEffect(() => {
    setWindows(null)
    if (selected === null) return
    const w = rows.current.get(selected)?.window ?? (profile === 'environment' ? 'tumbling_1m' : null)
    if (w === null) return
    void api<{ items: Json[] }>(
      `/v1/entities/sensor/${enc(selected)}/windows?window=${enc(w)}&from=${Date.now() - 6 * 3600_000}&limit=100`,
    ).then(
      (r) => setWindows(r.items),
      () => setWindows([]),
    )
  }, [selected, sel?.window])

  // The selected plant sensor's covariate model (live state), re-read every 5 s for the expected band.
  useEffect(() => {
    setModel(null)
    if (selected === null || profile !== 'process') return
    const read = (): void => {
      void api(`/v1/entities/sensor/${enc(selected)}/state`).then(
        (r) => setModel(processModel(r)),
        () => setModel(null),
      )
    }
    read()
    const timer = setInterval(read, 5_000)
    return () => clearInterval(timer)
  }, [selected])

  const stages = new Map<string, { sensors: number; alerts: number }>()
  const stageOf = (r: Row): string => r.stage ?? (typeof r.fields.stage === 'string' ? r.fields.stage : '—')
  if (profile === 'process')
    for (const r of list) {
      const st = stageOf(r)
      const s = stages.get(st) ?? { sensors: 0, alerts: 0 }
      s.sensors++
      s.alerts += r.alerts.size
      stages.set(st, s)
    }

  let data: uPlot.AlignedData | null = null
  let label = ''
  let chartSeries: [string, string][] = [[chartField ?? '', '#38bdf8']]
  let band: BandSpec | undefined
  if (sel && chartField !== null) {
    if (windows !== null && windows.length > 0) {
      const pts = windows.filter((w) => (w.fields as Json)[chartField] !== undefined)
      const agg = (w: Json): Json => (w.fields as Json)[chartField] as Json
      data = [
        pts.map((w) => Date.parse(String(w.start)) / 1000),
        pts.map((w) => Number(agg(w).mean)),
        pts.map((w) => Number(agg(w).min)),
        pts.map((w) => Number(agg(w).max)),
      ]
      label = `${chartField}: window means (${String(windows[0]?.window ?? '')}) with min/max`
    } else {
      const s = series.current.get(sel.id)
      if (s && s.v[chartField]) {
        data = [s.t.slice(), s.v[chartField].slice()]
        label = `${chartField}: live values since this view opened`
      }
      if (s && data !== null && model !== null && chartField === 'value') {
        const b = expectedBand(model, s.v.flow, s.v.temp, s.t.length)
        data = [...data, b.exp, b.hi, b.lo]
        chartSeries = [
          [chartField, '#38bdf8'],
          ['expected (current model)', '#a3e635'],
          [`+${BAND_K}σ`, '#4d7c0f'],
          [`-${BAND_K}σ`, '#4d7c0f'],
        ]
        band = { hi: 2, lo: 3, fill: 'rgba(163, 230, 53, 0.15)' }
        label += `; expected ± ${BAND_K}σ (band from the current model, σ ${num(model.sigma, 3)}${model.warm ? '' : `; model warming up, ${model.readings} readings learned`})`
      }
    }
    if (data !== null && data.length === 4 && band === undefined)
      chartSeries = [
        [chartField, '#38bdf8'],
        ['min', '#64748b'],
        ['max', '#64748b'],
      ]
  }
  const open = list.reduce((n, r) => n + r.alerts.size, 0)
  return (
    <div class="page with-detail">
      <section class="panel grow">
        <div class="panel-head">
          <h2>{title}</h2>
          <span class="muted">
            <b data-count="entities">{list.length}</b> sensors · {list.filter((r) => r.ts !== null).length} reporting ·{' '}
            {open} open alerts
          </span>
        </div>
        {profile === 'process' && (
          <div class="kpis">
            <div class="kpi">
              <span>Treatment efficiency</span>
              <b>
                {num(kpis.treatment_efficiency, 1)}
                {kpis.treatment_efficiency !== undefined ? ' %' : ''}
              </b>
            </div>
            <div class="kpi">
              <span>Compliance</span>
              <b>
                {num(kpis.compliance, 1)}
                {kpis.compliance !== undefined ? ' %' : ''}
              </b>
            </div>
            {[...stages.entries()].map(([s, v]) => (
              <div class={`kpi stage ${v.alerts > 0 ? 'bad' : ''}`} key={s}>
                <span>{s.replace(/_/g, ' ')}</span>
                <b>{v.sensors}</b>
                <small>{v.alerts} alerts</small>
              </div>
            ))}
          </div>
        )}
        <table class="grid">
          <thead>
            <tr>
              <th>Sensor</th>
              {profile === 'process' && <th>Stage</th>}
              <th>Type</th>
              {fields.map((f) => (
                <th key={f} class="num">
                  {f}
                </th>
              ))}
              {profile !== 'environment' && <th class="num">{profile === 'asset' ? 'Risk' : 'Score'}</th>}
              <th>Last reading</th>
              <th>Open alerts</th>
            </tr>
          </thead>
          <tbody>
            {list.slice(0, 200).map((r) => (
              <tr
                key={r.id}
                data-entity={r.id}
                class={selected === r.id ? 'sel' : ''}
                onClick={() => {
                  setSelected(r.id)
                  setField(null)
                }}
              >
                <td class="mono">{r.id}</td>
                {profile === 'process' && <td>{stageOf(r)}</td>}
                <td>{r.type ?? (typeof r.fields.type === 'string' ? r.fields.type : '—')}</td>
                {fields.map((f) => (
                  <td key={f} class="num" data-field={f}>
                    {num(r.fields[f], 1)}
                  </td>
                ))}
                {profile !== 'environment' && <td class="num">{r.score ? num(r.score.value, 2) : '—'}</td>}
                <td>{r.ts !== null ? fmtTime(r.ts) : '—'}</td>
                <td>
                  {[...r.alerts.values()].map((a, i) => (
                    <SeverityChip key={i} severity={a.severity} />
                  ))}
                  {r.alerts.size > 0 && (
                    <span class="small"> {[...r.alerts.values()][0]?.type.replace(/_/g, ' ')}</span>
                  )}
                </td>
              </tr>
            ))}
            {list.length === 0 && (
              <tr>
                <td colSpan={9} class="empty">
                  No {title.toLowerCase()} sensor registered or reporting yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
      <aside class="detail">
        {sel ? (
          <>
            <h3 class="mono">{sel.id}</h3>
            <div class="field-pick">
              {Object.keys(sel.fields)
                .filter((k) => typeof sel.fields[k] === 'number')
                .map((k) => (
                  <button key={k} class={k === chartField ? 'on' : 'ghost'} onClick={() => setField(k)}>
                    {k}
                  </button>
                ))}
            </div>
            {data !== null ? (
              <>
                <div class="muted small">{label}</div>
                <Chart data={data} series={chartSeries} band={band} name={band ? 'band' : 'series'} />
              </>
            ) : (
              <div class="empty">Waiting for values…</div>
            )}
            {profile === 'asset' && (
              <>
                <h4>Risk trend</h4>
                <RiskTrend id={sel.id} />
              </>
            )}
            <dl class="kv">
              {Object.entries(sel.fields)
                .slice(0, 16)
                .map(([k, v]) => (
                  <>
                    <dt>{k}</dt>
                    <dd>{typeof v === 'number' ? num(v, 2) : String(v)}</dd>
                  </>
                ))}
            </dl>
          </>
        ) : (
          <div class="empty-detail">Select a sensor to see its series.</div>
        )}
      </aside>
    </div>
  )
}
