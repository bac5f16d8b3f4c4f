// The visual condition builder that writes rhai (rule conditions, flow guards): rows of
// field · comparison · value joined by "and"/"or", with a code view for experts. Hand-written rhai
// the builder cannot show stays in the code view.
import { useState } from 'react';
import { Button, Input, Segmented, Select, Space, Typography } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useTranslation } from 'react-i18next';
import { fromRhai, toRhai, type Comparison, type RhaiModel } from '../lib/rhai';
import type { FieldMeta } from '../lib/metadata';
import { useLang } from '../lib/hooks';

const COMPARISONS: Comparison[] = ['==', '!=', '<', '<=', '>', '>=', 'is_empty', 'not_empty', 'contains', 'changed'];

export function ConditionBuilder({ fields, value, onChange, allowChanged = false }: { fields: FieldMeta[]; value: string; onChange: (rhai: string) => void; allowChanged?: boolean }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const model = fromRhai(value ?? '', fields);
  const [mode, setMode] = useState<'visual' | 'code'>(model ? 'visual' : 'code');
  const set = (m: RhaiModel) => onChange(toRhai(m, fields));
  return (
    <div data-testid="condition-builder">
      <Segmented size="small" value={mode} onChange={(v) => setMode(v as 'visual' | 'code')} style={{ marginBottom: 6 }}
        options={[{ value: 'visual', label: t('condition.visual'), disabled: !model }, { value: 'code', label: t('condition.code') }]} />
      {mode === 'code' || !model ? (
        <>
          <Input.TextArea aria-label={t('condition.code')} rows={3} style={{ fontFamily: 'monospace' }} value={value} onChange={(e) => onChange(e.target.value)} placeholder='amount > 1000.0 && status == "open"' />
          {!model && value.trim() !== '' && <Typography.Text type="secondary" style={{ fontSize: 12 }}>{t('condition.handWritten')}</Typography.Text>}
        </>
      ) : (
        <>
          {model.conditions.length > 1 && (
            <Segmented size="small" value={model.join} style={{ marginBottom: 6 }} onChange={(join) => set({ ...model, join: join as '&&' | '||' })}
              options={[{ value: '&&', label: t('condition.all') }, { value: '||', label: t('condition.any') }]} />
          )}
          {model.conditions.map((c, i) => {
            const field = fields.find((f) => f.id === c.field);
            const needsValue = !['is_empty', 'not_empty', 'changed'].includes(c.cmp);
            const update = (patch: Partial<typeof c>) => set({ ...model, conditions: model.conditions.map((x, j) => (j === i ? { ...x, ...patch } : x)) });
            return (
              <Space key={i} wrap style={{ display: 'flex', marginBottom: 4 }} data-testid="condition-row">
                <Select aria-label={t('filter.field')} style={{ width: 160 }} showSearch={{ optionFilterProp: 'label' }} value={c.field || undefined} placeholder={t('filter.field')}
                  options={fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(fid) => update({ field: fid })} />
                <Select aria-label={t('filter.operator')} style={{ width: 130 }} value={c.cmp}
                  options={COMPARISONS.filter((x) => allowChanged || x !== 'changed').map((x) => ({ value: x, label: t(`condition.cmp.${cmpKey(x)}`) }))} onChange={(cmp) => update({ cmp })} />
                {needsValue && (field?.options.length ? (
                  <Select aria-label={t('filter.value')} style={{ width: 160 }} value={c.value as string} options={field.options.map((o) => ({ value: o.value, label: l(o.label, o.value) }))} onChange={(v) => update({ value: v })} />
                ) : field?.kind === 'boolean' ? (
                  <Select aria-label={t('filter.value')} style={{ width: 100 }} value={c.value as boolean} options={[{ value: true, label: t('common.yes') }, { value: false, label: t('common.no') }]} onChange={(v) => update({ value: v })} />
                ) : (
                  <Input aria-label={t('filter.value')} style={{ width: 160 }} value={c.value === null || c.value === undefined ? '' : String(c.value)}
                    onChange={(e) => update({ value: field && ['integer', 'decimal', 'percent', 'rating'].includes(field.kind) && e.target.value !== '' && !Number.isNaN(Number(e.target.value)) ? Number(e.target.value) : e.target.value })} />
                ))}
                <Button aria-label={t('filter.remove')} icon={<DeleteOutlined />} onClick={() => set({ ...model, conditions: model.conditions.filter((_, j) => j !== i) })} />
              </Space>
            );
          })}
          <Button size="small" icon={<PlusOutlined />} onClick={() => set({ ...model, conditions: [...model.conditions, { field: fields[0]?.id ?? '', cmp: '==', value: '' }] })}>{t('filter.add')}</Button>
          {value && <pre style={{ background: '#f6f8f7', padding: 6, marginTop: 6, fontSize: 12, whiteSpace: 'pre-wrap' }} aria-label={t('condition.code')}>{value}</pre>}
        </>
      )}
    </div>
  );
}

function cmpKey(c: Comparison): string {
  return { '==': 'eq', '!=': 'ne', '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte' }[c as string] ?? c;
}
