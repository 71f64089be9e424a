/**
 * The project's `process` profile as a plant detector for evaluatePlant (issue 17): every sensor's readings go
 * through the real profile code in memory, one `ActorCell` per sensor (what a worker runs, no broker), and the
 * alert outputs become alert events. Out of service is announced the way the gateway does it: as the reference
 * data `service` (actors/service.ts) that the profile reads, one new revision per operator action.
 */
import { ActorCell } from '../../actors/cell.js'
import type { ActorDefinition, ReferenceVersion } from '../../actors/actor.js'
import { processProfile, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import { SERVICE_REF, type ServiceSet } from '../../actors/service.js'
import type { AlertBody, Output, Reading } from '../../actors/types.js'
import type { AlertEvent, DetectorInstance, PlantDetector } from './plant-eval.js'

type AnyDef = ActorDefinition<unknown, unknown>

/** The process profile under evaluation; `config` defaults to the profile's defaults. */
export function processProfileDetector(config?: ProcessConfig, name = 'pitwall process profile'): PlantDetector {
  return {
    name,
    create(): DetectorInstance {
      const def = processProfile as unknown as AnyDef
      const cfg = config ?? processProfile.defaults
      const cells = new Map<string, ActorCell>()
      const service: ServiceSet = { version: 0, sensors: {} }
      let ref: ReferenceVersion = { name: SERVICE_REF, revision: 0, effectiveAt: 0, data: service }
      const refs = (n: string): ReferenceVersion | undefined => (n === SERVICE_REF ? ref : undefined)
      let seq = 0
      let out: AlertEvent[] = []
      const emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => {
        if (o.type !== 'alert') return
        const b = o.body as AlertBody
        out.push({ entity: o.entity, type: b.type, state: b.state, ts: o.ts })
      }
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          let cell = cells.get(entity)
          if (!cell) cells.set(entity, cell = new ActorCell(def, cfg, { kind: 'sensor', id: entity }))
          out = []
          // Processing time = event time: the bench replays the stream as it happened.
          cell.applyReading(++seq, r.ts, r, emit, refs)
          return out
        },
        outOfService(entity: string, inService: boolean, ts: number): AlertEvent[] {
          const sensors = { ...service.sensors }
          if (inService) delete sensors[entity]
          else sensors[entity] = { reason: 'calibration', since: ts, until: null, by: 'bench' }
          service.sensors = sensors
          service.version++
          ref = { name: SERVICE_REF, revision: service.version, effectiveAt: ts, data: { version: service.version, sensors } }
          return []
        },
      }
    },
  }
}
