/** SRE overview: throughput, latency P50/P95/P99, lag, errors, saturation, sites. */
import { METRICS as M } from '../../actors/mod.js'
import { levels, q, quantiles, stat, table, timeseries, type Dashboard } from './builder.js'

const noLive = 'route!~"/v1/live|/metrics"'

export const sre: Dashboard = {
  uid: 'pitwall-sre',
  title: 'pitwall / SRE overview',
  description: 'Throughput, latency, lag, errors, saturation and sites of every pitwall service (docs/metrics.md).',
  tags: ['pitwall', 'sre'],
  rows: [
    {
      title: 'Throughput',
      panels: [
        stat('Readings processed /s', q(`sum(rate(${M.processed}[1m]))`), { unit: 'ops' }),
        stat('Gateway requests /s', q(`sum(rate(${M.gatewayRequests}[1m]))`), { unit: 'reqps' }),
        stat('Outputs /s', q(`sum(rate(${M.outputs}[1m]))`), { unit: 'ops' }),
        stat('Projector writes /s', q(`sum(rate(${M.projectorApplied}[1m]))`), { unit: 'ops' }),
        timeseries(
          'Readings processed /s by site',
          [
            q(`sum by (site) (rate(${M.processed}[1m]))`, 'processed {{site}}'),
            q(`sum by (site) (rate(${M.skippedReplay}[1m]))`, 'skipped (replay) {{site}}'),
          ],
          { unit: 'ops' },
        ),
        timeseries(
          'Gateway readings accepted and rejected /s',
          [
            q(`sum by (site) (rate(${M.gatewayReadingsAccepted}[1m]))`, 'accepted {{site}}'),
            q(`sum by (site, code) (rate(${M.gatewayReadingsRejected}[1m]))`, 'rejected {{code}} {{site}}'),
          ],
          { unit: 'ops' },
        ),
        timeseries(
          'Outputs published and projected /s',
          [
            q(`sum by (site) (rate(${M.outputs}[1m]))`, 'published {{site}}'),
            q(`sum by (site) (rate(${M.projectorApplied}[1m]))`, 'written to PostgreSQL {{site}}'),
          ],
          { unit: 'ops' },
        ),
        timeseries(
          'Gateway request bytes /s',
          q(`sum by (site, route) (rate(${M.gatewayRequestBytes}[1m]))`, '{{route}} {{site}}'),
          { unit: 'bytes' },
        ),
        timeseries(
          'Readings processed /s by profile',
          q(`sum by (site, profile) (rate(${M.profileProcessed}[1m]))`, '{{profile}} {{site}}'),
          { unit: 'ops' },
        ),
        timeseries(
          'Replayed readings skipped /s by worker',
          q(`sum by (site, worker) (rate(${M.skippedReplay}[1m]))`, '{{worker}} {{site}}'),
          {
            unit: 'ops',
            description:
              "Readings at or below an actor's last applied position, skipped on replay after a crash, a move or a failover.",
          },
        ),
      ],
    },
    {
      title: 'Latency',
      panels: [
        timeseries(
          'Gateway request latency P50/P95/P99',
          quantiles(`${M.gatewayRequestSeconds}_bucket{${noLive}}`, ''),
          {
            unit: 's',
            thresholds: levels(0.05),
            description: 'PitwallGatewayLatencyHigh fires when P95 > 50 ms for 1 min.',
          },
        ),
        timeseries(
          'Gateway JetStream publish latency P50/P95/P99',
          quantiles(`${M.gatewayPublishSeconds}_bucket`, ''),
          { unit: 's' },
        ),
        timeseries('Checkpoint duration P50/P95/P99', quantiles(`${M.checkpointSeconds}_bucket`, ''), {
          unit: 's',
          thresholds: levels(0.5, 1),
        }),
        timeseries('Ingest to output latency P50/P95/P99', quantiles(`${M.ingestToOutputSeconds}_bucket`, ''), {
          unit: 's',
          thresholds: levels(1, 10),
          description:
            'JetStream timestamp of the message a worker handled to the output it emitted. PitwallOutputLatencyHigh fires when P95 > 10 s for 10 min.',
        }),
        timeseries('Event time to output latency P50/P95/P99', quantiles(`${M.eventToOutputSeconds}_bucket`, ''), {
          unit: 's',
          description:
            'Device event time of the reading handled to the output emitted: includes transport delay and device clock skew; replayed or back-filled data shows as minutes (the last bucket is 10 min).',
        }),
        timeseries(
          'Ingest to output P95 by profile',
          quantiles(`${M.ingestToOutputSeconds}_bucket`, 'profile', [0.95]),
          { unit: 's', thresholds: levels(1, 10) },
        ),
        timeseries('Checkpoint size P50/P95', quantiles(`${M.checkpointBytes}_bucket`, '', [0.5, 0.95]), {
          unit: 'bytes',
          description: 'Bytes of actor snapshots one checkpoint wrote.',
        }),
        timeseries(
          'Gateway P95 by route',
          q(
            `histogram_quantile(0.95, sum by (route, le) (rate(${M.gatewayRequestSeconds}_bucket{${noLive}}[1m])))`,
            '{{route}}',
          ),
          { unit: 's', thresholds: levels(0.05) },
        ),
      ],
    },
    {
      title: 'Lag',
      panels: [
        timeseries(
          'Consumer lag by partition',
          q(`sum by (site, partition) (${M.consumerLag})`, 'p{{partition}} {{site}}'),
          {
            description: 'Readings in TLM not yet delivered to the partition consumer.',
            thresholds: levels(1000, 10000),
          },
        ),
        timeseries(
          'Projector lag (OUT messages not yet in PostgreSQL)',
          q(`max by (site) (${M.projectorLag})`, '{{site}}'),
          { thresholds: levels(1000, 20000) },
        ),
        timeseries(
          'Projector committed OUT sequence /s',
          q(`sum by (site) (rate(${M.projectorLastSeq}[1m]))`, '{{site}}'),
          { unit: 'ops' },
        ),
        timeseries(
          'Outputs published minus projected /s',
          q(
            `sum by (site) (rate(${M.outputs}[1m])) - on (site) sum by (site) (rate(${M.projectorApplied}[1m]))`,
            '{{site}}',
          ),
          { unit: 'ops', description: 'Positive for long: the projector falls behind the workers.' },
        ),
        timeseries(
          'Projector rows written /s by table',
          q(`sum by (site, table) (rate(${M.projectorRows}[1m]))`, '{{table}} {{site}}'),
          { unit: 'ops' },
        ),
        timeseries('Projector batch size P50/P95', quantiles(`${M.projectorBatchMessages}_bucket`, '', [0.5, 0.95])),
        timeseries('Projector write latency P50/P95/P99', quantiles(`${M.projectorWriteSeconds}_bucket`, ''), {
          unit: 's',
          thresholds: levels(0.25, 1),
        }),
        timeseries(
          'Late readings /s by profile',
          q(`sum by (site, profile) (rate(${M.projectorLateReadings}[5m]))`, '{{profile}} {{site}}'),
          { unit: 'ops' },
        ),
        timeseries(
          'Late readings share by profile (workers)',
          q('pitwall:late_readings:ratio5m', '{{profile}} {{site}}'),
          {
            unit: 'percentunit',
            thresholds: levels(0.05),
            description:
              'Late / processed readings over 5 min, counted by the workers. PitwallLateReadingsHigh fires above 5 % for 10 min.',
          },
        ),
      ],
    },
    {
      title: 'Errors',
      panels: [
        stat('Alerts firing', q('count(ALERTS{alertstate="firing"}) or vector(0)'), { thresholds: levels(1) }),
        stat('Targets down', q('count(up{job=~"pitwall-.*"} == 0) or vector(0)'), { thresholds: levels(1, 1) }),
        timeseries(
          'Gateway 4xx/5xx /s',
          q(`sum by (status) (rate(${M.gatewayRequests}{status=~"4..|5.."}[1m]))`, '{{status}}'),
          { unit: 'reqps' },
        ),
        timeseries('Backpressure replies /s', q(`sum by (status) (rate(${M.gatewayBackpressure}[1m]))`, '{{status}}'), {
          unit: 'reqps',
        }),
        timeseries('Worker errors', [
          q(`sum by (site) (rate(${M.invalid}[1m]))`, 'invalid messages/s {{site}}'),
          q(`sum by (site) (rate(${M.checkpointFailures}[1m]))`, 'checkpoint failures/s {{site}}'),
          q(`sum by (site) (increase(${M.leaseChanges}{change="lost"}[5m]))`, 'leases lost (5m) {{site}}'),
        ]),
        timeseries(
          'Open alerts by type and severity (workers)',
          q(`sum by (site, profile, type, severity) (${M.alertsOpen})`, '{{profile}} {{type}} {{severity}} {{site}}'),
          {
            description: `Alerts open on the partitions each worker owns (from its alert outputs; capped at 64 label sets, the rest counted in ${M.alertsUntracked}).`,
          },
        ),
        timeseries(
          'Projector rejects /s',
          [
            q(`sum by (site) (rate(${M.projectorRejectedStale}[1m]))`, 'stale {{site}}'),
            q(`sum by (site) (rate(${M.projectorRejectedMalformed}[1m]))`, 'malformed {{site}}'),
          ],
          { unit: 'ops' },
        ),
        table('Alerts firing now', q('ALERTS{alertstate="firing"}', undefined, true), { w: 24 }),
      ],
    },
    {
      title: 'Saturation',
      panels: [
        timeseries(
          'CPU per process',
          q('sum by (job, instance) (rate(process_cpu_seconds_total{job=~"pitwall-.*"}[1m]))', '{{job}} {{instance}}'),
          { unit: 'percentunit', thresholds: levels(0.8, 0.95) },
        ),
        timeseries(
          'Resident memory per process',
          q('process_resident_memory_bytes{job=~"pitwall-.*"}', '{{job}} {{instance}}'),
          { unit: 'bytes' },
        ),
        timeseries(
          'Event loop lag P99',
          q('nodejs_eventloop_lag_p99_seconds{job=~"pitwall-.*"}', '{{job}} {{instance}}'),
          { unit: 's', thresholds: levels(0.1, 0.5) },
        ),
        timeseries('Active actors per worker', q(`${M.activeActors}`, '{{worker}}')),
        timeseries('Partitions owned per worker', q(`${M.partitionsOwned}`, '{{worker}}')),
        stat('Partitions owned (all workers)', q('pitwall:partitions_owned:sum', '{{site}}')),
        timeseries(
          'Activations and passivations /s',
          [
            q(`sum by (site) (rate(${M.activations}[1m]))`, 'activations {{site}}'),
            q(`sum by (site) (rate(${M.passivations}[1m]))`, 'passivations {{site}}'),
          ],
          { unit: 'ops' },
        ),
        timeseries('Live feed clients', q(`sum by (site) (${M.gatewayLiveClients})`, '{{site}}')),
      ],
    },
    {
      title: 'Sites',
      panels: [
        table('Site roles', q(`${M.siteRole} == 1`, undefined, true)),
        stat('Peer link up', q(`min by (site) (${M.sitePeerLinkUp})`, '{{site}}'), {
          thresholds: { base: 'red', steps: [{ value: 1, color: 'green' }] },
        }),
        stat('Epoch', q(`max by (site) (${M.siteEpoch})`, '{{site}}')),
        timeseries('Mirror lag', q(`max by (site, stream) (${M.siteMirrorLag})`, '{{stream}} at {{site}}'), {
          thresholds: levels(1000, 10000),
        }),
        timeseries('Failovers (15 min)', q(`sum by (site) (increase(${M.siteFailovers}[15m]))`, '{{site}}'), {
          thresholds: levels(1),
        }),
        timeseries('Partitions owned per site', q(`sum by (site) (${M.sitePartitionsOwned})`, '{{site}}')),
        table('Scrape targets', q('up{job=~"pitwall-.*"}', undefined, true), { w: 24 }),
      ],
    },
  ],
}
