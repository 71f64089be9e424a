/**
 * Which metric names exist: the pitwall names of actors/metrics.ts (METRICS) and prom-client's default process
 * metrics, read from a registry rather than listed by hand. Used by the tests that check every rule and every
 * dashboard expression only names metrics that exist.
 */
import { collectDefaultMetrics, Registry } from 'prom-client'
import { METRICS } from '../actors/mod.js'

/** Names of prom-client's default metrics (process_*, nodejs_*). */
export async function defaultMetricNames(): Promise<Set<string>> {
  const r = new Registry()
  collectDefaultMetrics({ register: r })
  return new Set((await r.getMetricsAsJSON()).map((m) => m.name))
}

/** The series name a sample belongs to: histogram and summary suffixes stripped. */
export function baseMetricName(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '')
}

/** A checker: true when `name` (a series name, suffixes allowed) is a pitwall or default metric. */
export async function knownMetrics(): Promise<(name: string) => boolean> {
  const known = new Set<string>([...Object.values(METRICS), ...(await defaultMetricNames())])
  return (name) => known.has(name) || known.has(baseMetricName(name))
}
