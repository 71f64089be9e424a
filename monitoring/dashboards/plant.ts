/** Wastewater plant: anomalies per stage and type, treatment efficiency, compliance (profile process). */
import { METRICS as M } from '../../actors/mod.js'
import { levels, q, stat, table, timeseries, type Dashboard } from './builder.js'

const proc = 'profile="process"'

export const plantDashboard: Dashboard = {
  uid: 'pitwall-plant',
  title: 'pitwall / Plant',
  description:
    'Wastewater treatment plant: anomalies per process stage and type, open anomalies, treatment ' +
    'efficiency and outlet compliance. Needs PITWALL_DOMAIN_METRICS to include process (and ' +
    'PITWALL_DOMAIN_METRICS_MAX_ENTITIES=128 to chart every sensor of a 127-sensor plant).',
  tags: ['pitwall', 'plant', 'domain'],
  from: 'now-6h',
  rows: [
    {
      title: 'Stages',
      panels: [
        timeseries(
          'Anomalies per stage (1 h)',
          q(`sum by (stage) (increase(${M.domainStageAnomalies}{${proc}}[1h]))`, '{{stage}}'),
        ),
        table(
          'Anomalies per stage and type (24 h)',
          q(`sum by (stage, type) (increase(${M.domainStageAnomalies}{${proc}}[24h]))`, undefined, true),
        ),
        stat('Open anomalies', q(`sum(${M.domainAlertsOpen}{${proc}}) or vector(0)`), { thresholds: levels(1, 5) }),
        stat('Sensors tracked', q(`sum(${M.domainEntitiesTracked}{${proc}})`)),
      ],
    },
    {
      title: 'Anomalies',
      panels: [
        timeseries(
          'Anomalies opened by type (1 h)',
          q(`sum by (type) (increase(${M.domainAlertsOpened}{${proc}}[1h]))`, '{{type}}'),
        ),
        table('Open anomalies by sensor', q(`${M.domainEntityAlertsOpen}{${proc}} > 0`, undefined, true)),
      ],
    },
    {
      title: 'Efficiency',
      panels: [
        stat('Treatment efficiency', q(`avg(${M.domainEntityScore}{${proc},name="treatment_efficiency"})`), {
          unit: 'percent',
        }),
        stat('Compliance', q(`avg(${M.domainEntityScore}{${proc},name="compliance"})`), {
          unit: 'percent',
          thresholds: {
            base: 'red',
            steps: [
              { value: 90, color: 'orange' },
              { value: 99, color: 'green' },
            ],
          },
        }),
        timeseries(
          'Treatment efficiency and compliance',
          [
            q(`avg(${M.domainEntityScore}{${proc},name="treatment_efficiency"})`, 'efficiency'),
            q(`avg(${M.domainEntityScore}{${proc},name="compliance"})`, 'compliance'),
          ],
          { unit: 'percent' },
        ),
      ],
    },
  ],
}
