/**
 * Rate limits counted across the gateways of a site (issue 19). Counted per process, N gateways behind a load
 * balancer allowed N times the limit; here every gateway of the site counts in one NATS KV bucket on the site's
 * own JetStream (nothing new to run), so the limit holds for their sum.
 *
 * Counting: fixed windows aligned to the clock (window w = floor(now / windowMs)), one key per credential and
 * window, `<sha256(credential key) base64url>.<w>`, incremented by compare-and-set (`create` for the first request
 * of a window, `update` at the revision last seen; a lost race re-reads and retries). The last value and revision
 * of each key are kept, so a gateway that is alone on a key needs one round trip per request, two after another
 * gateway counted; concurrent requests of one key in one gateway are added in one write. Once a key is over the
 * limit it is not written any more (a flood costs reads of the cache, not KV writes). The bucket keeps no history and its
 * entries expire after two windows (bucket TTL), so no cleanup is needed; gateways of different window settings
 * share a bucket only by its first creator's TTL (keep the setting the same across a site).
 *
 * Fallback: when the store fails or does not answer within `storeTimeoutMs` (NATS or JetStream down, the bucket
 * gone), the request is counted by the per-process limiter instead (the old behaviour: N gateways allow N times
 * the limit while it lasts), `pitwall_gateway_rate_limit_store_up` goes to 0, the fallback is counted in
 * `pitwall_gateway_rate_limit_fallback_total` and logged once; the store is tried again after `storeRetryMs`.
 * Requests are never refused because the store is down.
 */
import { createHash } from 'node:crypto'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'

export interface Count {
  current: number
  ttl: number
}

/** The per-process limiter: fixed windows aligned like the shared ones, bounded in size. */
export class LocalCounter {
  private readonly counts = new Map<string, { w: number; n: number }>()
  constructor(private readonly maxKeys = 100_000) {}

  incr(key: string, windowMs: number, now = Date.now()): Count {
    const w = Math.floor(now / windowMs)
    let c = this.counts.get(key)
    if (!c || c.w !== w) {
      if (!c && this.counts.size >= this.maxKeys) this.counts.delete(this.counts.keys().next().value ?? '')
      c = { w, n: 0 }
      this.counts.set(key, c)
    }
    c.n++
    return { current: c.n, ttl: (w + 1) * windowMs - now }
  }
}

export interface SiteRateLimitOptions {
  nc: NatsConnection
  bucket: string
  windowMs: number
  /** One count (all its round trips) must finish within this, else the local counter answers. */
  storeTimeoutMs: number
  /** After a failure, the store is not asked again for this long. */
  storeRetryMs: number
  onStoreState?: (up: boolean, err?: unknown) => void
  onFallback?: () => void
}

const CAS_ATTEMPTS = 16
type Queue = { running: boolean; waiters: Array<{ resolve: (n: number) => void; reject: (err: unknown) => void }> }
const CACHE_MAX = 100_000

class StoreTimeout extends Error {
  constructor(ms: number) {
    super(`rate limit store did not answer within ${ms} ms`)
    this.name = 'StoreTimeout'
  }
}

/** Counts in the site's KV bucket; falls back to a LocalCounter while the bucket cannot be used. */
export class SiteRateLimiter {
  private kv: Promise<KV> | undefined
  private readonly seen = new Map<string, { n: number; rev: number }>()
  private readonly queues = new Map<string, Queue>()
  private readonly local = new LocalCounter()
  private downUntil = 0
  private up: boolean | undefined

  constructor(private readonly o: SiteRateLimitOptions) {}

  /** Whether the last count used the shared store (undefined before the first). */
  get storeUp(): boolean | undefined {
    return this.up
  }

  private bucket(): Promise<KV> {
    this.kv ??= (async () => {
      const kvm = new Kvm(this.o.nc)
      try {
        return await kvm.create(this.o.bucket, { history: 1, ttl: 2 * this.o.windowMs, storage: 'memory' })
      } catch {
        // Exists with other settings (another gateway's window): use it as it is.
        return await kvm.open(this.o.bucket)
      }
    })()
    this.kv.catch(() => {
      this.kv = undefined
    })
    return this.kv
  }

  async incr(key: string, windowMs: number, max: number): Promise<Count> {
    const now = Date.now()
    if (now >= this.downUntil) {
      let timer: NodeJS.Timeout | undefined
      try {
        const r = await Promise.race([
          this.shared(key, windowMs, max, now),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new StoreTimeout(this.o.storeTimeoutMs)), this.o.storeTimeoutMs)
          }),
        ])
        this.state(true)
        return r
      } catch (err) {
        this.downUntil = Date.now() + this.o.storeRetryMs
        // Opened again (created if it was lost) on the next try.
        this.kv = undefined
        this.seen.clear()
        this.state(false, err)
      } finally {
        clearTimeout(timer)
      }
    }
    this.o.onFallback?.()
    return this.local.incr(key, windowMs, now)
  }

  private state(up: boolean, err?: unknown): void {
    if (this.up === up) return
    this.up = up
    this.o.onStoreState?.(up, err)
  }

  /**
   * Counts one request of `key` in the shared store. Concurrent requests of one key in this process are counted
   * together: while a compare-and-set is in flight the next ones queue, and the next write adds them all at once
   * (each gets its own position), so a burst costs a few writes, not one lost race per request.
   */
  private shared(key: string, windowMs: number, max: number, now: number): Promise<Count> {
    const w = Math.floor(now / windowMs)
    const ttl = (w + 1) * windowMs - now
    const k = `${createHash('sha256').update(key).digest('base64url').slice(0, 32)}.${w}`
    return new Promise<number>((resolve, reject) => {
      let q = this.queues.get(k)
      if (!q) {
        q = { running: false, waiters: [] }
        this.queues.set(k, q)
      }
      q.waiters.push({ resolve, reject })
      if (!q.running) void this.drain(k, q, max)
    }).then((current) => ({ current, ttl }))
  }

  private async drain(k: string, q: Queue, max: number): Promise<void> {
    q.running = true
    try {
      while (q.waiters.length > 0) {
        const batch = q.waiters.splice(0)
        try {
          const base = await this.add(k, batch.length, max)
          batch.forEach((wt, i) => wt.resolve(base + i + 1))
        } catch (err) {
          for (const wt of batch) wt.reject(err)
        }
      }
    } finally {
      q.running = false
      this.queues.delete(k)
    }
  }

  /** Adds `n` to key `k` by compare-and-set; returns the value before. Over the limit already, nothing is written. */
  private async add(k: string, n: number, max: number): Promise<number> {
    const kv = await this.bucket()
    let last = this.seen.get(k)
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      // Counts only grow within a window: once over the limit, every request is refused without a write.
      if (last && last.n > max) return last.n
      try {
        const before = last?.n ?? 0
        const rev = last ? await kv.update(k, String(before + n), last.rev) : await kv.create(k, String(before + n))
        this.remember(k, { n: before + n, rev })
        return before
      } catch (err) {
        // Another gateway counted since: read the current value and try again. A read that fails is a store failure.
        const e = await kv.get(k)
        if (e === null || e.operation !== 'PUT') {
          if (last === undefined) throw err
          last = undefined
          continue
        }
        last = { n: Number(e.string()), rev: e.revision }
        if (!Number.isSafeInteger(last.n))
          throw new Error(`rate limit key ${k} holds ${JSON.stringify(e.string())}`, { cause: err })
      }
    }
    throw new Error(`rate limit key ${k}: ${CAS_ATTEMPTS} compare-and-set attempts lost`)
  }

  private remember(k: string, v: { n: number; rev: number }): void {
    if (!this.seen.has(k) && this.seen.size >= CACHE_MAX) this.seen.delete(this.seen.keys().next().value ?? '')
    this.seen.set(k, v)
  }
}

/** The limiter as @fastify/rate-limit's store (the plugin constructs the class; every instance shares `limiter`). */
export function rateLimitStore(limiter: {
  incr(key: string, windowMs: number, max: number): Promise<Count>
}): new () => FastifyRateLimitStore {
  return class SiteStore implements FastifyRateLimitStore {
    incr(key: string, cb: (error: Error | null, result?: Count) => void, timeWindow: number, max: number): void {
      limiter.incr(key, timeWindow, max).then(
        (r) => cb(null, r),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      )
    }

    child(): FastifyRateLimitStore {
      return this
    }
  }
}
