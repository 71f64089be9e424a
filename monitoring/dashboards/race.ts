/** Race pit wall: temperatures with thresholds, pit-stop score, recommendations, anomalies (profile race). */
import { METRICS as M } from '../../actors/mod.js'
import { levels, q, stat, table, timeseries, type Dashboard } from './builder.js'

const race = 'profile="race"'

export const racePitWall: Dashboard = {
  uid: 'pitwall-race',
  title: 'pitwall / Race pit wall',
  description:
    'Per car: pit-stop score, brake and tyre temperature maxima per lap, lap times, open anomalies, pit-now ' +
    'recommendations. Needs PITWALL_DOMAIN_METRICS to include race (docs/metrics.md, "Domain metrics").',
  tags: ['pitwall', 'race', 'domain'],
  from: 'now-30m',
  refresh: '5s',
  rows: [
    {
      title: 'Pit stop',
      panels: [
        table(
          'Pit-stop score by car',
          q(`sort_desc(${M.domainEntityScore}{${race},name="pit_stop"})`, undefined, true),
          { thresholds: levels(50, 70), unit: 'none' },
        ),
        timeseries('Pit-stop score', q(`${M.domainEntityScore}{${race},name="pit_stop"}`, '{{entity}}'), {
          min: 0,
          max: 100,
          thresholds: levels(50, 70),
          description: 'Above 70: the car gets a pit-now recommendation.',
        }),
        timeseries(
          'Pit-now recommendations (5 min)',
          q(`sum by (entity) (increase(${M.domainRecommendations}{${race},action="pit_now"}[5m]))`, '{{entity}}'),
        ),
        stat('Cars tracked', q(`sum(${M.domainEntitiesTracked}{${race}})`)),
      ],
    },
    {
      title: 'Temperatures',
      panels: [
        timeseries('Brake temperature, max of last lap', q(`${M.domainLapBrakeTempMax}{${race}}`, '{{entity}}'), {
          unit: 'celsius',
          thresholds: levels(900, 950),
          description: 'Normal 200-900 °C; brake_overheat above 950 °C for 2 s.',
        }),
        timeseries('Tyre temperature, max of last lap', q(`${M.domainLapTyreTempMax}{${race}}`, '{{entity}}'), {
          unit: 'celsius',
          thresholds: levels(120, 130),
          description: 'Normal 80-120 °C; tire_overheat above 130 °C for 2 s.',
        }),
        timeseries('Lap time', q(`${M.domainLapSeconds}{${race}}`, '{{entity}}'), { unit: 's' }),
      ],
    },
    {
      title: 'Anomalies',
      panels: [
        stat('Brake overheat (cars)', q(`sum(${M.domainAlertsOpen}{${race},type="brake_overheat"}) or vector(0)`), {
          thresholds: levels(1, 1),
        }),
        stat('Tyre overheat (cars)', q(`sum(${M.domainAlertsOpen}{${race},type="tire_overheat"}) or vector(0)`), {
          thresholds: levels(1),
        }),
        stat('Open anomalies', q(`sum(${M.domainAlertsOpen}{${race}}) or vector(0)`), { thresholds: levels(1, 3) }),
        table('Open anomalies by car', q(`${M.domainEntityAlertsOpen}{${race}} > 0`, undefined, true)),
        timeseries(
          'Anomalies opened by type (5 min)',
          q(`sum by (type) (increase(${M.domainAlertsOpened}{${race}}[5m]))`, '{{type}}'),
        ),
      ],
    },
  ],
}
