/**
 * Vehicle and customer management in the Fleet view (issue 15), on the registry API (gateway/registry.ts):
 * list customers and vehicles, create either, rename a customer, edit a vehicle's brand/model/year and assign it to
 * a customer (or none). Operators and admins edit; a viewer's console shows the lists read-only (the API would
 * refuse the writes anyway). Every change is an ordinary API call; the lists are re-read after it.
 */
import { useEffect, useState } from 'preact/hooks'
import { api, ApiError } from './api.js'

interface Customer {
  id: string
  name: string
}
interface Vehicle {
  vin: string
  brand: string
  model: string
  year: number
  profile: string
  customerId: string | null
}

const message = (err: unknown): string => (err instanceof ApiError ? `${err.message} (${err.code})` : String(err))
const value = (e: Event): string => (e.target as HTMLInputElement).value

export function FleetRegistry({ canEdit }: { canEdit: boolean }) {
  const [customers, setCustomers] = useState<Customer[]>([])
  const [vehicles, setVehicles] = useState<Vehicle[]>([])
  const [error, setError] = useState<string | null>(null)
  const [editing, setEditing] = useState<string | null>(null)
  const [draft, setDraft] = useState<Record<string, string>>({})
  const load = (): void => {
    Promise.all([
      api<{ items: Customer[] }>('/v1/customers?limit=100'),
      api<{ items: Vehicle[] }>('/v1/vehicles?limit=100'),
    ]).then(
      ([c, v]) => {
        setCustomers(c.items)
        setVehicles(v.items)
      },
      (err: unknown) => setError(message(err)),
    )
  }
  useEffect(load, [])
  /** Runs one write, then re-reads the lists; a refusal is shown with its code. */
  const write = (path: string, method: 'POST' | 'PATCH', body: unknown, then?: () => void): void => {
    api(path, { method, body }).then(
      () => {
        setError(null)
        then?.()
        load()
      },
      (err: unknown) => setError(message(err)),
    )
  }
  const field = (k: string) => ({ value: draft[k] ?? '', onInput: (e: Event) => setDraft({ ...draft, [k]: value(e) }) })
  const submit =
    (f: () => void) =>
    (e: Event): void => {
      e.preventDefault()
      f()
    }
  const reset = (): void => {
    setDraft({})
    setEditing(null)
  }

  return (
    <div class="registry" data-registry="fleet">
      <h3>Customers</h3>
      {error !== null && (
        <div class="error" role="alert">
          {error}
        </div>
      )}
      <table class="grid compact" data-table="customers">
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Vehicles</th>
          </tr>
        </thead>
        <tbody>
          {customers.map((c) => (
            <tr key={c.id} data-customer={c.id}>
              <td class="mono">{c.id}</td>
              <td>
                {editing === `c:${c.id}` ? (
                  <form
                    class="inline-form"
                    onSubmit={submit(() =>
                      write(`/v1/customers/${encodeURIComponent(c.id)}`, 'PATCH', { name: draft.cname }, reset),
                    )}
                  >
                    <input name="cname" {...field('cname')} required maxLength={200} />
                    <button type="submit">Save</button>
                  </form>
                ) : (
                  c.name
                )}
                {canEdit && editing !== `c:${c.id}` && (
                  <>
                    {' '}
                    <button
                      class="ghost small"
                      data-edit={c.id}
                      onClick={() => {
                        setEditing(`c:${c.id}`)
                        setDraft({ cname: c.name })
                      }}
                    >
                      Rename
                    </button>
                  </>
                )}
              </td>
              <td class="num">{vehicles.filter((v) => v.customerId === c.id).length}</td>
            </tr>
          ))}
          {customers.length === 0 && (
            <tr>
              <td colSpan={3} class="empty">
                No customer.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {canEdit && (
        <form
          class="inline-form"
          data-form="customer"
          onSubmit={submit(() => write('/v1/customers', 'POST', { id: draft.cid, name: draft.cnew }, reset))}
        >
          <input name="cid" placeholder="id (e.g. acme)" {...field('cid')} required />
          <input name="cnew" placeholder="name" {...field('cnew')} required />
          <button type="submit">Add customer</button>
        </form>
      )}
      <h3>Vehicles</h3>
      <table class="grid compact" data-table="vehicles">
        <thead>
          <tr>
            <th>VIN</th>
            <th>Vehicle</th>
            <th>Profile</th>
            <th>Customer</th>
          </tr>
        </thead>
        <tbody>
          {vehicles.map((v) => (
            <tr key={v.vin} data-registry-vehicle={v.vin}>
              <td class="mono">{v.vin}</td>
              <td>
                {editing === `v:${v.vin}` ? (
                  <form
                    class="inline-form"
                    onSubmit={submit(() =>
                      write(
                        `/v1/vehicles/${encodeURIComponent(v.vin)}`,
                        'PATCH',
                        { brand: draft.brand, model: draft.model, year: Number(draft.year) },
                        reset,
                      ),
                    )}
                  >
                    <input name="brand" {...field('brand')} required />
                    <input name="model" {...field('model')} required />
                    <input name="year" type="number" {...field('year')} required />
                    <button type="submit">Save</button>
                  </form>
                ) : (
                  `${v.brand} ${v.model} ${v.year}`
                )}
                {canEdit && editing !== `v:${v.vin}` && (
                  <>
                    {' '}
                    <button
                      class="ghost small"
                      data-edit={v.vin}
                      onClick={() => {
                        setEditing(`v:${v.vin}`)
                        setDraft({ brand: v.brand, model: v.model, year: String(v.year) })
                      }}
                    >
                      Edit
                    </button>
                  </>
                )}
              </td>
              <td>{v.profile}</td>
              <td>
                <select
                  name="customer"
                  disabled={!canEdit}
                  value={v.customerId ?? ''}
                  aria-label={`customer of ${v.vin}`}
                  onChange={(e) =>
                    write(`/v1/vehicles/${encodeURIComponent(v.vin)}`, 'PATCH', {
                      customerId: value(e) === '' ? null : value(e),
                    })
                  }
                >
                  <option value="">—</option>
                  {customers.map((c) => (
                    <option key={c.id} value={c.id}>
                      {c.name}
                    </option>
                  ))}
                </select>
              </td>
            </tr>
          ))}
          {vehicles.length === 0 && (
            <tr>
              <td colSpan={4} class="empty">
                No vehicle registered.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {canEdit && (
        <form
          class="inline-form wrap"
          data-form="vehicle"
          onSubmit={submit(() =>
            write(
              '/v1/vehicles',
              'POST',
              {
                vin: draft.vin,
                brand: draft.vbrand,
                model: draft.vmodel,
                year: Number(draft.vyear),
                profile: draft.vprofile || 'road',
                ...(draft.vcustomer ? { customerId: draft.vcustomer } : {}),
              },
              reset,
            ),
          )}
        >
          <input name="vin" placeholder="VIN (17 characters)" {...field('vin')} required maxLength={17} />
          <input name="vbrand" placeholder="brand" {...field('vbrand')} required />
          <input name="vmodel" placeholder="model" {...field('vmodel')} required />
          <input name="vyear" type="number" placeholder="year" {...field('vyear')} required />
          <select name="vprofile" {...field('vprofile')} value={draft.vprofile ?? 'road'}>
            <option value="road">road</option>
            <option value="race">race</option>
          </select>
          <select name="vcustomer" {...field('vcustomer')}>
            <option value="">no customer</option>
            {customers.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
          <button type="submit">Add vehicle</button>
        </form>
      )}
      {!canEdit && <div class="note">Read-only: your role is viewer.</div>}
    </div>
  )
}
