/**
 * Event-time windows: tumbling and sliding (`EventWindows`, several definitions sharing one store) and session
 * windows (`SessionWindows`). Pure, no I/O; the crash test's reference computation follows the semantics below.
 *
 * Windows (all intervals half-open, times in ms of event time):
 * - Tumbling, size W: [floor(ts/W)*W, +W). Sliding, size W, slide S (W a multiple of S): every [k*S, k*S+W)
 *   with k*S <= ts < k*S+W, i.e. W/S windows per reading. A tumbling window is a sliding one with S = W.
 * - Each definition i has a horizon `closedThrough[i]` = max(every watermark passed to `advance`, end of every
 *   window `flushAll` closed); it starts at -Infinity and never decreases. A window with end <= closedThrough
 *   is CLOSED and never reopens; a window with end > closedThrough is OPEN.
 * - `add(ts, fields, counts)`: the reading goes into each of its windows that is open. Bit i of the result is
 *   set when the reading is LATE for definition i: all of its windows of that definition are closed (its last
 *   window, start floor(ts/S)*S, has end <= closedThrough[i]; a non-finite ts is late everywhere). The caller
 *   calls `advance(watermark)` before `add` with the watermark that includes the reading (the runtime raises
 *   max event time before the handler runs), so "closed" means exactly "end <= current watermark, or flushed".
 * - `advance(wm)`: closes, per definition, every window with closedThrough < end <= wm that holds at least one
 *   accepted reading, and returns them (idleClosed false). `flushAll()` closes every open window holding a
 *   reading (idleClosed true). Both return windows sorted by (end, start, definition order), each exactly once.
 *   Windows without readings are never emitted.
 * - Aggregates per configured numeric field over the window's accepted readings: count, sum, min, max, mean =
 *   sum/count, population variance, stddev, first/last by event time (ties: the earlier arrival is first, the
 *   later arrival is last). A value that is not a finite number is skipped for that field only. Counts: `readings`
 *   (accepted readings) plus each configured counter (the sum of what `add` was given for it).
 *
 * Store: readings are aggregated into panes of P = gcd of all slides; a window is the merge of its W/P panes,
 * so a reading costs one pane update whatever the number of windows, and a 5-minute sliding window costs five
 * 1-minute panes, not five window copies. A pane is dropped when every window containing it is closed. Panes
 * live in one flat `number[]` (unboxed doubles): [start, readings, counters..., fields x 9 slots], or, when every
 * reading of the pane carried every field, a compact record with one first/last time per pane, counters only when
 * non-zero, and no last values once no open window can end on the pane (see "compact pane records").
 */

export { compileWindows } from './layout.js'
export type { WindowLayout, WindowOptions, WindowSpec } from './layout.js'
export { EventWindows } from './event.js'
export { SessionWindows } from './session.js'
