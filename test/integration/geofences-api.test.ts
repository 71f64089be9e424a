/**
 * Geofences as data, end to end against a real nats-server and PostgreSQL: the gateway's CRUD routes (roles,
 * errors, scoping), the set published to the reference bucket with increasing versions, and a running Worker
 * that picks a change up without a restart: a road vehicle enters a polygon created through the API, and after
 * the fence is deleted the vehicle's geofence closes on the next reading, each output naming the version applied.
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { GEOFENCES_REF, partitionOf, PROFILES, tlmSubject, Worker, type GeofenceSet } from '../../actors/mod.js'
import { bearer as as, setupGateway, VIN } from '../helpers/gateway.js'

const OP = as('operator')
const ADMIN = as('admin')
const VIEWER = as('viewer')
const quiet = (): void => undefined
const square = (lat: number, lon: number, h: number): number[][][] => [
  [
    [lon - h, lat - h],
    [lon + h, lat - h],
    [lon + h, lat + h],
    [lon - h, lat + h],
    [lon - h, lat - h],
  ],
]

t.test('geofence CRUD -> reference bucket -> worker, no restart', async (t) => {
  const g = await setupGateway(t, { runtime: { refActivationMs: 0 } })
  const req = async (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ) => {
    const res = await g.app.inject({
      method,
      url,
      headers,
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    })
    return { status: res.statusCode, body: res.body === '' ? undefined : res.json<Record<string, unknown>>() }
  }
  const w = new Worker({
    cfg: { ...g.cfg.runtime, workerId: 'w1', defaultProfiles: { ...g.cfg.runtime.defaultProfiles, vehicle: 'road' } },
    profiles: PROFILES,
    log: quiet,
  })
  await w.start()
  t.teardown(() => w.stop())
  for (let i = 0; i < 100 && w.owned().length < 4; i++) await new Promise((res) => setTimeout(res, 50))

  // Customers, roles, validation.
  t.equal((await req('POST', '/v1/customers', OP, { id: 'acme', name: 'Acme' })).status, 201)
  t.equal(
    (
      await req('POST', '/v1/vehicles', OP, {
        vin: VIN,
        brand: 'Iveco',
        model: 'Urbanway',
        year: 2022,
        profile: 'road',
        customerId: 'acme',
      })
    ).status,
    201,
  )
  const depot = {
    id: 'depot',
    name: 'Depot',
    shape: { type: 'polygon', coordinates: square(40.75, -73.98, 0.002) },
    customers: ['acme'],
  }
  t.equal((await req('POST', '/v1/geofences', VIEWER, depot)).status, 403, 'viewers may not create')
  t.equal(
    (await req('POST', '/v1/geofences', OP, { ...depot, customers: ['nobody'] })).body?.code,
    'GW_ERR_CUSTOMER_UNKNOWN',
  )
  t.equal(
    (
      await req('POST', '/v1/geofences', OP, {
        ...depot,
        shape: {
          type: 'polygon',
          coordinates: [
            [
              [0, 0],
              [1, 1],
              [0, 0],
            ],
          ],
        },
      })
    ).body?.code,
    'GW_ERR_BODY_INVALID',
    'a ring of two vertices',
  )
  t.equal(
    (await req('POST', '/v1/geofences', OP, { ...depot, shape: { type: 'circle', lat: 40, lon: -73, radiusM: -1 } }))
      .body?.code,
    'GW_ERR_BODY_INVALID',
  )
  const created = await req('POST', '/v1/geofences', OP, depot)
  t.equal(created.status, 201, JSON.stringify(created.body))
  t.match(created.body, {
    id: 'depot',
    name: 'Depot',
    customers: ['acme'],
    vehicles: [],
    marginM: null,
    version: Number,
  })
  const v1 = created.body?.version as number
  t.equal((await req('POST', '/v1/geofences', OP, depot)).status, 409)
  t.equal(
    (
      await req('POST', '/v1/geofences', OP, {
        id: 'yard',
        shape: { type: 'circle', lat: 41, lon: -74, radiusM: 300 },
        vehicles: ['OTHER1'],
      })
    ).status,
    201,
  )
  const list = await req('GET', '/v1/geofences?limit=1', VIEWER)
  t.equal((list.body?.items as unknown[]).length, 1)
  t.ok(list.body?.nextCursor, 'paginated')
  t.ok((list.body?.version as number) > v1, 'the list reports the current version')
  const scoped = await req('GET', '/v1/geofences', as('viewer', { fleets: ['other'] }))
  t.same(scoped.body?.items, [], 'a person scoped to another fleet sees none')
  t.equal((await req('GET', '/v1/geofences/depot', as('viewer', { fleets: ['other'] }))).status, 404)
  t.equal(
    (await req('PATCH', '/v1/geofences/depot', as('operator', { fleets: ['acme'] }), { name: 'x' })).status,
    403,
    'scoped persons do not write',
  )

  // The bucket holds the expanded set: the depot applies to the customer's vehicle.
  const kv = await new Kvm(g.nc).open(g.cfg.runtime.streams.refBucket)
  const set = (await kv.get(GEOFENCES_REF))?.json<GeofenceSet>()
  t.same(
    set?.fences.map((f) => [f.id, f.vehicles]),
    [
      ['depot', [VIN]],
      ['yard', ['OTHER1']],
    ],
  )

  // Readings: drive into the depot. The worker has the set without a restart.
  const js = jetstream(g.nc)
  const P = g.cfg.runtime.partitions
  const send = async (ts: number, lat: number): Promise<void> => {
    await js.publish(
      tlmSubject(g.cfg.runtime.site, partitionOf('vehicle', VIN, P), 'vehicle', VIN),
      JSON.stringify({ ts, profile: 'road', fields: { lat, lon: -73.98, speed: 150 } }),
    )
  }
  const T = Date.now() - 60_000
  for (let i = 0; i < 14; i++) await send(T + i * 1000, 40.745 + i * 0.0004)
  const state = async (): Promise<{ geofences: Record<string, number>; geofenceVersion: number | null }> => {
    const res = await g.app.inject({ method: 'GET', url: `/v1/entities/vehicle/${VIN}/state`, headers: VIEWER })
    return res.json<{ state: { geofences: Record<string, number>; geofenceVersion: number | null } }>().state
  }
  let st = await state().catch(() => undefined)
  for (let i = 0; i < 100 && !st?.geofences?.['depot']; i++) {
    await new Promise((res) => setTimeout(res, 100))
    st = await state().catch(() => undefined)
  }
  t.ok(st?.geofences['depot'], `the vehicle is in the depot: ${JSON.stringify(st)}`)
  t.equal(st?.geofenceVersion, set?.version, 'the version applied is the published one')

  // Deleting the fence closes it at the next reading.
  t.equal((await req('DELETE', '/v1/geofences/depot', OP)).status, 403, 'operators do not delete')
  t.equal((await req('DELETE', '/v1/geofences/depot', ADMIN)).status, 204)
  t.equal((await req('DELETE', '/v1/geofences/depot', ADMIN)).status, 404)
  const after = (await kv.get(GEOFENCES_REF))?.json<GeofenceSet>()
  t.ok((after?.version ?? 0) > (set?.version ?? 0), 'a new version')
  // The worker applies a revision from its KV time: the next reading's processing time is after it.
  await new Promise((res) => setTimeout(res, 200))
  await send(T + 14_000, 40.7506)
  for (let i = 0; i < 100 && st?.geofences?.['depot'] !== undefined; i++) {
    await new Promise((res) => setTimeout(res, 100))
    st = await state().catch(() => st)
  }
  t.same(st?.geofences, {}, 'closed after the delete, no restart')
  t.equal(st?.geofenceVersion, after?.version)
})
