/**
 * The API's contract as integrators read it (issue 19): what the OpenAPI document says about each operation
 * beyond the shapes Fastify validates and serialises with. One table, OPERATIONS, gives every route its
 * operationId, tag, summary and the `GW_ERR_*` codes it may answer; `documentRoute` (the @fastify/swagger
 * transform, openapi.ts) turns a route and its entry into the document's operation:
 *   - security: what `config.access` really accepts (auth.ts): public routes none; ingest routes people, keys
 *     and devices; every other route people and keys.
 *   - errors: per status, the error body with `code` restricted to the codes this route may answer: the ones
 *     every authenticated route shares (401, 403, 429, 500, 503, by access), the ones its parts bring (path
 *     parameters, query string, body), and the route's own. A status no code maps to is not listed.
 *   - typed bodies: replies whose serialisation schema is deliberately loose (the live state of any profile,
 *     an alert's details, GeoJSON, a late reading's fields) are described precisely here, per profile and per
 *     alert type (DOC_REPLIES). The route still serialises with its own schema, so the document can only be
 *     stricter than the server, never drop what it sends; test/integration/gateway-client.test.ts validates real replies
 *     against the document's schemas, so the two cannot drift apart unnoticed.
 *   - examples: request and reply examples of the main operations.
 */
import { Type, type TSchema } from '@sinclair/typebox'
import { SITE_ROLES } from '../actors/mod.js'
import { GW_ERR, type GatewayErrorCode } from './errors.js'
import type { Access } from './auth.js'

// ---- shared pieces ---------------------------------------------------------------------------------------
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const Severity = Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')])
const Num = Type.Number()
const NumOrNull = Nullable(Type.Number())
const Ms = Type.Number({ description: 'ms since the Unix epoch' })
const Field = Type.Union([Type.Number(), Type.Boolean(), Type.String()])
const Fields = Type.Record(Type.String(), Field)
const Loc = Type.Object({ lat: Num, lon: Num })

export const FieldAggregate = Type.Object({
  count: Num,
  sum: Num,
  min: Num,
  max: Num,
  mean: Num,
  variance: Type.Number({ description: 'population variance' }),
  stddev: Num,
  first: Num,
  last: Num,
})

/** A window as the actors emit it (live feed `window` events, open windows in an environment sensor's state). */
export const WindowBody = Type.Object({
  window: Type.String({ description: 'window definition, e.g. `tumbling_1m`, `sliding_5m_1m`' }),
  start: Ms,
  end: Ms,
  fields: Type.Record(Type.String(), FieldAggregate),
  counts: Type.Record(Type.String(), Num, { description: 'extra counters (alerts, failures, warnings)' }),
  idleClosed: Type.Boolean({ description: 'closed by the idle timeout rather than the watermark' }),
})

// ---- alert details, per alert type -----------------------------------------------------------------------
const ProcessFeature = Type.Object({
  feature: Type.String(),
  value: Num,
  z: Num,
  share: Type.Number({ description: 'share of the finding, 0..1' }),
})
const AssetReason = Type.Object({ feature: Type.String(), family: Type.String(), value: Num, contribution: NumOrNull })

/**
 * `details` of an alert, by type (the detectors of docs/profiles.md). Every alert type of this build is listed
 * (an alert of a type not listed fails test/integration/gateway-client.test.ts). Properties and types may be added within
 * /v1 (gateway/README.md, "Versioning and compatibility"), so clients must ignore unknown ones.
 */
export const ALERT_DETAILS: ReadonlyArray<{ types: readonly string[]; profile: string; details: TSchema }> = [
  {
    profile: 'race',
    types: ['brake_overheat', 'tire_overheat'],
    details: Type.Object({
      corner: Type.Optional(Nullable(Type.String({ description: 'the hottest corner' }))),
      corners: Type.Optional(
        Type.Array(Type.String(), { description: 'every corner over the threshold in this episode' }),
      ),
      peak: Type.Optional(Num),
    }),
  },
  {
    profile: 'race',
    types: ['oil_pressure_drop', 'sudden_speed_loss'],
    details: Type.Object({ peak: Type.Optional(Num) }),
  },
  {
    profile: 'race',
    types: ['fuel_anomaly'],
    details: Type.Object({
      reason: Type.Union([Type.Literal('increase'), Type.Literal('consumption')]),
      fuel: Type.Optional(Num),
      baseline: Type.Optional(NumOrNull),
      peak: Type.Optional(Num),
      lapFuelKg: Type.Optional(Num),
      medianKg: Type.Optional(Num),
      ratio: Type.Optional(Num),
      laps: Type.Optional(Type.Integer()),
    }),
  },
  {
    profile: 'environment',
    types: ['temperature_high', 'temperature_low', 'humidity_high', 'co2_high', 'pressure_low', 'battery_low'],
    details: Type.Object({
      field: Type.Optional(Type.String()),
      unit: Type.Optional(Type.String()),
      peak: Type.Optional(NumOrNull),
    }),
  },
  {
    profile: 'environment',
    types: ['device_failure'],
    details: Type.Object({ status: Type.Optional(Type.String()), peak: Type.Optional(NumOrNull) }),
  },
  { profile: 'environment', types: ['stale'], details: Type.Object({ peak: Type.Optional(NumOrNull) }) },
  {
    profile: 'asset',
    types: ['asset_danger'],
    details: Type.Object({ vibration: Type.Optional(Num), temperature: Type.Optional(Num) }),
  },
  {
    profile: 'asset',
    types: ['risk_high'],
    details: Type.Object({
      reasons: Type.Optional(Type.Array(AssetReason)),
      family: Type.Optional(Nullable(Type.String())),
      modelVersion: Type.Optional(Type.String()),
    }),
  },
  {
    profile: 'process',
    types: ['cyber_attack', 'sensor_failure', 'pollution_spike', 'process_malfunction', 'sensor_drift'],
    details: Type.Object({
      stage: Type.Optional(Type.String()),
      sensorType: Type.Optional(Type.String()),
      features: Type.Optional(
        Type.Array(ProcessFeature, { description: 'the features that drove the finding, largest share first' }),
      ),
      reason: Type.Optional(Type.String()),
      peak: Type.Optional(NumOrNull),
      sensor: Type.Optional(Type.String({ description: 'process-pair: the probe the alert is about' })),
      partner: Type.Optional(Type.String({ description: 'process-pair: its redundant partner' })),
      pair: Type.Optional(Type.String({ description: 'process-pair: the pair actor (P&ID tag) that raised it' })),
    }),
  },
  {
    profile: 'road',
    types: ['geofence'],
    details: Type.Object({
      geofence: Type.String(),
      version: Type.Optional(Type.Integer({ description: 'the geofence set version applied' })),
    }),
  },
  {
    profile: 'road',
    types: ['dtc'],
    details: Type.Object({ code: Type.String({ description: 'the diagnostic trouble code' }) }),
  },
  {
    profile: 'road',
    types: ['fuel_drop'],
    details: Type.Object({ from_pct: Num, to_pct: Num, end_ts: Ms }, { additionalProperties: Num }),
  },
  { profile: 'road', types: ['engine_overheat', 'low_fuel', 'idling', 'unit_offline'], details: Type.Object({}) },
]

/** An alert-shaped object (query reply or output) in one variant per alert type group, discriminated by `type`. */
function alertVariants(base: Record<string, TSchema>, detailsOptional: boolean, id: string): TSchema {
  const variants = ALERT_DETAILS.map((a) =>
    Type.Object(
      {
        ...base,
        type: Type.Union(a.types.map((t) => Type.Literal(t))),
        details: detailsOptional ? Type.Optional(Nullable(a.details)) : Nullable(a.details),
      },
      { title: `${a.profile}: ${a.types.join(', ')}` },
    ),
  )
  return Type.Union(variants, { title: id })
}

const Stamp = Type.String({ description: 'ISO 8601' })
/** `GET /v1/alerts` items. */
export const AlertDoc = alertVariants(
  {
    alertId: Type.String(),
    kind: Type.String(),
    entity: Type.String(),
    profile: Type.String(),
    severity: Severity,
    state: Type.Union([Type.Literal('open'), Type.Literal('update'), Type.Literal('close')]),
    startedAt: Stamp,
    endedAt: Nullable(Stamp),
    eventAt: Stamp,
    value: Num,
    threshold: Num,
    peakValue: Num,
    explanation: Type.String(),
  },
  false,
  'Alert',
)

// ---- outputs (live feed) -----------------------------------------------------------------------------------
const Envelope = {
  id: Type.String({ description: 'deterministic output id (also its JetStream message id)' }),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  ts: Type.Number({ description: 'event time the output refers to (ms)' }),
  seq: Type.Integer({ description: 'TLM sequence of the input that produced it' }),
  site: Type.String(),
  partition: Type.Integer(),
  token: Type.Integer({ description: 'fencing token of the partition owner' }),
}
const AlertOutputBody = alertVariants(
  {
    alertId: Type.String(),
    severity: Severity,
    state: Type.Union([Type.Literal('open'), Type.Literal('update'), Type.Literal('close')]),
    start: Ms,
    end: Type.Optional(Ms),
    value: Num,
    threshold: Num,
    explanation: Type.String(),
  },
  true,
  'AlertOutputBody',
)
const out = (type: string, body: TSchema) =>
  Type.Object({ ...Envelope, type: Type.Literal(type), body }, { title: `${type} output` })
/** One `data:` of the live feed (`event:` is its `type`); `alarm` events carry the alarm instead (GET /v1/alerts/{id}). */
export const LiveOutput = Type.Union(
  [
    out('window', WindowBody),
    out('alert', AlertOutputBody),
    out(
      'score',
      Type.Object({
        name: Type.String({ description: 'e.g. pit_stop, risk, trip, refuel' }),
        value: Num,
        factors: Type.Record(Type.String(), Num),
      }),
    ),
    out(
      'recommendation',
      Type.Object({
        action: Type.String(),
        score: Num,
        factors: Type.Record(Type.String(), Num),
        reason: Type.String(),
      }),
    ),
    out(
      'lap',
      Type.Object({
        lap: Type.Integer(),
        start: Ms,
        end: Ms,
        lapTimeMs: Num,
        minSpeed: Num,
        avgSpeed: Num,
        maxSpeed: Num,
        maxBrakeTemp: Num,
        maxTyreTemp: Num,
        samples: Type.Integer(),
      }),
    ),
    out('late', Type.Object({ readingTs: Ms, watermark: Ms, readingSeq: Type.Integer(), fields: Fields })),
    out(
      'position',
      Type.Object({
        lat: Num,
        lon: Num,
        speed: NumOrNull,
        heading: NumOrNull,
        reason: Type.Union(['sample', 'trip_start', 'stop', 'trip_end'].map((r) => Type.Literal(r))),
        readingSeq: Type.Integer(),
      }),
    ),
  ],
  { title: 'LiveOutput' },
)

// ---- live state, per profile -------------------------------------------------------------------------------
const OpenAlert = Type.Object({ type: Type.String(), severity: Severity, alertId: Type.String(), start: Ms })
const envState = Type.Object({
  lastTs: NumOrNull,
  watermark: NumOrNull,
  lastSeq: Type.Integer(),
  last: Fields,
  loc: Nullable(Loc),
  windows: Type.Array(WindowBody, { description: 'the windows still open' }),
  alerts: Type.Array(Type.Object({ ...OpenAlert.properties, peak: NumOrNull })),
  lateCount: Type.Integer(),
})
const assetState = Type.Object({
  risk: Nullable(Type.Number({ description: 'failure risk 0..100' })),
  floor: Type.Boolean({ description: 'the danger rule holds the risk at its floor' }),
  modelVersion: Type.String(),
  baselinePeriods: Type.Integer(),
  reasons: Type.Array(AssetReason),
  features: Type.Record(Type.String(), NumOrNull),
  last: Type.Record(Type.String(), Num),
  lastTs: NumOrNull,
  watermark: NumOrNull,
  lastSeq: Type.Integer(),
  alerts: Type.Array(OpenAlert),
  lateCount: Type.Integer(),
})
const processState = Type.Object({
  type: Type.String({ description: 'sensor type (pH, dissolved_o2, ...)' }),
  stage: Type.String(),
  unit: Nullable(Type.String()),
  last: Type.Object({ ts: NumOrNull, value: NumOrNull, flow: NumOrNull, temp: NumOrNull }),
  model: Type.Object({
    readings: Num,
    expected: NumOrNull,
    sigma: NumOrNull,
    perFlow: NumOrNull,
    perDegree: NumOrNull,
    warm: Type.Boolean(),
  }),
  residualZ: NumOrNull,
  baseline: Type.Object({
    z: NumOrNull,
    level: NumOrNull,
    deviation: NumOrNull,
    quantum: NumOrNull,
    longestHold: NumOrNull,
  }),
  driftMean: NumOrNull,
  driftRun: NumOrNull,
  alert: Nullable(Type.Object({ type: Type.String(), alertId: Type.String(), start: Ms })),
  lateCount: Type.Integer(),
  lastSeq: Type.Integer(),
})
const pairState = Type.Object({
  members: Type.Array(Nullable(Type.String()), { description: 'the two probes, in the order first seen' }),
  minutes: Num,
  warm: Type.Boolean(),
  difference: Type.Object(
    { fast: NumOrNull, slow: NumOrNull, fastScale: NumOrNull, slowScale: NumOrNull },
    { description: 'residual of the difference between the probes: fast and slow means, their healthy scales' },
  ),
  alert: Nullable(Type.Object({ type: Type.String(), sensor: Type.String(), start: Ms })),
  lateCount: Type.Integer(),
  foreignCount: Type.Integer(),
  lastSeq: Type.Integer(),
})
const Factors = Type.Object({ tyre_wear: Num, speed_loss: Num, brake_degradation: Num, anomaly_penalty: Num })
const raceState = Type.Object({
  driver: Nullable(Type.String()),
  lastTs: NumOrNull,
  lap: Nullable(Type.Integer()),
  inPit: Type.Boolean(),
  last: Fields,
  openAlerts: Type.Array(Type.Object({ ...OpenAlert.properties, value: Num, threshold: Num, peak: Num })),
  score: Type.Object({
    value: Type.Number({ description: 'pit-stop score 0..100' }),
    factors: Factors,
    points: Factors,
    lastEmitted: NumOrNull,
    armed: Type.Boolean(),
  }),
  laps: Type.Object({
    emitted: Type.Integer(),
    lastLapMs: NumOrNull,
    referenceLapMs: NumOrNull,
    referenceLaps: Type.Integer(),
    fuelBaselineKg: NumOrNull,
  }),
  late: Type.Integer(),
})
const roadState = Type.Object({
  position: Nullable(Type.Object({ lat: Num, lon: Num, ts: Ms, heading: NumOrNull })),
  speed: NumOrNull,
  trip: Nullable(Type.Object({ start: Ms, distance_km: Num, max_speed: Num, stopped_since: NumOrNull, idle_s: Num })),
  distanceToday: Type.Object({ day: NumOrNull, km: Num }),
  odometerKm: Num,
  fuelLevel: NumOrNull,
  geofences: Type.Record(Type.String(), Ms, { description: 'geofence id -> enter time' }),
  geofenceVersion: Nullable(Type.Integer()),
  idleSince: NumOrNull,
  openAlerts: Type.Array(OpenAlert),
  late: Type.Integer(),
  gpsJumps: Type.Integer(),
})
/** The live state of each profile of this build, as its `query` returns it (docs/profiles.md). */
export const PROFILE_STATES: ReadonlyArray<{ kind: 'sensor' | 'vehicle'; profile: string; state: TSchema }> = [
  { kind: 'sensor', profile: 'environment', state: envState },
  { kind: 'sensor', profile: 'asset', state: assetState },
  { kind: 'sensor', profile: 'process', state: processState },
  { kind: 'sensor', profile: 'process-pair', state: pairState },
  { kind: 'vehicle', profile: 'race', state: raceState },
  { kind: 'vehicle', profile: 'road', state: roadState },
]
const stateBase = {
  source: Type.Union([Type.Literal('live'), Type.Literal('snapshot')], {
    description: 'the owning actor, or its last snapshot when no worker owns it',
  }),
  id: Type.String(),
  lastSeq: Type.Integer(),
  watermark: NumOrNull,
}
export const LiveStateDoc = Type.Union(
  [
    ...PROFILE_STATES.map((p) =>
      Type.Object(
        { ...stateBase, kind: Type.Literal(p.kind), profile: Type.Literal(p.profile), state: p.state },
        { title: `${p.kind}/${p.profile}` },
      ),
    ),
  ],
  { title: 'LiveState' },
)

// ---- GeoJSON -----------------------------------------------------------------------------------------------
const Position = Type.Array(Num, { minItems: 2, maxItems: 3, description: '[lon, lat]' })
const TripFeature = Type.Object({
  type: Type.Literal('Feature'),
  geometry: Nullable(Type.Object({ type: Type.Literal('LineString'), coordinates: Type.Array(Position) })),
  properties: Type.Record(Type.String(), Type.Union([Num, Type.String(), Type.Null()]), {
    description: 'the trip score: id, scoredAt, value (km) and its factors',
  }),
})
const PointFeature = Type.Object({
  type: Type.Literal('Feature'),
  geometry: Type.Object({ type: Type.Literal('Point'), coordinates: Position }),
  properties: Type.Record(Type.String(), Type.Union([Num, Type.String(), Type.Boolean(), Type.Null(), Fields]), {
    description: "seq, ts and the reading's fields",
  }),
})
const collection = (f: TSchema, title: string) =>
  Type.Object(
    { type: Type.Literal('FeatureCollection'), features: Type.Array(f), nextCursor: Nullable(Type.String()) },
    { title },
  )

const LateReadingDoc = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  entity: Type.String(),
  profile: Type.String(),
  readingTs: Stamp,
  watermark: Stamp,
  readingSeq: Num,
  fields: Fields,
})

const Reading = Type.Object(
  {
    kind: Type.Union([Type.Literal('sensor'), Type.Literal('vehicle')]),
    id: Type.String({ description: "entity id (a vehicle's VIN)" }),
    ts: Type.Integer({ description: 'event time, ms since the Unix epoch' }),
    fields: Fields,
    profile: Type.Optional(Type.String()),
    loc: Type.Optional(Loc),
    rid: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'reading id: applied at most once per entity' }),
    ),
  },
  { additionalProperties: false },
)
/** An item of a one-entity route: the entity comes from the path and may not appear in the item. */
const PathReading = Type.Object(
  {
    ts: Reading.properties.ts,
    fields: Fields,
    profile: Reading.properties.profile,
    loc: Reading.properties.loc,
    rid: Reading.properties.rid,
  },
  { additionalProperties: false },
)
const batch = (item: TSchema) =>
  Type.Array(item, {
    description:
      'readings; each item is validated on its own, valid items are accepted even when others are rejected (JSON array, or application/x-ndjson one per line)',
  })
/** Request bodies the document shows instead of the route's (ingest validates each item itself, so the route takes any array). */
export const DOC_BODIES: Readonly<Record<string, TSchema>> = {
  'POST /v1/readings': batch(Reading),
  'POST /v1/sensors/{id}/readings': batch(PathReading),
  'POST /v1/vehicles/{vin}/telemetry': batch(PathReading),
}

/** A site controller's `/status` (sites/controller.ts SiteStatus), as `GET /v1/sites` relays it. */
const SiteStatus = Type.Object({
  site: Type.String(),
  peer: Type.String(),
  epoch: Type.Integer(),
  role: Type.Union(SITE_ROLES.map((r) => Type.Literal(r))),
  owned: Type.Array(Type.Integer()),
  peerOwned: Type.Array(Type.Integer()),
  peerLinkUp: Type.Boolean(),
  peerDownForMs: Num,
  mirrorLag: Type.Record(Type.String(), Num),
  failovers: Type.Integer(),
  lastMove: Type.Optional(
    Type.Object(
      { at: Ms, processingAgainMs: Type.Optional(Num) },
      {
        description:
          'the last failover or failback (its result, when, and how long until every moved partition was processed again)',
      },
    ),
  ),
  relay: Type.Optional(Type.Object({ active: Num, forwarded: Num, failures: Num })),
  operation: Type.Optional(
    Type.Object(
      {
        id: Type.String(),
        command: Type.Union([Type.Literal('failover'), Type.Literal('failback')]),
        by: Type.String(),
        reason: Type.String(),
        startedAt: Ms,
        finishedAt: Type.Optional(Ms),
        state: Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
        exitCode: Type.Optional(Type.Integer()),
        error: Type.Optional(Type.String()),
        lines: Type.Array(Type.String(), { description: 'the report lines of `pitwall site failover|failback`' }),
      },
      { description: 'the last operator command (POST /v1/sites/{site}/failover|failback), running or finished' },
    ),
  ),
})
const SitesDoc = Type.Object({
  items: Type.Array(
    Type.Object({
      site: Type.String(),
      reachable: Type.Boolean(),
      status: Type.Optional(SiteStatus),
      error: Type.Optional(Type.String()),
    }),
  ),
})

/** Reply schemas the document shows instead of a route's looser serialisation schema: `METHOD path` -> status -> schema. */
export const DOC_REPLIES: Readonly<Record<string, Record<number, TSchema>>> = {
  'GET /v1/entities/{kind}/{id}/state': { 200: LiveStateDoc },
  'GET /v1/sites': { 200: SitesDoc },
  'GET /v1/alerts': { 200: Type.Object({ items: Type.Array(AlertDoc), nextCursor: Nullable(Type.String()) }) },
  'GET /v1/late-readings': {
    200: Type.Object({ items: Type.Array(LateReadingDoc), nextCursor: Nullable(Type.String()) }),
  },
  'GET /v1/entities/{kind}/{id}/trips': { 200: collection(TripFeature, 'TripCollection') },
  'GET /v1/entities/{kind}/{id}/positions': { 200: collection(PointFeature, 'PositionCollection') },
}

// ---- operations ----------------------------------------------------------------------------------------------
export interface Operation {
  id: string
  tag: Tag
  summary: string
  /** Codes this route answers beyond the ones its access, parameters, query and body bring (see `errorCodes`). */
  errors?: readonly GatewayErrorCode[]
  /** Request body example. */
  request?: unknown
  /** Success reply example (first 2xx status). */
  reply?: unknown
}

export const TAGS = {
  ingest: 'Readings from devices and services',
  state: 'Live state of an entity',
  history: 'History: windows, alerts, recommendations, laps, scores, late readings, trips, positions, roll-ups',
  alarms: 'Alarm workflow: acknowledge, assign, comment, clear, history',
  live: "Live feed of the site's outputs (SSE, WebSocket)",
  registry: 'Registry: customers, sensors, vehicles, service state',
  geofences: 'Geofences for road vehicles',
  notifications: 'Webhook subscriptions and the delivery log',
  admin: 'Device credentials and who the caller is',
  health: 'Health, metrics and this document',
} as const
export type Tag = keyof typeof TAGS

const INGEST_ERRORS: readonly GatewayErrorCode[] = [
  'GW_ERR_BATCH_REJECTED',
  'GW_ERR_BATCH_TOO_LARGE',
  'GW_ERR_BODY_TOO_LARGE',
  'GW_ERR_MEDIA_TYPE',
  'GW_ERR_ENCODING_UNSUPPORTED',
  'GW_ERR_FORBIDDEN_ENTITY',
  'GW_ERR_OUT_OF_SCOPE',
  'GW_ERR_BATCH_EMPTY',
  'GW_ERR_NOT_FOUND',
  'GW_ERR_IDEMPOTENCY_KEY_INVALID',
]
const ALARM_ERRORS: readonly GatewayErrorCode[] = [
  'GW_ERR_ALERT_UNKNOWN',
  'GW_ERR_ALERT_CLEARED',
  'GW_ERR_ALERT_ACKNOWLEDGED',
]
const LIST: readonly GatewayErrorCode[] = ['GW_ERR_CURSOR_INVALID']
const CREATE: readonly GatewayErrorCode[] = ['GW_ERR_CONFLICT', 'GW_ERR_CUSTOMER_UNKNOWN', 'GW_ERR_MEDIA_TYPE']
const ONE: readonly GatewayErrorCode[] = ['GW_ERR_NOT_FOUND']

const READING = {
  kind: 'sensor',
  id: 'env-0042',
  ts: 1767225600000,
  fields: { temperature: 21.5, humidity: 48, co2: 612, battery: 87, status: 'ok' },
  profile: 'environment',
  loc: { lat: 48.8566, lon: 2.3522 },
  rid: 'env-0042-000123',
}
const INGEST_OK = { accepted: 2, duplicates: 0, rejected: [] }
const ALARM = {
  alertId: 'vehicle:1HGCM82633A004352:brake_overheat:1767225600000',
  kind: 'vehicle',
  entity: '1HGCM82633A004352',
  profile: 'race',
  type: 'brake_overheat',
  severity: 'critical',
  explanation: 'brake temperature 968 °C at brake_temp_fl above 950 °C for >= 2 s',
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: null,
  status: 'active_acknowledged',
  active: true,
  acknowledged: true,
  acknowledgedAt: '2026-01-01T00:00:05.000Z',
  acknowledgedBy: 'u-ops',
  assignee: null,
  assignedAt: null,
  assignedBy: null,
  clearedAt: null,
  clearedBy: null,
  previousAlertId: null,
  nextAlertId: null,
}

/** Every route of the gateway, `METHOD path` (OpenAPI path syntax). A route missing here fails test/integration/gateway-openapi.test.ts. */
export const OPERATIONS: Readonly<Record<string, Operation>> = {
  // ingest
  'POST /v1/readings': {
    id: 'ingestReadings',
    tag: 'ingest',
    summary: 'Send a batch of readings of any entities',
    errors: INGEST_ERRORS,
    request: [
      READING,
      {
        kind: 'vehicle',
        id: '1HGCM82633A004352',
        ts: 1767225600100,
        fields: { speed: 287.4, brake_temp_fl: 612 },
        profile: 'race',
      },
    ],
    reply: INGEST_OK,
  },
  'POST /v1/sensors/{id}/readings': {
    id: 'ingestSensorReadings',
    tag: 'ingest',
    summary: 'Send a batch of readings of one sensor',
    errors: INGEST_ERRORS,
    request: [
      { ts: 1767225600000, fields: { temperature: 21.5, humidity: 48 }, rid: 'r-1' },
      { ts: 1767225605000, fields: { temperature: 21.6, humidity: 48 }, rid: 'r-2' },
    ],
    reply: INGEST_OK,
  },
  'POST /v1/vehicles/{vin}/telemetry': {
    id: 'ingestVehicleTelemetry',
    tag: 'ingest',
    summary: 'Send a batch of telemetry of one vehicle',
    errors: [...INGEST_ERRORS, 'GW_ERR_VIN_INVALID'],
    request: [
      { ts: 1767225600000, fields: { speed: 287.4, rpm: 11800, gear: 7, brake_temp_fl: 612 }, profile: 'race' },
    ],
    reply: { accepted: 1, duplicates: 0, rejected: [] },
  },
  // live state
  'GET /v1/entities/{kind}/{id}/state': {
    id: 'getEntityState',
    tag: 'state',
    summary: 'Live state of an entity from its actor (or its last snapshot)',
    errors: ['GW_ERR_ENTITY_UNKNOWN', 'GW_ERR_QUERY_FAILED'],
    reply: {
      source: 'live',
      kind: 'sensor',
      id: 'env-0042',
      profile: 'environment',
      lastSeq: 1042,
      watermark: 1767225570000,
      state: {
        lastTs: 1767225600000,
        watermark: 1767225570000,
        lastSeq: 1042,
        last: { temperature: 21.5, humidity: 48, status: 'ok' },
        loc: { lat: 48.8566, lon: 2.3522 },
        windows: [],
        alerts: [],
        lateCount: 0,
      },
    },
  },
  'GET /v1/entities/sensor/{id}/service': {
    id: 'getSensorService',
    tag: 'registry',
    summary: 'Service state of a sensor (in service, maintenance, retired)',
    errors: ONE,
  },
  'PUT /v1/entities/sensor/{id}/service': {
    id: 'setSensorService',
    tag: 'registry',
    summary: 'Change the service state of a sensor',
    errors: [...ONE, 'GW_ERR_MEDIA_TYPE'],
  },
  // history
  'GET /v1/entities/{kind}/{id}/windows': {
    id: 'listWindows',
    tag: 'history',
    summary: 'Window aggregates of an entity, raw or rolled up',
    errors: LIST,
    reply: {
      items: [
        {
          window: 'tumbling_1m',
          start: '2026-01-01T00:00:00.000Z',
          end: '2026-01-01T00:01:00.000Z',
          windows: 1,
          fields: {
            temperature: {
              count: 12,
              sum: 258,
              min: 21.3,
              max: 21.7,
              mean: 21.5,
              variance: 0.01,
              stddev: 0.1,
              first: 21.3,
              last: 21.6,
            },
          },
          counts: { alerts: 0 },
          idleClosed: false,
        },
      ],
      nextCursor: null,
    },
  },
  'GET /v1/alerts': {
    id: 'listAlerts',
    tag: 'history',
    summary: 'Alerts, newest first, with filters',
    errors: LIST,
    reply: {
      items: [
        {
          alertId: ALARM.alertId,
          kind: 'vehicle',
          entity: ALARM.entity,
          profile: 'race',
          type: 'brake_overheat',
          severity: 'critical',
          state: 'open',
          startedAt: '2026-01-01T00:00:00.000Z',
          endedAt: null,
          eventAt: '2026-01-01T00:00:02.000Z',
          value: 968,
          threshold: 950,
          peakValue: 968,
          explanation: ALARM.explanation,
          details: { corner: 'brake_temp_fl', corners: ['brake_temp_fl'], peak: 968 },
        },
      ],
      nextCursor: null,
    },
  },
  'GET /v1/recommendations': {
    id: 'listRecommendations',
    tag: 'history',
    summary: 'Recommendations (pit now), newest first',
    errors: LIST,
  },
  'GET /v1/entities/{kind}/{id}/laps': {
    id: 'listLaps',
    tag: 'history',
    summary: 'Lap statistics of a vehicle',
    errors: LIST,
  },
  'GET /v1/entities/{kind}/{id}/scores': {
    id: 'listScores',
    tag: 'history',
    summary: "Score history of an entity (e.g. an asset's failure_risk), oldest first",
    errors: LIST,
    reply: {
      items: [
        {
          id: 'out-1',
          name: 'failure_risk',
          profile: 'asset',
          scoredAt: '2026-01-01T01:00:00.000Z',
          value: 42.5,
          factors: { vibration: 0.6 },
        },
      ],
      nextCursor: null,
    },
  },
  'GET /v1/late-readings': {
    id: 'listLateReadings',
    tag: 'history',
    summary: 'Readings that arrived behind the watermark',
    errors: LIST,
  },
  'GET /v1/entities/{kind}/{id}/trips': {
    id: 'listTrips',
    tag: 'history',
    summary: 'Trips of a vehicle as GeoJSON LineStrings',
    errors: LIST,
  },
  'GET /v1/entities/{kind}/{id}/positions': {
    id: 'listPositions',
    tag: 'history',
    summary: 'Positions of a vehicle as GeoJSON Points',
    errors: LIST,
  },
  'GET /v1/rollups/open-alerts': {
    id: 'rollupOpenAlerts',
    tag: 'history',
    summary: 'Open alerts counted by type, severity and process stage',
  },
  'GET /v1/rollups/stale': {
    id: 'rollupStale',
    tag: 'history',
    summary: 'Entities silent for more than N minutes',
    errors: LIST,
  },
  'GET /v1/rollups/alerts': {
    id: 'rollupAlerts',
    tag: 'history',
    summary: 'Alerts started in a period, by type and severity and per time bucket',
    errors: ['GW_ERR_QUERY_INVALID'],
    reply: {
      total: 3,
      byType: [
        { type: 'temp_high', severity: 'warning', count: 2 },
        { type: 'co2_high', severity: 'critical', count: 1 },
      ],
      byBucket: [
        { start: '2026-01-01T00:00:00.000Z', count: 2, info: 0, warning: 2, critical: 0 },
        { start: '2026-01-01T02:00:00.000Z', count: 1, info: 0, warning: 0, critical: 1 },
      ],
    },
  },
  'GET /v1/rollups/late-readings': {
    id: 'rollupLateReadings',
    tag: 'history',
    summary: 'Late readings in a period, counted per entity',
    errors: ['GW_ERR_QUERY_INVALID'],
    reply: {
      total: 4,
      byEntity: [
        { kind: 'sensor', entity: 'env-0042', count: 3, last: '2026-01-01T00:10:00.000Z', maxBehindMs: 95000 },
      ],
    },
  },
  // alarms
  'GET /v1/alerts/{id}': {
    id: 'getAlarm',
    tag: 'alarms',
    summary: 'One alert as an alarm: workflow state and occurrences',
    errors: ['GW_ERR_ALERT_UNKNOWN'],
    reply: ALARM,
  },
  'GET /v1/alerts/{id}/history': {
    id: 'getAlarmHistory',
    tag: 'alarms',
    summary: 'The audit trail of an alert',
    errors: ['GW_ERR_ALERT_UNKNOWN'],
  },
  'POST /v1/alerts/{id}/ack': {
    id: 'acknowledgeAlarm',
    tag: 'alarms',
    summary: 'Acknowledge an alert',
    errors: [...ALARM_ERRORS, 'GW_ERR_MEDIA_TYPE'],
    request: { comment: 'crew informed' },
    reply: ALARM,
  },
  'POST /v1/alerts/{id}/assign': {
    id: 'assignAlarm',
    tag: 'alarms',
    summary: 'Assign an alert to a person (null unassigns)',
    errors: [...ALARM_ERRORS, 'GW_ERR_MEDIA_TYPE'],
    request: { assignee: 'u-ops', comment: 'yours' },
  },
  'POST /v1/alerts/{id}/comment': {
    id: 'commentAlarm',
    tag: 'alarms',
    summary: 'Comment on an alert',
    errors: [...ALARM_ERRORS, 'GW_ERR_MEDIA_TYPE'],
    request: { comment: 'brake duct checked' },
  },
  'POST /v1/alerts/{id}/clear': {
    id: 'clearAlarm',
    tag: 'alarms',
    summary: 'Clear an alert',
    errors: [...ALARM_ERRORS, 'GW_ERR_MEDIA_TYPE'],
    request: { comment: 'resolved at the pit stop' },
  },
  // live
  'GET /v1/live': {
    id: 'liveEvents',
    tag: 'live',
    summary: "Server-Sent Events of the site's outputs (data: LiveOutput)",
    errors: ['GW_ERR_UNAVAILABLE'],
  },
  'GET /v1/live/ws': {
    id: 'liveWebSocket',
    tag: 'live',
    summary: 'The live feed over a WebSocket',
    errors: ['GW_ERR_UPGRADE_REQUIRED'],
  },
  // registry
  'POST /v1/customers': {
    id: 'createCustomer',
    tag: 'registry',
    summary: 'Create a customer (fleet)',
    errors: ['GW_ERR_CONFLICT', 'GW_ERR_MEDIA_TYPE'],
    request: { id: 'acme', name: 'ACME Logistics' },
  },
  'GET /v1/customers': { id: 'listCustomers', tag: 'registry', summary: 'List customers', errors: LIST },
  'GET /v1/customers/{id}': { id: 'getCustomer', tag: 'registry', summary: 'One customer', errors: ONE },
  'PATCH /v1/customers/{id}': {
    id: 'updateCustomer',
    tag: 'registry',
    summary: 'Change a customer',
    errors: [...ONE, 'GW_ERR_MEDIA_TYPE'],
  },
  'DELETE /v1/customers/{id}': {
    id: 'deleteCustomer',
    tag: 'registry',
    summary: 'Delete a customer no sensor or vehicle references',
    errors: [...ONE, 'GW_ERR_CONFLICT'],
  },
  'POST /v1/sensors': {
    id: 'createSensor',
    tag: 'registry',
    summary: 'Register a sensor',
    errors: CREATE,
    request: {
      id: 'env-0042',
      type: 'air',
      profile: 'environment',
      site: 'a',
      location: { lat: 48.8566, lon: 2.3522 },
      customerId: 'acme',
    },
  },
  'GET /v1/sensors': { id: 'listSensors', tag: 'registry', summary: 'List sensors', errors: LIST },
  'GET /v1/sensors/{id}': { id: 'getSensor', tag: 'registry', summary: 'One sensor', errors: ONE },
  'PATCH /v1/sensors/{id}': {
    id: 'updateSensor',
    tag: 'registry',
    summary: 'Change a sensor',
    errors: [...ONE, 'GW_ERR_CUSTOMER_UNKNOWN', 'GW_ERR_MEDIA_TYPE'],
  },
  'DELETE /v1/sensors/{id}': { id: 'deleteSensor', tag: 'registry', summary: 'Delete a sensor', errors: ONE },
  'POST /v1/vehicles': {
    id: 'createVehicle',
    tag: 'registry',
    summary: 'Register a vehicle',
    errors: [...CREATE, 'GW_ERR_VIN_INVALID'],
    request: {
      vin: '1HGCM82633A004352',
      brand: 'Honda',
      model: 'Accord',
      year: 2003,
      profile: 'road',
      customerId: 'acme',
    },
  },
  'GET /v1/vehicles': { id: 'listVehicles', tag: 'registry', summary: 'List vehicles', errors: LIST },
  'GET /v1/vehicles/{vin}': {
    id: 'getVehicle',
    tag: 'registry',
    summary: 'One vehicle',
    errors: [...ONE, 'GW_ERR_VIN_INVALID'],
  },
  'PATCH /v1/vehicles/{vin}': {
    id: 'updateVehicle',
    tag: 'registry',
    summary: 'Change a vehicle',
    errors: [...ONE, 'GW_ERR_VIN_INVALID', 'GW_ERR_CUSTOMER_UNKNOWN', 'GW_ERR_MEDIA_TYPE'],
  },
  'DELETE /v1/vehicles/{vin}': {
    id: 'deleteVehicle',
    tag: 'registry',
    summary: 'Delete a vehicle',
    errors: [...ONE, 'GW_ERR_VIN_INVALID'],
  },
  // geofences
  'POST /v1/geofences': {
    id: 'createGeofence',
    tag: 'geofences',
    summary: 'Create a geofence',
    errors: CREATE,
    request: {
      id: 'depot-north',
      name: 'North depot',
      shape: { type: 'circle', lat: 40.7831, lon: -73.9712, radiusM: 250 },
      customers: ['acme'],
    },
  },
  'GET /v1/geofences': { id: 'listGeofences', tag: 'geofences', summary: 'List geofences', errors: LIST },
  'GET /v1/geofences/{id}': { id: 'getGeofence', tag: 'geofences', summary: 'One geofence', errors: ONE },
  'PATCH /v1/geofences/{id}': {
    id: 'updateGeofence',
    tag: 'geofences',
    summary: 'Change a geofence',
    errors: [...ONE, 'GW_ERR_CUSTOMER_UNKNOWN', 'GW_ERR_MEDIA_TYPE'],
  },
  'DELETE /v1/geofences/{id}': { id: 'deleteGeofence', tag: 'geofences', summary: 'Delete a geofence', errors: ONE },
  // admin
  'POST /v1/admin/devices/{kind}/{id}/credentials': {
    id: 'issueDeviceCredential',
    tag: 'admin',
    summary: 'Issue a device credential (the token is shown once)',
    reply: {
      id: 'dc_0123456789abcdef01234567',
      kind: 'sensor',
      entity: 'env-0042',
      token: 'dc_0123456789abcdef01234567.<43 characters>',
      createdAt: '2026-01-01T00:00:00.000Z',
    },
  },
  'DELETE /v1/admin/credentials/{credId}': {
    id: 'revokeDeviceCredential',
    tag: 'admin',
    summary: 'Revoke a device credential',
    errors: ['GW_ERR_CREDENTIAL_UNKNOWN'],
  },
  // notifications (notify.ts)
  'POST /v1/notifications/subscriptions': {
    id: 'createSubscription',
    tag: 'notifications',
    summary: 'Subscribe a webhook to alerts and alarm actions (the signing secret is shown once)',
    errors: [
      'GW_ERR_CONFLICT',
      'GW_ERR_WEBHOOK_URL_INVALID',
      'GW_ERR_WEBHOOK_URL_FORBIDDEN',
      'GW_ERR_FORBIDDEN',
      'GW_ERR_MEDIA_TYPE',
    ],
    request: {
      id: 'ops-pager',
      name: 'Ops pager',
      url: 'https://hooks.example.com/pitwall',
      filter: { events: ['open', 'close'], severities: ['critical'], profiles: ['race'] },
    },
  },
  'GET /v1/notifications/subscriptions': {
    id: 'listSubscriptions',
    tag: 'notifications',
    summary: 'List webhook subscriptions (secrets never shown)',
    errors: [...LIST, 'GW_ERR_FORBIDDEN'],
  },
  'GET /v1/notifications/subscriptions/{id}': {
    id: 'getSubscription',
    tag: 'notifications',
    summary: 'One webhook subscription',
    errors: ['GW_ERR_SUBSCRIPTION_UNKNOWN', 'GW_ERR_FORBIDDEN'],
  },
  'PATCH /v1/notifications/subscriptions/{id}': {
    id: 'updateSubscription',
    tag: 'notifications',
    summary: 'Change a subscription (a new filter replaces the old one)',
    errors: [
      'GW_ERR_SUBSCRIPTION_UNKNOWN',
      'GW_ERR_WEBHOOK_URL_INVALID',
      'GW_ERR_WEBHOOK_URL_FORBIDDEN',
      'GW_ERR_FORBIDDEN',
      'GW_ERR_MEDIA_TYPE',
    ],
  },
  'DELETE /v1/notifications/subscriptions/{id}': {
    id: 'deleteSubscription',
    tag: 'notifications',
    summary: 'Delete a subscription and its pending deliveries',
    errors: ['GW_ERR_SUBSCRIPTION_UNKNOWN', 'GW_ERR_FORBIDDEN'],
  },
  'POST /v1/notifications/subscriptions/{id}/secret': {
    id: 'rotateSubscriptionSecret',
    tag: 'notifications',
    summary: "Rotate a subscription's signing secret (shown once)",
    errors: ['GW_ERR_SUBSCRIPTION_UNKNOWN', 'GW_ERR_FORBIDDEN'],
  },
  'GET /v1/notifications/deliveries': {
    id: 'listDeliveries',
    tag: 'notifications',
    summary: 'The delivery log: deliveries with their status, newest first',
    errors: [...LIST, 'GW_ERR_QUERY_INVALID', 'GW_ERR_FORBIDDEN'],
  },
  'GET /v1/notifications/deliveries/{id}': {
    id: 'getDelivery',
    tag: 'notifications',
    summary: 'One delivery with its payload and every attempt',
    errors: ['GW_ERR_DELIVERY_UNKNOWN', 'GW_ERR_FORBIDDEN'],
  },
  // the operator console's helpers (console.ts)
  'GET /v1/whoami': {
    id: 'whoami',
    tag: 'admin',
    summary: "Who the caller is: a person's or a key's id, role and scope (the console's start)",
  },
  'GET /v1/sites': {
    id: 'listSites',
    tag: 'health',
    summary: "The sites of the deployment: role, epoch, reachability (the console's sites view)",
  },
  'POST /v1/sites/{site}/failover': {
    id: 'failoverSite',
    tag: 'health',
    summary: "Operator failover: this site takes its peer's partitions (admins; audited; progress in GET /v1/sites)",
    errors: ['GW_ERR_SITE_UNKNOWN', 'GW_ERR_SITE_BUSY', 'GW_ERR_SITE_UNREACHABLE', 'GW_ERR_MEDIA_TYPE'],
    request: { reason: 'site b lost power (ticket OPS-812)', confirm: true },
  },
  'POST /v1/sites/{site}/failback': {
    id: 'failbackSite',
    tag: 'health',
    summary:
      'Operator failback: the home site takes its partitions back from the peer (admins; audited; progress in GET /v1/sites)',
    errors: ['GW_ERR_SITE_UNKNOWN', 'GW_ERR_SITE_BUSY', 'GW_ERR_SITE_UNREACHABLE', 'GW_ERR_MEDIA_TYPE'],
    request: { reason: 'site b is back and its mirrors caught up', confirm: true },
  },
  // health
  'GET /healthz': { id: 'getHealth', tag: 'health', summary: 'Liveness', reply: { status: 'ok' } },
  'GET /readyz': {
    id: 'getReadiness',
    tag: 'health',
    summary: 'Readiness: NATS, JetStream, PostgreSQL',
    errors: ['GW_ERR_NOT_READY'],
    reply: { status: 'ready', checks: { nats: 'ok', jetstream: 'ok', postgres: 'ok' } },
  },
  'GET /metrics': { id: 'getMetrics', tag: 'health', summary: 'Prometheus metrics (text exposition format)' },
}

/** The security requirement of a route's access (auth.ts): public none, ingest people, keys and devices, the rest people and keys. */
export function securityOf(access: Access): Array<Record<string, string[]>> {
  if (access === 'public') return []
  if (access === 'ingest') return [{ bearer: [] }, { apiKey: [] }, { device: [] }]
  return [{ bearer: [] }, { apiKey: [] }]
}

/** The codes a route may answer: by access, by its parts, and its own (`op.errors`). */
export function errorCodes(
  access: Access,
  parts: { params: boolean; query: boolean; body: boolean; database: boolean },
  op: Operation,
): GatewayErrorCode[] {
  // Answered on the socket before any route runs (app.ts clientError), so possible on every route.
  const codes = new Set<GatewayErrorCode>([
    'GW_ERR_INTERNAL',
    'GW_ERR_REQUEST_TIMEOUT',
    'GW_ERR_REQUEST_MALFORMED',
    'GW_ERR_HEADERS_TOO_LARGE',
  ])
  if (access !== 'public') {
    for (const c of [
      'GW_ERR_UNAUTHENTICATED',
      'GW_ERR_FORBIDDEN',
      'GW_ERR_RATE_LIMITED',
      'GW_ERR_UNAVAILABLE',
    ] as const)
      codes.add(c)
  }
  if (parts.params)
    for (const c of ['GW_ERR_PARAMS_INVALID', 'GW_ERR_KIND_INVALID', 'GW_ERR_ID_INVALID'] as const) codes.add(c)
  if (parts.query || access !== 'public') codes.add('GW_ERR_QUERY_INVALID')
  if (parts.body)
    for (const c of ['GW_ERR_BODY_INVALID', 'GW_ERR_BODY_MALFORMED', 'GW_ERR_BODY_TOO_LARGE'] as const) codes.add(c)
  if (parts.database) codes.add('GW_ERR_UNAVAILABLE')
  for (const c of op.errors ?? []) codes.add(c)
  return [...codes].sort()
}

/** Error replies per status, each with `code` restricted to that status's codes. */
export function errorResponses(codes: readonly GatewayErrorCode[], errorReply: TSchema): Record<number, TSchema> {
  const byStatus = new Map<number, GatewayErrorCode[]>()
  for (const c of codes) byStatus.set(GW_ERR[c], [...(byStatus.get(GW_ERR[c]) ?? []), c])
  const out: Record<number, TSchema> = {}
  for (const [status, cs] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const props = (errorReply as unknown as { properties: Record<string, TSchema> }).properties
    out[status] = Type.Object(
      { ...props, code: Type.Unsafe<string>({ type: 'string', enum: cs }) },
      { 'x-response-description': cs.join(', ') },
    )
  }
  return out
}
