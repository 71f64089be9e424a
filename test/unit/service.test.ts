/**
 * Out of service in the process profile, through the real ActorCell with a reference lookup: a stuck sensor
 * alarms in service, raises nothing out of service, an open alert closes naming the reason, and `until` ends it.
 */
import t from 'tap'
import { ActorCell } from '../../actors/cell.js'
import { processProfile } from '../../actors/kinds/sensor/process.js'
import { SERVICE_REF, type ServiceSet } from '../../actors/service.js'
import type { ReferenceLookup } from '../../actors/actor.js'
import type { AlertBody, Output } from '../../actors/types.js'

const entity = { kind: 'sensor', id: 'ph-01' } as const
const T0 = 1_736_121_600_000
const P = 5000
/**
 * Healthy readings first: the profile judges a stuck value against the sensor's own hold behaviour, learned after
 * warmupReadings and failure.minChanges changes (issue 17: a value that never changed is no evidence of a fault).
 */
const W = 800

function run(n: number, oos: (i: number) => ServiceSet | undefined): AlertBody[] {
  const cell = new ActorCell(processProfile, processProfile.defaults, entity)
  const out: AlertBody[] = []
  const emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => {
    if (o.type === 'alert') out.push(o.body as AlertBody)
  }
  for (let i = 0; i < n; i++) {
    const set = oos(i)
    const refs: ReferenceLookup = (name) =>
      name === SERVICE_REF && set ? { name, revision: 1, effectiveAt: 0, data: set } : undefined
    // a healthy pH probe at SCADA resolution (0.01), then stuck from reading W on
    const value = i < W ? Math.round((7.1 + 0.01 * ((i * 7) % 5)) * 100) / 100 : 7.3
    cell.applyReading(
      i + 1,
      T0 + i * P,
      { ts: T0 + i * P, fields: { type: 'ph', stage: 'biological', value, flow: 2000 + i, temp: 15 } },
      emit,
      refs,
    )
  }
  return out
}
const set = (until: number | null = null): ServiceSet => ({
  version: 1,
  sensors: { 'ph-01': { reason: 'calibration', since: T0, until, by: 'op' } },
})

void t.test('in service a stuck sensor alarms; out of service it does not', async (t) => {
  const inService = run(W + 20, () => undefined)
  t.equal(inService.filter((a) => a.state === 'open' && a.type === 'sensor_failure').length, 1)
  t.equal(inService[0]?.start, T0 + W * P, 'dated from when the value got stuck')
  t.same(
    run(W + 20, (i) => (i >= W ? set() : undefined)),
    [],
    'no alert out of service',
  )
  t.same(
    run(W + 20, () => ({ version: 1, sensors: {} })),
    inService,
    'another set without this sensor changes nothing',
  )
})

void t.test('an open alert closes with the reason; back in service it alarms again', async (t) => {
  const a = run(W + 30, (i) => (i >= W + 10 && i < W + 20 ? set() : undefined))
  t.same(
    a.map((x) => x.state),
    ['open', 'close', 'open'],
  )
  t.match(a[1]?.explanation, /out of service: calibration/)
  t.equal(
    a[2]?.start,
    T0 + W * P,
    'reopened after the return, dated from when the value got stuck (the run went on counting)',
  )
})

void t.test('until ends the state by itself', async (t) => {
  const a = run(W + 30, (i) => (i >= W ? set(T0 + (W + 15) * P) : undefined))
  t.same(
    a.map((x) => x.state),
    ['open'],
  )
  t.equal(a[0]?.start, T0 + W * P)
})
