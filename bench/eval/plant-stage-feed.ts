/**
 * The edge's stage signals for the `process` profile's backwash view (actors/kinds/sensor/backwash.ts, issue 17):
 * wraps a plant detector so that every reading of a sensor a filter backwash affects carries the filter group's
 * signals as the edge's data table last read them, the way the PLC already sends the stage `flow` and `temp`
 * with every sample: `backwash_pump` (the filter stage's pump) and `filter_flow_1..n` (its flow meters, one per
 * filter, in tag order). Affected: every instrument of the filter stage and the turbidity / suspended-solids
 * analysers of the stages downstream of it on the water line (the ripple of wash water reaches them).
 *
 * What the edge knows is the P&ID (the instrument list: id, type, stage), nothing of the scenario: which stage holds
 * the filters and what lies downstream of it are the plant's layout (DOMAIN.md section 3: tertiary treatment, then
 * disinfection and the outlet), given as a `StageFeedPlan`. A signal is attached only when its last reading had a
 * value and is at most `staleMs` old, as an edge would mark a tag whose poll failed.
 */
import type { Reading } from '../../actors/types.js'
import { BACKWASH_FIELDS } from '../../actors/kinds/sensor/backwash.js'
import type { PlantDetector, PlantInstruments } from './plant-eval.js'

export interface StageFeedPlan {
  /** The stage whose flow meters are the filters and whose pump is the backwash pump. */
  filterStage: string
  /** Stages downstream of it on the water line, and the analyser types there the wash water's ripple reaches. */
  downstreamStages: readonly string[]
  downstreamTypes: readonly string[]
  /** A signal older than this (event time) is not attached. */
  staleMs: number
}

export const DEFAULT_STAGE_FEED: StageFeedPlan = Object.freeze({
  filterStage: 'tertiary',
  downstreamStages: Object.freeze(['disinfection', 'outlet']),
  downstreamTypes: Object.freeze(['turbidity', 'tss']),
  staleMs: 30_000,
})

export interface StageFeed {
  /** Signal sensor id -> field it is attached as. */
  signals: Map<string, string>
  /** Sensors whose readings carry the signals. */
  recipients: Set<string>
}

/** Which sensors are the signals and which receive them, from the instrument list. */
export function stageFeed(plant: PlantInstruments, plan: StageFeedPlan = DEFAULT_STAGE_FEED): StageFeed {
  const stage = plant.sensors.filter((s) => s.stage === plan.filterStage)
  const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  const flows = stage.filter((s) => s.type === 'flow').sort(byId)
  const pumps = stage.filter((s) => s.type === 'pump').sort(byId)
  const signals = new Map<string, string>()
  // A filter group needs a pump and at least two filters; more filters than the profile reads are left out.
  if (pumps.length > 0 && flows.length >= 2) {
    signals.set((pumps[0] as { id: string }).id, BACKWASH_FIELDS.pump)
    flows
      .slice(0, BACKWASH_FIELDS.filters.length)
      .forEach((s, i) => signals.set(s.id, BACKWASH_FIELDS.filters[i] as string))
  }
  const recipients = new Set<string>()
  if (signals.size > 0) {
    for (const s of stage) recipients.add(s.id)
    for (const s of plant.sensors)
      if (plan.downstreamStages.includes(s.stage) && plan.downstreamTypes.includes(s.type)) recipients.add(s.id)
  }
  return { signals, recipients }
}

/** `det` with the stage signals attached to the affected sensors' readings (the edge's fan-in). */
export function withStageSignals(det: PlantDetector, plan: StageFeedPlan = DEFAULT_STAGE_FEED): PlantDetector {
  return {
    name: det.name,
    create(plant) {
      const inner = det.create(plant)
      const feed = stageFeed(plant, plan)
      const last = new Map<string, { value: number; ts: number }>()
      const onReading: typeof inner.onReading = (entity, r) => {
        const field = feed.signals.get(entity)
        const value = r.fields['value']
        if (field !== undefined && typeof value === 'number') last.set(field, { value, ts: r.ts })
        if (!feed.recipients.has(entity)) return inner.onReading(entity, r)
        const fields: Reading['fields'] = { ...r.fields }
        for (const [f, x] of last) if (r.ts - x.ts <= plan.staleMs) fields[f] = x.value
        return inner.onReading(entity, { ...r, fields })
      }
      return {
        onReading,
        ...(inner.finish ? { finish: () => (inner.finish as () => ReturnType<typeof onReading>)() } : {}),
        ...(inner.outOfService
          ? {
              outOfService: (entity: string, inService: boolean, ts: number) =>
                (inner.outOfService as NonNullable<typeof inner.outOfService>)(entity, inService, ts),
            }
          : {}),
      }
    },
  }
}
