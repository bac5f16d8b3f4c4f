// The designers' logic: filters and conditions written for the server, entity schemas round-tripped
// through the entity designer, flow layout and state options, kanban moves, client validation.
import { describe, expect, it } from 'vitest';
import { fromFilterTree, isComplete, opsFor, toFilterTree, toSortParam } from '../lib/filters';
import { evaluate, fromRhai, toRhai } from '../lib/rhai';
import { designFromSchema, designProblems, entityToSchema, fieldToSchema, newField } from '../lib/entityDesign';
import { autoLayout, newFlow, syncStateField, tidyFlow } from '../lib/flowDesign';
import { eventsBetween } from '../lib/kanban';
import { entityFromSchema, fieldFromSchema, parseBundle } from '../lib/metadata';
import { validateField, validateRecord } from '../lib/validate';
import { loadTemplate } from './templates';

const t = (key: string, o?: Record<string, unknown>) => (o ? `${key}:${JSON.stringify(o)}` : key);
const clm = parseBundle(loadTemplate('clm'));
const customer = clm.entities.find((e) => e.id === 'customer')!;

describe('filter builder', () => {
  it('writes the server filter tree from complete rows only', () => {
    const tree = toFilterTree({ join: 'and', conditions: [
      { field: 'lifecycle_stage', op: 'eq', value: 'growth' },
      { field: 'total_spent', op: 'between', value: [100, 500] },
      { field: 'email', op: 'contains', value: '' },
      { field: 'ghost', op: 'eq', value: 1 },
    ] }, customer.fields);
    expect(tree).toEqual({ and: [{ field: 'lifecycle_stage', op: 'eq', value: 'growth' }, { field: 'total_spent', op: 'between', value: [100, 500] }] });
    expect(toFilterTree({ join: 'or', conditions: [] }, customer.fields)).toBeNull();
    expect(fromFilterTree(tree)).toEqual({ join: 'and', conditions: [{ field: 'lifecycle_stage', op: 'eq', value: 'growth' }, { field: 'total_spent', op: 'between', value: [100, 500] }] });
    expect(fromFilterTree({ not: { field: 'a', op: 'eq', value: 1 } })).toBeNull();
    expect(isComplete({ field: 'a', op: 'is_empty', value: false })).toBe(true);
    expect(isComplete({ field: 'a', op: 'in', value: [] })).toBe(false);
  });

  it('offers operators that fit the field kind', () => {
    expect(opsFor('integer')).toContain('between');
    expect(opsFor('text')).toContain('starts_with');
    expect(opsFor('text')).not.toContain('gt');
    expect(opsFor('tags')).toEqual(['contains', 'is_empty']);
    expect(toSortParam('name', 'descend')).toBe('-name');
    expect(toSortParam('name', null)).toBeUndefined();
  });
});

describe('condition builder (rhai)', () => {
  it('writes rhai and reads it back', () => {
    const model = { join: '&&' as const, conditions: [
      { field: 'lifecycle_stage', cmp: '==' as const, value: 'growth' },
      { field: 'total_spent', cmp: '>' as const, value: 1000 },
      { field: 'email', cmp: 'is_empty' as const },
      { field: 'rfm_r', cmp: 'changed' as const },
    ] };
    const rhai = toRhai(model, customer.fields);
    expect(rhai).toBe('(lifecycle_stage == "growth") && (total_spent != () && total_spent > 1000.0) && (email == ()) && (before != () && before.rfm_r != rfm_r)');
    expect(fromRhai(rhai, customer.fields)).toEqual({ ...model, conditions: model.conditions.map((c) => (c.cmp === 'is_empty' || c.cmp === 'changed' ? { field: c.field, cmp: c.cmp } : c)) });
    expect(toRhai({ join: '||', conditions: [{ field: 'orders_count', cmp: '>=', value: 3 }] }, customer.fields)).toBe('orders_count != () && orders_count >= 3');
    expect(fromRhai('orders_count != () && orders_count >= 3', customer.fields)?.conditions[0]).toEqual({ field: 'orders_count', cmp: '>=', value: 3 });
    expect(fromRhai('', customer.fields)).toEqual({ join: '&&', conditions: [] });
    expect(fromRhai('let x = 1; x > 0', customer.fields)).toBeNull();
  });

  it('evaluates the conditions it writes on form values, and leaves hand-written rhai to the server', () => {
    const big = toRhai({ join: '&&', conditions: [{ field: 'total_spent', cmp: '>', value: 1000 }, { field: 'tier', cmp: '==', value: 'gold' }] }, customer.fields);
    expect(evaluate(big, { total_spent: 1500, tier: 'gold' }, customer.fields)).toBe(true);
    expect(evaluate(big, { total_spent: 900, tier: 'gold' }, customer.fields)).toBe(false);
    expect(evaluate(big, { tier: 'gold' }, customer.fields)).toBe(false);
    const either = toRhai({ join: '||', conditions: [{ field: 'email', cmp: 'is_empty' }, { field: 'tags', cmp: 'contains', value: 'vip' }] }, customer.fields);
    expect(evaluate(either, { email: 'a@b.c', tags: ['vip'] }, customer.fields)).toBe(true);
    expect(evaluate(either, { email: 'a@b.c', tags: [] }, customer.fields)).toBe(false);
    expect(evaluate(either, {}, customer.fields)).toBe(true);
    expect(evaluate('', {}, customer.fields)).toBeNull();
    expect(evaluate('days_since(last_order_at) > 30', {}, customer.fields)).toBeNull();
  });
});

describe('entity designer', () => {
  it('round-trips every CLM entity without changing a field kind, option or constraint', () => {
    for (const entity of clm.entities) {
      const schema = entity.schema;
      const back = entityToSchema(designFromSchema(entity.id, schema));
      const again = entityFromSchema(entity.id, back);
      expect(again.fields.map((f) => [f.id, f.kind, f.required, f.readOnly])).toEqual(entity.fields.map((f) => [f.id, f.kind, f.required, f.readOnly]));
      for (const f of entity.fields) {
        const p = (back.properties as Record<string, Record<string, unknown>>)[f.id];
        for (const key of ['type', 'format', 'enum', 'minimum', 'maximum', 'minLength', 'maxLength', 'default']) expect(p[key], `${entity.id}.${f.id}.${key}`).toEqual(f.schema[key]);
        const x = p['x-trellis'] as Record<string, unknown>;
        const ox = (f.schema['x-trellis'] ?? {}) as Record<string, unknown>;
        for (const key of ['computed', 'relation', 'pattern', 'unique', 'options']) expect(x[key], `${entity.id}.${f.id}.${key}`).toEqual(ox[key]);
      }
      expect((back['x-trellis'] as Record<string, unknown>).indexes).toEqual((schema['x-trellis'] as Record<string, unknown>).indexes);
    }
  });

  it('builds new fields of every palette kind the server accepts', () => {
    const f = { ...newField('single_select', [], { en: 'Priority' }), options: [{ value: 'low', label: { en: 'Low' } }, { value: 'high', label: { en: 'High' } }] };
    expect(fieldToSchema(f)).toMatchObject({ type: 'string', enum: ['low', 'high'], 'x-trellis': { kind: 'single_select', label: { en: 'Priority' } } });
    const rel = { ...newField('relation_one', [], { en: 'Customer' }), relation: 'customer' };
    expect(fieldToSchema(rel)).toMatchObject({ type: 'string', 'x-trellis': { kind: 'relation_one', relation: { entity: 'customer', on_delete: 'set_null' } } });
    expect(newField('text', ['text_1'], {}).id).toBe('text_2');
    // Changing the kind drops constraints that no longer fit.
    const changed = fieldToSchema({ ...designFromSchema('c', customer.schema).fields.find((x) => x.id === 'rfm_r')!, kind: 'text', minimum: null, maximum: null });
    expect(changed).not.toHaveProperty('minimum');
    expect(changed.type).toBe('string');
    expect(fieldFromSchema('x', changed, false).kind).toBe('text');
  });

  it('writes every behaviour option the form engine knows', () => {
    const field = { ...newField('decimal', [], { en: 'Budget' }), defaultValue: 100, readOnly: true, widget: 'slider', visibleIf: 'tier == "gold"', requiredIf: 'total_spent != () && total_spent > 10.0', readOnlyIf: null, minimum: 0, maximum: 5000 };
    const schema = fieldToSchema(field);
    expect(schema).toMatchObject({ type: 'number', default: 100, minimum: 0, maximum: 5000, 'x-trellis': { kind: 'decimal', read_only: true, widget: 'slider', visible_if: 'tier == "gold"', required_if: 'total_spent != () && total_spent > 10.0' } });
    expect(schema['x-trellis']).not.toHaveProperty('read_only_if');
    const back = designFromSchema('e', { properties: { budget: schema } }).fields[0];
    expect([back.defaultValue, back.readOnly, back.widget, back.visibleIf, back.requiredIf, back.readOnlyIf]).toEqual([100, true, 'slider', 'tier == "gold"', 'total_spent != () && total_spent > 10.0', null]);
    const money = fieldToSchema({ ...newField('money', [], { en: 'Price' }) });
    expect(money).toMatchObject({ type: 'object', 'x-trellis': { kind: 'money', currency: 'CNY' } });
  });

  it('reports design problems before publishing', () => {
    const design = { id: 'e', label: {}, labelPlural: {}, titleField: null, original: {}, fields: [
      { ...newField('relation_one', [], {}), id: 'link' },
      { ...newField('single_select', [], {}), id: 'Bad Id', options: [] },
    ] };
    const problems = designProblems(design, ['customer']).map((p) => `${p.field}:${p.message}`);
    expect(problems).toEqual(['link:relation', 'Bad Id:id', 'Bad Id:options']);
  });
});

describe('flow designer', () => {
  it('lays out states by distance from the initial state', () => {
    const flow = newFlow('f', 'e', 'status', { en: 'F' });
    flow.states.push({ id: 'review', label: { en: 'Review' } }, { id: 'orphan' });
    flow.transitions.push({ event: 'send', from: ['new'], to: 'review' });
    const at = autoLayout(flow);
    expect(at.new.x).toBeLessThan(at.review.x);
    expect(at.done.x).toBe(at.review.x);
    expect(at.orphan.x).toBeGreaterThan(at.review.x);
    expect(autoLayout(flow, { new: { x: 5, y: 6 } }).new).toEqual({ x: 5, y: 6 });
  });

  it('keeps the state field options in step with the states', () => {
    const flow = newFlow('f', 'e', 'status', { en: 'F' });
    const field = syncStateField({ type: 'string', enum: ['new'], 'x-trellis': { options: [{ value: 'new', label: { en: 'Fresh' } }] } }, flow);
    expect(field.enum).toEqual(['new', 'done']);
    expect((field['x-trellis'] as { options: { label: unknown }[] }).options[0].label).toEqual({ en: 'Fresh' });
    expect(field.default).toBe('new');
    expect(tidyFlow({ ...flow, timers: [] })).not.toHaveProperty('timers');
    // What the panels set survives tidying; empty optional parts are left out.
    const approval = { assignees: { role: 'app_admin' }, mode: { percent: 60 }, approve_event: 'finish', reject_to: 'new', title: { en: 'Approve' } };
    const tidy = tidyFlow({ ...flow, states: [{ ...flow.states[0], approval, sla: '', color: null }, flow.states[1]], timers: [{ state: 'new', event: 'finish', after: '7d' }] });
    expect(tidy.states[0]).toEqual({ id: 'new', label: { en: 'New', 'zh-CN': '新建' }, initial: true, approval });
    expect(tidy.timers).toEqual([{ state: 'new', event: 'finish', after: '7d' }]);
    expect(tidy.transitions[0]).toEqual({ event: 'finish', from: ['new'], to: 'done', label: { en: 'Finish', 'zh-CN': '完成' } });
    // The CLM flows come back from the designer as they went in.
    for (const f of clm.flows) expect(tidyFlow(structuredClone(f.raw) as never)).toEqual(f.raw);
  });

  it('finds the event a kanban move fires', () => {
    const lifecycle = clm.flows.find((f) => f.id === 'lifecycle')!.raw;
    expect(eventsBetween(lifecycle, 'growth', 'maturity').map((e) => e.event)).toEqual(['mature']);
    expect(eventsBetween(lifecycle, 'acquisition', 'maturity')).toEqual([]);
    expect(eventsBetween(lifecycle, 'churned', 'growth').map((e) => e.event)).toEqual(['win_back']);
  });
});

describe('client validation', () => {
  it('checks like the server', () => {
    const byId = Object.fromEntries(customer.fields.map((f) => [f.id, f]));
    expect(validateField(byId.name, '', t)).toEqual(['validate.required']);
    expect(validateField(byId.email, 'nope', t)).toEqual(['validate.email']);
    expect(validateField(byId.email, 'a@b.cn', t)).toEqual([]);
    expect(validateField(byId.last_nps, 11, t)).toEqual(['validate.maximum:{"n":10}']);
    expect(validateField(byId.orders_count, 1.5, t)).toEqual(['validate.integer']);
    expect(validateField(byId.lifecycle_stage, 'limbo', t)).toEqual(['validate.option']);
    expect(validateField(byId.health_score, null, t)).toEqual([]);
    expect(Object.keys(validateRecord(customer.fields, { email: 'x' }, t)).sort()).toEqual(['email', 'name']);
  });
});

describe('charts', () => {
  it('paint grouped points with their option colours', async () => {
    const { withOptionColours } = await import('../components/ReportResult');
    const run = { columns: [{ name: 'health_tier', type: 'text' }, { name: 'customers', type: 'integer' }], rows: [['green', 3], ['red', 1], ['mystery', 2]] };
    const option = { series: [{ type: 'pie', data: [{ name: 'Green', value: 3 }, { name: 'Red', value: 1 }, { name: '?', value: 2 }] }] };
    const painted = withOptionColours(option, run, customer) as { series: { data: { itemStyle?: { color: string } }[] }[] };
    const colours = painted.series[0].data.map((d) => d.itemStyle?.color);
    expect(colours[0]).toBe(customer.fields.find((f) => f.id === 'health_tier')!.options.find((o) => o.value === 'green')!.color);
    expect(colours[1]).toMatch(/^#/);
    expect(colours[2]).toBeUndefined();
    const bars = withOptionColours({ series: [{ type: 'bar', data: [3, 1] }] }, run, customer) as { series: { data: { value: number }[] }[] };
    expect(bars.series[0].data[0].value).toBe(3);
    // Two series, or a grouping without colours: unchanged.
    const two = { series: [{ data: [1] }, { data: [2] }] };
    expect(withOptionColours(two, run, customer)).toBe(two);
  });
});
