// The report designer: pick the entity, dimensions (with calendar buckets or numeric bins),
// measures and a chart kind, and see a live preview run on the app's data; add the report to a
// dashboard; publish. Other analyses (funnel, cohort, RFM, customer base) are previewed as they are.
import { useEffect, useState } from 'react';
import { Button, Card, Col, Empty, Input, InputNumber, Row, Select, Space, Tag, Typography } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { api } from '../../api/client';
import { ProblemAlert } from '../../components/ProblemAlert';
import { PublishDialog } from '../../components/PublishDialog';
import { ReportResult, type ReportRun } from '../../components/ReportResult';
import { entityById } from '../../lib/metadata';
import { useAppMeta, useLang } from '../../lib/hooks';
import { LocalizedInput } from './LocalizedInput';

interface Dimension { field: string; bucket?: string | null; bin?: number | null }
interface Measure { id: string; op: string; field?: string | null; label?: Record<string, string> }
interface ReportDoc { format_version: number; id: string; label?: Record<string, string>; dataset: { entity: string; filter?: unknown }; analysis: Record<string, unknown>; chart?: { kind: string; x?: string | null; y?: string[] }; [k: string]: unknown }

const OPS = ['count', 'count_distinct', 'sum', 'avg', 'min', 'max', 'median'];
const CHARTS = ['bar', 'line', 'area', 'pie', 'table', 'kpi', 'funnel'];
const BUCKETS = ['day', 'week', 'month', 'quarter', 'year'];

export function ReportDesigner() {
  const { app = '', report: reportId = '' } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l, lang } = useLang();
  const loaded = useAppMeta(app).data!;
  const meta = loaded.meta;
  const path = `reports/${reportId}.report.json`;
  const [report, setReport] = useState<ReportDoc>(() => (loaded.bundle[path] as ReportDoc | undefined) ? structuredClone(loaded.bundle[path] as ReportDoc) : {
    format_version: 1, id: reportId, label: { en: params.get('en') || reportId, 'zh-CN': params.get('zh') || params.get('en') || reportId },
    dataset: { entity: params.get('entity') ?? meta.entities[0]?.id ?? '' },
    analysis: { aggregate: { dimensions: [], measures: [{ id: 'records', op: 'count', label: { en: 'Records', 'zh-CN': '记录数' } }] } },
    chart: { kind: 'bar' },
  });
  const [preview, setPreview] = useState<{ run?: ReportRun; error?: unknown }>({});
  const [dashboard, setDashboard] = useState<string | null>(null);
  const [publishing, setPublishing] = useState(false);
  const entity = entityById(meta, report.dataset.entity);
  const aggregate = report.analysis.aggregate as { dimensions: Dimension[]; measures: Measure[] } | undefined;
  const setAggregate = (patch: Partial<{ dimensions: Dimension[]; measures: Measure[] }>) => setReport({ ...report, analysis: { aggregate: { ...aggregate!, ...patch } } });

  useEffect(() => {
    const timer = setTimeout(async () => {
      try {
        const spec = { ...report, chart: report.chart ? { ...report.chart, y: report.chart.y?.length ? report.chart.y : undefined } : undefined };
        setPreview({ run: await api.post<ReportRun>(`/api/apps/${app}/query`, { spec }, { lang }) });
      } catch (error) {
        setPreview({ error });
      }
    }, 400);
    return () => clearTimeout(timer);
  }, [app, report, lang]);

  const dashboards = meta.views.filter((v) => v.kind === 'dashboard');
  const nextBundle = () => {
    const bundle = { ...loaded.bundle, [path]: report };
    if (dashboard) {
      const key = `views/${dashboard}.view.json`;
      const view = structuredClone(loaded.bundle[key] as { widgets?: { report: string; x: number; y: number; w: number; h: number }[] });
      const widgets = view.widgets ?? [];
      if (!widgets.some((w) => w.report === reportId)) {
        const y = widgets.reduce((m, w) => Math.max(m, w.y + w.h), 0);
        widgets.push({ report: reportId, x: 0, y, w: 6, h: 4 });
      }
      bundle[key] = { ...view, widgets };
    }
    return bundle;
  };
  const numericFields = entity?.fields.filter((f) => ['integer', 'decimal', 'percent', 'rating', 'money'].includes(f.kind)) ?? [];
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('design.reportTitle', { report: l(report.label, reportId) })}</Typography.Title>
        <Space wrap>
          <Select aria-label={t('report.addToDashboard')} placeholder={t('report.addToDashboard')} allowClear style={{ width: 220 }} value={dashboard ?? undefined}
            options={dashboards.map((d) => ({ value: d.id, label: l(d.label, d.id) }))} onChange={(v) => setDashboard(v ?? null)} />
          <Button type="primary" onClick={() => setPublishing(true)}>{t('design.publish')}</Button>
        </Space>
      </Space>
      <Row gutter={12}>
        <Col xs={24} lg={10}>
          <Card size="small">
            <LocalizedInput label={t('report.name')} value={report.label ?? {}} onChange={(label) => setReport({ ...report, label })} />
            <div>{t('design.entity')}
              <Select aria-label={t('design.entity')} style={{ width: '100%' }} value={report.dataset.entity} options={meta.entities.map((e) => ({ value: e.id, label: l(e.label, e.id) }))}
                onChange={(e) => setReport({ ...report, dataset: { entity: e }, analysis: { aggregate: { dimensions: [], measures: [{ id: 'records', op: 'count', label: { en: 'Records', 'zh-CN': '记录数' } }] } } })} />
            </div>
            {!aggregate ? (
              <Typography.Paragraph style={{ marginTop: 8 }}><Tag>{Object.keys(report.analysis)[0]}</Tag>{t('report.specialAnalysis')}</Typography.Paragraph>
            ) : (
              <>
                <Typography.Title level={5} style={{ marginTop: 12 }}>{t('report.dimensions')}</Typography.Title>
                {aggregate.dimensions.map((d, i) => {
                  const field = entity?.fields.find((f) => f.id === d.field);
                  const isDate = field && ['date', 'datetime', 'created_at', 'updated_at'].includes(field.kind);
                  const isNumber = field && ['integer', 'decimal', 'percent'].includes(field.kind);
                  const update = (patch: Partial<Dimension>) => setAggregate({ dimensions: aggregate.dimensions.map((x, j) => (j === i ? { ...x, ...patch } : x)) });
                  return (
                    <Space key={i} wrap style={{ display: 'flex', marginBottom: 4 }} data-testid="dimension-row">
                      <Select aria-label={t('report.dimension')} style={{ width: 180 }} value={d.field} showSearch={{ optionFilterProp: 'label' }}
                        options={(entity?.fields ?? []).filter((f) => f.kind !== 'json').map((f) => ({ value: f.id, label: l(f.label, f.id) }))}
                        onChange={(f) => { const k = entity?.fields.find((x) => x.id === f)?.kind; update({ field: f, bucket: k && ['date', 'datetime', 'created_at', 'updated_at'].includes(k) ? 'month' : null, bin: null }); }} />
                      {isDate && <Select aria-label={t('report.bucket')} style={{ width: 120 }} value={d.bucket ?? 'month'} options={BUCKETS.map((b) => ({ value: b, label: t(`report.buckets.${b}`) }))} onChange={(bucket) => update({ bucket })} />}
                      {isNumber && <InputNumber aria-label={t('report.bin')} placeholder={t('report.bin')} value={d.bin ?? null} onChange={(bin) => update({ bin })} />}
                      <Button aria-label={t('design.remove')} icon={<DeleteOutlined />} onClick={() => setAggregate({ dimensions: aggregate.dimensions.filter((_, j) => j !== i) })} />
                    </Space>
                  );
                })}
                <Button size="small" icon={<PlusOutlined />} disabled={!entity} onClick={() => {
                  const f = entity!.fields.find((x) => ['single_select', 'user', 'relation_one', 'text'].includes(x.kind)) ?? entity!.fields[0];
                  setAggregate({ dimensions: [...aggregate.dimensions, { field: f.id, bucket: ['date', 'datetime'].includes(f.kind) ? 'month' : null }] });
                }} data-testid="add-dimension">{t('report.addDimension')}</Button>
                <Typography.Title level={5} style={{ marginTop: 12 }}>{t('report.measures')}</Typography.Title>
                {aggregate.measures.map((m, i) => {
                  const update = (patch: Partial<Measure>) => setAggregate({ measures: aggregate.measures.map((x, j) => (j === i ? { ...x, ...patch } : x)) });
                  return (
                    <Space key={i} wrap style={{ display: 'flex', marginBottom: 4 }} data-testid="measure-row">
                      <Select aria-label={t('report.op')} style={{ width: 140 }} value={m.op} options={OPS.map((o) => ({ value: o, label: t(`report.ops.${o}`) }))}
                        onChange={(op) => update({ op, field: op === 'count' ? null : m.field ?? (op === 'count_distinct' ? entity?.fields[0]?.id : numericFields[0]?.id) ?? null })} />
                      {m.op !== 'count' && (
                        <Select aria-label={t('filter.field')} style={{ width: 160 }} value={m.field ?? undefined}
                          options={(m.op === 'count_distinct' ? entity?.fields ?? [] : numericFields).map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(field) => update({ field })} />
                      )}
                      <Input aria-label={t('report.measureName')} style={{ width: 140 }} value={m.label?.[lang] ?? m.label?.en ?? m.id}
                        onChange={(e) => update({ label: { ...(m.label ?? {}), [lang]: e.target.value } })} />
                      <Button aria-label={t('design.remove')} icon={<DeleteOutlined />} disabled={aggregate.measures.length <= 1} onClick={() => setAggregate({ measures: aggregate.measures.filter((_, j) => j !== i) })} />
                    </Space>
                  );
                })}
                <Button size="small" icon={<PlusOutlined />} onClick={() => {
                  let n = aggregate.measures.length + 1;
                  while (aggregate.measures.some((m) => m.id === `measure_${n}`)) n += 1;
                  const f = numericFields[0];
                  setAggregate({ measures: [...aggregate.measures, f ? { id: `measure_${n}`, op: 'sum', field: f.id, label: { en: `Sum of ${l(f.label, f.id)}`, 'zh-CN': `${l(f.label, f.id)}合计` } } : { id: `measure_${n}`, op: 'count' }] });
                }}>{t('report.addMeasure')}</Button>
              </>
            )}
            <Typography.Title level={5} style={{ marginTop: 12 }}>{t('report.chart')}</Typography.Title>
            <Select aria-label={t('report.chart')} style={{ width: 160 }} value={report.chart?.kind ?? 'table'} data-testid="chart-kind"
              options={CHARTS.map((c) => ({ value: c, label: t(`report.charts.${c}`) }))} onChange={(kind) => setReport({ ...report, chart: { kind } })} />
          </Card>
        </Col>
        <Col xs={24} lg={14}>
          <Card size="small" title={t('report.preview')} data-testid="report-preview">
            {preview.error ? <ProblemAlert error={preview.error} /> : preview.run ? (
              preview.run.rows.length === 0 ? <Empty description={t('report.noRows')} /> : <ReportResult app={app} entity={report.dataset.entity} run={preview.run} height={340} title={l(report.label)} />
            ) : null}
          </Card>
        </Col>
      </Row>
      {publishing && <PublishDialog app={app} bundle={nextBundle()} etag={loaded.etag} open={publishing} onClose={() => setPublishing(false)} />}
    </div>
  );
}
