/**
 * The deployment's identity (issue 13 part 4): a name (PITWALL_DEPLOYMENT) recorded with the assets when
 * they are provisioned, and checked by every process at start, so that a process pointed at another
 * deployment's NATS fails fast with PW_DEPLOYMENT_MISMATCH instead of joining it (a worker taking its
 * partitions, a projector recreating its consumer).
 *
 * nats-server 2.9 has no stream or bucket metadata, so the name is recorded where 2.9 keeps text:
 * - the state bucket's `deployment` key, written create-only (`kv.create`): of two deployments provisioning
 *   the same bucket at once exactly one wins, the other reads the winner's record and fails;
 * - the descriptions of TLM, OUT and the peer mirrors (`... deployment=<name>`), which processes that only
 *   read a stream (the projector on a mirror) can check without the bucket.
 * Assets provisioned before deployments existed record nothing; they are claimed by the next provisioning
 * and accepted meanwhile. The projector's database records it too (projector/identity.ts).
 */
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import { ENV, type RuntimeConfig } from './config.js'
import { DeploymentMismatchError } from './errors.js'

/** Key of the identity record in the state bucket. */
export const DEPLOYMENT_KEY = 'deployment'

/** The setting named in every mismatch. */
export const DEPLOYMENT_SETTING = ENV.deployment

/** What the state bucket holds under DEPLOYMENT_KEY (JSON). */
export interface DeploymentRecord {
  deployment: string
  /** Site that claimed the bucket. */
  site: string
  /** Epoch ms of the claim. */
  at: number
}

/** The part of a stream description that records the deployment. */
export function describeDeployment(deployment: string): string {
  return `deployment=${deployment}`
}

/** The deployment recorded in a stream description, if any. */
export function deploymentFromDescription(desc: string | undefined): string | undefined {
  return /(?:^|\s)deployment=([a-z0-9-]+)(?:\s|$)/.exec(desc ?? '')?.[1]
}

/** Throws PW_DEPLOYMENT_MISMATCH when `recorded` is set and is not `given`; `where` names the asset. */
export function assertDeployment(recorded: string | undefined, given: string, where: string): void {
  if (recorded !== undefined && recorded !== given)
    throw new DeploymentMismatchError(DEPLOYMENT_SETTING, recorded, given, where)
}

const td = new TextDecoder()

/** The identity record of a state bucket, or undefined when none was written. */
export async function readDeployment(kv: KV): Promise<DeploymentRecord | undefined> {
  const e = await kv.get(DEPLOYMENT_KEY)
  if (!e || e.operation !== 'PUT') return undefined
  const text = td.decode(e.value)
  try {
    const r = JSON.parse(text) as Partial<DeploymentRecord>
    if (typeof r.deployment === 'string')
      return { deployment: r.deployment, site: String(r.site ?? ''), at: Number(r.at ?? 0) }
  } catch {
    // Not JSON: reported below as an unreadable record, which no deployment matches.
  }
  return { deployment: `unreadable record ${JSON.stringify(text.slice(0, 40))}`, site: '', at: 0 }
}

/**
 * Records `cfg.deployment` in the state bucket unless a record exists (create-only), then checks the record in
 * force: throws PW_DEPLOYMENT_MISMATCH when another deployment holds the bucket. Run at provisioning.
 */
export async function claimDeployment(
  kv: KV,
  cfg: Pick<RuntimeConfig, 'deployment' | 'site' | 'streams'>,
): Promise<DeploymentRecord> {
  const where = `KV bucket ${cfg.streams.stateBucket}`
  let rec = await readDeployment(kv)
  if (!rec) {
    const mine: DeploymentRecord = { deployment: cfg.deployment, site: cfg.site, at: Date.now() }
    try {
      await kv.create(DEPLOYMENT_KEY, JSON.stringify(mine))
      return mine
    } catch (err) {
      // Lost a race with another provisioner: its record is the one in force.
      rec = await readDeployment(kv)
      if (!rec) throw err
    }
  }
  assertDeployment(rec.deployment, cfg.deployment, where)
  return rec
}

async function infoOrUndefined(jsm: JetStreamManager, stream: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream)
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined
    throw err
  }
}

/** Checks a stream's recorded deployment; a missing stream or a description without one passes. */
export async function checkStreamDeployment(jsm: JetStreamManager, stream: string, deployment: string): Promise<void> {
  const info = await infoOrUndefined(jsm, stream)
  assertDeployment(deploymentFromDescription(info?.config.description), deployment, `stream ${stream}`)
}

/**
 * At process start (worker, projector, gateway, site controller): checks the identity recorded in the state
 * bucket and in the descriptions of TLM and OUT against `cfg.deployment`; throws PW_DEPLOYMENT_MISMATCH naming
 * PITWALL_DEPLOYMENT, the recorded and the given name. Creates nothing; returns the recorded name (undefined
 * when the assets are missing or predate deployments).
 */
export async function checkDeployment(
  nc: NatsConnection,
  jsm: JetStreamManager,
  cfg: Pick<RuntimeConfig, 'deployment' | 'streams'>,
): Promise<string | undefined> {
  for (const stream of [cfg.streams.tlm, cfg.streams.out]) await checkStreamDeployment(jsm, stream, cfg.deployment)
  if (!(await infoOrUndefined(jsm, `KV_${cfg.streams.stateBucket}`))) return undefined
  const rec = await readDeployment(await new Kvm(nc).open(cfg.streams.stateBucket))
  assertDeployment(rec?.deployment, cfg.deployment, `KV bucket ${cfg.streams.stateBucket}`)
  return rec?.deployment
}
