/**
 * The peer-map gate opens when this site moves partitions while a worker waits at it (docs/sites.md, "Restarting
 * a site", reason `moved`). A worker that starts while the link to the peer is down waits at the gate (the peer
 * may hold a newer map). If this site then fails over (the peer is lost too), the partitions it takes must get
 * an owner: before, the worker kept waiting for a peer that no longer answered, and the site processed nothing of
 * the partitions it had just taken (seen under load with a slow link, test/integration/failover.test.ts).
 * A map that was already newer when the wait began does not open it (restart-gate.test.ts covers a site coming
 * back).
 */
import t from 'tap'
import { Kvm } from '@nats-io/kv'
import { takeOver } from '../../actors/handover.js'
import { readRecord } from '../../actors/placement.js'
import { distPath, kill, spawnWorker, type WorkerProc } from '../helpers/cluster.js'
import { freePort } from '../helpers/nats.js'
import type { CuttableProxy } from '../helpers/proxy.js'
import { awaitingPeerMap, startTwoSites } from '../helpers/two-sites.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const P = 4

t.test('a worker waiting at the gate takes the partitions its own site failed over to', async (t) => {
  const two = await startTwoSites(t, { partitions: P, tmpPrefix: 'pw-gate-moved-', proxy: true })
  const { nc, cfg, envOf, cleanups, sites } = two
  const proxy = two.proxy as CuttableProxy
  const script = distPath('cmd/worker.js')
  const metricsPort = await freePort()
  const startB = (): WorkerProc => {
    const w = spawnWorker(script, 'b-1', { ...envOf(cfg.b), PITWALL_METRICS_PORT: String(metricsPort) })
    cleanups.push(() => kill(w, 'SIGKILL'))
    return w
  }
  const workerA = spawnWorker(script, 'a-1', envOf(cfg.a))
  cleanups.push(() => kill(workerA, 'SIGKILL'))
  let workerB = startB()
  const kvB = await new Kvm(nc.b).open(cfg.b.streams.stateBucket)
  const owners = async (): Promise<Array<string | null>> =>
    await Promise.all([...Array(P).keys()].map(async (p) => (await readRecord(kvB, p))?.record.owner ?? null))
  const gauge = (): Promise<number | undefined> => awaitingPeerMap(metricsPort)
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 30_000): Promise<boolean> => {
    const deadline = Date.now() + ms
    while (!(await ok())) {
      if (Date.now() > deadline) return t.fail(`timed out waiting for ${what}`)
      await sleep(200)
    }
    return true
  }
  const homeB = cfg.b.homePartitions
  await waitFor("b's worker to own b's home partitions", async () => {
    const o = await owners()
    return homeB.every((p) => o[p] === 'b-1')
  })

  // b's worker restarts while the link is down: it waits at the gate.
  await kill(workerB, 'SIGKILL')
  proxy.split()
  workerB = startB()
  await waitFor("b's restarted worker to report the gate closed", async () => (await gauge()) === 1)
  await sleep(3_000)
  t.equal(await gauge(), 1, 'still waiting at the gate 3 s later (the peer is unreachable)')

  // Site a is lost; b fails over (as `pitwall site failover` or b's controller does).
  await Promise.all([sites.kill('a'), kill(workerA, 'SIGKILL')])
  const move = await takeOver(nc.b, cfg.b, 'test: site a lost while b waited at the gate')
  t.same(move.partitions, [...cfg.a.homePartitions], "b's map now gives it a's partitions")
  const opened = await waitFor(
    "the gate to open and b's worker to own every partition",
    async () => (await gauge()) === 0 && (await owners()).every((o) => o === 'b-1'),
    20_000,
  )
  t.ok(opened, "the gate opened (reason moved) and b's worker owns all partitions, a's included")
})
