/**
 * `pitwall partitions` (cmd/pitwall.ts): owner, fencing token, epoch and cursor of every partition as this site
 * sees it. With two sites the site map says which site owns each partition; the record of a partition the peer
 * owns is the peer's (its state bucket over the leafnode link, or, when the link is down, the last copy in this
 * site's STATE_<peer> mirror), not this site's own stale or empty one.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import {
  epochOf,
  partitionKey,
  peerReachable,
  type PartitionRecord,
  readPeerKey,
  readRecord,
  type RuntimeConfig,
  seqOf,
  SiteMapView,
} from '../actors/mod.js'

export interface PartitionRow {
  partition: number
  /** The site owning it by the site map (this site with one site). */
  site: string
  record: PartitionRecord | undefined
  /** Where the record was read: `local`, `peer` (over the link) or `mirror` (STATE_<peer>, link down). */
  source: 'local' | 'peer' | 'mirror'
}

/** One row per partition, each record read where its owner site keeps it. */
export async function partitionRows(
  nc: NatsConnection,
  cfg: RuntimeConfig,
): Promise<{ rows: PartitionRow[]; epoch: number; link?: boolean }> {
  const jsm = await jetstreamManager(nc)
  const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
  const local = async (p: number): Promise<PartitionRow> => ({
    partition: p,
    site: cfg.site,
    record: (await readRecord(kv, p))?.record,
    source: 'local',
  })
  const all = Array.from({ length: cfg.partitions }, (_, p) => p)
  if (!cfg.peer) return { rows: await Promise.all(all.map(local)), epoch: 0 }
  const peer = cfg.peer
  const map = await new SiteMapView(cfg, kv, jsm).refresh()
  const link = await peerReachable(nc, peer.domain, 1_000)
  let peerKv: KV | undefined
  if (link) peerKv = await new Kvm(jetstream(nc, { domain: peer.domain, timeout: 5_000 })).open(cfg.streams.stateBucket)
  const rows: PartitionRow[] = []
  for (const p of all) {
    const site = map.owners[p] ?? cfg.site
    if (site === cfg.site) rows.push(await local(p))
    else if (peerKv) rows.push({ partition: p, site, record: (await readRecord(peerKv, p))?.record, source: 'peer' })
    else
      rows.push({
        partition: p,
        site,
        record: (await readPeerKey(jsm, cfg, partitionKey(p)))?.json<PartitionRecord>(),
        source: 'mirror',
      })
  }
  return { rows, epoch: map.epoch, link }
}

const fmtPos = (pos: number): string => (epochOf(pos) === 0 ? String(pos) : `${epochOf(pos)}:${seqOf(pos)}`)

/** The table `pitwall partitions` prints. */
export function formatPartitions(
  cfg: RuntimeConfig,
  r: { rows: PartitionRow[]; epoch: number; link?: boolean },
  now = Date.now(),
): string[] {
  const lines: string[] = []
  if (cfg.peer) {
    const from = r.link
      ? `${cfg.peer.site}'s state bucket over the link`
      : `this site's STATE_${cfg.peer.site} mirror (link down: last known)`
    lines.push(
      `at site ${cfg.site}, epoch ${r.epoch}; records of partitions ${cfg.peer.site} owns are read from ${from}`,
    )
  }
  lines.push('partition  site  owner                          token  epoch  cursor            renewed')
  for (const { partition, site, record: x, source } of r.rows) {
    const age = x ? `${((now - x.renewedAt) / 1000).toFixed(1)} s ago` : '-'
    const note = source === 'mirror' ? '   (mirror)' : ''
    lines.push(
      `${String(partition).padEnd(10)} ${site.padEnd(5)} ${String(x?.owner ?? '(free)').padEnd(30)} ${String(x?.token ?? 0).padEnd(6)} ${String(x?.epoch ?? 0).padEnd(6)} ${fmtPos(x?.cursor ?? 0).padEnd(17)} ${age}${note}`,
    )
  }
  return lines
}
