/**
 * A small driver over the real ActorCell (actors/cell.ts) for profile tests: no broker, no partition runner.
 * Messages get increasing stream sequences and processing times; snapshots taken mid-run go through
 * JSON.stringify/parse and a new cell, exactly as a passivation/activation or a crash-restart would.
 */
import { ActorCell } from '../../actors/cell.js'
import type { SnapshotRecord } from '../../actors/cell.js'
import type { ActorDefinition } from '../../actors/actor.js'
import type { EntityRef, Output, Reading } from '../../actors/types.js'

/** A reading or a processing-time tick; `procTime` overrides the generated processing time. */
export type HarnessMessage = { reading: Reading; procTime?: number } | { tick: true; procTime?: number }

export type EmittedOutput = Omit<Output, 'site' | 'partition' | 'token'>

export interface RunOptions<C> {
  /** Profile configuration (default: the profile's defaults). */
  config?: C
  /** Stream sequence of the first message (default 1); each message takes the next one. */
  firstSeq?: number
  /** Processing time of the first message (default: the first reading's event time, else 0). */
  startProcTime?: number
  /** Processing time added per message when a message has no `procTime` (default 1000). */
  procStepMs?: number
  /** Indexes of messages before which the cell is snapshotted and rebuilt from the JSON round trip. */
  snapshotBefore?: readonly number[]
  /** Fencing token written into snapshots (default 1). */
  token?: number
  /** Start from this snapshot instead of a fresh cell. */
  from?: SnapshotRecord
}

export interface RunResult {
  outputs: EmittedOutput[]
  /** The cell at the end (after any restores). */
  cell: ActorCell
  /** The snapshots taken (after the JSON round trip). */
  snapshots: SnapshotRecord[]
  /** Stream sequence and processing time of the last message. */
  lastSeq: number
  lastProcTime: number
}

/** Rebuilds a cell from its snapshot after a JSON round trip (what the KV store would give back). */
export function restoreCell<S, C>(
  def: ActorDefinition<S, C>,
  config: C,
  entity: EntityRef,
  cell: ActorCell,
  token = 1,
): { cell: ActorCell; snap: SnapshotRecord } {
  const snap = JSON.parse(JSON.stringify(cell.snapshot(token))) as SnapshotRecord
  return { cell: new ActorCell(def, config, entity, snap), snap }
}

/** Runs `messages` through one actor cell and collects its outputs. */
export function runActor<S, C>(
  def: ActorDefinition<S, C>,
  entity: EntityRef,
  messages: readonly HarnessMessage[],
  opts: RunOptions<C> = {},
): RunResult {
  const config = opts.config ?? def.defaults
  let cell = new ActorCell(def, config, entity, opts.from)
  const outputs: EmittedOutput[] = []
  const snapshots: SnapshotRecord[] = []
  const emit = (o: EmittedOutput): void => {
    outputs.push(o)
  }
  const snapAt = new Set(opts.snapshotBefore ?? [])
  const step = opts.procStepMs ?? 1000
  const firstReading = messages.find((m): m is { reading: Reading } => 'reading' in m)
  let proc = (opts.startProcTime ?? firstReading?.reading.ts ?? 0) - step
  let seq = (opts.firstSeq ?? 1) - 1
  messages.forEach((m, i) => {
    if (snapAt.has(i)) {
      const r = restoreCell(def, config, entity, cell, opts.token ?? 1)
      cell = r.cell
      snapshots.push(r.snap)
    }
    seq++
    proc = m.procTime ?? proc + step
    if ('reading' in m) cell.applyReading(seq, proc, m.reading, emit)
    else cell.applyTick(seq, proc, emit)
  })
  return { outputs, cell, snapshots, lastSeq: seq, lastProcTime: proc }
}
