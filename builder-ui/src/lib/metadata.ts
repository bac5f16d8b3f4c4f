// App metadata as the UI needs it, read from the app's bundle (`GET /api/apps/{app}/bundle`):
// entities with their fields (kind inferred exactly as the server's `FieldKind::infer` does),
// flows, views, reports and rules. Pure functions, unit-tested.

export type Localized = Record<string, string> | string | null | undefined;

/** Pick the text for `lang`, falling back to English, then to any language. */
export function loc(text: Localized, lang: string, fallback = ''): string {
  if (text === null || text === undefined) return fallback;
  if (typeof text === 'string') {
    // Task titles travel as JSON-encoded localized text.
    if (text.startsWith('{')) {
      try {
        return loc(JSON.parse(text) as Record<string, string>, lang, text);
      } catch {
        return text;
      }
    }
    return text;
  }
  return text[lang] ?? text[lang.split('-')[0]] ?? text.en ?? Object.values(text)[0] ?? fallback;
}

export const FIELD_KINDS = [
  'text', 'long_text', 'rich_text', 'integer', 'decimal', 'money', 'percent', 'boolean', 'date',
  'datetime', 'duration', 'email', 'phone', 'url', 'single_select', 'multi_select', 'tags', 'rating',
  'relation_one', 'relation_many', 'user', 'file', 'json', 'auto_number', 'created_at', 'updated_at',
  'created_by', 'updated_by',
] as const;
export type FieldKind = (typeof FIELD_KINDS)[number];

export const SYSTEM_KINDS: ReadonlySet<FieldKind> = new Set([
  'auto_number', 'created_at', 'updated_at', 'created_by', 'updated_by',
]);

export type JsonSchema = Record<string, unknown>;

export interface OptionMeta {
  value: string;
  label: Localized;
  color?: string;
}

export interface FieldMeta {
  id: string;
  kind: FieldKind;
  label: Localized;
  help: Localized;
  required: boolean;
  /** The system or a formula fills it in; forms show it read-only. */
  readOnly: boolean;
  computed?: string;
  options: OptionMeta[];
  relation?: { entity: string; on_delete?: string };
  /** rhai conditions: shown / required / read-only only when they hold. */
  visibleIf?: string;
  requiredIf?: string;
  readOnlyIf?: string;
  widget?: string;
  currency?: string;
  schema: JsonSchema;
}

export interface EntityMeta {
  id: string;
  label: Localized;
  labelPlural: Localized;
  titleField: string | null;
  fields: FieldMeta[];
  schema: JsonSchema;
}

export interface FlowMeta {
  id: string;
  entity: string;
  field: string | null;
  label: Localized;
  raw: Record<string, unknown>;
  states: { id: string; label: Localized; color?: string }[];
}

export interface ViewMeta {
  id: string;
  kind: string;
  entity: string | null;
  label: Localized;
  raw: Record<string, unknown>;
}

export interface AppMeta {
  manifest: Record<string, unknown>;
  entities: EntityMeta[];
  flows: FlowMeta[];
  views: ViewMeta[];
  reports: { id: string; entity: string | null; label: Localized; raw: Record<string, unknown> }[];
  rules: { id: string; label: Localized; raw: Record<string, unknown> }[];
}

export type Bundle = Record<string, unknown>;

/** The server's inference of a field kind from its JSON Schema (`FieldKind::infer`). */
export function inferKind(property: JsonSchema): FieldKind {
  const ty = property.type;
  const format = property.format;
  if (ty === 'string') {
    if (format === 'email') return 'email';
    if (format === 'uri' || format === 'iri') return 'url';
    if (format === 'date') return 'date';
    if (format === 'date-time') return 'datetime';
    if (format === 'duration') return 'duration';
    if ('enum' in property) return 'single_select';
    return 'text';
  }
  if (ty === 'integer') return 'integer';
  if (ty === 'number') return 'decimal';
  if (ty === 'boolean') return 'boolean';
  if (ty === 'array') {
    const items = property.items as JsonSchema | undefined;
    if (items && 'enum' in items) return 'multi_select';
    if (items?.type === 'string') return 'tags';
  }
  return 'json';
}

function annotations(schema: JsonSchema): Record<string, unknown> {
  return (schema['x-trellis'] as Record<string, unknown> | undefined) ?? {};
}

export function fieldFromSchema(id: string, property: JsonSchema, required: boolean): FieldMeta {
  const x = annotations(property);
  const declared = x.kind as FieldKind | undefined;
  const kind = declared && (FIELD_KINDS as readonly string[]).includes(declared) ? declared : inferKind(property);
  let options = (x.options as OptionMeta[] | undefined) ?? [];
  const values = (property.enum ?? (property.items as JsonSchema | undefined)?.enum) as string[] | undefined;
  if (options.length === 0 && Array.isArray(values)) {
    options = values.map((value) => ({ value, label: value }));
  }
  const computed = typeof x.computed === 'string' ? x.computed : undefined;
  return {
    id,
    kind,
    label: (x.label as Localized) ?? id,
    help: (x.help as Localized) ?? null,
    required,
    readOnly: SYSTEM_KINDS.has(kind) || computed !== undefined || x.read_only === true,
    computed,
    options,
    relation: x.relation as FieldMeta['relation'],
    visibleIf: typeof x.visible_if === 'string' ? x.visible_if : undefined,
    requiredIf: typeof x.required_if === 'string' ? x.required_if : undefined,
    readOnlyIf: typeof x.read_only_if === 'string' ? x.read_only_if : undefined,
    widget: typeof x.widget === 'string' ? x.widget : undefined,
    currency: typeof x.currency === 'string' ? x.currency : undefined,
    schema: property,
  };
}

export function entityFromSchema(id: string, schema: JsonSchema): EntityMeta {
  const x = annotations(schema);
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
  return {
    id,
    label: (x.label as Localized) ?? (schema.title as string) ?? id,
    labelPlural: (x.label_plural as Localized) ?? (x.label as Localized) ?? id,
    titleField: (x.title_field as string | undefined) ?? null,
    fields: Object.entries(properties).map(([fid, p]) => fieldFromSchema(fid, p, required.has(fid))),
    schema,
  };
}

function stem(path: string, folder: string, suffix: string): string | null {
  if (!path.startsWith(folder) || !path.endsWith(suffix)) return null;
  return path.slice(folder.length, path.length - suffix.length);
}

export function parseBundle(bundle: Bundle): AppMeta {
  const meta: AppMeta = {
    manifest: (bundle['trellis.json'] as Record<string, unknown>) ?? {},
    entities: [],
    flows: [],
    views: [],
    reports: [],
    rules: [],
  };
  for (const [path, value] of Object.entries(bundle).sort(([a], [b]) => a.localeCompare(b))) {
    const doc = (value ?? {}) as Record<string, unknown>;
    let id: string | null;
    if ((id = stem(path, 'entities/', '.schema.json'))) {
      meta.entities.push(entityFromSchema(id, doc));
    } else if ((id = stem(path, 'flows/', '.flow.json'))) {
      const states = ((doc.states as Record<string, unknown>[] | undefined) ?? []).map((s) => ({
        id: String(s.id),
        label: (s.label as Localized) ?? String(s.id),
        color: s.color as string | undefined,
      }));
      meta.flows.push({
        id,
        entity: String(doc.entity ?? ''),
        field: (doc.state_field as string | undefined) ?? (doc.field as string | undefined) ?? null,
        label: (doc.label as Localized) ?? id,
        raw: doc,
        states,
      });
    } else if ((id = stem(path, 'views/', '.view.json'))) {
      meta.views.push({
        id,
        kind: String(doc.kind ?? ''),
        entity: (doc.entity as string | undefined) ?? null,
        label: (doc.label as Localized) ?? id,
        raw: doc,
      });
    } else if ((id = stem(path, 'reports/', '.report.json'))) {
      const dataset = doc.dataset as Record<string, unknown> | undefined;
      meta.reports.push({
        id,
        entity: (doc.entity as string | undefined) ?? (dataset?.entity as string | undefined) ?? null,
        label: (doc.label as Localized) ?? id,
        raw: doc,
      });
    } else if ((id = stem(path, 'rules/', '.rule.json'))) {
      meta.rules.push({ id, label: (doc.label as Localized) ?? id, raw: doc });
    }
  }
  return meta;
}

export function entityById(meta: AppMeta, id: string): EntityMeta | undefined {
  return meta.entities.find((e) => e.id === id);
}

/** The record's display title: its title field, else its first text field, else its id. */
export function recordTitle(entity: EntityMeta | undefined, record: { id: string; data: Record<string, unknown> }): string {
  const field = entity?.titleField ?? entity?.fields.find((f) => f.kind === 'text')?.id;
  const value = field ? record.data[field] : undefined;
  return value === undefined || value === null || value === '' ? record.id.slice(0, 8) : String(value);
}

/** Fields a person fills in on a form, in schema order. */
export function editableFields(entity: EntityMeta): FieldMeta[] {
  return entity.fields.filter((f) => !f.readOnly);
}
