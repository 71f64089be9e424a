/**
 * `node dist/bench/csv.js [rows=500000] [reps=3]`
 *
 * What `pitwall train`'s RFC 4180 reader (simulators/csv.ts) costs against the `split(',')` per line it replaced,
 * on a history CSV like the asset simulator writes (entity, ts and five numeric fields, no quotes: the reader's
 * fast path) and on the same rows with the entity quoted (every line through the quote machine). Reports the
 * median seconds of `reps` full reads of each. Pure CPU and file cache; grows with load on a busy machine.
 * Prints one JSON line.
 */
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { csvObjects } from '../simulators/csv.js'

const ROWS = Number(process.argv[2] ?? 500_000)
const REPS = Number(process.argv[3] ?? 3)

/** The reader `pitwall train` had: one split per line, no quotes. */
async function* splitRows(path: string): AsyncGenerator<Record<string, string>> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity })
  let header: string[] | undefined
  for await (const raw of rl) {
    const text = raw.trim()
    if (text === '') continue
    const cells = text.split(',')
    if (!header) {
      header = cells
      continue
    }
    yield Object.fromEntries(header.map((h, i) => [h, cells[i] as string]))
  }
}

async function seconds(read: () => AsyncGenerator<Record<string, string>>): Promise<number> {
  const times: number[] = []
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now()
    let n = 0
    for await (const row of read()) n += row.ts === undefined ? 0 : 1
    if (n !== ROWS) throw new Error(`read ${n} rows, wrote ${ROWS}`)
    times.push((performance.now() - t0) / 1000)
  }
  return Number((times.sort((a, b) => a - b)[Math.floor(times.length / 2)] as number).toFixed(3))
}

const dir = await mkdtemp(join(tmpdir(), 'pw-bench-csv-'))
try {
  const line = (i: number, q: string): string =>
    `${q}pump-${i % 40}${q},${1_700_000_000_000 + i * 60_000},${(i % 300) / 100},${60 + (i % 50) / 10},${5 + (i % 7) / 10},${100 + (i % 11)},${(i % 13) / 13}`
  const plain = join(dir, 'plain.csv')
  const quoted = join(dir, 'quoted.csv')
  const head = 'entity,ts,vibration,temperature,pressure,flow,load\n'
  await writeFile(plain, head + Array.from({ length: ROWS }, (_, i) => line(i, '')).join('\n') + '\n')
  await writeFile(quoted, head + Array.from({ length: ROWS }, (_, i) => line(i, '"')).join('\n') + '\n')
  const split = await seconds(() => splitRows(plain))
  const rfc = await seconds(() => csvObjects(createReadStream(plain, 'utf8'), plain))
  const rfcQuoted = await seconds(() => csvObjects(createReadStream(quoted, 'utf8'), quoted))
  process.stdout.write(
    `${JSON.stringify({ rows: ROWS, reps: REPS, split_s: split, rfc4180_s: rfc, rfc4180_quoted_s: rfcQuoted })}\n`,
  )
} finally {
  await rm(dir, { recursive: true, force: true })
}
