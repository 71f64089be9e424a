/**
 * Entity registry against a real PostgreSQL and nats-server: CRUD of customers, sensors and vehicles, 409 on
 * duplicates, 404 on unknown keys, cursor pagination (every item exactly once, in key order), filters, the
 * role matrix (viewer reads, operator writes, admin deletes) and VIN validation.
 */
import t from 'tap'
import { vinCheckDigit } from '../../gateway/mod.js'
import { bearer as as, setupGateway, VIEW_KEY, VIN } from '../helpers/gateway.js'

const OP = as('operator')
const ADMIN = as('admin')
const VIEWER = as('viewer')
/** A valid VIN ending in `n` (check digit recomputed). */
function vin(n: number): string {
  const base = `1HGCM82A03A${String(n).padStart(6, '0')}`
  return `${base.slice(0, 8)}${vinCheckDigit(base)}${base.slice(9)}`
}
interface Page<T> {
  items: T[]
  nextCursor: string | null
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const { app } = await setupGateway(t, { provision: false })
  const req = async (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ) => {
    const res = await app.inject({
      method,
      url,
      headers,
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    })
    return { status: res.statusCode, body: res.body === '' ? undefined : res.json<Record<string, unknown>>() }
  }
  return { app, req }
}

t.test('customers, sensors, vehicles: create, read, update, delete, 409, 404', async (t) => {
  const { req } = await setup(t)
  let r = await req('POST', '/v1/customers', OP, { id: 'acme', name: 'Acme Ltd' })
  t.equal(r.status, 201)
  t.match(r.body, { id: 'acme', name: 'Acme Ltd', createdAt: String, updatedAt: String })
  t.equal((await req('POST', '/v1/customers', OP, { id: 'acme', name: 'again' })).body?.code, 'GW_ERR_CONFLICT')
  t.equal((await req('POST', '/v1/customers', OP, { id: 'acme', name: 'again' })).status, 409)
  r = await req('PATCH', '/v1/customers/acme', OP, { name: 'Acme plc' })
  t.equal(r.status, 200)
  t.equal(r.body?.name, 'Acme plc')
  t.equal((await req('GET', '/v1/customers/acme', VIEWER)).body?.name, 'Acme plc')

  // sensor
  const sensor = {
    id: 'press-1',
    type: 'pressure',
    profile: 'environment',
    site: 'plant-a',
    location: { lat: 45.1, lon: 7.6 },
    processStage: 'mixing',
    customerId: 'acme',
  }
  r = await req('POST', '/v1/sensors', OP, sensor)
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, { ...sensor, createdAt: String })
  t.equal((await req('POST', '/v1/sensors', OP, sensor)).status, 409)
  t.same((await req('GET', '/v1/sensors/press-1', VIEWER)).body?.location, { lat: 45.1, lon: 7.6 })
  r = await req('PATCH', '/v1/sensors/press-1', OP, { location: null, processStage: 'curing' })
  t.equal(r.status, 200)
  t.match(r.body, { location: null, processStage: 'curing', type: 'pressure' })
  t.equal(
    (await req('POST', '/v1/sensors', OP, { ...sensor, id: 'x1', customerId: 'nobody' })).body?.code,
    'GW_ERR_CUSTOMER_UNKNOWN',
  )
  t.equal(
    (await req('POST', '/v1/sensors', OP, { ...sensor, id: 'x1', profile: 'road' })).body?.code,
    'GW_ERR_PROFILE_INVALID',
  )
  t.equal((await req('POST', '/v1/sensors', OP, { ...sensor, id: 'x1', extra: 1 })).body?.code, 'GW_ERR_BODY_INVALID')
  t.equal((await req('PATCH', '/v1/sensors/press-1', OP, {})).status, 400, 'empty patch')

  // vehicle
  const vehicle = { vin: VIN, brand: 'Ferrari', model: '296', year: 2023, profile: 'race', customerId: 'acme' }
  r = await req('POST', '/v1/vehicles', OP, vehicle)
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, vehicle)
  t.equal((await req('POST', '/v1/vehicles', OP, vehicle)).body?.code, 'GW_ERR_CONFLICT')
  r = await req('PATCH', `/v1/vehicles/${VIN}`, OP, { profile: 'road', customerId: null })
  t.match(r.body, { profile: 'road', customerId: null, model: '296' })
  t.equal((await req('GET', `/v1/vehicles/${VIN}`, VIEWER)).body?.profile, 'road')

  // a referenced customer cannot be deleted
  t.equal((await req('DELETE', '/v1/customers/acme', ADMIN)).body?.code, 'GW_ERR_CONFLICT')

  // unknown: 404 GW_ERR_NOT_FOUND
  for (const [m, url, body] of [
    ['GET', '/v1/sensors/nope'],
    ['PATCH', '/v1/sensors/nope', { type: 't' }],
    ['DELETE', '/v1/sensors/nope'],
    ['GET', `/v1/vehicles/${vin(99)}`],
    ['PATCH', `/v1/vehicles/${vin(99)}`, { year: 2000 }],
    ['DELETE', `/v1/vehicles/${vin(99)}`],
    ['GET', '/v1/customers/nope'],
    ['PATCH', '/v1/customers/nope', { name: 'n' }],
    ['DELETE', '/v1/customers/nope'],
  ] as const) {
    r = await req(m, url, m === 'GET' ? VIEWER : m === 'DELETE' ? ADMIN : OP, body)
    t.equal(r.status, 404, `${m} ${url}`)
    t.equal(r.body?.code, 'GW_ERR_NOT_FOUND')
  }

  // delete
  t.equal((await req('DELETE', '/v1/sensors/press-1', ADMIN)).status, 204)
  t.equal((await req('DELETE', `/v1/vehicles/${VIN}`, ADMIN)).status, 204)
  t.equal((await req('GET', '/v1/sensors/press-1', VIEWER)).status, 404)
  t.equal((await req('DELETE', '/v1/customers/acme', ADMIN)).status, 204, 'no longer referenced')
  t.equal((await req('GET', '/v1/customers/acme', VIEWER)).status, 404)
})

t.test('pagination: 25 items, limit 10, each exactly once in key order; filters', async (t) => {
  const { req } = await setup(t)
  await req('POST', '/v1/customers', OP, { id: 'c1', name: 'One' })
  const ids: string[] = []
  // created out of order, so the order seen is the key order and not the insertion order
  for (let i = 24; i >= 0; i--) {
    const id = `s-${String(i).padStart(2, '0')}`
    ids.push(id)
    const r = await req('POST', '/v1/sensors', OP, {
      id,
      type: i % 2 ? 'temp' : 'co2',
      profile: i % 3 ? 'environment' : 'asset',
      site: i < 10 ? 'plant-a' : 'plant-b',
      ...(i % 5 === 0 ? { processStage: 'bake' } : {}),
      ...(i < 5 ? { customerId: 'c1' } : {}),
    })
    t.equal(r.status, 201)
  }
  ids.sort()
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const r = await req('GET', `/v1/sensors?limit=10${cursor ? `&cursor=${cursor}` : ''}`, VIEWER)
    t.equal(r.status, 200)
    const page = r.body as unknown as Page<{ id: string }>
    t.ok(page.items.length <= 10)
    seen.push(...page.items.map((s) => s.id))
    cursor = page.nextCursor
    pages++
  } while (cursor && pages < 10)
  t.equal(pages, 3)
  t.same(seen, ids, 'every item once, in order')

  const count = async (q: string): Promise<number> =>
    ((await req('GET', `/v1/sensors?limit=100&${q}`, VIEWER)).body as unknown as Page<unknown>).items.length
  t.equal(await count('type=temp'), 12)
  t.equal(await count('profile=asset'), 9)
  t.equal(await count('site=plant-a'), 10)
  t.equal(await count('processStage=bake'), 5)
  t.equal(await count('customer=c1'), 5)
  t.equal(await count('site=plant-a&type=co2&customer=c1'), 3)

  // vehicles: paginated too, with brand/profile/customer/year-range filters
  const vins: string[] = []
  for (let i = 0; i < 25; i++) {
    const v = vin(i)
    vins.push(v)
    const r = await req('POST', '/v1/vehicles', OP, {
      vin: v,
      brand: i % 2 ? 'Audi' : 'BMW',
      model: 'M',
      year: 2000 + i,
      profile: i < 20 ? 'road' : 'race',
      ...(i < 3 ? { customerId: 'c1' } : {}),
    })
    t.equal(r.status, 201, JSON.stringify(r.body))
  }
  vins.sort()
  const got: string[] = []
  cursor = null
  do {
    const page = (await req('GET', `/v1/vehicles?limit=10${cursor ? `&cursor=${cursor}` : ''}`, VIEWER))
      .body as unknown as Page<{ vin: string }>
    got.push(...page.items.map((v) => v.vin))
    cursor = page.nextCursor
  } while (cursor)
  t.same(got, vins)
  const vcount = async (q: string): Promise<number> =>
    ((await req('GET', `/v1/vehicles?limit=100&${q}`, VIEWER)).body as unknown as Page<unknown>).items.length
  t.equal(await vcount('brand=Audi'), 12)
  t.equal(await vcount('profile=race'), 5)
  t.equal(await vcount('customer=c1'), 3)
  t.equal(await vcount('yearMin=2010&yearMax=2014'), 5)
  t.equal(await vcount('yearMin=2020&brand=BMW'), 3)

  // bad paging / filter input
  for (const q of [
    'limit=0',
    'limit=101',
    'limit=abc',
    'cursor=!!!',
    `cursor=${Buffer.from('{"x":1}').toString('base64url')}`,
    'color=red',
  ]) {
    const r = await req('GET', `/v1/sensors?${q}`, VIEWER)
    t.equal(r.status, 400, q)
    t.match(r.body?.code, /^GW_ERR_(QUERY|CURSOR)_INVALID$/, q)
  }
  t.equal((await req('GET', '/v1/vehicles?yearMin=1200', VIEWER)).body?.code, 'GW_ERR_QUERY_INVALID')
})

t.test('roles: viewer reads, operator creates/updates, admin deletes', async (t) => {
  const { req } = await setup(t)
  const key = { 'x-api-key': VIEW_KEY }
  // role -> [create, read, update, delete] expected statuses
  const matrix: [string, Record<string, string>, number[]][] = [
    ['none', {}, [401, 401, 401, 401]],
    ['viewer', VIEWER, [403, 200, 403, 403]],
    ['viewer key', key, [403, 200, 403, 403]],
    ['operator', OP, [201, 200, 200, 403]],
    ['admin', ADMIN, [201, 200, 200, 204]],
  ]
  for (const [name, h, [c, r, u, d]] of matrix) {
    const id = `rm-${name.replace(' ', '-')}`
    const create = await req('POST', '/v1/sensors', h, { id, type: 't', profile: 'environment', site: 'plant-a' })
    t.equal(create.status, c, `${name} create sensor`)
    if (c !== 201) await req('POST', '/v1/sensors', ADMIN, { id, type: 't', profile: 'environment', site: 'plant-a' })
    t.equal((await req('GET', `/v1/sensors/${id}`, h)).status, r, `${name} read sensor`)
    t.equal((await req('GET', '/v1/sensors', h)).status, r, `${name} list sensors`)
    t.equal((await req('PATCH', `/v1/sensors/${id}`, h, { type: 'u' })).status, u, `${name} update sensor`)
    t.equal((await req('DELETE', `/v1/sensors/${id}`, h)).status, d, `${name} delete sensor`)
    t.equal((await req('POST', '/v1/customers', h, { id, name: 'n' })).status, c, `${name} create customer`)
    t.equal(
      (await req('DELETE', `/v1/customers/${id}`, h)).status,
      c === 201 ? d : d === 401 ? 401 : 403,
      `${name} delete customer`,
    )
    const v = vin(500 + matrix.findIndex((m) => m[0] === name))
    t.equal(
      (await req('POST', '/v1/vehicles', h, { vin: v, brand: 'B', model: 'M', year: 2020, profile: 'road' })).status,
      c,
      `${name} create vehicle`,
    )
    if (c === 201) t.equal((await req('DELETE', `/v1/vehicles/${v}`, h)).status, d, `${name} delete vehicle`)
  }
  const deny = await req('POST', '/v1/sensors', VIEWER, { id: 'z', type: 't', profile: 'environment', site: 'plant-a' })
  t.equal(deny.body?.code, 'GW_ERR_FORBIDDEN')
  t.equal((await req('DELETE', '/v1/sensors/z', OP)).body?.code, 'GW_ERR_FORBIDDEN')
})

t.test('invalid VINs are 400 GW_ERR_VIN_INVALID in bodies and paths', async (t) => {
  const { req } = await setup(t)
  const bad = [
    '1M8GDM9AXKP04278',
    '1M8GDM9AXKP0427888',
    '1M8GDM9A1KP042788',
    '1m8gdm9axkp042788',
    'IM8GDM9AXKP042788',
    '',
  ]
  for (const v of bad) {
    const r = await req('POST', '/v1/vehicles', OP, { vin: v, brand: 'B', model: 'M', year: 2020, profile: 'road' })
    t.equal(r.status, 400, `body ${v}`)
    t.equal(r.body?.code, 'GW_ERR_VIN_INVALID', `body ${v}`)
  }
  for (const v of bad.filter((x) => x !== '')) {
    for (const [m, h] of [
      ['GET', VIEWER],
      ['PATCH', OP],
      ['DELETE', ADMIN],
    ] as const) {
      const r = await req(m, `/v1/vehicles/${v}`, h, m === 'PATCH' ? { year: 2021 } : undefined)
      t.equal(r.body?.code, 'GW_ERR_VIN_INVALID', `${m} ${v}`)
    }
  }
  t.equal(
    (await req('POST', '/v1/vehicles', OP, { vin: VIN, brand: 'B', model: 'M', year: 2020, profile: 'rally' })).body
      ?.code,
    'GW_ERR_BODY_INVALID',
  )
  t.equal(
    (await req('POST', '/v1/vehicles', OP, { vin: VIN, brand: 'B', model: 'M', year: '2020', profile: 'road' })).body
      ?.code,
    'GW_ERR_BODY_INVALID',
  )
})
