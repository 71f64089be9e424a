/** The PostgreSQL projector: OUT stream -> tables. The only module other folders import from here. */
export { consumerName, Projector, PROJECTOR_DEFAULTS } from './projector.js'
export type { ProjectorOptions, ProjectorStats } from './projector.js'
export { migrate } from './migrate.js'
export type { MigrateResult } from './migrate.js'
export { MIGRATIONS, TABLES } from './schema.js'
export type { Migration, TableName } from './schema.js'
export { writeRawReadings } from './writer.js'
export type { RawReading } from './writer.js'
export { planBatch } from './batch.js'
export type { BatchPlan, StreamMessage } from './batch.js'
export { decodeOutput } from './decode.js'
export {
  DomainMetrics,
  domainMetricsConfig,
  domainMetricsFromEnv,
  DOMAIN_METRICS_DEFAULTS,
  DOMAIN_METRICS_ENV,
} from './domain-metrics.js'
export type { DomainMetricsConfig, ProjectorObserver } from './domain-metrics.js'
export { claimDatabase, databaseId } from './identity.js'
export type { DatabaseIdentity } from './identity.js'
