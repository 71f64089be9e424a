/** Process titles (README, Operations): `ps` tells one site's processes from the other's. */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { setProcessTitle } from '../../actors/mod.js'

t.test('a process names itself pitwall:<site>:<service>[:<worker id>]', async (t) => {
  t.equal(setProcessTitle('projector', { PITWALL_SITE: 'b' }), 'pitwall:b:projector')
  t.equal(setProcessTitle('controller', { PITWALL_SITE: 'a', PITWALL_WORKER_ID: 'x' }), 'pitwall:a:controller')
  const title = setProcessTitle('worker', { PITWALL_SITE: 'a', PITWALL_WORKER_ID: 'a-worker-1' })
  t.equal(title, 'pitwall:a:worker:a-worker-1')
  t.equal(process.title, title)
  // What ps reads on Linux.
  const cmdline = readFileSync('/proc/self/cmdline', 'utf8').split('\0')[0]
  t.equal(cmdline, title)
})
