/**
 * One live feed per console (every output and alarm event of the site), shared by the views, and a per-frame
 * batcher: events are collected as they arrive and handed to a view once per animation frame, so a burst of
 * hundreds of events costs one render, not hundreds.
 */
import { follow, type LiveEvent } from './api.js'

type Listener = (e: LiveEvent) => void

export class LiveHub {
  private readonly listeners = new Set<Listener>()
  private ctl: AbortController | undefined
  constructor(private readonly status: (up: boolean) => void) {}

  start(): void {
    this.ctl = new AbortController()
    follow(
      '',
      (e) => {
        for (const l of this.listeners) l(e)
      },
      this.ctl.signal,
      this.status,
    )
  }
  stop(): void {
    this.ctl?.abort()
  }
  on(l: Listener): () => void {
    this.listeners.add(l)
    return () => {
      this.listeners.delete(l)
    }
  }
}

/** Calls `flush` at most once per animation frame with everything `push`ed since the last frame. */
export function frameBatcher<T>(flush: (items: T[]) => void): { push(item: T): void; stop(): void } {
  let items: T[] = []
  let scheduled = 0
  let measured = 0
  return {
    push(item) {
      items.push(item)
      if (scheduled === 0) {
        scheduled = requestAnimationFrame(() => {
          scheduled = 0
          const batch = items
          items = []
          // The frame's work (applying the events and Preact's re-render, which runs in a microtask queued
          // before ours) as a User Timing measure, `pitwall:frame`, for the browser's profiler and the tests.
          const start = performance.now()
          flush(batch)
          queueMicrotask(() => {
            performance.measure('pitwall:frame', { start, end: performance.now() })
            if (++measured % 2_000 === 0) performance.clearMeasures('pitwall:frame')
          })
        })
      }
    },
    stop() {
      if (scheduled !== 0) cancelAnimationFrame(scheduled)
    },
  }
}
