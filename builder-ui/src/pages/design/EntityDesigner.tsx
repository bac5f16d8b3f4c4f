// The entity & form designer: drag field kinds from the palette onto the form canvas (tabs,
// sections, columns), set every option in the property panel, try the form in a live preview that
// validates like the server, and publish after reading the migration report.
import { useMemo, useState } from 'react';
import { App as AntApp, Button, Card, Col, Empty, Input, Row, Segmented, Select, Space, Tabs, Tag, Tooltip, Typography } from 'antd';
import { ArrowDownOutlined, ArrowUpOutlined, DeleteOutlined, PlusOutlined } from '@ant-design/icons';
import { useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { PublishDialog } from '../../components/PublishDialog';
import { RecordForm } from '../../components/RecordForm';
import { designFromSchema, designProblems, entityToSchema, newField, PALETTE, type EntityDesign, type FieldDesign } from '../../lib/entityDesign';
import { formLayout, layoutToView, type FormLayout } from '../../lib/layout';
import { entityFromSchema, type FieldKind } from '../../lib/metadata';
import { useAppMeta, useLang } from '../../lib/hooks';
import { FieldProperties } from './FieldProperties';
import { LocalizedInput } from './LocalizedInput';

export function EntityDesigner() {
  const { app = '', entity: entityId = '' } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const { message } = AntApp.useApp();
  const loaded = useAppMeta(app).data!;
  const meta = loaded.meta;
  const path = `entities/${entityId}.schema.json`;
  const existing = loaded.bundle[path] as Record<string, unknown> | undefined;
  const [design, setDesign] = useState<EntityDesign>(() => {
    if (existing) return designFromSchema(entityId, existing);
    const label = { en: params.get('en') || entityId, 'zh-CN': params.get('zh') || params.get('en') || entityId };
    return { id: entityId, label, labelPlural: label, titleField: null, fields: [], original: {} };
  });
  const [layout, setLayout] = useState<FormLayout>(() => {
    const view = meta.views.find((v) => v.kind === 'form' && v.entity === entityId);
    const base = existing ? entityFromSchema(entityId, existing) : entityFromSchema(entityId, { properties: {} });
    return formLayout(base, view, true);
  });
  const [selected, setSelected] = useState<string | null>(null);
  const [tab, setTab] = useState(layout.tabs[0]?.id ?? 'main');
  const [mode, setMode] = useState<'design' | 'preview'>('design');
  const [publishing, setPublishing] = useState(false);
  const schema = useMemo(() => entityToSchema(design), [design]);
  const previewEntity = useMemo(() => entityFromSchema(entityId, schema), [entityId, schema]);
  const problems = designProblems(design, meta.entities.map((e) => e.id).concat(entityId));
  const currentTab = layout.tabs.find((x) => x.id === tab) ?? layout.tabs[0];

  const updateField = (id: string, next: FieldDesign) => {
    setDesign({ ...design, fields: design.fields.map((f) => (f.id === id ? next : f)) });
    if (next.id !== id) {
      setLayout(mapFields(layout, (fid) => (fid === id ? next.id : fid)));
      setSelected(next.id);
    }
  };
  const addField = (kind: FieldKind, sectionId?: string, before?: string) => {
    const field = newField(kind, design.fields.map((f) => f.id), { en: t(`kinds.${kind}`, { lng: 'en' }), 'zh-CN': t(`kinds.${kind}`, { lng: 'zh-CN' }) });
    setDesign({ ...design, fields: [...design.fields, field], titleField: design.titleField ?? (kind === 'text' ? field.id : null) });
    setLayout(place(layout, currentTab.id, sectionId, field.id, before));
    setSelected(field.id);
  };
  const moveField = (fieldId: string, sectionId: string, before?: string) => {
    if (fieldId === before) return;
    setLayout(place(mapFields(layout, (f) => (f === fieldId ? null : f)), currentTab.id, sectionId, fieldId, before));
  };
  const removeField = (fieldId: string) => {
    setDesign({ ...design, fields: design.fields.filter((f) => f.id !== fieldId), titleField: design.titleField === fieldId ? null : design.titleField });
    setLayout(mapFields(layout, (f) => (f === fieldId ? null : f)));
    setSelected(null);
  };
  const nudge = (fieldId: string, delta: number) => {
    setLayout({
      tabs: layout.tabs.map((tb) => ({
        ...tb,
        sections: tb.sections.map((s) => {
          const i = s.fields.indexOf(fieldId);
          if (i < 0) return s;
          const j = Math.min(Math.max(i + delta, 0), s.fields.length - 1);
          const fields = [...s.fields];
          fields.splice(i, 1);
          fields.splice(j, 0, fieldId);
          return { ...s, fields };
        }),
      })),
    });
  };
  const onDrop = (sectionId: string, before?: string) => (e: React.DragEvent) => {
    e.preventDefault();
    e.stopPropagation();
    const data = e.dataTransfer.getData('text/plain');
    if (data.startsWith('new:')) addField(data.slice(4) as FieldKind, sectionId, before);
    else if (data.startsWith('move:')) moveField(data.slice(5), sectionId, before);
  };
  const nextBundle = () => ({
    ...loaded.bundle,
    [path]: schema,
    [`views/${entityId}_form.view.json`]: layoutToView(entityId, layout, design.label),
  });
  const selectedField = design.fields.find((f) => f.id === selected);
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('design.entityTitle', { entity: l(design.label, entityId) })}</Typography.Title>
        <Space wrap>
          <Segmented value={mode} onChange={(v) => setMode(v as 'design' | 'preview')} options={[{ value: 'design', label: t('design.canvas') }, { value: 'preview', label: t('design.preview') }]} />
          <Button type="primary" onClick={() => (problems.length ? message.error(t('design.fixFirst')) : setPublishing(true))}>{t('design.publish')}</Button>
        </Space>
      </Space>
      <Card size="small" style={{ marginBottom: 12 }}>
        <Row gutter={12}>
          <Col xs={24} md={8}><LocalizedInput label={t('design.entityLabel')} value={design.label} onChange={(label) => setDesign({ ...design, label })} /></Col>
          <Col xs={24} md={8}><LocalizedInput label={t('design.entityLabelPlural')} value={design.labelPlural} onChange={(labelPlural) => setDesign({ ...design, labelPlural })} /></Col>
          <Col xs={24} md={8}>
            <div>{t('design.titleField')}
              <Select style={{ width: '100%' }} aria-label={t('design.titleField')} value={design.titleField ?? undefined} allowClear
                options={design.fields.map((f) => ({ value: f.id, label: l(f.label, f.id) }))} onChange={(v) => setDesign({ ...design, titleField: v ?? null })} />
            </div>
          </Col>
        </Row>
      </Card>
      {problems.length > 0 && (
        <Card size="small" style={{ marginBottom: 12, borderColor: '#ffa39e' }} role="alert">
          {problems.map((p, i) => <div key={i}><Tag color="red">{p.field}</Tag>{t(`design.problem.${p.message}`)}</div>)}
        </Card>
      )}
      {mode === 'preview' ? (
        <Card title={t('design.previewTitle')}>
          <RecordForm app={app} meta={{ ...meta, entities: [...meta.entities.filter((e) => e.id !== entityId), previewEntity] }} entity={previewEntity} layout={stripReadOnly(layout, previewEntity)}
            submitLabel={t('design.tryValidate')} onSubmit={() => message.success(t('design.previewValid'))} />
        </Card>
      ) : (
        <Row gutter={12}>
          <Col xs={24} md={5}>
            <Card size="small" title={t('design.palette')}>
              <div style={{ display: 'grid', gap: 6 }} role="list" aria-label={t('design.palette')}>
                {PALETTE.map((kind) => (
                  <Button key={kind} size="small" role="listitem" draggable data-testid={`palette-${kind}`}
                    onDragStart={(e) => e.dataTransfer.setData('text/plain', `new:${kind}`)}
                    onClick={() => addField(kind)} style={{ textAlign: 'left' }}>
                    {t(`kinds.${kind}`)}
                  </Button>
                ))}
              </div>
            </Card>
          </Col>
          <Col xs={24} md={11}>
            <Card size="small" title={t('design.form')}
              extra={<Button size="small" icon={<PlusOutlined />} onClick={() => {
                const id = `tab_${layout.tabs.length + 1}`;
                setLayout({ tabs: [...layout.tabs, { id, label: { en: `Tab ${layout.tabs.length + 1}`, 'zh-CN': `标签页 ${layout.tabs.length + 1}` }, sections: [{ id: `${id}_section`, label: null, columns: 2, fields: [] }] }] });
                setTab(id);
              }}>{t('design.addTab')}</Button>}>
              {layout.tabs.length > 1 && (
                <Tabs activeKey={currentTab.id} onChange={setTab} items={layout.tabs.map((tb) => ({ key: tb.id, label: l(tb.label, tb.id) }))} />
              )}
              {currentTab.sections.map((s, si) => (
                <div key={s.id} data-testid={`section-${s.id}`} onDragOver={(e) => e.preventDefault()} onDrop={onDrop(s.id)}
                  style={{ border: '1px dashed #b7c9bd', borderRadius: 8, padding: 8, marginBottom: 10, background: '#fbfdfb' }}>
                  <Space wrap style={{ marginBottom: 6 }}>
                    <Input size="small" aria-label={t('design.sectionTitle')} placeholder={t('design.sectionTitle')} value={l(s.label, '')}
                      onChange={(e) => setLayout(updateSection(layout, currentTab.id, s.id, { label: { ...(typeof s.label === 'object' && s.label ? s.label : {}), [langKey()]: e.target.value } }))} />
                    <Select size="small" aria-label={t('design.columns')} value={s.columns} style={{ width: 110 }}
                      options={[1, 2, 3, 4].map((n) => ({ value: n, label: t('design.nColumns', { n }) }))}
                      onChange={(columns) => setLayout(updateSection(layout, currentTab.id, s.id, { columns }))} />
                    {currentTab.sections.length > 1 && (
                      <Button size="small" aria-label={t('design.removeSection')} icon={<DeleteOutlined />} onClick={() => setLayout(removeSection(layout, currentTab.id, si))} />
                    )}
                  </Space>
                  <div style={{ display: 'grid', gridTemplateColumns: `repeat(${s.columns}, minmax(0, 1fr))`, gap: 6 }}>
                    {s.fields.map((fid) => {
                      const f = design.fields.find((x) => x.id === fid);
                      if (!f) return null;
                      const bad = problems.some((p) => p.field === fid);
                      return (
                        <div key={fid} draggable data-testid={`canvas-field-${fid}`}
                          onDragStart={(e) => e.dataTransfer.setData('text/plain', `move:${fid}`)}
                          onDragOver={(e) => e.preventDefault()} onDrop={onDrop(s.id, fid)}
                          onClick={() => setSelected(fid)} onKeyDown={(e) => e.key === 'Enter' && setSelected(fid)} tabIndex={0} role="button"
                          aria-pressed={selected === fid}
                          style={{ border: `1px solid ${selected === fid ? '#2f6f4e' : bad ? '#ff4d4f' : '#d9d9d9'}`, borderRadius: 6, padding: '6px 8px', background: '#fff', cursor: 'grab' }}>
                          <Space size={4} style={{ width: '100%', justifyContent: 'space-between' }}>
                            <span>{f.required && <span style={{ color: '#ff4d4f' }}>* </span>}{l(f.label, f.id)}</span>
                            <span>
                              <Tooltip title={t('design.up')}><Button type="text" size="small" aria-label={t('design.up')} icon={<ArrowUpOutlined />} onClick={(e) => { e.stopPropagation(); nudge(fid, -1); }} /></Tooltip>
                              <Tooltip title={t('design.down')}><Button type="text" size="small" aria-label={t('design.down')} icon={<ArrowDownOutlined />} onClick={(e) => { e.stopPropagation(); nudge(fid, 1); }} /></Tooltip>
                            </span>
                          </Space>
                          <Tag style={{ marginTop: 2 }}>{t(`kinds.${f.kind}`)}</Tag>
                        </div>
                      );
                    })}
                  </div>
                  {s.fields.length === 0 && <Typography.Text type="secondary">{t('design.dropHere')}</Typography.Text>}
                </div>
              ))}
              <Button size="small" icon={<PlusOutlined />} onClick={() => setLayout(addSection(layout, currentTab.id))}>{t('design.addSection')}</Button>
            </Card>
          </Col>
          <Col xs={24} md={8}>
            <Card size="small" title={t('design.properties')}>
              {selectedField ? (
                <FieldProperties key={selectedField.id} field={selectedField} entities={meta.entities.map((e) => e.id).filter((e) => e !== entityId).concat(entityId)} onChange={(next) => updateField(selectedField.id, next)} onRemove={() => removeField(selectedField.id)}
                  others={previewEntity.fields.filter((f) => f.id !== selectedField.id)} app={app} meta={{ ...meta, entities: [...meta.entities.filter((e) => e.id !== entityId), previewEntity] }} />
              ) : (
                <Empty description={t('design.selectField')} image={Empty.PRESENTED_IMAGE_SIMPLE} />
              )}
            </Card>
          </Col>
        </Row>
      )}
      {publishing && <PublishDialog app={app} bundle={nextBundle()} etag={loaded.etag} open={publishing} onClose={() => setPublishing(false)} />}
    </div>
  );
}

function langKey(): string {
  return document.documentElement.lang === 'zh-CN' ? 'zh-CN' : 'en';
}

function mapFields(layout: FormLayout, f: (id: string) => string | null): FormLayout {
  return { tabs: layout.tabs.map((tb) => ({ ...tb, sections: tb.sections.map((s) => ({ ...s, fields: s.fields.map(f).filter((x): x is string => x !== null) })) })) };
}

function place(layout: FormLayout, tabId: string, sectionId: string | undefined, fieldId: string, before?: string): FormLayout {
  return {
    tabs: layout.tabs.map((tb) => {
      if (tb.id !== tabId) return tb;
      const target = sectionId ?? tb.sections[tb.sections.length - 1]?.id;
      return {
        ...tb,
        sections: tb.sections.map((s) => {
          if (s.id !== target) return s;
          const fields = s.fields.filter((x) => x !== fieldId);
          const at = before ? fields.indexOf(before) : -1;
          if (at >= 0) fields.splice(at, 0, fieldId);
          else fields.push(fieldId);
          return { ...s, fields };
        }),
      };
    }),
  };
}

function updateSection(layout: FormLayout, tabId: string, sectionId: string, patch: Partial<FormLayout['tabs'][number]['sections'][number]>): FormLayout {
  return { tabs: layout.tabs.map((tb) => (tb.id !== tabId ? tb : { ...tb, sections: tb.sections.map((s) => (s.id === sectionId ? { ...s, ...patch } : s)) })) };
}

function addSection(layout: FormLayout, tabId: string): FormLayout {
  const count = layout.tabs.reduce((n, tb) => n + tb.sections.length, 0);
  return { tabs: layout.tabs.map((tb) => (tb.id !== tabId ? tb : { ...tb, sections: [...tb.sections, { id: `section_${count + 1}`, label: null, columns: 2, fields: [] }] })) };
}

function removeSection(layout: FormLayout, tabId: string, index: number): FormLayout {
  return {
    tabs: layout.tabs.map((tb) => {
      if (tb.id !== tabId) return tb;
      const sections = tb.sections.map((s) => ({ ...s, fields: [...s.fields] }));
      const [gone] = sections.splice(index, 1);
      sections[Math.max(0, index - 1)].fields.push(...gone.fields);
      return { ...tb, sections };
    }),
  };
}

function stripReadOnly(layout: FormLayout, entity: ReturnType<typeof entityFromSchema>): FormLayout {
  const editable = new Set(entity.fields.filter((f) => !f.readOnly).map((f) => f.id));
  return { tabs: layout.tabs.map((tb) => ({ ...tb, sections: tb.sections.map((s) => ({ ...s, fields: s.fields.filter((f) => editable.has(f)) })) })) };
}
