/**
 * Provisioning of a site's JetStream assets: streams TLM and OUT, the state KV bucket (partition records,
 * snapshots). Idempotent: creates what is missing, accepts what matches, and fails with a coded error naming
 * the difference when an existing asset is incompatible (e.g. another partition count). Records the deployment's
 * identity with them (actors/deployment.ts) and refuses assets another deployment recorded.
 */
import {
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
  RetentionPolicy,
  StorageType,
  DiscardPolicy,
  JetStreamApiError,
  JetStreamApiCodes,
} from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { type NatsConnection, nanos } from '@nats-io/transport-node'
import type { RuntimeConfig } from './config.js'
import {
  assertDeployment,
  checkDeployment,
  claimDeployment,
  deploymentFromDescription,
  describeDeployment,
} from './deployment.js'
import { RuntimeErrorCodes, StreamConfigError } from './errors.js'
import { peerStreams } from './sitemap.js'
import { outStreamSubjects, tlmStreamSubjects } from './subjects.js'

/** The partition count and the deployment are recorded in the stream description (2.9 has no stream metadata). */
const DESC_PREFIX = 'pitwall'
export function describeTlm(site: string, partitions: number, deployment: string): string {
  return `${DESC_PREFIX} readings site=${site} partitions=${partitions} ${describeDeployment(deployment)}`
}
export function partitionsFromDescription(desc: string | undefined): number | undefined {
  const m = /partitions=(\d+)/.exec(desc ?? '')
  return m ? Number(m[1]) : undefined
}

export interface Provisioned {
  state: KV
}

type StreamWant = Partial<StreamConfig> & { name: string }

// JetStream API error: 'stream name already in use with a different configuration' (not in JetStreamApiCodes).
const STREAM_NAME_IN_USE = 10058

/** True for the JetStream API's 'stream not found' error. */
export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound
}

/** TLM and OUT share one shape: file storage, limits retention, a 2-minute dedup window for message ids. */
function streamConfig(cfg: RuntimeConfig, name: string, description: string, subjects: string[]): StreamWant {
  return {
    name,
    description,
    subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(cfg.tlmMaxAgeS * 1000),
    duplicate_window: nanos(120_000),
    num_replicas: cfg.replicas,
    allow_direct: true,
  }
}
const tlmConfig = (cfg: RuntimeConfig): StreamWant =>
  streamConfig(cfg, cfg.streams.tlm, describeTlm(cfg.site, cfg.partitions, cfg.deployment), tlmStreamSubjects(cfg.site))
const outConfig = (cfg: RuntimeConfig): StreamWant =>
  streamConfig(
    cfg,
    cfg.streams.out,
    `${DESC_PREFIX} outputs site=${cfg.site} partitions=${cfg.partitions} ${describeDeployment(cfg.deployment)}`,
    outStreamSubjects(cfg.site),
  )

/**
 * The deployment recorded in an existing stream's description must be this one; a stream from before
 * deployments has its description completed (claimed), which 2.9 allows on a live stream.
 */
async function claimStream(
  jsm: JetStreamManager,
  info: StreamInfo,
  want: StreamWant,
  deployment: string,
): Promise<void> {
  const recorded = deploymentFromDescription(info.config.description)
  assertDeployment(recorded, deployment, `stream ${want.name}`)
  if (recorded === undefined)
    await jsm.streams.update(want.name, { ...info.config, description: want.description ?? '' })
}

async function ensureStream(
  jsm: JetStreamManager,
  want: StreamWant,
  partitions: number | undefined,
  deployment: string,
): Promise<void> {
  const name = want.name
  let info
  try {
    info = await jsm.streams.info(name)
  } catch (err) {
    if (!isStreamNotFound(err)) throw err
    try {
      await jsm.streams.add(want)
      return
    } catch (e) {
      // Created meanwhile with another configuration (by another deployment's provisioning): check that one.
      if (!(e instanceof JetStreamApiError && e.code === STREAM_NAME_IN_USE)) throw e
      info = await jsm.streams.info(name)
    }
  }
  const have = info.config
  // First: a stream of another deployment differs in everything else too, and this is the error that says why.
  assertDeployment(deploymentFromDescription(have.description), deployment, `stream ${name}`)
  const wantSubjects = [...(want.subjects ?? [])].sort().join(',')
  const haveSubjects = [...(have.subjects ?? [])].sort().join(',')
  if (wantSubjects !== haveSubjects) {
    throw new StreamConfigError(
      RuntimeErrorCodes.STREAM_INCOMPATIBLE,
      `stream ${name} exists with subjects [${haveSubjects}], this deployment needs [${wantSubjects}] (setting: site)`,
    )
  }
  if (partitions !== undefined) {
    const recorded = partitionsFromDescription(have.description)
    if (recorded !== partitions) {
      throw new StreamConfigError(
        RuntimeErrorCodes.STREAM_INCOMPATIBLE,
        `stream ${name} was created with partitions=${recorded ?? 'unknown'}, this deployment has partitions=${partitions}` +
          ' (setting: partitions / PITWALL_PARTITIONS). P is fixed per deployment: repartitioning needs a new stream.',
      )
    }
  }
  if (have.num_replicas !== want.num_replicas) {
    throw new StreamConfigError(
      RuntimeErrorCodes.STREAM_INCOMPATIBLE,
      `stream ${name} has ${have.num_replicas} replicas, this deployment wants ${want.num_replicas} (setting: replicas)`,
    )
  }
  await claimStream(jsm, info, want, deployment)
}

/** Creates or checks TLM, OUT and the state bucket, and records (or checks) the deployment with them. */
export async function provision(nc: NatsConnection, jsm: JetStreamManager, cfg: RuntimeConfig): Promise<Provisioned> {
  await ensureStream(jsm, tlmConfig(cfg), cfg.partitions, cfg.deployment)
  await ensureStream(jsm, outConfig(cfg), cfg.partitions, cfg.deployment)
  const state = await new Kvm(nc).create(cfg.streams.stateBucket, {
    history: 5,
    replicas: cfg.replicas,
    // Reads of snapshots must come from the stream leader: a lagging follower could return an older one.
    allow_direct: false,
    storage: StorageType.File,
    description: `pitwall partition records and actor snapshots, site=${cfg.site} partitions=${cfg.partitions}`,
  })
  await claimDeployment(state, cfg)
  if (cfg.peer) await provisionMirrors(jsm, cfg)
  return { state }
}

/**
 * Two sites: local mirrors of the peer's TLM, OUT and state bucket, through the peer's JetStream domain over
 * the leafnode link (`$JS.<peer domain>.API`). Mirrors keep the origin's sequence numbers (positions are the
 * same at both sites). Created while the peer is unreachable, they start syncing when the link comes up.
 */
export async function provisionMirrors(jsm: JetStreamManager, cfg: RuntimeConfig): Promise<void> {
  if (!cfg.peer) return
  const names = peerStreams(cfg, cfg.peer.site)
  const external = { api: `$JS.${cfg.peer.domain}.API`, deliver: '' }
  const dep = describeDeployment(cfg.deployment)
  const wants: StreamWant[] = [
    {
      name: names.tlm,
      description: `pitwall mirror of site ${cfg.peer.site} readings ${dep}`,
      mirror: { name: cfg.streams.tlm, external },
    },
    {
      name: names.out,
      description: `pitwall mirror of site ${cfg.peer.site} outputs ${dep}`,
      mirror: { name: cfg.streams.out, external },
    },
    // Like the bucket itself: no age limit, a few revisions per key.
    {
      name: names.state,
      description: `pitwall mirror of site ${cfg.peer.site} state bucket ${dep}`,
      mirror: {
        name: `KV_${cfg.streams.stateBucket}`,
        external,
        filter_subject: `$KV.${cfg.streams.stateBucket}.snap.>`,
      },
      max_age: 0,
      max_msgs_per_subject: 5,
    },
  ]
  for (const w of wants) {
    try {
      const info = await jsm.streams.info(w.name)
      if (info.config.mirror?.name !== w.mirror?.name || info.config.mirror?.external?.api !== external.api) {
        throw new StreamConfigError(
          RuntimeErrorCodes.STREAM_INCOMPATIBLE,
          `stream ${w.name} exists but is not a mirror of ${w.mirror?.name ?? '?'} via ${external.api} (settings: peer.site / PITWALL_PEER_SITE, peer.domain / PITWALL_PEER_DOMAIN)`,
        )
      }
      await claimStream(jsm, info, w, cfg.deployment)
    } catch (err) {
      if (!isStreamNotFound(err)) throw err
      await jsm.streams.add({
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: nanos(cfg.tlmMaxAgeS * 1000),
        num_replicas: cfg.replicas,
        ...w,
      })
    }
  }
}

/** Checks that the assets exist and match, without creating anything (workers use this). */
export async function verify(nc: NatsConnection, jsm: JetStreamManager, cfg: RuntimeConfig): Promise<Provisioned> {
  for (const [name, parts] of [
    [cfg.streams.tlm, cfg.partitions],
    [cfg.streams.out, undefined],
  ] as const) {
    let info
    try {
      info = await jsm.streams.info(name)
    } catch (err) {
      if (isStreamNotFound(err)) {
        throw new StreamConfigError(
          RuntimeErrorCodes.STREAM_MISSING,
          `stream ${name} does not exist (settings: streams / PITWALL_TLM_STREAM, PITWALL_OUT_STREAM); run provisioning first`,
        )
      }
      throw err
    }
    if (parts !== undefined) {
      const recorded = partitionsFromDescription(info.config.description)
      if (recorded !== parts) {
        throw new StreamConfigError(
          RuntimeErrorCodes.STREAM_INCOMPATIBLE,
          `stream ${name} was created with partitions=${recorded ?? 'unknown'}, this worker has partitions=${parts} (setting: partitions / PITWALL_PARTITIONS)`,
        )
      }
    }
  }
  try {
    await jsm.streams.info(`KV_${cfg.streams.stateBucket}`)
  } catch (err) {
    if (isStreamNotFound(err)) {
      throw new StreamConfigError(
        RuntimeErrorCodes.STREAM_MISSING,
        `KV bucket ${cfg.streams.stateBucket} does not exist (setting: streams.stateBucket / PITWALL_STATE_BUCKET); run provisioning first`,
      )
    }
    throw err
  }
  await checkDeployment(nc, jsm, cfg)
  return { state: await new Kvm(nc).open(cfg.streams.stateBucket) }
}
