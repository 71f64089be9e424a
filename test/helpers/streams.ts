/**
 * Reading whole streams back in the crash tests of the production profiles (test/integration/crash-environment.test.ts,
 * test/integration/crash-race.test.ts): every message up to the last sequence through an ordered consumer, and OUT with the
 * projector's fence rule.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Output } from '../../actors/types.js'

/** Every message of a stream up to its last sequence now, in stream order, through an ordered consumer. */
export async function readAll<T>(
  nc: NatsConnection,
  stream: string,
  map: (subject: string, seq: number, data: Uint8Array) => T | undefined,
): Promise<T[]> {
  const jsm = await jetstreamManager(nc)
  const last = (await jsm.streams.info(stream)).state.last_seq
  const out: T[] = []
  if (last === 0) return out
  const c = await jetstream(nc).consumers.get(stream)
  const it = await c.consume({ max_messages: 2_000 })
  for await (const m of it) {
    const v = map(m.subject, m.seq, m.data)
    if (v !== undefined) out.push(v)
    if (m.seq >= last) break
  }
  it.stop()
  return out
}

/**
 * OUT with the projector's fence rule (as test/helpers/trace.ts readOutputs): the latest accepted output per id;
 * `stale` counts outputs rejected by a higher fence, `conflicts` ids seen with two different bodies.
 */
export async function fencedOutputs(
  nc: NatsConnection,
): Promise<{ accepted: Map<string, Output>; stale: number; conflicts: number }> {
  const fence = new Map<number, number>()
  const accepted = new Map<string, Output>()
  let stale = 0
  let conflicts = 0
  const dec = new TextDecoder()
  for (const o of await readAll(nc, 'OUT', (_s, _q, d) => JSON.parse(dec.decode(d)) as Output)) {
    if (o.type === 'fence') {
      const b = o.body as { partition: number; token: number }
      fence.set(b.partition, Math.max(fence.get(b.partition) ?? 0, b.token))
      continue
    }
    if (o.token < (fence.get(o.partition) ?? 0)) {
      stale++
      continue
    }
    const prev = accepted.get(o.id)
    if (prev && JSON.stringify(prev.body) !== JSON.stringify(o.body)) conflicts++
    accepted.set(o.id, o)
  }
  return { accepted, stale, conflicts }
}
