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
}

export class CuttableProxy {
  private server: Server | undefined
  private pairs = new Set<Pair>()
  private cut = false
  private stalled = false
  private silent: Record<Dir, boolean> = { up: false, down: false }
  private delayMs = 0
  private jitterMs = 0
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
    const pair: Pair = { client, upstream: undefined, held: { up: [], down: [] }, wire: { up: [], down: [] }, timer: { up: undefined, down: undefined } }
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
    if (this.delayMs === 0 && this.jitterMs === 0) {
      dst.write(data)
      return
    }
    // One FIFO per direction drained by one timer: chunks never overtake each other whatever their jitter.
    const last = pair.wire[dir].at(-1)?.at ?? 0
    const delay = Math.max(0, this.delayMs + (Math.random() * 2 - 1) * this.jitterMs)
    pair.wire[dir].push({ at: Math.max(Date.now() + delay, last), data })
    this.drain(pair, dir, dst)
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
      pair.timer[dir] = setTimeout(() => {
        pair.timer[dir] = undefined
        this.drain(pair, dir, dst)
      }, Math.max(0, next.at - Date.now()))
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
