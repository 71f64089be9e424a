/**
 * Settings given on an evaluation's command line (`--process-config`, `--pair-config`): a JSON object merged
 * over the defaults (nested objects key by key, anything else replaced), then checked by the profile's own
 * validator. Throws on bad JSON or settings the validator refuses.
 */
export function settingsOver<T>(defaults: T, json: string, validate: (c: T) => void): T {
  const merged = deepMerge(defaults, JSON.parse(json)) as T
  validate(merged)
  return merged
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (over === null || typeof over !== 'object' || Array.isArray(over) || base === null || typeof base !== 'object')
    return over
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = deepMerge(out[k], v)
  return out
}
