/** The console's shell: login, navigation (hash routes), the shared live feed, and the views. */
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import 'uplot/dist/uPlot.min.css'
import 'maplibre-gl/dist/maplibre-gl.css'
import './style.css'
import { api, ApiError, forget, save, saved, settings, useCredential, type Me, type Settings } from './api.js'
import { LiveHub } from './live.js'
import { AlertsView } from './alerts.js'
import { PitWallView } from './pitwall.js'
import { SitesView } from './sites.js'
import { FleetView } from './fleet.js'
import { EntitiesView } from './entities.js'
import { SensorsView } from './sensors.js'

export interface Ctx {
  me: Me
  settings: Settings
  hub: LiveHub
}

const ROUTES = [
  { path: 'alerts', label: 'Alerts' },
  { path: 'pitwall', label: 'Pit wall' },
  { path: 'fleet', label: 'Fleet' },
  { path: 'plant', label: 'Plant' },
  { path: 'sensors', label: 'Sensors' },
  { path: 'assets', label: 'Assets' },
  { path: 'sites', label: 'Sites' },
] as const
type Route = (typeof ROUTES)[number]['path']

const routeOf = (): Route => {
  const h = location.hash.replace(/^#\/?/, '').split('?')[0] ?? ''
  return ROUTES.find((r) => r.path === h)?.path ?? 'alerts'
}

function Login({ onDone, error }: { onDone: (c: string) => void; error: string | null }) {
  const [value, setValue] = useState('')
  return (
    <div class="login">
      <form
        class="login-card"
        onSubmit={(e) => {
          e.preventDefault()
          if (value.trim() !== '') onDone(value.trim())
        }}
      >
        <div class="brand big">
          <span class="logo" />
          pitwall
        </div>
        <p class="muted">
          Operator console. Paste your access token (JWT) or service API key; it is kept for this browser tab only.
        </p>
        <label for="credential">Token or API key</label>
        <textarea
          id="credential"
          name="credential"
          rows={4}
          value={value}
          onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)}
          placeholder="eyJhbGciOi… or an API key"
          spellcheck={false}
        />
        {error !== null && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </div>
  )
}

function App() {
  const [ctx, setCtx] = useState<Ctx | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [route, setRoute] = useState<Route>(routeOf())
  const [connected, setConnected] = useState(false)

  const login = async (credential: string): Promise<void> => {
    useCredential(credential)
    try {
      const me = await api<Me>('/v1/whoami')
      save(credential)
      const s = await settings()
      const hub = new LiveHub(setConnected)
      hub.start()
      setError(null)
      setCtx({ me, settings: s, hub })
    } catch (err) {
      forget()
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : 'the gateway cannot be reached')
    }
  }
  useEffect(() => {
    const c = saved()
    if (c !== null) void login(c)
    const onHash = (): void => setRoute(routeOf())
    addEventListener('hashchange', onHash)
    return () => removeEventListener('hashchange', onHash)
  }, [])

  if (ctx === null)
    return (
      <Login
        onDone={(c) => {
          void login(c)
        }}
        error={error}
      />
    )
  const logout = (): void => {
    ctx.hub.stop()
    forget()
    useCredential('')
    setCtx(null)
  }
  return (
    <div class="shell">
      <header class="top">
        <div class="brand">
          <span class="logo" />
          pitwall
        </div>
        <nav>
          {ROUTES.map((r) => (
            <a key={r.path} href={`#/${r.path}`} class={route === r.path ? 'active' : ''} data-route={r.path}>
              {r.label}
            </a>
          ))}
        </nav>
        <div class="who">
          <span
            class={`dot ${connected ? 'ok' : 'bad'}`}
            title={connected ? 'live feed connected' : 'live feed reconnecting'}
          />
          <span class="site">site {ctx.settings.site}</span>
          <span class="user" data-role={ctx.me.role}>
            {ctx.me.id} · {ctx.me.role}
          </span>
          <button class="ghost" onClick={logout}>
            Sign out
          </button>
        </div>
      </header>
      <main>
        {route === 'alerts' && <AlertsView ctx={ctx} />}
        {route === 'pitwall' && <PitWallView ctx={ctx} />}
        {route === 'fleet' && <FleetView ctx={ctx} />}
        {route === 'plant' && <EntitiesView ctx={ctx} profile="process" title="Plant" />}
        {route === 'sensors' && <SensorsView ctx={ctx} />}
        {route === 'assets' && <EntitiesView ctx={ctx} profile="asset" title="Assets" />}
        {route === 'sites' && <SitesView ctx={ctx} />}
      </main>
    </div>
  )
}

const root = document.getElementById('app')
if (root) render(<App />, root)
