/**
 * The operator console in a real headless Chromium (Debian's `chromium`, driven by playwright-core) against a real
 * stack: nats-server, a worker with every profile, the projector into PostgreSQL, a site controller, and the
 * gateway serving the built console (`npm run build`). Data is seeded through the same doors devices use
 * (JetStream subjects) and the registry API; nothing in the browser is mocked.
 *
 * Checked, as issue 15 asks: sign-in with a JWT and with an API key; every view renders real data (race cars,
 * alerts, vehicles and geofences on the map, plant/sensor/asset tables, both sites); a live update reaches the
 * page within a second; an alert acknowledged in the console is acknowledged in the API (GET /v1/alerts/:id); a
 * viewer sees the actions disabled and the API refuses them. Measured and printed: first load (JS + CSS bytes
 * transferred), time to first live update, frame interval p95 while 20 cars stream at 20 Hz.
 *
 * Without chromium the test is skipped with a message, except under CI=true, where it fails. Screenshots go to a
 * temporary directory, or to PITWALL_CONSOLE_SCREENSHOTS (e.g. docs/console) when set.
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Browser, Page } from 'playwright-core'
import pg from 'pg'
import { compileConfig, partitionOf, peerStreams, tlmSubject } from '../../actors/mod.js'
import { buildGateway, compileGatewayConfig } from '../../gateway/mod.js'
import { SiteController } from '../../sites/controller.js'
import { startPipeline } from '../helpers/e2e.js'
import { bearer, JWT_SECRET, jwt, sha, SVC_KEY, VIEW_KEY, VIN } from '../helpers/gateway.js'
import { freePort } from '../helpers/nats.js'

function findChromium(): string | undefined {
  const given = process.env.PITWALL_CHROMIUM
  if (given !== undefined && given !== '') return given
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      const p = execFileSync('which', [name], { encoding: 'utf8' }).trim()
      if (p !== '' && existsSync(p)) return p
    } catch {
      // not on PATH; try the next name
    }
  }
  return undefined
}

/** Self time per function (name, file:line) of a V8 CPU profile, most first. */
function selfTimes(profile: {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]
  samples?: number[]
  timeDeltas?: number[]
}): { name: string; ms: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  for (let i = 0; i < samples.length; i++) {
    const n = byId.get(samples[i] as number)
    if (!n) continue
    const f = n.callFrame
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\//, '')}:${f.lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0) / 1000)
  }
  return [...self.entries()].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms)
}

interface TraceEvent {
  name: string
  ph: string
  pid: number
  tid: number
  dur?: number
  args?: { name?: string }
}
/** Time per trace event name on the renderer's main thread(s) (CrRendererMain), most first. */
function mainThreadTimes(events: TraceEvent[]): { name: string; ms: number; n: number }[] {
  const main = new Set(
    events
      .filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
      .map((e) => `${e.pid}/${e.tid}`),
  )
  const by = new Map<string, { ms: number; n: number }>()
  for (const e of events) {
    if (e.ph !== 'X' || e.dur === undefined || !main.has(`${e.pid}/${e.tid}`)) continue
    const r = by.get(e.name) ?? { ms: 0, n: 0 }
    r.ms += e.dur / 1000
    r.n++
    by.set(e.name, r)
  }
  return [...by.entries()].map(([name, r]) => ({ name, ...r })).sort((a, b) => b.ms - a.ms)
}

const CHROMIUM = findChromium()
const CI = process.env.CI === 'true'
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const P = 4
type Json = Record<string, unknown>

if (CHROMIUM === undefined && CI) {
  t.fail(
    'chromium is not installed and CI=true: the console browser test must run in CI (apt-get install -y chromium; .ci/optional-packages lists it)',
  )
}

/**
 * A race car's reading at time `ts` (simple but plausible physics): car-01's front-left brake runs over 950 °C
 * (an open brake_overheat alert), car-07's rear-right tyre over 130 °C (tire_overheat); `speed` overrides the speed.
 */
function carReading(i: number, ts: number, t0: number, speedOverride?: number): Json {
  const hot = i === 0
  const s = (ts - t0) / 1000
  const lapLen = 5_000
  const dist = (s * 70 + i * 180) % lapLen
  const lap = 1 + Math.floor((s * 70 + i * 180) / lapLen)
  const speed = 180 + 110 * Math.sin(dist / 400 + i) ** 2
  const brake = 420 + 300 * Math.abs(Math.sin(dist / 300)) + i * 6
  return {
    ts,
    profile: 'race',
    fields: {
      driver: `Driver ${String(i + 1).padStart(2, '0')}`,
      lap,
      lap_distance: Math.round(dist),
      sector: 1 + Math.floor((dist / lapLen) * 3),
      speed: speedOverride ?? Math.round(speed * 10) / 10,
      rpm: Math.round(9_000 + speed * 20),
      gear: Math.min(8, 2 + Math.floor(speed / 45)),
      throttle: 80,
      brake: 5,
      fuel: Math.round((100 - s * 0.05 - i) * 10) / 10,
      tyre_wear: Math.min(95, 12 + i * 3 + s * 0.02),
      brake_temp_fl: hot ? 1_010 : brake,
      brake_temp_fr: brake - 20,
      brake_temp_rl: brake - 120,
      brake_temp_rr: brake - 110,
      tyre_temp_fl: 95 + (i % 7),
      tyre_temp_fr: 97,
      tyre_temp_rl: 92,
      tyre_temp_rr: i === 6 ? 138 : 104 + (i % 3) * 5,
    },
  }
}

t.test(
  'operator console in headless Chromium',
  {
    skip:
      CHROMIUM === undefined && !CI
        ? 'chromium not found (apt-get install -y chromium, or set PITWALL_CHROMIUM); the console browser test is skipped'
        : false,
  },
  async (t) => {
    const { chromium } = await import('playwright-core')
    const p = await startPipeline(t)
    const nc: NatsConnection = p.gw.nc
    const db = p.gw.db
    if (!db) throw new Error('no database')
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    t.teardown(() => pool.end())
    const admin = bearer('admin')

    // The site controller of site a (peer b has no server here: link down, failover off), as in monitoring-live.
    const ctlCfg = compileConfig({
      natsUrl: p.gw.srv.url,
      partitions: P,
      workerId: 'ctl-a',
      peer: { site: 'b' },
      homePartitions: [0, 1, 2, 3],
    })
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: peerStreams(ctlCfg, 'b').tlm, mirror: { name: ctlCfg.streams.tlm } })
    const controller = new SiteController({
      nc,
      cfg: ctlCfg,
      checkMs: 250,
      failoverAfterMs: 0,
      port: 0,
      relay: false,
      commandToken: 'ctl-token',
      commandTimings: { timeoutMs: 2_000, waitMs: 2_000 },
    })
    await controller.start()
    t.teardown(() => controller.stop())

    // The gateway under test: the pipeline's database, NATS and auth, plus the console's settings, on a real socket.
    const cfg = compileGatewayConfig({
      publishTimeoutMs: 1_000,
      auth: {
        jwtSecret: JWT_SECRET,
        apiKeys: `ingest-svc:operator:sha256:${sha(SVC_KEY)},dash:viewer:sha256:${sha(VIEW_KEY)}`,
        rateLimitMax: 100_000,
        databaseUrl: db.url,
      },
      runtime: { natsUrl: p.gw.srv.url, partitions: P, workerId: 'gw-console' },
      siteStatusUrls: {
        a: `http://127.0.0.1:${controller.port}/status`,
        b: `http://127.0.0.1:${await freePort()}/status`,
      },
      siteCommandToken: 'ctl-token',
    })
    const app = buildGateway({ nc, cfg })
    t.teardown(() => app.close())
    const base = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('localhost', '127.0.0.1')
    const call = async (
      method: 'GET' | 'POST',
      url: string,
      headers: Record<string, string>,
      body?: unknown,
    ): Promise<{ status: number; body: Json }> => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: res.status, body: (await res.json()) as Json }
    }

    // Registry: plant, sensor and asset sensors, a road vehicle and a geofence around its depot.
    const plant = [
      ['pl-ph-01', 'ph', 'biological_treatment'],
      ['pl-do-02', 'do', 'biological_treatment'],
      ['pl-tu-03', 'turbidity', 'outlet_control'],
      ['pl-fl-04', 'flow', 'pretreatment'],
      ['pl-ss-05', 'suspended_solids', 'primary_settling'],
      ['pl-nh-06', 'ammonia', 'secondary_settling'],
      ['pl-cl-07', 'residual_chlorine', 'disinfection'],
      ['pl-en-08', 'energy', 'sludge_treatment'],
    ] as const
    const envs = ['env-0001', 'env-0002', 'env-0003', 'env-0004', 'env-0005', 'env-0006']
    const assets = ['loco-01', 'loco-02', 'loco-03', 'loco-04']
    const PARKED = '1HGCM82633A004352'
    for (const [id, type, stage] of plant)
      t.equal(
        (await call('POST', '/v1/sensors', admin, { id, type, profile: 'process', site: 'a', processStage: stage }))
          .status,
        201,
      )
    for (const [k, id] of envs.entries())
      t.equal(
        (
          await call('POST', '/v1/sensors', admin, {
            id,
            type: 'climate',
            profile: 'environment',
            site: 'a',
            location: { lat: 45.46 + k / 100, lon: 9.19 },
          })
        ).status,
        201,
      )
    for (const id of assets)
      t.equal(
        (await call('POST', '/v1/sensors', admin, { id, type: 'bogie', profile: 'asset', site: 'a' })).status,
        201,
      )
    t.equal(
      (
        await call('POST', '/v1/vehicles', admin, {
          vin: VIN,
          brand: 'Volvo',
          model: '7900',
          year: 2022,
          profile: 'road',
        })
      ).status,
      201,
    )
    t.equal(
      (
        await call('POST', '/v1/vehicles', admin, {
          vin: PARKED,
          brand: 'Honda',
          model: 'Accord',
          year: 2003,
          profile: 'road',
        })
      ).status,
      201,
    )
    t.equal(
      (
        await call('POST', '/v1/geofences', admin, {
          id: 'depot',
          name: 'Depot',
          shape: { type: 'circle', lat: 40.7506, lon: -73.9935, radiusM: 400 },
        })
      ).status,
      201,
    )

    // Stored risk history: a day of hourly failure_risk scores of the first asset (the asset profile scores once an
    // hour, too slow for a live test), written as the projector writes them.
    const RISK_HOURS = 24
    for (let h = RISK_HOURS; h > 0; h--) {
      await pool.query(
        `INSERT INTO score_history (output_id, kind, entity, name, profile, scored_at, value, factors, seq, site, partition, token)
      VALUES ($1, 'sensor', $2, 'failure_risk', 'asset', $3, $4, '{"vibration_rms": 0.5}', $5, 'a', 0, 1)`,
        [`seed-risk-${h}`, assets[0], new Date(Date.now() - h * 3_600_000), 20 + (RISK_HOURS - h) * 3, 1_000_000 + h],
      )
    }

    // Yesterday's windows of env-0001 (the Sensors trend compares the last hour with the same hour a day before; the
    // stack has not run for a day): 45 one-minute windows 24 h 50 min .. 24 h 5 min ago, written as the projector
    // writes them, at 15 °C where today's readings are at 21.
    const YESTERDAY_WINDOWS = 45
    const dayAgo = Math.floor((Date.now() - 86_400_000 - 50 * 60_000) / 60_000) * 60_000
    for (let k = 0; k < YESTERDAY_WINDOWS; k++) {
      const start = dayAgo + k * 60_000
      const agg = (mean: number): Json => ({
        count: 6,
        sum: mean * 6,
        min: mean - 0.2,
        max: mean + 0.2,
        mean,
        variance: 0.01,
        stddev: 0.1,
        first: mean,
        last: mean,
      })
      await pool.query(
        `INSERT INTO window_aggregates (kind, entity, window_name, window_start, window_end, profile, fields, counts, idle_closed, output_id, seq, site, partition, token)
      VALUES ('sensor', 'env-0001', 'tumbling_1m', $1, $2, 'environment', $3, '{}', false, $4, $5, 'a', 0, 1)`,
        [
          new Date(start),
          new Date(start + 60_000),
          JSON.stringify({ temperature: agg(15 + k * 0.02), humidity: agg(44), co2: agg(610), battery: agg(97) }),
          `seed-window-${k}`,
          2_000_000 + k,
        ],
      )
    }

    const publish = (kind: 'sensor' | 'vehicle', id: string, reading: Json): void => {
      nc.publish(tlmSubject('a', partitionOf(kind, id, P), kind, id), JSON.stringify(reading))
    }
    // History: ten minutes of environment readings (windows close behind them), the road vehicle driving.
    const now = Date.now()
    for (let k = 600; k > 0; k -= 10) {
      for (const [i, id] of envs.entries())
        publish('sensor', id, {
          ts: now - k * 1000,
          profile: 'environment',
          fields: {
            temperature: 21 + i + Math.sin(k / 60) * 2,
            humidity: 45 + i,
            co2: 600 + (k % 90),
            battery: 97 - i,
          },
        })
    }
    // The plant's covariate model learns from 800 readings per sensor (400 s at 2 Hz, past its 720-reading warm-up),
    // so its sigma, and the expected band, are real.
    const PLANT_HISTORY = 800
    for (let k = PLANT_HISTORY; k > 0; k--) {
      for (const [i, [id, type, stage]] of plant.entries())
        publish('sensor', id, {
          ts: now - k * 500,
          profile: 'process',
          fields: { value: 7 + i + Math.sin(k / 2 + 0.25) * 0.3, flow: 820, temp: 18.5, type, stage },
        })
      if (k % 200 === 0) await nc.flush()
    }
    for (let k = 0; k < 30; k++) {
      publish('vehicle', VIN, {
        ts: now - (30 - k) * 2_000,
        profile: 'road',
        fields: {
          lat: 40.7506 + k * 0.0004,
          lon: -73.9935 + k * 0.0003,
          speed: 28,
          ignition: true,
          fuel_level: 63,
          rpm: 1_500,
        },
      })
      publish('vehicle', PARKED, {
        ts: now - (30 - k) * 2_000,
        profile: 'road',
        fields: { lat: 40.7503, lon: -73.9941, speed: 0, ignition: false, fuel_level: 18 },
      })
    }
    await nc.flush()

    // Live load: 20 cars at 20 Hz, plant, environment and asset sensors every 500 ms. Real time, in 50 ms ticks.
    const t0 = Date.now()
    const speedOverride = new Map<number, number>()
    let stopLoad = false
    let published = 0
    const load = (async () => {
      let tick = 0
      while (!stopLoad) {
        const ts = Date.now()
        for (let i = 0; i < 20; i++) {
          const id = `car-${String(i + 1).padStart(2, '0')}`
          publish('vehicle', id, carReading(i, ts, t0, speedOverride.get(i)))
          published++
        }
        if (tick % 10 === 0) {
          for (const [i, [id, type, stage]] of plant.entries())
            publish('sensor', id, {
              ts,
              profile: 'process',
              fields: { value: 7 + i + Math.sin(tick / 20) * 0.3, flow: 820, temp: 18.5, type, stage },
            })
          // env-0006's battery is low (battery_low opens at once: a live environment alert)
          for (const [i, id] of envs.entries())
            publish('sensor', id, {
              ts,
              profile: 'environment',
              fields: {
                temperature: 21 + i + Math.sin(tick / 40),
                humidity: 45 + i,
                co2: 640,
                battery: i === 5 ? 9 : 96 - i,
              },
            })
          for (const [i, id] of assets.entries())
            publish('sensor', id, {
              ts,
              profile: 'asset',
              fields: {
                vibration: 2 + i * 0.4 + Math.sin(tick / 10) * 0.2,
                temperature: 45 + i * 3,
                pressure: 6.1,
                flow: 12,
              },
            })
        }
        tick++
        await sleep(Math.max(0, 50 - (Date.now() - ts)))
      }
    })()
    t.teardown(async () => {
      stopLoad = true
      await load
    })
    // Two readings of env-0003 from 5 minutes ago arrive now: behind its watermark, late readings.
    await sleep(1_500)
    for (let k = 0; k < 2; k++)
      publish('sensor', 'env-0003', {
        ts: Date.now() - 5 * 60_000 + k * 1_000,
        profile: 'environment',
        fields: { temperature: 23, humidity: 47, co2: 640, battery: 94 },
      })

    // The brake alert reaches PostgreSQL (worker -> OUT -> projector).
    let alertId: string | undefined
    for (let i = 0; i < 150 && alertId === undefined; i++) {
      const r = await call('GET', '/v1/alerts?type=brake_overheat&entity=car-01', admin)
      alertId = (r.body.items as Json[] | undefined)?.[0]?.alertId as string | undefined
      if (alertId === undefined) await sleep(200)
    }
    t.ok(alertId, `brake_overheat of car-01 projected: ${alertId}`)

    const shots =
      process.env.PITWALL_CONSOLE_SCREENSHOTS !== undefined && process.env.PITWALL_CONSOLE_SCREENSHOTS !== ''
        ? resolve(process.env.PITWALL_CONSOLE_SCREENSHOTS)
        : await mkdtemp(join(tmpdir(), 'pw-console-'))
    await mkdir(shots, { recursive: true })
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM ?? 'chromium',
      // No GPU flags: --use-angle=swiftshader drops requestAnimationFrame to ~1 per second; WebGL2 works without them.
      args: ['--no-sandbox', '--enable-unsafe-swiftshader'],
    })
    t.teardown(() => browser.close())
    const errors: string[] = []
    const open = async (credential: string): Promise<Page> => {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 })
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`)
      })
      await page.goto(`${base}/console/`)
      await page.fill('#credential', credential)
      await page.click('button[type=submit]')
      await page.waitForSelector('header.top nav')
      return page
    }
    const shot = async (page: Page, name: string): Promise<void> => {
      await page.screenshot({ path: join(shots, `${name}.png`) })
    }

    t.test('login page, first load and the pit wall', async (t) => {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
      await page.goto(`${base}/console/`)
      await page.waitForSelector('#credential')
      await shot(page, 'login')
      // First load: JS and CSS of the console as transferred (compressed), from the browser's resource timing.
      const first = await page.evaluate(() =>
        performance.getEntriesByType('resource').map((e) => ({
          name: e.name,
          size: (e as PerformanceResourceTiming).transferSize,
          body: (e as PerformanceResourceTiming).decodedBodySize,
        })),
      )
      const assets = first.filter((r) => /\.(js|css)(\?|$)/.test(r.name))
      const bytes = assets.reduce((n, r) => n + r.size, 0)
      const decoded = assets.reduce((n, r) => n + r.body, 0)
      t.ok(
        assets.some((r) => r.name.endsWith('.js')) && assets.some((r) => r.name.endsWith('.css')),
        'the console loads one JS and one CSS bundle',
      )
      t.ok(bytes > 0 && bytes < 200_000, `first load ${bytes} bytes of JS+CSS transferred`)
      console.log(`# console first load: ${bytes} B JS+CSS transferred (${decoded} B decoded), ${assets.length} files`)
      // A wrong credential is refused with the API's message, and nothing is kept.
      await page.fill('#credential', 'not-a-key')
      await page.click('button[type=submit]')
      await page.waitForSelector('.login .error')
      t.match(await page.textContent('.login .error'), /GW_ERR_UNAUTHENTICATED/)
      t.equal(
        await page.evaluate(() => sessionStorage.getItem('pitwall.credential')),
        null,
        'a refused credential is not kept',
      )
      await page.close()

      const op = await open(jwt({ sub: 'u-operator', role: 'operator' }))
      t.match(await op.textContent('.who .user'), /u-operator · operator/)
      await op.click('a[data-route=pitwall]')
      await op.waitForFunction(
        () => Number(document.querySelector('[data-count=cars]')?.textContent) === 20,
        undefined,
        { timeout: 15_000 },
      )
      t.pass('20 cars on the pit wall from the live feed')
      // Time to the first live update: a marker speed published now, seen in car-20's card.
      const marker = 333.3
      const sentAt = Date.now()
      speedOverride.set(19, marker)
      publish('vehicle', 'car-20', carReading(19, Date.now(), t0, marker))
      await op.waitForFunction(
        (m) => document.querySelector('[data-car=car-20] [data-field=speed]')?.textContent === String(Math.round(m)),
        marker,
        { timeout: 5_000, polling: 'raf' },
      )
      const liveMs = Date.now() - sentAt
      speedOverride.delete(19)
      t.ok(liveMs < 1_000, `a live update appears within a second (${liveMs} ms)`)
      console.log(`# console time to live update: ${liveMs} ms (publish -> NATS -> gateway -> SSE -> rendered)`)
      // Frame intervals while 20 cars stream at 20 Hz (400 readings/s), over 5 s, and the console's own work in each
      // frame (the `pitwall:frame` measures: applying the events and re-rendering the cards).
      await op.evaluate(() => {
        performance.clearMeasures('pitwall:frame')
      })
      // PITWALL_CONSOLE_PROFILE=<file>: a CPU profile of the page over the measured 5 s (Chrome DevTools format) and
      // the functions with the most self time, to find what a frame costs.
      const profileTo = process.env.PITWALL_CONSOLE_PROFILE
      const cdp = profileTo ? await op.context().newCDPSession(op) : undefined
      if (cdp) {
        await browser.startTracing(op, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] })
        await cdp.send('Profiler.enable')
        await cdp.send('Profiler.setSamplingInterval', { interval: 200 })
        await cdp.send('Profiler.start')
      }
      const frames = await op.evaluate(
        async () =>
          new Promise<number[]>((done) => {
            const out: number[] = []
            let last = performance.now()
            const end = last + 5_000
            const step = (now: number): void => {
              out.push(now - last)
              last = now
              if (now < end) requestAnimationFrame(step)
              else done(out)
            }
            requestAnimationFrame(step)
          }),
      )
      if (cdp && profileTo) {
        const { profile } = await cdp.send('Profiler.stop')
        await (await import('node:fs/promises')).writeFile(profileTo, JSON.stringify(profile))
        console.log(
          `# CPU profile of the pit wall in ${profileTo}; self time by function:\n${selfTimes(profile)
            .slice(0, 12)
            .map((r) => `#   ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`)
            .join('\n')}`,
        )
        const traceText = (await browser.stopTracing()).toString()
        await (await import('node:fs/promises')).writeFile(`${profileTo}.trace.json`, traceText)
        const trace = JSON.parse(traceText) as { traceEvents: TraceEvent[] }
        console.log(
          `# the renderer's main thread over the 5 s, by trace event (ms, nested events counted in their parents too):\n${mainThreadTimes(
            trace.traceEvents,
          )
            .slice(0, 16)
            .map((r) => `#   ${r.ms.toFixed(0).padStart(6)} ms  ${String(r.n).padStart(5)}x  ${r.name}`)
            .join('\n')}`,
        )
      }
      const sorted = [...frames].sort((a, b) => a - b)
      const p95 = sorted[Math.floor(sorted.length * 0.95)] ?? Infinity
      const p50 = sorted[Math.floor(sorted.length * 0.5)] ?? Infinity
      const work = (await op.evaluate(() => performance.getEntriesByName('pitwall:frame').map((e) => e.duration))).sort(
        (a, b) => a - b,
      )
      const w95 = work[Math.floor(work.length * 0.95)] ?? Infinity
      const load = (await import('node:os')).loadavg()[0] ?? 0
      console.log(
        `# console frames with 20 cars x 20 Hz over 5 s: ${frames.length} frames, interval p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms; console work per rendered frame p50 ${(work[Math.floor(work.length / 2)] ?? 0).toFixed(2)} ms, p95 ${w95.toFixed(2)} ms (${work.length} frames rendered); load average ${load.toFixed(1)}; ${published} readings published so far`,
      )
      // The budget the console controls: its work per rendered frame (applying the events, re-rendering the changed
      // cards) fits in a 60 Hz frame at the median. The tail and the frame interval depend on the machine (this test
      // runs the whole stack beside the browser on 2 shared cores, and a wall-clock measure includes the time the
      // browser was not scheduled; the fewer frames the machine allows, the more cars change per frame): printed
      // above with the load average, not asserted.
      t.ok(work.length >= 20, `${work.length} frames rendered live updates in 5 s`)
      const w50 = work[Math.floor(work.length / 2)] ?? Infinity
      t.ok(w50 < 16.7, `console work per frame p50 ${w50.toFixed(2)} ms < 16.7 ms`)
      // The card shows corners against thresholds and the pit-stop score factors.
      t.equal(await op.locator('[data-car=car-05] .corner').count(), 4)
      t.ok((await op.locator('[data-car=car-05] .factor').count()) === 4, 'four pit-stop factors')
      await shot(op, 'pitwall')
      await op.close()
    })

    t.test('alerts: acknowledge in the console, seen in the API; viewer cannot', async (t) => {
      const op = await open(jwt({ sub: 'u-operator', role: 'operator' }))
      await op.click('a[data-route=alerts]')
      const row = op.locator(`tr[data-alert="${alertId}"]`)
      await row.waitFor({ timeout: 10_000 })
      t.match(await row.textContent(), /brake overheat/)
      await row.click()
      await op.waitForSelector(`aside.detail[data-alert="${alertId}"]`)
      t.equal(await op.getAttribute('aside.detail [data-status]', 'data-status'), 'active_unacknowledged')
      await op.click('aside.detail button[data-action=ack]')
      await op.waitForSelector(
        'aside.detail [data-status=active_acknowledged], aside.detail [data-status=cleared_acknowledged]',
      )
      await op.fill('aside.detail input[placeholder^="add a comment"]', 'driver told to lift and coast')
      await op.click('aside.detail button[data-action=comment]')
      await op.waitForSelector('ol.timeline >> text=driver told to lift and coast')
      const api = await call('GET', `/v1/alerts/${encodeURIComponent(alertId ?? '')}`, admin)
      t.match(
        api.body,
        { alertId, acknowledged: true, acknowledgedBy: 'u-operator' },
        'the API shows the acknowledgement made in the console',
      )
      const hist = await call('GET', `/v1/alerts/${encodeURIComponent(alertId ?? '')}/history`, admin)
      t.ok(
        (hist.body.items as Json[]).some(
          (h) => h.action === 'comment' && h.comment === 'driver told to lift and coast' && h.by === 'u-operator',
        ),
        'the comment is in the audit trail',
      )
      await shot(op, 'alerts')
      await op.close()

      const viewer = await open(VIEW_KEY)
      t.match(await viewer.textContent('.who .user'), /dash · viewer/)
      await viewer.locator(`tr[data-alert="${alertId}"]`).click()
      await viewer.waitForSelector(`aside.detail[data-alert="${alertId}"]`)
      for (const action of ['ack', 'clear', 'assign', 'comment'])
        t.ok(
          await viewer.isDisabled(`aside.detail button[data-action=${action}]`),
          `a viewer's ${action} button is disabled`,
        )
      t.match(await viewer.textContent('aside.detail .note'), /viewer/)
      const refused = await viewer.evaluate(async (id) => {
        const r = await fetch(`/v1/alerts/${encodeURIComponent(id)}/clear`, {
          method: 'POST',
          headers: {
            'x-api-key': sessionStorage.getItem('pitwall.credential') ?? '',
            'content-type': 'application/json',
          },
          body: '{}',
        })
        return { status: r.status, body: (await r.json()) as { code: string } }
      }, alertId ?? '')
      t.match(
        refused,
        { status: 403, body: { code: 'GW_ERR_FORBIDDEN' } },
        'the API refuses a viewer from the console page',
      )
      await viewer.close()
    })

    /**
     * Sensors (environment): the map with every sensor placed, late readings and live alerts as the API counts them;
     * the trend: three sensors on one chart, the last hour against the same hour yesterday, the alert distribution.
     */
    const sensorChecks = async (t: Test, page: Page): Promise<void> => {
      await page.waitForSelector(`.map.sensor-map[data-ready=yes][data-placed="${envs.length}"]`, { timeout: 20_000 })
      t.pass(`sensors: the map places the ${envs.length} sensors from their registry locations`)
      // late readings: what the API counts for the last 24 h, per sensor, is in the table
      let late = 0
      for (let i = 0; i < 50 && late < 2; i++) {
        const r = await call(
          'GET',
          `/v1/rollups/late-readings?kind=sensor&profile=environment&from=${Date.now() - 86_400_000}`,
          admin,
        )
        late = ((r.body.byEntity as Json[]).find((e) => e.entity === 'env-0003')?.count as number | undefined) ?? 0
        if (late < 2) await sleep(200)
      }
      t.equal(late, 2, "the API counts env-0003's 2 late readings")
      await page.waitForSelector('tr[data-entity="env-0003"] td[data-late="2"]', { timeout: 35_000 })
      t.pass('sensors: the table shows them (late readings of the last 24 h)')
      // env-0006's low battery: a live alert, in the list and in the API
      await page.waitForSelector('[data-live-alert^="sensor:env-0006:battery_low"]', { timeout: 10_000 })
      const open = (await call('GET', '/v1/alerts?state=open&entity=env-0006', admin)).body.items as Json[]
      t.ok(
        open.some((a) => a.type === 'battery_low'),
        "sensors: the live battery_low alert of env-0006 is the API's",
      )
      await shot(page, 'sensors')
      // Trend: pick two more sensors (env-0001 is picked), compare them, and the hour against yesterday's.
      await page.click('[data-tab=trend]')
      await page.click('tr[data-entity="env-0002"]')
      await page.click('tr[data-entity="env-0003"]')
      await page.waitForSelector('.chart[data-chart=compare][data-series="3"] canvas', { timeout: 10_000 })
      const points = Number(await page.getAttribute('.chart[data-chart=compare]', 'data-points'))
      const apiWindows = (
        (
          await call(
            'GET',
            `/v1/entities/sensor/env-0001/windows?window=tumbling_1m&from=${Date.now() - 3_600_000}&limit=100`,
            admin,
          )
        ).body.items as Json[]
      ).length
      t.ok(
        points >= apiWindows - 1 && points <= apiWindows + 2,
        `sensors trend: 3 sensors on one chart over ${points} window starts (the API has ${apiWindows} windows of env-0001 in the hour)`,
      )
      await page.waitForSelector('.chart[data-chart=periods][data-series="2"] canvas', { timeout: 10_000 })
      t.match(
        await page.textContent('section.panel'),
        new RegExp(`a day before \\(${YESTERDAY_WINDOWS} windows\\)`),
        `sensors trend: the same hour yesterday, its ${YESTERDAY_WINDOWS} stored windows`,
      )
      // the alert distribution of the hour: the API's count, battery_low among the types
      const dist = (
        await call('GET', `/v1/rollups/alerts?kind=sensor&profile=environment&from=${Date.now() - 3_600_000}`, admin)
      ).body
      await page.waitForSelector(`[data-alert-dist="${String(dist.total)}"] [data-type=battery_low]`, {
        timeout: 10_000,
      })
      t.pass(`sensors trend: the alert distribution of the hour (${String(dist.total)} alerts, battery_low among them)`)
      await page.waitForSelector('[data-late-period="2"]', { timeout: 10_000 })
      t.pass('sensors trend: the late readings of the hour')
      await sleep(500)
      await shot(page, 'sensors-trend')
      await page.click('[data-tab=now]')
    }

    t.test('fleet, plant, sensors, assets and sites render real data', async (t) => {
      const page = await open(SVC_KEY)
      await page.click('a[data-route=fleet]')
      await page.waitForSelector('.map[data-ready=yes]', { timeout: 20_000 })
      await page.waitForSelector(`tr[data-vehicle="${VIN}"]`, { timeout: 10_000 })
      await page.waitForSelector(`tr[data-vehicle="${PARKED}"]`, { timeout: 10_000 })
      await page.waitForSelector('[data-fence=depot]')
      t.pass('the road vehicles and the depot geofence are listed')
      await page.click(`tr[data-vehicle="${VIN}"]`)
      await page.waitForSelector(`table[data-trips="${VIN}"]`)
      t.pass("a vehicle's trips are read from the API")
      const painted = await page.evaluate(() => {
        const c = document.querySelector('.map canvas')
        return c instanceof HTMLCanvasElement ? { w: c.width, h: c.height } : null
      })
      t.ok(painted !== null && painted.w > 0, `the map canvas is drawn (${JSON.stringify(painted)})`)
      await sleep(1_000)
      await shot(page, 'fleet')

      // Vehicle and customer management (an operator key): create a customer, assign a vehicle, edit, create a vehicle.
      await page.waitForSelector(`[data-registry-vehicle="${VIN}"]`)
      await page.fill('[data-form=customer] input[name=cid]', 'acme-console')
      await page.fill('[data-form=customer] input[name=cnew]', 'Acme Logistics')
      await page.click('[data-form=customer] button[type=submit]')
      await page.waitForSelector('[data-customer=acme-console]')
      t.match(
        (await call('GET', '/v1/customers/acme-console', admin)).body,
        { id: 'acme-console', name: 'Acme Logistics' },
        'the customer created in the console is in the API',
      )
      await page.selectOption(`[data-registry-vehicle="${VIN}"] select[name=customer]`, 'acme-console')
      const assigned = async (): Promise<unknown> => (await call('GET', `/v1/vehicles/${VIN}`, admin)).body.customerId
      for (let i = 0; i < 50 && (await assigned()) !== 'acme-console'; i++) await sleep(100)
      t.equal(await assigned(), 'acme-console', 'the vehicle assigned in the console is assigned in the API')
      await page.click(`[data-registry-vehicle="${VIN}"] button[data-edit]`)
      await page.fill(`[data-registry-vehicle="${VIN}"] input[name=model]`, '7900 Electric')
      await page.click(`[data-registry-vehicle="${VIN}"] button[type=submit]`)
      await page.waitForSelector(`[data-registry-vehicle="${VIN}"] >> text=Volvo 7900 Electric 2022`)
      t.match(
        (await call('GET', `/v1/vehicles/${VIN}`, admin)).body,
        { model: '7900 Electric', customerId: 'acme-console' },
        'edited in the API',
      )
      const NEW_VIN = '11111111111111111'
      await page.fill('[data-form=vehicle] input[name=vin]', NEW_VIN)
      await page.fill('[data-form=vehicle] input[name=vbrand]', 'Scania')
      await page.fill('[data-form=vehicle] input[name=vmodel]', 'R 450')
      await page.fill('[data-form=vehicle] input[name=vyear]', '2021')
      // race, not road: a road vehicle without a reading would make the map's state look-up answer 404
      await page.selectOption('[data-form=vehicle] select[name=vprofile]', 'race')
      await page.selectOption('[data-form=vehicle] select[name=vcustomer]', 'acme-console')
      await page.click('[data-form=vehicle] button[type=submit]')
      await page.waitForSelector(`[data-registry-vehicle="${NEW_VIN}"]`)
      t.match(
        (await call('GET', `/v1/vehicles/${NEW_VIN}`, admin)).body,
        { brand: 'Scania', model: 'R 450', year: 2021, profile: 'race', customerId: 'acme-console' },
        'the vehicle created in the console',
      )
      await page.fill('[data-form=vehicle] input[name=vin]', 'NOT-A-VIN')
      await page.fill('[data-form=vehicle] input[name=vbrand]', 'x')
      await page.fill('[data-form=vehicle] input[name=vmodel]', 'x')
      await page.fill('[data-form=vehicle] input[name=vyear]', '2020')
      await page.click('[data-form=vehicle] button[type=submit]')
      await page.waitForSelector('[data-registry=fleet] .error >> text=GW_ERR_VIN_INVALID')
      t.pass('a bad VIN is refused with its code, shown in the console')
      await page.click('[data-customer=acme-console] button[data-edit]')
      await page.fill('[data-customer=acme-console] input[name=cname]', 'Acme Logistics EU')
      await page.click('[data-customer=acme-console] button[type=submit]')
      await page.waitForSelector('[data-customer=acme-console] >> text=Acme Logistics EU')
      t.equal(
        (await call('GET', '/v1/customers/acme-console', admin)).body.name,
        'Acme Logistics EU',
        'renamed in the API',
      )
      await page.locator('aside.detail').screenshot({ path: join(shots, 'fleet-registry.png') })

      for (const [route, ids, field] of [
        ['plant', plant.map((x) => x[0]), 'value'],
        ['sensors', envs, 'temperature'],
        ['assets', assets, 'vibration'],
      ] as const) {
        await page.click(`a[data-route=${route}]`)
        for (const id of ids) await page.waitForSelector(`tr[data-entity="${id}"]`, { timeout: 10_000 })
        // live values arrive on the feed within a second
        const first = ids[0] ?? ''
        await page.waitForFunction(
          ([id, f]) =>
            /\d/.test(document.querySelector(`tr[data-entity="${id}"] td[data-field="${f}"]`)?.textContent ?? ''),
          [first, field] as const,
          { timeout: 3_000 },
        )
        t.pass(`${route}: ${ids.length} sensors with live ${field}`)
        await page.click(`tr[data-entity="${first}"]`)
        await page.waitForSelector('aside.detail .chart canvas', { timeout: 10_000 })
        t.pass(`${route}: a uPlot series of ${first}`)
        if (route === 'plant') {
          // the expected band of a plant sensor whose model has learned (one alerted from the start learns nothing):
          // the live state's model, drawn across the series, said to come from the current model
          type Model = { expected: number | null; sigma: number | null; warm: boolean }
          let healthy: { id: string; model: Model } | undefined
          const seen: string[] = []
          for (const id of ids) {
            const state = (await call('GET', `/v1/entities/sensor/${id}/state`, admin)).body.state as {
              model: Model
              alert: { type: string } | null
            }
            seen.push(`${id}: ${state.alert?.type ?? 'no alert'} sigma ${state.model.sigma}`)
            if (state.model.warm && (state.model.sigma ?? 0) > 0.01) {
              healthy = { id, model: state.model }
              break
            }
          }
          const m = healthy?.model
          t.ok(
            m && m.warm && typeof m.expected === 'number' && typeof m.sigma === 'number' && m.sigma > 0.01,
            `plant: the API gives ${healthy?.id}'s learned expected value and sigma (${JSON.stringify(m)}; ${seen.join(', ')})`,
          )
          await page.click(`tr[data-entity="${healthy?.id ?? first}"]`)
          await page.waitForSelector('aside.detail .chart[data-chart=band] canvas', { timeout: 10_000 })
          const points = Number(await page.getAttribute('aside.detail .chart[data-chart=band]', 'data-points'))
          t.ok(points > 0, `plant: the expected band is drawn over ${points} readings`)
          t.match(
            await page.textContent('aside.detail'),
            /expected ± 3σ \(band from the current model, σ \d/,
            'plant: the legend says k and where the band comes from',
          )
        }
        if (route === 'assets') {
          const api = (await call('GET', `/v1/entities/sensor/${first}/scores?name=failure_risk&limit=1000`, admin))
            .body.items as Json[]
          t.equal(api.length, RISK_HOURS, `assets: the API gives ${first}'s ${RISK_HOURS} stored risk scores`)
          await page.waitForSelector(`aside.detail .chart[data-chart=risk][data-points="${api.length}"] canvas`, {
            timeout: 10_000,
          })
          t.pass(`assets: the risk trend of ${first} is drawn with the API's ${api.length} scores`)
          t.match(
            await page.textContent('aside.detail'),
            /risk_high at 70 \(profile default\)/,
            'assets: the risk_high threshold line',
          )
        }
        if (route === 'sensors') {
          await page.waitForSelector('aside.detail >> text=window means', { timeout: 10_000 })
          t.pass('sensors: window means from the API')
          await sensorChecks(t, page)
        }
        // a few more live points on the series before the picture (the sensors' pictures are taken above)
        if (route !== 'sensors') {
          await sleep(3_000)
          await shot(page, route)
        }
      }

      await page.click('a[data-route=sites]')
      await page.waitForSelector('[data-site=a] [data-role]')
      t.equal(await page.getAttribute('[data-site=a] [data-role]', 'data-role'), 'normal')
      t.match(await page.textContent('[data-site=a] [data-field=epoch]'), /^\d+$/)
      t.equal(await page.locator('[data-site=a] .partitions span.own').count(), 4, 'site a owns its 4 partitions')
      t.match(await page.textContent('[data-site=b]'), /unreachable/)
      t.equal(
        await page.locator('[data-site=a] button[data-command]').count(),
        0,
        'an operator gets no failover/failback buttons',
      )
      await page.close()
      const viewer = await open(VIEW_KEY)
      await viewer.click('a[data-route=fleet]')
      await viewer.waitForSelector(`[data-registry-vehicle="${VIN}"]`)
      t.equal(await viewer.locator('[data-registry=fleet] form').count(), 0, 'a viewer gets no registry forms')
      t.ok(await viewer.isDisabled(`[data-registry-vehicle="${VIN}"] select[name=customer]`), 'nor a customer picker')
      t.equal(
        (
          await fetch(`${base}/v1/vehicles/${VIN}`, {
            method: 'PATCH',
            headers: { 'x-api-key': VIEW_KEY, 'content-type': 'application/json' },
            body: JSON.stringify({ customerId: null }),
          })
        ).status,
        403,
        "and the API refuses a viewer's write",
      )
      await viewer.close()
    })

    t.test('sites: failover and failback from the console (admin, confirmed, audited, progress shown)', async (t) => {
      const call2 = async (role: string, site: string, command: string): Promise<{ status: number; body: Json }> =>
        call('POST', `/v1/sites/${site}/${command}`, bearer(role), { reason: 'drill', confirm: true })
      t.match(
        await call2('operator', 'a', 'failover'),
        { status: 403, body: { code: 'GW_ERR_FORBIDDEN' } },
        'an operator may not fail over',
      )
      t.match(
        await call2('admin', 'b', 'failover'),
        { status: 502, body: { code: 'GW_ERR_SITE_UNREACHABLE' } },
        'site b has no controller running',
      )
      t.match(await call2('admin', 'zz', 'failover'), { status: 404, body: { code: 'GW_ERR_SITE_UNKNOWN' } })
      const direct = await fetch(`http://127.0.0.1:${controller.port}/failover`, {
        method: 'POST',
        body: JSON.stringify({ by: 'mallory', reason: 'x' }),
      })
      t.equal(direct.status, 401, 'the controller refuses a command without its token')

      const page = await open(jwt({ sub: 'u-admin', role: 'admin' }))
      await page.click('a[data-route=sites]')
      await page.waitForSelector('[data-site=a] [data-role]')
      const epoch = Number(await page.textContent('[data-site=a] [data-field=epoch]'))
      await page.click('[data-site=a] button[data-command=failover]')
      await page.waitForSelector('[data-dialog=failover]')
      t.ok(await page.isDisabled('[data-dialog=failover] button[type=submit]'), 'no confirmation without a reason')
      await page.fill('[data-dialog=failover] input[name=reason]', 'drill: site b lost power')
      await shot(page, 'sites-confirm')
      const t1 = Date.now()
      await page.click('[data-dialog=failover] button[type=submit]')
      await page.waitForSelector('[data-site=a] [data-operation][data-state=succeeded]', { timeout: 10_000 })
      t.pass(`failover shown as succeeded ${Date.now() - t1} ms after confirming`)
      // Site b owns no partition here (its controller is not running, P=4 are all a's): the CLI's own answer.
      t.match(
        await page.textContent('[data-site=a] [data-operation] .lines'),
        /nothing to take: b owns no partitions \(epoch \d+\)/,
      )
      t.equal(
        Number(await page.textContent('[data-site=a] [data-field=epoch]')),
        epoch,
        'nothing moved: the epoch is unchanged',
      )
      await shot(page, 'sites')
      // Failback needs the peer's JetStream domain over the link, which this stack has not: the CLI's lines, then its error.
      await page.click('[data-site=a] button[data-command=failback]')
      await page.fill('[data-dialog=failback] input[name=reason]', 'drill: back')
      await page.click('[data-dialog=failback] button[type=submit]')
      await page.waitForSelector('[data-site=a] [data-operation][data-state=failed]', { timeout: 15_000 })
      t.match(
        await page.textContent('[data-site=a] [data-operation] .lines'),
        /^failback to a: producers[^]*\nerror: \S/,
      )
      const audit = await pool.query<{ command: string; actor: string; reason: string; outcome: string }>(
        "SELECT command, actor, reason, outcome FROM site_command_audit WHERE site = 'a' AND actor = 'u-admin' ORDER BY id",
      )
      t.match(
        audit.rows,
        [
          { command: 'failover', reason: 'drill: site b lost power', outcome: 'accepted' },
          { command: 'failback', reason: 'drill: back', outcome: 'accepted' },
        ],
        'both audited with who and why',
      )
      await page.close()
    })

    t.test('no errors in the pages', async (t) => {
      // MapLibre may warn about WebGL in software rendering; errors are failures.
      // The one 403 is the viewer's refused clear above, which the browser logs as a failed resource.
      const forbidden = errors.findIndex((e) => /status of 403/.test(e))
      t.not(forbidden, -1, 'the refused clear was logged')
      // And the one 400 is the bad VIN the fleet test submits on purpose.
      const badVin = errors.findIndex((e) => /status of 400/.test(e))
      t.not(badVin, -1, 'the refused VIN was logged')
      t.same(
        errors.filter((e, i) => i !== forbidden && i !== badVin && !/WebGL|GPU stall|swiftshader/i.test(e)),
        [],
      )
      console.log(`# console screenshots in ${shots}`)
    })
  },
)
