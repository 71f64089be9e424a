/**
 * A TCP proxy on loopback that a test can cut and heal: the link between two sites' nats-servers (b's leafnode
 * remote dials the proxy, which forwards to a's leafnode port). Cut: every connection is destroyed and new
 * ones are refused until heal; both servers stay up, as in a network split. Stall: connections stay open but
 * nothing is forwarded any more, and new ones are accepted and never answered (a peer that stopped
 * answering, e.g. a database host that froze); heal destroys the stalled connections.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

export class CuttableProxy {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private pairs: [Socket, Socket][] = []
  private cut = false
  private stalled = false
  private readonly held = new Set<Socket>()
  port = 0

  constructor(private readonly target: { host: string; port: number }) {}

  async start(port = 0): Promise<number> {
    this.server = createServer((client) => {
      if (this.cut) {
        client.destroy()
        return
      }
      if (this.stalled) {
        client.on('error', () => undefined)
        client.pause()
        this.held.add(client)
        return
      }
      const upstream = connect(this.target.port, this.target.host)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => undefined)
      }
      client.pipe(upstream)
      upstream.pipe(client)
      const pair: [Socket, Socket] = [client, upstream]
      this.pairs.push(pair)
      client.on('close', () => { this.pairs = this.pairs.filter((p) => p !== pair) })
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject)
      this.server?.listen(port, '127.0.0.1', () => resolve())
    })
    const addr = this.server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : port
    return this.port
  }

  /** Drops every connection and refuses new ones. */
  split(): void {
    this.cut = true
    for (const s of this.sockets) s.destroy()
    for (const s of this.held) s.destroy()
    this.held.clear()
    this.pairs = []
  }

  /** Stops forwarding on every open connection and leaves new ones unanswered, until heal. */
  stall(): void {
    this.stalled = true
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream)
      upstream.unpipe(client)
      client.pause()
      upstream.pause()
      this.held.add(client).add(upstream)
    }
    this.pairs = []
  }

  heal(): void {
    this.cut = false
    this.stalled = false
    for (const s of this.held) s.destroy()
    this.held.clear()
  }

  get connections(): number {
    return this.sockets.size / 2
  }

  async stop(): Promise<void> {
    this.split()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}
