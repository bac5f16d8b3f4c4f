// One report result: a KPI, a table, or the echarts option the server built; clicking a bar, slice,
// point or row drills down to the records behind it (the result's `drill` filters).
import { Statistic, Table, Typography } from 'antd';
import { useNavigate } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { EChart } from './EChart';
import { useAppMeta, useUsers } from '../lib/hooks';
import { entityById, type EntityMeta } from '../lib/metadata';

export interface ReportColumn { name: string; type: string; label?: string; labels?: Record<string, string> }
export interface ReportRun {
  columns: ReportColumn[];
  rows: unknown[][];
  chart?: { kind: string; option?: Record<string, unknown> };
  drill?: (Record<string, unknown> | null)[];
  records?: number;
}

export function formatCell(column: ReportColumn, value: unknown, lang: string, users: Record<string, string> = {}): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string' && users[value]) return users[value];
  if (column.labels && typeof value === 'string' && column.labels[value]) return column.labels[value];
  if (column.type === 'ratio' && typeof value === 'number') return `${(value * 100).toLocaleString(lang, { maximumFractionDigits: 1 })}%`;
  if (typeof value === 'number') return value.toLocaleString(lang, { maximumFractionDigits: 2 });
  return String(value);
}

/**
 * The option colours of the grouping field (health tiers, lifecycle stages) on the chart's points,
 * so a red tier is red. Only for one-series charts grouped by a field with coloured options.
 */
export function withOptionColours(option: Record<string, unknown>, run: ReportRun, entity: EntityMeta | undefined): Record<string, unknown> {
  const first = run.columns[0];
  const field = entity?.fields.find((f) => f.id === first?.name);
  const colours = new Map((field?.options ?? []).filter((o) => o.color).map((o) => [o.value, o.color!]));
  const series = option.series as Record<string, unknown>[] | undefined;
  if (!colours.size || !Array.isArray(series) || series.length !== 1 || !Array.isArray(series[0].data)) return option;
  const data = (series[0].data as unknown[]).map((point, i) => {
    const colour = colours.get(String(run.rows[i]?.[0]));
    if (!colour) return point;
    const base = point !== null && typeof point === 'object' ? (point as Record<string, unknown>) : { value: point };
    return { ...base, itemStyle: { ...((base.itemStyle as object) ?? {}), color: colour } };
  });
  return { ...option, series: [{ ...series[0], data }] };
}

export function ReportResult({ app, entity, run, height = 280, title }: { app: string; entity: string | null; run: ReportRun; height?: number; title?: string }) {
  const { i18n } = useTranslation();
  const navigate = useNavigate();
  const users = useUsers(app);
  const meta = useAppMeta(app).data?.meta;
  const userNames = Object.fromEntries((users.data ?? []).map((u) => [u.id, u.display_name || u.username]));
  const drill = (index: number) => {
    const filter = run.drill?.[index];
    if (!entity || !filter) return;
    navigate(`/apps/${app}/e/${entity}?filter=${encodeURIComponent(JSON.stringify(filter))}`);
  };
  const kind = run.chart?.kind ?? 'table';
  if (kind === 'kpi') {
    const option = (run.chart?.option ?? {}) as { value?: number; previous?: number; change_ratio?: number | null };
    const measure = run.columns[1];
    return (
      <div style={{ padding: 8 }}>
        <Statistic title={measure?.label ?? title} value={option.value ?? 0} />
        {option.change_ratio !== undefined && option.change_ratio !== null && (
          <Typography.Text type={option.change_ratio >= 0 ? 'success' : 'danger'}>
            {option.change_ratio >= 0 ? '▲' : '▼'} {(Math.abs(option.change_ratio) * 100).toFixed(1)}%
          </Typography.Text>
        )}
      </div>
    );
  }
  if (kind !== 'table' && run.chart?.option) {
    const option = withOptionColours(run.chart.option, run, entity && meta ? entityById(meta, entity) : undefined);
    return <EChart option={option} height={height} ariaLabel={title} onClick={(p) => drill(p.dataIndex)} />;
  }
  return (
    <Table
      size="small"
      rowKey={(_, i) => String(i)}
      dataSource={run.rows.map((r, i) => ({ i, r }))}
      pagination={{ pageSize: 8, hideOnSinglePage: true }}
      scroll={{ x: 'max-content' }}
      onRow={(row) => ({ onClick: () => drill(row.i), style: { cursor: run.drill?.[row.i] ? 'pointer' : undefined } })}
      columns={run.columns.map((c, k) => ({ key: c.name, title: c.label ?? c.name, render: (_: unknown, row: { r: unknown[] }) => formatCell(c, row.r[k], i18n.language, userNames) }))}
    />
  );
}
