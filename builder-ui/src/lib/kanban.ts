// Kanban moves: which flow event takes a record from one state to another (drag and drop fires it).
export interface Transition {
  event: string;
  from?: string[] | string | null;
  to: string;
  label?: Record<string, string>;
}

export function transitions(flow: Record<string, unknown>): Transition[] {
  return ((flow.transitions as Transition[] | undefined) ?? []).filter((t) => t && typeof t.event === 'string');
}

function leaves(t: Transition, state: string): boolean {
  if (t.from === undefined || t.from === null) return true;
  const from = Array.isArray(t.from) ? t.from : [t.from];
  return from.length === 0 || from.includes(state) || from.includes('*');
}

/** The events that move a record from `from` to `to`, in the flow's order. */
export function eventsBetween(flow: Record<string, unknown>, from: string, to: string): Transition[] {
  if (from === to) return [];
  return transitions(flow).filter((t) => t.to === to && leaves(t, from));
}
