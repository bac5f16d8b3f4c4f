// An entity's list view: search, the visual filter builder, server-side sort, column choice, saved
// views (kept per user in this browser), CSV/XLSX export and paging by cursor.
import { useMemo, useState } from 'react';
import { App as AntApp, Button, Checkbox, Dropdown, Form, Input, Modal, Popconfirm, Popover, Select, Space, Table, Typography } from 'antd';
import { DeleteOutlined, DownloadOutlined, FilterOutlined, PlusOutlined, SaveOutlined, SettingOutlined, UploadOutlined } from '@ant-design/icons';
import { ImportDialog } from '../components/ImportDialog';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, getToken, recordsPath, type RecordPage, type RecordView } from '../api/client';
import { FilterBuilder } from '../components/FilterBuilder';
import { FieldValue } from '../components/FieldValue';
import { ProblemAlert, problemText } from '../components/ProblemAlert';
import { fromFilterTree, toFilterTree, toSortParam, type FilterModel } from '../lib/filters';
import { entityById, recordTitle } from '../lib/metadata';
import { useAppMeta, useLang, useRelationTitles, useUsers } from '../lib/hooks';

interface SavedView {
  id: string;
  name: string;
  shared: boolean;
  mine: boolean;
  spec: { filter?: FilterModel; columns?: string[]; sort?: string };
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}


export function RecordList() {
  const { app = '', entity: entityId = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const meta = useAppMeta(app).data!.meta;
  const entity = entityById(meta, entityId);
  const defaultColumns = useMemo(() => entity?.fields.filter((f) => f.kind !== 'json' && f.kind !== 'long_text').slice(0, 7).map((f) => f.id) ?? [], [entity]);
  const initialFilter = useMemo(() => {
    const raw = params.get('filter');
    if (!raw) return { join: 'and', conditions: [] } as FilterModel;
    try {
      return fromFilterTree(JSON.parse(raw)) ?? ({ join: 'and', conditions: [] } as FilterModel);
    } catch {
      return { join: 'and', conditions: [] } as FilterModel;
    }
  }, [params]);
  const [filter, setFilter] = useState<FilterModel>(initialFilter);
  const [columns, setColumns] = useState<string[]>(defaultColumns);
  const [sort, setSort] = useState<string | undefined>(undefined);
  const [search, setSearch] = useState('');
  const [importing, setImporting] = useState(false);
  const [current, setCurrent] = useState<SavedView | null>(null);
  const [saving, setSaving] = useState(false);
  const queryClient = useQueryClient();
  const { message } = AntApp.useApp();
  const views = useQuery({
    queryKey: ['views', app, entityId],
    queryFn: async () => (await api.get<{ items: SavedView[] }>(`/api/apps/${app}/entities/${entityId}/views`)).items,
  });
  const removeView = useMutation({
    mutationFn: (id: string) => api.del(`/api/apps/${app}/entities/${entityId}/views/${id}`),
    onSuccess: () => { setCurrent(null); void queryClient.invalidateQueries({ queryKey: ['views', app, entityId] }); },
    onError: (e) => message.error(problemText(e)),
  });
  const rawDrill = params.get('filter');
  const tree = entity ? toFilterTree(filter, entity.fields) : null;
  // A drill-down filter the builder cannot show is applied as is.
  const filterParam = tree ? JSON.stringify(tree) : rawDrill && !fromFilterTree(safeParse(rawDrill)) ? rawDrill : undefined;
  const list = useInfiniteQuery({
    queryKey: ['records', app, entityId, filterParam, sort, search],
    enabled: Boolean(entity),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      api.get<RecordPage>(recordsPath(app, entityId), { query: { filter: filterParam, sort, q: search || undefined, limit: 50, cursor: pageParam } }),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const rows: RecordView[] = list.data?.pages.flatMap((p) => p.items) ?? [];
  const titles = useRelationTitles(app, meta, entity?.fields.filter((f) => columns.includes(f.id)) ?? [], rows);
  const users = useUsers(app);
  const userNames = Object.fromEntries((users.data ?? []).map((u) => [u.id, u.display_name || u.username]));
  if (!entity) return <ProblemAlert error={new Error(t('common.notFound'))} />;
  const title = entity.titleField ?? entity.fields.find((f) => f.kind === 'text')?.id;
  const tableColumns = columns
    .map((fid) => entity.fields.find((f) => f.id === fid))
    .filter((f): f is NonNullable<typeof f> => Boolean(f))
    .map((field) => ({
      key: field.id,
      dataIndex: ['data', field.id],
      title: l(field.label, field.id),
      sorter: field.kind !== 'json',
      ellipsis: true,
      render: (_: unknown, record: RecordView) =>
        field.id === title ? (
          <Link to={`/apps/${app}/e/${entityId}/${record.id}`}>{recordTitle(entity, record)}</Link>
        ) : (
          <FieldValue field={field} value={record.data[field.id]} app={app} lookups={{ titles: titles.data, users: userNames }} />
        ),
    }));
  const exportFile = async (format: 'csv' | 'xlsx') => {
    const query = new URLSearchParams({ format });
    if (filterParam) query.set('filter', filterParam);
    if (sort) query.set('sort', sort);
    const response = await fetch(`/api/apps/${app}/entities/${entityId}/export?${query}`, { headers: { authorization: `Bearer ${getToken()}` } });
    const blob = await response.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${entityId}.${format}`;
    a.click();
  };
  const activeConditions = filter.conditions.length;
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{l(entity.labelPlural, entity.id)}</Typography.Title>
        <Space wrap>
          <Input.Search aria-label={t('list.search')} placeholder={t('list.search')} allowClear onSearch={setSearch} style={{ width: 200 }} />
          <Popover trigger="click" placement="bottomRight" content={<div style={{ maxWidth: 720 }}><FilterBuilder fields={entity.fields} value={filter} onChange={setFilter} app={app} meta={meta} /></div>}>
            <Button icon={<FilterOutlined />}>{t('list.filter')}{activeConditions ? ` (${activeConditions})` : ''}</Button>
          </Popover>
          <Popover trigger="click" placement="bottomRight" content={
            <Checkbox.Group
              style={{ display: 'grid', maxHeight: 320, overflow: 'auto' }}
              value={columns}
              onChange={(v) => setColumns(entity.fields.map((f) => f.id).filter((id) => (v as string[]).includes(id)))}
              options={entity.fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))}
            />
          }>
            <Button icon={<SettingOutlined />}>{t('list.columns')}</Button>
          </Popover>
          <Select
            aria-label={t('list.savedViews')}
            placeholder={t('list.savedViews')}
            style={{ width: 180 }}
            allowClear
            value={current?.id ?? null}
            options={(views.data ?? []).map((v) => ({ value: v.id, label: v.shared && !v.mine ? `${v.name} · ${t('list.sharedView')}` : v.name }))}
            onChange={(id) => {
              const v = (views.data ?? []).find((x) => x.id === id) ?? null;
              setCurrent(v);
              if (v) {
                setFilter(v.spec.filter ?? { join: 'and', conditions: [] });
                setColumns(v.spec.columns?.length ? v.spec.columns : defaultColumns);
                setSort(v.spec.sort);
              }
            }}
          />
          {current?.mine && (
            <Popconfirm title={t('list.confirmDeleteView')} onConfirm={() => removeView.mutate(current.id)}>
              <Button icon={<DeleteOutlined />} aria-label={t('list.deleteView')} />
            </Popconfirm>
          )}
          <Button icon={<SaveOutlined />} onClick={() => setSaving(true)}>{t('list.saveView')}</Button>
          <Dropdown menu={{ items: [{ key: 'csv', label: 'CSV' }, { key: 'xlsx', label: 'Excel (XLSX)' }], onClick: ({ key }) => void exportFile(key as 'csv' | 'xlsx') }}>
            <Button icon={<DownloadOutlined />}>{t('list.export')}</Button>
          </Dropdown>
          <Button icon={<UploadOutlined />} onClick={() => setImporting(true)}>{t('list.import')}</Button>
          <Button type="primary" icon={<PlusOutlined />} onClick={() => navigate(`/apps/${app}/e/${entityId}/new`)}>{t('list.new')}</Button>
        </Space>
      </Space>
      {list.error ? <ProblemAlert error={list.error} /> : null}
      <Table
        size="middle"
        rowKey="id"
        loading={list.isLoading}
        dataSource={rows}
        columns={tableColumns}
        pagination={false}
        scroll={{ x: 'max-content' }}
        onChange={(_, __, sorter) => {
          const s = Array.isArray(sorter) ? sorter[0] : sorter;
          setSort(toSortParam(s?.columnKey as string | undefined, s?.order));
        }}
        onRow={(record) => ({ onDoubleClick: () => navigate(`/apps/${app}/e/${entityId}/${record.id}`) })}
      />
      <Space style={{ marginTop: 12 }}>
        <Typography.Text type="secondary">{t('list.shown', { count: rows.length })}</Typography.Text>
        {list.hasNextPage && <Button onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>{t('list.more')}</Button>}
      </Space>
      {saving && (
        <SaveViewDialog app={app} entity={entityId} initialName={current?.mine ? current.name : ''} spec={{ filter, columns, sort }}
          onClose={(saved) => { setSaving(false); if (saved) setCurrent(saved); }} />
      )}
      {importing && <ImportDialog app={app} entity={entityId} open={importing} onClose={() => setImporting(false)} />}
    </div>
  );
}

/** Name the list as it is now (filter, columns, sort) — for oneself or for everyone. */
function SaveViewDialog({ app, entity, initialName, spec, onClose }: { app: string; entity: string; initialName: string; spec: SavedView['spec']; onClose: (saved?: SavedView) => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const save = useMutation({
    mutationFn: (v: { name: string; shared: boolean }) => api.post<SavedView>(`/api/apps/${app}/entities/${entity}/views`, { name: v.name, shared: v.shared, spec }),
    onSuccess: (saved) => {
      void queryClient.invalidateQueries({ queryKey: ['views', app, entity] });
      onClose(saved);
    },
  });
  return (
    <Modal open title={t('list.saveView')} onCancel={() => onClose()} onOk={() => form.submit()} okText={t('common.save')} confirmLoading={save.isPending}>
      <Form form={form} layout="vertical" initialValues={{ name: initialName, shared: false }} onFinish={(v) => save.mutate(v)}>
        <Form.Item name="name" label={t('list.viewName')} rules={[{ required: true, whitespace: true, max: 100, message: t('common.required') }]}>
          <Input autoFocus />
        </Form.Item>
        <Form.Item name="shared" valuePropName="checked">
          <Checkbox>{t('list.shareView')}</Checkbox>
        </Form.Item>
      </Form>
      {save.error ? <ProblemAlert error={save.error} /> : null}
    </Modal>
  );
}
