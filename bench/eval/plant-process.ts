/**
 * The project's `process` profile as a plant detector for evaluatePlant (issue 17): every sensor's readings go
 * through the real profile code in memory, one `ActorCell` per sensor (what a worker runs, no broker), and the
 * alert outputs become alert events. Out of service is announced the way the gateway does it: as the reference
 * data `service` (actors/service.ts) that the profile reads, one new revision per operator action.
 *
 * Redundant pairs (docs/profiles.md "Redundant pairs"): with `pairs` on (the default), each pair of the
 * instrument list also gets a `process-pair` cell, and every reading of a member is applied to it too, with the
 * field `member`, as the ingest fan-out of the runtime route does. Its alerts name the probe
 * (`details.sensor`), which is the entity they are scored on.
 */
import { ActorCell } from '../../actors/cell.js'
import type { ActorDefinition, ReferenceVersion } from '../../actors/actor.js'
import { processProfile, type ProcessConfig } from '../../actors/kinds/sensor/process.js'
import { pairEntityId, processPairProfile, type PairConfig } from '../../actors/kinds/sensor/process-pair.js'
import { SERVICE_REF, type ServiceSet } from '../../actors/service.js'
import type { AlertBody, Output, Reading } from '../../actors/types.js'
import type { AlertEvent, DetectorInstance, PlantDetector, PlantInstruments } from './plant-eval.js'

type AnyDef = ActorDefinition<unknown, unknown>

export interface ProcessDetectorOptions {
  /** Settings of the pair actors, or false for none (the sensor actors alone). Default: the profile's defaults. */
  pairs?: PairConfig | false
  /** Every alert output as the profile wrote it (diagnostics: bench/eval/plant-diag.ts); `pair` when a pair cell raised it. */
  onAlert?: (entity: string, body: AlertBody, ts: number, source: 'sensor' | 'pair') => void
}

/** The process profile under evaluation; `config` defaults to the profile's defaults. */
export function processProfileDetector(
  config?: ProcessConfig,
  name = 'pitwall process profile',
  opts: ProcessDetectorOptions = {},
): PlantDetector {
  return {
    name,
    create(plant: PlantInstruments): DetectorInstance {
      const def = processProfile as unknown as AnyDef
      const pairDef = processPairProfile as unknown as AnyDef
      const cfg = config ?? processProfile.defaults
      const pairCfg = opts.pairs === undefined ? processPairProfile.defaults : opts.pairs
      const cells = new Map<string, ActorCell>()
      // The pair cell of each paired sensor (shared by both members).
      const pairOf = new Map<string, ActorCell>()
      const partnerOf = new Map<string, string>()
      if (pairCfg !== false) {
        for (const s of plant.sensors) {
          if (s.pair !== undefined) partnerOf.set(s.id, s.pair)
          if (s.pair === undefined || pairOf.has(s.id)) continue
          const cell = new ActorCell(pairDef, pairCfg, { kind: 'sensor', id: pairEntityId(s.id, s.pair) })
          pairOf.set(s.id, cell)
          pairOf.set(s.pair, cell)
        }
      }
      const service: ServiceSet = { version: 0, sensors: {} }
      let ref: ReferenceVersion = { name: SERVICE_REF, revision: 0, effectiveAt: 0, data: service }
      const refs = (n: string): ReferenceVersion | undefined => (n === SERVICE_REF ? ref : undefined)
      let seq = 0
      let out: AlertEvent[] = []
      const emit = (o: Omit<Output, 'site' | 'partition' | 'token'>): void => {
        if (o.type !== 'alert') return
        const b = o.body as AlertBody
        const probe = b.details?.['sensor']
        const entity = typeof probe === 'string' ? probe : o.entity
        opts.onAlert?.(entity, b, o.ts, typeof probe === 'string' ? 'pair' : 'sensor')
        out.push({ entity, type: b.type, state: b.state, ts: o.ts })
      }
      return {
        onReading(entity: string, r: Reading): AlertEvent[] {
          let cell = cells.get(entity)
          if (!cell) cells.set(entity, (cell = new ActorCell(def, cfg, { kind: 'sensor', id: entity })))
          out = []
          const pair = pairOf.get(entity)
          // The edge that publishes the pair's copy knows the P&ID: it names the probe's redundant partner in the
          // probe's own reading too (`partner`, docs/profiles.md "Redundant pairs").
          const partner = pair ? partnerOf.get(entity) : undefined
          const own = partner === undefined ? r : { ts: r.ts, fields: { ...r.fields, partner } }
          // Processing time = event time: the bench replays the stream as it happened.
          cell.applyReading(++seq, r.ts, own, emit, refs)
          if (pair)
            pair.applyReading(
              ++seq,
              r.ts,
              {
                ts: r.ts,
                fields: { member: entity, ...(r.fields['value'] === undefined ? {} : { value: r.fields['value'] }) },
              },
              emit,
              refs,
            )
          return out
        },
        outOfService(entity: string, inService: boolean, ts: number): AlertEvent[] {
          const sensors = { ...service.sensors }
          if (inService) delete sensors[entity]
          else sensors[entity] = { reason: 'calibration', since: ts, until: null, by: 'bench' }
          service.sensors = sensors
          service.version++
          ref = {
            name: SERVICE_REF,
            revision: service.version,
            effectiveAt: ts,
            data: { version: service.version, sensors },
          }
          return []
        },
      }
    },
  }
}
