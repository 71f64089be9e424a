/**
 * actors/sitemap.ts siteRole, the one rule behind the controller's /status and pitwall_site_role metric and
 * `pitwall site status`: against a naive reference over every owner assignment of small maps. No server.
 */
import t from 'tap'
import fc from 'fast-check'
import { SITE_ROLES, siteRole } from '../../actors/mod.js'

t.test('roles of a two-site map', async (t) => {
  const home = [0, 1]
  t.equal(siteRole({ owners: ['a', 'a', 'b', 'b'] }, 'a', home), 'normal')
  t.equal(siteRole({ owners: ['a', 'a', 'a', 'b'] }, 'a', home), 'survivor', "holds a partition of the peer's home")
  t.equal(siteRole({ owners: ['a', 'b', 'b', 'b'] }, 'a', home), 'degraded', 'the peer holds one of its home')
  t.equal(siteRole({ owners: ['b', 'a', 'a', 'b'] }, 'a', home), 'survivor', 'survivor wins when both hold')
  t.equal(siteRole({ owners: ['a', 'a', 'b', 'b'] }, 'b', [2, 3]), 'normal')
  t.same([...SITE_ROLES], ['normal', 'survivor', 'degraded'])
})

t.test('property: the role follows the owners of home and foreign partitions', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('a', 'b'), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 12 }),
      (owners, split) => {
        const home = owners.map((_, p) => p).filter((p) => p < split)
        let foreignHeld = false
        let homeLost = false
        owners.forEach((s, p) => {
          if (s === 'a' && p >= split) foreignHeld = true
          if (s !== 'a' && p < split) homeLost = true
        })
        const want = foreignHeld ? 'survivor' : homeLost ? 'degraded' : 'normal'
        return siteRole({ owners }, 'a', home) === want
      },
    ),
    { seed: 16 },
  )
  t.pass('holds')
})
