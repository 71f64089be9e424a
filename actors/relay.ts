/**
 * The stray relay (docs/sites.md, "Readings that reach the other site"; issue 13 part 3).
 *
 * A device cannot know its home site: it publishes `tlm.<site>.<kind>.<id>` (NATS, MQTT) at whichever site it
 * reaches, and that site's TLM stores and acknowledges it. A partition's input is its chain of segments, each a
 * run of ONE site's TLM (actors/sitemap.ts). A message in site X's TLM for partition p that no segment of p's
 * chain covers is a **stray**: X does not own p. The relay of site X forwards its strays, in order, to the
 * owner's TLM (`tlm.<owner>.<p>.<kind>.<id>`, over the leafnode link, with the device's own message id, or
 * `relay:<X>:<seq>` when it sent none, so the owner's duplicate window drops a re-forward and a copy the device
 * also re-sent to the owner), where they become ordinary readings of the owner's segment.
 *
 * Exactly once, with the relay and the moves (takeOver/takeBack) in different processes, through one record per
 * partition in this site's state bucket, `relay.<p>` = {last, pending?, closed?}, written with compare-and-set:
 * - `last`: every stray of p in this site's TLM up to `last` was forwarded (PubAck'd by the owner's stream);
 * - before publishing a batch the relay claims it (`pending` = {first, last}); after the PubAcks it sets `last`
 *   and clears `pending`; on a failed publish it clears `pending` and tries again later;
 * - a move that gives p to this site **closes** the relay (`closeRelay`): it waits for a pending batch to end,
 *   marks the record closed and starts this site's new segment at the first stray not forwarded, so what was not
 *   forwarded is read by the new segment and what was forwarded is in the old owner's stream before its seal.
 *   A closed record refuses the relay's claims.
 * - When p moves away again, the relay reopens after the new owner's record (for its tenure, `epoch >=
 *   since[p]`) is visible here with every segment of this site sealed: it starts after the last seal, so what a
 *   segment of this site holds is never forwarded.
 * Limits (documented): a batch whose PubAcks came but whose `last` was not written (a crash between) is forwarded
 * again from `pending` at restart; within the owner's duplicate window (2 min) the copy is dropped. A move that
 * times out waiting for a pending batch (the old owner unreachable for longer than the publish timeout) starts the
 * segment at the batch's first sequence: readings of that batch that did reach the old owner and its mirror are
 * then read twice unless they carry a `rid` (actor dedupe).
 */
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node'
import type { RuntimeConfig } from './config.js'
import { isCasConflict, type PartitionRecord } from './placement.js'
import { defaultChain, readPeerKey, type Segment, SiteMapView } from './sitemap.js'
import { parsePartitioned, partitionKey, SYS_KIND, tlmPartitionFilter, tlmSubject } from './subjects.js'

export interface RelayState {
  /** Last sequence (this site's TLM) up to which p's strays were forwarded. */
  last: number
  /** A batch being forwarded now: its first and last sequence. */
  pending?: { first: number; last: number }
  /** This site owns (or is taking) p: the relay must not forward p. */
  closed?: boolean
  at: number
}

export const relayKey = (p: number): string => `relay.${p}`

const td = new TextDecoder()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export async function readRelay(kv: KV, p: number): Promise<{ state: RelayState; revision: number } | undefined> {
  const e = await kv.get(relayKey(p))
  if (!e || e.operation !== 'PUT') return undefined
  return { state: JSON.parse(td.decode(e.value)) as RelayState, revision: e.revision }
}

async function casRelay(kv: KV, p: number, next: RelayState, revision: number | undefined): Promise<number> {
  const v = JSON.stringify(next)
  return revision === undefined ? await kv.create(relayKey(p), v) : await kv.update(relayKey(p), v, revision)
}

/**
 * Closes the relay of p at this site before this site takes p (failover, failback). Waits up to `waitMs` for a
 * batch being forwarded to end. Returns the first sequence of this site's TLM whose stray of p was not
 * forwarded: the new segment must start there (or later, after this site's last seal of p).
 */
export async function closeRelay(kv: KV, p: number, waitMs = 6_000): Promise<number> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const cur = await readRelay(kv, p)
    if (cur?.state.pending && !cur.state.closed && Date.now() < deadline) {
      await sleep(50)
      continue
    }
    const first = cur?.state.pending && !cur.state.closed ? cur.state.pending.first : (cur?.state.last ?? 0) + 1
    try {
      await casRelay(kv, p, { last: first - 1, closed: true, at: Date.now() }, cur?.revision)
      return first
    } catch (err) {
      if (!isCasConflict(err)) throw err
    }
  }
}

/**
 * The first sequence of this site's new segment of p: the first stray the relay did not forward, never before
 * this site's last seal. Not earlier: a reading stored here after the move began (past the TLM's last sequence
 * when the move read it) but forwarded before the relay closed is in the old owner's stream, before its seal.
 */
export function segmentStart(site: string, chain: readonly Segment[], firstUnforwarded: number): number {
  const sealed = chain.filter((s) => s.site === site).map((s) => s.to ?? 0)
  return Math.max(firstUnforwarded, Math.max(0, ...sealed) + 1)
}

export interface RelayStats {
  forwarded: number
  batches: number
  failures: number
  /** Partitions being relayed now. */
  active: number
}

export interface RelayOptions {
  nc: NatsConnection
  cfg: RuntimeConfig
  /** How often the relay re-reads the map and the owners' records (ms). */
  reconcileMs?: number
  /** Messages per claimed batch. */
  batch?: number
  /** PubAck timeout per forwarded message (ms). */
  publishTimeoutMs?: number
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
}

interface Lane {
  start: number
  owner: string
  stop: () => void
  done: Promise<void>
}

/** Forwards this site's strays to their owners; one lane (an ordered consumer) per partition it relays. */
export class StrayRelay {
  readonly stats: RelayStats = { forwarded: 0, batches: 0, failures: 0, active: 0 }
  private readonly o: RelayOptions
  private readonly cfg: RuntimeConfig
  private kv: KV | undefined
  private view: SiteMapView | undefined
  private readonly lanes = new Map<number, Lane>()
  private timer: NodeJS.Timeout | undefined
  private reconciling: Promise<void> | undefined
  private stopped = false

  constructor(o: RelayOptions) {
    if (!o.cfg.peer) throw new Error('the stray relay needs a peer site (PITWALL_PEER_SITE)')
    this.o = o
    this.cfg = o.cfg
  }

  async start(): Promise<void> {
    this.kv = await new Kvm(this.o.nc).open(this.cfg.streams.stateBucket)
    this.view = new SiteMapView(this.cfg, this.kv, await jetstreamManager(this.o.nc))
    await this.reconcile()
    this.timer = setInterval(() => {
      this.reconciling ??= this.reconcile().finally(() => {
        this.reconciling = undefined
      })
    }, this.o.reconcileMs ?? 1_000)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    await this.reconciling?.catch(() => undefined)
    for (const p of [...this.lanes.keys()]) await this.dropLane(p)
  }

  /** Where p's relay should start now, or undefined when p must not be relayed (owned here, or a move in flight). */
  private async startFor(
    p: number,
    jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  ): Promise<{ start: number; owner: string } | undefined> {
    const map = this.view?.map
    const kv = this.kv
    if (!map || !kv) return undefined
    const owner = map.owners[p] ?? this.cfg.site
    if (owner === this.cfg.site) return undefined
    const since = map.since[p] ?? 0
    const m = await readPeerKey(jsm, this.cfg, partitionKey(p))
    const rec = m ? (JSON.parse(td.decode(m.data)) as PartitionRecord) : undefined
    // The owner's record for its current tenure must be here: it says where this site's segments were sealed.
    if (since > 0 && (rec?.epoch ?? 0) < since) return undefined
    const chain = rec?.segments ?? defaultChain(owner)
    const mine = chain.filter((s) => s.site === this.cfg.site)
    if (mine.some((s) => s.to === undefined)) return undefined
    const floor = Math.max(0, ...mine.map((s) => s.to ?? 0))
    const cur = await readRelay(kv, p)
    const st = cur?.state
    if (st?.pending && !st.closed) return { start: st.pending.first, owner }
    const start = Math.max(st?.last ?? 0, floor) + 1
    if (st?.closed || (st && st.last < floor)) {
      // Reopen after this site's last seal (a move away from this site has completed).
      try {
        await casRelay(kv, p, { last: start - 1, at: Date.now() }, cur?.revision)
      } catch (err) {
        if (isCasConflict(err)) return undefined
        throw err
      }
    }
    return { start, owner }
  }

  private async reconcile(): Promise<void> {
    if (this.stopped || !this.view) return
    try {
      await this.view.refresh()
      const jsm = await jetstreamManager(this.o.nc)
      for (let p = 0; p < this.cfg.partitions && !this.stopped; p++) {
        const want = await this.startFor(p, jsm)
        const lane = this.lanes.get(p)
        if (lane && (!want || want.owner !== lane.owner)) await this.dropLane(p)
        if (want && !this.lanes.has(p)) this.startLane(p, want.start, want.owner)
      }
    } catch (err) {
      this.o.log?.('warn', 'stray relay: reconcile failed', { err: String(err) })
    }
    this.stats.active = this.lanes.size
  }

  private async dropLane(p: number): Promise<void> {
    const lane = this.lanes.get(p)
    if (!lane) return
    this.lanes.delete(p)
    lane.stop()
    await lane.done.catch(() => undefined)
  }

  private startLane(p: number, start: number, owner: string): void {
    let stopIt: (() => void) | undefined
    let stopped = false
    const lane: Lane = {
      start,
      owner,
      stop: () => {
        stopped = true
        stopIt?.()
      },
      done: Promise.resolve(),
    }
    lane.done = (async () => {
      const js = jetstream(this.o.nc)
      const c = await js.consumers.get(this.cfg.streams.tlm, {
        filter_subjects: tlmPartitionFilter(this.cfg.site, p),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
      })
      const it = await c.consume({ max_messages: this.o.batch ?? 256 })
      stopIt = () => it.stop()
      if (stopped) it.stop()
      let buf: JsMsg[] = []
      try {
        for await (const m of it) {
          buf.push(m)
          if (m.info.pending > 0 && buf.length < (this.o.batch ?? 256)) continue
          const ok = await this.forward(p, owner, buf)
          buf = []
          if (!ok) break
        }
      } finally {
        it.stop()
      }
    })()
      .catch((err: unknown) => {
        this.stats.failures++
        this.o.log?.('warn', 'stray relay: lane stopped', { partition: p, err: String(err) })
      })
      .finally(() => {
        // A lane that ended by itself (failure, closed) is started again by the next reconcile, from the record.
        if (this.lanes.get(p) === lane) this.lanes.delete(p)
      })
    this.lanes.set(p, lane)
  }

  /** The owner's segments of p (its own site's), read only when the batch holds copies relayed from the owner. */
  private async ownerSegments(p: number, owner: string, batch: JsMsg[]): Promise<Segment[] | undefined> {
    if (!batch.some((m) => m.headers?.get('Pw-Relayed-From')?.startsWith(`${owner}:`))) return undefined
    const m = await readPeerKey(await jetstreamManager(this.o.nc), this.cfg, partitionKey(p))
    const rec = m ? (JSON.parse(td.decode(m.data)) as PartitionRecord) : undefined
    return (rec?.segments ?? defaultChain(owner)).filter((g) => g.site === owner)
  }

  /** Claims, forwards and commits one batch; false when the lane must stop (closed, owner changed, failure). */
  private async forward(p: number, owner: string, batch: JsMsg[]): Promise<boolean> {
    const kv = this.kv
    if (!kv || batch.length === 0) return !this.stopped
    const first = (batch[0] as JsMsg).seq
    const last = (batch[batch.length - 1] as JsMsg).seq
    const cur = await readRelay(kv, p)
    if (cur?.state.closed) return false
    const done = cur?.state.last ?? 0
    const todo = batch.filter((m) => m.seq > done)
    if (todo.length === 0) return !this.stopped
    let rev: number
    try {
      rev = await casRelay(
        kv,
        p,
        { last: done, pending: { first: Math.max(first, done + 1), last }, at: Date.now() },
        cur?.revision,
      )
    } catch (err) {
      if (isCasConflict(err)) return false
      throw err
    }
    const js = jetstream(this.o.nc, { timeout: this.o.publishTimeoutMs ?? 2_000 })
    // In stream order: each message with its publish (none for ticks and copies that need no forward).
    const sends: Array<{ seq: number; sent?: Promise<unknown> }> = []
    // Copies of the owner's own strays that this site stored (a forward to here whose PubAck was lost when this
    // site went down): the owner's move read its original if it is in one of the owner's segments.
    const owners = await this.ownerSegments(p, owner, todo)
    for (const m of todo) {
      const sp = parsePartitioned(m.subject)
      const from = m.headers?.get('Pw-Relayed-From')
      const ownerHasIt =
        from !== undefined &&
        owners !== undefined &&
        from.startsWith(`${owner}:`) &&
        owners.some(
          (g) =>
            Number(from.slice(owner.length + 1)) >= g.from &&
            (g.to === undefined || Number(from.slice(owner.length + 1)) <= g.to),
        )
      if (!sp || sp.kind === SYS_KIND || ownerHasIt) {
        sends.push({ seq: m.seq })
        continue
      }
      const h = natsHeaders()
      h.set('Pw-Relayed-From', `${this.cfg.site}:${m.seq}`)
      // The device's own message id when it sent one: a copy the device also re-sent to the owner (a publish that
      // timed out here and was retried there) is then dropped by the owner's duplicate window, as if the device
      // had published both at the owner. Without one, an id of this site's stream position.
      const original = m.headers?.get('Nats-Msg-Id')
      sends.push({
        seq: m.seq,
        sent: js.publish(tlmSubject(owner, p, sp.kind, sp.id), m.data, {
          msgID: original || `relay:${this.cfg.site}:${m.seq}`,
          headers: h,
        }),
      })
    }
    const results = await Promise.allSettled(sends.map(async (x) => await x.sent))
    // Commit the longest prefix that reached the owner (its stream acknowledges in order, so when the owner is
    // lost mid-batch the prefix is what it has): a move then starts right after it. The rest is forwarded again
    // (same message ids: the owner's duplicate window drops what did arrive).
    const firstFailed = results.findIndex((r) => r.status === 'rejected')
    const upTo = firstFailed < 0 ? last : firstFailed === 0 ? done : (sends[firstFailed - 1] as { seq: number }).seq
    const forwarded = sends
      .slice(0, firstFailed < 0 ? sends.length : firstFailed)
      .filter((x) => x.sent !== undefined).length
    try {
      await casRelay(kv, p, { last: Math.max(done, upTo), at: Date.now() }, rev)
    } catch (err) {
      // Closed meanwhile (a move timed out waiting for this batch): stop; the move read the batch as not forwarded.
      if (isCasConflict(err)) return false
      throw err
    }
    this.stats.forwarded += forwarded
    if (firstFailed >= 0) {
      this.stats.failures++
      this.o.log?.('warn', 'stray relay: forwarding failed; will retry', {
        partition: p,
        owner,
        failed: results.length - firstFailed,
        of: results.length,
      })
      await sleep(1_000)
      return false
    }
    this.stats.batches++
    return !this.stopped
  }
}
