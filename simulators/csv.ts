/**
 * A streaming CSV reader after RFC 4180 (`pitwall train` reads its history and maintenance CSVs with it): fields
 * separated by commas, records by CRLF or LF (a lone CR is data), a field in double quotes may hold commas, line breaks and doubled
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

/**
 * Records of the CSV text arriving in `chunks` (any split, even inside a field or a CRLF). Read line by line: a
 * line outside quotes with no quote in it is split at its commas (the common case, as fast as a plain split);
 * any other line goes through the quote state machine, which carries a quoted field over line breaks.
 */
export async function* csvRecords(chunks: AsyncIterable<string | Buffer>, where: string): AsyncGenerator<CsvRecord> {
  const m = new QuoteMachine(where)
  let rest = ''
  let line = 0
  for await (const chunk of chunks) {
    rest += String(chunk)
    let from = 0
    for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n', from)) {
      const r = m.line(rest.slice(from, nl), ++line)
      from = nl + 1
      if (r) yield r
    }
    rest = rest.slice(from)
  }
  if (rest !== '') {
    const r = m.line(rest, ++line)
    if (r) yield r
  }
  m.end()
}

/** The RFC 4180 states over one physical line at a time. */
class QuoteMachine {
  private state: State = 'start'
  private field = ''
  private cells: string[] = []
  private recordLine = 0
  private lineNo = 0
  constructor(private readonly where: string) {}

  /** One line (without its LF); the record it completes, if any. */
  line(raw: string, lineNo: number): CsvRecord | undefined {
    this.lineNo = lineNo
    const cr = raw.endsWith('\r')
    const body = cr ? raw.slice(0, -1) : raw
    if (this.state !== 'quoted') {
      if (!body.includes('"')) return body === '' ? undefined : { cells: body.split(','), line: lineNo }
      this.recordLine = lineNo
    } else {
      // The line break inside a quoted field is part of its value.
      this.field += '\n'
    }
    for (const c of body) this.char(c)
    if (this.state === 'quoted') {
      if (cr) this.field += '\r'
      return undefined
    }
    this.cells.push(this.field)
    const r = { cells: this.cells, line: this.recordLine }
    this.cells = []
    this.field = ''
    this.state = 'start'
    return r
  }

  end(): void {
    if (this.state === 'quoted') this.fail(`a quoted field opened on line ${this.recordLine} is not closed`)
  }

  private char(c: string): void {
    switch (this.state) {
      case 'start':
        if (c === '"') this.state = 'quoted'
        else if (c === ',') this.endField()
        else {
          this.field += c
          this.state = 'unquoted'
        }
        return
      case 'unquoted':
        if (c === ',') this.endField()
        else if (c === '"')
          this.fail('a quote inside an unquoted field (quote the whole field and double the quote: "a ""b""")')
        else this.field += c
        return
      case 'quoted':
        if (c === '"') this.state = 'quote'
        else this.field += c
        return
      case 'quote':
        if (c === '"') {
          this.field += '"'
          this.state = 'quoted'
        } else if (c === ',') this.endField()
        else this.fail(`text after a closing quote (${JSON.stringify(c)})`)
    }
  }

  private endField(): void {
    this.cells.push(this.field)
    this.field = ''
    this.state = 'start'
  }

  private fail(msg: string): never {
    throw new ConfigError(this.where, `line ${this.lineNo}: ${msg}`)
  }
}

/** Records as objects keyed by the header (the first record); a record of another width is a ConfigError. */
export async function* csvObjects(
  chunks: AsyncIterable<string | Buffer>,
  where: string,
): AsyncGenerator<Record<string, string>> {
  let header: string[] | undefined
  for await (const r of csvRecords(chunks, where)) {
    if (!header) {
      header = r.cells
      continue
    }
    if (r.cells.length !== header.length)
      throw new ConfigError(where, `line ${r.line}: ${r.cells.length} cells, header has ${header.length}`)
    yield Object.fromEntries(header.map((h, i) => [h, r.cells[i] as string]))
  }
}
