// The designer's start page for an app: its entities, flows, rules, reports and dashboards, each
// opening its visual designer, and dialogs that start new ones (no JSON anywhere).
import { useState } from 'react';
import { Button, Card, Col, Form, Input, List, Modal, Row, Select, Typography } from 'antd';
import { PlusOutlined } from '@ant-design/icons';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { isIdentifier } from '../../lib/entityDesign';
import { useAppMeta, useLang } from '../../lib/hooks';

type Kind = 'entity' | 'flow' | 'rule' | 'report' | 'dashboard';

export function DesignHome() {
  const { app = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const meta = useAppMeta(app).data!.meta;
  const [creating, setCreating] = useState<Kind | null>(null);
  const [form] = Form.useForm();
  const base = `/apps/${app}/design`;
  const sections: { kind: Kind; title: string; items: { id: string; label: string; to: string }[] }[] = [
    { kind: 'entity', title: t('design.entities'), items: meta.entities.map((e) => ({ id: e.id, label: l(e.label, e.id), to: `${base}/entities/${e.id}` })) },
    { kind: 'flow', title: t('design.flows'), items: meta.flows.map((f) => ({ id: f.id, label: l(f.label, f.id), to: `${base}/flows/${f.id}` })) },
    { kind: 'rule', title: t('design.rules'), items: meta.rules.map((r) => ({ id: r.id, label: l(r.label, r.id), to: `${base}/rules/${r.id}` })) },
    { kind: 'report', title: t('design.reports'), items: meta.reports.map((r) => ({ id: r.id, label: l(r.label, r.id), to: `${base}/reports/${r.id}` })) },
    { kind: 'dashboard', title: t('design.dashboards'), items: meta.views.filter((v) => v.kind === 'dashboard').map((v) => ({ id: v.id, label: l(v.label, v.id), to: `${base}/dashboards/${v.id}` })) },
  ];
  const create = (v: { id: string; en: string; zh?: string; entity?: string }) => {
    const q = new URLSearchParams({ en: v.en, zh: v.zh || v.en, ...(v.entity ? { entity: v.entity } : {}) });
    const folder = { entity: 'entities', flow: 'flows', rule: 'rules', report: 'reports', dashboard: 'dashboards' }[creating!];
    setCreating(null);
    navigate(`${base}/${folder}/${v.id}?${q}`);
  };
  const taken = new Set([...meta.entities.map((e) => e.id), ...meta.flows.map((f) => f.id), ...meta.rules.map((r) => r.id), ...meta.reports.map((r) => r.id), ...meta.views.map((v) => v.id)]);
  return (
    <div>
      <Typography.Title level={4}>{t('design.title')}</Typography.Title>
      <Row gutter={[12, 12]}>
        {sections.map((s) => (
          <Col xs={24} md={12} xl={8} key={s.kind}>
            <Card size="small" title={s.title} extra={
              <Button size="small" icon={<PlusOutlined />} data-testid={`new-${s.kind}`} disabled={s.kind !== 'entity' && meta.entities.length === 0}
                onClick={() => { form.resetFields(); setCreating(s.kind); }}>{t('design.new')}</Button>
            }>
              <List size="small" dataSource={s.items} locale={{ emptyText: t('common.none') }}
                renderItem={(item) => <List.Item><Link to={item.to}>{item.label}</Link><Typography.Text type="secondary">{item.id}</Typography.Text></List.Item>} />
            </Card>
          </Col>
        ))}
      </Row>
      <Modal open={creating !== null} title={creating ? t(`design.newTitle.${creating}`) : ''} onCancel={() => setCreating(null)} onOk={() => form.submit()} okText={t('common.create')} destroyOnHidden>
        <Form form={form} layout="vertical" onFinish={create}>
          <Form.Item name="en" label={t('home.nameEn')} rules={[{ required: true, message: t('common.required') }]}>
            <Input onChange={(e) => {
              if (!form.isFieldTouched('id')) form.setFieldValue('id', e.target.value.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').replace(/^(\d)/, 'x$1').slice(0, 63));
            }} />
          </Form.Item>
          <Form.Item name="zh" label={t('home.nameZh')}><Input /></Form.Item>
          <Form.Item name="id" label={t('design.id')} extra={t('home.appIdHelp')} rules={[{ validator: async (_, v) => {
            if (!v || !isIdentifier(v)) throw new Error(t('home.appIdHelp'));
            if (taken.has(v)) throw new Error(t('design.idTaken'));
          } }]}>
            <Input />
          </Form.Item>
          {creating && creating !== 'entity' && creating !== 'dashboard' && (
            <Form.Item name="entity" label={t('design.entity')} rules={[{ required: true, message: t('common.required') }]}>
              <Select options={meta.entities.map((e) => ({ value: e.id, label: l(e.label, e.id) }))} />
            </Form.Item>
          )}
        </Form>
      </Modal>
    </div>
  );
}
