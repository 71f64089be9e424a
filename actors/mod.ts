/** The public face of the actor runtime: what the gateway, sites/ and tools may import. */
export { defineActor, jsonCodec } from './actor.js'
export { ALERT_RANK, ALERT_STATES, alertId, alertKey, emitAlert, SEVERITIES, stateAfter } from './alerts.js'
export type { ActorContext, ActorDefinition, FiredTimer, SnapshotCodec, TimerOptions } from './actor.js'
export {
  compileConfig,
  DEPLOYMENT_PATTERN,
  optionsFromEnv,
  parseRanges,
  DEFAULTS as RUNTIME_DEFAULTS,
  ENV as RUNTIME_ENV,
} from './config.js'
export type { RuntimeConfig, RuntimeOptions } from './config.js'
export * from './errors.js'
export { PROFILES } from './kinds/registry.js'
export { provision, verify } from './provision.js'
export {
  assertDeployment,
  checkDeployment,
  checkStreamDeployment,
  claimDeployment,
  DEPLOYMENT_KEY,
  readDeployment,
} from './deployment.js'
export type { DeploymentRecord } from './deployment.js'
export { queryDeps, queryEntity } from './query.js'
export type { LiveState } from './query.js'
export { buildProfiles } from './runtime.js'
export type { AnyActorDefinition, RuntimeStats } from './runtime.js'
export * from './subjects.js'
export type * from './types.js'
export { OUTPUT_TYPES } from './types.js'
export { Worker } from './worker.js'
export { connectNats, setProcessTitle } from './process.js'
export { asLog, createLog, logLevel, silentLog, type Log, type LogFn, type LogLevel } from './log.js'
export type { Heartbeat, WorkerStatsReply } from './worker.js'
export { LoopStats } from './loop-stats.js'
export type { GcSummary, LoopDelaySummary, ProcessStatsSnapshot } from './loop-stats.js'
export { METRICS, projectorRegistry, serveMetrics, WorkerObserver, workerRegistry } from './metrics.js'
export { mirrorLags, ranges, takeBack, takeOver } from './handover.js'
export { closeRelay, readRelay, relayKey, StrayRelay } from './relay.js'
export type { RelayState, RelayStats } from './relay.js'
export type { FailbackOptions, MoveResult } from './handover.js'
export {
  defaultChain,
  effectiveMap,
  initialMap,
  peerStreams,
  POS_SHIFT,
  position,
  epochOf,
  seqOf,
  readOwnMap,
  readPeerKey,
  readPeerMap,
  SiteMapView,
  SiteRouter,
  siteSlot,
  peerReachable,
  syncPeerState,
  peerMapGate,
  readOverride,
  writeOverride,
  SITE_OVERRIDE_KEY,
  OVERRIDE_DEFAULT_MS,
  SITE_ROLES,
  siteRole,
} from './sitemap.js'
export type { GateState, Segment, SiteMap, SiteOverride, SiteRole } from './sitemap.js'
export { provisionMirrors } from './provision.js'
export { readRecord } from './placement.js'
export type { PartitionRecord } from './placement.js'
export { AckPublisher, BatchPublisher } from './publish.js'
export type { PublishItem, PublishResult } from './publish.js'
export { compileShape, GEOFENCES_REF, haversineM, validateGeofenceSet, validateShape } from './geo.js'
export type { CompiledShape, GeofenceDef, GeofenceSet, GeofenceShape } from './geo.js'
export { outOfService, SERVICE_REF, validateServiceSet } from './service.js'
export type { ServiceEntry, ServiceSet } from './service.js'
export { openReferenceBucket, ReferenceStore, ReferenceTable, REF_HISTORY } from './references.js'
export type { ReferenceLookup, ReferenceVersion } from './actor.js'
export { ActorCell } from './cell.js'
export { DEFAULT_DEDUPE, ReadingOutcome, RecentIds } from './dedupe.js'
export type { DedupeLimits } from './dedupe.js'
export {
  asset,
  ASSET_DEFAULTS,
  ASSET_FEATURES,
  ASSET_FIELDS,
  DEFAULT_MODEL as ASSET_DEFAULT_MODEL,
  MODEL_FEATURE_SET as ASSET_FEATURE_SET,
  MODEL_FORMAT as ASSET_MODEL_FORMAT,
  MODEL_HEADS as ASSET_MODEL_HEADS,
  featureFamily,
  mergeAssetModel,
  modelHeads as assetModelHeads,
  validateAssetModel,
} from './kinds/sensor/asset.js'
export type { AssetConfig, AssetModel, AssetModelHead } from './kinds/sensor/asset.js'
export { commandHelp, flagString, parseCommand } from './args.js'
export type { CommandSpec, FlagSpec, ParsedCommand } from './args.js'
