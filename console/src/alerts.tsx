/**
 * The alerts inbox across profiles: filters, the alarm state of each alert (active/cleared x
 * unacknowledged/acknowledged, assignee), and the workflow (acknowledge, assign, comment, clear) with each
 * alert's history. Alerts and alarm events on the live feed refresh the list; a viewer sees the actions
 * disabled (and the API would refuse them anyway).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { api, ApiError, enc, fmtTime, num, type Json } from './api.js'
import type { Ctx } from './main.js'

interface AlertRow {
  alertId: string
  kind: string
  entity: string
  profile: string
  type: string
  severity: string
  state: string
  startedAt: string
  endedAt: string | null
  value: number
  threshold: number
  peakValue: number
  explanation: string
  details?: unknown
}
interface Alarm {
  alertId: string
  status: string
  active: boolean
  acknowledged: boolean
  acknowledgedBy: string | null
  acknowledgedAt: string | null
  assignee: string | null
  clearedBy: string | null
  clearedAt: string | null
  previousAlertId: string | null
  nextAlertId: string | null
  explanation: string
  severity: string
  type: string
  entity: string
  kind: string
  profile: string
  startedAt: string
  endedAt: string | null
}
interface HistoryItem {
  at: string
  action: string
  by: string
  byType: string
  comment: string | null
  assignee: string | null
}

const STATUS_LABEL: Record<string, string> = {
  active_unacknowledged: 'Active · unacknowledged',
  active_acknowledged: 'Active · acknowledged',
  cleared_unacknowledged: 'Cleared · unacknowledged',
  cleared_acknowledged: 'Cleared · acknowledged',
}

export function SeverityChip({ severity }: { severity: string }) {
  return <span class={`chip sev-${severity}`}>{severity}</span>
}

/** The detector's explanation: features and their contributions (plant), corners (race), peak values. */
function Why({ details }: { details: unknown }) {
  if (typeof details !== 'object' || details === null) return null
  const entries = Object.entries(details as Json)
    .filter(([, v]) => v !== null && v !== undefined)
    .slice(0, 12)
  if (entries.length === 0) return null
  const show = (v: unknown): string =>
    typeof v === 'number'
      ? num(v, Math.abs(v) < 10 ? 2 : 1)
      : Array.isArray(v)
        ? v
            .map((x) =>
              typeof x === 'object' && x !== null
                ? Object.values(x as Json)
                    .map((y) => (typeof y === 'number' ? num(y, 2) : String(y)))
                    .join(' ')
                : String(x),
            )
            .join(', ')
        : typeof v === 'object'
          ? Object.entries(v as Json)
              .map(([k, x]) => `${k} ${typeof x === 'number' ? num(x, 2) : String(x)}`)
              .join(', ')
          : String(v)
  return (
    <>
      <h4>Why</h4>
      <dl class="kv why">
        {entries.map(([k, v]) => (
          <>
            <dt>{k.replace(/_/g, ' ')}</dt>
            <dd>{show(v)}</dd>
          </>
        ))}
      </dl>
    </>
  )
}

function Detail({ ctx, id, details, onChanged }: { ctx: Ctx; id: string; details: unknown; onChanged: () => void }) {
  const [alarm, setAlarm] = useState<Alarm | null>(null)
  const [history, setHistory] = useState<HistoryItem[]>([])
  const [error, setError] = useState<string | null>(null)
  const [assignee, setAssignee] = useState('')
  const [comment, setComment] = useState('')
  const [busy, setBusy] = useState(false)
  const canAct = ctx.me.role !== 'viewer'

  const load = async (): Promise<void> => {
    try {
      const [a, h] = await Promise.all([
        api<Alarm>(`/v1/alerts/${enc(id)}`),
        api<{ items: HistoryItem[] }>(`/v1/alerts/${enc(id)}/history`),
      ])
      setAlarm(a)
      setHistory(h.items)
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err))
    }
  }
  useEffect(() => {
    setAlarm(null)
    setError(null)
    void load()
  }, [id])
  useEffect(
    () =>
      ctx.hub.on((e) => {
        if (
          (e.event === 'alarm' || e.event === 'alert') &&
          (e.data.alertId === id || (e.data.body as Json | undefined)?.alertId === id)
        )
          void load()
      }),
    [id],
  )

  const act = async (action: 'ack' | 'assign' | 'comment' | 'clear', body?: Json): Promise<void> => {
    setBusy(true)
    setError(null)
    try {
      const a = await api<Alarm>(`/v1/alerts/${enc(id)}/${action}`, { method: 'POST', body: body ?? {} })
      setAlarm(a)
      if (action === 'comment') setComment('')
      await load()
      onChanged()
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err))
    } finally {
      setBusy(false)
    }
  }
  if (alarm === null) return <aside class="detail">{error ?? 'Loading…'}</aside>
  const off = !canAct || busy
  const why = canAct ? undefined : 'Viewers cannot act on alerts'
  return (
    <aside class="detail" data-alert={alarm.alertId}>
      <div class="detail-head">
        <SeverityChip severity={alarm.severity} />
        <h3>{alarm.type.replace(/_/g, ' ')}</h3>
      </div>
      <div class="muted mono small">{alarm.alertId}</div>
      <p>{alarm.explanation}</p>
      <dl class="kv">
        <dt>Entity</dt>
        <dd>
          {alarm.kind}/{alarm.entity} <span class="muted">({alarm.profile})</span>
        </dd>
        <dt>Status</dt>
        <dd>
          <span class={`status st-${alarm.status}`} data-status={alarm.status}>
            {STATUS_LABEL[alarm.status] ?? alarm.status}
          </span>
        </dd>
        <dt>Started</dt>
        <dd>{fmtTime(alarm.startedAt)}</dd>
        <dt>Ended</dt>
        <dd>{fmtTime(alarm.endedAt)}</dd>
        <dt>Acknowledged</dt>
        <dd>{alarm.acknowledged ? `${alarm.acknowledgedBy ?? ''} · ${fmtTime(alarm.acknowledgedAt)}` : '—'}</dd>
        <dt>Assignee</dt>
        <dd>{alarm.assignee ?? '—'}</dd>
        <dt>Cleared</dt>
        <dd>{alarm.clearedAt !== null ? `${alarm.clearedBy ?? ''} · ${fmtTime(alarm.clearedAt)}` : '—'}</dd>
        {(alarm.previousAlertId !== null || alarm.nextAlertId !== null) && (
          <>
            <dt>Occurrences</dt>
            <dd class="mono small">
              {alarm.previousAlertId !== null && <div>previous {alarm.previousAlertId}</div>}
              {alarm.nextAlertId !== null && <div>next {alarm.nextAlertId}</div>}
            </dd>
          </>
        )}
      </dl>
      <Why details={details} />
      <div class="actions">
        <button
          class="primary"
          data-action="ack"
          disabled={off || alarm.acknowledged}
          title={why}
          onClick={() => void act('ack')}
        >
          Acknowledge
        </button>
        <button
          data-action="clear"
          disabled={off || alarm.clearedAt !== null}
          title={why}
          onClick={() => void act('clear')}
        >
          Clear
        </button>
      </div>
      <div class="inline-form">
        <input
          placeholder="assign to…"
          value={assignee}
          disabled={!canAct}
          title={why}
          onInput={(e) => setAssignee((e.target as HTMLInputElement).value)}
        />
        <button
          data-action="assign"
          disabled={off || assignee.trim() === ''}
          title={why}
          onClick={() => void act('assign', { assignee: assignee.trim() })}
        >
          Assign
        </button>
      </div>
      <div class="inline-form">
        <input
          placeholder="add a comment…"
          value={comment}
          disabled={!canAct}
          title={why}
          onInput={(e) => setComment((e.target as HTMLInputElement).value)}
        />
        <button
          data-action="comment"
          disabled={off || comment.trim() === ''}
          title={why}
          onClick={() => void act('comment', { comment: comment.trim() })}
        >
          Comment
        </button>
      </div>
      {!canAct && <div class="note">Read-only: your role is viewer.</div>}
      {error !== null && (
        <div class="error" role="alert">
          {error}
        </div>
      )}
      <h4>History</h4>
      <ol class="timeline">
        {history.map((h, i) => (
          <li key={i}>
            <span class="t">{fmtTime(h.at)}</span> <b>{h.action}</b> <span class="muted">by {h.by}</span>
            {h.assignee !== null && <span> → {h.assignee}</span>}
            {h.comment !== null && <div class="comment">“{h.comment}”</div>}
          </li>
        ))}
      </ol>
    </aside>
  )
}

export function AlertsView({ ctx }: { ctx: Ctx }) {
  const [filters, setFilters] = useState({ state: 'open', severity: '', kind: '', type: '', entity: '' })
  const [rows, setRows] = useState<AlertRow[]>([])
  const [alarms, setAlarms] = useState<Record<string, Alarm>>({})
  const [cursor, setCursor] = useState<string | null>(null)
  const [selected, setSelected] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const query = useMemo(
    () =>
      Object.entries(filters)
        .filter(([, v]) => v !== '')
        .map(([k, v]) => `${k}=${enc(v)}`)
        .join('&'),
    [filters],
  )
  const generation = useRef(0)

  const load = async (more = false): Promise<void> => {
    const g = ++generation.current
    try {
      const page = await api<{ items: AlertRow[]; nextCursor: string | null }>(
        `/v1/alerts?limit=50&${query}${more && cursor !== null ? `&cursor=${enc(cursor)}` : ''}`,
      )
      if (g !== generation.current) return
      const list = more ? [...rows, ...page.items] : page.items
      setRows(list)
      setCursor(page.nextCursor)
      setError(null)
      const got = await Promise.all(
        page.items.map(async (r) => api<Alarm>(`/v1/alerts/${enc(r.alertId)}`).catch(() => null)),
      )
      if (g !== generation.current) return
      setAlarms((prev) => {
        const next = more ? { ...prev } : {}
        for (const a of got) if (a !== null) next[a.alertId] = a
        return next
      })
    } catch (err) {
      setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err))
    } finally {
      setLoading(false)
    }
  }
  useEffect(() => {
    setLoading(true)
    void load()
  }, [query])
  // Alerts opening or closing and people's actions refresh the list, at most once a second.
  useEffect(() => {
    let timer: number | undefined
    const off = ctx.hub.on((e) => {
      if (e.event !== 'alert' && e.event !== 'alarm') return
      timer ??= window.setTimeout(() => {
        timer = undefined
        void load()
      }, 1_000)
    })
    return () => {
      off()
      clearTimeout(timer)
    }
  }, [query])

  const set =
    (k: keyof typeof filters) =>
    (e: Event): void =>
      setFilters({ ...filters, [k]: (e.target as HTMLInputElement).value })
  const open = rows.filter((r) => r.state !== 'close').length
  return (
    <div class="page with-detail">
      <section class="panel grow">
        <div class="panel-head">
          <h2>Alerts</h2>
          <span class="muted">
            {rows.length} shown{cursor !== null ? '+' : ''} · {open} active
          </span>
        </div>
        <div class="filters">
          <select aria-label="state" value={filters.state} onChange={set('state')}>
            <option value="open">Open</option>
            <option value="closed">Closed</option>
            <option value="">Any state</option>
          </select>
          <select aria-label="severity" value={filters.severity} onChange={set('severity')}>
            <option value="">Any severity</option>
            <option value="critical">Critical</option>
            <option value="warning">Warning</option>
            <option value="info">Info</option>
          </select>
          <select aria-label="kind" value={filters.kind} onChange={set('kind')}>
            <option value="">Sensors and vehicles</option>
            <option value="sensor">Sensors</option>
            <option value="vehicle">Vehicles</option>
          </select>
          <input
            aria-label="type"
            placeholder="type, e.g. brake_overheat"
            value={filters.type}
            onChange={set('type')}
          />
          <input aria-label="entity" placeholder="entity id" value={filters.entity} onChange={set('entity')} />
        </div>
        {error !== null && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        <table class="grid alerts">
          <thead>
            <tr>
              <th>Severity</th>
              <th>Type</th>
              <th>Entity</th>
              <th>Profile</th>
              <th>Started</th>
              <th>Peak / threshold</th>
              <th>Alarm</th>
              <th>Assignee</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const a = alarms[r.alertId]
              return (
                <tr
                  key={r.alertId}
                  data-alert={r.alertId}
                  class={selected === r.alertId ? 'sel' : ''}
                  onClick={() => setSelected(r.alertId)}
                >
                  <td>
                    <SeverityChip severity={r.severity} />
                  </td>
                  <td>{r.type.replace(/_/g, ' ')}</td>
                  <td class="mono">
                    {r.kind}/{r.entity}
                  </td>
                  <td>{r.profile}</td>
                  <td>{fmtTime(r.startedAt)}</td>
                  <td class="num">
                    {num(r.peakValue, 1)} / {num(r.threshold, 1)}
                  </td>
                  <td>
                    {a ? (
                      <span class={`status st-${a.status}`} data-status={a.status}>
                        {STATUS_LABEL[a.status] ?? a.status}
                      </span>
                    ) : (
                      <span class="muted">…</span>
                    )}
                  </td>
                  <td>{a?.assignee ?? ''}</td>
                </tr>
              )
            })}
            {!loading && rows.length === 0 && (
              <tr>
                <td colSpan={8} class="empty">
                  No alerts match these filters.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {cursor !== null && (
          <button class="ghost more" onClick={() => void load(true)}>
            Load more
          </button>
        )}
      </section>
      {selected !== null ? (
        <Detail
          ctx={ctx}
          id={selected}
          details={rows.find((r) => r.alertId === selected)?.details}
          onChanged={() => void load()}
        />
      ) : (
        <aside class="detail empty-detail">Select an alert to see its history and act on it.</aside>
      )}
    </div>
  )
}
