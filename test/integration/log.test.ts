/**
 * The one logger of every process (actors/log.ts): JSON lines on stderr with the documented fields
 * (docs/runtime.md "Logs"), levels from PITWALL_LOG_LEVEL / PITWALL_DEBUG, child bindings, refusals by name.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import { asLog, logLevel } from '../../actors/log.js'
import { distPath } from '../helpers/cluster.js'

/** Runs a few log calls in a fresh node process (the logger writes to fd 2) and returns its stderr lines. */
function run(env: Record<string, string>): Array<Record<string, unknown>> {
  const mod = pathToFileURL(distPath('actors/log.js')).href
  const script = `import { createLog } from ${JSON.stringify(mod)}
const log = createLog('worker', { site: 'a' })
log('debug', 'detail', { n: 1 })
log('info', 'partition acquired', { partition: 3, token: 12 })
log.child({ worker: 'w-1' })('warn', 'fenced', { partition: 4 })
log('error', 'failed')`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stderr
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('JSON lines with time, level name, service, pid, site, child bindings and msg', async (t) => {
  const lines = run({})
  t.same(
    lines.map((l) => l.msg),
    ['partition acquired', 'fenced', 'failed'],
    'info by default: debug dropped',
  )
  const [info, warn] = lines as [Record<string, unknown>, Record<string, unknown>]
  t.match(info, { level: 'info', service: 'worker', site: 'a', partition: 3, token: 12, msg: 'partition acquired' })
  t.type(info.pid, 'number')
  t.ok(!Number.isNaN(Date.parse(String(info.time))) && String(info.time).endsWith('Z'), 'ISO time')
  t.match(warn, { level: 'warn', worker: 'w-1', partition: 4, site: 'a' }, 'a child adds its bindings')
})

t.test('levels: PITWALL_LOG_LEVEL, PITWALL_DEBUG, refusal of an unknown level', async (t) => {
  t.same(
    run({ PITWALL_LOG_LEVEL: 'warn' }).map((l) => l.level),
    ['warn', 'error'],
  )
  t.same(
    run({ PITWALL_DEBUG: '1' }).map((l) => l.level),
    ['debug', 'info', 'warn', 'error'],
  )
  t.equal(logLevel({ PITWALL_LOG_LEVEL: 'error', PITWALL_DEBUG: '1' }), 'error', 'the explicit level wins')
  t.throws(() => logLevel({ PITWALL_LOG_LEVEL: 'verbose' }), /PITWALL_LOG_LEVEL="verbose": one of trace, debug/)
})

t.test('asLog: a plain function gets children that add their bindings', async (t) => {
  const seen: Array<[string, string, unknown]> = []
  const log = asLog((level, msg, fields) => {
    seen.push([level, msg, fields])
  })
  log('info', 'a')
  log.child({ partition: 2 }).child({ token: 5 })('warn', 'b', { x: 1 })
  t.same(seen, [
    ['info', 'a', undefined],
    ['warn', 'b', { partition: 2, token: 5, x: 1 }],
  ])
})
