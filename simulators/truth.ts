/**
 * What every domain simulator under simulators/ shares: the seeded PRNG and per-entity seeding (same scheme
 * as simulators/simulator.ts, so adding entities never changes the others' streams), the simulated item, and the
 * ground-truth record of an injected anomaly with its writers (NDJSON or CSV file).
 */
import { createWriteStream, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import type { EntityKind, Reading } from '../actors/mod.js'

/** One injected anomaly: the readings of `entity` with `start <= ts <= end` are part of it. */
export interface Episode {
  kind: EntityKind
  entity: string
  type: string
  start: number
  end: number
  /** How it was injected (e.g. `stuck`, `dropout`, `replay`): for reports, never read by a detector. */
  mode?: string
}

/** A simulated reading in delivery order. */
export interface DomainItem {
  kind: EntityKind
  id: string
  reading: Reading
  /** Delivery time, ms (event time plus transport delay). */
  at: number
}

/** A domain simulator: readings one at a time, and the episodes injected so far (planned ahead, ends known). */
export interface DomainSimulator {
  readonly startTs: number
  next(): DomainItem
  /** Episodes that start at or before `untilTs`, their end clipped to `untilTs`. */
  episodes(untilTs: number): Episode[]
}

/** mulberry32: one uint32 of state. */
export class Rng {
  private s: number
  constructor(seed: number) {
    this.s = seed >>> 0
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  range(a: number, b: number): number {
    return a + (b - a) * this.next()
  }
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next())
  }
  exp(mean: number): number {
    return -mean * Math.log(1 - this.next())
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T
  }
}

/** Seeds a per-entity PRNG from the run seed, a domain slot and the entity's index. */
export function entitySeed(seed: number, domain: number, index: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.floor(seed / 4294967296)
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ Math.imul(domain + 1, 0x27d4eb2f)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) ^ index
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  return (h ^ (h >>> 13)) >>> 0
}

/** Episodes planned up to now, clipped to `untilTs`. */
export function clipEpisodes(all: readonly Episode[], untilTs: number): Episode[] {
  return all.filter((e) => e.start <= untilTs).map((e) => ({ ...e, end: Math.min(e.end, untilTs) }))
}

/** Rounds to `d` decimals. */
export function round(x: number, d: number): number {
  const p = 10 ** d
  return Math.round(x * p) / p
}

/** Writes episodes to `path`: CSV when it ends in `.csv` (header kind,entity,type,start,end,mode), NDJSON otherwise. */
export async function writeGroundTruth(path: string, episodes: readonly Episode[]): Promise<void> {
  const out: WriteStream = createWriteStream(path)
  const csv = path.endsWith('.csv')
  if (csv) out.write('kind,entity,type,start,end,mode\n')
  for (const e of episodes) {
    const line = csv
      ? `${e.kind},${e.entity},${e.type},${e.start},${e.end},${e.mode ?? ''}\n`
      : `${JSON.stringify(e)}\n`
    if (!out.write(line)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}
