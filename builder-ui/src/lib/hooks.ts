// Shared data hooks (TanStack Query): the app's metadata, the signed-in user, record titles.
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, request, recordsPath, type Me, type RecordPage } from '../api/client';
import { parseBundle, type AppMeta, type Bundle, type Localized, loc, entityById, recordTitle } from './metadata';

export function useLang(): { lang: string; l: (text: Localized, fallback?: string) => string } {
  const { i18n } = useTranslation();
  const lang = i18n.language;
  return { lang, l: (text, fallback) => loc(text, lang, fallback) };
}

export interface LoadedApp {
  meta: AppMeta;
  bundle: Bundle;
  etag: string | null;
}

export function useAppMeta(app: string) {
  return useQuery({
    queryKey: ['bundle', app],
    queryFn: async (): Promise<LoadedApp> => {
      const answer = await request<Bundle>('GET', `/api/apps/${encodeURIComponent(app)}/bundle`);
      return { meta: parseBundle(answer.data), bundle: answer.data, etag: answer.etag };
    },
    staleTime: 60_000,
  });
}

export function useMe() {
  return useQuery({ queryKey: ['me'], queryFn: () => api.get<Me>('/api/auth/me'), staleTime: 300_000 });
}

export interface UserSummary {
  id: string;
  username: string;
  display_name?: string | null;
  /** Where notifications are mailed (platform admins see it). */
  email?: string | null;
  /** `en`, `zh-CN`, or none (notifications in both). */
  locale?: string | null;
}

/** People to show and pick: an app's people (any member may read them), or, without an app, every
 * user of the platform (admins only; others get an empty list). */
export function useUsers(app?: string) {
  return useQuery({
    queryKey: app ? ['people', app] : ['users'],
    queryFn: async () => {
      try {
        const answer = await api.get<UserSummary[] | { items: UserSummary[] }>(app ? `/api/apps/${encodeURIComponent(app)}/people` : '/api/users');
        return Array.isArray(answer) ? answer : answer.items;
      } catch {
        return [] as UserSummary[];
      }
    },
    staleTime: 300_000,
  });
}

/** Titles of the records that the relation fields of `rows` point to, all relations at once. */
export function useRelationTitles(app: string, meta: AppMeta | undefined, fields: { id: string; kind: string; relation?: { entity: string } }[], rows: { data: Record<string, unknown> }[]) {
  const wanted: Record<string, string[]> = {};
  for (const f of fields) {
    if (!f.relation || (f.kind !== 'relation_one' && f.kind !== 'relation_many')) continue;
    const ids = rows.flatMap((r) => {
      const v = r.data[f.id];
      return Array.isArray(v) ? (v as string[]) : typeof v === 'string' && v ? [v] : [];
    });
    (wanted[f.relation.entity] ??= []).push(...ids);
  }
  const key = Object.entries(wanted).map(([e, ids]) => [e, [...new Set(ids)].sort()] as const).filter(([, ids]) => ids.length > 0);
  return useQuery({
    queryKey: ['relation-titles', app, key],
    enabled: Boolean(meta) && key.length > 0,
    queryFn: async () => {
      const titles: Record<string, string> = {};
      await Promise.all(key.map(async ([entity, ids]) => {
        const target = entityById(meta!, entity);
        for (let i = 0; i < ids.length; i += 200) {
          const page = await api.get<RecordPage>(recordsPath(app, entity), {
            query: { filter: JSON.stringify({ field: 'id', op: 'in', value: ids.slice(i, i + 200) }), limit: 1000 },
          });
          for (const r of page.items) titles[r.id] = recordTitle(target, r);
        }
      }));
      return titles;
    },
    staleTime: 30_000,
  });
}
