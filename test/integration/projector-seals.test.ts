/**
 * Seals (docs/sites.md, "Split and heal"): a fence carrying a moved partition's chain tells every projector
 * which positions of the old owner's site are off the chain. Two databases stand for the two sites; each has a
 * projector per site stream (its own OUT and the peer's), and they see the streams in opposite orders, as the
 * loser (its own outputs live, the winner's after the heal) and the winner (the other way round) do.
 * Both must end with the same rows: the loser's outputs past the seal retracted or refused, the winner's and
 * the loser's valid ones kept.
 */
import t from 'tap'
import fc from 'fast-check'
import pg from 'pg'
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream'
import { nanos } from '@nats-io/transport-node'
import type { FenceBody, Output } from '../../actors/types.js'
import { outStreamSubjects } from '../../actors/subjects.js'
import { POS_SHIFT } from '../../actors/sitemap.js'
import { Projector, TABLES } from '../../projector/mod.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { createTestDb } from '../helpers/pg.js'
import { subjectOf, windowOut } from '../projector-fixtures.js'

const P = 3

function fromSite(o: Output, site: string): Output {
  return { ...o, site }
}

/** The loser `a` and the winner `b` of one partition: `a` emits positions 1..n, `b` sealed a's segment at `seal`. */
function scenario(
  n: number,
  seal: number,
  cursor: number,
  fresh: number,
): { a: Output[]; b: Output[]; expected: string[] } {
  const win = (pos: number, site: string, token: number, seq: number): Output =>
    fromSite(windowOut(`e${pos % 7}`, pos * 60_000, { seq, token, partition: P }), site)
  const a: Output[] = []
  for (let pos = 1; pos <= n; pos++) a.push(win(pos, 'a', 1, pos))
  const body: FenceBody = {
    partition: P,
    token: 3,
    owner: 'b-1',
    segments: [
      { epoch: 0, site: 'a', from: 1, to: seal },
      { epoch: 1, site: 'b', from: 1 },
    ],
  }
  const f: Output = {
    id: `_sys:fence:${P}:3`,
    type: 'fence',
    kind: '_sys',
    entity: 'fence',
    profile: '_sys',
    ts: 0,
    seq: cursor,
    site: 'b',
    partition: P,
    token: 3,
    body,
  }
  const b: Output[] = [f]
  // b replays a's segment from a's cursor to the seal (same ids, its token), then its own positions in epoch 1
  for (let pos = cursor + 1; pos <= seal; pos++) b.push(win(pos, 'b', 3, pos))
  for (let i = 1; i <= fresh; i++) b.push(win(n + i, 'b', 3, POS_SHIFT + i))
  const expected: string[] = []
  for (let pos = 1; pos <= seal; pos++) expected.push(`${pos * 60_000}|${pos <= cursor ? 'a|1' : 'b|3'}|${pos}`)
  for (let i = 1; i <= fresh; i++) expected.push(`${(n + i) * 60_000}|b|3|${POS_SHIFT + i}`)
  return { a, b, expected: expected.sort() }
}

t.test("a seal retracts the loser's rows past it and refuses later ones; both orders converge", async (t) => {
  const srv = await startNats()
  const nc = await connectTo(srv.url)
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  const projectors: Projector[] = []
  const pools: pg.Pool[] = []
  const drops: Array<() => Promise<void>> = []
  t.teardown(async () => {
    for (const p of projectors) await p.stop().catch(() => undefined)
    for (const p of pools) await p.end()
    for (const d of drops) await d()
    await nc.close()
    await srv.stop()
  })
  let run = 0
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 5, max: 60 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          seal: fc.integer({ min: 1, max: n - 1 }),
          fresh: fc.integer({ min: 0, max: 10 }),
          cursorShare: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
      ),
      async ({ n, seal, fresh, cursorShare }) => {
        run++
        const cursor = Math.floor(seal * cursorShare)
        const sc = scenario(n, seal, cursor, fresh)
        const streams = { a: `OUTA${run}`, b: `OUTB${run}` }
        for (const [site, name] of Object.entries(streams)) {
          await jsm.streams.add({
            name,
            subjects: outStreamSubjects(site),
            storage: StorageType.Memory,
            duplicate_window: nanos(1_000),
          })
        }
        const pub = async (outs: Output[]): Promise<void> => {
          for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o))
        }
        const dbs = await Promise.all([createTestDb(), createTestDb()])
        for (const d of dbs) drops.push(() => d.drop())
        const [poolLoser, poolWinner] = dbs.map((d) => new pg.Pool({ connectionString: d.url, max: 4 })) as [
          pg.Pool,
          pg.Pool,
        ]
        pools.push(poolLoser, poolWinner)
        const start = async (pool: pg.Pool, site: 'a' | 'b'): Promise<Projector> => {
          const p = new Projector({
            nc,
            pool,
            site,
            stream: streams[site],
            durable: `${pool === poolLoser ? 'loser' : 'winner'}_${site}`,
            batchMs: 2,
            batchSize: 7,
          })
          projectors.push(p)
          await p.start()
          return p
        }
        const settle = async (p: Projector, seq: number): Promise<void> => {
          for (let i = 0; i < 2_000 && p.stats().lastSeq < seq; i++) await new Promise((r) => setTimeout(r, 10))
        }
        // The loser's database sees its own outputs first, the winner's database the winner's first.
        const la = await start(poolLoser, 'a')
        const wb = await start(poolWinner, 'b')
        await pub(sc.a)
        await settle(la, sc.a.length)
        await pub(sc.b)
        await settle(wb, sc.b.length)
        const lb = await start(poolLoser, 'b')
        const wa = await start(poolWinner, 'a')
        await settle(lb, sc.b.length)
        await settle(wa, sc.a.length)
        // The loser goes on a little after its database learnt the seal: refused there too.
        const late = [n + 100, n + 101].map((pos) =>
          fromSite(windowOut('late', pos * 60_000, { seq: pos, token: 1, partition: P }), 'a'),
        )
        await pub(late)
        await settle(la, sc.a.length + late.length)
        await settle(wa, sc.a.length + late.length)
        const read = async (pool: pg.Pool): Promise<string[]> =>
          (
            await pool.query<{ k: string }>(
              `SELECT (extract(epoch FROM window_start) * 1000)::bigint || '|' || site || '|' || token || '|' || seq AS k FROM ${TABLES.windows} WHERE partition = $1`,
              [P],
            )
          ).rows
            .map((r) => r.k)
            .sort()
        const [loser, winner] = [await read(poolLoser), await read(poolWinner)]
        const seals = await poolLoser.query<{ retracted: number }>(`SELECT retracted FROM ${TABLES.seals}`)
        const ok =
          JSON.stringify(loser) === JSON.stringify(sc.expected) &&
          JSON.stringify(winner) === JSON.stringify(sc.expected) &&
          seals.rows.length === 1 &&
          seals.rows[0]?.retracted === n - seal &&
          wa.stats().rejectedStale === n - seal + late.length &&
          la.stats().rejectedStale === late.length
        if (!ok) {
          t.comment(
            JSON.stringify({
              n,
              seal,
              cursor,
              fresh,
              loser,
              winner,
              expected: sc.expected,
              seals: seals.rows,
              wa: wa.stats(),
              la: la.stats(),
            }),
          )
        }
        for (const p of [la, wb, lb, wa]) await p.stop()
        for (const name of Object.values(streams)) await jsm.streams.delete(name)
        return ok
      },
    ),
    { numRuns: 8 },
  )
  t.pass("8 random splits (positions, seal, cursor, new positions): both databases equal the winner's chain")
})
