/**
 * Prometheus metrics of a worker and its projector (prom-client). Names live here and nowhere else; they are
 * listed in docs/metrics.md. Counters mirror the runtime's RuntimeStats (read at scrape time, so the hot path
 * only increments plain numbers); no label carries an entity id, so series stay bounded by partitions.
 */
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { RuntimeObserver, RuntimeStats } from './runtime.js'
import type { AlertBody } from './types.js'

export const METRICS = {
  processed: 'pitwall_worker_readings_processed_total',
  skippedReplay: 'pitwall_worker_readings_skipped_replay_total',
  duplicates: 'pitwall_worker_readings_duplicate_total',
  ridUnverifiable: 'pitwall_worker_readings_rid_unverifiable_total',
  invalid: 'pitwall_worker_messages_invalid_total',
  outputs: 'pitwall_worker_outputs_total',
  checkpoints: 'pitwall_worker_checkpoints_total',
  checkpointFailures: 'pitwall_worker_checkpoint_failures_total',
  checkpointSeconds: 'pitwall_worker_checkpoint_duration_seconds',
  snapshotsWritten: 'pitwall_worker_snapshots_written_total',
  snapshotBytes: 'pitwall_worker_snapshot_bytes_total',
  activations: 'pitwall_worker_activations_total',
  passivations: 'pitwall_worker_passivations_total',
  leaseChanges: 'pitwall_worker_lease_changes_total',
  ticks: 'pitwall_worker_ticks_total',
  staleSnapshotsIgnored: 'pitwall_worker_stale_snapshots_ignored_total',
  partitionsOwned: 'pitwall_worker_partitions_owned',
  // Reserved for the partition runner (not exported yet): messages in TLM not yet delivered to a partition's
  // consumer, label `partition`. The alert PitwallConsumerLagGrowing and the SRE dashboard use it already.
  consumerLag: 'pitwall_worker_consumer_lag_messages',
  activeActors: 'pitwall_worker_active_actors',
  // Worker, by profile (WorkerObserver): plain numbers on the hot path, rendered at scrape time.
  profileProcessed: 'pitwall_worker_profile_readings_processed_total',
  lateReadings: 'pitwall_worker_late_readings_total',
  eventToOutputSeconds: 'pitwall_worker_event_to_output_seconds',
  ingestToOutputSeconds: 'pitwall_worker_ingest_to_output_seconds',
  alertsOpen: 'pitwall_worker_alerts_open',
  alertsUntracked: 'pitwall_worker_alerts_untracked_total',
  checkpointBytes: 'pitwall_worker_checkpoint_bytes',
  projectorApplied: 'pitwall_projector_outputs_applied_total',
  projectorRejectedStale: 'pitwall_projector_outputs_rejected_stale_total',
  projectorRejectedMalformed: 'pitwall_projector_outputs_rejected_malformed_total',
  projectorDuplicates: 'pitwall_projector_outputs_duplicate_total',
  projectorBatches: 'pitwall_projector_batches_total',
  projectorLastSeq: 'pitwall_projector_committed_sequence',
  // Projector, by profile (projector/domain-metrics.ts): late readings written aside; always on.
  projectorLateReadings: 'pitwall_projector_late_readings_total',
  // Projector writes (projector/domain-metrics.ts, always on): rows by table, batch sizes, write latency.
  projectorRows: 'pitwall_projector_rows_written_total',
  projectorBatchMessages: 'pitwall_projector_batch_messages',
  projectorWriteSeconds: 'pitwall_projector_write_duration_seconds',
  projectorLag: 'pitwall_projector_lag_messages',
  // Domain gauges (projector/domain-metrics.ts), opt-in per profile (PITWALL_DOMAIN_METRICS); per-entity
  // series only for the first PITWALL_DOMAIN_METRICS_MAX_ENTITIES entities of a profile (default 64).
  domainAlertsOpen: 'pitwall_domain_alerts_open',
  domainAlertsOpened: 'pitwall_domain_alerts_opened_total',
  domainEntityAlertsOpen: 'pitwall_domain_entity_alerts_open',
  domainEntityScore: 'pitwall_domain_entity_score',
  domainRecommendations: 'pitwall_domain_recommendations_total',
  domainLapBrakeTempMax: 'pitwall_domain_lap_brake_temp_max_celsius',
  domainLapTyreTempMax: 'pitwall_domain_lap_tyre_temp_max_celsius',
  domainLapSeconds: 'pitwall_domain_lap_seconds',
  domainWindowMean: 'pitwall_domain_window_mean',
  domainStageAnomalies: 'pitwall_domain_stage_anomalies_total',
  domainEntitiesTracked: 'pitwall_domain_entities_tracked',
  domainDropped: 'pitwall_domain_updates_dropped_total',
  // Gateway (gateway/metrics.ts). Labels: route is the route pattern (never the raw URL), status the HTTP code.
  gatewayRequests: 'pitwall_gateway_requests_total',
  gatewayRequestSeconds: 'pitwall_gateway_request_duration_seconds',
  gatewayRequestBytes: 'pitwall_gateway_request_bytes_total',
  gatewayReadingsAccepted: 'pitwall_gateway_readings_accepted_total',
  gatewayReadingsRejected: 'pitwall_gateway_readings_rejected_total',
  gatewayPublishSeconds: 'pitwall_gateway_jetstream_publish_duration_seconds',
  gatewayBackpressure: 'pitwall_gateway_backpressure_responses_total',
  gatewayLiveClients: 'pitwall_gateway_live_clients',
  gatewayJwksFetches: 'pitwall_gateway_jwks_fetches_total',
  // Webhook notifications (gateway/notify-worker.ts). Labels: outcome and result from fixed sets, never a URL.
  notifyDeliveries: 'pitwall_notify_deliveries_total',
  notifyAttempts: 'pitwall_notify_attempts_total',
  notifyAttemptSeconds: 'pitwall_notify_attempt_duration_seconds',
  notifyDeliveryLatencySeconds: 'pitwall_notify_delivery_latency_seconds',
  notifyPending: 'pitwall_notify_pending',
  notifyOldestPendingSeconds: 'pitwall_notify_oldest_pending_seconds',
  gatewayRateLimitStoreUp: 'pitwall_gateway_rate_limit_store_up',
  gatewayRateLimitFallback: 'pitwall_gateway_rate_limit_fallback_total',
  // Sites (sites/controller.ts): one series per site process, labels site (and role on the role gauge).
  siteRole: 'pitwall_site_role',
  siteEpoch: 'pitwall_site_epoch',
  sitePeerLinkUp: 'pitwall_site_peer_link_up',
  siteMirrorLag: 'pitwall_site_mirror_lag_messages',
  siteFailovers: 'pitwall_site_failovers_total',
  siteStrayPartitions: 'pitwall_site_stray_partitions',
  siteStraysForwarded: 'pitwall_site_strays_forwarded_total',
  siteStrayRelayFailures: 'pitwall_site_stray_relay_failures_total',
  sitePartitionsOwned: 'pitwall_site_partitions_owned',
  // Worker (actors/worker.ts): the peer-map gate of a restarted site (docs/sites.md, "Restarting a site").
  siteAwaitingPeerMap: 'pitwall_site_awaiting_peer_map',
} as const

/**
 * A counter that mirrors monotonic numbers read at scrape time (the hot path only bumps plain numbers). With
 * `series`, one labelled series per entry (label value -> reader); without, a single unlabelled series.
 */
function mirroredCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number,
  series?: { label: string; values: Record<string, () => number> },
): void {
  const readers: Array<[Record<string, string>, () => number]> = series
    ? Object.entries(series.values).map(([v, r]) => [{ [series.label]: v }, r])
    : [[{}, read]]
  const seen = readers.map(() => 0)
  new Counter({
    name,
    help,
    registers: [registry],
    labelNames: series ? [series.label] : [],
    collect() {
      readers.forEach(([labels, r], i) => {
        const v = r()
        if (v > (seen[i] as number)) this.inc(labels, v - (seen[i] as number))
        seen[i] = v
      })
    },
  })
}

/** What the metrics read from a worker at scrape time. */
export interface MetricsSource {
  stats: RuntimeStats
  owned(): number[]
  activeActors(): number
  /** Consumer lag per owned partition (a series per partition: bounded by P). */
  lags?(): Array<[number, number]>
  /** Two sites: 1 while the worker waits for the peer's map before taking partitions. */
  awaitingPeerMap?(): number
}

type CounterKey = Exclude<keyof RuntimeStats, 'leaseAcquired' | 'leaseLost' | 'leaseReleased'>
const COUNTERS: ReadonlyArray<[CounterKey, string, string]> = [
  ['processed', METRICS.processed, 'Readings applied to actors (replays skipped are not counted).'],
  [
    'skippedReplay',
    METRICS.skippedReplay,
    'Readings skipped because the actor had already applied them (replay after a crash or move).',
  ],
  [
    'duplicates',
    METRICS.duplicates,
    'Readings not applied because their actor had already applied their rid (a re-send).',
  ],
  [
    'ridUnverifiable',
    METRICS.ridUnverifiable,
    "Readings applied although a re-send of them could not be ruled out: their rid is older than the actor's dedupe set covers (PITWALL_DEDUPE_HORIZON_MS, PITWALL_DEDUPE_MAX_IDS).",
  ],
  [
    'invalid',
    METRICS.invalid,
    'Messages in TLM that could not be processed (malformed, unknown kind or profile); counted and skipped.',
  ],
  ['outputs', METRICS.outputs, 'Outputs published to OUT.'],
  ['checkpoints', METRICS.checkpoints, 'Successful partition checkpoints.'],
  [
    'checkpointFailures',
    METRICS.checkpointFailures,
    'Failed checkpoints (fenced, or a write failed); the partition runner stops.',
  ],
  ['snapshotsWritten', METRICS.snapshotsWritten, 'Actor snapshots written.'],
  ['snapshotBytes', METRICS.snapshotBytes, 'Bytes of actor snapshots written.'],
  ['activations', METRICS.activations, 'Actor activations (loaded from snapshot or created).'],
  ['passivations', METRICS.passivations, 'Actor passivations (idle or over the active bound).'],
  ['ticks', METRICS.ticks, 'Processing-time tick messages handled.'],
  [
    'staleSnapshotsIgnored',
    METRICS.staleSnapshotsIgnored,
    'Snapshots ignored because a stale owner wrote them after the claim.',
  ],
]

/**
 * Latency buckets (seconds) of the worker's output histograms: 1-2.5-5 steps from 1 ms to 1 s for live data, then
 * 2.5 s to 10 min for readings that arrive late or are replayed after a crash or a failover. 18 buckets.
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
]
/** Checkpoint size buckets (bytes of snapshots one checkpoint writes): 1 KiB to 64 MiB, factor 4. */
export const CHECKPOINT_BYTES_BUCKETS: readonly number[] = [
  1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]
/** Checkpoint duration buckets (seconds). */
export const CHECKPOINT_SECONDS_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
/** Label sets (profile, type, severity) of `pitwall_worker_alerts_open` a worker keeps at most. */
export const MAX_ALERT_LABEL_SETS = 64
/** Open alerts a worker tracks by id at most (memory bound: one map entry each). */
export const MAX_TRACKED_ALERTS = 100_000

/** A histogram kept as plain numbers: per-bucket (not cumulative) counts, sum and count. */
export class PlainHistogram {
  readonly bounds: readonly number[]
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length)
  }

  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > (b[i] as number)) i++
    if (i < b.length) this.counts[i] = (this.counts[i] as number) + 1
    this.sum += v
    this.count++
  }

  /** Prometheus samples (`_bucket` cumulative with `le`, `_sum`, `_count`) under `labels`. */
  samples(
    name: string,
    labels: Record<string, string>,
  ): Array<{ metricName: string; labels: Record<string, string | number>; value: number }> {
    const out: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = []
    let acc = 0
    this.bounds.forEach((le, i) => {
      acc += this.counts[i] as number
      out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: acc })
    })
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: this.count })
    out.push({ metricName: `${name}_sum`, labels, value: this.sum })
    out.push({ metricName: `${name}_count`, labels, value: this.count })
    return out
  }
}

/** What a worker counts per profile. */
export interface ProfileCounts {
  processed: number
  late: number
  eventToOutput: PlainHistogram
  ingestToOutput: PlainHistogram
}

interface AlertSet {
  labels: { profile: string; type: string; severity: string }
  open: number
}

/**
 * The worker's observer (pass it as WorkerOptions.observe, then to workerRegistry): per-profile readings, late
 * readings and output latencies, open alerts by (profile, type, severity), checkpoint durations and sizes. The hot
 * path bumps plain numbers (a map lookup by profile per reading, one clock read per output); workerRegistry
 * renders them at scrape time.
 */
export class WorkerObserver implements RuntimeObserver {
  readonly profiles = new Map<string, ProfileCounts>()
  readonly checkpointSeconds = new PlainHistogram(CHECKPOINT_SECONDS_BUCKETS)
  readonly checkpointSize = new PlainHistogram(CHECKPOINT_BYTES_BUCKETS)
  /** Label sets of the open-alerts gauge, by `profile\ntype\nseverity` (at most MAX_ALERT_LABEL_SETS). */
  readonly alertSets = new Map<string, AlertSet>()
  /** Alert outputs not counted because a cap was reached. */
  alertsUntracked = 0
  /** Open alerts by partition, then alert id (a close or a replayed open of a known id changes nothing twice). */
  private readonly open = new Map<number, Map<string, AlertSet>>()
  private tracked = 0
  private readonly now: () => number

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? Date.now
  }

  private profile(name: string): ProfileCounts {
    let p = this.profiles.get(name)
    if (!p) {
      // Profiles come from the worker's registry (actor definitions), not from messages: a fixed, small set.
      p = {
        processed: 0,
        late: 0,
        eventToOutput: new PlainHistogram(LATENCY_BUCKETS),
        ingestToOutput: new PlainHistogram(LATENCY_BUCKETS),
      }
      this.profiles.set(name, p)
    }
    return p
  }

  checkpoint(seconds: number): void {
    this.checkpointSeconds.observe(seconds)
  }

  checkpointBytes(bytes: number): void {
    this.checkpointSize.observe(bytes)
  }

  reading(profile: string): void {
    this.profile(profile).processed++
  }

  output(
    partition: number,
    o: { type: string; profile: string; body: unknown },
    eventMs: number,
    ingestMs: number,
  ): void {
    const p = this.profile(o.profile)
    const now = this.now()
    // A device clock ahead of ours gives a negative age: counted in the lowest bucket, not dropped.
    if (!Number.isNaN(eventMs)) p.eventToOutput.observe(Math.max(0, now - eventMs) / 1000)
    p.ingestToOutput.observe(Math.max(0, now - ingestMs) / 1000)
    if (o.type === 'late') p.late++
    else if (o.type === 'alert') this.alert(partition, o.profile, o.body as AlertBody)
  }

  private alert(partition: number, profile: string, b: AlertBody): void {
    let open = this.open.get(partition)
    if (!open) this.open.set(partition, (open = new Map()))
    const known = open.get(b.alertId)
    if (b.state === 'close') {
      if (known) {
        known.open--
        open.delete(b.alertId)
        this.tracked--
      }
      return
    }
    // An open, or an update of an alert opened before this worker owned the partition: open now.
    if (known) return
    const key = `${profile}\n${b.type}\n${b.severity}`
    let set = this.alertSets.get(key)
    if (!set) {
      if (this.alertSets.size >= MAX_ALERT_LABEL_SETS) {
        this.alertsUntracked++
        return
      }
      set = { labels: { profile, type: String(b.type), severity: String(b.severity) }, open: 0 }
      this.alertSets.set(key, set)
    }
    if (this.tracked >= MAX_TRACKED_ALERTS) {
      this.alertsUntracked++
      return
    }
    set.open++
    open.set(b.alertId, set)
    this.tracked++
  }

  partitionClosed(partition: number): void {
    const open = this.open.get(partition)
    if (!open) return
    for (const set of open.values()) set.open--
    this.tracked -= open.size
    this.open.delete(partition)
  }
}

type Sample = { metricName?: string; labels: Record<string, string | number>; value: number }

/** Registers a metric whose samples `values()` renders at scrape time from plain numbers. */
function rendered(
  registry: Registry,
  kind: 'counter' | 'gauge' | 'histogram',
  name: string,
  help: string,
  labelNames: string[],
  values: () => Sample[],
): void {
  const m =
    kind === 'counter'
      ? new Counter({ name, help, labelNames, registers: [] })
      : kind === 'gauge'
        ? new Gauge({ name, help, labelNames, registers: [] })
        : new Histogram({ name, help, labelNames, buckets: [1], registers: [] })
  type Rendered = Awaited<ReturnType<typeof m.get>>
  const get = async (): Promise<Rendered> =>
    ({ name, help, type: kind, aggregator: 'sum', values: values() }) as unknown as Rendered
  m.get = get
  // The registry renders histograms through getForPromString when present: the same samples.
  Object.assign(m, { getForPromString: get })
  registry.registerMetric(m)
}

/** Registers the observer's metrics (per profile, open alerts, checkpoint histograms) in `registry`. */
function registerObserver(registry: Registry, o: WorkerObserver): void {
  const perProfile = (pick: (p: ProfileCounts) => number) => (): Sample[] =>
    [...o.profiles].map(([profile, p]) => ({ labels: { profile }, value: pick(p) }))
  rendered(
    registry,
    'counter',
    METRICS.profileProcessed,
    'Readings applied to actors, by profile (replays skipped are not counted).',
    ['profile'],
    perProfile((p) => p.processed),
  )
  rendered(
    registry,
    'counter',
    METRICS.lateReadings,
    'Late readings (behind the watermark, written aside as late outputs), by profile.',
    ['profile'],
    perProfile((p) => p.late),
  )
  rendered(
    registry,
    'histogram',
    METRICS.eventToOutputSeconds,
    'Event time of the reading being handled to the output it caused being emitted, by profile.',
    ['profile'],
    () => [...o.profiles].flatMap(([profile, p]) => p.eventToOutput.samples(METRICS.eventToOutputSeconds, { profile })),
  )
  rendered(
    registry,
    'histogram',
    METRICS.ingestToOutputSeconds,
    'JetStream timestamp of the message being handled to the output it caused being emitted, by profile.',
    ['profile'],
    () =>
      [...o.profiles].flatMap(([profile, p]) => p.ingestToOutput.samples(METRICS.ingestToOutputSeconds, { profile })),
  )
  rendered(
    registry,
    'gauge',
    METRICS.alertsOpen,
    'Alerts open on the partitions this worker owns, from the alert outputs it emitted, by profile, type and severity.',
    ['profile', 'type', 'severity'],
    () => [...o.alertSets.values()].map((s) => ({ labels: s.labels, value: s.open })),
  )
  rendered(
    registry,
    'counter',
    METRICS.alertsUntracked,
    `Alert outputs not counted in ${METRICS.alertsOpen} because a cap was reached (label sets or tracked alerts).`,
    [],
    () => [{ labels: {}, value: o.alertsUntracked }],
  )
  rendered(
    registry,
    'histogram',
    METRICS.checkpointBytes,
    'Bytes of actor snapshots one successful checkpoint wrote.',
    [],
    () => o.checkpointSize.samples(METRICS.checkpointBytes, {}),
  )
}

/**
 * A registry with default process metrics and the worker's metrics, read from `src` at each scrape, and those of
 * `observer` (the one given to the Worker as `observe`; a fresh one when omitted, fed only by the returned
 * `checkpointSeconds`).
 */
export function workerRegistry(
  src: MetricsSource,
  labels: Record<string, string>,
  observer = new WorkerObserver(),
): {
  registry: Registry
  checkpointSeconds: { observe(seconds: number): void }
  observer: WorkerObserver
} {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  collectDefaultMetrics({ register: registry })
  for (const [key, name, help] of COUNTERS) mirroredCounter(registry, name, help, () => src.stats[key])
  mirroredCounter(
    registry,
    METRICS.leaseChanges,
    'Partition lease changes: acquired, lost (fenced) or released (handoff).',
    () => 0,
    {
      label: 'change',
      values: {
        acquired: () => src.stats.leaseAcquired,
        lost: () => src.stats.leaseLost,
        released: () => src.stats.leaseReleased,
      },
    },
  )
  new Gauge({
    name: METRICS.partitionsOwned,
    help: 'Partitions this worker owns.',
    registers: [registry],
    collect() {
      this.set(src.owned().length)
    },
  })
  if (src.awaitingPeerMap) {
    const awaiting = src.awaitingPeerMap.bind(src)
    new Gauge({
      name: METRICS.siteAwaitingPeerMap,
      help: "Two sites: 1 while this worker takes no partition because its site's map may be stale (waiting for the peer's map or an override).",
      registers: [registry],
      collect() {
        this.set(awaiting())
      },
    })
  }
  new Gauge({
    name: METRICS.activeActors,
    help: 'Actors in memory on this worker.',
    registers: [registry],
    collect() {
      this.set(src.activeActors())
    },
  })
  new Gauge({
    name: METRICS.consumerLag,
    help: 'Messages of a partition not yet received by its owner (consumer pending after the last delivery).',
    labelNames: ['partition'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [p, lag] of src.lags?.() ?? []) this.set({ partition: String(p) }, lag)
    },
  })
  rendered(
    registry,
    'histogram',
    METRICS.checkpointSeconds,
    'Duration of a partition checkpoint (outputs acked, snapshots, cursor CAS).',
    [],
    () => observer.checkpointSeconds.samples(METRICS.checkpointSeconds, {}),
  )
  registerObserver(registry, observer)
  return { registry, checkpointSeconds: { observe: (s) => observer.checkpoint(s) }, observer }
}

/** Serves `GET /metrics` (and `/healthz`) on host:port; port 0 picks a free one. */
export async function serveMetrics(
  registry: Registry,
  port: number,
  host = '127.0.0.1',
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': registry.contentType })
          res.end(body)
        },
        (err: unknown) => {
          res.writeHead(500)
          res.end(String(err))
        },
      )
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('ok\n')
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const a = server.address()
  return { server, port: typeof a === 'object' && a ? a.port : port }
}

/** What the projector metrics read at scrape time (Projector.stats()). */
export interface ProjectorStatsSource {
  stats(): {
    applied: number
    rejectedStale: number
    rejectedMalformed: number
    duplicates: number
    batches: number
    lastSeq: number
  }
  /** OUT messages not yet committed (Projector.lag()); read at scrape time when present. */
  lag?(): Promise<number>
}

/** A registry with default process metrics and the projector's counters (and its domain metrics, if given). */
export function projectorRegistry(
  src: ProjectorStatsSource,
  labels: Record<string, string>,
  domain?: { register(registry: Registry): void },
): Registry {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  collectDefaultMetrics({ register: registry })
  mirroredCounter(
    registry,
    METRICS.projectorApplied,
    'Outputs written to PostgreSQL (fences included).',
    () => src.stats().applied,
  )
  mirroredCounter(
    registry,
    METRICS.projectorRejectedStale,
    'Outputs refused because a newer fencing token owns their partition.',
    () => src.stats().rejectedStale,
  )
  mirroredCounter(
    registry,
    METRICS.projectorRejectedMalformed,
    'Outputs set aside in projector_rejects (undecodable or refused by the database).',
    () => src.stats().rejectedMalformed,
  )
  mirroredCounter(
    registry,
    METRICS.projectorDuplicates,
    'Redelivered outputs at or below the committed position, skipped.',
    () => src.stats().duplicates,
  )
  mirroredCounter(registry, METRICS.projectorBatches, 'Transactions committed.', () => src.stats().batches)
  new Gauge({
    name: METRICS.projectorLastSeq,
    help: 'OUT stream sequence committed to PostgreSQL.',
    registers: [registry],
    collect() {
      this.set(src.stats().lastSeq)
    },
  })
  const lag = src.lag?.bind(src)
  if (lag) {
    new Gauge({
      name: METRICS.projectorLag,
      help: 'OUT messages of this site not yet committed to PostgreSQL (stream sequences behind the last one).',
      registers: [registry],
      async collect() {
        // A failed lookup drops the series for this scrape (unknown, not a stale number); the scrape still succeeds.
        try {
          this.set(await lag())
        } catch {
          this.reset()
        }
      },
    })
  }
  domain?.register(registry)
  return registry
}
