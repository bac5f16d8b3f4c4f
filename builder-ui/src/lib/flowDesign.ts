// The flow designer's model: the flow document itself (states, transitions, timers), canvas
// positions (kept in a `flow_canvas` view beside the flow), an automatic layered layout for states
// without a position, and keeping the state field's options in step with the states.
import type { JsonSchema } from './metadata';

export interface FlowState { id: string; label?: Record<string, string>; initial?: boolean; terminal?: boolean; color?: string | null; sla?: string | null; approval?: object | null }
export interface FlowTransition { event: string; from: string[]; to: string; label?: Record<string, string>; guard?: string | null; roles?: string[]; required?: string[]; actions?: Record<string, unknown>[] }
export interface FlowTimer { state: string; event: string; after?: string | null; at_field?: string | null; cron?: string | null }
export interface FlowDoc {
  format_version: number;
  id: string;
  label?: Record<string, string>;
  entity: string;
  state_field: string;
  states: FlowState[];
  transitions: FlowTransition[];
  timers?: FlowTimer[];
  [key: string]: unknown;
}

export type Positions = Record<string, { x: number; y: number }>;

/** Layers by distance from the initial state (breadth first); unreachable states go last. */
export function autoLayout(flow: FlowDoc, known: Positions = {}): Positions {
  const out: Positions = { ...known };
  const initial = flow.states.find((s) => s.initial) ?? flow.states[0];
  const depth = new Map<string, number>();
  if (initial) {
    depth.set(initial.id, 0);
    const queue = [initial.id];
    while (queue.length) {
      const at = queue.shift()!;
      for (const t of flow.transitions) {
        if ((t.from.length === 0 || t.from.includes(at)) && !depth.has(t.to)) {
          depth.set(t.to, depth.get(at)! + 1);
          queue.push(t.to);
        }
      }
    }
  }
  const maxDepth = Math.max(0, ...depth.values());
  const rows = new Map<number, number>();
  for (const s of flow.states) {
    if (out[s.id]) continue;
    const d = depth.get(s.id) ?? maxDepth + 1;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    out[s.id] = { x: 40 + d * 230, y: 40 + row * 120 };
  }
  return out;
}

/** The state field's schema with an option for every state (existing options and labels kept). */
export function syncStateField(property: JsonSchema | undefined, flow: FlowDoc): JsonSchema {
  const p: JsonSchema = { ...(property ?? { type: 'string' }) };
  const x: Record<string, unknown> = { ...((p['x-trellis'] as Record<string, unknown>) ?? {}) };
  const options = [...((x.options as { value: string; label?: unknown; color?: string }[] | undefined) ?? [])];
  for (const s of flow.states) {
    const existing = options.find((o) => o.value === s.id);
    if (existing) {
      if (!existing.label && s.label) existing.label = s.label;
    } else {
      options.push({ value: s.id, label: s.label ?? { en: s.id }, ...(s.color ? { color: s.color } : {}) });
    }
  }
  p.type = 'string';
  p.enum = options.map((o) => o.value);
  x.kind = 'single_select';
  x.options = options;
  if (!x.label) x.label = { en: 'Status', 'zh-CN': '状态' };
  p['x-trellis'] = x;
  const initial = flow.states.find((s) => s.initial);
  if (initial) p.default = initial.id;
  return p;
}

export function newFlow(id: string, entity: string, stateField: string, label: Record<string, string>): FlowDoc {
  return {
    format_version: 1,
    id,
    label,
    entity,
    state_field: stateField,
    states: [
      { id: 'new', label: { en: 'New', 'zh-CN': '新建' }, initial: true, color: '#1677ff' },
      { id: 'done', label: { en: 'Done', 'zh-CN': '完成' }, terminal: true, color: '#52c41a' },
    ],
    transitions: [{ event: 'finish', from: ['new'], to: 'done', label: { en: 'Finish', 'zh-CN': '完成' } }],
  };
}

/** A flow document with empty optional parts left out, as a template author would write it. */
export function tidyFlow(flow: FlowDoc): FlowDoc {
  const out: FlowDoc = { ...flow, states: flow.states.map((s) => prune({ ...s }) as unknown as FlowState), transitions: flow.transitions.map((t) => prune({ ...t }) as unknown as FlowTransition) };
  if (!out.timers || out.timers.length === 0) delete out.timers;
  return out;
}

function prune(o: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(o)) {
    if (v === null || v === undefined || v === '' || v === false || (Array.isArray(v) && v.length === 0 && k !== 'from')) delete o[k];
  }
  return o;
}
