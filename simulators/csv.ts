/**
 * A streaming CSV reader after RFC 4180 (`pitwall train` reads its history and maintenance CSVs with it): fields
 * separated by commas, records by CRLF or LF, a field in double quotes may hold commas, line breaks and doubled
 * quotes (`""` is one `"`). Blank lines are skipped. A quote inside an unquoted field, text after a closing
 * quote or a quoted field left open at the end is a ConfigError naming the file and line. No CSV package is in
 * the dependencies, and this is all the format needs.
 */
import { ConfigError } from '../actors/mod.js'

export interface CsvRecord {
  cells: string[]
  /** Line (1-based) where the record starts. */
  line: number
}

type State = 'start' | 'unquoted' | 'quoted' | 'quote'

/** Records of the CSV text arriving in `chunks` (any split, even inside a field or a CRLF). */
export async function* csvRecords(chunks: AsyncIterable<string | Buffer>, where: string): AsyncGenerator<CsvRecord> {
  let state: State = 'start'
  let field = ''
  let cells: string[] = []
  let line = 1
  let recordLine = 1
  let afterCr = false
  const fail = (msg: string): never => {
    throw new ConfigError(where, `line ${line}: ${msg}`)
  }
  const endField = (): void => {
    cells.push(field)
    field = ''
  }
  const endRecord = (): CsvRecord | undefined => {
    endField()
    const r = cells.length === 1 && cells[0] === '' ? undefined : { cells, line: recordLine }
    cells = []
    state = 'start'
    return r
  }
  for await (const chunk of chunks) {
    for (const c of String(chunk)) {
      if (afterCr) {
        afterCr = false
        // The LF of a CRLF: the record already ended at the CR.
        if (c === '\n') continue
      }
      if (c === '\n' || c === '\r') {
        if (state === 'quoted') {
          field += c
          if (c === '\n') line++
          continue
        }
        const r = endRecord()
        line++
        recordLine = line
        afterCr = c === '\r'
        if (r) yield r
        continue
      }
      if (state === 'start') {
        if (c === '"') state = 'quoted'
        else if (c === ',') endField()
        else {
          field += c
          state = 'unquoted'
        }
      } else if (state === 'unquoted') {
        if (c === ',') {
          endField()
          state = 'start'
        } else if (c === '"') fail('a quote inside an unquoted field (quote the whole field and double the quote: "a ""b""")')
        else field += c
      } else if (state === 'quoted') {
        if (c === '"') state = 'quote'
        else field += c
      } else if (c === '"') {
        field += '"'
        state = 'quoted'
      } else if (c === ',') {
        endField()
        state = 'start'
      } else fail(`text after a closing quote (${JSON.stringify(c)})`)
    }
  }
  if (state === 'quoted') fail(`a quoted field opened on line ${recordLine} is not closed`)
  if (state !== 'start' || cells.length > 0) {
    const r = endRecord()
    if (r) yield r
  }
}

/** Records as objects keyed by the header (the first record); a record of another width is a ConfigError. */
export async function* csvObjects(chunks: AsyncIterable<string | Buffer>, where: string): AsyncGenerator<Record<string, string>> {
  let header: string[] | undefined
  for await (const r of csvRecords(chunks, where)) {
    if (!header) {
      header = r.cells
      continue
    }
    if (r.cells.length !== header.length) throw new ConfigError(where, `line ${r.line}: ${r.cells.length} cells, header has ${header.length}`)
    yield Object.fromEntries(header.map((h, i) => [h, r.cells[i] as string]))
  }
}
