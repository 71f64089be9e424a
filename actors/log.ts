/**
 * One structured logger for every pitwall process (issue 16): pino, JSON lines on stderr, the level from
 * `PITWALL_LOG_LEVEL` (`debug`, `info`, `warn`, `error`; `PITWALL_DEBUG` set means `debug`; default `info`).
 * Every line carries `time` (ISO), `level` (its name), `service`, `pid`, the bindings of its child loggers
 * (`site`, `worker`, `partition`, ...) and `msg`; docs/operations.md lists them.
 *
 * Code below the entrypoints takes a `Log`: a function `(level, msg, fields)` (the form the runtime has always
 * called) with `child(bindings)` for a logger that adds fields to every line, and `pino` for libraries that take
 * a pino logger (Fastify's `loggerInstance`). Tests pass `silentLog` or a function of their own; a plain `LogFn`
 * is accepted wherever a `Log` is taken, through `asLog`.
 */
import { pino, type Logger } from 'pino'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void

export interface Log extends LogFn {
  child(bindings: Record<string, unknown>): Log
  readonly pino: Logger
}

const LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

/** The level a process logs at, from its environment; an unknown `PITWALL_LOG_LEVEL` is refused by name. */
export function logLevel(env: NodeJS.ProcessEnv = process.env): string {
  const set = env.PITWALL_LOG_LEVEL?.trim()
  if (set) {
    if (!LEVELS.includes(set)) throw new Error(`PITWALL_LOG_LEVEL=${JSON.stringify(set)}: one of ${LEVELS.join(', ')}`)
    return set
  }
  return env.PITWALL_DEBUG ? 'debug' : 'info'
}

/** The process's root logger: `service` (worker, projector, gateway, controller, lab, ...) and fixed bindings. */
export function createLog(
  service: string,
  bindings: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = process.env,
): Log {
  const root = pino(
    {
      level: logLevel(env),
      base: { service, pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 2, sync: true }),
  )
  return wrap(root)
}

function wrap(p: Logger): Log {
  const log = ((level, msg, fields) => {
    if (fields) p[level](fields, msg)
    else p[level](msg)
  }) as Log
  Object.defineProperty(log, 'pino', { value: p })
  log.child = (bindings) => wrap(p.child(bindings))
  return log
}

/** A logger that writes nothing (tests, library defaults). */
export const silentLog: Log = wrap(pino({ level: 'silent' }))

/** A `Log` from a plain function (tests); its children add their bindings to the fields of each call. */
export function asLog(fn: LogFn | Log): Log {
  if ('child' in fn && typeof fn.child === 'function') return fn
  const make = (bound: Record<string, unknown>): Log => {
    const log = ((level, msg, fields) =>
      fn(level, msg, Object.keys(bound).length > 0 ? { ...bound, ...fields } : fields)) as Log
    Object.defineProperty(log, 'pino', { get: () => silentLog.pino })
    log.child = (b) => make({ ...bound, ...b })
    return log
  }
  return make({})
}
