/** Window definitions and their compiled layout: specs, options, pane size, field slots. See actors/windows/mod.ts for the semantics. */
import { ConfigError } from '../errors.js'

/** A tumbling (no `slideMs`, or slide = size) or sliding window definition. */
export interface WindowSpec {
  name: string
  sizeMs: number
  slideMs?: number
}

export interface WindowOptions {
  windows: readonly WindowSpec[]
  /** Numeric fields to aggregate (others in a reading are ignored). */
  fields: readonly string[]
  /** Extra per-window counters, summed from what `add` is given (e.g. `alerts`, `failures`). */
  counts?: readonly string[]
}

// Per-field slots in a record.
export const F_COUNT = 0,
  F_SUM = 1,
  F_M2 = 2,
  F_MIN = 3,
  F_MAX = 4,
  F_FIRST = 5,
  F_FIRST_TS = 6,
  F_LAST = 7,
  F_LAST_TS = 8
export const FIELD_SLOTS = 9

/** The compiled, frozen form of `WindowOptions`, shared by every actor of a profile configuration. */
export interface WindowLayout {
  readonly specs: readonly { readonly name: string; readonly size: number; readonly slide: number }[]
  readonly fields: readonly string[]
  readonly counts: readonly string[]
  /** Pane size: gcd of the slides. */
  readonly pane: number
  /** Numbers per pane record. */
  readonly stride: number
  /** Offset of the first field's slots in a record. */
  readonly fieldBase: number
  /** Signature of the window definitions, checked on restore. */
  readonly signature: string
}

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

export function checkNames(setting: string, names: readonly string[]): void {
  const seen = new Set<string>()
  for (const n of names) {
    if (typeof n !== 'string' || n.length === 0) throw new ConfigError(setting, 'names must be non-empty strings')
    if (seen.has(n)) throw new ConfigError(setting, `duplicate name ${n}`)
    seen.add(n)
  }
}

/** Validates window options and compiles them into a layout (compile once per configuration). */
export function compileWindows(opts: WindowOptions): WindowLayout {
  if (!Array.isArray(opts.windows) || opts.windows.length === 0)
    throw new ConfigError('windows', 'at least one window is required')
  // Late results are a bit mask per definition.
  if (opts.windows.length > 30) throw new ConfigError('windows', 'at most 30 window definitions')
  checkNames(
    'windows[].name',
    opts.windows.map((w) => w.name),
  )
  const counts = opts.counts ?? []
  checkNames('fields', opts.fields)
  checkNames('counts', ['readings', ...counts])
  let pane = 0
  const specs = opts.windows.map((w) => {
    const size = w.sizeMs
    const slide = w.slideMs ?? w.sizeMs
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new ConfigError(`windows.${w.name}.sizeMs`, `must be a positive integer, got ${size}`)
    if (!Number.isSafeInteger(slide) || slide <= 0 || size % slide !== 0) {
      throw new ConfigError(
        `windows.${w.name}.slideMs`,
        `must be a positive integer dividing sizeMs (${size}), got ${slide}`,
      )
    }
    pane = gcd(slide, pane)
    return Object.freeze({ name: w.name, size, slide })
  })
  const fieldBase = 2 + counts.length
  return Object.freeze({
    specs: Object.freeze(specs),
    fields: Object.freeze([...opts.fields]),
    counts: Object.freeze([...counts]),
    pane,
    stride: fieldBase + FIELD_SLOTS * opts.fields.length,
    fieldBase,
    signature: specs.map((s) => `${s.name}:${s.size}:${s.slide}`).join(','),
  })
}
