// Side panels of the flow designer: one state (labels, initial/terminal, colour, SLA, timers) or one
// transition (event, label, from/to, guard, roles, required fields, actions).
import { Button, Checkbox, ColorPicker, Divider, Input, InputNumber, Select, Space, Tag, Typography } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { api } from '../../api/client';
import { ConditionBuilder } from '../../components/ConditionBuilder';
import { isIdentifier } from '../../lib/entityDesign';
import type { FlowDoc, FlowTransition } from '../../lib/flowDesign';
import type { EntityMeta } from '../../lib/metadata';
import { useLang } from '../../lib/hooks';
import { LocalizedInput } from './LocalizedInput';

function Findings({ findings }: { findings: string[] }) {
  if (!findings.length) return null;
  return <div role="alert" style={{ marginBottom: 8 }}>{findings.map((f, i) => <div key={i} style={{ color: '#cf1322' }}>⚠ {f}</div>)}</div>;
}

export function StatePanel({ flow, index, entity, onChange, onRemoved, findings }: { flow: FlowDoc; index: number; entity?: EntityMeta; onChange: (f: FlowDoc) => void; onRemoved: () => void; findings: string[] }) {
  const { t } = useTranslation();
  const state = flow.states[index];
  const set = (patch: Partial<typeof state>) => {
    const states = flow.states.map((s, i) => (i === index ? { ...s, ...patch } : patch.initial ? { ...s, initial: false } : s));
    let transitions = flow.transitions;
    let timers = flow.timers;
    if (patch.id !== undefined && patch.id !== state.id) {
      const rename = (x: string) => (x === state.id ? patch.id! : x);
      transitions = transitions.map((tr) => ({ ...tr, from: tr.from.map(rename), to: rename(tr.to) }));
      timers = timers?.map((tm) => ({ ...tm, state: rename(tm.state) }));
    }
    onChange({ ...flow, states, transitions, timers });
  };
  const timers = (flow.timers ?? []).map((tm, i) => ({ tm, i })).filter(({ tm }) => tm.state === state.id);
  return (
    <div data-testid="state-panel">
      <Findings findings={findings} />
      <div>{t('design.stateId')}<Input aria-label={t('design.stateId')} value={state.id} status={isIdentifier(state.id) ? undefined : 'error'} onChange={(e) => set({ id: e.target.value.trim() })} /></div>
      <div style={{ height: 8 }} />
      <LocalizedInput label={t('design.stateLabel')} value={state.label ?? {}} onChange={(label) => set({ label })} testId="state-label" />
      <Space wrap>
        <Checkbox checked={Boolean(state.initial)} onChange={(e) => set({ initial: e.target.checked })}>{t('design.initial')}</Checkbox>
        <Checkbox checked={Boolean(state.terminal)} onChange={(e) => set({ terminal: e.target.checked })}>{t('design.terminal')}</Checkbox>
        <ColorPicker size="small" value={state.color ?? undefined} onChange={(c) => set({ color: c.toHexString() })} showText={() => t('design.color')} />
      </Space>
      <div style={{ display: 'block', marginTop: 8 }}>{t('design.sla')}<Input aria-label={t('design.sla')} placeholder="3d" value={state.sla ?? ''} onChange={(e) => set({ sla: e.target.value || null })} /></div>
      <ApprovalEditor flow={flow} state={state} entity={entity} onChange={(approval) => set({ approval })} />
      <Divider size="small">{t('design.timers')}</Divider>
      {timers.map(({ tm, i }) => (
        <Space.Compact key={i} style={{ width: '100%', marginBottom: 4 }}>
          <Input aria-label={t('design.timerAfter')} addonBefore={t('design.timerAfter')} value={tm.after ?? ''} placeholder="7d"
            onChange={(e) => onChange({ ...flow, timers: flow.timers!.map((x, j) => (j === i ? { ...x, after: e.target.value } : x)) })} />
          <Select aria-label={t('design.timerEvent')} style={{ width: 160 }} value={tm.event} options={flow.transitions.map((tr) => ({ value: tr.event, label: tr.event }))}
            onChange={(event) => onChange({ ...flow, timers: flow.timers!.map((x, j) => (j === i ? { ...x, event } : x)) })} />
          <Button aria-label={t('design.remove')} icon={<DeleteOutlined />} onClick={() => onChange({ ...flow, timers: flow.timers!.filter((_, j) => j !== i) })} />
        </Space.Compact>
      ))}
      <Button size="small" icon={<PlusOutlined />} disabled={flow.transitions.length === 0}
        onClick={() => onChange({ ...flow, timers: [...(flow.timers ?? []), { state: state.id, event: flow.transitions.find((tr) => tr.from.includes(state.id))?.event ?? flow.transitions[0].event, after: '7d' }] })}>
        {t('design.addTimer')}
      </Button>
      <div style={{ marginTop: 12 }}>
        <Button danger icon={<DeleteOutlined />} disabled={flow.states.length <= 1} onClick={() => {
          onChange({ ...flow, states: flow.states.filter((_, i) => i !== index), transitions: flow.transitions.map((tr) => ({ ...tr, from: tr.from.filter((f) => f !== state.id) })).filter((tr) => tr.to !== state.id && tr.from.length > 0), timers: flow.timers?.filter((tm) => tm.state !== state.id) });
          onRemoved();
        }}>{t('design.removeState')}</Button>
      </div>
    </div>
  );
}

export function TransitionPanel({ flow, index, entity, onChange, onRemoved, findings }: { flow: FlowDoc; index: number; entity?: EntityMeta; onChange: (f: FlowDoc) => void; onRemoved: () => void; findings: string[] }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const { app = '' } = useParams();
  const roles = useQuery({ queryKey: ['roles', app], queryFn: async () => (await api.get<{ roles: { id: string; label?: Record<string, string>; name?: Record<string, string> }[] }>(`/api/apps/${app}/roles`)).roles });
  const tr = flow.transitions[index];
  const set = (patch: Partial<FlowTransition>) => onChange({ ...flow, transitions: flow.transitions.map((x, i) => (i === index ? { ...x, ...patch } : x)) });
  const states = flow.states.map((s) => ({ value: s.id, label: l(s.label, s.id) }));
  const fields = entity?.fields ?? [];
  const userFields = fields.filter((f) => f.kind === 'user');
  const actions = tr.actions ?? [];
  return (
    <div data-testid="transition-panel">
      <Findings findings={findings} />
      <div>{t('design.event')}<Input aria-label={t('design.event')} value={tr.event} status={isIdentifier(tr.event) ? undefined : 'error'} onChange={(e) => set({ event: e.target.value.trim() })} /></div>
      <div style={{ height: 8 }} />
      <LocalizedInput label={t('design.eventLabel')} value={tr.label ?? {}} onChange={(label) => set({ label })} />
      <div>{t('design.from')}<Select aria-label={t('design.from')} mode="multiple" style={{ width: '100%' }} value={tr.from} options={states} onChange={(from) => set({ from })} /></div>
      <div>{t('design.to')}<Select aria-label={t('design.to')} style={{ width: '100%' }} value={tr.to} options={states} onChange={(to) => set({ to })} /></div>
      <Divider size="small">{t('design.guard')}</Divider>
      <ConditionBuilder fields={fields} value={tr.guard ?? ''} onChange={(guard) => set({ guard: guard || null })} />
      <div style={{ display: 'block', marginTop: 8 }}>{t('design.roles')}
        <Select aria-label={t('design.roles')} mode="multiple" style={{ width: '100%' }} value={tr.roles ?? []} placeholder={t('design.anyone')}
          options={(roles.data ?? []).map((r) => ({ value: r.id, label: l(r.label ?? r.name, r.id) }))} onChange={(v) => set({ roles: v })} />
      </div>
      <div style={{ display: 'block', marginTop: 8 }}>{t('design.requiredFields')}
        <Select aria-label={t('design.requiredFields')} mode="multiple" style={{ width: '100%' }} value={tr.required ?? []}
          options={fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(v) => set({ required: v })} />
      </div>
      <Divider size="small">{t('design.actions')}</Divider>
      {actions.map((a, i) => {
        const task = a.create_task as { title?: Record<string, string>; assignee?: Record<string, string>; due_in?: string } | undefined;
        return (
          <div key={i} style={{ border: '1px solid #eee', borderRadius: 6, padding: 6, marginBottom: 6 }}>
            {task ? (
              <>
                <Tag>{t('design.action.create_task')}</Tag>
                <LocalizedInput label={t('design.taskTitle')} value={task.title ?? {}} onChange={(title) => set({ actions: actions.map((x, j) => (j === i ? { create_task: { ...task, title } } : x)) })} />
                <Space.Compact style={{ width: '100%' }}>
                  <Select aria-label={t('design.assignee')} style={{ width: '60%' }} value={task.assignee?.field ? `field:${task.assignee.field}` : task.assignee?.role ? `role:${task.assignee.role}` : undefined}
                    options={[...userFields.map((f) => ({ value: `field:${f.id}`, label: `${t('design.userIn')} ${l(f.label, f.id)}` })), ...(roles.data ?? []).map((r) => ({ value: `role:${r.id}`, label: `${t('design.role')} ${l(r.label ?? r.name, r.id)}` }))]}
                    onChange={(v: string) => {
                      const [kind, id] = v.split(':');
                      set({ actions: actions.map((x, j) => (j === i ? { create_task: { ...task, assignee: { [kind]: id } } } : x)) });
                    }} />
                  <Input aria-label={t('design.dueIn')} style={{ width: '40%' }} addonBefore={t('design.dueIn')} value={task.due_in ?? ''} placeholder="3d"
                    onChange={(e) => set({ actions: actions.map((x, j) => (j === i ? { create_task: { ...task, due_in: e.target.value || undefined } } : x)) })} />
                </Space.Compact>
              </>
            ) : (
              <Typography.Text code>{Object.keys(a)[0]}</Typography.Text>
            )}
            <Button size="small" type="text" danger icon={<DeleteOutlined />} aria-label={t('design.remove')} onClick={() => set({ actions: actions.filter((_, j) => j !== i) })} />
          </div>
        );
      })}
      <Button size="small" icon={<PlusOutlined />} onClick={() => set({ actions: [...actions, { create_task: { title: { en: 'Follow up', 'zh-CN': '跟进' }, assignee: userFields[0] ? { field: userFields[0].id } : { role: 'app_admin' }, due_in: '3d' } }] })}>
        {t('design.addTaskAction')}
      </Button>
      <div style={{ marginTop: 12 }}>
        <Button danger icon={<DeleteOutlined />} onClick={() => { onChange({ ...flow, transitions: flow.transitions.filter((_, i) => i !== index), timers: flow.timers?.filter((tm) => tm.event !== tr.event) }); onRemoved(); }}>{t('design.removeTransition')}</Button>
      </div>
    </div>
  );
}

interface Approval { assignees: Record<string, unknown>; mode: string | { percent: number }; approve_event: string; reject_to: string; title?: Record<string, string> | null }

/** Approvers of a state: who is asked (role, a user field, round robin), how many must agree, which
 * event approval fires and where a rejection sends the record. */
function ApprovalEditor({ flow, state, entity, onChange }: { flow: FlowDoc; state: FlowDoc['states'][number]; entity?: EntityMeta; onChange: (a: Approval | null) => void }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const { app = '' } = useParams();
  const roles = useQuery({ queryKey: ['roles', app], queryFn: async () => (await api.get<{ roles: { id: string; label?: Record<string, string>; name?: Record<string, string> }[] }>(`/api/apps/${app}/roles`)).roles });
  const approval = (state.approval ?? null) as Approval | null;
  const leaving = flow.transitions.filter((tr) => tr.from.includes(state.id));
  const userFields = (entity?.fields ?? []).filter((f) => f.kind === 'user');
  const who = approval ? Object.entries(approval.assignees)[0] : undefined;
  const mode = approval ? (typeof approval.mode === 'string' ? approval.mode : 'percent') : 'any';
  return (
    <>
      <Divider size="small">{t('design.approval')}</Divider>
      <Checkbox checked={Boolean(approval)} disabled={leaving.length === 0} onChange={(e) => onChange(e.target.checked ? {
        assignees: userFields[0] ? { field: userFields[0].id } : { role: 'app_admin' }, mode: 'any', approve_event: leaving[0]?.event ?? '',
        reject_to: flow.states.find((s) => s.id !== state.id)?.id ?? state.id, title: { en: 'Please approve', 'zh-CN': '请审批' },
      } : null)}>{t('design.needsApproval')}</Checkbox>
      {approval && (
        <div style={{ display: 'grid', gap: 6, marginTop: 6 }} data-testid="approval-editor">
          <Select aria-label={t('design.approvers')} value={who ? `${who[0]}:${String(who[1])}` : undefined}
            options={[
              ...userFields.map((f) => ({ value: `field:${f.id}`, label: `${t('design.userIn')} ${l(f.label, f.id)}` })),
              ...(roles.data ?? []).map((r) => ({ value: `role:${r.id}`, label: `${t('design.role')} ${l(r.label ?? r.name, r.id)}` })),
              ...(roles.data ?? []).map((r) => ({ value: `round_robin:${r.id}`, label: `${t('design.roundRobin')} ${l(r.label ?? r.name, r.id)}` })),
            ]}
            onChange={(v: string) => { const [k, id] = v.split(':'); onChange({ ...approval, assignees: { [k]: id } }); }} />
          <Space.Compact>
            <Select aria-label={t('design.approvalMode')} style={{ width: '60%' }} value={mode}
              options={[{ value: 'any', label: t('design.modeAny') }, { value: 'all', label: t('design.modeAll') }, { value: 'percent', label: t('design.modePercent') }]}
              onChange={(m) => onChange({ ...approval, mode: m === 'percent' ? { percent: 50 } : m })} />
            {mode === 'percent' && <InputNumber aria-label={t('design.modePercent')} min={1} max={100} addonAfter="%" value={(approval.mode as { percent: number }).percent}
              onChange={(v) => onChange({ ...approval, mode: { percent: v ?? 50 } })} />}
          </Space.Compact>
          <Select aria-label={t('design.approveEvent')} value={approval.approve_event} options={leaving.map((tr) => ({ value: tr.event, label: `${t('design.approveEvent')}: ${l(tr.label, tr.event)}` }))}
            onChange={(approve_event) => onChange({ ...approval, approve_event })} />
          <Select aria-label={t('design.rejectTo')} value={approval.reject_to} options={flow.states.map((s) => ({ value: s.id, label: `${t('design.rejectTo')}: ${l(s.label, s.id)}` }))}
            onChange={(reject_to) => onChange({ ...approval, reject_to })} />
          <LocalizedInput label={t('design.taskTitle')} value={approval.title ?? {}} onChange={(title) => onChange({ ...approval, title })} />
        </div>
      )}
    </>
  );
}
