/**
 * The fleet map (road profile): the last position of every vehicle and its state (moving, parked, stale), the
 * geofences (`GET /v1/geofences`), and a table of the same vehicles with their open alerts. MapLibre GL draws
 * GeoJSON layers on a blank style; the tile URL (a setting, `PITWALL_GATEWAY_CONSOLE_TILE_URL`) adds a raster
 * background when there is a tile server. Positions move with the feed's `position` outputs.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { FleetRegistry } from './registry.js'
import type * as MapLibreGl from 'maplibre-gl'
import type { GeoJSONSource, Map as MapLibreMap, StyleSpecification } from 'maplibre-gl'
import { api, enc, ago, fmtTime, num, type Json } from './api.js'
import { frameBatcher } from './live.js'
import type { Ctx } from './main.js'

const STALE_MS = 10 * 60_000
interface Vehicle {
  id: string
  lat: number
  lon: number
  ts: number
  speed: number | null
  alerts: { type: string; severity: string }[]
}
const stateOf = (v: Vehicle): 'moving' | 'parked' | 'stale' =>
  Date.now() - v.ts > STALE_MS ? 'stale' : (v.speed ?? 0) > 3 ? 'moving' : 'parked'

function circle(lat: number, lon: number, radiusM: number): number[][] {
  const ring: number[][] = []
  for (let i = 0; i <= 64; i++) {
    const a = (i / 64) * 2 * Math.PI
    ring.push([
      lon + (radiusM / (111_320 * Math.cos((lat * Math.PI) / 180))) * Math.cos(a),
      lat + (radiusM / 110_540) * Math.sin(a),
    ])
  }
  return ring
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

export function FleetView({ ctx }: { ctx: Ctx }) {
  const el = useRef<HTMLDivElement>(null)
  const vehicles = useRef(new Map<string, Vehicle>())
  const [, setFrame] = useState(0)
  const [fences, setFences] = useState<Json[]>([])
  const [ready, setReady] = useState(false)
  const [selected, setSelected] = useState<string | null>(null)
  const [trips, setTrips] = useState<Json[]>([])
  const mapRef = useRef<MapLibreMap | null>(null)

  useEffect(() => {
    // MapLibre is most of the console's code: loaded when the map is first opened, not with the console.
    let gone = false
    let cleanup = (): void => {
      gone = true
    }
    void import('maplibre-gl').then((ml) => {
      if (gone || !el.current) return
      cleanup = start(ml, el.current)
    })
    return () => {
      cleanup()
    }
  }, [])

  function start(
    { LngLatBounds, Map: MapLibre, NavigationControl }: typeof MapLibreGl,
    container: HTMLDivElement,
  ): () => void {
    const map: MapLibreMap = new MapLibre({
      container,
      style: style(ctx.settings.tileUrl),
      center: [-73.97, 40.75],
      zoom: 10,
      attributionControl: false,
    })
    map.addControl(new NavigationControl({ showCompass: false }), 'top-right')
    const store = vehicles.current
    let fitted = false
    const draw = (): void => {
      const src = map.getSource('vehicles') as GeoJSONSource | undefined
      void src?.setData({
        type: 'FeatureCollection',
        features: [...store.values()].map((v) => ({
          type: 'Feature',
          properties: { id: v.id, state: stateOf(v), alert: v.alerts.length > 0 },
          geometry: { type: 'Point', coordinates: [v.lon, v.lat] },
        })),
      })
      if (!fitted && store.size > 0) {
        fitted = true
        const b = new LngLatBounds()
        for (const v of store.values()) b.extend([v.lon, v.lat])
        map.fitBounds(b, { padding: 60, maxZoom: 13, duration: 0 })
      }
      setFrame((n) => n + 1)
    }
    const batch = frameBatcher<null>(draw)
    map.on('load', () => {
      map.addSource('fences', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } })
      map.addLayer({
        id: 'fence-fill',
        type: 'fill',
        source: 'fences',
        paint: { 'fill-color': '#38bdf8', 'fill-opacity': 0.12 },
      })
      map.addLayer({
        id: 'fence-line',
        type: 'line',
        source: 'fences',
        paint: { 'line-color': '#38bdf8', 'line-width': 1.5, 'line-dasharray': [2, 1] },
      })
      map.addSource('trail', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } })
      map.addLayer({
        id: 'trail',
        type: 'line',
        source: 'trail',
        paint: { 'line-color': '#f97316', 'line-width': 3, 'line-opacity': 0.85 },
      })
      map.addSource('replay', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } })
      map.addLayer({
        id: 'replay',
        type: 'circle',
        source: 'replay',
        paint: {
          'circle-radius': 7,
          'circle-color': '#f97316',
          'circle-stroke-width': 2,
          'circle-stroke-color': '#fff',
        },
      })
      map.addSource('vehicles', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } })
      map.addLayer({
        id: 'vehicle-halo',
        type: 'circle',
        source: 'vehicles',
        filter: ['==', ['get', 'alert'], true],
        paint: { 'circle-radius': 11, 'circle-color': '#ef4444', 'circle-opacity': 0.35 },
      })
      map.addLayer({
        id: 'vehicle',
        type: 'circle',
        source: 'vehicles',
        paint: {
          'circle-radius': 6,
          'circle-stroke-width': 2,
          'circle-stroke-color': '#0b1220',
          'circle-color': ['match', ['get', 'state'], 'moving', '#22c55e', 'parked', '#f59e0b', '#64748b'],
        },
      })
      mapRef.current = map
      setReady(true)
      void (async () => {
        const g = await api<{ items: Json[] }>('/v1/geofences?limit=100').catch(() => ({ items: [] as Json[] }))
        setFences(g.items)
        const features = g.items.map((f) => {
          const s = f.shape as { type: string; lat: number; lon: number; radiusM: number; coordinates: number[][][] }
          return {
            type: 'Feature' as const,
            properties: { id: String(f.id) },
            geometry: {
              type: 'Polygon' as const,
              coordinates: s.type === 'circle' ? [circle(s.lat, s.lon, s.radiusM)] : s.coordinates,
            },
          }
        })
        void (map.getSource('fences') as GeoJSONSource).setData({ type: 'FeatureCollection', features })
        const list = await api<{ items: { vin: string }[] }>('/v1/vehicles?profile=road&limit=100').catch(() => ({
          items: [],
        }))
        await Promise.all(
          list.items.map(async ({ vin }) => {
            const s = await api<{ state: Json }>(`/v1/entities/vehicle/${enc(vin)}/state`).catch(() => null)
            const st = s?.state as
              | {
                  position?: { ts: number; lat: number; lon: number } | null
                  speed?: number | null
                  openAlerts?: { type: string; severity: string }[]
                }
              | undefined
            if (st?.position)
              store.set(vin, {
                id: vin,
                lat: st.position.lat,
                lon: st.position.lon,
                ts: st.position.ts,
                speed: st.speed ?? null,
                alerts: st.openAlerts ?? [],
              })
          }),
        )
        batch.push(null)
      })()
    })
    const off = ctx.hub.on((e) => {
      const d = e.data
      if (d.kind !== 'vehicle' || d.profile !== 'road' || typeof d.entity !== 'string') return
      const b = (d.body ?? {}) as Json
      if (e.event === 'position') {
        const prev = store.get(d.entity)
        store.set(d.entity, {
          id: d.entity,
          lat: Number(b.lat),
          lon: Number(b.lon),
          ts: Number(d.ts),
          speed: typeof b.speed === 'number' ? b.speed : null,
          alerts: prev?.alerts ?? [],
        })
      } else if (e.event === 'alert') {
        const v = store.get(d.entity)
        if (!v) return
        v.alerts =
          b.state === 'close'
            ? v.alerts.filter((a) => a.type !== b.type)
            : [...v.alerts.filter((a) => a.type !== b.type), { type: String(b.type), severity: String(b.severity) }]
      } else return
      batch.push(null)
    })
    return () => {
      off()
      batch.stop()
      mapRef.current = null
      map.remove()
    }
  }

  // A vehicle's trips (GET .../trips, LineStrings) drawn on the map, the latest replayed by a moving marker.
  useEffect(() => {
    if (selected === null) return
    let frame = 0
    let gone = false
    const since = Date.now() - 7 * 86_400_000
    void Promise.all([
      api<{ features: Json[] }>(`/v1/entities/vehicle/${enc(selected)}/trips?from=${since}&limit=50`),
      // the stored fixes since the last day, as one line: the path of a trip still under way
      api<{ features: { geometry: { coordinates: number[] } }[] }>(
        `/v1/entities/vehicle/${enc(selected)}/positions?from=${Date.now() - 86_400_000}&limit=1000`,
      ).catch(() => ({ features: [] })),
    ]).then(
      ([fc, pos]) => {
        const map = mapRef.current
        if (gone || !map) return
        const path = pos.features.map((f) => f.geometry.coordinates)
        const lines = [
          ...fc.features.filter((f) => f.geometry !== null),
          ...(path.length > 1
            ? [{ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: path } }]
            : []),
        ]
        setTrips(fc.features)
        void (map.getSource('trail') as GeoJSONSource | undefined)?.setData({
          type: 'FeatureCollection',
          features: lines as never[],
        })
        const last = lines.at(-1)?.geometry as { coordinates: number[][] } | undefined
        const replay = last?.coordinates ?? []
        if (replay.length < 2) return
        const t0 = performance.now()
        const step = (now: number): void => {
          const k = Math.min(replay.length - 1, Math.floor(((now - t0) / 8_000) * (replay.length - 1)))
          void (map.getSource('replay') as GeoJSONSource | undefined)?.setData({
            type: 'FeatureCollection',
            features: [
              {
                type: 'Feature',
                properties: {},
                geometry: { type: 'Point', coordinates: replay[k] ?? replay[0] ?? [0, 0] },
              },
            ],
          })
          if (k < replay.length - 1) frame = requestAnimationFrame(step)
        }
        frame = requestAnimationFrame(step)
      },
      () => setTrips([]),
    )
    return () => {
      gone = true
      cancelAnimationFrame(frame)
    }
  }, [selected])

  const list = [...vehicles.current.values()].sort((a, b) => a.id.localeCompare(b.id))
  const counts = { moving: 0, parked: 0, stale: 0 }
  for (const v of list) counts[stateOf(v)]++
  return (
    <div class="page with-detail">
      <section class="panel grow map-panel">
        <div class="panel-head">
          <h2>Fleet</h2>
          <span class="muted">
            <b data-count="vehicles">{list.length}</b> vehicles · <span class="lg moving" />
            {counts.moving} moving · <span class="lg parked" />
            {counts.parked} parked · <span class="lg stale" />
            {counts.stale} stale · {fences.length} geofences
          </span>
        </div>
        <div class="map" ref={el} data-ready={ready ? 'yes' : 'no'} />
      </section>
      <aside class="detail">
        <h3>Vehicles</h3>
        <table class="grid compact">
          <thead>
            <tr>
              <th>Vehicle</th>
              <th>State</th>
              <th>km/h</th>
              <th>Fix</th>
              <th>Alerts</th>
            </tr>
          </thead>
          <tbody>
            {list.map((v) => (
              <tr
                key={v.id}
                data-vehicle={v.id}
                class={selected === v.id ? 'sel' : ''}
                onClick={() => setSelected(v.id)}
              >
                <td class="mono">{v.id}</td>
                <td>
                  <span class={`lg ${stateOf(v)}`} />
                  {stateOf(v)}
                </td>
                <td class="num">{num(v.speed)}</td>
                <td>{ago(v.ts)}</td>
                <td>
                  {v.alerts.map((a) => (
                    <span key={a.type} class={`chip sev-${a.severity}`}>
                      {a.type.replace(/_/g, ' ')}
                    </span>
                  ))}
                </td>
              </tr>
            ))}
            {list.length === 0 && (
              <tr>
                <td colSpan={5} class="empty">
                  No vehicle position yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {selected !== null && (
          <>
            <h3>
              Trips · <span class="mono">{selected}</span>
            </h3>
            <table class="grid compact" data-trips={selected}>
              <thead>
                <tr>
                  <th>Start</th>
                  <th>km</th>
                  <th>min</th>
                  <th>max km/h</th>
                </tr>
              </thead>
              <tbody>
                {trips
                  .slice(-8)
                  .reverse()
                  .map((f) => {
                    const p = f.properties as Json
                    return (
                      <tr key={String(p.id)}>
                        <td>{fmtTime(p.start)}</td>
                        <td class="num">{num(p.distanceKm, 1)}</td>
                        <td class="num">{num(Number(p.durationS) / 60, 0)}</td>
                        <td class="num">{num(p.maxSpeed)}</td>
                      </tr>
                    )
                  })}
                {trips.length === 0 && (
                  <tr>
                    <td colSpan={4} class="empty">
                      No trip in the last 7 days.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </>
        )}
        <h3>Geofences</h3>
        <ul class="plain">
          {fences.map((f) => (
            <li key={String(f.id)} data-fence={String(f.id)}>
              <b>{String(f.name ?? f.id)}</b>{' '}
              <span class="muted">
                {(f.shape as Json).type === 'circle' ? `circle ${num((f.shape as Json).radiusM)} m` : 'polygon'}
              </span>
            </li>
          ))}
        </ul>
        <FleetRegistry canEdit={ctx.me.role !== 'viewer'} />
      </aside>
    </div>
  )
}
