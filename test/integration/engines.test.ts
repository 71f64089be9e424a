/**
 * package.json's engines.node is true and enforced (issue 16): every locked dependency accepts the lowest version
 * of each part of the range, and `node .ci/ensure.mjs` (prestart/pretest/prebench and CI) stops with the fix on a
 * Node.js outside it and passes inside it.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import t from 'tap'

const root = join(import.meta.dirname, '..', '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[] }>
}
const range = pkg.engines.node

t.test('every locked package accepts the lowest version of each part of engines.node', async (t) => {
  const lows = range.split('||').map((part) => semver.minVersion(part)?.version ?? '')
  t.same(lows, ['20.19.0', '22.13.0', '24.0.0'])
  t.equal(readFileSync(join(root, '.npmrc'), 'utf8').includes('engine-strict=true'), true, '.npmrc: engine-strict')
  const refused: string[] = []
  for (const [name, entry] of Object.entries(lock.packages)) {
    const need = !Array.isArray(entry.engines) ? entry.engines?.node : undefined
    if (!name || !need) continue
    for (const v of lows) if (!semver.satisfies(v, need)) refused.push(`${name} needs ${need}, refuses ${v}`)
  }
  t.same(refused, [], 'no locked package refuses a version the range admits')
  t.ok(semver.satisfies(process.versions.node, range), `this Node.js (${process.versions.node}) is in the range`)
})

t.test('ensure.mjs stops outside the range with the fix, and passes inside it', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['18.19.0', false],
    ['20.18.1', false],
    ['20.19.0', true],
    ['22.12.0', false],
    ['22.13.0', true],
    ['23.11.0', false],
    ['24.0.0', true],
    ['25.2.1', true],
  ]
  for (const [version, ok] of cases) {
    t.equal(semver.satisfies(version, range), ok, `${version}: semver agrees`)
    const r = spawnSync(process.execPath, ['.ci/ensure.mjs', 'test', '--dry-run'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, PITWALL_ENSURE_NODE_VERSION: version, PITWALL_ENSURE_NO_BUILD: '1' },
    })
    if (ok) {
      t.notMatch(r.stderr, /does not satisfy/, `${version}: accepted`)
    } else {
      t.equal(r.status, 1, `${version}: exit 1`)
      t.match(r.stderr, `Node.js ${version} does not satisfy package.json engines.node "${range}"`)
      t.match(r.stderr, /Install a Node\.js in that range/, `${version}: says what to do`)
    }
  }
})
