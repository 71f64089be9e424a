/**
 * Subjects, partitions and KV keys: the one module every producer and consumer uses to name things.
 *
 *   tlm.<site>.<partition>.<kind>.<id>        readings (stream TLM of <site>)
 *   tlm.<site>.<kind>.<id>                    unpartitioned device subject; the server maps it (see mappingFor)
 *   out.<site>.<partition>.<kind>.<id>        outputs (stream OUT of <site>)
 *   out.<site>.<partition>._fence._           fence marker written by a new partition owner
 *   pw.<site>.q.<partition>                   live state queries (request/reply)
 *   pw.<site>.hb.<worker>                     worker heartbeats
 *   pw.<site>.stats.<worker>                  a worker's event-loop delay and GC pauses (request/reply)
 */

export const ENTITY_KINDS = ['sensor', 'vehicle'] as const
export type EntityKind = (typeof ENTITY_KINDS)[number]

/** Kind used for runtime-generated messages (processing-time ticks, fences) inside a partition. */
export const SYS_KIND = '_sys'
export const TICK_ID = 'tick'

/** Ids are single subject tokens and KV key segments: letters, digits, `_` and `-`, 1..64 chars. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
export const SITE_PATTERN = /^[a-z][a-z0-9-]{0,31}$/

export function isEntityKind(k: string): k is EntityKind {
  return (ENTITY_KINDS as readonly string[]).includes(k)
}

/**
 * FNV-1a, 32 bit, over the UTF-8 bytes of `kind` followed by `id` (no separator): exactly what nats-server's
 * `{{partition(P,1,2)}}` mapping computes over wildcard tokens 1 and 2 (test/integration/subjects.test.ts checks this
 * against a real server).
 */
export function partitionOf(kind: string, id: string, partitions: number): number {
  let h = 0x811c9dc5
  const bytes = Buffer.from(kind + id, 'utf8')
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] as number
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % partitions
}

export function tlmSubject(site: string, partition: number, kind: string, id: string): string {
  return `tlm.${site}.${partition}.${kind}.${id}`
}
/** Device-facing subject without the partition token; the server's mapping adds it. */
export function deviceSubject(site: string, kind: string, id: string): string {
  return `tlm.${site}.${kind}.${id}`
}
export function tlmStreamSubjects(site: string): string[] {
  return [`tlm.${site}.*.*.*`]
}
export function tlmPartitionFilter(site: string, partition: number): string {
  return `tlm.${site}.${partition}.*.*`
}
export function tickSubject(site: string, partition: number): string {
  return tlmSubject(site, partition, SYS_KIND, TICK_ID)
}
export function outSubject(site: string, partition: number, kind: string, id: string): string {
  return `out.${site}.${partition}.${kind}.${id}`
}
export function fenceSubject(site: string, partition: number): string {
  return `out.${site}.${partition}.${SYS_KIND}.fence`
}
export function outStreamSubjects(site: string): string[] {
  return [`out.${site}.*.*.*`]
}
export function querySubject(site: string, partition: number): string {
  return `pw.${site}.q.${partition}`
}
export function heartbeatSubject(site: string, worker: string): string {
  return `pw.${site}.hb.${worker}`
}
export function heartbeatWildcard(site: string): string {
  return `pw.${site}.hb.*`
}
export function statsSubject(site: string, worker: string): string {
  return `pw.${site}.stats.${worker}`
}

/** Parsed `tlm.<site>.<p>.<kind>.<id>` / `out.<site>.<p>.<kind>.<id>`; undefined when the shape is wrong. */
export function parsePartitioned(
  subject: string,
): { site: string; partition: number; kind: string; id: string } | undefined {
  const t = subject.split('.')
  if (t.length !== 5) return undefined
  const [, site, p, kind, id] = t as [string, string, string, string, string]
  const partition = Number(p)
  if (!Number.isInteger(partition) || partition < 0) return undefined
  return { site, partition, kind, id }
}

/**
 * Account mapping that makes the server add the partition token, for the nats-server config:
 * `mappings = { "tlm.a.*.*": "tlm.a.{{partition(16,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}" }`.
 */
export function mappingFor(site: string, partitions: number): { from: string; to: string } {
  return { from: `tlm.${site}.*.*`, to: `tlm.${site}.{{partition(${partitions},1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}` }
}

// KV keys in the state bucket. Partition records, snapshots and claims share one bucket so their revisions
// are one total order (see docs/runtime.md, "Fencing").
export function partitionKey(partition: number): string {
  return `part.${partition}`
}
export function snapshotKey(partition: number, kind: string, id: string): string {
  return `snap.${partition}.${kind}.${id}`
}
/** Every snapshot key of a partition (a KV key filter). */
export function snapshotFilter(partition: number): string {
  return `snap.${partition}.>`
}
/**
 * Two sites: copies of the partition records and the site map written with plain puts under this prefix, so
 * that the peer's mirror (filtered to `snap.>`) carries them with the snapshots, in order. The records
 * themselves are CAS writes whose `Nats-Expected-Last-Subject-Sequence` header a 2.9 mirror re-checks against
 * its own contents: after any gap it stalls for good ("last sequence by subject mismatch").
 */
export const EXPORT_PREFIX = 'snap._x'
export function exportKey(key: string): string {
  return `${EXPORT_PREFIX}.${key}`
}
export function snapshotPrefix(partition: number): string {
  return `snap.${partition}.>`
}

/**
 * JetStream message id of a reading with a device-chosen `rid`: scoped by entity, so two devices that pick the
 * same rid (counters restart, ids are only unique per device) never suppress each other in the duplicate window.
 */
export function readingMsgId(kind: string, id: string, rid: string): string {
  return `${kind}.${id}:${rid}`
}
