/**
 * The queue between a partition's consumer (callback mode, called as the client reads the socket) and its runner
 * (actors/segments.ts InboundQueue): messages come out in the order they went in, each with the moment it went
 * in; a reader waiting on an empty queue wakes on the next push; an end stops the reader, dropping what is still
 * queued (the next owner or consumer reads on from the cursor), and an error ends it by throwing.
 */
import fc from 'fast-check'
import type { JsMsg } from '@nats-io/jetstream'
import t from 'tap'
import { InboundQueue } from '../../actors/segments.js'

const msg = (seq: number): JsMsg => ({ seq }) as unknown as JsMsg

t.test('order and stamps, across the compaction of the taken prefix', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }), async (bursts) => {
      const q = new InboundQueue()
      const total = bursts.reduce((a, b) => a + b, 0)
      const seen: number[] = []
      const reader = (async () => {
        for await (const { m, at } of q) {
          if (!(at > 0 && at <= Date.now())) throw new Error(`bad stamp ${at}`)
          seen.push(m.seq)
          if (seen.length === total) return
        }
      })()
      let seq = 0
      for (const n of bursts) {
        for (let i = 0; i < n; i++) q.push(msg(++seq))
        // Let the reader drain part or all of it before the next burst.
        await new Promise<void>((r) => setImmediate(r))
      }
      await reader
      return seen.length === total && seen.every((s, i) => s === i + 1)
    }),
    { numRuns: 40 },
  )
  t.pass('every message once, in order')
})

t.test('a reader waiting on an empty queue wakes on the next push', async (t) => {
  const q = new InboundQueue()
  const it = q[Symbol.asyncIterator]()
  const next = it.next()
  await new Promise<void>((r) => setTimeout(r, 20))
  q.push(msg(7))
  const r = await next
  t.equal(r.done, false)
  t.equal(r.value?.m.seq, 7)
  t.equal(q.size, 0, 'taken')
})

t.test('an end stops the reader and drops what is queued; pushes after it are ignored', async (t) => {
  const q = new InboundQueue()
  q.push(msg(1))
  q.push(msg(2))
  const it = q[Symbol.asyncIterator]()
  t.equal((await it.next()).value?.m.seq, 1)
  q.end()
  q.push(msg(3))
  t.same(await it.next(), { done: true, value: undefined }, 'ended: message 2 is not handed out')
  const waiting = new InboundQueue()
  const w = waiting[Symbol.asyncIterator]().next()
  waiting.end()
  t.equal((await w).done, true, 'a waiting reader is woken by the end')
})

t.test('an error ends the reader by throwing', async (t) => {
  const q = new InboundQueue()
  const it = q[Symbol.asyncIterator]()
  const next = it.next()
  q.end(new Error('consumer deleted'))
  await t.rejects(next, /consumer deleted/)
})
