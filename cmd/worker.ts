/**
 * Worker entrypoint (`node dist/cmd/worker.js`; the same command the local launcher and the Nomad job
 * run). Configuration from PITWALL_* environment variables (docs/configuration.md). SIGTERM/SIGINT: drain,
 * checkpoint and release every partition, then exit 0. The body is cmd/worker-process.ts, which the crash tests'
 * worker processes run too.
 */
import { createLog, PROFILES, setProcessTitle } from '../actors/mod.js'
import { runWorkerProcess } from './worker-process.js'

setProcessTitle('worker')
await runWorkerProcess({ profiles: PROFILES, log: createLog('worker', { site: process.env.PITWALL_SITE ?? 'a' }) })
