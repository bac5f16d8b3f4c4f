// The property panel of the entity designer: every option of a field kind — id, labels, help,
// kind, required, unique, options with colours, relation target, ranges, lengths, pattern and, for
// experts, a computed formula.
import { Button, Checkbox, ColorPicker, Divider, Input, InputNumber, Select, Space, Typography } from 'antd';
import { DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useTranslation } from 'react-i18next';
import { fieldToSchema, isIdentifier, PALETTE, type FieldDesign } from '../../lib/entityDesign';
import { fieldFromSchema, type AppMeta, type FieldMeta } from '../../lib/metadata';
import { ConditionBuilder } from '../../components/ConditionBuilder';
import { FieldInput } from '../../components/FieldInput';
import { LocalizedInput } from './LocalizedInput';

const NUMERIC = ['integer', 'decimal', 'percent', 'rating'];
const TEXTUAL = ['text', 'long_text', 'email', 'phone', 'url'];

const WIDGETS: Record<string, string[]> = {
  text: ['input', 'textarea'], long_text: ['textarea', 'markdown'], single_select: ['select', 'radio', 'segmented'],
  multi_select: ['select', 'checkboxes'], integer: ['input', 'slider', 'stepper'], decimal: ['input', 'slider'],
  percent: ['input', 'slider'], boolean: ['checkbox', 'switch'], rating: ['stars'],
};

export function FieldProperties({ field, entities, onChange, onRemove, others, app, meta }: { field: FieldDesign; entities: string[]; onChange: (f: FieldDesign) => void; onRemove: () => void; others: FieldMeta[]; app: string; meta: AppMeta }) {
  const { t } = useTranslation();
  const set = (patch: Partial<FieldDesign>) => onChange({ ...field, ...patch });
  const hasOptions = field.kind === 'single_select' || field.kind === 'multi_select';
  return (
    <div data-testid="field-properties">
      <div>{t('design.fieldId')}
        <Input aria-label={t('design.fieldId')} value={field.id} status={isIdentifier(field.id) ? undefined : 'error'} onChange={(e) => set({ id: e.target.value.trim() })} />
      </div>
      <Typography.Text type="secondary" style={{ fontSize: 12 }}>{t('design.fieldIdHelp')}</Typography.Text>
      <div style={{ height: 8 }} />
      <LocalizedInput label={t('design.fieldLabel')} value={field.label} onChange={(label) => set({ label })} testId="field-label" />
      <div>{t('design.kind')}
        <Select aria-label={t('design.kind')} style={{ width: '100%' }} value={field.kind} options={PALETTE.concat(PALETTE.includes(field.kind) ? [] : [field.kind]).map((k) => ({ value: k, label: t(`kinds.${k}`) }))}
          onChange={(kind) => set({ kind, defaultValue: undefined, widget: null, options: (kind === 'single_select' || kind === 'multi_select') && field.options.length === 0 ? [{ value: 'option_1', label: { en: 'Option 1', 'zh-CN': '选项 1' } }] : field.options })} />
      </div>
      <Space wrap style={{ margin: '8px 0' }}>
        <Checkbox checked={field.required} onChange={(e) => set({ required: e.target.checked })}>{t('design.required')}</Checkbox>
        <Checkbox checked={field.unique} onChange={(e) => set({ unique: e.target.checked })}>{t('design.unique')}</Checkbox>
      </Space>
      <LocalizedInput label={t('design.help')} value={field.help} onChange={(help) => set({ help })} />
      {hasOptions && (
        <>
          <Divider size="small">{t('design.options')}</Divider>
          {field.options.map((o, i) => (
            <Space.Compact key={i} style={{ width: '100%', marginBottom: 4 }}>
              <Input aria-label={t('design.optionValue')} placeholder={t('design.optionValue')} value={o.value} style={{ width: '30%' }}
                onChange={(e) => set({ options: field.options.map((x, j) => (j === i ? { ...x, value: e.target.value.trim() } : x)) })} />
              <Input aria-label={t('design.optionLabelEn')} placeholder="EN" value={labelOf(o.label, 'en')} style={{ width: '28%' }}
                onChange={(e) => set({ options: field.options.map((x, j) => (j === i ? { ...x, label: { ...asObject(x.label), en: e.target.value } } : x)) })} />
              <Input aria-label={t('design.optionLabelZh')} placeholder="中文" value={labelOf(o.label, 'zh-CN')} style={{ width: '28%' }}
                onChange={(e) => set({ options: field.options.map((x, j) => (j === i ? { ...x, label: { ...asObject(x.label), 'zh-CN': e.target.value } } : x)) })} />
              <ColorPicker size="small" value={o.color} aria-label={t('design.optionColor')} onChange={(c) => set({ options: field.options.map((x, j) => (j === i ? { ...x, color: c.toHexString() } : x)) })} />
              <Button aria-label={t('design.removeOption')} icon={<DeleteOutlined />} onClick={() => set({ options: field.options.filter((_, j) => j !== i) })} />
            </Space.Compact>
          ))}
          <Button size="small" icon={<PlusOutlined />} onClick={() => set({ options: [...field.options, { value: `option_${field.options.length + 1}`, label: { en: `Option ${field.options.length + 1}`, 'zh-CN': `选项 ${field.options.length + 1}` } }] })}>{t('design.addOption')}</Button>
        </>
      )}
      {(field.kind === 'relation_one' || field.kind === 'relation_many') && (
        <div>{t('design.relation')}
          <Select aria-label={t('design.relation')} style={{ width: '100%' }} value={field.relation ?? undefined} options={entities.map((e) => ({ value: e, label: e }))} onChange={(relation) => set({ relation })} />
        </div>
      )}
      {NUMERIC.includes(field.kind) && (
        <Space style={{ marginTop: 8 }}>
          <div>{t('design.minimum')}<InputNumber aria-label={t('design.minimum')} value={field.minimum} onChange={(v) => set({ minimum: v })} /></div>
          <div>{t('design.maximum')}<InputNumber aria-label={t('design.maximum')} value={field.maximum} onChange={(v) => set({ maximum: v })} /></div>
        </Space>
      )}
      {TEXTUAL.includes(field.kind) && (
        <>
          <Space style={{ marginTop: 8 }}>
            <div>{t('design.minLength')}<InputNumber aria-label={t('design.minLength')} min={0} value={field.minLength} onChange={(v) => set({ minLength: v })} /></div>
            <div>{t('design.maxLength')}<InputNumber aria-label={t('design.maxLength')} min={1} value={field.maxLength} onChange={(v) => set({ maxLength: v })} /></div>
          </Space>
          <div>{t('design.pattern')}<Input aria-label={t('design.pattern')} value={field.pattern ?? ''} placeholder="^[A-Z]{2}[0-9]+$" onChange={(e) => set({ pattern: e.target.value || null })} /></div>
        </>
      )}
      <Divider size="small">{t('design.behaviour')}</Divider>
      <div>{t('design.defaultValue')}</div>
      <FieldInput field={{ ...fieldFromSchema(field.id, fieldToSchema(field), false), readOnly: false, label: t('design.defaultValue') }} app={app} meta={meta}
        value={field.defaultValue} onChange={(v) => set({ defaultValue: v === null ? undefined : v })} />
      <Space wrap style={{ margin: '8px 0' }}>
        <Checkbox checked={field.readOnly} onChange={(e) => set({ readOnly: e.target.checked })}>{t('design.readOnly')}</Checkbox>
        {TEXTUAL.includes(field.kind) && (
          <Checkbox checked={field.searchable !== false} onChange={(e) => set({ searchable: e.target.checked ? null : false })}>{t('design.searchable')}</Checkbox>
        )}
      </Space>
      {WIDGETS[field.kind] && (
        <div>{t('design.widget')}
          <Select aria-label={t('design.widget')} style={{ width: '100%' }} allowClear value={field.widget ?? undefined}
            options={WIDGETS[field.kind].map((w) => ({ value: w, label: t(`design.widgets.${w}`) }))} onChange={(widget) => set({ widget: widget ?? null })} />
        </div>
      )}
      {field.kind === 'money' && (
        <div>{t('field.currency')}<Input aria-label={t('field.currency')} value={field.currency ?? ''} placeholder="CNY" maxLength={3} onChange={(e) => set({ currency: e.target.value.toUpperCase() || null })} /></div>
      )}
      {([['visibleIf', 'design.visibleIf'], ['requiredIf', 'design.requiredIf'], ['readOnlyIf', 'design.readOnlyIf']] as const).map(([key, label]) => (
        <div key={key} style={{ marginTop: 8 }} data-testid={`condition-${key}`}>
          <div>{t(label)}</div>
          <ConditionBuilder fields={others} value={field[key] ?? ''} onChange={(v) => set({ [key]: v || null } as Partial<FieldDesign>)} />
        </div>
      ))}
      <Divider size="small">{t('design.advanced')}</Divider>
      <div>{t('design.computed')}
        <Input.TextArea aria-label={t('design.computed')} rows={2} value={field.computed ?? ''} placeholder="quantity * unit_price" onChange={(e) => set({ computed: e.target.value || null })} style={{ fontFamily: 'monospace' }} />
      </div>
      <Typography.Text type="secondary" style={{ fontSize: 12 }}>{t('design.computedHelp')}</Typography.Text>
      <div style={{ marginTop: 12 }}>
        <Button danger icon={<DeleteOutlined />} onClick={onRemove}>{t('design.removeField')}</Button>
      </div>
    </div>
  );
}

function asObject(label: unknown): Record<string, string> {
  return label && typeof label === 'object' ? (label as Record<string, string>) : typeof label === 'string' ? { en: label } : {};
}

function labelOf(label: unknown, lang: string): string {
  return asObject(label)[lang] ?? '';
}
