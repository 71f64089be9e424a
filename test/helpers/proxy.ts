/**
 * A TCP proxy on loopback that a test can cut and heal: the link between two sites' nats-servers (b's leafnode
 * remote dials the proxy, which forwards to a's leafnode port). Cut: every connection is destroyed and new
 * ones are refused until heal; both servers stay up, as in a network split.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

export class CuttableProxy {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private cut = false
  port = 0

  constructor(private readonly target: { host: string; port: number }) {}

  async start(port = 0): Promise<number> {
    this.server = createServer((client) => {
      if (this.cut) {
        client.destroy()
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
  }

  heal(): void {
    this.cut = false
  }

  get connections(): number {
    return this.sockets.size / 2
  }

  async stop(): Promise<void> {
    this.split()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}
