/**
 * Out of service (ISA-18.2 "out-of-service" alarm state): an operator takes a sensor out of service for
 * maintenance or calibration so that it does not alarm. The gateway keeps the state and its audit trail in
 * PostgreSQL and publishes the set of sensors currently out of service to the reference bucket (key `service`,
 * actors/references.ts); profiles read it with `ctx.reference(SERVICE_REF)`.
 *
 * Only sensors out of service are in the set (a return to service removes the entry), so the set stays as small
 * as the number of sensors under maintenance. `until` (ms, optional) ends the state by itself: it is compared
 * with the message's processing time, the same clock that picks the revision, so a replay decides the same way.
 */
import { ConfigError } from './errors.js'
import type { ActorContext } from './actor.js'

/** One sensor out of service, as the gateway publishes it. */
export interface ServiceEntry {
  reason: string
  /** When it was taken out of service (ms). */
  since: number
  /** When it returns to service by itself (ms); null = until an operator puts it back. */
  until: number | null
  /** Who took it out (the principal id). */
  by: string
}

/** The whole set, one KV revision per change. */
export interface ServiceSet {
  /** Monotonic version (the gateway's counter). */
  version: number
  /** Sensor id -> entry, for sensors out of service only. */
  sensors: Record<string, ServiceEntry>
}

/** Reference-data name of the out-of-service set in the reference bucket. */
export const SERVICE_REF = 'service'

/** Checks a published set (workers refuse a malformed revision and keep the previous one). */
export function validateServiceSet(v: unknown): ServiceSet {
  const s = v as ServiceSet
  if (
    !s ||
    typeof s !== 'object' ||
    !Number.isInteger(s.version) ||
    !s.sensors ||
    typeof s.sensors !== 'object' ||
    Array.isArray(s.sensors)
  ) {
    throw new ConfigError(SERVICE_REF, 'must be {version, sensors{}}')
  }
  for (const [id, e] of Object.entries(s.sensors)) {
    const at = `${SERVICE_REF}.sensors.${id}`
    if (!e || typeof e !== 'object' || typeof e.reason !== 'string')
      throw new ConfigError(`${at}.reason`, 'must be a string')
    if (!Number.isFinite(e.since)) throw new ConfigError(`${at}.since`, 'must be a time in ms')
    if (e.until !== null && !Number.isFinite(e.until))
      throw new ConfigError(`${at}.until`, 'must be null or a time in ms')
    if (typeof e.by !== 'string') throw new ConfigError(`${at}.by`, 'must be a string')
  }
  return s
}

/** Why this actor's sensor is out of service at this message, with the set version; undefined when in service. */
export function outOfService(ctx: ActorContext): (ServiceEntry & { version: number }) | undefined {
  if (ctx.entity.kind !== 'sensor') return undefined
  const set = ctx.reference(SERVICE_REF)?.data as ServiceSet | undefined
  const e = set?.sensors[ctx.entity.id]
  if (!set || !e || (e.until !== null && ctx.procTime >= e.until)) return undefined
  return { ...e, version: set.version }
}
