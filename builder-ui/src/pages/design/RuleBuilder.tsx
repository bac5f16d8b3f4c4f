// The rule builder: a trigger picker, the visual condition builder (writing rhai, with a code view),
// an actions list, a test panel that dry-runs the published rule against a real record and shows
// its trace, and the run log.
import { useState } from 'react';
import { Alert, Button, Card, Checkbox, Col, Divider, Empty, Input, InputNumber, List, Progress, Row, Select, Space, Table, Tag, Typography } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { api, recordsPath, type RecordView } from '../../api/client';
import { ConditionBuilder } from '../../components/ConditionBuilder';
import { FieldInput } from '../../components/FieldInput';
import { ProblemAlert } from '../../components/ProblemAlert';
import { PublishDialog } from '../../components/PublishDialog';
import { entityById, type FieldMeta } from '../../lib/metadata';
import { useAppMeta, useLang } from '../../lib/hooks';
import { LocalizedInput } from './LocalizedInput';

type Trigger = Record<string, Record<string, unknown>>;
interface RuleDoc { format_version: number; id: string; label?: Record<string, string>; entity: string; trigger: Trigger; condition?: string | null; actions: Record<string, unknown>[]; enabled?: boolean; order?: number; [k: string]: unknown }
interface TestResult { matched: boolean; writes: Record<string, unknown>; actions: unknown[]; trace: { step: string; source?: string; value?: unknown; [k: string]: unknown }[] }

const TRIGGERS = ['record_created', 'record_updated', 'before_save', 'record_deleted', 'state_entered', 'schedule', 'manual', 'date_reached'];

export function RuleBuilder() {
  const { app = '', rule: ruleId = '' } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const loaded = useAppMeta(app).data!;
  const meta = loaded.meta;
  const path = `rules/${ruleId}.rule.json`;
  const published = loaded.bundle[path] as RuleDoc | undefined;
  const [rule, setRule] = useState<RuleDoc>(() => published ? structuredClone(published) : {
    format_version: 1, id: ruleId, label: { en: params.get('en') || ruleId, 'zh-CN': params.get('zh') || params.get('en') || ruleId },
    entity: params.get('entity') ?? meta.entities[0]?.id ?? '', trigger: { record_created: {} }, condition: null, actions: [],
  });
  const [publishing, setPublishing] = useState(false);
  const [testRecord, setTestRecord] = useState<string | null>(null);
  const entity = entityById(meta, rule.entity);
  const fields = entity?.fields ?? [];
  const triggerKind = Object.keys(rule.trigger)[0] ?? 'record_created';
  const trigger = rule.trigger[triggerKind] ?? {};
  const setTrigger = (kind: string, body: Record<string, unknown>) => setRule((current) => ({ ...current, trigger: { [kind]: body } }));
  const dirty = JSON.stringify(published) !== JSON.stringify(rule);
  const runs = useQuery({ queryKey: ['rule-runs', app, ruleId], enabled: Boolean(published), queryFn: async () => (await api.get<{ items: Record<string, unknown>[] }>(`/api/apps/${app}/rules/${ruleId}/runs`)).items });
  const test = useMutation({
    mutationFn: async () => {
      const record = await api.get<RecordView>(recordsPath(app, rule.entity, testRecord!));
      return api.post<TestResult>(`/api/apps/${app}/rules/${ruleId}/test`, { record: record.data });
    },
  });
  const pickerField: FieldMeta = { id: '__record', kind: 'relation_one', label: { en: 'Record', 'zh-CN': '记录' }, help: null, required: false, readOnly: false, options: [], relation: { entity: rule.entity }, schema: {} };
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('design.ruleTitle', { rule: l(rule.label, ruleId) })} <Tag>{l(entity?.label, rule.entity)}</Tag></Typography.Title>
        <Button type="primary" onClick={() => setPublishing(true)}>{t('design.publish')}</Button>
      </Space>
      <Row gutter={12}>
        <Col xs={24} lg={14}>
          <Card size="small" title={t('rule.when')} style={{ marginBottom: 12 }}>
            <LocalizedInput label={t('rule.name')} value={rule.label ?? {}} onChange={(label) => setRule((current) => ({ ...current, label }))} />
            <Space wrap>
              <Select aria-label={t('rule.trigger')} style={{ width: 220 }} value={triggerKind} data-testid="trigger-picker"
                options={TRIGGERS.map((k) => ({ value: k, label: t(`rule.triggers.${k}`) }))}
                onChange={(k) => setTrigger(k, k === 'schedule' ? { cron: '0 2 * * *' } : k === 'state_entered' ? { flow: meta.flows.find((f) => f.entity === rule.entity)?.id ?? '', state: '' } : k === 'date_reached' ? { field: fields.find((f) => f.kind === 'date')?.id ?? '', days_before: 0 } : {})} />
              {triggerKind === 'record_updated' && (
                <Select aria-label={t('rule.watchFields')} mode="multiple" style={{ minWidth: 220 }} placeholder={t('rule.anyField')} value={(trigger.fields as string[]) ?? []}
                  options={fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(v) => setTrigger(triggerKind, { fields: v })} />
              )}
              {triggerKind === 'schedule' && <Input aria-label={t('rule.cron')} addonBefore="cron" value={String(trigger.cron ?? '')} onChange={(e) => setTrigger(triggerKind, { cron: e.target.value })} />}
              {triggerKind === 'state_entered' && (
                <>
                  <Select aria-label={t('rule.flow')} style={{ width: 160 }} value={trigger.flow as string} options={meta.flows.filter((f) => f.entity === rule.entity).map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(flow) => setTrigger(triggerKind, { flow, state: '' })} />
                  <Select aria-label={t('rule.state')} style={{ width: 160 }} value={(trigger.state as string) || undefined} options={(meta.flows.find((f) => f.id === trigger.flow)?.states ?? []).map((s) => ({ value: s.id, label: l(s.label, s.id) }))} onChange={(state) => setTrigger(triggerKind, { ...trigger, state })} />
                </>
              )}
              {triggerKind === 'date_reached' && (
                <>
                  <Select aria-label={t('rule.dateField')} style={{ width: 160 }} value={trigger.field as string} options={fields.filter((f) => f.kind === 'date').map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(field) => setTrigger(triggerKind, { ...trigger, field })} />
                  <InputNumber aria-label={t('rule.daysBefore')} addonAfter={t('rule.daysBefore')} value={trigger.days_before as number} onChange={(v) => setTrigger(triggerKind, { ...trigger, days_before: v ?? 0 })} />
                </>
              )}
            </Space>
            <Divider size="small">{t('rule.if')}</Divider>
            <ConditionBuilder fields={fields} value={rule.condition ?? ''} allowChanged={triggerKind === 'record_updated' || triggerKind === 'before_save'} onChange={(condition) => setRule((current) => ({ ...current, condition: condition || null }))} />
            <Checkbox style={{ marginTop: 8 }} checked={rule.enabled !== false} onChange={(e) => setRule((current) => ({ ...current, enabled: e.target.checked }))}>{t('rule.enabled')}</Checkbox>
          </Card>
          <Card size="small" title={t('rule.then')}>
            <ActionsEditor rule={rule} fields={fields} onChange={(actions) => setRule((current) => ({ ...current, actions }))} beforeSave={triggerKind === 'before_save'} />
          </Card>
        </Col>
        <Col xs={24} lg={10}>
          <Card size="small" title={t('rule.test')} style={{ marginBottom: 12 }}>
            {!published ? <Typography.Text type="secondary">{t('rule.publishToTest')}</Typography.Text> : (
              <>
                {dirty && <Typography.Paragraph type="warning">{t('rule.testsPublished')}</Typography.Paragraph>}
                <Space.Compact style={{ width: '100%' }}>
                  <div style={{ flex: 1 }}><FieldInput field={pickerField} app={app} meta={meta} value={testRecord} onChange={(v) => setTestRecord(v as string | null)} /></div>
                  <Button type="primary" disabled={!testRecord} loading={test.isPending} onClick={() => test.mutate()} data-testid="run-test">{t('rule.runTest')}</Button>
                </Space.Compact>
                {test.error ? <ProblemAlert error={test.error} /> : null}
                {test.data && (
                  <div style={{ marginTop: 8 }} data-testid="test-result">
                    <Tag color={test.data.matched ? 'green' : 'default'}>{test.data.matched ? t('rule.matched') : t('rule.notMatched')}</Tag>
                    {Object.keys(test.data.writes ?? {}).length > 0 && <div>{t('rule.writes')}: <code>{JSON.stringify(test.data.writes)}</code></div>}
                    <List size="small" header={t('rule.trace')} dataSource={test.data.trace}
                      renderItem={(s) => <List.Item><Tag>{s.step}</Tag><code style={{ wordBreak: 'break-all' }}>{s.source ?? ''}</code> → <b>{JSON.stringify(s.value ?? s)}</b></List.Item>} />
                  </div>
                )}
              </>
            )}
          </Card>
          {published && ['manual', 'schedule'].includes(Object.keys(published.trigger)[0]) && <BatchRun app={app} rule={ruleId} />}
          <Card size="small" title={t('rule.runLog')}>
            {(runs.data?.length ?? 0) === 0 ? <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} description={t('common.none')} /> : (
              <Table size="small" rowKey={(r) => `${String(r.seq)}:${String(r.record_id ?? '')}`} pagination={{ pageSize: 5 }} dataSource={runs.data}
                columns={['at', 'outcome', 'record_id', 'error'].map((k) => ({ key: k, title: t(`rule.log.${k}`), render: (_: unknown, r: Record<string, unknown>) => String(r[k] ?? r[k === 'at' ? 'started_at' : k] ?? '') }))} />
            )}
          </Card>
        </Col>
      </Row>
      {publishing && <PublishDialog app={app} bundle={{ ...loaded.bundle, [path]: rule }} etag={loaded.etag} open={publishing} onClose={() => setPublishing(false)} />}
    </div>
  );
}

function ActionsEditor({ rule, fields, onChange, beforeSave }: { rule: RuleDoc; fields: FieldMeta[]; onChange: (a: Record<string, unknown>[]) => void; beforeSave: boolean }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const { app = '' } = useParams();
  const meta = useAppMeta(app).data!.meta;
  const actions = rule.actions;
  const replace = (i: number, a: Record<string, unknown>) => onChange(actions.map((x, j) => (j === i ? a : x)));
  const userFields = fields.filter((f) => f.kind === 'user');
  return (
    <div data-testid="actions-editor">
      {actions.map((a, i) => {
        const kind = Object.keys(a)[0];
        const body = a[kind] as Record<string, unknown>;
        return (
          <div key={i} style={{ border: '1px solid #eee', borderRadius: 6, padding: 8, marginBottom: 8 }}>
            <Space style={{ width: '100%', justifyContent: 'space-between' }}>
              <Tag color="blue">{t(`rule.actions.${kind}`, { defaultValue: kind })}</Tag>
              <Button size="small" type="text" danger icon={<DeleteOutlined />} aria-label={t('design.remove')} onClick={() => onChange(actions.filter((_, j) => j !== i))} />
            </Space>
            {kind === 'set' && Object.entries(body).map(([fid, value]) => {
              const field = fields.find((f) => f.id === fid);
              const formula = typeof value === 'string' && value.startsWith('=');
              return (
                <Space key={fid} wrap style={{ display: 'flex', marginTop: 4 }}>
                  <Select aria-label={t('filter.field')} style={{ width: 160 }} value={fid} options={fields.filter((f) => !f.readOnly).map((f) => ({ value: f.id, label: l(f.label, f.id) }))}
                    onChange={(next) => { const copy = { ...body }; delete copy[fid]; copy[next] = value; replace(i, { set: copy }); }} />
                  <span>=</span>
                  {formula || !field ? (
                    <Input aria-label={t('rule.formula')} style={{ width: 220, fontFamily: 'monospace' }} value={String(value)} onChange={(e) => replace(i, { set: { ...body, [fid]: e.target.value } })} />
                  ) : (
                    <div style={{ width: 220 }}><FieldInput field={{ ...field, readOnly: false }} app={app} meta={meta} value={value} onChange={(v) => replace(i, { set: { ...body, [fid]: v } })} /></div>
                  )}
                  <Checkbox checked={formula} onChange={(e) => replace(i, { set: { ...body, [fid]: e.target.checked ? `=${JSON.stringify(value ?? '')}` : '' } })}>{t('rule.formula')}</Checkbox>
                  <Button size="small" type="text" icon={<DeleteOutlined />} aria-label={t('design.remove')} onClick={() => { const copy = { ...body }; delete copy[fid]; replace(i, { set: copy }); }} />
                </Space>
              );
            })}
            {kind === 'set' && (
              <Button size="small" style={{ marginTop: 4 }} icon={<PlusOutlined />} onClick={() => {
                const free = fields.find((f) => !f.readOnly && !(f.id in body));
                if (free) replace(i, { set: { ...body, [free.id]: null } });
              }}>{t('rule.addField')}</Button>
            )}
            {kind === 'reject' && <LocalizedInput label={t('rule.rejectMessage')} value={body as Record<string, string>} onChange={(v) => replace(i, { reject: v })} />}
            {(kind === 'create_task' || kind === 'notify') && (
              <>
                <LocalizedInput label={kind === 'notify' ? t('rule.message') : t('design.taskTitle')} value={(body[kind === 'notify' ? 'message' : 'title'] as Record<string, string>) ?? {}}
                  onChange={(v) => replace(i, { [kind]: { ...body, [kind === 'notify' ? 'message' : 'title']: v } })} />
                <Space.Compact style={{ width: '100%' }}>
                  <Select aria-label={t('design.assignee')} style={{ width: '60%' }}
                    value={(() => { const who = body[kind === 'notify' ? 'to' : 'assignee'] as Record<string, string> | undefined; return who?.field ? `field:${who.field}` : who?.role ? `role:${who.role}` : undefined; })()}
                    options={[...userFields.map((f) => ({ value: `field:${f.id}`, label: `${t('design.userIn')} ${l(f.label, f.id)}` })), { value: 'role:app_admin', label: `${t('design.role')} app_admin` }]}
                    onChange={(v: string) => { const [k, id] = v.split(':'); replace(i, { [kind]: { ...body, [kind === 'notify' ? 'to' : 'assignee']: { [k]: id } } }); }} />
                  {kind === 'create_task' && <Input aria-label={t('design.dueIn')} style={{ width: '40%' }} addonBefore={t('design.dueIn')} value={String(body.due_in ?? '')} placeholder="3d" onChange={(e) => replace(i, { create_task: { ...body, due_in: e.target.value || undefined } })} />}
                </Space.Compact>
              </>
            )}
            {!['set', 'reject', 'create_task', 'notify'].includes(kind) && <pre style={{ fontSize: 12, whiteSpace: 'pre-wrap', margin: 0 }}>{JSON.stringify(body, null, 1)}</pre>}
          </div>
        );
      })}
      <Select aria-label={t('rule.addAction')} placeholder={t('rule.addAction')} style={{ width: 220 }} value={null as unknown as string} data-testid="add-action"
        options={(beforeSave ? ['set', 'reject'] : ['set', 'create_task', 'notify']).map((k) => ({ value: k, label: t(`rule.actions.${k}`) }))}
        onChange={(k) => {
          const first = fields.find((f) => !f.readOnly);
          const user = userFields[0] ? { field: userFields[0].id } : { role: 'app_admin' };
          const fresh: Record<string, Record<string, unknown>> = {
            set: first ? { [first.id]: null } : {},
            reject: { en: 'Not allowed', 'zh-CN': '不允许' },
            create_task: { title: { en: 'Follow up', 'zh-CN': '跟进' }, assignee: user, due_in: '3d' },
            notify: { to: user, message: { en: 'Please check this record', 'zh-CN': '请查看这条记录' } },
          };
          onChange([...actions, { [k]: fresh[k] }]);
        }} />
    </div>
  );
}

interface Batch { id?: string; status: string; total?: number; processed?: number; matched?: number; changed?: number; failed?: number }

/** Run a manual or scheduled rule over every matching record now, with its progress. */
function BatchRun({ app, rule }: { app: string; rule: string }) {
  const { t } = useTranslation();
  const [running, setRunning] = useState(false);
  const batches = useQuery({
    queryKey: ['rule-batches', app, rule],
    queryFn: async () => {
      const answer = await api.get<Batch[] | { items: Batch[] }>(`/api/apps/${app}/rules/${rule}/batches`);
      return Array.isArray(answer) ? answer : answer.items;
    },
    refetchInterval: running ? 700 : false,
  });
  const run = useMutation({
    mutationFn: () => api.post<{ processed: number; changed: number }>(`/api/apps/${app}/rules/${rule}/run`),
    onMutate: () => setRunning(true),
    onSettled: () => { setRunning(false); void batches.refetch(); },
  });
  const latest = batches.data?.[0];
  const percent = latest?.total ? Math.round(((latest.processed ?? 0) / latest.total) * 100) : running ? 0 : 100;
  return (
    <Card size="small" title={t('rule.batch')} style={{ marginBottom: 12 }}>
      <Button onClick={() => run.mutate()} loading={run.isPending} data-testid="run-batch">{t('rule.runNow')}</Button>
      {(running || latest) && (
        <Progress style={{ marginTop: 8 }} percent={percent} status={running ? 'active' : latest?.status === 'done' ? 'success' : 'normal'}
          format={() => `${latest?.processed ?? 0} / ${latest?.total ?? '…'}`} />
      )}
      {run.data && <Alert type="success" showIcon title={t('rule.batchDone', run.data)} />}
      {run.error ? <ProblemAlert error={run.error} /> : null}
    </Card>
  );
}
