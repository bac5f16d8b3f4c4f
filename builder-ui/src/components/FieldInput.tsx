// The input control for a field kind: text, numbers, dates, options, tags, relations (searching the
// related entity), users, ratings, booleans. Values are the JSON the server stores.
import { useState } from 'react';
import { Checkbox, DatePicker, Input, InputNumber, Radio, Rate, Segmented, Select, Slider, Switch } from 'antd';
import dayjs from 'dayjs';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, recordsPath, type RecordPage } from '../api/client';
import { entityById, recordTitle, type AppMeta, type FieldMeta } from '../lib/metadata';
import { useLang, useUsers } from '../lib/hooks';

export interface FieldInputProps {
  field: FieldMeta;
  app: string;
  meta: AppMeta;
  value?: unknown;
  onChange?: (value: unknown) => void;
  id?: string;
  disabled?: boolean;
}

export function FieldInput({ field, app, meta, value, onChange, id, disabled }: FieldInputProps) {
  const { l } = useLang();
  const { t } = useTranslation();
  const change = (v: unknown) => onChange?.(v === '' || v === undefined ? null : v);
  const common = { id, disabled: disabled || field.readOnly, 'aria-label': l(field.label, field.id), style: { width: '100%' } };
  const options = field.options.map((o) => ({ value: o.value, label: l(o.label, o.value) }));
  // Widget hints from the designer.
  const locked = common.disabled;
  if (field.widget === 'textarea' && field.kind === 'text') return <Input.TextArea {...common} rows={3} value={(value as string) ?? ''} onChange={(e) => change(e.target.value)} />;
  if (field.widget === 'radio' && field.kind === 'single_select') return <Radio.Group id={id} aria-label={common['aria-label']} disabled={locked} options={options} value={value} onChange={(e) => change(e.target.value)} />;
  if (field.widget === 'segmented' && field.kind === 'single_select') return <Segmented aria-label={common['aria-label']} disabled={locked} options={options} value={value as string} onChange={(v) => change(v)} />;
  if (field.widget === 'checkboxes' && field.kind === 'multi_select') return <Checkbox.Group aria-label={common['aria-label']} disabled={locked} options={options} value={(value as string[]) ?? []} onChange={(v) => onChange?.(v)} />;
  if (field.widget === 'switch' && field.kind === 'boolean') return <Switch id={id} aria-label={common['aria-label']} disabled={locked} checked={Boolean(value)} onChange={(v) => onChange?.(v)} />;
  if (field.widget === 'slider' && ['integer', 'decimal', 'percent'].includes(field.kind)) {
    return <Slider aria-label={common['aria-label']} disabled={locked} min={(field.schema.minimum as number) ?? 0} max={(field.schema.maximum as number) ?? 100}
      step={field.kind === 'integer' ? 1 : 0.01} value={(value as number) ?? undefined} onChange={(v) => change(v)} />;
  }
  switch (field.kind) {
    case 'long_text':
    case 'rich_text':
      return <Input.TextArea {...common} rows={4} value={(value as string) ?? ''} onChange={(e) => change(e.target.value)} />;
    case 'integer':
      return <InputNumber {...common} style={{ width: '100%' }} precision={0} value={value as number | null} onChange={change} />;
    case 'decimal':
      return <InputNumber {...common} style={{ width: '100%' }} value={value as number | null} onChange={change} />;
    case 'percent':
      return (
        <InputNumber {...common} style={{ width: '100%' }} addonAfter="%" value={value === null || value === undefined ? null : Number(value) * 100}
          onChange={(v) => change(v === null ? null : Number(v) / 100)} />
      );
    case 'money': {
      const m = (value as { amount?: string; currency?: string } | null) ?? {};
      return (
        <Input.Group compact>
          <Input style={{ width: '30%' }} aria-label={t('field.currency')} value={m.currency ?? 'CNY'} disabled={common.disabled}
            onChange={(e) => change({ amount: m.amount ?? '0', currency: e.target.value.toUpperCase() })} />
          <Input {...common} style={{ width: '70%' }} value={m.amount ?? ''} inputMode="decimal"
            onChange={(e) => change(e.target.value === '' ? null : { amount: e.target.value, currency: m.currency ?? 'CNY' })} />
        </Input.Group>
      );
    }
    case 'boolean':
      return <Checkbox {...common} checked={Boolean(value)} onChange={(e) => onChange?.(e.target.checked)} />;
    case 'date':
      return <DatePicker {...common} style={{ width: '100%' }} value={value ? dayjs(String(value)) : null} onChange={(d) => change(d ? d.format('YYYY-MM-DD') : null)} />;
    case 'datetime':
      return <DatePicker {...common} showTime style={{ width: '100%' }} value={value ? dayjs(String(value)) : null} onChange={(d) => change(d ? d.toISOString() : null)} />;
    case 'single_select':
      return <Select {...common} allowClear options={options} value={value as string | undefined ?? undefined} onChange={change} />;
    case 'multi_select':
      return <Select {...common} mode="multiple" allowClear options={options} value={(value as string[]) ?? []} onChange={onChange} />;
    case 'tags':
      return <Select {...common} mode="tags" options={options} value={(value as string[]) ?? []} onChange={onChange} />;
    case 'rating':
      return <Rate {...common} count={(field.schema.maximum as number) ?? 5} value={(value as number) ?? 0} onChange={change} />;
    case 'relation_one':
    case 'relation_many':
      return <RelationSelect {...common} field={field} app={app} meta={meta} value={value} onChange={change} />;
    case 'user':
      return <UserSelect {...common} app={app} value={value as string | undefined} onChange={change} />;
    case 'json':
      return <Input.TextArea {...common} rows={3} value={value === undefined || value === null ? '' : JSON.stringify(value)} onChange={(e) => {
        try { change(JSON.parse(e.target.value)); } catch { /* keep typing */ }
      }} />;
    default:
      if (options.length) return <Select {...common} allowClear options={options} value={value as string | undefined ?? undefined} onChange={change} />;
      return <Input {...common} type={field.kind === 'email' ? 'email' : field.kind === 'url' ? 'url' : 'text'} value={(value as string) ?? ''} onChange={(e) => change(e.target.value)} />;
  }
}

function RelationSelect({ field, app, meta, value, onChange, ...rest }: FieldInputProps & { 'aria-label': string }) {
  const target = entityById(meta, field.relation?.entity ?? '');
  const [search, setSearch] = useState('');
  const titleField = target?.titleField ?? target?.fields.find((f) => f.kind === 'text')?.id;
  const found = useQuery({
    queryKey: ['relation-search', app, target?.id, search],
    enabled: Boolean(target),
    queryFn: () =>
      api.get<RecordPage>(recordsPath(app, target!.id), {
        query: { limit: 20, filter: search && titleField ? JSON.stringify({ field: titleField, op: 'contains', value: search }) : undefined },
      }),
  });
  const selected = (Array.isArray(value) ? value : value ? [value] : []) as string[];
  const current = useQuery({
    queryKey: ['relation-current', app, target?.id, selected],
    enabled: Boolean(target) && selected.length > 0,
    queryFn: () => api.get<RecordPage>(recordsPath(app, target!.id), { query: { filter: JSON.stringify({ field: 'id', op: 'in', value: selected }) } }),
  });
  const seen = new Map<string, string>();
  for (const r of [...(current.data?.items ?? []), ...(found.data?.items ?? [])]) seen.set(r.id, recordTitle(target, r));
  return (
    <Select
      {...rest}
      showSearch={{ filterOption: false, onSearch: setSearch }}
      allowClear
      mode={field.kind === 'relation_many' ? 'multiple' : undefined}
      loading={found.isFetching}
      value={(value as string | string[] | null) ?? undefined}
      onChange={(v) => onChange?.(v ?? null)}
      options={[...seen].map(([id, title]) => ({ value: id, label: title }))}
    />
  );
}

function UserSelect({ app, value, onChange, ...rest }: { app: string; value?: string; onChange: (v: unknown) => void; id?: string; disabled?: boolean; 'aria-label': string }) {
  const users = useUsers(app);
  return (
    <Select
      {...rest}
      allowClear
      showSearch={{ optionFilterProp: 'label' }}
      value={value ?? undefined}
      onChange={(v) => onChange(v ?? null)}
      options={(users.data ?? []).map((u) => ({ value: u.id, label: u.display_name || u.username }))}
    />
  );
}
