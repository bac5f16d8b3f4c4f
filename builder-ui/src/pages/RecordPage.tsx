// A record's page: its detail view (sections of fields, related lists, open tasks, score trends —
// the CLM customer 360 is such a view) or all its fields, with flows, history, duplicates and merge,
// edit and delete.
import { useMemo } from 'react';
import { App as AntApp, Button, Card, Col, Descriptions, Empty, List, Popconfirm, Row, Space, Table, Tabs, Tag, Typography } from 'antd';
import { DeleteOutlined, EditOutlined, MergeCellsOutlined } from '@ant-design/icons';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, recordsPath, request, type RecordPage as Page, type RecordView } from '../api/client';
import { EChart } from '../components/EChart';
import { FieldValue, type Lookups } from '../components/FieldValue';
import { FlowPanel } from '../components/FlowPanel';
import { ProblemAlert, problemText } from '../components/ProblemAlert';
import { TaskList } from '../components/TaskList';
import { entityById, recordTitle, type AppMeta, type EntityMeta, type Localized } from '../lib/metadata';
import { useAppMeta, useLang, useRelationTitles, useUsers } from '../lib/hooks';

interface HistoryEntry { version: number; operation: string; actor: string; at: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null }

interface Section {
  id: string;
  label?: Localized;
  fields?: string[];
  trend?: string[];
  related?: { entity: string; field: string; sort?: string; columns?: string[] };
  tasks?: boolean;
}

export function useRecord(app: string, entity: string, id: string) {
  return useQuery({
    queryKey: ['record', app, entity, id],
    queryFn: async () => {
      const answer = await request<RecordView>('GET', recordsPath(app, entity, id));
      return { record: answer.data, etag: answer.etag };
    },
  });
}

export function RecordPage() {
  const { app = '', entity: entityId = '', id = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const meta = useAppMeta(app).data!.meta;
  const entity = entityById(meta, entityId);
  const loaded = useRecord(app, entityId, id);
  const history = useQuery({ queryKey: ['history', app, entityId, id], queryFn: () => api.get<HistoryEntry[]>(`${recordsPath(app, entityId, id)}/history`) });
  const users = useUsers(app);
  const userNames = Object.fromEntries((users.data ?? []).map((u) => [u.id, u.display_name || u.username]));
  const record = loaded.data?.record;
  const titles = useRelationTitles(app, meta, entity?.fields ?? [], record ? [record] : []);
  const remove = useMutation({
    mutationFn: () => api.del(recordsPath(app, entityId, id), { ifMatch: loaded.data?.etag ?? undefined }),
    onSuccess: () => {
      message.success(t('record.deleted'));
      void queryClient.invalidateQueries({ queryKey: ['records', app, entityId] });
      navigate(`/apps/${app}/e/${entityId}`);
    },
    onError: (e) => message.error(problemText(e)),
  });
  const view = meta.views.find((v) => v.kind === 'detail' && v.entity === entityId);
  const sections: Section[] = useMemo(() => {
    if (view && Array.isArray(view.raw.sections)) return view.raw.sections as Section[];
    return [
      { id: 'fields', fields: entity?.fields.map((f) => f.id) ?? [] },
      { id: 'tasks', label: { en: 'Open tasks', 'zh-CN': '待办任务' }, tasks: true },
    ];
  }, [view, entity]);
  if (!entity) return <ProblemAlert error={new Error(t('common.notFound'))} />;
  if (loaded.error) return <ProblemAlert error={loaded.error} />;
  if (!record) return null;
  const lookups: Lookups = { titles: titles.data, users: userNames };
  const fieldSections = sections.filter((s) => s.fields);
  const otherSections = sections.filter((s) => !s.fields);
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <div>
          <Typography.Text type="secondary"><Link to={`/apps/${app}/e/${entityId}`}>{l(entity.labelPlural, entityId)}</Link>{view ? ` · ${l(view.label)}` : ''}</Typography.Text>
          <Typography.Title level={3} style={{ margin: 0 }} data-testid="record-title">{recordTitle(entity, record)}</Typography.Title>
        </div>
        <Space wrap>
          <Button icon={<EditOutlined />} onClick={() => navigate(`/apps/${app}/e/${entityId}/${id}/edit`)}>{t('common.edit')}</Button>
          <Popconfirm title={t('record.confirmDelete')} onConfirm={() => remove.mutate()}>
            <Button danger icon={<DeleteOutlined />}>{t('common.delete')}</Button>
          </Popconfirm>
        </Space>
      </Space>
      <Row gutter={16}>
        <Col xs={24} lg={16}>
          {fieldSections.map((s) => (
            <Card key={s.id} size="small" title={s.label ? l(s.label) : undefined} style={{ marginBottom: 12 }} data-testid={`section-${s.id}`}>
              <Descriptions size="small" column={{ xs: 1, sm: 2, lg: 3 }}>
                {s.fields!.map((fid) => {
                  const field = entity.fields.find((f) => f.id === fid);
                  if (!field) return null;
                  return (
                    <Descriptions.Item key={fid} label={l(field.label, fid)}>
                      <FieldValue field={field} value={record.data[fid]} app={app} lookups={lookups} />
                    </Descriptions.Item>
                  );
                })}
              </Descriptions>
              {s.trend && history.data && <Trend entity={entity} fields={s.trend} history={history.data} />}
            </Card>
          ))}
          <Tabs
            items={[
              ...otherSections.map((s) => ({
                key: s.id,
                label: l(s.label, s.id),
                children: s.related ? <RelatedList app={app} meta={meta} related={s.related} parent={id} /> : s.tasks ? <TaskList app={app} recordId={id} /> : null,
              })),
              { key: '__history', label: t('record.history'), children: <HistoryList entity={entity} history={history.data ?? []} lookups={lookups} app={app} /> },
              { key: '__duplicates', label: t('record.duplicates'), children: <Duplicates app={app} entity={entity} id={id} /> },
            ]}
          />
        </Col>
        <Col xs={24} lg={8}>
          <FlowPanel app={app} entity={entityId} id={id} meta={meta} />
        </Col>
      </Row>
    </div>
  );
}

function Trend({ entity, fields, history }: { entity: EntityMeta; fields: string[]; history: HistoryEntry[] }) {
  const { l } = useLang();
  const points = history.filter((h) => h.after).map((h) => ({ at: h.at, data: h.after! }));
  if (points.length < 2) return null;
  const option = {
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    grid: { left: 40, right: 16, top: 36, bottom: 24 },
    xAxis: { type: 'category', data: points.map((p) => new Date(p.at).toLocaleDateString()) },
    yAxis: { type: 'value' },
    series: fields.map((fid) => ({
      type: 'line',
      name: l(entity.fields.find((f) => f.id === fid)?.label, fid),
      data: points.map((p) => p.data[fid] ?? null),
      connectNulls: true,
    })),
  };
  return <EChart option={option} height={180} ariaLabel="trend" />;
}

function RelatedList({ app, meta, related, parent }: { app: string; meta: AppMeta; related: NonNullable<Section['related']>; parent: string }) {
  const { l } = useLang();
  const { t } = useTranslation();
  const target = entityById(meta, related.entity);
  const rows = useQuery({
    queryKey: ['records', app, related.entity, 'related', related.field, parent],
    queryFn: () => api.get<Page>(recordsPath(app, related.entity), { query: { filter: JSON.stringify({ field: related.field, op: 'eq', value: parent }), sort: related.sort, limit: 100 } }),
  });
  const relatedTitles = useRelationTitles(app, meta, target?.fields ?? [], rows.data?.items ?? []);
  const people = useUsers(app);
  const lookups: Lookups = { titles: relatedTitles.data, users: Object.fromEntries((people.data ?? []).map((u) => [u.id, u.display_name || u.username])) };
  if (!target) return null;
  const columns = (related.columns ?? target.fields.filter((f) => f.id !== related.field && f.kind !== 'json').slice(0, 6).map((f) => f.id))
    .map((fid) => target.fields.find((f) => f.id === fid)!)
    .filter(Boolean);
  const title = target.titleField ?? columns[0]?.id;
  return (
    <div>
      <Space style={{ marginBottom: 8 }}>
        <Link to={`/apps/${app}/e/${related.entity}/new?${related.field}=${parent}`}>+ {t('list.new')}</Link>
      </Space>
      <Table
        size="small"
        rowKey="id"
        loading={rows.isLoading}
        dataSource={rows.data?.items ?? []}
        pagination={{ pageSize: 10, hideOnSinglePage: true }}
        scroll={{ x: 'max-content' }}
        locale={{ emptyText: <Empty description={t('common.none')} image={Empty.PRESENTED_IMAGE_SIMPLE} /> }}
        columns={columns.map((f) => ({
          key: f.id,
          title: l(f.label, f.id),
          render: (_: unknown, r: RecordView) =>
            f.id === title ? <Link to={`/apps/${app}/e/${related.entity}/${r.id}`}>{recordTitle(target, r)}</Link> : <FieldValue field={f} value={r.data[f.id]} app={app} lookups={lookups} />,
        }))}
      />
    </div>
  );
}

function HistoryList({ entity, history, lookups, app }: { entity: EntityMeta; history: HistoryEntry[]; lookups: Lookups; app: string }) {
  const { t } = useTranslation();
  const { l } = useLang();
  return (
    <List
      size="small"
      dataSource={[...history].reverse()}
      renderItem={(h) => {
        const keys = new Set([...Object.keys(h.before ?? {}), ...Object.keys(h.after ?? {})]);
        const changed = [...keys].filter((k) => JSON.stringify(h.before?.[k]) !== JSON.stringify(h.after?.[k]) && k !== 'updated_at');
        return (
          <List.Item>
            <div style={{ width: '100%' }}>
              <Typography.Text strong>v{h.version} · {t(`record.op.${h.operation}`, { defaultValue: h.operation })}</Typography.Text>{' '}
              <Typography.Text type="secondary">{new Date(h.at).toLocaleString()} · {lookups.users?.[h.actor] ?? h.actor}</Typography.Text>
              {h.operation !== 'create' && (
                <ul style={{ margin: '4px 0 0', paddingLeft: 18 }}>
                  {changed.slice(0, 12).map((k) => {
                    const field = entity.fields.find((f) => f.id === k);
                    return (
                      <li key={k}>
                        {field ? l(field.label, k) : k}:{' '}
                        {field ? <FieldValue field={field} value={h.before?.[k]} app={app} lookups={lookups} /> : String(h.before?.[k] ?? '—')} →{' '}
                        {field ? <FieldValue field={field} value={h.after?.[k]} app={app} lookups={lookups} /> : String(h.after?.[k] ?? '—')}
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
          </List.Item>
        );
      }}
    />
  );
}

function Duplicates({ app, entity, id }: { app: string; entity: EntityMeta; id: string }) {
  const { t } = useTranslation();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const found = useQuery({
    queryKey: ['duplicates', app, entity.id, id],
    queryFn: async () => (await api.get<{ items: { record: RecordView; matched: string[] }[] }>(`${recordsPath(app, entity.id, id)}/duplicates`)).items,
  });
  const merge = useMutation({
    mutationFn: (duplicate: string) => api.post<{ merge_id?: string; id?: string }>(`${recordsPath(app, entity.id, id)}/merge`, { duplicates: [duplicate] }),
    onSuccess: () => {
      message.success(t('record.merged'));
      void queryClient.invalidateQueries();
    },
    onError: (e) => message.error(problemText(e)),
  });
  if (!found.data?.length) return <Empty description={t('record.noDuplicates')} image={Empty.PRESENTED_IMAGE_SIMPLE} />;
  return (
    <List
      dataSource={found.data}
      renderItem={(d) => (
        <List.Item actions={[
          <Popconfirm key="merge" title={t('record.confirmMerge')} onConfirm={() => merge.mutate(d.record.id)}>
            <Button size="small" icon={<MergeCellsOutlined />}>{t('record.mergeHere')}</Button>
          </Popconfirm>,
        ]}>
          <Link to={`/apps/${app}/e/${entity.id}/${d.record.id}`}>{recordTitle(entity, d.record)}</Link>{' '}
          {d.matched.map((m) => <Tag key={m}>{m}</Tag>)}
        </List.Item>
      )}
    />
  );
}
