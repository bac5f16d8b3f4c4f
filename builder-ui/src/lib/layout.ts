// Form layouts: a `form` view of the entity (tabs → sections → columns → fields) or, without one,
// every field a person fills in, in one two-column section. Fields the layout forgets are appended,
// so a field is never unreachable.
import type { EntityMeta, Localized, ViewMeta } from './metadata';

export interface SectionLayout {
  id: string;
  label: Localized;
  columns: number;
  fields: string[];
}

export interface TabLayout {
  id: string;
  label: Localized;
  sections: SectionLayout[];
}

export interface FormLayout {
  tabs: TabLayout[];
}

function section(raw: Record<string, unknown>, index: number): SectionLayout {
  return {
    id: String(raw.id ?? `section_${index + 1}`),
    label: (raw.label as Localized) ?? null,
    columns: Math.min(Math.max(Number(raw.columns ?? 2), 1), 4),
    fields: ((raw.fields as string[] | undefined) ?? []).filter((f) => typeof f === 'string'),
  };
}

export function formLayout(entity: EntityMeta, view: ViewMeta | undefined, includeReadOnly = false): FormLayout {
  const wanted = entity.fields.filter((f) => includeReadOnly || !f.readOnly).map((f) => f.id);
  let tabs: TabLayout[];
  const raw = view?.raw;
  if (raw && Array.isArray(raw.tabs)) {
    tabs = (raw.tabs as Record<string, unknown>[]).map((tab, i) => ({
      id: String(tab.id ?? `tab_${i + 1}`),
      label: (tab.label as Localized) ?? null,
      sections: ((tab.sections as Record<string, unknown>[] | undefined) ?? []).map(section),
    }));
  } else if (raw && Array.isArray(raw.sections)) {
    tabs = [{ id: 'main', label: null, sections: (raw.sections as Record<string, unknown>[]).filter((s) => Array.isArray(s.fields)).map(section) }];
  } else {
    tabs = [{ id: 'main', label: null, sections: [{ id: 'main', label: null, columns: 2, fields: [] }] }];
  }
  const placed = new Set(tabs.flatMap((t) => t.sections.flatMap((s) => s.fields)));
  // Keep only known fields, then add the ones the layout does not place.
  const known = new Set(wanted);
  for (const tab of tabs) for (const s of tab.sections) s.fields = s.fields.filter((f) => known.has(f));
  const missing = wanted.filter((f) => !placed.has(f));
  if (missing.length) {
    const last = tabs[tabs.length - 1];
    if (last.sections.length === 0) last.sections.push({ id: 'more', label: null, columns: 2, fields: [] });
    last.sections[last.sections.length - 1].fields.push(...missing);
  }
  return { tabs };
}

/** The layout as a `form` view document, as the form designer saves it. */
export function layoutToView(entity: string, layout: FormLayout, label: Localized): Record<string, unknown> {
  return {
    format_version: 1,
    id: `${entity}_form`,
    kind: 'form',
    entity,
    label,
    tabs: layout.tabs.map((tab) => ({
      id: tab.id,
      label: tab.label ?? undefined,
      sections: tab.sections.map((s) => ({ id: s.id, label: s.label ?? undefined, columns: s.columns, fields: s.fields })),
    })),
  };
}
