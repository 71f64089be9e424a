/**
 * `node dist/bench/ratelimit.js [natsUrl=nats://127.0.0.1:4222] [n=5000]`
 *
 * What counting rate limits in the site's shared store (gateway/ratelimit.ts) adds to a request: the time of one
 * count, median and p99 over `n` sequential counts, for
 * - `alone`: one gateway counting one credential (one KV write per request, the revision known);
 * - `two_gateways`: two limiters (two NATS connections) alternating on one credential (each count first loses
 *   the race to the other's write: a failed write, a read, a write);
 * - `burst_1000`: 1,000 concurrent counts of one credential in one gateway (batched into a few writes): total ms;
 * - `local`: the per-process counter, for reference.
 * Uses a bucket of its own (deleted at the end). Prints one JSON line.
 */
import { performance } from 'node:perf_hooks'
import { Kvm } from '@nats-io/kv'
import { connectNats } from '../actors/mod.js'
import { LocalCounter, SiteRateLimiter } from '../gateway/ratelimit.js'

const URL = process.argv[2] ?? 'nats://127.0.0.1:4222'
const N = Number(process.argv[3] ?? 5_000)
const BUCKET = `pw_ratelimit_bench_${process.pid}`
const WINDOW = 3_600_000
const MAX = 1e9

const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return Math.round((s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN) * 1000) / 1000
}

const nc1 = await connectNats(URL, 'bench-ratelimit-1')
const nc2 = await connectNats(URL, 'bench-ratelimit-2')
const opts = { bucket: BUCKET, windowMs: WINDOW, storeTimeoutMs: 5_000, storeRetryMs: 1_000 }
const a = new SiteRateLimiter({ nc: nc1, ...opts })
const b = new SiteRateLimiter({ nc: nc2, ...opts })
try {
  await a.incr('warm', WINDOW, MAX)
  const time = async (f: (i: number) => Promise<unknown> | unknown): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < N; i++) {
      const t0 = performance.now()
      await f(i)
      out.push(performance.now() - t0)
    }
    return out
  }
  const alone = await time(() => a.incr('alone', WINDOW, MAX))
  const two = await time((i) => (i % 2 === 0 ? a : b).incr('two', WINDOW, MAX))
  const t0 = performance.now()
  const burst = await Promise.all(Array.from({ length: 1_000 }, () => a.incr('burst', WINDOW, MAX)))
  const burstMs = performance.now() - t0
  const local = new LocalCounter()
  const loc = await time(() => local.incr('k', WINDOW))
  const last = Math.max(...burst.map((r) => r.current))
  console.log(
    JSON.stringify({
      n: N,
      alone_ms: { p50: q(alone, 0.5), p99: q(alone, 0.99) },
      two_gateways_ms: { p50: q(two, 0.5), p99: q(two, 0.99) },
      burst_1000: { total_ms: Math.round(burstMs * 10) / 10, counted: last, store_up: a.storeUp },
      local_ms: { p50: q(loc, 0.5), p99: q(loc, 0.99) },
      store_up: a.storeUp === true && b.storeUp === true,
    }),
  )
} finally {
  await new Kvm(nc1)
    .open(BUCKET)
    .then((kv) => kv.destroy())
    .catch(() => undefined)
  await nc1.close()
  await nc2.close()
}
