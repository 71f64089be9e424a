/**
 * Assets: one asset's risk trend, its `failure_risk` scores from PostgreSQL (`GET /v1/entities/sensor/:id/scores`,
 * the last 30 days, oldest first) with the `risk_high` threshold as a flat line. The threshold is the one the
 * latest `risk_high` alert of the asset profile carried; with no such alert yet, the profile's default (70).
 */
import { useEffect, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import { api, enc, type Json } from './api.js'
import { Chart } from './chart.js'

export const RISK_HIGH_DEFAULT = 70
const DAYS = 30
const PAGES = 5

interface Trend {
  t: number[]
  risk: number[]
  threshold: number
  from: 'alert' | 'default'
}

async function scores(id: string): Promise<{ t: number[]; risk: number[] }> {
  const t: number[] = [],
    risk: number[] = []
  let cursor: string | null = null
  for (let i = 0; i < PAGES; i++) {
    const page: { items: Json[]; nextCursor: string | null } = await api(
      `/v1/entities/sensor/${enc(id)}/scores?name=failure_risk&from=${Date.now() - DAYS * 86_400_000}&limit=1000${cursor !== null ? `&cursor=${enc(cursor)}` : ''}`,
    )
    for (const s of page.items) {
      t.push(Date.parse(String(s.scoredAt)) / 1000)
      risk.push(Number(s.value))
    }
    cursor = page.nextCursor
    if (cursor === null) break
  }
  return { t, risk }
}

async function riskHighThreshold(): Promise<{ threshold: number; from: 'alert' | 'default' }> {
  const r = await api<{ items: Json[] }>('/v1/alerts?type=risk_high&kind=sensor&limit=1').catch(() => ({
    items: [] as Json[],
  }))
  const v = r.items[0]?.threshold
  return typeof v === 'number' && Number.isFinite(v)
    ? { threshold: v, from: 'alert' }
    : { threshold: RISK_HIGH_DEFAULT, from: 'default' }
}

export function RiskTrend({ id }: { id: string }) {
  const [trend, setTrend] = useState<Trend | null>(null)
  const [error, setError] = useState<string | null>(null)
  useEffect(() => {
    setTrend(null)
    setError(null)
    void Promise.all([scores(id), riskHighThreshold()]).then(
      ([s, th]) => setTrend({ ...s, ...th }),
      (err: unknown) => setError(err instanceof Error ? err.message : String(err)),
    )
  }, [id])
  if (error !== null) return <div class="error">risk trend: {error}</div>
  if (trend === null) return <div class="muted small">Loading the risk trend…</div>
  if (trend.t.length === 0)
    return (
      <div class="empty" data-chart="risk" data-points="0">
        No failure_risk score stored for {id} in the last {DAYS} days.
      </div>
    )
  const data: uPlot.AlignedData = [trend.t, trend.risk, trend.t.map(() => trend.threshold)]
  return (
    <>
      <div class="muted small">
        failure_risk over the last {DAYS} days ({trend.t.length} scores); risk_high at {trend.threshold} (
        {trend.from === 'alert' ? 'from the latest risk_high alert' : 'profile default'})
      </div>
      <Chart
        data={data}
        series={[
          ['failure_risk', '#f59e0b'],
          [`risk_high ${trend.threshold}`, '#ef4444'],
        ]}
        height={200}
        name="risk"
      />
    </>
  )
}
