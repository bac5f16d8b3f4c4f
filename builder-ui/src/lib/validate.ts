// Client-side checks of a field value against its JSON Schema, mirroring the server's validation
// (required, type, length, range, pattern, email/date formats, options) so forms and the designer's
// live preview show the same errors before anything is sent. The server stays the authority.
import type { FieldMeta } from './metadata';

export type Translate = (key: string, options?: Record<string, unknown>) => string;

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);
}

/** Every problem with `value` for `field`, as translated messages; empty when valid. */
export function validateField(field: FieldMeta, value: unknown, t: Translate): string[] {
  const s = field.schema;
  if (isEmpty(value)) return field.required && !field.readOnly ? [t('validate.required')] : [];
  const problems: string[] = [];
  const type = s.type;
  if (type === 'integer' && !(typeof value === 'number' && Number.isInteger(value))) problems.push(t('validate.integer'));
  if (type === 'number' && typeof value !== 'number') problems.push(t('validate.number'));
  if (type === 'boolean' && typeof value !== 'boolean') problems.push(t('validate.boolean'));
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof s.minLength === 'number' && length < s.minLength) problems.push(t('validate.minLength', { n: s.minLength }));
    if (typeof s.maxLength === 'number' && length > s.maxLength) problems.push(t('validate.maxLength', { n: s.maxLength }));
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) problems.push(t('validate.pattern'));
    if (s.format === 'email' && !EMAIL.test(value)) problems.push(t('validate.email'));
    if (s.format === 'date' && (!DATE.test(value) || Number.isNaN(Date.parse(value)))) problems.push(t('validate.date'));
    if (Array.isArray(s.enum) && !s.enum.includes(value)) problems.push(t('validate.option'));
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) problems.push(t('validate.minimum', { n: s.minimum }));
    if (typeof s.maximum === 'number' && value > s.maximum) problems.push(t('validate.maximum', { n: s.maximum }));
  }
  if (Array.isArray(value)) {
    const items = s.items as Record<string, unknown> | undefined;
    if (items && Array.isArray(items.enum) && value.some((v) => !(items.enum as unknown[]).includes(v))) problems.push(t('validate.option'));
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) problems.push(t('validate.maxItems', { n: s.maxItems }));
  }
  return problems;
}

/** Problems of a whole record, keyed by field id. */
export function validateRecord(fields: FieldMeta[], data: Record<string, unknown>, t: Translate): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const field of fields) {
    const problems = validateField(field, data[field.id], t);
    if (problems.length) out[field.id] = problems;
  }
  return out;
}
