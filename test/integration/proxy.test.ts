/**
 * The faulty link of the two-site tests (test/helpers/proxy.ts), on its own: one-way loss as TCP shows it
 * (stalls, never holes or reordering) and a throttled link (bytes take `bytes * 8 / kbps` ms to leave).
 */
import t from 'tap'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { CuttableProxy, RTO_MIN_MS } from '../helpers/proxy.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A target that records what it receives (and when) and echoes every byte back. */
async function echoTarget(): Promise<{ server: Server; port: number; got: Buffer[]; at: number[] }> {
  const got: Buffer[] = []
  const at: number[] = []
  const server = createServer((s) =>
    s.on('data', (b) => {
      got.push(b)
      at.push(Date.now())
      s.write(b)
    }),
  )
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const addr = server.address()
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, got, at }
}

async function through(proxy: CuttableProxy): Promise<{ sock: Socket; back: Buffer[] }> {
  const sock = connect(proxy.port, '127.0.0.1')
  await new Promise<void>((r) => sock.once('connect', () => r()))
  const back: Buffer[] = []
  sock.on('data', (b) => back.push(b))
  return { sock, back }
}

t.test(
  'one-way loss: every byte arrives, in order, late by retransmission stalls; the other direction is clean',
  async (t) => {
    const target = await echoTarget()
    const proxy = new CuttableProxy({ host: '127.0.0.1', port: target.port })
    await proxy.start()
    t.teardown(async () => {
      await proxy.stop()
      target.server.close()
    })
    proxy.loss('up', 0.3)
    const { sock, back } = await through(proxy)
    const sent: Buffer[] = []
    const sentAt: number[] = []
    for (let i = 0; i < 60; i++) {
      const b = Buffer.from(`chunk-${String(i).padStart(3, '0')};`)
      sent.push(b)
      sentAt.push(Date.now())
      sock.write(b)
      await sleep(10)
    }
    const want = Buffer.concat(sent)
    for (let i = 0; i < 200 && Buffer.concat(back).length < want.length; i++) await sleep(50)
    // How late each chunk reached the target: the arrival of its last byte minus its send. A lost segment waits
    // for a retransmission timeout, so the worst chunk is at least one RTO late (the send loop's pace aside).
    let worst = 0
    let received = 0
    let r = 0
    for (let i = 0, end = 0; i < sent.length; i++) {
      end += (sent[i] as Buffer).length
      while (received < end && r < target.got.length) received += (target.got[r++] as Buffer).length
      if (received >= end) worst = Math.max(worst, (target.at[r - 1] as number) - (sentAt[i] as number))
    }
    t.ok(proxy.lost.up > 0, `chunks were lost upstream (${proxy.lost.up})`)
    t.equal(proxy.lost.down, 0, 'nothing lost downstream')
    t.ok(Buffer.concat(target.got).equals(want), 'the target got every byte in order (no hole, no reordering)')
    t.ok(Buffer.concat(back).equals(want), 'the echo came back whole')
    t.ok(
      worst >= RTO_MIN_MS,
      `a stall delayed a chunk by at least one RTO (the latest arrived ${worst} ms after its send; RTO ${RTO_MIN_MS} ms)`,
    )
    sock.destroy()
  },
)

t.test('throttle: a 32 kbps link takes ~1 s for 4 KB each way, the queue shows the bytes waiting', async (t) => {
  const target = await echoTarget()
  const proxy = new CuttableProxy({ host: '127.0.0.1', port: target.port })
  await proxy.start()
  t.teardown(async () => {
    await proxy.stop()
    target.server.close()
  })
  proxy.throttle(32)
  const { sock } = await through(proxy)
  const data = Buffer.alloc(4_096, 7)
  const t0 = Date.now()
  sock.write(data)
  await sleep(100)
  t.ok(proxy.queued() > 0, `bytes wait in the proxy (${proxy.queued()})`)
  t.equal(Buffer.concat(target.got).length, 0, 'nothing arrived before the link could carry it')
  for (let i = 0; i < 100 && Buffer.concat(target.got).length < data.length; i++) await sleep(25)
  const up = Date.now() - t0
  t.ok(up >= 1_000 && up < 1_600, `4 KB at 32 kbps took ${up} ms upstream (expected 1,024 ms)`)
  t.throws(() => proxy.throttle(-1), RangeError)
  t.throws(() => proxy.loss('up', 1), RangeError)
  sock.destroy()
})
