// Metadata read from real template bundles: field kinds inferred as the server does, labels,
// layouts and record titles.
import { describe, expect, it } from 'vitest';
import { entityFromSchema, inferKind, loc, parseBundle, recordTitle } from '../lib/metadata';
import { loadTemplate } from './templates';
import { formLayout } from '../lib/layout';

describe('metadata', () => {
  it('infers kinds like FieldKind::infer', () => {
    expect(inferKind({ type: 'string', format: 'email' })).toBe('email');
    expect(inferKind({ type: 'string', format: 'uri' })).toBe('url');
    expect(inferKind({ type: 'string', format: 'date' })).toBe('date');
    expect(inferKind({ type: 'string', format: 'date-time' })).toBe('datetime');
    expect(inferKind({ type: 'string', enum: ['a'] })).toBe('single_select');
    expect(inferKind({ type: 'string' })).toBe('text');
    expect(inferKind({ type: 'integer' })).toBe('integer');
    expect(inferKind({ type: 'number' })).toBe('decimal');
    expect(inferKind({ type: 'boolean' })).toBe('boolean');
    expect(inferKind({ type: 'array', items: { enum: ['x'] } })).toBe('multi_select');
    expect(inferKind({ type: 'array', items: { type: 'string' } })).toBe('tags');
    expect(inferKind({ type: 'object' })).toBe('json');
  });

  it('reads the CLM template', () => {
    const meta = parseBundle(loadTemplate('clm'));
    const customer = meta.entities.find((e) => e.id === 'customer')!;
    expect(loc(customer.label, 'zh-CN')).toBe('客户');
    expect(customer.titleField).toBe('name');
    const byId = Object.fromEntries(customer.fields.map((f) => [f.id, f]));
    expect(byId.code.kind).toBe('auto_number');
    expect(byId.code.readOnly).toBe(true);
    expect(byId.health_score.readOnly).toBe(true);
    expect(byId.company.relation?.entity).toBe('company');
    expect(byId.lifecycle_stage.options.map((o) => o.value)).toContain('churned');
    expect(byId.name.required).toBe(true);
    const lifecycle = meta.flows.find((f) => f.id === 'lifecycle')!;
    expect(lifecycle.field).toBe('lifecycle_stage');
    expect(lifecycle.states.map((s) => s.id)).toEqual(['acquisition', 'growth', 'maturity', 'decline', 'churned']);
    expect(meta.views.find((v) => v.id === 'customer_360')?.kind).toBe('detail');
    expect(meta.reports.find((r) => r.id === 'customers_by_stage')?.entity).toBe('customer');
    expect(recordTitle(customer, { id: 'abcdef123', data: { name: '李雷' } })).toBe('李雷');
    expect(recordTitle(customer, { id: 'abcdef123', data: {} })).toBe('abcdef12');
  });

  it('localizes with fallbacks, including JSON-encoded task titles', () => {
    expect(loc({ en: 'A', 'zh-CN': '甲' }, 'zh-CN')).toBe('甲');
    expect(loc({ en: 'A' }, 'zh-CN')).toBe('A');
    expect(loc('{"en":"Call","zh-CN":"致电"}', 'zh-CN')).toBe('致电');
    expect(loc(null, 'en', 'x')).toBe('x');
  });

  it('lays out forms without losing a field', () => {
    const entity = entityFromSchema('t', { properties: { a: { type: 'string' }, b: { type: 'integer' }, c: { type: 'string', 'x-trellis': { kind: 'created_at' } } } });
    const layout = formLayout(entity, { id: 'f', kind: 'form', entity: 't', label: null, raw: { sections: [{ id: 's', fields: ['b', 'ghost'] }] } });
    expect(layout.tabs[0].sections[0].fields).toEqual(['b', 'a']);
    expect(formLayout(entity, undefined, true).tabs[0].sections[0].fields).toEqual(['a', 'b', 'c']);
  });
});
