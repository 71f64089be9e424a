/**
 * A TCP proxy on loopback with the faults of a real network between two datacenters (issue 18): the link
 * between two sites' nats-servers (b's leafnode remote dials the proxy, which forwards to a's leafnode port),
 * or any other TCP path (a controller's health probe, PostgreSQL).
 *
 * - `split()`: a clean cut. Every connection is destroyed (both sides see a close at once) and new ones are
 *   refused until `heal()`.
 * - `blackhole(dir?)`: a silent partition. Nothing is delivered and nothing closes: bytes are held, as TCP
 *   holds unacknowledged segments and retransmits them, and new connections are accepted but not connected
 *   onwards (a SYN that gets no answer). Detection is left to the endpoints' timeouts and pings. `heal()`
 *   delivers what was held, in order, and connects the held connections (a partition shorter than TCP's
 *   retransmission timeout). With `dir` ('up': client -> target, 'down': target -> client) only one direction
 *   is silent: one-way loss.
 * - `stall()`: a peer that froze: nothing forwarded, new connections never answered; `heal()` destroys them.
 * - `latency(ms, jitterMs)`: every chunk is delivered `ms` ± `jitterMs` later, in order per direction (a WAN).
 * - `loss(dir, rate)`: one-way packet loss, as TCP makes it look. TCP never delivers a byte stream with holes and
 *   never reorders it: a lost segment is retransmitted after the retransmission timeout (Linux: at least 200 ms,
 *   doubled on each loss in a row) and every byte behind it waits (head-of-line blocking). So a proxy, which
 *   only sees the stream, models loss honestly as stalls: each chunk in that direction is "lost" with
 *   probability `rate` and then delivered one RTO later (200, 400, 800 ms... on consecutive losses, at most
 *   `maxStallMs`), holding everything behind it. Reordering, duplication and holes are impossible over TCP and
 *   not modelled; a loss long enough to kill the connection is `blackhole` (or `split`).
 * - `throttle(kbps)`: a slow link: each direction of each connection sends at most `kbps` kilobits per second
 *   (a chunk leaves when the ones before it have, taking `bytes * 8 / kbps` ms), then the latency applies. The
 *   queue is the proxy's (unbounded, like a deep buffer); `queued()` says how many bytes wait in it.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

type Dir = 'up' | 'down'

interface Pair {
  client: Socket
  upstream: Socket | undefined
  /** Bytes held per direction while that direction is silent (or the upstream is not connected yet). */
  held: Record<Dir, Buffer[]>
  /** Chunks on their way per direction (latency), oldest first, each with the time it is due. */
  wire: Record<Dir, Array<{ at: number; data: Buffer }>>
  timer: Record<Dir, NodeJS.Timeout | undefined>
  /** When the last chunk per direction has left the throttled link (ms since the epoch). */
  busyUntil: Record<Dir, number>
  /** Losses in a row per direction (the RTO doubles with each). */
  lossRun: Record<Dir, number>
}

/** TCP's minimum retransmission timeout on Linux (TCP_RTO_MIN). */
export const RTO_MIN_MS = 200

export class CuttableProxy {
  private server: Server | undefined
  private pairs = new Set<Pair>()
  private cut = false
  private stalled = false
  private silent: Record<Dir, boolean> = { up: false, down: false }
  private delayMs = 0
  private jitterMs = 0
  private lossRate: Record<Dir, number> = { up: 0, down: 0 }
  private maxStallMs = 3_200
  private kbps = 0
  /** Chunks "lost" (held for an RTO) per direction, since start. */
  readonly lost: Record<Dir, number> = { up: 0, down: 0 }
  port = 0

  constructor(private readonly target: { host: string; port: number }) {}

  async start(port = 0): Promise<number> {
    this.server = createServer((client) => this.accept(client))
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject)
      this.server?.listen(port, '127.0.0.1', () => resolve())
    })
    const addr = this.server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : port
    return this.port
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined)
    if (this.cut) {
      client.destroy()
      return
    }
    const pair: Pair = {
      client,
      upstream: undefined,
      held: { up: [], down: [] },
      wire: { up: [], down: [] },
      timer: { up: undefined, down: undefined },
      busyUntil: { up: 0, down: 0 },
      lossRun: { up: 0, down: 0 },
    }
    this.pairs.add(pair)
    client.on('data', (b) => this.relay(pair, 'up', b))
    client.on('close', () => {
      this.pairs.delete(pair)
      pair.upstream?.destroy()
    })
    if (this.stalled) {
      client.pause()
      return
    }
    // A silent link answers no SYN: the connection goes onwards only when it heals.
    if (!this.silent.up && !this.silent.down) this.connectUpstream(pair)
  }

  private connectUpstream(pair: Pair): void {
    const upstream = connect(this.target.port, this.target.host)
    pair.upstream = upstream
    upstream.on('error', () => undefined)
    upstream.on('data', (b) => this.relay(pair, 'down', b))
    upstream.on('close', () => pair.client.destroy())
    upstream.on('connect', () => this.flush(pair, 'up'))
  }

  private relay(pair: Pair, dir: Dir, chunk: Buffer): void {
    if (this.stalled) return
    pair.held[dir].push(chunk)
    if (!this.silent[dir]) this.flush(pair, dir)
  }

  /** Sends what is held in one direction, after the link's latency, in order. */
  private flush(pair: Pair, dir: Dir): void {
    const dst = dir === 'up' ? pair.upstream : pair.client
    if (!dst || dst.connecting || this.silent[dir]) return
    const chunks = pair.held[dir].splice(0)
    if (chunks.length === 0) return
    const data = Buffer.concat(chunks)
    if (this.delayMs === 0 && this.jitterMs === 0 && this.lossRate[dir] === 0 && this.kbps === 0) {
      dst.write(data)
      return
    }
    // One FIFO per direction drained by one timer: chunks never overtake each other whatever their jitter, and
    // a chunk held for a retransmission holds every chunk behind it.
    const last = pair.wire[dir].at(-1)?.at ?? 0
    const sent = this.transmitted(pair, dir, data.length)
    const delay = Math.max(0, this.delayMs + (Math.random() * 2 - 1) * this.jitterMs) + this.retransmitWait(pair, dir)
    pair.wire[dir].push({ at: Math.max(sent + delay, last), data })
    this.drain(pair, dir, dst)
  }

  /** When a chunk of `bytes` has left the throttled link (now without a throttle). */
  private transmitted(pair: Pair, dir: Dir, bytes: number): number {
    const now = Date.now()
    if (this.kbps === 0) return now
    pair.busyUntil[dir] = Math.max(now, pair.busyUntil[dir]) + (bytes * 8) / this.kbps
    return pair.busyUntil[dir]
  }

  /** The retransmission wait of a lost chunk (0 when it got through): RTO_MIN doubled per loss in a row. */
  private retransmitWait(pair: Pair, dir: Dir): number {
    if (this.lossRate[dir] === 0 || Math.random() >= this.lossRate[dir]) {
      pair.lossRun[dir] = 0
      return 0
    }
    this.lost[dir]++
    const ms = Math.min(this.maxStallMs, RTO_MIN_MS * 2 ** pair.lossRun[dir])
    pair.lossRun[dir]++
    return ms
  }

  private drain(pair: Pair, dir: Dir, dst: Socket): void {
    if (pair.timer[dir]) return
    const q = pair.wire[dir]
    while (q.length > 0 && (q[0] as { at: number }).at <= Date.now()) {
      const c = q.shift() as { data: Buffer }
      if (!dst.destroyed) dst.write(c.data)
    }
    const next = q[0]
    if (next) {
      pair.timer[dir] = setTimeout(
        () => {
          pair.timer[dir] = undefined
          this.drain(pair, dir, dst)
        },
        Math.max(0, next.at - Date.now()),
      )
    }
  }

  /** Drops every connection and refuses new ones. */
  split(): void {
    this.cut = true
    for (const p of this.pairs) {
      p.client.destroy()
      p.upstream?.destroy()
    }
    this.pairs.clear()
  }

  /** Silence (both directions, or one): nothing delivered, nothing closed, until heal. */
  blackhole(dir?: Dir): void {
    if (dir === undefined || dir === 'up') this.silent.up = true
    if (dir === undefined || dir === 'down') this.silent.down = true
  }

  /** Stops forwarding on every open connection and leaves new ones unanswered, until heal (which closes them). */
  stall(): void {
    this.stalled = true
    for (const p of this.pairs) {
      p.client.pause()
      p.upstream?.pause()
    }
  }

  /** Adds `ms` ± `jitterMs` to every chunk in both directions (0, 0: none). */
  latency(ms: number, jitterMs = 0): void {
    this.delayMs = ms
    this.jitterMs = jitterMs
  }

  /**
   * One-way loss: each chunk in `dir` ('up': client -> target, 'down': target -> client) is lost with probability
   * `rate` and retransmitted an RTO later (see the top of the file); `loss(dir, 0)` ends it.
   */
  loss(dir: Dir, rate: number, maxStallMs = 3_200): void {
    if (!(rate >= 0 && rate < 1)) throw new RangeError(`loss rate must be in [0, 1), got ${rate}`)
    this.lossRate[dir] = rate
    this.maxStallMs = maxStallMs
  }

  /** Limits each direction of each connection to `kbps` kilobits per second (0: no limit). */
  throttle(kbps: number): void {
    if (!(kbps >= 0)) throw new RangeError(`throttle must be >= 0 kbps, got ${kbps}`)
    this.kbps = kbps
  }

  /** Bytes on their way (held by latency, loss or the throttle) over every connection and direction. */
  queued(): number {
    let n = 0
    for (const p of this.pairs) for (const d of ['up', 'down'] as const) for (const c of p.wire[d]) n += c.data.length
    return n
  }

  heal(): void {
    this.cut = false
    if (this.stalled) {
      this.stalled = false
      for (const p of this.pairs) {
        p.client.destroy()
        p.upstream?.destroy()
      }
      this.pairs.clear()
    }
    this.silent = { up: false, down: false }
    for (const p of this.pairs) {
      if (!p.upstream) this.connectUpstream(p)
      this.flush(p, 'up')
      this.flush(p, 'down')
    }
  }

  get connections(): number {
    return this.pairs.size
  }

  async stop(): Promise<void> {
    this.split()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}
