/**
 * Starts a real nats-server with JetStream on a random loopback port and a temp store dir; `stop()` kills it
 * and removes the dir. Extra config (e.g. account mappings) is written to a config file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type NatsConnection } from '@nats-io/transport-node'

export interface NatsServer {
  url: string
  port: number
  dir: string
  proc: ChildProcess
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
/** Ports this process handed out already: the OS may give a just-closed port again to the next `listen(0)`. */
const handedOut = new Set<number>()

/**
 * A free loopback port, never one this process handed out before (several taken in a row for one topology were
 * once the same port, and the topology refused it: PW_CONFIG_INVALID "port ... is already used").
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer()
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => {
        const a = s.address()
        const p = typeof a === 'object' && a ? a.port : 0
        s.close(() => resolve(p))
      })
    })
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
}

export async function startNats(opts: { config?: string } = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pw-nats-'))
  const port = await freePort()
  const conf = join(dir, 'server.conf')
  await writeFile(
    conf,
    [`listen: "127.0.0.1:${port}"`, `jetstream { store_dir: "${join(dir, 'js')}" }`, opts.config ?? ''].join('\n'),
  )
  const proc = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-c', conf], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const url = `nats://127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      const nc = await connect({ servers: url, reconnect: false })
      await nc.close()
      break
    } catch (err) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL')
        throw new Error(`nats-server did not start on ${url}: ${stderr}`, { cause: err })
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url,
    port,
    dir,
    proc,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export async function connectTo(url: string): Promise<NatsConnection> {
  return await connect({ servers: url, noAsyncTraces: true })
}
