import t from 'tap'
import { defineActor } from '../../actors/actor.js'
import type { FiredTimer } from '../../actors/actor.js'
import { ActorCell } from '../../actors/cell.js'

interface S {
  fired: Array<[string, number, number]>
}
const def = (catchUp: 'coalesce' | 'replay') =>
  defineActor<S, Record<string, never>>({
    kind: 'sensor',
    profile: `timers-${catchUp}`,
    defaults: {},
    allowedLatenessMs: () => 1000,
    init: () => ({ fired: [] }),
    codec: { version: 1, encode: (s) => s, decode: (d) => d as S },
    onReading(_s, r, ctx) {
      if (r.fields.arm === true) {
        ctx.setTimer('tick', 'processing', ctx.procTime + 100, { periodMs: 100, catchUp })
        ctx.setTimer('ev', 'event', r.ts + 5000)
      }
    },
    onTimer(s, ft: FiredTimer) {
      s.fired.push([ft.name, ft.at, ft.missed])
    },
  })
const noop = (): void => undefined

t.test('processing-time periodic timer after downtime: coalesce fires once, replay once per period', async (t) => {
  for (const mode of ['coalesce', 'replay'] as const) {
    const c = new ActorCell(def(mode), {}, { kind: 'sensor', id: 'x' })
    c.applyReading(1, 1000, { ts: 0, fields: { arm: true } }, noop)
    c.applyTick(2, 1100, noop)
    t.same((c.state as S).fired, [['tick', 1100, 1]], `${mode}: due tick fires`)
    // 1 s of downtime: next tick at procTime 2150, periods due at 1200..2100 (10 of them)
    const restored = new ActorCell(
      def(mode),
      {},
      { kind: 'sensor', id: 'x' },
      JSON.parse(JSON.stringify(c.snapshot(1))),
    )
    restored.applyTick(3, 2150, noop)
    const fired = (restored.state as S).fired.slice(1)
    if (mode === 'coalesce') t.same(fired, [['tick', 1200, 10]], 'coalesce: once, missed = 10')
    else
      t.same(
        fired.map((f) => f[1]),
        [1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000, 2100],
        'replay: every period',
      )
    t.equal(restored.nextProcTimer(), 2200, `${mode}: re-armed at the next period`)
  }
})

t.test('event-time timer fires when the watermark passes it; replays are skipped', async (t) => {
  const c = new ActorCell(def('coalesce'), {}, { kind: 'sensor', id: 'y' })
  c.applyReading(1, 1, { ts: 10_000, fields: { arm: true } }, noop)
  c.applyReading(2, 2, { ts: 15_000, fields: {} }, noop)
  t.same(
    (c.state as S).fired.filter((f) => f[0] === 'ev'),
    [],
    'watermark 14,000 < 15,000',
  )
  c.applyReading(3, 3, { ts: 16_000, fields: {} }, noop)
  t.same(
    (c.state as S).fired.filter((f) => f[0] === 'ev'),
    [['ev', 15_000, 1]],
    'watermark 15,000 fires it',
  )
  t.equal(c.applyReading(3, 3, { ts: 99_000, fields: {} }, noop), 'replay', 'a replayed seq is skipped')
  t.equal(c.maxEventTs, 16_000)
})
