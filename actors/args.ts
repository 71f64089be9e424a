/**
 * Command-line flags for every `pitwall` command and entrypoint, on `node:util` parseArgs: one spec per command
 * gives its `--help` text and its parser. An unknown flag, a flag without its value or a stray argument is a
 * ConfigError (PW_CONFIG_INVALID) naming the flag, with the known ones listed; so is a flag given twice.
 */
import { parseArgs } from 'node:util'
import { ConfigError } from './errors.js'

export interface FlagSpec {
  /** Without dashes: `out` for --out. */
  name: string
  type: 'string' | 'boolean'
  /** Placeholder of the value in the help (`<file>`). */
  value?: string
  help: string
  multiple?: boolean
  /** One-letter alias (`h` for -h). */
  short?: string
}

export interface CommandSpec {
  /** `pitwall lab kill-site <site>` */
  usage: string
  summary: string
  flags: readonly FlagSpec[]
  /** How many positional arguments the command takes (default none). */
  positionals?: { min: number; max: number; names: string }
}

export interface ParsedCommand {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
  help: boolean
}

const HELP: FlagSpec = { name: 'help', type: 'boolean', help: 'this help' }

/** The --help text of a command. */
export function commandHelp(spec: CommandSpec): string {
  const flags = (spec.flags.some((f) => f.name === 'help') ? spec.flags : [...spec.flags, HELP]).map(
    (f) => `  --${f.name}${f.value ? ` ${f.value}` : ''}`.padEnd(28) + ` ${f.help}`,
  )
  return [`usage: ${spec.usage}`, `  ${spec.summary}`, '', 'flags:', ...flags].join('\n')
}

/** Parses `args` by `spec`; `help` is true when --help was given (nothing else is checked then). */
export function parseCommand(args: readonly string[], spec: CommandSpec): ParsedCommand {
  const known = spec.flags.some((f) => f.name === 'help') ? spec.flags : [...spec.flags, HELP]
  const options = Object.fromEntries(
    known.map((f) => [
      f.name,
      { type: f.type, ...(f.multiple ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}) },
    ]),
  )
  const helpShort = known.find((f) => f.name === 'help')?.short
  if (args.includes('--help') || (helpShort !== undefined && args.includes(`-${helpShort}`)))
    return { values: {}, positionals: [], help: true }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true, tokens: true })
  } catch (err) {
    throw argError(err, known)
  }
  const seen = new Set<string>()
  for (const tok of parsed.tokens ?? []) {
    if (tok.kind !== 'option' || known.find((f) => f.name === tok.name)?.multiple) continue
    if (seen.has(tok.name)) throw new ConfigError(`--${tok.name}`, 'given twice')
    seen.add(tok.name)
  }
  const pos = spec.positionals ?? { min: 0, max: 0, names: '' }
  if (parsed.positionals.length > pos.max) {
    const extra = parsed.positionals[pos.max] as string
    throw new ConfigError(
      extra.startsWith('-') ? extra : JSON.stringify(extra),
      `unexpected argument (usage: ${spec.usage}; see --help)`,
    )
  }
  if (parsed.positionals.length < pos.min)
    throw new ConfigError(pos.names || 'arguments', `missing (usage: ${spec.usage}; see --help)`)
  return { values: parsed.values as ParsedCommand['values'], positionals: parsed.positionals, help: false }
}

/** parseArgs' TypeErrors (ERR_PARSE_ARGS_*) as ConfigErrors naming the flag. */
function argError(err: unknown, known: readonly FlagSpec[]): ConfigError {
  const msg = err instanceof Error ? err.message : String(err)
  const code = (err as { code?: string }).code
  const flag = /'(-{1,2}[^' ]+)/.exec(msg)?.[1] ?? 'arguments'
  const list = known.map((f) => `--${f.name}`).join(' ')
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return new ConfigError(flag, `unknown flag (known: ${list})`, err)
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const f = known.find((k) => flag === `--${k.name}`)
    return new ConfigError(flag, f?.type === 'boolean' ? 'takes no value' : 'needs a value', err)
  }
  return new ConfigError(flag, msg, err)
}

/** A string flag's value (the last one when given twice). */
export function flagString(p: ParsedCommand, name: string): string | undefined {
  const v = p.values[name]
  if (Array.isArray(v)) return v.at(-1)
  return typeof v === 'string' ? v : undefined
}
