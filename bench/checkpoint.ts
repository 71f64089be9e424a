/**
 * `node dist/bench/checkpoint.js [actors=1000] [reps=20]`
 *
 * The cost a checkpoint puts on a worker's event loop: serialising the snapshots of every dirty actor. N
 * environment actors in steady state (10 minutes of readings at one per 10 s: every pane of the 1-minute tumbling
 * and 5-minute sliding windows populated), all dirty, as a worker's partitions hold them at 10,000 readings/s
 * (2,000 sensors over 2 workers, a checkpoint a second). Reports, median over `reps`:
 * - `serialise_all_ms`: JSON.stringify of every snapshot in one go, which is what a checkpoint did before it
 *   serialised in slices: the longest stall every reading queued behind it waited;
 * - `per_snapshot_us` and `bytes_per_snapshot`;
 * - `slice_ms` (CAPTURE_SLICE_MS of actors/partition.ts) and `longest_slice_ms`: the longest run without a
 *   yield when the same work is cut in slices of that length, what bounds the stall now.
 * Pure CPU, no broker: the figure is repeatable on a quiet machine and grows with load on a busy one.
 * Prints one JSON line.
 */
import { ActorCell } from '../actors/cell.js'
import { environment } from '../actors/kinds/sensor/environment.js'
import type { Output } from '../actors/types.js'

const N = Number(process.argv[2] ?? 1_000)
const REPS = Number(process.argv[3] ?? 20)
const SLICE_MS = 2
const T0 = 1_700_000_000_000
const emit = (_o: Omit<Output, 'site' | 'partition' | 'token'>): void => undefined

const cells: ActorCell[] = []
for (let i = 0; i < N; i++)
  cells.push(new ActorCell(environment, environment.defaults, { kind: 'sensor', id: `env-${i}` }))
let seq = 0
for (let k = 0; k < 60; k++) {
  for (const c of cells) {
    const ts = T0 + k * 10_000
    c.applyReading(
      ++seq,
      ts,
      {
        ts,
        fields: {
          temperature: 21 + (k % 5),
          humidity: 40 + (k % 3),
          co2: 500 + k,
          pressure: 1013,
          battery: 80,
          status: 'ok',
        },
      },
      emit,
    )
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const all: number[] = []
const longest: number[] = []
let bytes = 0
for (let r = 0; r < REPS; r++) {
  const t0 = performance.now()
  bytes = 0
  for (const c of cells) bytes += JSON.stringify(c.snapshot(1)).length
  all.push(performance.now() - t0)
  // The same work in slices: the longest run between two yields.
  let sliceStart = performance.now()
  let worst = 0
  for (const c of cells) {
    const now = performance.now()
    if (now - sliceStart >= SLICE_MS) {
      worst = Math.max(worst, now - sliceStart)
      sliceStart = performance.now()
    }
    JSON.stringify(c.snapshot(1))
  }
  longest.push(Math.max(worst, performance.now() - sliceStart))
}
const total = median(all)
console.log(
  JSON.stringify({
    actors: N,
    reps: REPS,
    serialise_all_ms: +total.toFixed(2),
    per_snapshot_us: +((total * 1000) / N).toFixed(2),
    bytes_per_snapshot: Math.round(bytes / N),
    slice_ms: SLICE_MS,
    longest_slice_ms: +median(longest).toFixed(2),
  }),
)
