// The dashboard designer: place report widgets on a 12-column grid (move and resize with buttons,
// so it works from the keyboard too), choose page filters, and publish.
import { useState } from 'react';
import { Button, Card, Select, Space, Tooltip, Typography } from 'antd';
import { ArrowDownOutlined, ArrowLeftOutlined, ArrowRightOutlined, ArrowUpOutlined, ColumnWidthOutlined, DeleteOutlined, ShrinkOutlined, VerticalAlignBottomOutlined, VerticalAlignTopOutlined } from '@ant-design/icons';
import { useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { PublishDialog } from '../../components/PublishDialog';
import { useAppMeta, useLang } from '../../lib/hooks';
import { LocalizedInput } from './LocalizedInput';

interface Widget { report: string; x: number; y: number; w: number; h: number; title?: unknown }
interface PageFilter { id: string; field: string; label?: Record<string, string> }
interface DashboardDoc { format_version: number; id: string; kind: 'dashboard'; label?: Record<string, string>; filters?: PageFilter[]; widgets: Widget[]; [k: string]: unknown }

export function clampWidget(w: Widget): Widget {
  const width = Math.min(Math.max(w.w, 2), 12);
  return { ...w, w: width, h: Math.min(Math.max(w.h, 2), 8), x: Math.min(Math.max(w.x, 0), 12 - width), y: Math.max(w.y, 0) };
}

export function DashboardDesigner() {
  const { app = '', dashboard: id = '' } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const loaded = useAppMeta(app).data!;
  const meta = loaded.meta;
  const path = `views/${id}.view.json`;
  const [doc, setDoc] = useState<DashboardDoc>(() => (loaded.bundle[path] as DashboardDoc | undefined) ? structuredClone(loaded.bundle[path] as DashboardDoc)
    : { format_version: 1, id, kind: 'dashboard', label: { en: params.get('en') || id, 'zh-CN': params.get('zh') || params.get('en') || id }, widgets: [] });
  const [publishing, setPublishing] = useState(false);
  const setWidget = (i: number, patch: Partial<Widget>) => setDoc({ ...doc, widgets: doc.widgets.map((w, j) => (j === i ? clampWidget({ ...w, ...patch }) : w)) });
  const mainEntity = meta.reports.find((r) => r.id === doc.widgets[0]?.report)?.entity;
  const entity = meta.entities.find((e) => e.id === mainEntity);
  const tools: [string, React.ReactNode, (w: Widget) => Partial<Widget>][] = [
    ['left', <ArrowLeftOutlined />, (w) => ({ x: w.x - 1 })],
    ['right', <ArrowRightOutlined />, (w) => ({ x: w.x + 1 })],
    ['up', <ArrowUpOutlined />, (w) => ({ y: w.y - 1 })],
    ['down', <ArrowDownOutlined />, (w) => ({ y: w.y + 1 })],
    ['wider', <ColumnWidthOutlined />, (w) => ({ w: w.w + 1 })],
    ['narrower', <ShrinkOutlined />, (w) => ({ w: w.w - 1 })],
    ['taller', <VerticalAlignBottomOutlined />, (w) => ({ h: w.h + 1 })],
    ['shorter', <VerticalAlignTopOutlined />, (w) => ({ h: w.h - 1 })],
  ];
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('design.dashboardTitle', { dashboard: l(doc.label, id) })}</Typography.Title>
        <Button type="primary" onClick={() => setPublishing(true)}>{t('design.publish')}</Button>
      </Space>
      <Card size="small" style={{ marginBottom: 12 }}>
        <LocalizedInput label={t('report.name')} value={doc.label ?? {}} onChange={(label) => setDoc({ ...doc, label })} />
        <Space wrap>
          <Select aria-label={t('dashboard.addWidget')} placeholder={t('dashboard.addWidget')} style={{ width: 260 }} value={null as unknown as string} data-testid="add-widget"
            options={meta.reports.map((r) => ({ value: r.id, label: l(r.label, r.id) }))}
            onChange={(report) => setDoc({ ...doc, widgets: [...doc.widgets, { report, x: 0, y: doc.widgets.reduce((m, w) => Math.max(m, w.y + w.h), 0), w: 6, h: 4 }] })} />
          {entity && (
            <Select aria-label={t('dashboard.pageFilters')} mode="multiple" placeholder={t('dashboard.pageFilters')} style={{ minWidth: 260 }}
              value={(doc.filters ?? []).map((f) => f.field)}
              options={entity.fields.filter((f) => ['single_select', 'user', 'relation_one'].includes(f.kind)).map((f) => ({ value: f.id, label: l(f.label, f.id) }))}
              onChange={(fields: string[]) => setDoc({ ...doc, filters: fields.map((field) => ({ id: field, field, label: entity.fields.find((f) => f.id === field)?.label as Record<string, string> })) })} />
          )}
        </Space>
      </Card>
      <div style={{ display: 'grid', gridTemplateColumns: 'repeat(12, 1fr)', gridAutoRows: 60, gap: 8, background: '#f5f7f6', padding: 8, borderRadius: 8, minHeight: 200 }} data-testid="dashboard-grid">
        {doc.widgets.map((w, i) => {
          const report = meta.reports.find((r) => r.id === w.report);
          return (
            <div key={i} style={{ gridColumn: `${w.x + 1} / span ${w.w}`, gridRow: `${w.y + 1} / span ${w.h}`, background: '#fff', border: '1px solid #cfe3d6', borderRadius: 6, padding: 6, overflow: 'hidden' }}>
              <Typography.Text strong>{l(report?.label, w.report)}</Typography.Text>
              <div>
                {tools.map(([key, icon, f]) => (
                  <Tooltip key={key} title={t(`dashboard.${key}`)}><Button size="small" type="text" aria-label={t(`dashboard.${key}`)} icon={icon} onClick={() => setWidget(i, f(w))} /></Tooltip>
                ))}
                <Button size="small" type="text" danger aria-label={t('design.remove')} icon={<DeleteOutlined />} onClick={() => setDoc({ ...doc, widgets: doc.widgets.filter((_, j) => j !== i) })} />
              </div>
              <Typography.Text type="secondary" style={{ fontSize: 11 }}>{w.x},{w.y} · {w.w}×{w.h}</Typography.Text>
            </div>
          );
        })}
      </div>
      {publishing && <PublishDialog app={app} bundle={{ ...loaded.bundle, [path]: doc }} etag={loaded.etag} open={publishing} onClose={() => setPublishing(false)} />}
    </div>
  );
}
