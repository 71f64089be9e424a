/**
 * Heap per active actor: N environment actors as the runtime holds them (ActorCell in a Map). Steady state:
 * each actor has seen 10 minutes of readings at one per 10 s, so every window pane of the 1-minute tumbling and
 * the 5-minute sliding windows is populated. Also reports a fresh actor (3 readings), and the steady actor when every
 * reading carries a `rid` (the dedupe set holds the last 10 minutes of ids). Run with --expose-gc;
 * prints one JSON line.
 */
import { ActorCell } from '../actors/cell.js'
import { environment } from '../actors/kinds/sensor/environment.js'
import type { Output } from '../actors/types.js'

const N = Number(process.argv[2] ?? 100_000)
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) {
  process.stderr.write('run with node --expose-gc\n')
  process.exit(2)
}
const emit = (_o: Omit<Output, 'site' | 'partition' | 'token'>): void => undefined
const T0 = 1_700_000_000_000

function measure(readings: number, stepMs: number, rids = false): number {
  gc?.()
  const before = process.memoryUsage().heapUsed
  const cells = new Map<string, ActorCell>()
  for (let i = 0; i < N; i++) {
    const id = `env-${i}`
    cells.set(`sensor.${id}`, new ActorCell(environment, environment.defaults, { kind: 'sensor', id }))
  }
  for (let k = 0; k < readings; k++) {
    let seq = k * N
    for (const cell of cells.values()) {
      const ts = T0 + k * stepMs
      cell.applyReading(
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
          ...(rids ? { rid: `${k}-${seq}` } : {}),
        },
        emit,
      )
    }
  }
  gc?.()
  const after = process.memoryUsage().heapUsed
  const per = Math.round((after - before) / cells.size)
  cells.clear()
  return per
}

const fresh = measure(3, 1_000)
const steady = measure(60, 10_000)
// The same with a rid on every reading: the 60 ids of the last 10 minutes are kept (actors/dedupe.ts).
const withRids = measure(60, 10_000, true)
console.log(
  JSON.stringify({
    bytes_per_active_actor: steady,
    active_actors: N,
    fresh_bytes_per_actor: fresh,
    with_rids_bytes_per_actor: withRids,
  }),
)
