// Apps home: the user's apps, a blank app, the template gallery (install), upgrades with the merge
// preview and conflict choices, and exporting an app as a template bundle.
import { useState } from 'react';
import { App as AntApp, Button, Card, Checkbox, Col, Dropdown, Empty, Form, Input, Modal, Radio, Row, Space, Spin, Table, Tabs, Tag, Typography } from 'antd';
import { AppstoreAddOutlined, CloudDownloadOutlined, CloudUploadOutlined, MoreOutlined, PlusOutlined, SyncOutlined } from '@ant-design/icons';
import { useNavigate } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type AppView } from '../api/client';
import { Header } from '../components/Header';
import { ProblemAlert } from '../components/ProblemAlert';
import { useLang } from '../lib/hooks';
import type { Localized } from '../lib/metadata';

interface TemplateCard {
  id: string;
  version: string;
  name: Localized;
  description: Localized;
  publisher?: string;
  screenshots: string[];
  tags?: string[];
  source: string;
  versions: string[];
  signer?: string | null;
}

const ID_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;

export function AppsHome() {
  const { t } = useTranslation();
  const apps = useQuery({ queryKey: ['apps'], queryFn: () => api.get<AppView[]>('/api/apps') });
  const [tab, setTab] = useState('apps');
  return (
    <div>
      <Header title={t('home.title')} />
      <div style={{ maxWidth: 1200, margin: '0 auto', padding: 16 }}>
        <Tabs
          activeKey={tab}
          onChange={setTab}
          items={[
            { key: 'apps', label: t('home.myApps'), children: <AppList apps={apps.data} loading={apps.isLoading} error={apps.error} /> },
            { key: 'gallery', label: t('home.gallery'), children: <Gallery onInstalled={() => setTab('apps')} /> },
          ]}
        />
      </div>
    </div>
  );
}

function AppList({ apps, loading, error }: { apps?: AppView[]; loading: boolean; error: unknown }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  const [upgrading, setUpgrading] = useState<string | null>(null);
  const [publishing, setPublishing] = useState<AppView | null>(null);
  const { message } = AntApp.useApp();
  if (loading) return <Spin />;
  return (
    <>
      {error ? <ProblemAlert error={error} /> : null}
      <Space style={{ marginBottom: 16 }}>
        <Button type="primary" icon={<PlusOutlined />} onClick={() => setCreating(true)}>{t('home.createBlank')}</Button>
      </Space>
      {apps && apps.length === 0 && <Empty description={t('home.noApps')} />}
      <Row gutter={[16, 16]}>
        {apps?.map((app) => (
          <Col xs={24} sm={12} lg={8} key={app.id}>
            <Card
              title={l(app.name as Localized, app.id)}
              hoverable
              data-testid={`app-card-${app.id}`}
              actions={[
                <Button type="link" key="open" onClick={() => navigate(`/apps/${app.id}`)}>{t('home.open')}</Button>,
                <Button type="link" key="design" onClick={() => navigate(`/apps/${app.id}/design`)}>{t('home.design')}</Button>,
                <Dropdown key="more" trigger={['click']} menu={{
                  items: [
                    { key: 'upgrade', icon: <SyncOutlined />, label: t('home.upgrade') },
                    { key: 'export', icon: <CloudDownloadOutlined />, label: t('home.export') },
                    { key: 'publish', icon: <CloudUploadOutlined />, label: t('home.publishTemplate') },
                  ],
                  onClick: ({ key }) => {
                    if (key === 'upgrade') setUpgrading(app.id);
                    else if (key === 'export') void exportBundle(app.id).catch((e) => message.error(String(e)));
                    else setPublishing(app);
                  },
                }}>
                  <Button type="link" icon={<MoreOutlined />}>{t('home.more')}</Button>
                </Dropdown>,
              ]}
            >
              <Typography.Text type="secondary">{app.id} · v{app.semver} · #{app.version}</Typography.Text>
            </Card>
          </Col>
        ))}
      </Row>
      <CreateBlankApp open={creating} onClose={() => setCreating(false)} />
      {upgrading && <UpgradeDialog app={upgrading} onClose={() => setUpgrading(null)} />}
      {publishing && <PublishTemplateDialog app={publishing} onClose={() => setPublishing(null)} />}
    </>
  );
}

/** Download the app's bundle (its template as one JSON file). */
async function exportBundle(app: string) {
  const bundle = await api.get<unknown>(`/api/apps/${app}/bundle`);
  const blob = new Blob([JSON.stringify(bundle, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `${app}.bundle.json`;
  a.click();
  URL.revokeObjectURL(url);
}

function CreateBlankApp({ open, onClose }: { open: boolean; onClose: () => void }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const create = useMutation({
    mutationFn: (v: { id: string; en: string; zh: string }) =>
      api.post('/api/apps', {
        'trellis.json': { format_version: 1, id: v.id, version: '0.1.0', name: { en: v.en, 'zh-CN': v.zh || v.en }, engine: '>=0.1.0' },
        // Templates ship their messages in both languages (labels live in the metadata itself).
        'i18n/en.json': { format_version: 1, messages: { 'app.name': v.en } },
        'i18n/zh-CN.json': { format_version: 1, messages: { 'app.name': v.zh || v.en } },
      }),
    onSuccess: (_, v) => {
      void queryClient.invalidateQueries({ queryKey: ['apps'] });
      onClose();
      navigate(`/apps/${v.id}/design`);
    },
  });
  return (
    <Modal open={open} title={t('home.createBlank')} onCancel={onClose} onOk={() => form.submit()} okText={t('common.create')} confirmLoading={create.isPending} destroyOnHidden>
      <Form form={form} layout="vertical" onFinish={(v) => create.mutate(v)}>
        <Form.Item name="id" label={t('home.appId')} extra={t('home.appIdHelp')} rules={[{ required: true, pattern: ID_PATTERN, message: t('home.appIdHelp') }]}>
          <Input />
        </Form.Item>
        <Form.Item name="en" label={t('home.nameEn')} rules={[{ required: true, message: t('common.required') }]}>
          <Input />
        </Form.Item>
        <Form.Item name="zh" label={t('home.nameZh')}>
          <Input />
        </Form.Item>
        {create.error ? <ProblemAlert error={create.error} /> : null}
      </Form>
    </Modal>
  );
}

function Gallery({ onInstalled }: { onInstalled: () => void }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const templates = useQuery({ queryKey: ['templates'], queryFn: () => api.get<TemplateCard[]>('/api/templates') });
  const [installing, setInstalling] = useState<TemplateCard | null>(null);
  if (templates.isLoading) return <Spin />;
  return (
    <>
      {templates.error ? <ProblemAlert error={templates.error} /> : null}
      <Row gutter={[16, 16]}>
        {templates.data?.map((tpl) => (
          <Col xs={24} sm={12} lg={8} key={tpl.id}>
            <Card
              data-testid={`template-${tpl.id}`}
              cover={
                tpl.screenshots[0] ? (
                  <img alt={l(tpl.name)} style={{ height: 160, objectFit: 'cover' }} src={`/api/templates/${tpl.id}/files/${tpl.screenshots[0]}`} />
                ) : (
                  <div style={{ height: 160, display: 'grid', placeItems: 'center', background: '#eef4f0', fontSize: 40, color: '#2f6f4e' }}>
                    <AppstoreAddOutlined />
                  </div>
                )
              }
              actions={[<Button type="link" key="install" onClick={() => setInstalling(tpl)}>{t('gallery.install')}</Button>]}
            >
              <Card.Meta title={l(tpl.name, tpl.id)} description={l(tpl.description)} />
              <div style={{ marginTop: 8 }}>
                <Tag color="green">v{tpl.version}</Tag>
                {tpl.publisher && <Tag>{t('gallery.publisher')}: {tpl.publisher}</Tag>}
                {tpl.signer && <Tag color="blue">{t('gallery.signed')}</Tag>}
                {tpl.tags?.map((tag) => <Tag key={tag}>{tag}</Tag>)}
              </div>
            </Card>
          </Col>
        ))}
      </Row>
      {installing && <InstallDialog template={installing} onClose={() => setInstalling(null)} onInstalled={onInstalled} />}
    </>
  );
}

function InstallDialog({ template, onClose, onInstalled }: { template: TemplateCard; onClose: () => void; onInstalled: () => void }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const install = useMutation({
    mutationFn: (v: { app: string; version: string; sample_data: boolean }) => api.post(`/api/templates/${template.id}/install`, v),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['apps'] });
      onClose();
      onInstalled();
    },
  });
  return (
    <Modal open title={`${t('gallery.install')}: ${l(template.name)}`} onCancel={onClose} onOk={() => form.submit()} okText={t('gallery.install')} confirmLoading={install.isPending}>
      <Form form={form} layout="vertical" initialValues={{ app: template.id, version: template.version, sample_data: true }} onFinish={(v) => install.mutate(v)}>
        <Form.Item name="app" label={t('home.appId')} extra={t('home.appIdHelp')} rules={[{ required: true, pattern: ID_PATTERN, message: t('home.appIdHelp') }]}>
          <Input />
        </Form.Item>
        <Form.Item name="version" label={t('gallery.version')}>
          <Radio.Group options={template.versions.map((v) => ({ label: v, value: v }))} />
        </Form.Item>
        <Form.Item name="sample_data" valuePropName="checked">
          <Checkbox>{t('gallery.sampleData')}</Checkbox>
        </Form.Item>
        {install.isPending && <Typography.Text type="secondary"><Spin size="small" /> {t('common.working')}</Typography.Text>}
        {install.error ? <ProblemAlert error={install.error} /> : null}
      </Form>
    </Modal>
  );
}

interface MergeChange { file: string; pointer: string; kind?: string }
interface Conflict { id: string; file: string; pointer: string; local?: unknown; template?: unknown; default: string; chosen: string }
interface UpgradeReport {
  from_template_version: string;
  to_template_version: string;
  template_changes: MergeChange[];
  local_changes: MergeChange[];
  conflicts: Conflict[];
  migration: { changes?: unknown[]; records_migrated?: number };
}

function UpgradeDialog({ app, onClose }: { app: string; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const [choices, setChoices] = useState<Record<string, 'local' | 'template'>>({});
  const preview = useQuery({
    queryKey: ['upgrade-preview', app],
    queryFn: () => api.post<UpgradeReport>(`/api/apps/${app}/upgrade`, {}, { query: { dry_run: true } }),
    retry: false,
  });
  const apply = useMutation({
    mutationFn: () => api.post<UpgradeReport>(`/api/apps/${app}/upgrade`, { resolutions: choices }),
    onSuccess: () => {
      message.success(t('upgrade.done'));
      void queryClient.invalidateQueries();
      onClose();
    },
  });
  const report = preview.data;
  const show = (v: unknown) => (v === undefined ? <i>{t('upgrade.absent')}</i> : <code style={{ wordBreak: 'break-all' }}>{JSON.stringify(v)}</code>);
  return (
    <Modal open width={860} title={`${t('home.upgrade')}: ${app}`} onCancel={onClose} onOk={() => apply.mutate()} okText={t('upgrade.apply')} okButtonProps={{ disabled: !report }} confirmLoading={apply.isPending}>
      {preview.isLoading && <Spin />}
      {preview.error ? <ProblemAlert error={preview.error} /> : null}
      {report && (
        <>
          <Typography.Paragraph>{t('upgrade.summary', { from: report.from_template_version, to: report.to_template_version, template: report.template_changes.length, local: report.local_changes.length, conflicts: report.conflicts.length })}</Typography.Paragraph>
          {report.conflicts.length > 0 && (
            <Table
              size="small"
              rowKey="id"
              pagination={false}
              dataSource={report.conflicts}
              columns={[
                { title: t('upgrade.where'), render: (_, c) => <code>{c.file}:{c.pointer}</code> },
                { title: t('upgrade.yours'), render: (_, c) => show(c.local) },
                { title: t('upgrade.theirs'), render: (_, c) => show(c.template) },
                {
                  title: t('upgrade.keep'),
                  render: (_, c) => (
                    <Radio.Group value={choices[c.id] ?? c.default} onChange={(e) => setChoices({ ...choices, [c.id]: e.target.value })}>
                      <Radio value="local">{t('upgrade.yours')}</Radio>
                      <Radio value="template">{t('upgrade.theirs')}</Radio>
                    </Radio.Group>
                  ),
                },
              ]}
            />
          )}
          <Typography.Title level={5}>{t('upgrade.templateChanges')}</Typography.Title>
          <ul>{report.template_changes.slice(0, 50).map((c, i) => <li key={i}><code>{c.file}{c.pointer ? `:${c.pointer}` : ''}</code> {c.kind && <Tag>{t(`upgrade.kind.${c.kind}`, { defaultValue: c.kind })}</Tag>}</li>)}</ul>
          {report.local_changes.length > 0 && (
            <>
              <Typography.Title level={5}>{t('upgrade.localChanges')}</Typography.Title>
              <ul>{report.local_changes.slice(0, 50).map((c, i) => <li key={i}><code>{c.file}{c.pointer ? `:${c.pointer}` : ''}</code></li>)}</ul>
            </>
          )}
          <Typography.Paragraph type="secondary">{t('upgrade.migration', { records: report.migration.records_migrated ?? 0, changes: report.migration.changes?.length ?? 0 })}</Typography.Paragraph>
        </>
      )}
      {apply.isPending && <Typography.Text type="secondary"><Spin size="small" /> {t('common.working')}</Typography.Text>}
      {apply.error ? <ProblemAlert error={apply.error} /> : null}
    </Modal>
  );
}

/** Publish an app to the gallery as a template, at a version the publisher picks. */
function PublishTemplateDialog({ app, onClose }: { app: AppView; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const publish = useMutation({
    mutationFn: (v: { version: string }) => api.post(`/api/apps/${app.id}/publish-template`, { version: v.version }),
    onSuccess: () => {
      message.success(t('home.publishedTemplate'));
      void queryClient.invalidateQueries({ queryKey: ['templates'] });
      onClose();
    },
  });
  return (
    <Modal open title={`${t('home.publishTemplate')}: ${app.id}`} onCancel={onClose} onOk={() => form.submit()} okText={t('home.publishTemplate')} confirmLoading={publish.isPending}>
      <Typography.Paragraph type="secondary">{t('home.publishTemplateHelp')}</Typography.Paragraph>
      <Form form={form} layout="vertical" initialValues={{ version: app.semver }} onFinish={(v) => publish.mutate(v)}>
        <Form.Item name="version" label={t('gallery.version')} rules={[{ required: true, pattern: /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/, message: t('home.semver') }]}>
          <Input />
        </Form.Item>
      </Form>
      {publish.isPending && <Typography.Text type="secondary"><Spin size="small" /> {t('home.checkingTemplate')}</Typography.Text>}
      {publish.error ? <ProblemAlert error={publish.error} /> : null}
    </Modal>
  );
}
