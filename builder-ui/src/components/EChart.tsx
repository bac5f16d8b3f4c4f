// A thin echarts wrapper: renders an option, resizes with its box, reports clicks (drill-down).
import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { BarChart, FunnelChart, HeatmapChart, LineChart, PieChart, ScatterChart } from 'echarts/charts';
import { AriaComponent, DatasetComponent, GridComponent, LegendComponent, TitleComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

// Only the chart kinds reports produce (ChartKind), so the bundle stays small.
echarts.use([BarChart, LineChart, PieChart, FunnelChart, ScatterChart, HeatmapChart, GridComponent, TooltipComponent,
  LegendComponent, TitleComponent, DatasetComponent, VisualMapComponent, AriaComponent, CanvasRenderer]);

export function EChart({ option, height = 280, onClick, ariaLabel }: { option: Record<string, unknown>; height?: number; onClick?: (params: { dataIndex: number; name: string; seriesIndex?: number }) => void; ariaLabel?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  useEffect(() => {
    if (!box.current) return;
    chart.current = echarts.init(box.current);
    const observer = new ResizeObserver(() => chart.current?.resize());
    observer.observe(box.current);
    return () => {
      observer.disconnect();
      chart.current?.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption({ aria: { enabled: true }, ...option }, true);
  }, [option]);
  useEffect(() => {
    const c = chart.current;
    if (!c || !onClick) return;
    const handler = (p: unknown) => onClick(p as { dataIndex: number; name: string; seriesIndex?: number });
    c.on('click', handler);
    return () => {
      c.off('click', handler);
    };
  }, [onClick]);
  return <div ref={box} role="img" aria-label={ariaLabel} style={{ width: '100%', height }} />;
}
