/**
 * Deployment identity (issue 13 part 4), against a real nats-server and PostgreSQL: two projectors writing to
 * two databases from one OUT stream each get every output on a consumer of their own (the second no longer
 * deletes and recreates the first one's); a worker, projector, gateway or site-controller check of another
 * deployment fails at start with PW_DEPLOYMENT_MISMATCH naming PITWALL_DEPLOYMENT, the recorded and the given
 * name; the same deployment restarts; streams from before deployments are accepted, then claimed.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import pg from 'pg'
import { jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { compileConfig, optionsFromEnv } from '../../actors/config.js'
import { checkDeployment, DEPLOYMENT_KEY, deploymentFromDescription, readDeployment } from '../../actors/deployment.js'
import { ConfigError, DeploymentMismatchError } from '../../actors/errors.js'
import { consumerName, databaseId, Projector, TABLES } from '../../projector/mod.js'
import { provision } from '../../actors/provision.js'
import { Worker } from '../../actors/worker.js'
import { outStreamSubjects } from '../../actors/subjects.js'
import type { Output } from '../../actors/types.js'
import { SiteController } from '../../sites/controller.js'
import { distPath } from '../helpers/cluster.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { adminUrl, createTestDb } from '../helpers/pg.js'
import { fence, subjectOf, T0, windowOut } from '../projector-fixtures.js'
import { sumProfile } from '../fixtures/sum-profile.js'

const quiet = (): void => undefined
const silent = quiet
const MISMATCH = 'PW_DEPLOYMENT_MISMATCH'

async function consumers(jsm: JetStreamManager, stream: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const c of await jsm.consumers.list(stream).next()) out.set(c.name, c.created)
  return out
}

function outputs(from: number, n: number): Output[] {
  return Array.from({ length: n }, (_, i) =>
    windowOut(`s${(from + i) % 7}`, T0 + (from + i) * 60_000, { seq: from + i + 1 }),
  )
}

t.test('two projectors into two databases on one OUT stream: every output in both, separate consumers', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const cfg = compileConfig({ natsUrl: srv.url, partitions: 4, deployment: 'alpha' })
  await provision(nc, jsm, cfg)
  const dbs = [await createTestDb(), await createTestDb()]
  const pools = dbs.map((db) => new pg.Pool({ connectionString: db.url, max: 4 }))
  const running = new Set<Projector>()
  t.teardown(async () => {
    for (const p of running) await p.stop()
    for (const p of pools) await p.end()
    for (const db of dbs) await db.drop()
  })
  const start = async (i: number): Promise<Projector> => {
    const p = new Projector({
      nc,
      pool: pools[i] as pg.Pool,
      deployment: 'alpha',
      site: 'a',
      stream: 'OUT',
      batchMs: 5,
      log: silent,
    })
    await p.start()
    running.add(p)
    return p
  }
  const stop = async (p: Projector): Promise<void> => {
    await p.stop()
    running.delete(p)
  }
  const publish = async (outs: Output[]): Promise<void> => {
    for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o))
  }
  const windowRows = async (i: number): Promise<number> =>
    Number((await (pools[i] as pg.Pool).query(`SELECT count(*) AS n FROM ${TABLES.windows}`)).rows[0].n)

  t.same([...(await consumers(jsm, 'OUT')).keys()], [], 'before: no consumer on OUT')
  await publish([fence(0, 1), ...outputs(0, 200)])
  const p1 = await start(0)
  const before = await consumers(jsm, 'OUT')
  t.equal(before.size, 1, 'the first projector has one consumer')
  const name1 = p1.consumer()
  t.match(name1, /^projector_alpha_[0-9a-f]{10}$/, 'named <durable>_<deployment>_<dbid>')
  t.ok(before.has(name1))
  await p1.caughtUp()

  const p2 = await start(1)
  const name2 = p2.consumer()
  t.not(name2, name1, 'the second database gets its own consumer')
  const after = await consumers(jsm, 'OUT')
  t.same([...after.keys()].sort(), [name1, name2].sort(), 'after: two consumers, one per database')
  t.equal(after.get(name1), before.get(name1), "the first projector's consumer was not deleted and recreated")
  await publish(outputs(200, 100))
  await p1.caughtUp()
  await p2.caughtUp()
  t.equal(await windowRows(0), 300, 'database 1 holds every output')
  t.equal(await windowRows(1), 300, 'database 2 holds every output')
  t.equal(p1.stats().lastSeq, p2.stats().lastSeq, 'both cursors at the end of the stream')

  // Restarts keep the names; the other projector's consumer is left alone.
  await stop(p1)
  const p1b = await start(0)
  t.equal(p1b.consumer(), name1, 'restarted: same consumer name')
  t.equal(
    (await consumers(jsm, 'OUT')).get(name2),
    after.get(name2),
    "the restart did not touch the other database's consumer",
  )
  await publish(outputs(300, 50))
  await p1b.caughtUp()
  await p2.caughtUp()
  t.equal(await windowRows(0), 350)
  t.equal(await windowRows(1), 350)
  t.same(p1b.stats().duplicates, 0, 'the restarted projector resumed at its cursor')

  // The dbid is PostgreSQL's own identity of the database, stable across connections.
  const id = (
    await (pools[0] as pg.Pool).query(
      'SELECT system_identifier::text AS s, current_database() AS d FROM pg_control_system()',
    )
  ).rows[0] as { s: string; d: string }
  t.equal(name1, consumerName('projector', 'alpha', databaseId(id.s, id.d)))
  const rec = await (pools[1] as pg.Pool).query(`SELECT deployment FROM ${TABLES.identity}`)
  t.same(rec.rows, [{ deployment: 'alpha' }], 'the database records its deployment')
})

t.test('Projector.stop() right after start() returns promptly', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  await provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, partitions: 4 }))
  const db = await createTestDb()
  t.teardown(() => db.drop())
  for (const wait of [0, 50]) {
    const p = new Projector({ nc, pgUrl: db.url, site: 'a', log: silent })
    await p.start()
    if (wait) await new Promise((r) => setTimeout(r, wait))
    const t0 = Date.now()
    await p.stop()
    const ms = Date.now() - t0
    t.ok(ms < 1_000, `stop ${wait} ms after start took ${ms} ms (a fetch long-polls for 5 s)`)
    t.equal(await p.closed(), undefined, 'stopped without a failure')
  }
})

t.test(
  'another deployment fails fast at start with PW_DEPLOYMENT_MISMATCH naming the setting; the same one restarts',
  async (t) => {
    const srv = await startNats()
    t.teardown(() => srv.stop())
    const nc = await connectTo(srv.url)
    t.teardown(() => nc.close())
    const jsm = await jetstreamManager(nc)
    const base = { natsUrl: srv.url, partitions: 4, heartbeatMs: 100, leaseTtlMs: 1000, checkpointIntervalMs: 200 }
    const alpha = compileConfig({ ...base, deployment: 'alpha', workerId: 'alpha-1' })
    const beta = compileConfig({ ...base, deployment: 'beta', workerId: 'beta-1' })

    const w = new Worker({ cfg: alpha, profiles: [sumProfile], log: quiet })
    await w.start()
    await w.stop()
    const kv = await new Kvm(nc).open(alpha.streams.stateBucket)
    t.match(
      await readDeployment(kv),
      { deployment: 'alpha', site: 'a' },
      `the state bucket's ${DEPLOYMENT_KEY} key records the deployment`,
    )
    for (const s of ['TLM', 'OUT'])
      t.equal(
        deploymentFromDescription((await jsm.streams.info(s)).config.description),
        'alpha',
        `${s} description records it`,
      )

    const expectMismatch = async (what: string, p: Promise<unknown>): Promise<void> => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      )
      t.type(err, DeploymentMismatchError, `${what}: a DeploymentMismatchError`)
      t.type(err, ConfigError, `${what}: a ConfigError`)
      t.match(
        err,
        { code: MISMATCH, setting: 'PITWALL_DEPLOYMENT', recorded: 'alpha', given: 'beta' },
        `${what}: coded`,
      )
      t.match(
        (err as Error).message,
        /^PITWALL_DEPLOYMENT: is "beta", but .* belongs to deployment "alpha"/,
        `${what}: names the setting, the given and the recorded name`,
      )
    }
    await expectMismatch(
      'worker that provisions',
      new Worker({ cfg: beta, profiles: [sumProfile], log: quiet }).start(),
    )
    await expectMismatch(
      'worker that only verifies',
      new Worker({ cfg: beta, profiles: [sumProfile], provision: false, log: quiet }).start(),
    )
    await expectMismatch('provisioning', provision(nc, jsm, beta))
    await expectMismatch('gateway check', checkDeployment(nc, jsm, beta))
    const betaTwoSites = compileConfig({ ...base, deployment: 'beta', peer: { site: 'b' }, homePartitions: [0, 1] })
    await expectMismatch('site controller', new SiteController({ nc, cfg: betaTwoSites }).start())
    t.match(await readDeployment(kv), { deployment: 'alpha' }, 'the refused deployment recorded nothing')

    const db = await createTestDb()
    t.teardown(() => db.drop())
    const onStream = new Projector({ nc, pgUrl: db.url, deployment: 'beta', site: 'a', log: silent })
    await expectMismatch('projector on the stream', onStream.start())
    await onStream.stop()
    // The database, once claimed by alpha, refuses beta even on a stream that records nothing.
    const pa = new Projector({ nc, pgUrl: db.url, deployment: 'alpha', site: 'a', log: silent })
    await pa.start()
    await pa.stop()
    await jsm.streams.add({ name: 'OUT_LEGACY', subjects: ['legacy.>'], storage: StorageType.Memory })
    const pb = new Projector({ nc, pgUrl: db.url, deployment: 'beta', site: 'a', stream: 'OUT_LEGACY', log: silent })
    const dbErr = await pb.start().then(
      () => undefined,
      (e: unknown) => e,
    )
    t.match(
      dbErr,
      {
        code: MISMATCH,
        recorded: 'alpha',
        given: 'beta',
        message: /PostgreSQL database pw_test_\w+ \(table projector_identity\)/,
      },
      'the database names its deployment',
    )
    await pb.stop()

    const again = new Worker({
      cfg: compileConfig({ ...base, deployment: 'alpha', workerId: 'alpha-2' }),
      profiles: [sumProfile],
      log: quiet,
    })
    await t.resolves(again.start(), 'the same deployment restarts')
    await again.stop()
    t.equal(await checkDeployment(nc, jsm, alpha), 'alpha')

    // The entrypoints exit 2 with the code and the setting in their log line.
    const env = { PITWALL_NATS_URL: srv.url, PITWALL_PARTITIONS: '4', PITWALL_DEPLOYMENT: 'beta' }
    const run = (script: string, extra: Record<string, string>): { status: number | null; err: string } => {
      const r = spawnSync(process.execPath, [distPath(script)], {
        env: { ...process.env, ...env, ...extra },
        timeout: 20_000,
      })
      return { status: r.status, err: r.stderr.toString() }
    }
    for (const [script, extra] of [
      ['cmd/worker.js', {}],
      ['cmd/projector.js', { PITWALL_PG_URL: db.url }],
      ['cmd/gateway.js', { PITWALL_GATEWAY_AUTH: 'off', PITWALL_GATEWAY_PORT: '0' }],
    ] as const) {
      const r = run(script, extra)
      t.equal(r.status, 2, `${script} exits 2`)
      t.match(r.err, MISMATCH, `${script}: ${MISMATCH}`)
      t.match(r.err, /PITWALL_DEPLOYMENT/, `${script}: names the setting`)
    }
  },
)

t.test('two deployments provisioning one NATS at once: exactly one wins', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const names = ['alpha', 'beta', 'gamma']
  const results = await Promise.allSettled(
    names.map((d) => provision(nc, jsm, compileConfig({ natsUrl: srv.url, partitions: 4, deployment: d }))),
  )
  const won = names.filter((_, i) => results[i]?.status === 'fulfilled')
  t.equal(won.length, 1, `one deployment claimed the assets (${won.join(', ')})`)
  for (const r of results)
    if (r.status === 'rejected') t.match(r.reason, { code: MISMATCH }, 'the others are refused with the coded error')
  t.match(await readDeployment(await new Kvm(nc).open('pw_state')), { deployment: won[0] })
})

t.test('assets from before deployments: accepted unclaimed, then claimed by the next provisioning', async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const alpha = compileConfig({ natsUrl: srv.url, partitions: 4, deployment: 'alpha' })
  await provision(nc, jsm, alpha)
  // What an older build left: descriptions without deployment=, no identity key.
  for (const s of ['TLM', 'OUT']) {
    const info = await jsm.streams.info(s)
    await jsm.streams.update(s, {
      ...info.config,
      description: (info.config.description ?? '').replace(/ deployment=\S+/, ''),
    })
  }
  await (await new Kvm(nc).open('pw_state')).purge(DEPLOYMENT_KEY)
  t.equal(
    await checkDeployment(nc, jsm, compileConfig({ natsUrl: srv.url, deployment: 'beta' })),
    undefined,
    'unclaimed: any deployment passes the check',
  )
  t.equal(
    await checkDeployment(
      nc,
      jsm,
      compileConfig({ natsUrl: srv.url, deployment: 'beta', streams: { stateBucket: 'none' } }),
    ),
    undefined,
    'a missing bucket is not a mismatch',
  )
  await provision(nc, jsm, alpha)
  for (const s of ['TLM', 'OUT']) {
    const desc = (await jsm.streams.info(s)).config.description ?? ''
    t.match(desc, /^pitwall .* partitions=4 deployment=alpha$/, `${s}: claimed in place`)
  }
  await t.rejects(checkDeployment(nc, jsm, compileConfig({ natsUrl: srv.url, deployment: 'beta' })), { code: MISMATCH })
  t.equal(await checkDeployment(nc, jsm, alpha), 'alpha')
  const plain = await jsm.streams.add({ name: 'PLAIN', subjects: outStreamSubjects('zz'), storage: StorageType.Memory })
  t.equal(deploymentFromDescription(plain.config.description), undefined)
})

t.test('PITWALL_DEPLOYMENT: read from the environment, validated, default for existing setups', async (t) => {
  t.equal(
    compileConfig({}).deployment,
    'default',
    'unset: default (npm start and single-deployment setups keep working)',
  )
  t.equal(compileConfig(optionsFromEnv({ PITWALL_DEPLOYMENT: 'plant-7' })).deployment, 'plant-7')
  for (const bad of ['Plant', 'a_b', 'a.b', '-a', 'a-', '', 'x'.repeat(33)]) {
    t.throws(
      () => compileConfig({ deployment: bad }),
      { code: 'PW_CONFIG_INVALID', message: /PITWALL_DEPLOYMENT/ },
      `refused: ${JSON.stringify(bad)}`,
    )
  }
  t.throws(() => new Projector({ nc: undefined as never, pgUrl: adminUrl(), site: 'a', deployment: 'No' }), {
    code: 'PW_CONFIG_INVALID',
    message: /PITWALL_DEPLOYMENT/,
  })
  t.equal(deploymentFromDescription('pitwall readings site=a partitions=16 deployment=x-1'), 'x-1')
  t.equal(deploymentFromDescription('pitwall readings site=a partitions=16'), undefined)
})
