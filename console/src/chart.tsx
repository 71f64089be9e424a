/**
 * A uPlot time series (seconds on x), resized with its container; `series` is [label, colour][]. `band` shades
 * between two of the series (indexes into `series`); `lines` are horizontal lines (e.g. a threshold) drawn as
 * their own flat series by the caller; `solid` draws every series as a full line (a comparison of equals), otherwise
 * the first is the main line and the others dashed. The element carries `data-points` (the x length) and
 * `data-series` (the number of series) for the browser test.
 */
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'

export interface BandSpec {
  hi: number
  lo: number
  fill: string
}

export function Chart({
  data,
  series,
  height = 240,
  band,
  name,
  solid = false,
}: {
  data: uPlot.AlignedData
  series: [string, string][]
  height?: number
  band?: BandSpec
  name?: string
  solid?: boolean
}) {
  const el = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const key = series.map((s) => s[0]).join('|') + (band ? `|${band.hi}-${band.lo}` : '') + (solid ? '|solid' : '')
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
      series: [
        {},
        ...series.map(([label, stroke], i) =>
          solid
            ? { label, stroke, width: 1.75, spanGaps: true }
            : { label, stroke, width: i === 0 ? 2 : 1, ...(i > 0 ? { dash: [4, 4], points: { show: false } } : {}) },
        ),
      ],
      ...(band ? { bands: [{ series: [band.hi + 1, band.lo + 1] as [number, number], fill: band.fill }] } : {}),
    }
    plot.current = new uPlot(opts, data, el.current)
    const ro = new ResizeObserver(() => {
      if (el.current && plot.current) plot.current.setSize({ width: el.current.clientWidth, height })
    })
    ro.observe(el.current)
    return () => {
      ro.disconnect()
      plot.current?.destroy()
      plot.current = null
    }
  }, [key, height])
  useEffect(() => {
    plot.current?.setData(data)
  }, [data])
  return <div class="chart" ref={el} data-chart={name} data-points={data[0].length} data-series={series.length} />
}
