// The visual filter builder: "all"/"any" of rows (field · operator · value). The value control
// follows the field's kind, so nobody types JSON.
import { Button, Input, InputNumber, Select, Space } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useTranslation } from 'react-i18next';
import { opsFor, type Condition, type FilterModel } from '../lib/filters';
import type { AppMeta, FieldMeta } from '../lib/metadata';
import { useLang } from '../lib/hooks';
import { FieldInput } from './FieldInput';

export function FilterBuilder({ fields, value, onChange, app, meta }: { fields: FieldMeta[]; value: FilterModel; onChange: (m: FilterModel) => void; app: string; meta: AppMeta }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const set = (i: number, c: Partial<Condition>) => onChange({ ...value, conditions: value.conditions.map((x, j) => (j === i ? { ...x, ...c } : x)) });
  return (
    <div role="group" aria-label={t('filter.title')}>
      <Space wrap style={{ marginBottom: 8 }}>
        <span>{t('filter.match')}</span>
        <Select
          aria-label={t('filter.match')}
          size="small"
          value={value.join}
          onChange={(join) => onChange({ ...value, join })}
          options={[{ value: 'and', label: t('filter.all') }, { value: 'or', label: t('filter.any') }]}
        />
      </Space>
      {value.conditions.map((c, i) => {
        const field = fields.find((f) => f.id === c.field);
        const ops = field ? opsFor(field.kind) : [];
        return (
          <Space key={i} wrap style={{ display: 'flex', marginBottom: 6 }} data-testid="filter-row">
            <Select
              aria-label={t('filter.field')}
              style={{ width: 180 }}
              showSearch={{ optionFilterProp: 'label' }}
              value={c.field || undefined}
              placeholder={t('filter.field')}
              options={fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))}
              onChange={(fid) => {
                const f = fields.find((x) => x.id === fid)!;
                set(i, { field: fid, op: opsFor(f.kind)[0], value: undefined });
              }}
            />
            <Select
              aria-label={t('filter.operator')}
              style={{ width: 140 }}
              value={c.op}
              options={ops.map((op) => ({ value: op, label: t(`filter.ops.${op}`) }))}
              onChange={(op) => set(i, { op, value: op === 'is_empty' ? true : undefined })}
            />
            {field && <ValueInput field={field} condition={c} onChange={(v) => set(i, { value: v })} app={app} meta={meta} />}
            <Button aria-label={t('filter.remove')} icon={<DeleteOutlined />} onClick={() => onChange({ ...value, conditions: value.conditions.filter((_, j) => j !== i) })} />
          </Space>
        );
      })}
      <Button size="small" icon={<PlusOutlined />} onClick={() => onChange({ ...value, conditions: [...value.conditions, { field: '', op: 'eq' }] })}>
        {t('filter.add')}
      </Button>
    </div>
  );
}

function ValueInput({ field, condition, onChange, app, meta }: { field: FieldMeta; condition: Condition; onChange: (v: unknown) => void; app: string; meta: AppMeta }) {
  const { t } = useTranslation();
  const { l } = useLang();
  if (condition.op === 'is_empty') {
    return (
      <Select aria-label={t('filter.value')} style={{ width: 120 }} value={condition.value as boolean}
        options={[{ value: true, label: t('filter.yes') }, { value: false, label: t('filter.no') }]} onChange={onChange} />
    );
  }
  if (condition.op === 'in') {
    return (
      <Select aria-label={t('filter.value')} mode="tags" style={{ minWidth: 200 }} value={(condition.value as string[]) ?? []}
        options={field.options.map((o) => ({ value: o.value, label: l(o.label, o.value) }))} onChange={onChange} />
    );
  }
  if (condition.op === 'between') {
    const pair = (condition.value as [unknown, unknown]) ?? [null, null];
    const numeric = ['integer', 'decimal', 'percent', 'rating'].includes(field.kind);
    return (
      <Space.Compact>
        {[0, 1].map((k) =>
          numeric ? (
            <InputNumber key={k} aria-label={t(k ? 'filter.to' : 'filter.from')} value={pair[k] as number} onChange={(v) => onChange(k ? [pair[0], v] : [v, pair[1]])} />
          ) : (
            <Input key={k} aria-label={t(k ? 'filter.to' : 'filter.from')} placeholder="YYYY-MM-DD" value={(pair[k] as string) ?? ''} onChange={(e) => onChange(k ? [pair[0], e.target.value] : [e.target.value, pair[1]])} />
          ),
        )}
      </Space.Compact>
    );
  }
  if (['multi_select', 'tags', 'relation_many'].includes(field.kind)) {
    const single = { ...field, kind: field.kind === 'relation_many' ? 'relation_one' : 'single_select' } as FieldMeta;
    return <div style={{ minWidth: 200 }}><FieldInput field={{ ...single, readOnly: false }} app={app} meta={meta} value={condition.value} onChange={onChange} /></div>;
  }
  return <div style={{ minWidth: 200 }}><FieldInput field={{ ...field, readOnly: false }} app={app} meta={meta} value={condition.value} onChange={onChange} /></div>;
}
