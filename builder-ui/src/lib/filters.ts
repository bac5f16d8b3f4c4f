// The visual filter builder's model: rows of (field, operator, value) joined by "all" or "any",
// turned into the server's JSON filter tree. Operators offered depend on the field kind, exactly as
// the server accepts them.
import type { FieldKind, FieldMeta } from './metadata';

export type FilterOp = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte' | 'in' | 'contains' | 'starts_with' | 'is_empty' | 'between';

export interface Condition {
  field: string;
  op: FilterOp;
  value?: unknown;
}

export interface FilterModel {
  join: 'and' | 'or';
  conditions: Condition[];
}

export type FilterTree =
  | { and: FilterTree[] }
  | { or: FilterTree[] }
  | { not: FilterTree }
  | { field: string; op: FilterOp; value: unknown };

const ORDERED: FilterOp[] = ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'between', 'in', 'is_empty'];
const TEXT: FilterOp[] = ['eq', 'ne', 'contains', 'starts_with', 'in', 'is_empty'];
const CHOICE: FilterOp[] = ['eq', 'ne', 'in', 'is_empty'];
const LIST: FilterOp[] = ['contains', 'is_empty'];

export function opsFor(kind: FieldKind): FilterOp[] {
  switch (kind) {
    case 'integer': case 'decimal': case 'percent': case 'rating': case 'date': case 'datetime':
    case 'created_at': case 'updated_at': case 'money':
      return ORDERED;
    case 'boolean':
      return ['eq', 'is_empty'];
    case 'single_select': case 'user': case 'relation_one': case 'created_by': case 'updated_by':
      return CHOICE;
    case 'multi_select': case 'tags': case 'relation_many':
      return LIST;
    case 'json': case 'file':
      return ['is_empty'];
    default:
      return TEXT;
  }
}

/** Whether a condition is complete enough to send. */
export function isComplete(c: Condition): boolean {
  if (!c.field || !c.op) return false;
  if (c.op === 'is_empty') return typeof c.value === 'boolean';
  if (c.op === 'in') return Array.isArray(c.value) && c.value.length > 0;
  if (c.op === 'between') return Array.isArray(c.value) && c.value.length === 2 && c.value.every((v) => v !== null && v !== undefined && v !== '');
  return c.value !== undefined && c.value !== null && c.value !== '';
}

/** The filter tree of the complete conditions; `null` when there is nothing to filter by. */
export function toFilterTree(model: FilterModel, fields: FieldMeta[]): FilterTree | null {
  const known = new Set(fields.map((f) => f.id).concat(['id']));
  const parts = model.conditions
    .filter((c) => known.has(c.field.split('.')[0]) && isComplete(c))
    .map((c) => ({ field: c.field, op: c.op, value: c.op === 'is_empty' ? c.value : c.value }) as FilterTree);
  if (parts.length === 0) return null;
  return model.join === 'or' ? { or: parts } : { and: parts };
}

/** Back from a tree the builder wrote (used for saved views); other trees give `null`. */
export function fromFilterTree(tree: unknown): FilterModel | null {
  if (!tree || typeof tree !== 'object') return null;
  const node = tree as Record<string, unknown>;
  const join = 'and' in node ? 'and' : 'or' in node ? 'or' : null;
  if (!join) return null;
  const list = node[join];
  if (!Array.isArray(list)) return null;
  const conditions: Condition[] = [];
  for (const item of list) {
    if (!item || typeof item !== 'object' || !('field' in item)) return null;
    const c = item as Condition;
    conditions.push({ field: c.field, op: c.op, value: c.value });
  }
  return { join, conditions };
}

/** `-field,field` from antd's sorter state. */
export function toSortParam(field: string | undefined, order: 'ascend' | 'descend' | null | undefined): string | undefined {
  if (!field || !order) return undefined;
  return order === 'descend' ? `-${field}` : field;
}
