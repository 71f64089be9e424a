/**
 * One client cannot suppress another client's readings (issue 13, part 2), against a real nats-server and a real
 * PostgreSQL (device credentials): JetStream message ids are `<kind>.<id>:<rid>` for a rid and
 * `<principal type>:<credential or key id>:<Idempotency-Key>:<index>` for a key (gateway/README.md, "Ingest").
 * Two devices that pick the same rid, and two credentials that send the same Idempotency-Key, are both stored in
 * TLM; a retry by the same sender is still dropped by JetStream and reported as a duplicate.
 */
import t from 'tap'
import { parsePartitioned } from '../../actors/subjects.js'
import { device, setupGateway, SVC_KEY } from '../helpers/gateway.js'

t.test(
  'same rid / Idempotency-Key from two devices or credentials: both stored; a retry by the same one is a duplicate',
  async (t) => {
    const g = await setupGateway(t, { auth: { rateLimitMax: 6_000 } })
    const { app, jsm } = g
    const a = await g.issue('sensor', 's1')
    const b = await g.issue('sensor', 's2')
    const now = Date.now()
    const post = async (
      url: string,
      headers: Record<string, string>,
      payload: unknown,
    ): Promise<{ status: number; body: { accepted?: number; duplicates?: number } }> => {
      const res = await app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> })
      return { status: res.statusCode, body: res.json() }
    }

    // The same rid from two devices, for their own sensors.
    let r = await post('/v1/sensors/s1/readings', device(a.token), [
      { ts: now, fields: { temperature: 1 }, rid: 'r-1' },
    ])
    t.same([r.status, r.body.accepted, r.body.duplicates], [200, 1, 0], 'device A: stored')
    r = await post('/v1/sensors/s2/readings', device(b.token), [{ ts: now, fields: { temperature: 2 }, rid: 'r-1' }])
    t.same(
      [r.status, r.body.accepted, r.body.duplicates],
      [200, 1, 0],
      'device B, same rid: stored too (not a duplicate)',
    )
    r = await post('/v1/sensors/s1/readings', device(a.token), [{ ts: now, fields: { temperature: 1 }, rid: 'r-1' }])
    t.same([r.status, r.body.duplicates], [200, 1], 'device A retrying its own rid: a duplicate')
    // One batch (service key) naming two entities with the same rid: both items, neither is a duplicate of the other.
    r = await post('/v1/readings', { 'x-api-key': SVC_KEY }, [
      { kind: 'sensor', id: 's3', ts: now, fields: { temperature: 3 }, rid: 'r-9' },
      { kind: 'sensor', id: 's4', ts: now, fields: { temperature: 4 }, rid: 'r-9' },
    ])
    t.same(
      [r.status, r.body.accepted, r.body.duplicates],
      [200, 2, 0],
      'one batch, two entities, one rid: both accepted',
    )

    // The same Idempotency-Key from two credentials, no rids.
    const key = { 'idempotency-key': 'batch-1' }
    r = await post('/v1/sensors/s1/readings', { ...device(a.token), ...key }, [
      { ts: now + 1, fields: { temperature: 5 } },
    ])
    t.same([r.status, r.body.accepted, r.body.duplicates], [200, 1, 0], 'device A with key batch-1: stored')
    r = await post('/v1/sensors/s2/readings', { ...device(b.token), ...key }, [
      { ts: now + 1, fields: { temperature: 6 } },
    ])
    t.same([r.status, r.body.accepted, r.body.duplicates], [200, 1, 0], 'device B with the same key: stored too')
    r = await post('/v1/sensors/s2/readings', { ...device(b.token), ...key }, [
      { ts: now + 1, fields: { temperature: 6 } },
    ])
    t.same([r.status, r.body.duplicates], [200, 1], 'device B retrying with its key: a duplicate')

    // What TLM holds: one message per (entity, rid) and per (credential, key), nothing suppressed across clients.
    const info = await jsm.streams.info('TLM')
    const stored: string[] = []
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('TLM', { seq }).catch(() => null)
      const p = m ? parsePartitioned(m.subject) : undefined
      if (!m || !p || p.kind === '_sys') continue
      stored.push(`${p.id}:${String(m.json<{ fields: { temperature: number } }>().fields.temperature)}`)
    }
    t.same(
      stored.sort(),
      ['s1:1', 's1:5', 's2:2', 's2:6', 's3:3', 's4:4'],
      "TLM holds both devices' readings, each once",
    )
  },
)
