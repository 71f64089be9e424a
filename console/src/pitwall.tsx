/**
 * The pit wall: every race car live. Instant values come from the feed's `reading` events (the gateway
 * coalesces them under backpressure), scores, recommendations, laps and alerts from its outputs. Events are
 * applied to a plain store as they arrive and the cards re-render once per animation frame, each card only
 * when its car changed, so 20 cars at 20 Hz cost at most one render per frame. What the browser does with a
 * render costs more than the render (the profile in the browser test: layout and paint, not script), so each card
 * is a fixed-size, contained box that is not rendered while out of view (style.css `.car`), and the bars move by
 * transform, which changes no layout.
 */
import { Component } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, enc, follow, fmtTime, num, type Json, type LiveEvent } from './api.js'
import { frameBatcher } from './live.js'
import type { Ctx } from './main.js'

/** The race profile's defaults (DOMAIN.md): normal ranges, alert thresholds, the pit-now level. */
const BRAKE = { low: 200, high: 900, alert: 950 }
const TYRE = { low: 80, high: 120, alert: 130 }
const PIT_NOW_ABOVE = 70
const CORNERS = ['fl', 'fr', 'rl', 'rr'] as const
const FACTORS = [
  ['tyre_wear', 'Tyre wear', 40],
  ['speed_loss', 'Speed loss', 30],
  ['brake_degradation', 'Brakes', 20],
  ['anomaly_penalty', 'Anomalies', 10],
] as const

interface OpenAlert {
  alertId: string
  type: string
  severity: string
  start: number
}
interface Car {
  id: string
  v: number
  fields: Record<string, unknown>
  ts: number | null
  score: { value: number; factors: Record<string, number> } | null
  pitNow: { at: number; reason: string } | null
  alerts: Map<string, OpenAlert>
  lastLapMs: number | null
  bestLapMs: number | null
}

const newCar = (id: string): Car => ({
  id,
  v: 0,
  fields: {},
  ts: null,
  score: null,
  pitNow: null,
  alerts: new Map(),
  lastLapMs: null,
  bestLapMs: null,
})
const lapTime = (ms: number | null): string => {
  if (ms === null || !Number.isFinite(ms)) return '—'
  const m = Math.floor(ms / 60_000)
  return `${m}:${((ms % 60_000) / 1000).toFixed(3).padStart(6, '0')}`
}
/** A bar's filled fraction, 0..1 (drawn with scaleX: a transform changes no layout, a width would relayout the card). */
const fill = (x: number): string => Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0)).toFixed(3)
const band = (v: unknown, t: { low: number; high: number; alert: number }): string =>
  typeof v !== 'number' ? 'na' : v > t.alert ? 'alert' : v > t.high ? 'hot' : v < t.low ? 'cold' : 'ok'

function Corner({ label, brake, tyre }: { label: string; brake: unknown; tyre: unknown }) {
  return (
    <div class="corner">
      <span class="corner-l">{label.toUpperCase()}</span>
      <span class={`temp b-${band(brake, BRAKE)}`} title="brake °C (normal 200–900, alert > 950)">
        {num(brake)}°
      </span>
      <span class={`temp t-${band(tyre, TYRE)}`} title="tyre °C (normal 80–120, alert > 130)">
        {num(tyre)}°
      </span>
    </div>
  )
}

/** The score block: re-rendered only when a new score arrives (a few times a lap), not with every reading. */
class Score extends Component<{ score: Car['score'] }> {
  override shouldComponentUpdate(next: { score: Car['score'] }): boolean {
    return next.score !== this.props.score
  }
  override render() {
    const sc = this.props.score
    const score = sc?.value ?? null
    return (
      <div class="score">
        <div class={`score-v ${score !== null && score > PIT_NOW_ABOVE ? 'high' : ''}`} data-field="score">
          {num(score)}
          <small>pit score</small>
        </div>
        <div class="factors">
          {FACTORS.map(([k, label, w]) => {
            const v = sc?.factors[k] ?? 0
            return (
              <div class="factor" key={k} title={`${label}: factor ${num(v, 2)} × ${w} %`}>
                <span>{label}</span>
                <div class="bar thin">
                  <i style={{ transform: `scaleX(${fill(v)})` }} />
                </div>
                <b>{num(v * w, 0)}</b>
              </div>
            )
          })}
        </div>
      </div>
    )
  }
}

class CarAlerts extends Component<{ alerts: OpenAlert[]; n: number; key2: string }> {
  override shouldComponentUpdate(next: { key2: string }): boolean {
    return next.key2 !== this.props.key2
  }
  override render() {
    const { alerts } = this.props
    return (
      <div class="car-alerts">
        {alerts.length === 0 ? (
          <span class="muted small">no open alerts</span>
        ) : (
          alerts.map((a) => (
            <span key={a.alertId} class={`chip sev-${a.severity}`}>
              {a.type.replace(/_/g, ' ')}
            </span>
          ))
        )}
      </div>
    )
  }
}

class CarCard extends Component<{
  car: Car
  v: number
  pos: number
  selected: boolean
  onSelect: (id: string) => void
}> {
  override shouldComponentUpdate(next: { v: number; pos: number; selected: boolean }): boolean {
    return next.v !== this.props.v || next.pos !== this.props.pos || next.selected !== this.props.selected
  }
  override render() {
    const { car, pos, selected, onSelect } = this.props
    const f = car.fields
    const score = car.score?.value ?? null
    const pitNow = car.pitNow !== null && score !== null && score > PIT_NOW_ABOVE
    const alerts = [...car.alerts.values()]
    return (
      <article
        class={`car ${pitNow ? 'pit-now' : ''} ${alerts.some((a) => a.severity === 'critical') ? 'critical' : ''} ${selected ? 'sel' : ''}`}
        data-car={car.id}
        onClick={() => onSelect(car.id)}
      >
        <div class="car-in">
          <header>
            <div>
              <span class="pos">P{pos}</span> <b class="car-id">{car.id}</b>{' '}
              <span class="muted">{typeof f.driver === 'string' ? f.driver : ''}</span>
            </div>
            {pitNow && (
              <span class="badge pit" title={car.pitNow?.reason}>
                PIT NOW
              </span>
            )}
            {f.pit === true && <span class="badge inpit">IN PIT</span>}
          </header>
          <div class="speed-row">
            <div class="speed">
              <span data-field="speed">{num(f.speed)}</span>
              <small>km/h</small>
            </div>
            <div class="facts">
              <div>
                Lap <b data-field="lap">{num(f.lap)}</b> · S<b>{num(f.sector)}</b>
              </div>
              <div>
                Gear <b>{num(f.gear)}</b> · {num(f.rpm)} rpm
              </div>
              <div>
                Last {lapTime(car.lastLapMs)} · best {lapTime(car.bestLapMs)}
              </div>
            </div>
          </div>
          <div class="corners">
            {CORNERS.map((c) => (
              <Corner key={c} label={c} brake={f[`brake_temp_${c}`]} tyre={f[`tyre_temp_${c}`]} />
            ))}
          </div>
          <div class="bars">
            <label>
              Fuel <b>{num(f.fuel, 1)} kg</b>
            </label>
            <div class="bar">
              <i style={{ transform: `scaleX(${fill((Number(f.fuel) || 0) / 110)})` }} />
            </div>
            <label>
              Tyre wear <b>{num(f.tyre_wear, 0)} %</b>
            </label>
            <div class="bar wear">
              <i style={{ transform: `scaleX(${fill((Number(f.tyre_wear) || 0) / 100)})` }} />
            </div>
          </div>
          <Score score={car.score} />
          <CarAlerts alerts={alerts} n={car.alerts.size} key2={alerts.map((a) => a.alertId).join()} />
        </div>
      </article>
    )
  }
}

function Laps({ id }: { id: string }) {
  const [laps, setLaps] = useState<Json[]>([])
  useEffect(() => {
    void api<{ items: Json[] }>(`/v1/entities/vehicle/${enc(id)}/laps?limit=100`).then(
      (r) => setLaps(r.items.slice(-12).reverse()),
      () => setLaps([]),
    )
  }, [id])
  return (
    <section class="panel">
      <div class="panel-head">
        <h2>Laps · {id}</h2>
      </div>
      <table class="grid compact">
        <thead>
          <tr>
            <th>Lap</th>
            <th>Time</th>
            <th>Min / avg / max km/h</th>
            <th>Max brake °C</th>
            <th>Max tyre °C</th>
            <th>Ended</th>
          </tr>
        </thead>
        <tbody>
          {laps.map((l) => (
            <tr key={String(l.lap)}>
              <td>{String(l.lap)}</td>
              <td class="mono">{lapTime(Number(l.lapTimeMs))}</td>
              <td class="num">
                {num(l.minSpeed)} / {num(l.avgSpeed)} / {num(l.maxSpeed)}
              </td>
              <td class="num">{num(l.maxBrakeTemp)}</td>
              <td class="num">{num(l.maxTyreTemp)}</td>
              <td>{fmtTime(l.end)}</td>
            </tr>
          ))}
          {laps.length === 0 && (
            <tr>
              <td colSpan={6} class="empty">
                No finished lap stored yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  )
}

export function PitWallView({ ctx }: { ctx: Ctx }) {
  const cars = useRef(new Map<string, Car>())
  const [, setFrame] = useState(0)
  const [selected, setSelected] = useState<string | null>(null)
  const [rate, setRate] = useState(0)

  useEffect(() => {
    const store = cars.current
    let received = 0
    const known = (id: string): Car => {
      let c = store.get(id)
      if (!c) {
        c = newCar(id)
        store.set(id, c)
        void hydrate(c)
      }
      return c
    }
    // A car seen for the first time: its live state (score with factors, open alerts, laps) from its actor.
    const hydrate = async (c: Car): Promise<void> => {
      try {
        const s = await api<{ state?: Json }>(`/v1/entities/vehicle/${enc(c.id)}/state`)
        const st = (s.state ?? s) as Json
        const sc = st.score as { value?: number; factors?: Record<string, number> } | undefined
        if (sc && typeof sc.value === 'number' && c.score === null)
          c.score = { value: sc.value, factors: sc.factors ?? {} }
        for (const a of (st.openAlerts as OpenAlert[] | undefined) ?? [])
          if (!c.alerts.has(a.alertId)) c.alerts.set(a.alertId, a)
        const laps = st.laps as { lastLapMs?: number | null } | undefined
        if (laps?.lastLapMs != null && c.lastLapMs === null) c.lastLapMs = laps.lastLapMs
        if (typeof st.last === 'object' && st.last !== null) c.fields = { ...(st.last as Json), ...c.fields }
        c.v++
        batch.push(null)
      } catch {
        // no worker owns it yet, or it is not a race car's state: the feed fills the card
      }
    }
    const apply = (e: LiveEvent): void => {
      const d = e.data
      if (d.kind !== 'vehicle' || typeof d.entity !== 'string') return
      if (e.event === 'reading') {
        if (d.profile !== undefined && d.profile !== 'race') return
        const c = known(d.entity)
        Object.assign(c.fields, d.fields as Json)
        c.ts = Number(d.ts)
        received++
      } else {
        if (d.profile !== 'race') return
        const c = known(d.entity)
        const b = (d.body ?? {}) as Json
        if (e.event === 'score' && b.name === 'pit_stop')
          c.score = { value: Number(b.value), factors: (b.factors ?? {}) as Record<string, number> }
        else if (e.event === 'recommendation' && b.action === 'pit_now')
          c.pitNow = { at: Number(d.ts), reason: String(b.reason ?? '') }
        else if (e.event === 'lap') {
          c.lastLapMs = Number(b.lapTimeMs)
          c.bestLapMs = c.bestLapMs === null ? c.lastLapMs : Math.min(c.bestLapMs, c.lastLapMs)
        } else if (e.event === 'alert') {
          const id = String(b.alertId)
          if (b.state === 'close') c.alerts.delete(id)
          else
            c.alerts.set(id, {
              alertId: id,
              type: String(b.type),
              severity: String(b.severity),
              start: Number(b.start),
            })
        } else return
      }
      store.get(d.entity)!.v++
    }
    const batch = frameBatcher<LiveEvent | null>((events) => {
      for (const e of events) if (e !== null) apply(e)
      setFrame((n) => n + 1)
    })
    const ctl = new AbortController()
    follow('type=reading&kind=vehicle', (e) => batch.push(e), ctl.signal)
    const off = ctx.hub.on((e) => {
      if (e.data.kind === 'vehicle') batch.push(e)
    })
    void api<{ items: { vin: string }[] }>('/v1/vehicles?profile=race&limit=100').then(
      (r) => {
        for (const v of r.items) known(v.vin)
        batch.push(null)
      },
      () => undefined,
    )
    const meter = setInterval(() => {
      setRate(received)
      received = 0
    }, 1_000)
    return () => {
      ctl.abort()
      off()
      batch.stop()
      clearInterval(meter)
    }
  }, [])

  // Cards stay in car order: re-ordering by track position at 20 Hz would move DOM nodes (and the reader's eye)
  // every frame; the position is shown in each card instead.
  const list = [...cars.current.values()].sort((a, b) => a.id.localeCompare(b.id))
  const order = [...list].sort(
    (a, b) =>
      (Number(b.fields.lap) || 0) - (Number(a.fields.lap) || 0) ||
      (Number(b.fields.lap_distance) || 0) - (Number(a.fields.lap_distance) || 0),
  )
  const position = new Map(order.map((c, i) => [c.id, i + 1]))
  const pit = list.filter((c) => c.pitNow !== null && (c.score?.value ?? 0) > PIT_NOW_ABOVE).length
  const alerts = list.reduce((n, c) => n + c.alerts.size, 0)
  return (
    <div class="page">
      <section class="panel">
        <div class="panel-head">
          <h2>Pit wall</h2>
          <span class="muted">
            <b data-count="cars">{list.length}</b> cars · {rate} readings/s · <b class={pit > 0 ? 'warn' : ''}>{pit}</b>{' '}
            pit now · {alerts} open alerts
          </span>
        </div>
        {list.length === 0 ? (
          <div class="empty">Waiting for race cars on the live feed…</div>
        ) : (
          <div class="cars">
            {list.map((c) => (
              <CarCard
                key={c.id}
                car={c}
                v={c.v}
                pos={position.get(c.id) ?? 0}
                selected={selected === c.id}
                onSelect={setSelected}
              />
            ))}
          </div>
        )}
      </section>
      {selected !== null && <Laps id={selected} />}
    </div>
  )
}
