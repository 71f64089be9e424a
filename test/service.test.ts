/**
 * Out of service in the process profile, through the real ActorCell with a reference lookup: a stuck sensor
 * alarms in service, raises nothing out of service, an open alert closes naming the reason, and `until` ends it.
 */
import t from 'tap'
import { ActorCell } from '../actors/cell.js'
import { processProfile } from '../actors/kinds/sensor/process.js'
import { SERVICE_REF, type ServiceSet } from '../actors/service.js'
import type { ReferenceLookup } from '../actors/actor.js'
import type { AlertBody, Output } from '../actors/types.js'

const entity = { kind: 'sensor', id: 'ph-01' } as const
const T0 = 1_736_121_600_000

function run(n: number, oos: (i: number) => ServiceSet | undefined): AlertBody[] {
  const cell = new ActorCell(processProfile, processProfile.defaults, entity)
  const out: AlertBody[] = []
  const emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => { if (o.type === 'alert') out.push(o.body as AlertBody) }
  for (let i = 0; i < n; i++) {
    const set = oos(i)
    const refs: ReferenceLookup = (name) => (name === SERVICE_REF && set ? { name, revision: 1, effectiveAt: 0, data: set } : undefined)
    // a stuck pH probe: the same value every reading
    cell.applyReading(i + 1, T0 + i * 5000, { ts: T0 + i * 5000, fields: { type: 'ph', stage: 'biological', value: 7.12, flow: 2000 + i, temp: 15 } }, emit, refs)
  }
  return out
}
const set = (until: number | null = null): ServiceSet => ({ version: 1, sensors: { 'ph-01': { reason: 'calibration', since: T0, until, by: 'op' } } })

void t.test('in service a stuck sensor alarms; out of service it does not', async (t) => {
  const inService = run(20, () => undefined)
  t.equal(inService.filter((a) => a.state === 'open' && a.type === 'sensor_failure').length, 1)
  t.same(run(20, () => set()), [], 'no alert out of service')
  t.same(run(20, () => ({ version: 1, sensors: {} })), inService, 'another set without this sensor changes nothing')
})

void t.test('an open alert closes with the reason; back in service it alarms again', async (t) => {
  const a = run(30, (i) => (i >= 10 && i < 20 ? set() : undefined))
  t.same(a.map((x) => x.state), ['open', 'close', 'open'])
  t.match(a[1]?.explanation, /out of service: calibration/)
  t.equal(a[2]?.start, T0, 'reopened after the return, dated from when the value got stuck (the run went on counting)')
})

void t.test('until ends the state by itself', async (t) => {
  const a = run(30, () => set(T0 + 15 * 5000))
  t.same(a.map((x) => x.state), ['open'])
  t.ok((a[0]?.start ?? 0) > 0)
})
