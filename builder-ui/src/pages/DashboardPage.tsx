// A dashboard: page filters shared by its widgets, the widgets on a 12-column grid (stacked on
// phones), each drilling down to its records.
import { useState } from 'react';
import { Card, Grid, Space, Spin, Typography, Alert } from 'antd';
import { useParams } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';
import { FieldInput } from '../components/FieldInput';
import { ProblemAlert } from '../components/ProblemAlert';
import { ReportResult, type ReportRun } from '../components/ReportResult';
import { entityById, type Localized } from '../lib/metadata';
import { useAppMeta, useLang } from '../lib/hooks';

interface Widget { report: string; title: string | null; x: number; y: number; w: number; h: number; result?: ReportRun; error?: { detail?: string; title?: string } }
interface DashboardRun { id: string; label: string; widgets: Widget[] }
interface PageFilter { id: string; field: string; label?: Localized }

export function DashboardPage() {
  const { app = '', dashboard = '' } = useParams();
  const { l, lang } = useLang();
  const screens = Grid.useBreakpoint();
  const meta = useAppMeta(app).data!.meta;
  const view = meta.views.find((v) => v.id === dashboard);
  const pageFilters = ((view?.raw.filters as PageFilter[] | undefined) ?? []);
  const [values, setValues] = useState<Record<string, unknown>>({});
  const filters = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null && v !== undefined && v !== ''));
  const run = useQuery({
    queryKey: ['dashboard', app, dashboard, filters, lang],
    queryFn: () => api.post<DashboardRun>(`/api/apps/${app}/dashboards/${dashboard}/run`, { filters }, { lang }),
  });
  // Page filters name fields of the dashboard's main entity: the first widget's.
  const firstReport = meta.reports.find((r) => r.id === run.data?.widgets[0]?.report);
  const filterEntity = entityById(meta, firstReport?.entity ?? '') ?? meta.entities.find((e) => pageFilters.every((f) => e.fields.some((x) => x.id === f.field)));
  const narrow = !screens.md;
  return (
    <div>
      <Typography.Title level={4}>{l(view?.label, dashboard)}</Typography.Title>
      {pageFilters.length > 0 && filterEntity && (
        <Space wrap style={{ marginBottom: 12 }} role="search">
          {pageFilters.map((f) => {
            const field = filterEntity.fields.find((x) => x.id === f.field);
            if (!field) return null;
            return (
              <div key={f.id} style={{ display: 'flex', gap: 6, alignItems: 'center' }}>
                <span>{l(f.label ?? field.label, f.id)}</span>
                <div style={{ width: 200 }}>
                  <FieldInput field={{ ...field, readOnly: false, kind: field.kind === 'tags' ? 'single_select' : field.kind }} app={app} meta={meta}
                    value={values[f.id]} onChange={(v) => setValues({ ...values, [f.id]: v })} />
                </div>
              </div>
            );
          })}
        </Space>
      )}
      {run.isLoading && <Spin />}
      {run.error ? <ProblemAlert error={run.error} /> : null}
      <div style={{ display: 'grid', gridTemplateColumns: narrow ? '1fr' : 'repeat(12, 1fr)', gridAutoRows: 80, gap: 12 }}>
        {run.data?.widgets.map((w) => {
          const report = meta.reports.find((r) => r.id === w.report);
          const title = w.title ?? l(report?.label, w.report);
          return (
            <Card
              key={`${w.report}-${w.x}-${w.y}`}
              size="small"
              title={title}
              data-testid={`widget-${w.report}`}
              style={narrow ? { gridRow: `span ${w.h}` } : { gridColumn: `${w.x + 1} / span ${w.w}`, gridRow: `${w.y + 1} / span ${w.h}`, overflow: 'auto' }}
              styles={{ body: { padding: 8 } }}
            >
              {w.error ? <Alert type="warning" title={w.error.detail ?? w.error.title} /> : w.result ? (
                <ReportResult app={app} entity={report?.entity ?? null} run={w.result} height={w.h * 80 - 70} title={title} />
              ) : null}
            </Card>
          );
        })}
      </div>
    </div>
  );
}
