/** A uPlot time series (seconds on x), resized with its container; `series` is [label, colour][]. */
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'

export function Chart({ data, series, height = 240 }: { data: uPlot.AlignedData; series: [string, string][]; height?: number }) {
  const el = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const key = series.map((s) => s[0]).join('|')
  useEffect(() => {
    if (!el.current) return
    const opts: uPlot.Options = {
      width: el.current.clientWidth || 600,
      height,
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { stroke: '#94a3b8', grid: { stroke: '#1e293b' }, ticks: { stroke: '#1e293b' } },
        { stroke: '#94a3b8', grid: { stroke: '#1e293b' }, ticks: { stroke: '#1e293b' } },
      ],
      series: [{}, ...series.map(([label, stroke], i) => ({ label, stroke, width: i === 0 ? 2 : 1, ...(i > 0 ? { dash: [4, 4] } : {}) }))],
    }
    plot.current = new uPlot(opts, data, el.current)
    const ro = new ResizeObserver(() => { if (el.current && plot.current) plot.current.setSize({ width: el.current.clientWidth, height }) })
    ro.observe(el.current)
    return () => { ro.disconnect(); plot.current?.destroy(); plot.current = null }
  }, [key, height])
  useEffect(() => { plot.current?.setData(data) }, [data])
  return <div class="chart" ref={el} />
}
