#!/usr/bin/env node
// `npm test`: the whole suite in two lanes, `npm test -- <files or tap flags>`: tap as given.
//
// The suite is ~90 files; most of its time is spent waiting (servers starting, leases expiring, windows closing),
// so two tap processes side by side finish in a little more than half the time on 2 cores. What must not share
// the machine with another of its kind are the multi-process tests that kill servers and time failovers
// (HEAVY below): they all run in lane A, one after another, as before; lane B runs everything else. Within a lane
// tap runs one file at a time (package.json "tap".jobs = 1). Files are balanced by the durations measured in the
// last full run (.ci/test-times.json, rewritten by every full run; unknown files count 15 s).
//
// Output: each file's TAP block is printed whole when the file ends (lanes never interleave inside a block),
// then a summary per lane with the slowest files. Exit code: non-zero when either lane failed.
// PITWALL_TEST_LANES=1 runs one lane (everything in tap, as `tap` alone would).
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const TIMES = join(ROOT, '.ci', 'test-times.json')

/** Multi-process tests that kill or time servers: never two of them at once (all in lane A). */
const HEAVY = new Set(
  [
    'crash.test.ts',
    'crash-environment.test.ts',
    'crash-race.test.ts',
    'edge-dedupe.test.ts',
    'failover.test.ts',
    'ownership.test.ts',
    'restart-gate.test.ts',
    'site-procedure.test.ts',
    'sites.test.ts',
    'split.test.ts',
    'strays.test.ts',
    'nomad-controller.test.ts',
    'nomad-drain.test.ts',
    'lab-drill.test.ts',
    'split-loss.test.ts',
    'failover-lag.test.ts',
  ].map((f) => `test/integration/${f}`),
)

const args = process.argv.slice(2)
if (args.length > 0 || process.env.PITWALL_TEST_LANES === '1') {
  const child = spawn('npx', ['tap', ...args], { cwd: ROOT, stdio: 'inherit' })
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
} else {
  await lanes()
}

function testFiles(dir = join(ROOT, 'test')) {
  const out = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...testFiles(p))
    else if (e.name.endsWith('.test.ts')) out.push(relative(ROOT, p))
  }
  return out.sort()
}

function readTimes() {
  try {
    return JSON.parse(readFileSync(TIMES, 'utf8'))
  } catch {
    return {}
  }
}

/** Lane A: every heavy file, then light ones while it is the shorter lane; lane B: the rest. Longest first. */
function plan(files, times) {
  const est = (f) => times[f] ?? 15
  const byTime = (a, b) => est(b) - est(a)
  const a = files.filter((f) => HEAVY.has(f)).sort(byTime)
  const b = []
  let ta = a.reduce((s, f) => s + est(f), 0)
  let tb = 0
  for (const f of files.filter((f) => !HEAVY.has(f)).sort(byTime)) {
    if (ta < tb) {
      a.push(f)
      ta += est(f)
    } else {
      b.push(f)
      tb += est(f)
    }
  }
  return [
    { name: 'A', files: a, est: ta },
    { name: 'B', files: b, est: tb },
  ]
}

function runLane(lane, times) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn('npx', ['tap', ...lane.files], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let block = []
    let rest = ''
    const summary = []
    const onLine = (line) => {
      const end = /^(not )?ok \d+ - (test\/\S+\.test\.ts)(?: # time=([\d.]+)ms)?/.exec(line)
      block.push(line)
      if (end) {
        if (end[3]) times[end[2]] = Math.round(Number(end[3]) / 100) / 10
        process.stdout.write(`${block.join('\n')}\n`)
        block = []
      } else if (/^# (\{ total|time=|No coverage)/.test(line)) {
        summary.push(line)
      }
    }
    child.stdout.on('data', (d) => {
      const lines = (rest + d).split('\n')
      rest = lines.pop() ?? ''
      for (const l of lines) onLine(l)
    })
    child.stderr.on('data', (d) => process.stderr.write(d))
    child.on('exit', (code, signal) => {
      if (rest) onLine(rest)
      if (block.length) process.stdout.write(`${block.join('\n')}\n`)
      resolve({ lane, code: code ?? (signal ? 1 : 0), s: (Date.now() - started) / 1000, summary })
    })
  })
}

async function lanes() {
  const files = testFiles()
  const old = readTimes()
  const times = {}
  const planned = plan(files, old)
  for (const l of planned) {
    process.stdout.write(`# lane ${l.name}: ${l.files.length} files, ~${Math.round(l.est)} s by the last run\n`)
  }
  const results = await Promise.all(planned.map((l) => runLane(l, times)))
  let failed = false
  for (const r of results) {
    failed ||= r.code !== 0
    const slow = r.lane.files
      .filter((f) => times[f] !== undefined)
      .sort((x, y) => times[y] - times[x])
      .slice(0, 5)
    process.stdout.write(`# lane ${r.lane.name}: exit ${r.code} in ${r.s.toFixed(0)} s ${r.summary.join(' ')}\n`)
    process.stdout.write(`#   slowest: ${slow.map((f) => `${f} ${times[f]} s`).join(', ')}\n`)
  }
  // Every file's new time; files that did not report (crashed, timed out) keep their old one.
  const merged = Object.fromEntries(files.map((f) => [f, times[f] ?? old[f]]).filter(([, v]) => v !== undefined))
  try {
    writeFileSync(TIMES, `${JSON.stringify(merged, null, 1)}\n`)
  } catch {
    /* read-only checkout: keep going */
  }
  process.exit(failed ? 1 : 0)
}
