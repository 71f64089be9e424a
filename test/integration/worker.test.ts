import t from 'tap'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { compileConfig, optionsFromEnv } from '../../actors/config.js'
import { QueryError } from '../../actors/errors.js'
import { provision } from '../../actors/provision.js'
import { queryEntity } from '../../actors/query.js'
import { buildProfiles } from '../../actors/runtime.js'
import { Worker } from '../../actors/worker.js'
import { partitionOf, snapshotKey, tlmSubject } from '../../actors/subjects.js'
import { ActorCell, type SnapshotRecord } from '../../actors/cell.js'
import { POS_SHIFT } from '../../actors/sitemap.js'
import type { PartitionRecord } from '../../actors/placement.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { makeTrace, readOutputs, readStream, referenceSum } from '../helpers/trace.js'
import { sumProfile } from '../fixtures/sum-profile.js'

const quiet = (): void => undefined

t.test('one worker processes a trace; outputs equal the reference', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 8,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'w1',
  })
  const w = new Worker({ cfg, profiles: [sumProfile], log: quiet })
  await w.start()
  t.teardown(() => w.stop())
  const js = jetstream(nc)
  const trace = makeTrace(7, 5000, 50)
  await Promise.all(
    trace.map((r) =>
      js.publish(
        tlmSubject('a', partitionOf(r.kind, r.id, 8), r.kind, r.id),
        JSON.stringify({ ts: r.ts, fields: { v: r.v }, profile: 'testsum' }),
        { msgID: r.rid },
      ),
    ),
  )
  const unique = trace.filter((r) => !r.dup).length
  for (let i = 0; i < 200 && w.stats.processed < unique; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(w.stats.processed, unique, 'every unique reading processed once')
  t.same(w.owned(), [0, 1, 2, 3, 4, 5, 6, 7])
  await new Promise((r) => setTimeout(r, 400))
  const jsm = await jetstreamManager(nc)
  const ref = referenceSum(await readStream(jsm, 'TLM'), 10_000, 5_000)
  const { accepted, stale, conflicts } = await readOutputs(nc, 'OUT')
  t.equal(stale, 0)
  t.equal(conflicts, 0)
  const windows = [...accepted.values()].filter((o) => o.type === 'window')
  t.equal(windows.length, ref.windows.size, 'window count')
  let mismatch = 0
  for (const o of windows) {
    const r = ref.windows.get(o.id)
    const b = o.body as unknown as { fields: { v: { count: number; sum: number } } }
    if (!r || r.count !== b.fields.v.count || r.sum !== b.fields.v.sum) mismatch++
  }
  t.equal(mismatch, 0, 'every window equals the reference')
  t.equal([...accepted.values()].filter((o) => o.type === 'late').length, ref.late.size, 'late outputs')
  // live query answered by the owner
  const res = await nc.request(`pw.a.q.${partitionOf('sensor', 's3', 8)}`, JSON.stringify({ kind: 'sensor', id: 's3' }))
  const body = res.json<{ source: string; state: { total: number } }>()
  t.equal(body.source, 'live')
  t.ok(body.state.total > 0)
})

t.test('live state query: owner answers, typed errors cross the wire, snapshot when no owner', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 4,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'q1',
  })
  const w = new Worker({ cfg, profiles: [sumProfile], log: quiet })
  await w.start()
  const js = jetstream(nc)
  for (let i = 0; i < 20; i++) {
    await js.publish(
      tlmSubject('a', partitionOf('sensor', 'qs', 4), 'sensor', 'qs'),
      JSON.stringify({ ts: 1_700_000_000_000 + i * 1000, fields: { v: i }, profile: 'testsum' }),
    )
  }
  for (let i = 0; i < 100 && w.stats.processed < 20; i++) await new Promise((r) => setTimeout(r, 50))
  const { state: kv } = await provision(nc, await jetstreamManager(nc), cfg)
  const deps = { nc, kv, cfg, profiles: buildProfiles([sumProfile], cfg) }
  const live = await queryEntity(deps, 'sensor', 'qs')
  t.equal(live.source, 'live')
  t.same(live.state, { total: 20, late: 0, open: 1, vsum: 190 })
  const err = await queryEntity(deps, 'sensor', 'nobody').catch((e: unknown) => e)
  t.type(err, QueryError)
  t.equal((err as QueryError).code, 'PW_ENTITY_UNKNOWN', 'typed error from the owner')
  await w.stop()
  const snap = await queryEntity(deps, 'sensor', 'qs', 200)
  t.equal(snap.source, 'snapshot', 'no owner: answered from the snapshot')
  t.same(snap.state, { total: 20, late: 0, open: 1, vsum: 190 })
  const err2 = await queryEntity(deps, 'vehicle', 'nobody', 200).catch((e: unknown) => e)
  t.equal((err2 as QueryError).code, 'PW_ENTITY_UNKNOWN')
  // Two sites: the peer's mirrored snapshot wins when it is further along the chain (the peer owns the partition now).
  const key = snapshotKey(partitionOf('sensor', 'qs', 4), 'sensor', 'qs')
  const ownSnap = JSON.parse(new TextDecoder().decode((await kv.get(key))?.value)) as SnapshotRecord
  const entry = buildProfiles([sumProfile], cfg).get('testsum')
  if (!entry) throw new Error('no testsum profile')
  const moved = new ActorCell(entry.def, entry.config, { kind: 'sensor', id: 'qs' }, ownSnap)
  for (let i = 0; i < 5; i++)
    moved.applyReading(
      POS_SHIFT + 1 + i,
      Date.now(),
      { ts: 1_700_000_020_000 + i * 1000, fields: { v: 1 }, profile: 'testsum' },
      () => undefined,
    )
  const peerSnap = new TextEncoder().encode(JSON.stringify(moved.snapshot(3)))
  const viaPeer = await queryEntity(
    { ...deps, siteFor: () => 'b', peerSnapshot: async () => peerSnap },
    'sensor',
    'qs',
    200,
  )
  t.equal((viaPeer.state as { total: number }).total, 25, "the peer's snapshot, further along the chain, answers")
  const behind = new TextEncoder().encode(JSON.stringify({ ...ownSnap, lastSeq: 3 }))
  const viaOwn = await queryEntity(
    { ...deps, siteFor: () => 'b', peerSnapshot: async () => behind },
    'sensor',
    'qs',
    200,
  )
  t.equal((viaOwn.state as { total: number }).total, 20, "our own snapshot when the peer's is behind")
  const onlyPeer = await queryEntity(
    {
      ...deps,
      siteFor: () => 'b',
      peerSnapshot: async (k) =>
        k === snapshotKey(partitionOf('sensor', 'elsewhere', 4), 'sensor', 'elsewhere') ? peerSnap : undefined,
    },
    'sensor',
    'elsewhere',
    200,
  )
  t.equal(onlyPeer.source, 'snapshot', 'an entity only the peer has is answered from its snapshot')
})

t.test('bad configuration fails fast naming the setting', async (t) => {
  t.throws(() => compileConfig({ partitions: 0 }), { code: 'PW_CONFIG_INVALID', message: /partitions/ })
  t.throws(() => compileConfig({ site: 'A B' }), { message: /site/ })
  t.throws(() => compileConfig({ heartbeatMs: 4000, leaseTtlMs: 5000 }), { message: /heartbeatMs/ })
  t.throws(() => optionsFromEnv({ PITWALL_PARTITIONS: 'x' }), { message: /PITWALL_PARTITIONS/ })
  const unreachable = new Worker({
    cfg: compileConfig({ natsUrl: 'nats://127.0.0.1:1' }),
    profiles: [sumProfile],
    log: quiet,
  })
  await t.rejects(unreachable.start(), { code: 'PW_NATS_UNREACHABLE', message: /PITWALL_NATS_URL/ })
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const missing = new Worker({
    cfg: compileConfig({ natsUrl: srv.url }),
    profiles: [sumProfile],
    provision: false,
    log: quiet,
  })
  await t.rejects(missing.start(), { code: 'PW_STREAM_MISSING', message: /TLM/ })
  await provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, partitions: 8 }))
  const wrongP = new Worker({
    cfg: compileConfig({ natsUrl: srv.url, partitions: 16 }),
    profiles: [sumProfile],
    provision: false,
    log: quiet,
  })
  await t.rejects(wrongP.start(), { code: 'PW_STREAM_INCOMPATIBLE', message: /partitions=8.*partitions=16/ })
  await t.rejects(provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, partitions: 16 })), {
    code: 'PW_STREAM_INCOMPATIBLE',
  })
  await t.resolves(
    provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, partitions: 8 })),
    'provisioning is idempotent',
  )
})

t.test(
  'entrypoints fail fast with the setting named: unreachable NATS, unreachable PostgreSQL, missing PG URL',
  async (t) => {
    const { spawnSync } = await import('node:child_process')
    const { distPath } = await import('../helpers/cluster.js')
    const run = (script: string, env: Record<string, string>): { status: number | null; err: string } => {
      const r = spawnSync(process.execPath, [distPath(script)], { env: { ...process.env, ...env }, timeout: 20_000 })
      return { status: r.status, err: r.stderr.toString() }
    }
    const w = run('cmd/worker.js', { PITWALL_NATS_URL: 'nats://127.0.0.1:1' })
    t.equal(w.status, 2)
    t.match(w.err, /PW_NATS_UNREACHABLE/)
    t.match(w.err, /PITWALL_NATS_URL/)
    const bad = run('cmd/worker.js', { PITWALL_PARTITIONS: 'sixteen' })
    t.equal(bad.status, 2)
    t.match(bad.err, /PW_CONFIG_INVALID/)
    t.match(bad.err, /PITWALL_PARTITIONS/)
    const srv = await startNats()
    t.teardown(() => srv.stop())
    const p = run('cmd/projector.js', {
      PITWALL_NATS_URL: srv.url,
      PITWALL_PG_URL: 'postgres://postgres@127.0.0.1:1/nope',
    })
    t.equal(p.status, 2)
    t.match(p.err, /PW_PG_UNREACHABLE/)
    t.match(p.err, /PITWALL_PG_URL/)
    const noUrl = run('cmd/projector.js', { PITWALL_NATS_URL: srv.url, PITWALL_PG_URL: '' })
    t.match(noUrl.err, /PITWALL_PG_URL/)
  },
)

t.test('bad messages in the log are counted and skipped; good readings beside them are processed', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 2,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'bad1',
  })
  const w = new Worker({ cfg, profiles: [sumProfile], log: quiet })
  await w.start()
  t.teardown(() => w.stop())
  const js = jetstream(nc)
  const subj = (id: string): string => tlmSubject('a', partitionOf('sensor', id, 2), 'sensor', id)
  const bad = [
    '{not json',
    '{"fields":{"v":1}}',
    '{"ts":"soon","fields":{}}',
    '{"ts":1700000000000}',
    '{"ts":1700000000000,"fields":{},"profile":"nope"}',
    'null',
  ]
  let good = 0
  for (let i = 0; i < 30; i++) {
    await js.publish(
      subj(`g${i % 3}`),
      JSON.stringify({ ts: 1_700_000_000_000 + i * 1000, fields: { v: i }, profile: 'testsum' }),
    )
    good++
    const b = bad[i % bad.length] as string
    await js.publish(subj(`b${i % 3}`), b)
  }
  await js.publish(`tlm.a.0.lorry.x1`, '{"ts":1,"fields":{}}')
  for (let i = 0; i < 100 && w.stats.processed + w.stats.invalid < good + 31; i++)
    await new Promise((r) => setTimeout(r, 50))
  t.equal(w.stats.processed, good, 'every good reading processed')
  t.equal(w.stats.invalid, 31, 'every bad message counted as invalid')
})

t.test('every registered profile runs in a worker and answers live queries', async (t) => {
  const { PROFILES } = await import('../../actors/kinds/registry.js')
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileConfig({
    natsUrl: srv.url,
    partitions: 4,
    heartbeatMs: 100,
    leaseTtlMs: 1000,
    checkpointIntervalMs: 200,
    workerId: 'reg1',
  })
  const w = new Worker({ cfg, profiles: PROFILES, log: quiet })
  await w.start()
  t.teardown(() => w.stop())
  const js = jetstream(nc)
  const t0 = 1_700_000_000_000
  const samples: Record<
    string,
    { kind: 'sensor' | 'vehicle'; fields: (i: number) => Record<string, number | string | boolean> }
  > = {
    environment: {
      kind: 'sensor',
      fields: (i) => ({ temperature: 20 + i, humidity: 40, co2: 500, battery: 90, status: 'ok' }),
    },
    asset: { kind: 'sensor', fields: (i) => ({ vibration: 2 + i * 0.01, temperature: 45, pressure: 5, flow: 10 }) },
    process: {
      kind: 'sensor',
      fields: (i) => ({ value: 300 + i, flow: 2000, temp: 15, type: 'cod', stage: 'biological' }),
    },
    // A redundant pair's actor: both probes' readings, each naming its member (docs/profiles.md, redundant pairs).
    'process-pair': {
      kind: 'sensor',
      fields: (i) => ({ member: i % 2 === 0 ? 'p-01a' : 'p-01b', value: 7 + (i % 3) * 0.01 }),
    },
    race: {
      kind: 'vehicle',
      fields: (i) => ({
        speed: 250,
        rpm: 11000,
        lap: 1,
        brake_temp_fl: 500,
        tyre_temp_fl: 100,
        tyre_wear: 10,
        fuel: 90,
        oil_pressure: 4.5,
        brake: 0,
        pit: false,
        lap_distance: i * 80,
      }),
    },
    road: {
      kind: 'vehicle',
      fields: (i) => ({ lat: 48.85 + i * 0.0005, lon: 2.35, speed: 40, coolant_temp: 90, fuel_level: 50, dtc: '' }),
    },
  }
  t.same(Object.keys(samples).sort(), PROFILES.map((p) => p.profile).sort(), 'the test covers every registered profile')
  let sent = 0
  for (const def of PROFILES) {
    const s = samples[def.profile]
    if (!s) continue
    const id = `reg-${def.profile}`
    for (let i = 0; i < 20; i++) {
      await js.publish(
        tlmSubject('a', partitionOf(s.kind, id, 4), s.kind, id),
        JSON.stringify({ ts: t0 + i * 1000, fields: s.fields(i), profile: def.profile }),
      )
      sent++
    }
  }
  for (let i = 0; i < 100 && w.stats.processed < sent; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(w.stats.processed, sent)
  t.equal(w.stats.invalid, 0)
  const { state: kv } = await provision(nc, await jetstreamManager(nc), cfg)
  const deps = { nc, kv, cfg, profiles: buildProfiles(PROFILES, cfg) }
  for (const def of PROFILES) {
    const s = samples[def.profile]
    if (!s) continue
    const live = await queryEntity(deps, s.kind, `reg-${def.profile}`)
    t.equal(live.source, 'live', `${def.profile}: live`)
    t.equal(live.profile, def.profile)
    t.ok(live.state, `${def.profile}: has a live view`)
  }
})

t.test(
  'checkpoints rarer than the lease TTL: heartbeats renew the lease alone, the cursor moves at checkpoints',
  async (t) => {
    const srv = await startNats()
    t.teardown(() => srv.stop())
    const nc = await connectTo(srv.url)
    t.teardown(() => nc.close())
    // A checkpoint every 2.5 s with a 1 s lease: only the heartbeat's renewals keep the partitions.
    const cfg = compileConfig({
      natsUrl: srv.url,
      partitions: 2,
      heartbeatMs: 100,
      leaseTtlMs: 1000,
      checkpointIntervalMs: 2500,
      workerId: 'rare1',
    })
    const w = new Worker({ cfg, profiles: [sumProfile], log: quiet })
    await w.start()
    t.teardown(() => w.stop())
    const js = jetstream(nc)
    const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
    const record = async (p: number): Promise<PartitionRecord> =>
      (await kv.get(`part.${p}`))?.json<PartitionRecord>() as PartitionRecord
    const trace = makeTrace(11, 400, 20)
    await Promise.all(
      trace.map((r) =>
        js.publish(
          tlmSubject('a', partitionOf(r.kind, r.id, 2), r.kind, r.id),
          JSON.stringify({ ts: r.ts, fields: { v: r.v }, profile: 'testsum' }),
          { msgID: r.rid },
        ),
      ),
    )
    const unique = trace.filter((r) => !r.dup).length
    for (let i = 0; i < 100 && w.stats.processed < unique; i++) await new Promise((r) => setTimeout(r, 50))
    t.equal(w.stats.processed, unique)
    const before = await record(0)
    t.equal(before.owner, 'rare1')
    // Three lease TTLs later: still ours, renewed by heartbeats, with no other token.
    const seen: number[] = []
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500))
      const rec = await record(0)
      t.equal(rec.owner, 'rare1', 'still the owner')
      t.equal(rec.token, before.token, 'no new tenure')
      t.ok(Date.now() - rec.renewedAt < cfg.leaseTtlMs, 'renewed within the TTL')
      seen.push(rec.cursor)
    }
    t.same(w.owned(), [0, 1])
    t.ok(seen[seen.length - 1]! > 0, 'a checkpoint recorded a cursor')
    t.ok(new Set(seen).size <= 3, `the cursor moved at checkpoints only (${seen.join(',')})`)
  },
)
