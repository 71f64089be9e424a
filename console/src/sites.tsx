/**
 * Both sites as their controllers report them (`GET /v1/sites`, which reads each controller's `/status`): role,
 * epoch, link, mirror lag, the partitions each owns, the last failover and the stray relay. Refreshed every 2 s.
 */
import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, ago, fmtTime, num } from './api.js'
import type { Ctx } from './main.js'

interface SiteStatus {
  site: string; peer: string; epoch: number; role: string; owned: number[]; peerOwned: number[]; peerLinkUp: boolean; peerDownForMs: number
  mirrorLag: Record<string, number>; failovers: number; lastMove?: { at: number; processingAgainMs?: number; partitions?: number[] }
  relay?: { active: number; forwarded: number; failures: number }
}
interface SiteItem { site: string; reachable: boolean; status?: SiteStatus; error?: string }

function Partitions({ owned, total }: { owned: number[]; total: number }) {
  const set = new Set(owned)
  return <div class="partitions">{Array.from({ length: total }, (_, p) => <span key={p} class={set.has(p) ? 'own' : ''} title={`partition ${p}`}>{p}</span>)}</div>
}

export function SitesView({ ctx }: { ctx: Ctx }) {
  const [items, setItems] = useState<SiteItem[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [at, setAt] = useState(Date.now())
  useEffect(() => {
    const load = (): void => {
      api<{ items: SiteItem[] }>('/v1/sites').then((r) => { setItems(r.items); setError(null); setAt(Date.now()) },
        (err: unknown) => setError(err instanceof ApiError ? `${err.message} (${err.code})` : String(err)))
    }
    load()
    const t = setInterval(load, 2_000)
    return () => clearInterval(t)
  }, [])
  const total = Math.max(0, ...(items ?? []).flatMap((i) => [...(i.status?.owned ?? []), ...(i.status?.peerOwned ?? [])].map((p) => p + 1)))
  return (
    <div class="page">
      <section class="panel">
        <div class="panel-head"><h2>Sites</h2><span class="muted">this console is served by site {ctx.settings.site} · updated {ago(at)}</span></div>
        {error !== null && <div class="error" role="alert">{error}</div>}
        {items !== null && items.length === 0 && <div class="empty">No site controllers configured (PITWALL_GATEWAY_SITE_STATUS_URLS).</div>}
        <div class="sites">
          {(items ?? []).map((i) => {
            const s = i.status
            return (
              <article class={`site-card ${i.reachable ? `role-${s?.role ?? ''}` : 'down'}`} data-site={i.site} key={i.site}>
                <header><h3>Site {i.site}</h3>{i.reachable ? <span class={`chip role ${s?.role}`} data-role={s?.role}>{s?.role}</span> : <span class="chip sev-critical">unreachable</span>}</header>
                {!i.reachable && <p class="muted">{i.error}</p>}
                {s && (
                  <>
                    <dl class="kv">
                      <dt>Epoch</dt><dd data-field="epoch">{s.epoch}</dd>
                      <dt>Link to {s.peer}</dt><dd>{s.peerLinkUp ? <span class="ok-text">up</span> : <span class="bad-text">down {num(s.peerDownForMs / 1000, 0)} s</span>}</dd>
                      <dt>Mirror lag</dt><dd data-field="lag">{Object.entries(s.mirrorLag).map(([k, v]) => <span key={k} class="mono">{k} {v}</span>)}{Object.keys(s.mirrorLag).length === 0 && '—'}</dd>
                      <dt>Failovers</dt><dd>{s.failovers}{s.lastMove && <span class="muted"> · last {fmtTime(s.lastMove.at)}{s.lastMove.processingAgainMs !== undefined ? `, processing again in ${num(s.lastMove.processingAgainMs / 1000, 1)} s` : ''}</span>}</dd>
                      <dt>Stray relay</dt><dd>{s.relay ? `${s.relay.forwarded} forwarded · ${s.relay.failures} failures` : '—'}</dd>
                    </dl>
                    <h4>Partitions owned ({s.owned.length})</h4>
                    <Partitions owned={s.owned} total={total} />
                  </>
                )}
              </article>
            )
          })}
        </div>
        <p class="muted small">Failover and failback are operator commands: <code>pitwall site failover|failback</code> (docs/sites.md).</p>
      </section>
    </div>
  )
}
