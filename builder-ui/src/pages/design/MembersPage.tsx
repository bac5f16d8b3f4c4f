// Who may use the app: its roles (built-in and the app's own) and the people and departments
// holding them; add a person to the platform and give or take away roles — no JSON.
import { useState } from 'react';
import { App as AntApp, Button, Card, Form, Input, Modal, Popconfirm, Select, Space, Table, Tag, Typography } from 'antd';
import { DeleteOutlined, EditOutlined, UserAddOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { api } from '../../api/client';
import { ProblemAlert, problemText } from '../../components/ProblemAlert';
import { useLang, useUsers, type UserSummary } from '../../lib/hooks';
import type { Localized } from '../../lib/metadata';

interface Role { id: string; label?: Localized; name?: Localized; description?: Localized }
interface Assignment { role: string; principal_kind: string; principal_id: string; created_at: string }

export function MembersPage() {
  const { app = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  // Platform admins pick from every user; an app admin who is not one picks from the app's people.
  const everyone = useUsers();
  const appPeople = useUsers(app);
  const users = everyone.data?.length ? everyone : appPeople;
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<UserSummary>();
  const isPlatformAdmin = !!everyone.data?.length;
  const [grant, setGrant] = useState<{ user?: string; role?: string }>({});
  const roles = useQuery({ queryKey: ['roles', app, 'assignments'], queryFn: () => api.get<{ roles: Role[]; assignments: Assignment[] }>(`/api/apps/${app}/roles`) });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ['roles', app] });
  const assign = useMutation({
    mutationFn: ({ role, user, on }: { role: string; user: string; on: boolean }) =>
      on ? api.put(`/api/apps/${app}/roles/${role}/user/${user}`) : api.del(`/api/apps/${app}/roles/${role}/user/${user}`),
    onSuccess: () => { refresh(); void queryClient.invalidateQueries({ queryKey: ['people', app] }); message.success(t('common.saved')); },
    onError: (e) => message.error(problemText(e)),
  });
  const names = Object.fromEntries((users.data ?? []).map((u) => [u.id, u.display_name || u.username]));
  const roleLabel = (id: string) => l(roles.data?.roles.find((r) => r.id === id)?.label ?? roles.data?.roles.find((r) => r.id === id)?.name, id);
  return (
    <div>
      <Typography.Title level={4}>{t('members.title')}</Typography.Title>
      {roles.error ? <ProblemAlert error={roles.error} /> : null}
      <Card size="small" style={{ marginBottom: 12 }}>
        <Space wrap>
          <Select aria-label={t('members.person')} placeholder={t('members.person')} style={{ width: 220 }} showSearch={{ optionFilterProp: 'label' }} value={grant.user}
            options={(users.data ?? []).map((u) => ({ value: u.id, label: `${u.display_name || u.username} (${u.username})` }))} onChange={(user) => setGrant({ ...grant, user })} />
          <Select aria-label={t('members.role')} placeholder={t('members.role')} style={{ width: 200 }} value={grant.role}
            options={(roles.data?.roles ?? []).map((r) => ({ value: r.id, label: l(r.label ?? r.name, r.id) }))} onChange={(role) => setGrant({ ...grant, role })} />
          <Button type="primary" disabled={!grant.user || !grant.role} loading={assign.isPending}
            onClick={() => assign.mutate({ role: grant.role!, user: grant.user!, on: true })}>{t('members.grant')}</Button>
          <Button icon={<UserAddOutlined />} onClick={() => setAdding(true)}>{t('members.newPerson')}</Button>
        </Space>
      </Card>
      <Table
        size="small"
        rowKey={(a) => `${a.role}:${a.principal_kind}:${a.principal_id}`}
        loading={roles.isLoading}
        dataSource={roles.data?.assignments ?? []}
        pagination={{ pageSize: 20, hideOnSinglePage: true }}
        columns={[
          { title: t('members.person'), render: (_, a) => <>{a.principal_kind === 'department' && <Tag>{t('members.department')}</Tag>}{names[a.principal_id] ?? a.principal_id}</> },
          { title: t('members.role'), render: (_, a) => <Tag color="green">{roleLabel(a.role)}</Tag> },
          { title: t('members.since'), render: (_, a) => new Date(a.created_at).toLocaleDateString() },
          {
            title: '', render: (_, a) => a.principal_kind === 'user' && (
              <Space size={4}>
                {isPlatformAdmin && (
                  <Button size="small" icon={<EditOutlined />} aria-label={t('members.editPerson')}
                    onClick={() => setEditing((users.data ?? []).find((u) => u.id === a.principal_id))} />
                )}
                <Popconfirm title={t('members.confirmRevoke')} onConfirm={() => assign.mutate({ role: a.role, user: a.principal_id, on: false })}>
                  <Button size="small" danger icon={<DeleteOutlined />} aria-label={t('members.revoke')} />
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      <Typography.Title level={5} style={{ marginTop: 16 }}>{t('members.roles')}</Typography.Title>
      <Space wrap>{(roles.data?.roles ?? []).map((r) => <Tag key={r.id} title={l(r.description)}>{l(r.label ?? r.name, r.id)}</Tag>)}</Space>
      {adding && <NewPerson onClose={() => setAdding(false)} />}
      {editing && <EditPerson person={editing} onClose={() => setEditing(undefined)} />}
    </div>
  );
}

function NewPerson({ onClose }: { onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const create = useMutation({
    mutationFn: (v: { username: string; display_name: string; password: string; email?: string; locale?: string }) => api.post('/api/users', v),
    onSuccess: () => { void queryClient.invalidateQueries({ queryKey: ['users'] }); onClose(); },
  });
  return (
    <Modal open title={t('members.newPerson')} onCancel={onClose} onOk={() => form.submit()} okText={t('common.create')} confirmLoading={create.isPending}>
      <Form form={form} layout="vertical" onFinish={(v) => create.mutate(v)}>
        <Form.Item name="username" label={t('login.username')} rules={[{ required: true, message: t('common.required') }]}><Input autoComplete="off" /></Form.Item>
        <Form.Item name="display_name" label={t('members.displayName')}><Input /></Form.Item>
        <Form.Item name="password" label={t('members.initialPassword')} extra={t('members.passwordHelp')} rules={[{ required: true, min: 12, message: t('members.passwordHelp') }]}><Input.Password autoComplete="new-password" /></Form.Item>
        <ContactFields />
      </Form>
      {create.error ? <ProblemAlert error={create.error} /> : null}
    </Modal>
  );
}

/** E-mail and language of notifications, shared by the new-person and edit-person forms. */
function ContactFields() {
  const { t } = useTranslation();
  return (
    <>
      <Form.Item name="email" label={t('members.email')} extra={t('members.emailHelp')} rules={[{ type: 'email', message: t('members.badEmail') }]}><Input type="email" autoComplete="off" /></Form.Item>
      <Form.Item name="locale" label={t('members.locale')}>
        <Select allowClear placeholder={t('members.bothLanguages')} options={[{ value: 'zh-CN', label: '中文' }, { value: 'en', label: 'English' }]} />
      </Form.Item>
    </>
  );
}

function EditPerson({ person, onClose }: { person: UserSummary; onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [form] = Form.useForm();
  const save = useMutation({
    mutationFn: (v: { display_name?: string; email?: string; locale?: string }) =>
      api.patch(`/api/users/${encodeURIComponent(person.id)}`, { display_name: v.display_name || null, email: v.email || null, locale: v.locale ?? null }),
    onSuccess: () => { void queryClient.invalidateQueries({ queryKey: ['users'] }); onClose(); },
  });
  return (
    <Modal open title={`${t('members.editPerson')} · ${person.username}`} onCancel={onClose} onOk={() => form.submit()} okText={t('common.save')} confirmLoading={save.isPending}>
      <Form form={form} layout="vertical" initialValues={{ display_name: person.display_name ?? '', email: person.email ?? '', locale: person.locale ?? undefined }} onFinish={(v) => save.mutate(v)}>
        <Form.Item name="display_name" label={t('members.displayName')}><Input /></Form.Item>
        <ContactFields />
      </Form>
      {save.error ? <ProblemAlert error={save.error} /> : null}
    </Modal>
  );
}
