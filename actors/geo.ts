/**
 * Geometry of geofences: circles and GeoJSON-style polygons (outer ring plus holes, [lon, lat] pairs), and the
 * signed distance of a point to their boundary (negative inside), which the road profile needs for enter/exit
 * hysteresis. Pure and allocation-light: a shape is compiled once per geofence version into a local tangent
 * plane (equirectangular projection about the shape's first vertex / centre), where a fence of a few kilometres
 * is exact to well under a metre; every fix is then a ray-casting test plus a nearest-edge distance in metres.
 * Also the geofence set as the gateway publishes it and the workers read it (actors/references.ts).
 */
import { ConfigError } from './errors.js'

const EARTH_R_M = 6_371_008.8
const RAD = Math.PI / 180

/** Great-circle distance in metres. */
export function haversineM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RAD
  const dLon = (lon2 - lon1) * RAD
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_R_M * Math.asin(Math.min(1, Math.sqrt(a)))
}

export type GeofenceShape =
  | { type: 'circle'; lat: number; lon: number; radiusM: number }
  /** GeoJSON Polygon coordinates: rings of [lon, lat], the first the outer boundary, the others holes; closed or not. */
  | { type: 'polygon'; coordinates: number[][][] }

/** One geofence as the gateway publishes it. `vehicles` null: every vehicle of the deployment. */
export interface GeofenceDef {
  id: string
  name?: string
  shape: GeofenceShape
  /** Entities (vehicle ids) the fence applies to after the gateway expanded customer assignments; null = all. */
  vehicles: string[] | null
  /** Exit hysteresis (m) and minimum dwell before an enter counts (ms); null = the profile's defaults. */
  marginM: number | null
  minDwellMs: number | null
}

/** The whole set, one KV revision per change (actors/references.ts picks the revision in effect). */
export interface GeofenceSet {
  /** Monotonic version (the gateway's counter); recorded in the actor snapshot and in geofence outputs. */
  version: number
  fences: GeofenceDef[]
}

/** Reference-data name of the geofence set in the reference bucket. */
export const GEOFENCES_REF = 'geofences'

/** A shape compiled for fast tests: `signedM(lat, lon)` < 0 inside, > 0 outside, |value| = metres to the boundary. */
export interface CompiledShape {
  signedM(lat: number, lon: number): number
}

/** Checks a shape; throws ConfigError naming `at` (a setting or a body path). */
export function validateShape(s: GeofenceShape, at: string): void {
  if (!s || typeof s !== 'object') throw new ConfigError(at, 'must be a circle or a polygon')
  if (s.type === 'circle') {
    if (typeof s.lat !== 'number' || !(s.lat >= -90 && s.lat <= 90))
      throw new ConfigError(`${at}.lat`, 'must be in -90..90')
    if (typeof s.lon !== 'number' || !(s.lon >= -180 && s.lon <= 180))
      throw new ConfigError(`${at}.lon`, 'must be in -180..180')
    if (typeof s.radiusM !== 'number' || !Number.isFinite(s.radiusM) || s.radiusM <= 0)
      throw new ConfigError(`${at}.radiusM`, 'must be > 0')
    return
  }
  if (s.type !== 'polygon') throw new ConfigError(`${at}.type`, 'must be "circle" or "polygon"')
  if (!Array.isArray(s.coordinates) || s.coordinates.length === 0)
    throw new ConfigError(`${at}.coordinates`, 'must hold at least the outer ring')
  s.coordinates.forEach((ring, i) => {
    if (!Array.isArray(ring)) throw new ConfigError(`${at}.coordinates[${i}]`, 'must be an array of [lon, lat]')
    const open = openRing(ring)
    if (open.length < 3) throw new ConfigError(`${at}.coordinates[${i}]`, 'a ring needs at least 3 distinct vertices')
    ring.forEach((p, j) => {
      if (
        !Array.isArray(p) ||
        p.length < 2 ||
        typeof p[0] !== 'number' ||
        typeof p[1] !== 'number' ||
        !(p[0] >= -180 && p[0] <= 180) ||
        !(p[1] >= -90 && p[1] <= 90)
      ) {
        throw new ConfigError(
          `${at}.coordinates[${i}][${j}]`,
          'must be [lon, lat] with lon in -180..180 and lat in -90..90',
        )
      }
    })
  })
  // The local plane is good for fences of city scale; a continent-sized polygon would need another projection.
  const [lon0, lat0] = s.coordinates[0]?.[0] as number[]
  for (const ring of s.coordinates) {
    for (const p of ring) {
      if (haversineM(lat0 as number, lon0 as number, p[1] as number, p[0] as number) > 200_000) {
        throw new ConfigError(`${at}.coordinates`, 'a polygon must fit within 200 km of its first vertex')
      }
    }
  }
}

/** The ring without its closing vertex (GeoJSON repeats the first vertex last). */
function openRing(ring: number[][]): number[][] {
  const first = ring[0]
  const last = ring[ring.length - 1]
  if (ring.length > 1 && first && last && first[0] === last[0] && first[1] === last[1]) return ring.slice(0, -1)
  return ring
}

/** Distance in the plane from (px, py) to the segment (ax, ay)-(bx, by). */
function segDist(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax
  const dy = by - ay
  const len2 = dx * dx + dy * dy
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0
  t = t < 0 ? 0 : t > 1 ? 1 : t
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy))
}

/** Compiles a (valid) shape. */
export function compileShape(s: GeofenceShape): CompiledShape {
  if (s.type === 'circle') {
    const { lat, lon, radiusM } = s
    return { signedM: (la, lo) => haversineM(lat, lon, la, lo) - radiusM }
  }
  const [lon0, lat0] = s.coordinates[0]?.[0] as [number, number]
  const kx = Math.cos(lat0 * RAD) * EARTH_R_M * RAD
  const ky = EARTH_R_M * RAD
  // Flat arrays of projected vertices per ring: x0, y0, x1, y1, ...
  const rings = s.coordinates.map((ring) => {
    const open = openRing(ring)
    const xy = new Float64Array(open.length * 2)
    open.forEach((p, i) => {
      xy[2 * i] = ((p[0] as number) - lon0) * kx
      xy[2 * i + 1] = ((p[1] as number) - lat0) * ky
    })
    return xy
  })
  return {
    signedM(la, lo) {
      const px = (lo - lon0) * kx
      const py = (la - lat0) * ky
      let inside = false
      let best = Infinity
      for (const xy of rings) {
        const n = xy.length / 2
        for (let i = 0, j = n - 1; i < n; j = i++) {
          const xi = xy[2 * i] as number,
            yi = xy[2 * i + 1] as number
          const xj = xy[2 * j] as number,
            yj = xy[2 * j + 1] as number
          // Even-odd rule over all rings: a point in a hole crosses the hole's ring once more.
          if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside
          const d = segDist(px, py, xi, yi, xj, yj)
          if (d < best) best = d
        }
      }
      return inside ? -best : best
    },
  }
}

/** Checks a published geofence set (workers refuse a malformed revision and keep the previous one). */
export function validateGeofenceSet(v: unknown): GeofenceSet {
  const s = v as GeofenceSet
  if (!s || typeof s !== 'object' || !Number.isInteger(s.version) || !Array.isArray(s.fences)) {
    throw new ConfigError('geofences', 'must be {version, fences[]}')
  }
  s.fences.forEach((f, i) => {
    const at = `geofences.fences[${i}]`
    if (!f || typeof f.id !== 'string' || f.id === '' || f.id.includes(':'))
      throw new ConfigError(`${at}.id`, 'must be a non-empty string without ":"')
    validateShape(f.shape, `${at}.shape`)
    if (f.vehicles !== null && !Array.isArray(f.vehicles))
      throw new ConfigError(`${at}.vehicles`, 'must be null or an array of ids')
  })
  return s
}
