/**
 * Domain gauges for SREs and operators, derived by the projector from the outputs it commits (no extra reads
 * of TLM, no work in the workers): open alerts by profile/type/severity, and per entity (a car, a sensor)
 * its latest scores, lap maxima, window means and open alerts. Opt-in per profile (PITWALL_DOMAIN_METRICS),
 * and bounded: at most `maxEntities` entities and `maxSeries` label sets per profile; what would go past the
 * cap is counted in pitwall_domain_updates_dropped_total instead. Names live in actors/metrics.ts, the table in
 * docs/metrics.md.
 *
 * Counts are fed from committed batches only (after COMMIT), so a redelivery never counts twice; open alerts
 * are seeded from PostgreSQL at start and tracked by alert id, so a replayed `open` or a `close` of an alert
 * opened before the start keeps the gauge right.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type pg from 'pg'
import { ConfigError, METRICS } from '../actors/mod.js'
import type { BatchRows } from './batch.js'
import { TABLES } from './schema.js'

/** Environment variables of the domain metrics (read by the projector entrypoint through domainMetricsFromEnv). */
export const DOMAIN_METRICS_ENV = {
  profiles: 'PITWALL_DOMAIN_METRICS',
  maxEntities: 'PITWALL_DOMAIN_METRICS_MAX_ENTITIES',
} as const

export const DOMAIN_METRICS_DEFAULTS = {
  /** Entities with per-entity series, per profile (the first ones seen keep their series). */
  maxEntities: 64,
  /** Label sets of all domain metrics together, per profile (the hard cap). */
  maxSeries: 1024,
  /** Distinct profiles counted in the always-on per-profile counters (late readings). */
  maxProfiles: 32,
} as const

export interface DomainMetricsConfig {
  /** Profiles whose domain gauges are on; empty = off (late readings per profile are always counted). */
  readonly profiles: ReadonlySet<string>
  readonly maxEntities: number
  readonly maxSeries: number
}

const PROFILE_NAME = /^[a-z][a-z0-9_-]{0,31}$/

/** Validates domain-metric options; the result is frozen. */
export function domainMetricsConfig(
  o: { profiles?: readonly string[]; maxEntities?: number; maxSeries?: number } = {},
): DomainMetricsConfig {
  const profiles = new Set<string>()
  for (const p of o.profiles ?? []) {
    if (!PROFILE_NAME.test(p)) throw new ConfigError(DOMAIN_METRICS_ENV.profiles, `'${p}' is not a profile name`)
    profiles.add(p)
  }
  const maxEntities = o.maxEntities ?? DOMAIN_METRICS_DEFAULTS.maxEntities
  if (!Number.isInteger(maxEntities) || maxEntities < 1 || maxEntities > 1000) {
    throw new ConfigError(DOMAIN_METRICS_ENV.maxEntities, `must be an integer in [1, 1000], got ${maxEntities}`)
  }
  const maxSeries = o.maxSeries ?? Math.max(DOMAIN_METRICS_DEFAULTS.maxSeries, maxEntities * 16)
  return Object.freeze({ profiles, maxEntities, maxSeries })
}

/** Reads PITWALL_DOMAIN_METRICS (comma-separated profiles) and PITWALL_DOMAIN_METRICS_MAX_ENTITIES. */
export function domainMetricsFromEnv(env: Record<string, string | undefined>): DomainMetricsConfig {
  const raw = env[DOMAIN_METRICS_ENV.profiles] ?? ''
  const profiles = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  const me = env[DOMAIN_METRICS_ENV.maxEntities]
  let maxEntities: number | undefined
  if (me !== undefined && me !== '') {
    maxEntities = Number(me)
    if (!Number.isInteger(maxEntities))
      throw new ConfigError(DOMAIN_METRICS_ENV.maxEntities, `must be an integer, got ${JSON.stringify(me)}`)
  }
  return domainMetricsConfig(maxEntities === undefined ? { profiles } : { profiles, maxEntities })
}

type Labels = Record<string, string>

/** The values of one metric: label set -> number, in insertion order. */
class Table {
  readonly rows = new Map<string, { labels: Labels; value: number }>()
}

/** Per-profile bookkeeping: entities that have series, and the label sets spent. */
interface ProfileBudget {
  entities: Set<string>
  series: number
}

/** The window fields charted per profile (their means); other fields of a window are not exported. */
const WINDOW_FIELDS: Readonly<Record<string, readonly string[]>> = {
  environment: ['temperature', 'humidity', 'co2', 'pressure', 'battery'],
  asset: ['vibration', 'temperature', 'pressure', 'flow'],
  process: ['value'],
}

/** The observer the projector calls; see Projector's `observer` option. */
export interface ProjectorObserver {
  /** Called once at start, after migrations, before consuming. */
  start(pool: pg.Pool): Promise<void>
  /** Called after each committed batch with its rows. */
  committed(rows: BatchRows): void
  /** Called once per batch of messages written (retries included in `seconds`). */
  written?(messages: number, seconds: number): void
}

/** Table each kind of row lands in (the projector's tables, schema.ts). */
const ROW_TABLES: ReadonlyArray<[keyof BatchRows, string]> = [
  ['windows', TABLES.windows],
  ['alerts', TABLES.alerts],
  ['alertEvents', TABLES.alertEvents],
  ['scoresLatest', TABLES.scoresLatest],
  ['scoreHistory', TABLES.scoreHistory],
  ['recommendations', TABLES.recommendations],
  ['laps', TABLES.laps],
  ['late', TABLES.late],
]

/** Domain metrics fed by the projector; `register` adds them to a registry. */
export class DomainMetrics implements ProjectorObserver {
  readonly cfg: DomainMetricsConfig
  private readonly tables = {
    alertsOpen: new Table(),
    alertsOpened: new Table(),
    entityAlertsOpen: new Table(),
    entityScore: new Table(),
    recommendations: new Table(),
    lapBrake: new Table(),
    lapTyre: new Table(),
    lapSeconds: new Table(),
    windowMean: new Table(),
    stageAnomalies: new Table(),
  }
  private readonly late = new Map<string, number>()
  private readonly rowsByTable = new Map<string, number>(ROW_TABLES.map(([, table]) => [table, 0]))
  private readonly histograms: Array<{ messages: Histogram; seconds: Histogram }> = []
  private readonly dropped = new Map<string, number>()
  private readonly budgets = new Map<string, ProfileBudget>()
  // Open alerts of enabled profiles: alert id -> [profile, type, severity, entity]. Bounded by the open alerts.
  private readonly open = new Map<string, [string, string, string, string]>()

  constructor(cfg: DomainMetricsConfig = domainMetricsConfig()) {
    this.cfg = cfg
    for (const p of cfg.profiles) this.dropped.set(p, 0)
  }

  /** Seeds open alerts of the enabled profiles from PostgreSQL (the projection is the truth at start). */
  async start(pool: pg.Pool): Promise<void> {
    if (this.cfg.profiles.size === 0) return
    const r = await pool.query<{ alert_id: string; profile: string; type: string; severity: string; entity: string }>(
      `SELECT alert_id, profile, type, severity, entity FROM alerts WHERE state = 'open' AND profile = ANY($1) ORDER BY started_at`,
      [[...this.cfg.profiles]],
    )
    for (const a of r.rows) this.openAlert(a.alert_id, a.profile, a.type, a.severity, a.entity, false)
  }

  /** Folds one committed batch into the gauges. */
  committed(rows: BatchRows): void {
    for (const [k, table] of ROW_TABLES)
      this.rowsByTable.set(table, (this.rowsByTable.get(table) ?? 0) + rows[k].length)
    for (const l of rows.late) {
      if (this.late.has(l.profile) || this.late.size < DOMAIN_METRICS_DEFAULTS.maxProfiles) {
        this.late.set(l.profile, (this.late.get(l.profile) ?? 0) + 1)
      }
    }
    if (this.cfg.profiles.size === 0) return
    const on = (p: string): boolean => this.cfg.profiles.has(p)
    for (const e of rows.alertEvents) {
      if (!on(e.profile)) continue
      if (e.event === 'close') this.closeAlert(e.alert_id)
      else if (e.event === 'open') {
        const stage = e.details?.stage
        // Counted once per alert: a replayed open of an alert already open adds nothing.
        if (
          this.openAlert(e.alert_id, e.profile, e.type, e.severity, e.entity, true) &&
          typeof stage === 'string' &&
          stage !== ''
        ) {
          this.add(this.tables.stageAnomalies, e.profile, null, { profile: e.profile, stage, type: e.type }, 1)
        }
      }
    }
    for (const s of rows.scoresLatest) {
      if (on(s.profile))
        this.set(
          this.tables.entityScore,
          s.profile,
          s.entity,
          { profile: s.profile, entity: s.entity, name: s.name },
          s.value,
        )
    }
    for (const r of rows.recommendations) {
      if (on(r.profile))
        this.add(
          this.tables.recommendations,
          r.profile,
          r.entity,
          { profile: r.profile, entity: r.entity, action: r.action },
          1,
        )
    }
    for (const l of rows.laps) {
      if (!on(l.profile)) continue
      const labels = { profile: l.profile, entity: l.entity }
      this.set(this.tables.lapBrake, l.profile, l.entity, labels, l.max_brake_temp)
      this.set(this.tables.lapTyre, l.profile, l.entity, labels, l.max_tyre_temp)
      this.set(this.tables.lapSeconds, l.profile, l.entity, labels, l.lap_time_ms / 1000)
    }
    for (const w of rows.windows) {
      if (!on(w.profile)) continue
      for (const field of WINDOW_FIELDS[w.profile] ?? []) {
        const agg = w.fields[field]
        if (agg && agg.count > 0) {
          this.set(
            this.tables.windowMean,
            w.profile,
            w.entity,
            { profile: w.profile, entity: w.entity, field },
            agg.mean,
          )
        }
      }
    }
  }

  /** Observes one written batch: its size and how long writing it took. */
  written(messages: number, seconds: number): void {
    for (const h of this.histograms) {
      h.messages.observe(messages)
      h.seconds.observe(seconds)
    }
  }

  /** Label sets in use per profile and entities with series (for tests and the cardinality bound). */
  usage(): Record<string, { series: number; entities: number; dropped: number }> {
    const out: Record<string, { series: number; entities: number; dropped: number }> = {}
    for (const p of this.cfg.profiles) {
      const b = this.budgets.get(p)
      out[p] = { series: b?.series ?? 0, entities: b?.entities.size ?? 0, dropped: this.dropped.get(p) ?? 0 }
    }
    return out
  }

  /** Adds the domain metrics to `registry`; values are read at scrape time. */
  register(registry: Registry): void {
    const t = this.tables
    const gauge = (name: string, help: string, labelNames: string[], read: () => Iterable<[Labels, number]>): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          for (const [labels, v] of read()) this.set(labels, v)
        },
      })
    }
    const counter = (
      name: string,
      help: string,
      labelNames: string[],
      read: () => Iterable<[Labels, number]>,
    ): void => {
      const seen = new Map<string, number>()
      new Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          for (const [labels, v] of read()) {
            const k = JSON.stringify(labels)
            const prev = seen.get(k) ?? 0
            if (v > prev) this.inc(labels, v - prev)
            else if (prev === 0) this.inc(labels, 0)
            seen.set(k, v)
          }
        },
      })
    }
    const rowsOf = (table: Table) => (): Array<[Labels, number]> =>
      [...table.rows.values()].map((r): [Labels, number] => [r.labels, r.value])
    counter(
      METRICS.projectorRows,
      'Rows written (inserted or updated) by table; a row folded from several outputs counts once.',
      ['table'],
      () => [...this.rowsByTable].map(([table, v]): [Labels, number] => [{ table }, v]),
    )
    this.histograms.push({
      messages: new Histogram({
        name: METRICS.projectorBatchMessages,
        help: 'Messages per batch written in one transaction.',
        buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
        registers: [registry],
      }),
      seconds: new Histogram({
        name: METRICS.projectorWriteSeconds,
        help: 'Time to write one batch to PostgreSQL (retries included).',
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [registry],
      }),
    })
    counter(
      METRICS.projectorLateReadings,
      'Late readings written aside (late outputs committed), by profile.',
      ['profile'],
      () => [...this.late].map(([profile, v]): [Labels, number] => [{ profile }, v]),
    )
    if (this.cfg.profiles.size === 0) return
    gauge(
      METRICS.domainAlertsOpen,
      'Open alerts by profile, type and severity.',
      ['profile', 'type', 'severity'],
      rowsOf(t.alertsOpen),
    )
    counter(
      METRICS.domainAlertsOpened,
      'Alerts opened, by profile, type and severity.',
      ['profile', 'type', 'severity'],
      rowsOf(t.alertsOpened),
    )
    gauge(
      METRICS.domainEntityAlertsOpen,
      'Open alerts of one entity by type (entities under the cap).',
      ['profile', 'entity', 'type'],
      rowsOf(t.entityAlertsOpen),
    )
    gauge(
      METRICS.domainEntityScore,
      'Latest score of an entity (e.g. race pit_stop 0-100, asset failure_risk 0-1).',
      ['profile', 'entity', 'name'],
      rowsOf(t.entityScore),
    )
    counter(
      METRICS.domainRecommendations,
      'Recommendations emitted (e.g. race pit_now), by entity and action.',
      ['profile', 'entity', 'action'],
      rowsOf(t.recommendations),
    )
    gauge(
      METRICS.domainLapBrakeTempMax,
      'Highest brake temperature of the last completed lap, any corner (°C).',
      ['profile', 'entity'],
      rowsOf(t.lapBrake),
    )
    gauge(
      METRICS.domainLapTyreTempMax,
      'Highest tyre temperature of the last completed lap, any corner (°C).',
      ['profile', 'entity'],
      rowsOf(t.lapTyre),
    )
    gauge(METRICS.domainLapSeconds, 'Time of the last completed lap (s).', ['profile', 'entity'], rowsOf(t.lapSeconds))
    gauge(
      METRICS.domainWindowMean,
      "Mean of a field over the entity's last closed window.",
      ['profile', 'entity', 'field'],
      rowsOf(t.windowMean),
    )
    counter(
      METRICS.domainStageAnomalies,
      'Anomalies opened per process stage and type (alerts carrying details.stage).',
      ['profile', 'stage', 'type'],
      rowsOf(t.stageAnomalies),
    )
    gauge(METRICS.domainEntitiesTracked, 'Entities with per-entity domain series (at most the cap).', ['profile'], () =>
      [...this.cfg.profiles].map((profile): [Labels, number] => [
        { profile },
        this.budgets.get(profile)?.entities.size ?? 0,
      ]),
    )
    counter(
      METRICS.domainDropped,
      'Domain metric updates not recorded because the profile reached its entity or series cap.',
      ['profile'],
      () => [...this.dropped].map(([profile, v]): [Labels, number] => [{ profile }, v]),
    )
  }

  /** Tracks a newly open alert; false when it was already open or the profile's caps leave no room. */
  private openAlert(
    id: string,
    profile: string,
    type: string,
    severity: string,
    entity: string,
    counted: boolean,
  ): boolean {
    if (this.open.has(id)) return false
    if (!this.add(this.tables.alertsOpen, profile, null, { profile, type, severity }, 1)) return false
    this.open.set(id, [profile, type, severity, entity])
    if (counted) this.add(this.tables.alertsOpened, profile, null, { profile, type, severity }, 1)
    this.add(this.tables.entityAlertsOpen, profile, entity, { profile, entity, type }, 1)
    return true
  }

  private closeAlert(id: string): void {
    const a = this.open.get(id)
    if (!a) return
    this.open.delete(id)
    const [profile, type, severity, entity] = a
    this.add(this.tables.alertsOpen, profile, null, { profile, type, severity }, -1)
    this.add(this.tables.entityAlertsOpen, profile, entity, { profile, entity, type }, -1)
  }

  private set(table: Table, profile: string, entity: string | null, labels: Labels, value: number): void {
    const row = this.row(table, profile, entity, labels)
    if (row) row.value = value
  }

  private add(table: Table, profile: string, entity: string | null, labels: Labels, delta: number): boolean {
    const row = this.row(table, profile, entity, labels)
    if (row) row.value = Math.max(0, row.value + delta)
    return row !== undefined
  }

  /** The row of `labels`, created if the profile's caps allow; undefined (and counted as dropped) if not. */
  private row(
    table: Table,
    profile: string,
    entity: string | null,
    labels: Labels,
  ): { labels: Labels; value: number } | undefined {
    const key = Object.values(labels).join('\u0000')
    const existing = table.rows.get(key)
    if (existing) return existing
    let b = this.budgets.get(profile)
    if (!b) {
      b = { entities: new Set(), series: 0 }
      this.budgets.set(profile, b)
    }
    const newEntity = entity !== null && !b.entities.has(entity)
    if (b.series >= this.cfg.maxSeries || (newEntity && b.entities.size >= this.cfg.maxEntities)) {
      this.dropped.set(profile, (this.dropped.get(profile) ?? 0) + 1)
      return undefined
    }
    if (newEntity) b.entities.add(entity)
    b.series++
    const row = { labels, value: 0 }
    table.rows.set(key, row)
    return row
  }
}
