/**
 * Geometry of the fleet evaluation, written for it alone (it shares no code or constants with the road
 * profile it scores). Distances are great-circle (haversine, mean Earth radius); fence tests and crossings work
 * in a local tangent plane around the fence, where at fence sizes (< 2 km) the flattening error is far below a
 * millimetre.
 */
export type LatLon = [number, number]

const R_EARTH_M = 6_371_008.8
const RAD = Math.PI / 180

/** Great-circle distance in metres. */
export function haversineM(a: LatLon, b: LatLon): number {
  const dLat = (b[0] - a[0]) * RAD
  const dLon = (b[1] - a[1]) * RAD
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * RAD) * Math.cos(b[0] * RAD) * Math.sin(dLon / 2) ** 2
  return 2 * R_EARTH_M * Math.asin(Math.min(1, Math.sqrt(h)))
}

/** Initial bearing from a to b, degrees clockwise from north in [0, 360). */
export function bearingDeg(a: LatLon, b: LatLon): number {
  const f1 = a[0] * RAD
  const f2 = b[0] * RAD
  const dl = (b[1] - a[1]) * RAD
  const y = Math.sin(dl) * Math.cos(f2)
  const x = Math.cos(f1) * Math.sin(f2) - Math.sin(f1) * Math.cos(f2) * Math.cos(dl)
  return (Math.atan2(y, x) / RAD + 360) % 360
}

/** A local east/north plane (metres) around an origin. */
export class LocalPlane {
  private readonly kx: number
  private readonly ky: number
  constructor(readonly origin: LatLon) {
    this.ky = R_EARTH_M * RAD
    this.kx = R_EARTH_M * RAD * Math.cos(origin[0] * RAD)
  }
  toXY(p: LatLon): [number, number] {
    return [(p[1] - this.origin[1]) * this.kx, (p[0] - this.origin[0]) * this.ky]
  }
  toLatLon(x: number, y: number): LatLon {
    return [this.origin[0] + y / this.ky, this.origin[1] + x / this.kx]
  }
}

/** Offsets a point by east/north metres (local plane around the point itself). */
export function offsetM(p: LatLon, eastM: number, northM: number): LatLon {
  return new LocalPlane(p).toLatLon(eastM, northM)
}

/** A polyline with cumulative great-circle distances, for position-at-distance lookups. */
export class Polyline {
  readonly cum: Float64Array
  readonly length: number
  constructor(readonly pts: LatLon[]) {
    this.cum = new Float64Array(pts.length)
    for (let i = 1; i < pts.length; i++)
      this.cum[i] = (this.cum[i - 1] as number) + haversineM(pts[i - 1] as LatLon, pts[i] as LatLon)
    this.length = this.cum[pts.length - 1] ?? 0
  }

  /** Index i of the segment [i, i+1] holding distance s (binary search). */
  segmentAt(s: number): number {
    let lo = 0
    let hi = this.pts.length - 1
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1
      if ((this.cum[mid] as number) <= s) lo = mid
      else hi = mid
    }
    return lo
  }

  /** Point at distance s along the line (linear in lat/lon inside a segment: segments are metres long). */
  at(s: number): LatLon {
    if (s <= 0) return this.pts[0] as LatLon
    if (s >= this.length) return this.pts[this.pts.length - 1] as LatLon
    const i = this.segmentAt(s)
    const a = this.pts[i] as LatLon
    const b = this.pts[i + 1] as LatLon
    const d = (this.cum[i + 1] as number) - (this.cum[i] as number)
    const f = d > 0 ? (s - (this.cum[i] as number)) / d : 0
    return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]
  }

  /** Direction of travel at s, degrees. */
  headingAt(s: number): number {
    const i = this.segmentAt(Math.min(Math.max(s, 0), this.length))
    return bearingDeg(this.pts[i] as LatLon, this.pts[Math.min(i + 1, this.pts.length - 1)] as LatLon)
  }

  /** Distance along the line of the point of the line nearest to p, among the segments overlapping
   *  [fromS, toS] (a window keeps looping routes from projecting a stop onto the wrong pass). */
  project(p: LatLon, fromS = 0, toS = Infinity): number {
    const plane = new LocalPlane(p)
    let best = Infinity
    let bestS = fromS
    for (let i = this.segmentAt(fromS); i + 1 < this.pts.length && (this.cum[i] as number) <= toS; i++) {
      const [ax, ay] = plane.toXY(this.pts[i] as LatLon)
      const [bx, by] = plane.toXY(this.pts[i + 1] as LatLon)
      const dx = bx - ax
      const dy = by - ay
      const l2 = dx * dx + dy * dy
      const f = l2 > 0 ? Math.min(1, Math.max(0, -(ax * dx + ay * dy) / l2)) : 0
      const ex = ax + f * dx
      const ey = ay + f * dy
      const d2 = ex * ex + ey * ey
      if (d2 < best) {
        best = d2
        bestS = Math.max(fromS, (this.cum[i] as number) + f * ((this.cum[i + 1] as number) - (this.cum[i] as number)))
      }
    }
    return bestS
  }
}

/** A geofence: a circle (centre, radius in metres, inside when the great-circle distance <= radius) or a
 *  simple polygon (ring of [lat, lon], not closed, inside by the even-odd rule in the fence's local plane). */
export type Fence =
  | { id: string; kind: 'circle'; center: LatLon; radiusM: number; note: string }
  | { id: string; kind: 'polygon'; ring: LatLon[]; note: string }

/** Signed distance (m) from p to the fence boundary: negative inside, positive outside. */
export function fenceDepthM(f: Fence, p: LatLon): number {
  if (f.kind === 'circle') return haversineM(f.center, p) - f.radiusM
  const plane = new LocalPlane(f.ring[0] as LatLon)
  const [px, py] = plane.toXY(p)
  const xy = f.ring.map((q) => plane.toXY(q))
  let inside = false
  let best = Infinity
  for (let i = 0, j = xy.length - 1; i < xy.length; j = i++) {
    const [xi, yi] = xy[i] as [number, number]
    const [xj, yj] = xy[j] as [number, number]
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside
    const dx = xj - xi
    const dy = yj - yi
    const l2 = dx * dx + dy * dy
    const f2 = l2 > 0 ? Math.min(1, Math.max(0, ((px - xi) * dx + (py - yi) * dy) / l2)) : 0
    best = Math.min(best, Math.hypot(xi + f2 * dx - px, yi + f2 * dy - py))
  }
  return inside ? -best : best
}

export function insideFence(f: Fence, p: LatLon): boolean {
  return fenceDepthM(f, p) <= 0
}
