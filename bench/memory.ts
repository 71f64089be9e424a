/**
 * Heap per active actor: N environment actors as the runtime holds them (ActorCell in a Map), each having seen
 * a few readings (open windows, detectors). Run with --expose-gc; prints one JSON line.
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
gc()
const before = process.memoryUsage().heapUsed
const cells = new Map<string, ActorCell>()
for (let i = 0; i < N; i++) {
  const id = `env-${i}`
  const cell = new ActorCell(environment, environment.defaults, { kind: 'sensor', id })
  for (let k = 0; k < 3; k++) {
    cell.applyReading(k + 1, 1_700_000_000_000 + k * 1000, {
      ts: 1_700_000_000_000 + k * 1000,
      fields: { temperature: 21 + k, humidity: 40, co2: 500, pressure: 1013, battery: 80, status: 'ok' },
    }, emit)
  }
  cells.set(`sensor.${id}`, cell)
}
gc()
const after = process.memoryUsage().heapUsed
console.log(JSON.stringify({ bytes_per_active_actor: Math.round((after - before) / N), active_actors: cells.size }))
