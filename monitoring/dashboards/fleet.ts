/** Vehicle fleet: stale (offline) units, DTC alerts, engine overheat, low fuel, trips (profile road). */
import { METRICS as M } from '../../actors/metrics.js'
import { levels, q, stat, table, timeseries, type Dashboard } from './builder.js'

const road = 'profile="road"'
const open = (type: string): string => `sum(${M.domainAlertsOpen}{${road},type="${type}"}) or vector(0)`

export const fleetDashboard: Dashboard = {
  uid: 'pitwall-fleet',
  title: 'pitwall / Fleet',
  description: 'Vehicle fleet: units offline (stale), diagnostic trouble codes, engine overheat, low fuel, trips. ' +
    'Needs PITWALL_DOMAIN_METRICS to include road. Positions are in the live feed and PostgreSQL, not in Prometheus.',
  tags: ['pitwall', 'fleet', 'domain'],
  from: 'now-6h',
  rows: [
    {
      title: 'Units',
      panels: [
        stat('Stale units (offline)', q(open('unit_offline')), { thresholds: levels(1, 10) }),
        stat('Open DTC alerts', q(open('dtc')), { thresholds: levels(1, 10) }),
        stat('Engine overheat', q(open('engine_overheat')), { thresholds: levels(1, 1) }),
        stat('Low fuel', q(open('low_fuel')), { thresholds: levels(1) }),
        timeseries('Stale units over time', q(`sum(${M.domainAlertsOpen}{${road},type="unit_offline"})`, 'offline')),
        table('Vehicles with open alerts', q(`${M.domainEntityAlertsOpen}{${road}} > 0`, undefined, true)),
      ],
    },
    {
      title: 'Alerts and trips',
      panels: [
        timeseries('Alerts opened by type (15 min)', q(`sum by (type) (increase(${M.domainAlertsOpened}{${road}}[15m]))`, '{{type}}')),
        timeseries('Last trip distance per vehicle', q(`${M.domainEntityScore}{${road},name="trip"}`, '{{entity}}'), { unit: 'none', description: 'km' }),
        timeseries('Late readings /s', q(`sum(rate(${M.projectorLateReadings}{${road}}[5m]))`, 'late'), { unit: 'ops' }),
      ],
    },
  ],
}
