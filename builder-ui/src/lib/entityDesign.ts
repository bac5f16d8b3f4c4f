// The entity designer's model and its round trip to the entity's JSON Schema: a designed field
// becomes a property with the right type/format and `x-trellis` annotations; keys the designer does
// not manage (stable uids, auto-number patterns, …) are kept as they were.
import { fieldFromSchema, type FieldKind, type JsonSchema, type OptionMeta } from './metadata';

export interface FieldDesign {
  id: string;
  kind: FieldKind;
  label: Record<string, string>;
  help: Record<string, string>;
  required: boolean;
  unique: boolean;
  options: OptionMeta[];
  relation: string | null;
  minimum: number | null;
  maximum: number | null;
  minLength: number | null;
  maxLength: number | null;
  pattern: string | null;
  computed: string | null;
  defaultValue: unknown;
  readOnly: boolean;
  widget: string | null;
  visibleIf: string | null;
  requiredIf: string | null;
  readOnlyIf: string | null;
  currency: string | null;
  searchable: boolean | null;
  /** The property as loaded (unmanaged keys survive a save). */
  original: JsonSchema;
}

export interface EntityDesign {
  id: string;
  label: Record<string, string>;
  labelPlural: Record<string, string>;
  titleField: string | null;
  fields: FieldDesign[];
  original: JsonSchema;
}

/** Kinds offered in the designer's palette, in palette order. */
export const PALETTE: FieldKind[] = [
  'text', 'long_text', 'integer', 'decimal', 'percent', 'money', 'boolean', 'date', 'datetime',
  'email', 'phone', 'url', 'single_select', 'multi_select', 'tags', 'rating', 'relation_one',
  'relation_many', 'user', 'auto_number', 'created_at', 'created_by',
];

const ID = /^[a-z][a-z0-9_]{0,62}$/;

export function isIdentifier(id: string): boolean {
  return ID.test(id);
}

function text(value: unknown): Record<string, string> {
  if (value && typeof value === 'object') return { ...(value as Record<string, string>) };
  if (typeof value === 'string') return { en: value };
  return {};
}

function num(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

export function designFromSchema(id: string, schema: JsonSchema): EntityDesign {
  const x = (schema['x-trellis'] as Record<string, unknown> | undefined) ?? {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
  return {
    id,
    label: text(x.label ?? schema.title ?? id),
    labelPlural: text(x.label_plural ?? x.label ?? id),
    titleField: (x.title_field as string | undefined) ?? null,
    original: schema,
    fields: Object.entries(properties).map(([fid, p]) => {
      const meta = fieldFromSchema(fid, p, required.has(fid));
      const px = (p['x-trellis'] as Record<string, unknown> | undefined) ?? {};
      return {
        id: fid,
        kind: meta.kind,
        label: text(px.label ?? fid),
        help: text(px.help),
        required: required.has(fid),
        unique: px.unique === true,
        options: meta.options.map((o) => ({ ...o })),
        relation: meta.relation?.entity ?? null,
        minimum: num(p.minimum),
        maximum: num(p.maximum),
        minLength: num(p.minLength),
        maxLength: num(p.maxLength),
        pattern: typeof p.pattern === 'string' && meta.kind !== 'auto_number' ? p.pattern : null,
        computed: meta.computed ?? null,
        defaultValue: p.default,
        readOnly: px.read_only === true,
        widget: meta.widget ?? null,
        visibleIf: meta.visibleIf ?? null,
        requiredIf: meta.requiredIf ?? null,
        readOnlyIf: meta.readOnlyIf ?? null,
        currency: meta.currency ?? null,
        searchable: typeof px.searchable === 'boolean' ? px.searchable : null,
        original: p,
      };
    }),
  };
}

/** A new field of `kind` with an id not yet used. */
export function newField(kind: FieldKind, taken: string[], label: Record<string, string>): FieldDesign {
  let n = 1;
  while (taken.includes(`${kind}_${n}`)) n += 1;
  return {
    id: `${kind}_${n}`,
    kind,
    label,
    help: {},
    required: false,
    unique: false,
    options: kind === 'single_select' || kind === 'multi_select' ? [{ value: 'option_1', label: { en: 'Option 1', 'zh-CN': '选项 1' } }] : [],
    relation: null,
    minimum: kind === 'rating' ? 1 : null,
    maximum: kind === 'rating' ? 5 : null,
    minLength: null,
    maxLength: null,
    pattern: null,
    computed: null,
    defaultValue: undefined,
    readOnly: false,
    widget: null,
    visibleIf: null,
    requiredIf: null,
    readOnlyIf: null,
    currency: kind === 'money' ? 'CNY' : null,
    searchable: null,
    original: {},
  };
}

const MANAGED = ['type', 'format', 'enum', 'items', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern'];

function baseSchema(kind: FieldKind): JsonSchema {
  switch (kind) {
    case 'integer': case 'rating': return { type: 'integer' };
    case 'decimal': case 'percent': return { type: 'number' };
    case 'money': return { type: 'object' };
    case 'boolean': return { type: 'boolean' };
    case 'date': return { type: 'string', format: 'date' };
    case 'datetime': return { type: 'string', format: 'date-time' };
    case 'duration': return { type: 'string', format: 'duration' };
    case 'email': return { type: 'string', format: 'email' };
    case 'url': return { type: 'string', format: 'uri' };
    case 'multi_select': case 'tags': case 'relation_many': return { type: 'array', items: { type: 'string' } };
    case 'json': return {};
    default: return { type: 'string' };
  }
}

function clean(text: Record<string, string>): Record<string, string> | undefined {
  const out = Object.fromEntries(Object.entries(text).filter(([, v]) => v && v.trim() !== ''));
  return Object.keys(out).length ? out : undefined;
}

export function fieldToSchema(field: FieldDesign): JsonSchema {
  const property: JsonSchema = { ...field.original };
  const loadedKind = Object.keys(field.original).length ? fieldFromSchema(field.id, field.original, false).kind : null;
  // A new kind starts from a clean schema; the same kind keeps what the designer does not manage.
  if (loadedKind !== field.kind) for (const key of MANAGED) delete property[key];
  Object.assign(property, baseSchema(field.kind));
  for (const key of ['minimum', 'maximum', 'minLength', 'maxLength', 'pattern'] as const) {
    const value = field[key];
    if (value === null || value === undefined || value === '') delete property[key];
    else property[key] = value;
  }
  const x: Record<string, unknown> = { ...((field.original['x-trellis'] as Record<string, unknown>) ?? {}) };
  x.kind = field.kind;
  x.label = clean(field.label) ?? { en: field.id };
  const help = clean(field.help);
  if (help) x.help = help; else delete x.help;
  if (field.unique) x.unique = true; else delete x.unique;
  if (field.computed && field.computed.trim()) x.computed = field.computed; else delete x.computed;
  const optional: [string, unknown][] = [
    ['widget', field.widget], ['visible_if', field.visibleIf], ['required_if', field.requiredIf],
    ['read_only_if', field.readOnlyIf], ['currency', field.currency],
  ];
  for (const [key, value] of optional) {
    if (typeof value === 'string' && value.trim()) x[key] = value; else delete x[key];
  }
  if (field.readOnly) x.read_only = true; else delete x.read_only;
  if (typeof field.searchable === 'boolean') x.searchable = field.searchable; else delete x.searchable;
  if (field.defaultValue === undefined || field.defaultValue === null || field.defaultValue === '') delete property.default;
  else property.default = field.defaultValue;
  if (field.kind === 'single_select' || field.kind === 'multi_select') {
    const values = field.options.map((o) => o.value);
    if (field.kind === 'single_select') property.enum = values;
    else property.items = { type: 'string', enum: values };
    x.options = field.options.map((o) => ({ value: o.value, label: o.label, ...(o.color ? { color: o.color } : {}) }));
  } else {
    delete property.enum;
    delete x.options;
  }
  if (field.kind === 'relation_one' || field.kind === 'relation_many') {
    const previous = (x.relation as Record<string, unknown> | undefined) ?? {};
    x.relation = { ...previous, entity: field.relation ?? '', on_delete: previous.on_delete ?? 'set_null' };
  } else {
    delete x.relation;
  }
  if (field.kind === 'auto_number' && typeof x.pattern !== 'string') x.pattern = '{0000}';
  property['x-trellis'] = x;
  return property;
}

export function entityToSchema(design: EntityDesign): JsonSchema {
  const x: Record<string, unknown> = { format_version: 1, ...((design.original['x-trellis'] as Record<string, unknown>) ?? {}) };
  x.label = clean(design.label) ?? { en: design.id };
  x.label_plural = clean(design.labelPlural) ?? x.label;
  if (design.titleField && design.fields.some((f) => f.id === design.titleField)) x.title_field = design.titleField;
  else delete x.title_field;
  const schema: JsonSchema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    ...design.original,
    title: (clean(design.label) ?? {}).en ?? design.id,
    type: 'object',
    'x-trellis': x,
    properties: Object.fromEntries(design.fields.map((f) => [f.id, fieldToSchema(f)])),
  };
  const required = design.fields.filter((f) => f.required).map((f) => f.id);
  if (required.length) schema.required = required;
  else delete schema.required;
  return schema;
}

/** Problems the designer shows before publishing (the server checks again, and more). */
export function designProblems(design: EntityDesign, entities: string[]): { field: string | null; message: string }[] {
  const problems: { field: string | null; message: string }[] = [];
  const seen = new Set<string>();
  for (const f of design.fields) {
    if (!isIdentifier(f.id)) problems.push({ field: f.id, message: 'id' });
    if (seen.has(f.id)) problems.push({ field: f.id, message: 'duplicate' });
    seen.add(f.id);
    if ((f.kind === 'relation_one' || f.kind === 'relation_many') && (!f.relation || !entities.includes(f.relation))) problems.push({ field: f.id, message: 'relation' });
    if ((f.kind === 'single_select' || f.kind === 'multi_select') && f.options.length === 0) problems.push({ field: f.id, message: 'options' });
    if (new Set(f.options.map((o) => o.value)).size !== f.options.length) problems.push({ field: f.id, message: 'optionValues' });
  }
  return problems;
}
