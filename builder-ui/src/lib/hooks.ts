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

/** Titles of related records, fetched in one request per entity. */
export function useRecordTitles(app: string, meta: AppMeta | undefined, entity: string | undefined, ids: string[]) {
  const unique = [...new Set(ids.filter(Boolean))].sort();
  return useQuery({
    queryKey: ['titles', app, entity, unique],
    enabled: Boolean(meta && entity && unique.length > 0),
    queryFn: async () => {
      const target = entityById(meta!, entity!);
      const titles: Record<string, string> = {};
      for (let i = 0; i < unique.length; i += 200) {
        const chunk = unique.slice(i, i + 200);
        const page = await api.get<RecordPage>(recordsPath(app, entity!), {
          query: { filter: JSON.stringify({ field: 'id', op: 'in', value: chunk }), limit: 1000 },
        });
        for (const r of page.items) titles[r.id] = recordTitle(target, r);
      }
      return titles;
    },
    staleTime: 30_000,
  });
}
