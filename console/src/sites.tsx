/**
 * Both sites as their controllers report them (`GET /v1/sites`, which reads each controller's `/status`): role,
 * epoch, link, mirror lag, the partitions each owns, the last failover and the stray relay. Refreshed every 2 s.
 * Admins get failover and failback buttons: a dialog asks for the reason and a confirmation, the gateway relays
 * the command to the site's controller (`POST /v1/sites/:site/failover|failback`, audited), and the card shows the
 * command's progress lines and result from the controller's status (`operation`) as it runs.
 */
import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, ago, fmtTime, num } from './api.js'
import type { Ctx } from './main.js'

interface SiteStatus {
  site: string
  peer: string
  epoch: number
  role: string
  owned: number[]
  peerOwned: number[]
  peerLinkUp: boolean
  peerDownForMs: number
  mirrorLag: Record<string, number>
  failovers: number
  lastMove?: { at: number; processingAgainMs?: number; partitions?: number[] }
  relay?: { active: number; forwarded: number; failures: number }
  operation?: Operation
}
interface Operation {
  id: string
  command: Command
  by: string
  reason: string
  startedAt: number
  finishedAt?: number
  state: 'running' | 'succeeded' | 'failed'
  exitCode?: number
  error?: string
  lines: string[]
}
type Command = 'failover' | 'failback'
const WHAT: Record<Command, (site: string, peer: string) => string> = {
  failover: (site, peer) =>
    `Site ${site} takes site ${peer}'s partitions now (use when ${peer} is lost). ${peer}'s workers release them when they see the new epoch.`,
  failback: (site, peer) =>
    `Site ${site} takes its home partitions back from site ${peer} (controlled handover; ${site} must be back and linked).`,
}
interface SiteItem {
  site: string
  reachable: boolean
  status?: SiteStatus
  error?: string
}

function Partitions({ owned, total }: { owned: number[]; total: number }) {
  const set = new Set(owned)
  return (
    <div class="partitions">
      {Array.from({ length: total }, (_, p) => (
        <span key={p} class={set.has(p) ? 'own' : ''} title={`partition ${p}`}>
          {p}
        </span>
      ))}
    </div>
  )
}

function OperationView({ op }: { op: Operation }) {
  return (
    <div class={`operation op-${op.state}`} data-operation={op.id} data-state={op.state}>
      <div>
        <b>{op.command}</b> by {op.by} · {fmtTime(op.startedAt)} · <span class={`chip op ${op.state}`}>{op.state}</span>
        {op.finishedAt !== undefined && (
          <span class="muted"> in {num((op.finishedAt - op.startedAt) / 1000, 1)} s</span>
        )}
      </div>
      <div class="muted small">reason: {op.reason}</div>
      <pre class="lines">{[...op.lines, ...(op.error ? [`error: ${op.error}`] : [])].join('\n') || '…'}</pre>
    </div>
  )
}

/** The confirm dialog: what the command does, a required reason, then the relayed command's answer. */
function CommandDialog({
  site,
  peer,
  command,
  onClose,
}: {
  site: string
  peer: string
  command: Command
  onClose: () => void
}) {
  const [reason, setReason] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const submit = (e: Event): void => {
    e.preventDefault()
    setBusy(true)
    api<Operation>(`/v1/sites/${encodeURIComponent(site)}/${command}`, {
      method: 'POST',
      body: { reason, confirm: true },
    }).then(
      () => {
        onClose()
      },
      (err: unknown) => {
        setBusy(false)
        setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err))
      },
    )
  }
  return (
    <div class="modal-back">
      <div class="modal panel" role="dialog" aria-modal="true" aria-label={`${command} ${site}`} data-dialog={command}>
        <form onSubmit={submit}>
          <h3>
            {command === 'failover' ? 'Fail over' : 'Fail back'} to site {site}?
          </h3>
          <p>{WHAT[command](site, peer)}</p>
          <label>
            Reason (recorded with your name and the time)
            <input
              name="reason"
              value={reason}
              onInput={(e) => setReason((e.target as HTMLInputElement).value)}
              maxLength={500}
              required
              autoFocus
            />
          </label>
          {error !== null && (
            <div class="error" role="alert">
              {error}
            </div>
          )}
          <div class="actions">
            <button type="button" class="ghost" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" class="danger" disabled={busy || reason.trim() === ''}>
              {busy ? 'Sending…' : `Confirm ${command}`}
            </button>
          </div>
        </form>
      </div>
    </div>
  )
}

export function SitesView({ ctx }: { ctx: Ctx }) {
  const [asking, setAsking] = useState<{ site: string; peer: string; command: Command } | null>(null)
  const isAdmin = ctx.me.role === 'admin'
  const [items, setItems] = useState<SiteItem[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [at, setAt] = useState(Date.now())
  useEffect(() => {
    const load = (): void => {
      api<{ items: SiteItem[] }>('/v1/sites').then(
        (r) => {
          setItems(r.items)
          setError(null)
          setAt(Date.now())
        },
        (err: unknown) => setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err)),
      )
    }
    load()
    const t = setInterval(load, 2_000)
    return () => clearInterval(t)
  }, [])
  const total = Math.max(
    0,
    ...(items ?? []).flatMap((i) => [...(i.status?.owned ?? []), ...(i.status?.peerOwned ?? [])].map((p) => p + 1)),
  )
  return (
    <div class="page">
      <section class="panel">
        <div class="panel-head">
          <h2>Sites</h2>
          <span class="muted">
            this console is served by site {ctx.settings.site} · updated {ago(at)}
          </span>
        </div>
        {error !== null && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        {items !== null && items.length === 0 && (
          <div class="empty">No site controllers configured (PITWALL_GATEWAY_SITE_STATUS_URLS).</div>
        )}
        <div class="sites">
          {(items ?? []).map((i) => {
            const s = i.status
            return (
              <article
                class={`site-card ${i.reachable ? `role-${s?.role ?? ''}` : 'down'}`}
                data-site={i.site}
                key={i.site}
              >
                <header>
                  <h3>Site {i.site}</h3>
                  {i.reachable ? (
                    <span class={`chip role ${s?.role}`} data-role={s?.role}>
                      {s?.role}
                    </span>
                  ) : (
                    <span class="chip sev-critical">unreachable</span>
                  )}
                </header>
                {!i.reachable && <p class="muted">{i.error}</p>}
                {s && (
                  <>
                    <dl class="kv">
                      <dt>Epoch</dt>
                      <dd data-field="epoch">{s.epoch}</dd>
                      <dt>Link to {s.peer}</dt>
                      <dd>
                        {s.peerLinkUp ? (
                          <span class="ok-text">up</span>
                        ) : (
                          <span class="bad-text">down {num(s.peerDownForMs / 1000, 0)} s</span>
                        )}
                      </dd>
                      <dt>Mirror lag</dt>
                      <dd data-field="lag">
                        {Object.entries(s.mirrorLag).map(([k, v]) => (
                          <span key={k} class="mono">
                            {k} {v}
                          </span>
                        ))}
                        {Object.keys(s.mirrorLag).length === 0 && '—'}
                      </dd>
                      <dt>Failovers</dt>
                      <dd>
                        {s.failovers}
                        {s.lastMove && (
                          <span class="muted">
                            {' '}
                            · last {fmtTime(s.lastMove.at)}
                            {s.lastMove.processingAgainMs !== undefined
                              ? `, processing again in ${num(s.lastMove.processingAgainMs / 1000, 1)} s`
                              : ''}
                          </span>
                        )}
                      </dd>
                      <dt>Stray relay</dt>
                      <dd>{s.relay ? `${s.relay.forwarded} forwarded · ${s.relay.failures} failures` : '—'}</dd>
                    </dl>
                    <h4>Partitions owned ({s.owned.length})</h4>
                    <Partitions owned={s.owned} total={total} />
                    {isAdmin && (
                      <div class="actions">
                        {(['failover', 'failback'] as const).map((c) => (
                          <button
                            key={c}
                            class="danger"
                            data-command={c}
                            disabled={s.operation?.state === 'running'}
                            title={WHAT[c](i.site, s.peer)}
                            onClick={() => setAsking({ site: i.site, peer: s.peer, command: c })}
                          >
                            {c === 'failover' ? `Fail over to ${i.site}` : `Fail back to ${i.site}`}
                          </button>
                        ))}
                      </div>
                    )}
                    {s.operation && <OperationView op={s.operation} />}
                  </>
                )}
              </article>
            )
          })}
        </div>
        <p class="muted small">
          {isAdmin ? 'Failover and failback run the code of' : 'Failover and failback are for admins, here or with'}{' '}
          <code>pitwall site failover|failback</code> (docs/sites.md).
        </p>
      </section>
      {asking && <CommandDialog {...asking} onClose={() => setAsking(null)} />}
    </div>
  )
}
