/**
 * The alert lifecycle, written once: every profile (actors/kinds/) emits its alerts through here and the projector
 * (projector/decode.ts, batch.ts) reads them back with the same constants. It is a wire format: ids and keys are
 * stored in alerts / alert_events and shown by the gateway, so a change here is a migration.
 *
 * - An alert is one episode of one condition of one entity. Its id is deterministic, `<kind>:<id>:<type>:<start>`
 *   (start = event time the condition began), or `<kind>:<id>:<type>:<sub>:<start>` when one entity can have
 *   several alerts of a type at once (the road's `dtc` per code, `geofence` per fence). Replays give the same id.
 * - Its life is `open`, any number of `update`s (it grew), then `close`; each event is one `alert` output with key
 *   `<alertId>:<state>:<seq>` (seq = the input that caused it), so two events never share an output id.
 * - For one input seq the events rank open < update < close: the projector keeps the highest, so an older event
 *   never reopens a closed alert (projector/batch.ts, and pw_alert_rank in projector/schema.ts).
 * The body's fields and their order are the profile's: a profile builds its AlertBody, this module names and emits it.
 */
import type { ActorContext } from './actor.js'
import type { AlertBody, EntityRef } from './types.js'

/** The events of an alert's life, in rank order. */
export const ALERT_STATES = ['open', 'update', 'close'] as const
export type AlertState = (typeof ALERT_STATES)[number]

export const SEVERITIES = ['info', 'warning', 'critical'] as const
export type Severity = (typeof SEVERITIES)[number]

/** Rank of an event among the events of one input seq: a close outranks an update, an update an open. */
export const ALERT_RANK: Readonly<Record<AlertState, number>> = Object.freeze({ open: 0, update: 1, close: 2 })

/** The deterministic id of the alert of `type` that began at `start` (`sub`: which one, when several can be open). */
export function alertId(entity: EntityRef, type: string, start: number, sub?: string): string {
  return sub === undefined
    ? `${entity.kind}:${entity.id}:${type}:${start}`
    : `${entity.kind}:${entity.id}:${type}:${sub}:${start}`
}

/** The output key of one event of an alert: `<alertId>:<state>:<seq>`. */
export function alertKey(id: string, state: AlertState, seq: number): string {
  return `${id}:${state}:${seq}`
}

/** Emits one event of an alert (the body carries its id and state) at event time `ts`, keyed by the current input. */
export function emitAlert(ctx: ActorContext, ts: number, body: AlertBody): void {
  ctx.emit('alert', alertKey(body.alertId, body.state, ctx.seq), ts, body)
}

/** The state of the alert after an event: `closed` after a close, else `open` (the alerts table's `state`). */
export function stateAfter(event: AlertState): 'open' | 'closed' {
  return event === 'close' ? 'closed' : 'open'
}
