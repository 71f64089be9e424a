/** Vehicle fleet: stale (offline) units, DTC alerts, engine overheat, low fuel, trips (profile road). */
import { METRICS as M } from '../../actors/mod.js'
import { geomap, levels, q, sql, stat, table, timeseries, type Dashboard } from './builder.js'

const road = 'profile="road"'
/**
 * The latest position of each vehicle in the dashboard's time range: road actors emit position outputs (rate
 * bounded, trip start/stop/end) that the projector writes into raw_readings with lat/lon (projector/
 * schema.ts). DISTINCT ON with the (kind, entity, ts) index read backwards: one row per vehicle.
 */
export const LATEST_POSITIONS_SQL = `SELECT DISTINCT ON (entity) entity AS vehicle, ts AS "time", lat, lon,
  (fields->>'speed')::double precision AS speed, fields->>'reason' AS reason
FROM raw_readings
WHERE kind = 'vehicle' AND profile = 'road' AND lat IS NOT NULL AND lon IS NOT NULL AND $__timeFilter(ts)
ORDER BY entity DESC, ts DESC`

const open = (type: string): string => `sum(${M.domainAlertsOpen}{${road},type="${type}"}) or vector(0)`

export const fleetDashboard: Dashboard = {
  uid: 'pitwall-fleet',
  title: 'pitwall / Fleet',
  description:
    'Vehicle fleet: latest positions (PostgreSQL), units offline (stale), diagnostic trouble codes, engine overheat, ' +
    'low fuel, trips. The Prometheus panels need PITWALL_DOMAIN_METRICS to include road.',
  tags: ['pitwall', 'fleet', 'domain'],
  from: 'now-6h',
  rows: [
    {
      title: 'Positions',
      panels: [
        geomap('Latest position per vehicle', sql(LATEST_POSITIONS_SQL), {
          w: 24,
          h: 12,
          description:
            'Last position each vehicle reported in the time range (raw_readings, written by the projector from road position outputs).',
        }),
      ],
    },
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
        timeseries(
          'Alerts opened by type (15 min)',
          q(`sum by (type) (increase(${M.domainAlertsOpened}{${road}}[15m]))`, '{{type}}'),
        ),
        timeseries('Last trip distance per vehicle', q(`${M.domainEntityScore}{${road},name="trip"}`, '{{entity}}'), {
          unit: 'none',
          description: 'km',
        }),
        timeseries('Late readings /s', q(`sum(rate(${M.projectorLateReadings}{${road}}[5m]))`, 'late'), {
          unit: 'ops',
        }),
      ],
    },
  ],
}
