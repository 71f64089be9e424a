/**
 * The CLI's parsing (issue 16, "Habits"): every command on node:util parseArgs (actors/args.ts parseCommand):
 * `--help` per command, an unknown flag, a repeated one or one without its value refused with PW_CONFIG_INVALID
 * naming it; `pitwall state` / `partitions` without a lab or PITWALL_* variables say what to set; and the RFC
 * 4180 reader `pitwall train` reads its CSVs with (quoted fields with commas, quotes and line breaks). Needs no
 * server.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../actors/errors.js'
import { parseCommand, type CommandSpec } from '../../actors/args.js'
import { readFailures } from '../../cmd/train.js'
import { csvRecords } from '../../simulators/csv.js'

const ROOT = join(import.meta.dirname, '..', '..')

const SPEC: CommandSpec = {
  usage: 'x run <file>',
  summary: 'a test command',
  flags: [
    { name: 'out', type: 'string', value: '<file>', help: 'output' },
    { name: 'fast', type: 'boolean', help: 'quick' },
  ],
  positionals: { min: 1, max: 1, names: '<file>' },
}

/** The setting a ConfigError names (or what else was thrown). */
function refusal(f: () => unknown): { setting: string; message: string } | string {
  try {
    f()
    return 'accepted'
  } catch (err) {
    return err instanceof ConfigError
      ? { setting: err.setting, message: err.message }
      : `not a ConfigError: ${String(err)}`
  }
}

void t.test('parseCommand: flags, positionals, and refusals that name the flag', async (t) => {
  t.match(parseCommand(['f.txt', '--out', 'o', '--fast'], SPEC), {
    values: { out: 'o', fast: true },
    positionals: ['f.txt'],
    help: false,
  })
  t.match(parseCommand(['--out=o', 'f.txt'], SPEC), { values: { out: 'o' }, positionals: ['f.txt'] })
  t.equal(parseCommand(['--help', '--bogus'], SPEC).help, true, '--help wins over everything else')
  t.match(
    refusal(() => parseCommand(['f', '--bogus', '1'], SPEC)),
    { setting: '--bogus', message: /unknown flag \(known: --out --fast --help\)/ },
  )
  t.match(
    refusal(() => parseCommand(['f', '--out', 'a', '--out', 'b'], SPEC)),
    { setting: '--out', message: /given twice/ },
  )
  t.match(
    refusal(() => parseCommand(['f', '--out'], SPEC)),
    { setting: '--out', message: /needs a value/ },
  )
  t.match(
    refusal(() => parseCommand(['f', '--out', '--fast'], SPEC)),
    { setting: '--out', message: /needs a value/ },
  )
  t.match(
    refusal(() => parseCommand(['f', '--fast=yes'], SPEC)),
    { setting: '--fast', message: /takes no value/ },
  )
  t.match(
    refusal(() => parseCommand([], SPEC)),
    { setting: '<file>', message: /missing/ },
  )
  t.match(
    refusal(() => parseCommand(['f', 'g'], SPEC)),
    { setting: '"g"', message: /unexpected argument/ },
  )
})

interface Run {
  code: number
  stdout: string
  stderr: string
}
/** The built CLI with no PITWALL_* variable and the lab looked for in an empty directory. */
function pitwall(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PITWALL_')) base[k] = v
  return new Promise((res) => {
    execFile(
      process.execPath,
      [join(ROOT, 'dist', 'cmd', 'pitwall.js'), ...args],
      { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

void t.test('pitwall: --help per command, unknown flags named, the lab looked for', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'pw-cli-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const env = { PITWALL_LOCAL_DIR: empty }
  const helps: Array<[string[], RegExp]> = [
    [['state', '--help'], /^usage: pitwall state <sensor\|vehicle> <id>/],
    [['partitions', '--help'], /^usage: pitwall partitions/],
    [['lab', '--help'], /^usage: pitwall lab <command>/],
    [['lab', 'kill-site', '--help'], /^usage: pitwall lab kill-site <site>/],
    [['site', 'status', '--help'], /^usage: pitwall site status/],
    [['simulate', '--help'], /^usage: pitwall simulate --profile/],
    [['train', '--help'], /^usage: pitwall train --history/],
    [['mqtt-users', '--help'], /^usage: pitwall mqtt-users --out/],
  ]
  for (const [args, usage] of helps) {
    const r = await pitwall(args, env)
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`)
    t.match(r.stdout, usage, `${args.join(' ')}: its own usage`)
    if (args.length === 2 && args[0] === 'lab')
      t.match(r.stdout, /kill-site .*\n.*restore-site/, 'lab --help: lists its commands')
    else t.match(r.stdout, /--help\s+this (help|text)/, `${args.join(' ')}: lists its flags`)
  }
  const refused: Array<[string[], string]> = [
    [['partitions', '--bogus'], '--bogus'],
    [['state', 'sensor', 'x', '--colour', 'red'], '--colour'],
    [['lab', 'status', '--verbose'], '--verbose'],
    [['site', 'status', '--hom', '0-7'], '--hom'],
    [['simulate', '--profile', 'plant', '--colour', 'red'], '--colour'],
    [['train', '--bogus', '1'], '--bogus'],
    [['mqtt-users', '--out', 'f', '--anonymous', '--bogus'], '--bogus'],
  ]
  for (const [args, flag] of refused) {
    const r = await pitwall(args, env)
    t.not(r.code, 0, `${args.join(' ')}: refused`)
    t.match(r.stderr, `${flag}: unknown flag`, `${args.join(' ')}: names ${flag}`)
  }
  const lost = await pitwall(['partitions'], env)
  t.equal(lost.code, 1, 'no lab and no PITWALL_*: fails')
  t.match(lost.stderr, /^PW_LAB_NOT_FOUND: no running local lab \(looked for .*lab\.json\)/)
  t.match(lost.stderr, /PITWALL_SITE, PITWALL_NATS_URL, PITWALL_PARTITIONS/, 'says what to set instead')
  await writeFile(
    join(empty, 'lab.json'),
    JSON.stringify({ version: 1, pid: 2 ** 22 + 1, sites: {}, control: { url: 'http://127.0.0.1:1' } }),
  )
  const stale = await pitwall(['lab', 'status'], env)
  t.match(
    stale.stderr,
    /PW_LAB_NOT_FOUND: .*stale: .*lab\.json \(its launcher, pid 4194305, is gone\)/,
    'a state file whose launcher is gone is stale',
  )
})

/** The records of `text` fed in chunks of `size` characters. */
async function records(text: string, size = text.length || 1): Promise<string[][]> {
  async function* chunks(): AsyncGenerator<string> {
    for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size)
  }
  const out: string[][] = []
  for await (const r of csvRecords(chunks(), 'test.csv')) out.push(r.cells)
  return out
}

void t.test('CSV (RFC 4180): quoted fields, doubled quotes, line breaks, CRLF, any chunking', async (t) => {
  const text =
    'entity,ts,action,mode\r\npump-1,1000,repair,"bearing, outer race"\r\n"pump ""2""",2000,routine,\n\npump-3,3000,repair,"seal\nleak"\n'
  const want = [
    ['entity', 'ts', 'action', 'mode'],
    ['pump-1', '1000', 'repair', 'bearing, outer race'],
    ['pump "2"', '2000', 'routine', ''],
    ['pump-3', '3000', 'repair', 'seal\nleak'],
  ]
  for (const size of [1, 2, 3, 7, text.length]) t.same(await records(text, size), want, `chunks of ${size}`)
  t.same(
    await records('a,b\n1,2'),
    [
      ['a', 'b'],
      ['1', '2'],
    ],
    'no line break at the end',
  )
  t.same(await records('a,,"",b\n'), [['a', '', '', 'b']], 'empty fields, quoted or not')
  await t.rejects(records('a,b"c\n'), {
    code: 'PW_CONFIG_INVALID',
    message: /test\.csv: line 1: a quote inside an unquoted field/,
  })
  await t.rejects(records('a,"b"c\n'), { code: 'PW_CONFIG_INVALID', message: /line 1: text after a closing quote/ })
  await t.rejects(records('a\n"b,\nc\n'), {
    code: 'PW_CONFIG_INVALID',
    message: /a quoted field opened on line 2 is not closed/,
  })
})

void t.test('pitwall train reads a maintenance log whose mode holds a comma', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pw-csv-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'm.csv')
  await writeFile(
    file,
    'entity,ts,action,mode\npump-1,7200000,repair,"bearing, outer race"\npump-2,3600000,routine,\n"pump-3",10800000,repair,seal\n',
  )
  const f = await readFailures(file, { logTime: 'failure', jobMs: 0 })
  t.same(f, [
    { entity: 'pump-1', ts: 7_200_000, mode: 'bearing, outer race' },
    { entity: 'pump-3', ts: 10_800_000, mode: 'seal' },
  ])
  await writeFile(file, 'entity,ts,action\npump-1,1,repair,extra\n')
  await t.rejects(readFailures(file, { logTime: 'failure', jobMs: 0 }), {
    code: 'PW_CONFIG_INVALID',
    message: /line 2: 4 cells, header has 3/,
  })
})
