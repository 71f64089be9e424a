/** Environment sensors, the two views of DOMAIN.md: what is happening now, and the trend (profile environment). */
import { METRICS as M } from '../../actors/mod.js'
import { levels, q, stat, table, timeseries, type Dashboard } from './builder.js'

const env = 'profile="environment"'
const mean = (field: string): string => `${M.domainWindowMean}{${env},field="${field}"}`

export const environmentDashboard: Dashboard = {
  uid: 'pitwall-environment',
  title: 'pitwall / Environment',
  description:
    'Environmental sensors: now (latest window means, open alerts, late data) and trend (averages over ' +
    'hours, alert distribution). Needs PITWALL_DOMAIN_METRICS to include environment.',
  tags: ['pitwall', 'environment', 'domain'],
  from: 'now-6h',
  rows: [
    {
      title: 'Now',
      panels: [
        stat('Temperature (mean of sensors)', q(`avg(${mean('temperature')})`), {
          unit: 'celsius',
          thresholds: levels(30, 40),
        }),
        stat('Humidity (mean)', q(`avg(${mean('humidity')})`), { unit: 'percent' }),
        stat('CO2 (mean, ppm)', q(`avg(${mean('co2')})`), { thresholds: levels(1000, 1500) }),
        stat('Open alerts', q(`sum(${M.domainAlertsOpen}{${env}}) or vector(0)`), { thresholds: levels(1, 10) }),
        table('Latest window mean per sensor', q(`${M.domainWindowMean}{${env}}`, undefined, true), { w: 24 }),
        timeseries('Temperature per sensor', q(mean('temperature'), '{{entity}}'), {
          unit: 'celsius',
          thresholds: levels(30, 40),
        }),
        timeseries('Battery per sensor', q(mean('battery'), '{{entity}}'), {
          unit: 'percent',
          thresholds: {
            base: 'red',
            steps: [
              { value: 20, color: 'orange' },
              { value: 40, color: 'green' },
            ],
          },
        }),
        table('Open alerts by type', q(`sum by (type, severity) (${M.domainAlertsOpen}{${env}})`, undefined, true)),
        timeseries('Late readings /s', q(`sum by (site) (rate(${M.projectorLateReadings}{${env}}[5m]))`, '{{site}}'), {
          unit: 'ops',
        }),
      ],
    },
    {
      title: 'Trend',
      panels: [
        timeseries(
          'Temperature, hourly average of sensors',
          q(`avg(avg_over_time(${mean('temperature')}[1h]))`, 'temperature'),
          { unit: 'celsius' },
        ),
        timeseries('Humidity and CO2, hourly average', [
          q(`avg(avg_over_time(${mean('humidity')}[1h]))`, 'humidity %'),
          q(`avg(avg_over_time(${mean('co2')}[1h]))`, 'CO2 ppm'),
        ]),
        timeseries(
          'Alerts opened per hour by type',
          q(`sum by (type, severity) (increase(${M.domainAlertsOpened}{${env}}[1h]))`, '{{type}} ({{severity}})'),
        ),
        timeseries(
          'Sensor comparison: temperature vs. the mean',
          q(`${mean('temperature')} - on () group_left () avg(${mean('temperature')})`, '{{entity}}'),
          { unit: 'celsius' },
        ),
      ],
    },
  ],
}
