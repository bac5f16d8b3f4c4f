// A record form rendered from the entity's metadata and its form layout (tabs, sections, columns),
// validated on the client like the server does and showing the server's field errors beside each
// field (JSON pointers mapped to fields).
import { useEffect, useMemo } from 'react';
import { Button, Card, Col, Form, Row, Space, Tabs, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { ApiProblem } from '../api/client';
import { formLayout, type FormLayout } from '../lib/layout';
import type { AppMeta, EntityMeta, ViewMeta } from '../lib/metadata';
import { validateField } from '../lib/validate';
import { evaluate } from '../lib/rhai';
import { useLang } from '../lib/hooks';
import { FieldInput } from './FieldInput';
import { ProblemAlert } from './ProblemAlert';

export interface RecordFormProps {
  app: string;
  meta: AppMeta;
  entity: EntityMeta;
  view?: ViewMeta;
  layout?: FormLayout;
  initial?: Record<string, unknown>;
  busy?: boolean;
  error?: unknown;
  submitLabel?: string;
  onSubmit?: (data: Record<string, unknown>) => void;
  onCancel?: () => void;
}

export function RecordForm({ app, meta, entity, view, layout, initial, busy, error, submitLabel, onSubmit, onCancel }: RecordFormProps) {
  const { t } = useTranslation();
  const { l } = useLang();
  const [form] = Form.useForm();
  const values = (Form.useWatch([], form) ?? {}) as Record<string, unknown>;
  // What the page shows follows the watched values (a render behind a keystroke at most); what is
  // checked and sent reads the form's values at that moment, so a Save clicked before that render
  // still applies a condition the last keystroke made true.
  const when = (expr: string | undefined) => evaluate(expr, { ...(initial ?? {}), ...values }, entity.fields);
  const whenNow = (expr: string | undefined, now: Record<string, unknown> = form.getFieldsValue(true)) =>
    evaluate(expr, { ...(initial ?? {}), ...now }, entity.fields);
  const resolved = useMemo(() => layout ?? formLayout(entity, view), [layout, entity, view]);
  const byId = useMemo(() => new Map(entity.fields.map((f) => [f.id, f])), [entity]);
  useEffect(() => {
    form.setFieldsValue(initial ?? {});
  }, [form, initial]);
  useEffect(() => {
    if (error instanceof ApiProblem) {
      const fields = error.fieldErrors();
      form.setFields(Object.entries(fields).filter(([k]) => byId.has(k)).map(([name, errors]) => ({ name, errors })));
    }
  }, [error, form, byId]);
  const problem = error instanceof ApiProblem ? error : null;
  const unplaced = problem ? problem.errors.filter((e) => !byId.has((e.pointer ?? '').split('/')[1] ?? '')) : [];
  const renderSection = (s: FormLayout['tabs'][number]['sections'][number]) => (
    <Card key={s.id} size="small" title={s.label ? l(s.label) : undefined} style={{ marginBottom: 12 }}>
      <Row gutter={16}>
        {s.fields.map((fid) => {
          const base = byId.get(fid)!;
          // Conditions the browser can evaluate apply live; the server checks them all again.
          if (when(base.visibleIf) === false) return null;
          const requiredNow = base.required || when(base.requiredIf) === true;
          const field = { ...base, required: requiredNow, readOnly: base.readOnly || when(base.readOnlyIf) === true };
          return (
            <Col key={fid} xs={24} md={24 / s.columns}>
              <Form.Item
                name={fid}
                label={l(field.label, fid)}
                tooltip={field.help ? l(field.help) : undefined}
                required={field.required && !field.readOnly}
                rules={[{ validator: async (_, value) => {
                  const checked = {
                    ...base,
                    required: base.required || whenNow(base.requiredIf) === true,
                    readOnly: base.readOnly || whenNow(base.readOnlyIf) === true,
                  };
                  const problems = validateField(checked, value, t);
                  if (problems.length) throw new Error(problems.join('; '));
                } }]}
              >
                <FieldInput field={field} app={app} meta={meta} />
              </Form.Item>
            </Col>
          );
        })}
      </Row>
    </Card>
  );
  const submit = (values: Record<string, unknown>) => {
    const data: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values)) {
      const field = byId.get(k);
      if (!field || field.readOnly || whenNow(field.visibleIf, values) === false) continue;
      if (v === undefined) continue;
      data[k] = v;
    }
    onSubmit?.(data);
  };
  return (
    <Form form={form} layout="vertical" onFinish={submit} scrollToFirstError>
      {resolved.tabs.length > 1 ? (
        <Tabs items={resolved.tabs.map((tab) => ({ key: tab.id, label: l(tab.label, tab.id), forceRender: true, children: tab.sections.map(renderSection) }))} />
      ) : (
        resolved.tabs[0]?.sections.map(renderSection)
      )}
      {error && (!problem || unplaced.length > 0 || problem.errors.length === 0) ? <ProblemAlert error={error} /> : null}
      {problem && problem.errors.length > 0 && unplaced.length === 0 && (
        <Typography.Text type="danger" role="alert">{t('form.fixErrors')}</Typography.Text>
      )}
      {onSubmit && (
        <Space style={{ marginTop: 12 }}>
          <Button type="primary" htmlType="submit" loading={busy}>{submitLabel ?? t('common.save')}</Button>
          {onCancel && <Button onClick={onCancel}>{t('common.cancel')}</Button>}
        </Space>
      )}
    </Form>
  );
}
