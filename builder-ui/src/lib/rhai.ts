// The rule builder's visual conditions, written as rhai for the rule engine: rows of
// (field, comparison, value) joined by && or ||. Conditions the builder wrote are read back;
// anything else stays in the code view for experts.
import type { FieldMeta } from './metadata';

export type Comparison = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'is_empty' | 'not_empty' | 'contains' | 'changed';

export interface RhaiCondition {
  field: string;
  cmp: Comparison;
  value?: string | number | boolean | null;
}

export interface RhaiModel {
  join: '&&' | '||';
  conditions: RhaiCondition[];
}

const NUMERIC = new Set(['integer', 'decimal', 'percent', 'rating']);

export function literal(field: FieldMeta | undefined, value: RhaiCondition['value']): string {
  if (value === null || value === undefined) return '()';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' || (field && NUMERIC.has(field.kind) && value !== '' && !Number.isNaN(Number(value)))) {
    const n = Number(value);
    return field?.kind === 'integer' || field?.kind === 'rating' ? String(Math.trunc(n)) : String(n).includes('.') ? String(n) : `${n}.0`;
  }
  return JSON.stringify(String(value));
}

function one(c: RhaiCondition, fields: FieldMeta[]): string {
  const field = fields.find((f) => f.id === c.field);
  switch (c.cmp) {
    case 'is_empty': return `${c.field} == ()`;
    case 'not_empty': return `${c.field} != ()`;
    case 'contains': return `${c.field} != () && ${c.field}.contains(${literal(undefined, String(c.value ?? ''))})`;
    case 'changed': return `before != () && before.${c.field} != ${c.field}`;
    default: {
      const lit = literal(field, c.value ?? null);
      if (['<', '<=', '>', '>='].includes(c.cmp)) return `${c.field} != () && ${c.field} ${c.cmp} ${lit}`;
      return `${c.field} ${c.cmp} ${lit}`;
    }
  }
}

/** The rhai text of the model; empty conditions give `""` (the rule always matches). */
export function toRhai(model: RhaiModel, fields: FieldMeta[]): string {
  const parts = model.conditions.filter((c) => c.field).map((c) => one(c, fields));
  if (parts.length === 0) return '';
  if (parts.length === 1) return parts[0];
  return parts.map((p) => `(${p})`).join(` ${model.join} `);
}

/** Read back a condition this builder wrote; `null` for hand-written rhai. */
export function fromRhai(text: string, fields: FieldMeta[]): RhaiModel | null {
  const source = text.trim();
  if (!source) return { join: '&&', conditions: [] };
  for (const join of ['&&', '||'] as const) {
    for (const candidate of [{ join, conditions: [] as RhaiCondition[] }]) {
      const pieces = source.startsWith('(') ? source.slice(1, -1).split(`) ${join} (`) : [source];
      for (const piece of pieces) {
        const c = parseOne(piece.trim());
        if (!c) break;
        candidate.conditions.push(c);
      }
      if (candidate.conditions.length === pieces.length && toRhai(candidate, fields) === source) return candidate;
    }
  }
  return null;
}

function parseOne(piece: string): RhaiCondition | null {
  let m = /^([a-z][a-z0-9_]*) == \(\)$/.exec(piece);
  if (m) return { field: m[1], cmp: 'is_empty' };
  m = /^([a-z][a-z0-9_]*) != \(\)$/.exec(piece);
  if (m) return { field: m[1], cmp: 'not_empty' };
  m = /^before != \(\) && before\.([a-z][a-z0-9_]*) != \1$/.exec(piece);
  if (m) return { field: m[1], cmp: 'changed' };
  m = /^([a-z][a-z0-9_]*) != \(\) && \1\.contains\((".*")\)$/.exec(piece);
  if (m) return { field: m[1], cmp: 'contains', value: JSON.parse(m[2]) as string };
  m = /^(?:([a-z][a-z0-9_]*) != \(\) && )?([a-z][a-z0-9_]*) (==|!=|<=|>=|<|>) (.+)$/.exec(piece);
  if (m && (!m[1] || m[1] === m[2])) {
    const raw = m[4];
    let value: RhaiCondition['value'];
    if (raw === 'true' || raw === 'false') value = raw === 'true';
    else if (raw === '()') value = null;
    else if (raw.startsWith('"')) value = JSON.parse(raw) as string;
    else if (!Number.isNaN(Number(raw))) value = Number(raw);
    else return null;
    return { field: m[2], cmp: m[3] as Comparison, value };
  }
  return null;
}

function compare(cmp: Comparison, left: unknown, right: unknown): boolean {
  const empty = left === undefined || left === null || left === '';
  switch (cmp) {
    case 'is_empty': return empty;
    case 'not_empty': return !empty;
    case 'contains': return !empty && (Array.isArray(left) ? left.includes(right) : String(left).includes(String(right)));
    case 'changed': return true;
    case '==': return (empty && right === null) || left === right;
    case '!=': return !((empty && right === null) || left === right);
    default: {
      if (empty) return false;
      const a = typeof left === 'number' ? left : String(left);
      const b = typeof right === 'number' ? right : String(right);
      if (cmp === '<') return a < b;
      if (cmp === '<=') return a <= b;
      if (cmp === '>') return a > b;
      return a >= b;
    }
  }
}

/**
 * Evaluate a condition on a form's values in the browser, for conditions the builder can read
 * (others: `null`, the server decides). Used for conditional visibility, required and read-only.
 */
export function evaluate(text: string | undefined, data: Record<string, unknown>, fields: FieldMeta[]): boolean | null {
  if (!text || !text.trim()) return null;
  const model = fromRhai(text, fields);
  if (!model || model.conditions.length === 0) return null;
  const results = model.conditions.map((c) => compare(c.cmp, data[c.field], c.value ?? null));
  return model.join === '&&' ? results.every(Boolean) : results.some(Boolean);
}
