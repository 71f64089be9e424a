/**
 * The worker job's kill_timeout against a measured drain: a real worker (dist/, the command the job runs, with
 * the environment sites/local.ts gives it) owning every partition of a real nats-server, busy with a backlog of
 * readings, gets SIGTERM; it must exit 0 (checkpointed and released) well within the kill_timeout of
 * nomad-jobs/worker.hcl, so Nomad never SIGKILLs a draining worker.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { jetstream } from '@nats-io/jetstream'
import { partitionOf, tlmSubject } from '../../actors/mod.js'
import { readJobHcl, varsFile, WORKER_DRAIN_BUDGET_S } from '../../nomad-jobs/jobs.js'
import { siteEnv, workerSpec } from '../../sites/local.js'
import { distPath } from '../helpers/cluster.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { parseJob } from '../helpers/nomad-hcl.js'
import { readFile } from 'node:fs/promises'

const P = 16

t.test('a busy worker drains on SIGTERM well within the job kill_timeout', async (t) => {
  const job = await parseJob(await readJobHcl('worker'), await readFile(varsFile('a', 'worker'), 'utf8'))
  const task = (job.TaskGroups as Array<{ Tasks: Array<{ KillTimeout: number }> }>)[0]!.Tasks[0]!
  const killTimeoutMs = task.KillTimeout / 1e6
  const nats = await startNats()
  t.teardown(() => nats.stop())
  const spec = workerSpec(
    siteEnv({ site: 'a', natsUrl: nats.url, partitions: P, pgUrl: 'postgres://unused@127.0.0.1:1/none' }),
    0,
  )
  const proc = spawn(process.execPath, [distPath(spec.script)], {
    env: { ...process.env, ...spec.env, PITWALL_METRICS_PORT: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await exited
    }
  })
  let acquired = 0
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
    acquired = (stderr.match(/partition acquired/g) ?? []).length
  })
  const deadline = Date.now() + 30_000
  while (acquired < P && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 100))
  t.equal(acquired, P, 'the worker owns every partition', { stderr: stderr.slice(-2000) })

  // A backlog: 20,000 readings of 500 sensors, published as fast as JetStream acks them.
  const nc = await connectTo(nats.url)
  t.teardown(() => nc.close())
  const js = jetstream(nc)
  const now = Date.now()
  // In batches of 1,000 with a generous ack timeout: 20,000 requests at once timed out on a loaded machine (CI).
  for (let b = 0; b < 20_000; b += 1_000) {
    const acks: Array<Promise<unknown>> = []
    for (let i = b; i < b + 1_000; i++) {
      const id = `env-${i % 500}`
      acks.push(
        js.publish(
          tlmSubject('a', partitionOf('sensor', id, P), 'sensor', id),
          JSON.stringify({ ts: now + i, fields: { temperature: 20 + (i % 7) } }),
          { timeout: 30_000 },
        ),
      )
    }
    await Promise.all(acks)
  }
  const t0 = Date.now()
  proc.kill('SIGTERM')
  const code = await exited
  const drainMs = Date.now() - t0
  t.equal(code, 0, 'drained and exited 0')
  t.match(stderr, /worker stopped/, 'logged the end of its drain')
  t.ok(drainMs < WORKER_DRAIN_BUDGET_S * 1000, `drain took ${drainMs} ms, within the ${WORKER_DRAIN_BUDGET_S} s budget`)
  t.ok(killTimeoutMs >= WORKER_DRAIN_BUDGET_S * 1000, `kill_timeout ${killTimeoutMs} ms >= budget`)
  t.comment(`worker drain with a 20,000-reading backlog: ${drainMs} ms (kill_timeout ${killTimeoutMs} ms)`)
})
