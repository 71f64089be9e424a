/**
 * Live state queries: NATS request/reply to the owner of the entity's partition. Answered from the live actor,
 * or by the owner from the snapshot when the actor is passivated. When no owner answers in time (no worker
 * holds the partition), the caller reads the last snapshot itself. Errors come back typed: the reply carries
 * a `Pitwall-Error-Code` header and is rebuilt into the same error class here.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { type NatsConnection, errors as natsErrors } from '@nats-io/transport-node'
import { ActorCell, type SnapshotRecord } from './cell.js'
import type { RuntimeConfig } from './config.js'
import { fromWire, PitwallError, QueryError, RuntimeErrorCodes } from './errors.js'
import { ERROR_HEADER } from './partition.js'
import type { ProfileTable } from './runtime.js'
import { type PartitionRecord, readRecord } from './placement.js'
import { readPeerKey, SiteRouter } from './sitemap.js'
import { mirrorPeerSnapshots, scopeOfRecord, SnapshotStore } from './snapshots.js'
import { type EntityKind, partitionKey, partitionOf, querySubject } from './subjects.js'

export interface LiveState {
  source: 'live' | 'snapshot'
  kind: EntityKind
  id: string
  profile: string
  lastSeq: number
  watermark: number | null
  state: unknown
}

export interface QueryDeps {
  nc: NatsConnection
  kv: KV
  cfg: Pick<RuntimeConfig, 'site' | 'partitions' | 'peer' | 'streams'>
  profiles: ProfileTable
  /** Two sites: the site owning a partition now (queries go to its workers over the leafnode link). */
  siteFor?: (partition: number) => string
  /** Two sites: a snapshot key read from our mirror of the peer's bucket (the peer may own the partition). */
  peerSnapshot?: (key: string) => Promise<Uint8Array | undefined>
  /** Two sites: a key's history in that mirror, oldest first (when its latest snapshot is past a seal). */
  peerHistory?: (key: string) => Promise<SnapshotRecord[]>
  /** Two sites: the peer's exported record of a partition (the tenure its snapshots are judged against). */
  peerRecord?: (partition: number) => Promise<{ record: PartitionRecord; revision: number | undefined } | undefined>
}

/** Asks the owning worker for an entity's live state; falls back to its snapshot when nobody answers. */
export async function queryEntity(
  deps: QueryDeps,
  kind: EntityKind,
  id: string,
  timeoutMs = 1_000,
): Promise<LiveState> {
  const p = partitionOf(kind, id, deps.cfg.partitions)
  try {
    const reply = await deps.nc.request(
      querySubject(deps.siteFor?.(p) ?? deps.cfg.site, p),
      JSON.stringify({ kind, id }),
      { timeout: timeoutMs },
    )
    const code = reply.headers?.get(ERROR_HEADER)
    if (code) throw fromWire(reply.json())
    return reply.json<LiveState>()
  } catch (err) {
    if (err instanceof PitwallError) throw err
    if (!(
      err instanceof natsErrors.NoRespondersError ||
      err instanceof natsErrors.TimeoutError ||
      (err instanceof natsErrors.RequestError && (err.isNoResponders() || err.cause instanceof natsErrors.TimeoutError))
    )) {
      throw new QueryError(RuntimeErrorCodes.QUERY_FAILED, `query of ${kind}/${id} failed: ${String(err)}`, {
        cause: err,
      })
    }
  }
  return await fromSnapshot(deps, p, kind, id)
}

/**
 * The snapshot an entity's owner would start from (actors/snapshots.ts, the same rule), judged against the
 * tenure of the site that owns the partition now: our partition record, or the peer's exported one when the
 * peer owns it. Without a record (never owned) every snapshot is valid and the one further along wins.
 */
async function fromSnapshot(deps: QueryDeps, p: number, kind: EntityKind, id: string): Promise<LiveState> {
  let snap: SnapshotRecord | undefined
  try {
    const owner = deps.siteFor?.(p) ?? deps.cfg.site
    const held = owner === deps.cfg.site ? await readRecord(deps.kv, p) : await deps.peerRecord?.(p)
    const scope = scopeOfRecord(p, owner, held?.record, held?.revision)
    const peer = deps.peerSnapshot
    const store = new SnapshotStore(
      {
        kv: deps.kv,
        cfg: deps.cfg,
        peer: peer
          ? {
              latest: async (key) => await peer(key).catch(() => undefined),
              history: async (key) => (await deps.peerHistory?.(key)) ?? [],
            }
          : undefined,
      },
      scope,
    )
    snap = await store.load(kind, id)
  } catch (err) {
    if (err instanceof PitwallError) throw err
    throw new QueryError(
      RuntimeErrorCodes.QUERY_TIMEOUT,
      `no owner answered for ${kind}/${id} and the snapshot store is unreachable`,
      { cause: err, retryable: true },
    )
  }
  if (!snap) throw new QueryError(RuntimeErrorCodes.ENTITY_UNKNOWN, `no actor ${kind}/${id}`)
  const entry = deps.profiles.get(snap.profile)
  if (!entry)
    throw new QueryError(
      RuntimeErrorCodes.PROFILE_UNKNOWN,
      `snapshot of ${kind}/${id} names unknown profile ${snap.profile}`,
    )
  const cell = new ActorCell(entry.def, entry.config, { kind, id }, snap)
  return {
    source: 'snapshot',
    kind,
    id,
    profile: snap.profile,
    lastSeq: cell.lastSeq,
    watermark: Number.isFinite(cell.watermark) ? cell.watermark : null,
    state: cell.query(),
  }
}

/** Query dependencies for a tool or service that is not a worker: opens the state bucket read-only. */
export async function queryDeps(nc: NatsConnection, cfg: RuntimeConfig, profiles: ProfileTable): Promise<QueryDeps> {
  const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
  if (!cfg.peer) return { nc, kv, cfg, profiles }
  const router = new SiteRouter(nc, cfg)
  await router.start()
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const mirror = mirrorPeerSnapshots(js, jsm, cfg)
  return {
    nc,
    kv,
    cfg,
    profiles,
    siteFor: (p) => router.siteFor(p),
    peerSnapshot: mirror.latest,
    peerHistory: mirror.history,
    peerRecord: async (p) => {
      const m = await readPeerKey(jsm, cfg, partitionKey(p))
      return m
        ? { record: JSON.parse(new TextDecoder().decode(m.data)) as PartitionRecord, revision: undefined }
        : undefined
    },
  }
}
