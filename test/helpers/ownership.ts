/** Records every version of every partition record (KV watch) and checks the one-owner-at-a-time rule. */
import type { KV } from '@nats-io/kv'
import type { PartitionRecord } from '../../actors/placement.js'

export interface Seen {
  partition: number
  revision: number
  record: PartitionRecord
}

export async function watchRecords(kv: KV): Promise<{ seen: Seen[]; stop(): void }> {
  const seen: Seen[] = []
  const iter = await kv.watch({ key: 'part.>' })
  void (async () => {
    for await (const e of iter) {
      if (e.operation !== 'PUT') continue
      seen.push({
        partition: Number(e.key.split('.')[1]),
        revision: e.revision,
        record: JSON.parse(new TextDecoder().decode(e.value)) as PartitionRecord,
      })
    }
  })()
  return { seen, stop: () => iter.stop() }
}

/**
 * Violations of: a token changes only after the previous owner released or its lease expired; a token never
 * goes down; one token has one owner.
 */
export function ownershipViolations(seen: Seen[]): string[] {
  const bad: string[] = []
  const byP = new Map<number, Seen[]>()
  for (const s of seen) byP.set(s.partition, [...(byP.get(s.partition) ?? []), s])
  for (const [p, list] of byP) {
    list.sort((a, b) => a.revision - b.revision)
    const owners = new Map<number, string>()
    for (let i = 0; i < list.length; i++) {
      const cur = (list[i] as Seen).record
      if (cur.owner !== null) {
        const o = owners.get(cur.token)
        if (o !== undefined && o !== cur.owner) bad.push(`p${p}: token ${cur.token} held by ${o} and ${cur.owner}`)
        owners.set(cur.token, cur.owner)
      }
      if (i === 0) continue
      const prev = (list[i - 1] as Seen).record
      if (cur.token < prev.token) bad.push(`p${p}: token went down ${prev.token} -> ${cur.token}`)
      if (cur.token > prev.token && prev.owner !== null && prev.renewedAt + prev.ttlMs >= cur.renewedAt) {
        bad.push(
          `p${p}: ${cur.owner} took token ${cur.token} while ${prev.owner} (token ${prev.token}) still held a live lease`,
        )
      }
      if (cur.token === prev.token && prev.owner === null && cur.owner !== null)
        bad.push(`p${p}: released record written again with token ${cur.token}`)
    }
  }
  return bad
}
