// The flows on a record: current state, every event as a button (disabled with the server's reason
// when it is not allowed), firing an event, and the flow's history.
import { App as AntApp, Button, Card, Space, Tag, Timeline, Tooltip, Typography } from 'antd';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, recordsPath } from '../api/client';
import type { AppMeta } from '../lib/metadata';
import { useLang, useMe, useUsers } from '../lib/hooks';
import { problemText } from './ProblemAlert';

export interface FlowEvent { event: string; to: string; allowed: boolean; reason?: string }
export interface FlowHistory { seq: number; event: string; from_state: string | null; to_state: string; actor: string; at: string }
export interface RecordFlow { flow: string; state: string; events: FlowEvent[]; history: FlowHistory[] }

export function useRecordFlows(app: string, entity: string, id: string) {
  return useQuery({
    queryKey: ['flows', app, entity, id],
    queryFn: async () => (await api.get<{ items: RecordFlow[] }>(`${recordsPath(app, entity, id)}/flows`)).items,
  });
}

export function FlowPanel({ app, entity, id, meta }: { app: string; entity: string; id: string; meta: AppMeta }) {
  const { t } = useTranslation();
  const { l } = useLang();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const flows = useRecordFlows(app, entity, id);
  const users = useUsers(app);
  const me = useMe();
  const who = (actor: string) => actor === me.data?.id ? t('flow.you') : users.data?.find((u) => u.id === actor)?.display_name ?? users.data?.find((u) => u.id === actor)?.username ?? (actor.length > 20 ? t('flow.someone') : actor);
  const fire = useMutation({
    mutationFn: ({ flow, event }: { flow: string; event: string }) => api.post(`${recordsPath(app, entity, id)}/flows/${flow}/events`, { event }),
    onSuccess: () => {
      message.success(t('flow.fired'));
      void queryClient.invalidateQueries({ queryKey: ['flows', app, entity, id] });
      void queryClient.invalidateQueries({ queryKey: ['record', app, entity, id] });
      void queryClient.invalidateQueries({ queryKey: ['tasks', app] });
    },
    onError: (e) => message.error(problemText(e)),
  });
  if (!flows.data?.length) return null;
  return (
    <>
      {flows.data.map((f) => {
        const flow = meta.flows.find((x) => x.id === f.flow);
        const stateLabel = (s: string | null) => {
          const st = flow?.states.find((x) => x.id === s);
          return st ? l(st.label, s ?? '') : s ?? '—';
        };
        const eventLabel = (e: string) => {
          const tr = ((flow?.raw.transitions as Record<string, unknown>[] | undefined) ?? []).find((x) => x.event === e);
          return l(tr?.label as Record<string, string> | undefined, e);
        };
        const color = flow?.states.find((x) => x.id === f.state)?.color;
        return (
          <Card key={f.flow} size="small" title={l(flow?.label, f.flow)} style={{ marginBottom: 12 }} data-testid={`flow-${f.flow}`}>
            <Space wrap>
              <span>{t('flow.state')}:</span>
              <Tag color={color} data-testid="flow-state">{stateLabel(f.state)}</Tag>
            </Space>
            <div style={{ marginTop: 8 }}>
              <Space wrap>
                {f.events.map((e) => (
                  <Tooltip key={e.event} title={e.allowed ? `→ ${stateLabel(e.to)}` : e.reason}>
                    <Button size="small" disabled={!e.allowed} loading={fire.isPending && fire.variables?.event === e.event}
                      onClick={() => fire.mutate({ flow: f.flow, event: e.event })}>
                      {eventLabel(e.event)}
                    </Button>
                  </Tooltip>
                ))}
              </Space>
            </div>
            {f.history.length > 0 && (
              <>
                <Typography.Text type="secondary" style={{ display: 'block', marginTop: 12 }}>{t('flow.history')}</Typography.Text>
                <Timeline
                  style={{ marginTop: 8 }}
                  items={[...f.history].reverse().slice(0, 10).map((h) => ({
                    key: h.seq,
                    content: `${new Date(h.at).toLocaleString()} · ${eventLabel(h.event)}: ${stateLabel(h.from_state)} → ${stateLabel(h.to_state)} (${who(h.actor)})`,
                  }))}
                />
              </>
            )}
          </Card>
        );
      })}
    </>
  );
}
