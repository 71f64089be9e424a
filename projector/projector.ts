/**
 * The projector: one durable pull consumer on a site's OUT stream, batches of messages written to PostgreSQL
 * in one transaction each (batch.ts plans, writer.ts writes), the last message of a batch acked (AckAll)
 * only after COMMIT. Messages are pulled with `fetch` one batch at a time rather than `consume`: `consume`
 * keeps pulling while a write is stuck (and the server redelivers every ack_wait), so memory would grow with
 * the outage; with `fetch` at most two batches are held plus the one being written.
 *
 * The position that counts is the cursor stored in PostgreSQL with the rows, not JetStream's ack floor: a
 * crash between COMMIT and ack only causes redeliveries, which the cursor skips. Because AckAll acks
 * everything below the acked message, messages delivered but never committed (prefetched before a stop or
 * crash) would be acked implicitly by the next batch and lost; so at start, if the consumer has delivered
 * past the cursor, it is recreated to deliver from cursor + 1.
 *
 * Several projectors may read one stream into different databases (a second deployment's, a reporting
 * copy): each has its own consumer, named `<durable>_<deployment>_<dbid>` (identity.ts), so none recreates
 * another's. The cursor row keeps the plain durable name: it lives in the database the dbid names.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream'
import { nanos, type NatsConnection } from '@nats-io/transport-node'
import type pg from 'pg'
import {
  checkStreamDeployment,
  ConfigError,
  createLog,
  type LogFn,
  DEPLOYMENT_PATTERN,
  FencedError,
  ID_PATTERN,
  outStreamSubjects,
  PitwallError,
  RUNTIME_DEFAULTS,
  RUNTIME_ENV,
  RuntimeErrorCodes,
  SITE_PATTERN,
  StreamConfigError,
  UnreachableError,
} from '../actors/mod.js'
import { fenceKey, planBatch, rejectPlan, type BatchPlan, type Seals, type StreamMessage } from './batch.js'
import { createPool, guardPool, isDataError, messageOf, PG_SETTING } from './db.js'
import { claimDatabase } from './identity.js'
import { migrate } from './migrate.js'
import type { ProjectorObserver } from './domain-metrics.js'
import { readCursor, readFences, writeBatch, type CursorKey } from './writer.js'

export interface ProjectorOptions {
  nc: NatsConnection
  /** A pool to use (the caller ends it), or `pgUrl` for a pool the projector owns. Exactly one. */
  pool?: pg.Pool
  pgUrl?: string
  /** Site whose outputs this projector reads (`out.<site>.>`). */
  site: string
  /** Stream name; default `OUT`. */
  stream?: string
  /** Deployment this projector belongs to (PITWALL_DEPLOYMENT); checked against the stream and the database. Default `default`. */
  deployment?: string
  /** Base of the durable consumer's name (`<durable>_<deployment>_<dbid>`) and of the cursor row; default `projector`. */
  durable?: string
  /** Messages per transaction, at most; default 500. */
  batchSize?: number
  /** Longest wait before a partial batch is written, ms; default 20. */
  batchMs?: number
  /** Unacked messages the server lets this consumer hold (the memory bound); default 20,000. */
  maxAckPending?: number
  /** Redelivery time of an unacked message, ms; default 30,000. */
  ackWaitMs?: number
  /** Retry delays after a failed write, ms; default 100 doubling to 5,000. */
  retryMinMs?: number
  retryMaxMs?: number
  /** Where the projector logs (actors/log.ts); default a `projector` logger of its own (debug: per batch). */
  log?: LogFn
  /** Sees every committed batch (domain metrics, domain-metrics.ts); seeded at start from the database. */
  observer?: ProjectorObserver
}

export interface ProjectorStats {
  /** Outputs written (fences included) since start. */
  applied: number
  /** Outputs refused because a newer fencing token owns their partition. */
  rejectedStale: number
  /** Messages set aside in projector_rejects (undecodable or refused by the database). */
  rejectedMalformed: number
  /** Redeliveries skipped because the cursor was already past them. */
  duplicates: number
  /** Rows deleted because a seal put their positions off the chain (a split's loser; docs/sites.md). */
  retracted: number
  batches: number
  /** Last stream sequence committed (the cursor). */
  lastSeq: number
  /** Set when the projector stopped writing because of an error it cannot retry past. */
  failed?: string
}

export const PROJECTOR_DEFAULTS = {
  stream: 'OUT',
  durable: 'projector',
  batchSize: 500,
  batchMs: 20,
  maxAckPending: 20_000,
  ackWaitMs: 30_000,
  retryMinMs: 100,
  retryMaxMs: 5_000,
} as const

// How long one fetch waits for messages before the next is issued (the server's long-poll).
const FETCH_EXPIRES_MS = 5_000

interface Waiter {
  seq: number
  resolve: () => void
  reject: (err: unknown) => void
  timer: NodeJS.Timeout
}

type Settings = Required<Omit<ProjectorOptions, 'nc' | 'pool' | 'pgUrl' | 'log' | 'observer'>>

/** Projects one site's OUT stream into PostgreSQL. */
export class Projector {
  private readonly nc: NatsConnection
  private readonly cfg: Readonly<Settings>
  private readonly log: LogFn
  private readonly observer: ProjectorObserver | undefined
  private readonly pool: pg.Pool
  private readonly ownsPool: boolean
  private readonly unguard: () => void
  private readonly key: CursorKey
  // This site's outputs: a stream that also sources the peer's keeps them apart by subject.
  private readonly filter: string
  private readonly js: JetStreamClient
  private jsm: JetStreamManager | undefined
  // The durable consumer's name, known once the database is identified (start).
  private consumerName = ''

  private cursor = 0
  private fences = new Map<string, number>()
  private readonly counters = {
    applied: 0,
    rejectedStale: 0,
    rejectedMalformed: 0,
    duplicates: 0,
    batches: 0,
    retracted: 0,
  }
  private failure: unknown

  // The fetch in progress, closed by stop() so the loop ends promptly.
  private current: ConsumerMessages | undefined
  private loop: Promise<void> = Promise.resolve()
  private buffer: JsMsg[] = []
  private bufferSince = 0
  private timer: NodeJS.Timeout | undefined
  // One batch is in the database at a time; the next one fills meanwhile and goes as soon as it is done.
  private busy = false
  private writing: Promise<void> = Promise.resolve()
  private stopping = false
  private draining = false
  private waiters: Waiter[] = []

  constructor(opts: ProjectorOptions) {
    this.cfg = Object.freeze(settings(opts))
    this.nc = opts.nc
    this.log = opts.log ?? createLog('projector', { site: opts.site })
    this.observer = opts.observer
    if ((opts.pool === undefined) === (opts.pgUrl === undefined)) {
      throw new ConfigError(PG_SETTING, 'give the projector exactly one of a pool or a connection URL')
    }
    this.ownsPool = opts.pool === undefined
    this.pool = opts.pool ?? createPool(opts.pgUrl as string)
    this.unguard = guardPool(this.pool, (err) => this.log('warn', 'PostgreSQL connection lost', { error: err.message }))
    this.key = { site: this.cfg.site, stream: this.cfg.stream, durable: this.cfg.durable }
    this.filter = outStreamSubjects(this.cfg.site)[0] as string
    this.js = jetstream(this.nc)
  }

  /**
   * Migrates the database, checks the deployment recorded in it and in the stream, loads cursor and fences,
   * (re)creates the consumer and starts consuming.
   */
  async start(): Promise<void> {
    await migrate(this.pool)
    this.jsm = await jetstreamManager(this.nc)
    // The stream first: a projector of the wrong deployment must not claim a fresh database on its way out.
    await checkStreamDeployment(this.jsm, this.cfg.stream, this.cfg.deployment)
    const id = await claimDatabase(this.pool, this.cfg.deployment)
    this.consumerName = consumerName(this.cfg.durable, this.cfg.deployment, id.dbid)
    this.cursor = await readCursor(this.pool, this.key)
    this.fences = await readFences(this.pool)
    await this.observer?.start(this.pool)
    await this.ensureConsumer(this.jsm)
    const consumer = await this.js.consumers.get(this.cfg.stream, this.consumerName)
    this.loop = this.run(consumer)
    this.log('info', 'projector started', {
      ...this.key,
      consumer: this.consumerName,
      database: id.database,
      cursor: this.cursor,
      fences: this.fences.size,
    })
  }

  /** The durable consumer's name on the stream (set by start()). */
  consumer(): string {
    return this.consumerName
  }

  /** Stops consuming, writes and acks what was received, and releases the pool if the projector owns it. */
  async stop(): Promise<void> {
    if (this.stopping) return await this.loop
    this.stopping = true
    // close() resolves only once the loop has iterated the fetch to its end: awaiting it before the loop would
    // deadlock when the loop is not iterating (still fetching, or waiting for a write).
    const closing = this.current?.close()
    await this.loop
    await closing
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(this.failure ?? new PitwallError(RuntimeErrorCodes.SHUTTING_DOWN, 'projector stopped'))
    }
    if (this.ownsPool) await this.pool.end()
    this.unguard()
  }

  /** Resolves when the projector stops consuming: with the error that stopped it, or undefined after stop(). */
  async closed(): Promise<unknown> {
    await this.loop
    return this.failure
  }

  /** Counters since start and the committed cursor. */
  stats(): ProjectorStats {
    const s: ProjectorStats = { ...this.counters, lastSeq: this.cursor }
    if (this.failure !== undefined) s.failed = messageOf(this.failure)
    return s
  }

  /** Resolves once every message up to stream sequence `seq` is committed. */
  async waitForSeq(seq: number, timeoutMs = 30_000): Promise<void> {
    if (this.cursor >= seq) return
    if (this.failure !== undefined) throw this.failure
    if (this.stopping) throw new PitwallError(RuntimeErrorCodes.SHUTTING_DOWN, 'projector stopped')
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer)
        reject(
          new PitwallError(
            RuntimeErrorCodes.QUERY_TIMEOUT,
            `projector did not reach stream sequence ${seq} within ${timeoutMs} ms (at ${this.cursor})`,
          ),
        )
      }, timeoutMs)
      this.waiters.push({ seq, resolve, reject, timer })
    })
  }

  /**
   * Resolves once everything the stream holds for this projector right now is committed (waitForSeq on the
   * last message matching the filter). One lookup, then no polling: consumer info on a filtered consumer
   * makes the server count pending messages, which slows delivery when done often.
   */
  async caughtUp(timeoutMs = 30_000): Promise<void> {
    const jsm = this.jsm
    if (!jsm) throw new PitwallError(RuntimeErrorCodes.SHUTTING_DOWN, 'projector is not started')
    const last = await jsm.streams.getMessage(this.cfg.stream, { last_by_subj: this.filter })
    if (last) await this.waitForSeq(last.seq, timeoutMs)
  }

  /**
   * OUT messages of this site not yet committed: the stream sequence of the last message matching the filter
   * minus the cursor (0 when there is none). Counted in stream sequences, so a stream that also sources the
   * peer's outputs makes it an upper bound. Read at scrape time (one lookup).
   */
  async lag(): Promise<number> {
    const jsm = this.jsm
    if (!jsm) return 0
    const last = await jsm.streams.getMessage(this.cfg.stream, { last_by_subj: this.filter })
    return last ? Math.max(0, last.seq - this.cursor) : 0
  }

  private async ensureConsumer(jsm: JetStreamManager): Promise<void> {
    const { stream } = this.cfg
    const durable = this.consumerName
    const info = await jsm.streams.info(stream).catch((err: unknown) => {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) {
        throw new StreamConfigError(RuntimeErrorCodes.STREAM_MISSING, `stream ${stream} does not exist`)
      }
      throw new UnreachableError(
        RuntimeErrorCodes.NATS_UNREACHABLE,
        'nats.url',
        `cannot read stream ${stream}: ${messageOf(err)}`,
        err,
      )
    })
    if (info.state.last_seq < this.cursor) {
      throw new StreamConfigError(
        RuntimeErrorCodes.STREAM_INCOMPATIBLE,
        `stream ${stream} ends at sequence ` +
          `${info.state.last_seq} but projector ${durable} has committed up to ${this.cursor}: the stream was ` +
          `recreated; reset the projector's row in projector_cursors to project it again`,
      )
    }
    if (this.cursor > 0 && info.state.first_seq > this.cursor + 1) {
      this.log('warn', 'stream messages expired before they were projected', {
        stream,
        from: this.cursor + 1,
        to: info.state.first_seq - 1,
      })
    }
    const filter = this.filter
    const existing = await jsm.consumers.info(stream, durable).catch((err: unknown) => {
      if (isApiError(err, JetStreamApiCodes.ConsumerNotFound)) return undefined
      throw err
    })
    if (!existing) {
      // Before deployments, the consumer was named after the durable alone; an old projector may still use it.
      const legacy = await jsm.consumers.info(stream, this.cfg.durable).catch(() => undefined)
      if (legacy) {
        this.log(
          'info',
          'a consumer from before deployment identities remains; delete it once no older projector runs',
          { stream, legacy: this.cfg.durable, consumer: durable },
        )
      }
    }
    if (existing) {
      const c = existing.config
      const reusable =
        existing.delivered.stream_seq <= this.cursor &&
        c.ack_policy === AckPolicy.All &&
        (c.filter_subject ?? '') === filter
      if (reusable) return
      this.log('info', 'recreating projector consumer to resume at the committed cursor', {
        durable,
        delivered: existing.delivered.stream_seq,
        cursor: this.cursor,
      })
      await jsm.consumers.delete(stream, durable)
    }
    const cfg: Partial<ConsumerConfig> = {
      durable_name: durable,
      ack_policy: AckPolicy.All,
      max_ack_pending: this.cfg.maxAckPending,
      ack_wait: nanos(this.cfg.ackWaitMs),
      filter_subject: filter,
      ...(this.cursor === 0
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.cursor + 1 }),
    }
    await jsm.consumers.add(stream, cfg)
  }

  private async run(consumer: Consumer): Promise<void> {
    for (let failures = 0; !this.stopping && this.failure === undefined;) {
      try {
        // A fetch is a long poll: messages are yielded as they arrive, the timer cuts batches.
        const msgs = await consumer.fetch({ max_messages: this.cfg.batchSize, expires: FETCH_EXPIRES_MS })
        this.current = msgs
        // stop() came while this fetch was being issued: end it; the loop below drains it (awaiting the close
        // here would wait for that very loop, forever).
        if (this.stopping) void msgs.close()
        for await (const m of msgs) {
          this.push(m)
          // Backpressure: pull no more while a full batch waits for the one in the database.
          while (this.buffer.length >= this.cfg.batchSize && this.failure === undefined) await this.writing
        }
        failures = 0
      } catch (err) {
        if (this.stopping) break
        if (this.nc.isClosed()) {
          this.fail(err, 'NATS connection closed')
          break
        }
        failures++
        const delay = this.backoff(failures)
        this.log('warn', 'fetching from OUT failed; retrying', { error: messageOf(err), delayMs: delay })
        // Settle what was received before touching the consumer, which may have to be recreated.
        await this.drain()
        await sleep(delay)
        if (this.jsm && !this.stopping)
          await this.ensureConsumer(this.jsm).catch((e: unknown) => {
            this.log('warn', 'checking the projector consumer failed', { error: messageOf(e) })
          })
      }
    }
    await this.drain()
  }

  private push(m: JsMsg): void {
    if (this.buffer.length === 0) this.bufferSince = Date.now()
    this.buffer.push(m)
    this.kick()
  }

  /** Starts a write when none is running and the buffer is full, old enough, or being drained. */
  private kick(): void {
    if (this.failure !== undefined) {
      // Nothing more can be committed in order; unacked messages are redelivered after a restart.
      this.buffer = []
      clearTimeout(this.timer)
      return
    }
    if (this.busy || this.buffer.length === 0) return
    const waited = Date.now() - this.bufferSince
    if (this.buffer.length >= this.cfg.batchSize || waited >= this.cfg.batchMs || this.draining) {
      clearTimeout(this.timer)
      this.timer = undefined
      const batch = this.buffer.splice(0, this.cfg.batchSize)
      this.bufferSince = Date.now()
      this.busy = true
      this.writing = this.commit(batch).finally(() => {
        this.busy = false
        this.kick()
      })
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined
        this.kick()
      }, this.cfg.batchMs - waited)
    }
  }

  /** Writes everything buffered and waits for it. */
  private async drain(): Promise<void> {
    this.draining = true
    this.kick()
    while (this.busy) await this.writing
    this.draining = false
  }

  private backoff(attempt: number): number {
    return Math.min(this.cfg.retryMaxMs, this.cfg.retryMinMs * 2 ** (attempt - 1))
  }

  /** Writes one batch, retrying until it commits; acks its last message after COMMIT. Never rejects. */
  private async commit(batch: JsMsg[]): Promise<void> {
    if (this.failure !== undefined) return
    const items: StreamMessage[] = batch.map((m) => ({ seq: m.seq, subject: m.subject, data: m.data }))
    const started = Date.now()
    for (let attempt = 1; ; attempt++) {
      try {
        await this.write(items)
        break
      } catch (err) {
        if (err instanceof FencedError || (this.stopping && attempt >= 3)) {
          // Unacked messages stay in JetStream; the next start resumes from the committed cursor.
          this.fail(err, 'projector stopped writing')
          return
        }
        const delay = this.backoff(attempt)
        this.log('warn', 'batch write failed; retrying', { attempt, delayMs: delay, error: messageOf(err) })
        await sleep(delay)
      }
    }
    this.observer?.written?.(batch.length, (Date.now() - started) / 1000)
    ;(batch[batch.length - 1] as JsMsg).ack()
    this.log('debug', 'batch committed', { messages: batch.length, cursor: this.cursor, ms: Date.now() - started })
  }

  /** Plans and commits `items`; if the database refuses the data, isolates the refused messages. */
  private async write(items: StreamMessage[]): Promise<void> {
    try {
      await this.commitPlan((seals) => planBatch(items, this.cursor, this.fences, seals))
    } catch (err) {
      if (!isDataError(err)) throw err
      this.log('warn', 'database refused a batch; writing its messages one by one', { error: messageOf(err) })
      for (const item of items) await this.writeOne(item)
    }
  }

  private async writeOne(item: StreamMessage): Promise<void> {
    try {
      await this.commitPlan((seals) => planBatch([item], this.cursor, this.fences, seals))
    } catch (err) {
      if (!isDataError(err)) throw err
      this.log('error', 'database refused a message; set aside in projector_rejects', {
        seq: item.seq,
        error: messageOf(err),
      })
      await this.commitPlan(() => rejectPlan(item, `refused by PostgreSQL: ${messageOf(err)}`))
    }
  }

  /** Plans (with the seals committed so far, read inside the transaction) and commits one batch. */
  private async commitPlan(make: (seals: Seals) => BatchPlan): Promise<void> {
    const { plan, retracted } = await writeBatch(this.pool, make, this.key, this.cursor)
    if (retracted > 0 || plan.seals.length > 0) {
      this.counters.retracted += retracted
      this.log('info', 'seals learnt: rows off the chain retracted', {
        seals: plan.seals.map((s) => `${s.partition}/${s.site}/${s.epoch}>${s.to_seq}`),
        retracted,
      })
    }
    // Committed: only now does memory follow the database.
    this.cursor = Math.max(this.cursor, plan.lastSeq)
    for (const f of plan.fences) this.fences.set(fenceKey(f.site, f.partition), f.token)
    this.counters.applied += plan.counts.applied
    this.counters.rejectedStale += plan.counts.stale
    this.counters.rejectedMalformed += plan.counts.malformed
    this.counters.duplicates += plan.counts.duplicates
    this.counters.batches++
    this.observer?.committed(plan.rows)
    for (const s of plan.stale) this.log('debug', 'stale output rejected', { ...s })
    for (const r of plan.rejects)
      this.log('warn', 'output set aside', { seq: r.stream_seq, subject: r.subject, reason: r.reason })
    this.waiters = this.waiters.filter((w) => {
      if (w.seq > this.cursor) return true
      clearTimeout(w.timer)
      w.resolve()
      return false
    })
  }

  private fail(err: unknown, msg: string): void {
    if (this.failure !== undefined) return
    this.failure = err
    this.log('error', msg, { error: messageOf(err), ...this.key, cursor: this.cursor })
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(err)
    }
    // Stop pulling: nothing more can be committed in order.
    this.current?.close().catch((e: unknown) => this.log('warn', 'closing the fetch failed', { error: messageOf(e) }))
  }
}

/** `<durable>_<deployment>_<dbid>`: one consumer per (deployment, database) on a stream. */
export function consumerName(durable: string, deployment: string, dbid: string): string {
  return `${durable}_${deployment}_${dbid}`
}

function settings(o: ProjectorOptions): Settings {
  const s: Settings = {
    site: o.site,
    deployment: o.deployment ?? RUNTIME_DEFAULTS.deployment,
    stream: o.stream ?? PROJECTOR_DEFAULTS.stream,
    durable: o.durable ?? PROJECTOR_DEFAULTS.durable,
    batchSize: o.batchSize ?? PROJECTOR_DEFAULTS.batchSize,
    batchMs: o.batchMs ?? PROJECTOR_DEFAULTS.batchMs,
    maxAckPending: o.maxAckPending ?? PROJECTOR_DEFAULTS.maxAckPending,
    ackWaitMs: o.ackWaitMs ?? PROJECTOR_DEFAULTS.ackWaitMs,
    retryMinMs: o.retryMinMs ?? PROJECTOR_DEFAULTS.retryMinMs,
    retryMaxMs: o.retryMaxMs ?? PROJECTOR_DEFAULTS.retryMaxMs,
  }
  if (!SITE_PATTERN.test(s.site)) throw new ConfigError('site', `'${s.site}' is not a site name`)
  if (!ID_PATTERN.test(s.stream)) throw new ConfigError('projector.stream', `'${s.stream}' is not a stream name`)
  if (!ID_PATTERN.test(s.durable)) throw new ConfigError('projector.durable', `'${s.durable}' is not a consumer name`)
  if (!DEPLOYMENT_PATTERN.test(s.deployment)) {
    throw new ConfigError(
      `deployment (${RUNTIME_ENV.deployment})`,
      `'${s.deployment}' does not match ${DEPLOYMENT_PATTERN}`,
    )
  }
  const positive: Array<keyof Settings> = [
    'batchSize',
    'batchMs',
    'maxAckPending',
    'ackWaitMs',
    'retryMinMs',
    'retryMaxMs',
  ]
  for (const k of positive) {
    const v = s[k]
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ConfigError(`projector.${k}`, `must be a positive integer, got ${String(v)}`)
    }
  }
  if (s.maxAckPending < s.batchSize * 2) {
    throw new ConfigError('projector.maxAckPending', `must be at least twice projector.batchSize (${s.batchSize})`)
  }
  return s
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
