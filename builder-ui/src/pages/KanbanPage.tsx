// A kanban board of a flow: one column per state, cards are records. Dragging a card (or choosing
// "move to" on it, from the keyboard) fires the flow event between the two states; a refusal is shown
// with the server's reason and the card stays where it was.
import { useState } from 'react';
import { Alert, App as AntApp, Badge, Card, Select, Space, Spin, Typography } from 'antd';
import { Link, useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiProblem, recordsPath, type RecordPage } from '../api/client';
import { ProblemAlert, problemText } from '../components/ProblemAlert';
import { eventsBetween } from '../lib/kanban';
import { entityById, recordTitle } from '../lib/metadata';
import { useAppMeta, useLang } from '../lib/hooks';

export function KanbanPage() {
  const { app = '', flow: flowId = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const meta = useAppMeta(app).data!.meta;
  const flow = meta.flows.find((f) => f.id === flowId);
  const entity = flow ? entityById(meta, flow.entity) : undefined;
  const stateField = flow?.field ?? 'state';
  const [refusal, setRefusal] = useState<string | null>(null);
  const [dragging, setDragging] = useState<string | null>(null);
  const columns = useQuery({
    queryKey: ['records', app, flow?.entity, 'kanban', flowId],
    enabled: Boolean(flow && entity),
    queryFn: async () => {
      const out: Record<string, RecordPage> = {};
      await Promise.all(flow!.states.map(async (s) => {
        out[s.id] = await api.get<RecordPage>(recordsPath(app, flow!.entity), {
          query: { filter: JSON.stringify({ field: stateField, op: 'eq', value: s.id }), limit: 50 },
        });
      }));
      return out;
    },
  });
  const move = useMutation({
    mutationFn: async ({ id, from, to }: { id: string; from: string; to: string }) => {
      const events = eventsBetween(flow!.raw, from, to);
      if (events.length === 0) {
        const fromLabel = l(flow!.states.find((s) => s.id === from)?.label, from);
        const toLabel = l(flow!.states.find((s) => s.id === to)?.label, to);
        throw new Error(t('kanban.noEvent', { from: fromLabel, to: toLabel }));
      }
      return api.post(`${recordsPath(app, flow!.entity, id)}/flows/${flowId}/events`, { event: events[0].event });
    },
    onSuccess: () => {
      setRefusal(null);
      message.success(t('flow.fired'));
      void queryClient.invalidateQueries({ queryKey: ['records', app, flow?.entity] });
      void queryClient.invalidateQueries({ queryKey: ['tasks', app] });
    },
    onError: (e) => {
      const text = problemText(e);
      setRefusal(e instanceof ApiProblem ? `${t('kanban.refused')}: ${text}` : text);
    },
  });
  if (!flow || !entity) return <ProblemAlert error={new Error(t('common.notFound'))} />;
  const drop = (to: string) => (e: React.DragEvent) => {
    e.preventDefault();
    const [id, from] = (e.dataTransfer.getData('text/plain') || '').split('|');
    setDragging(null);
    if (id && from && from !== to) move.mutate({ id, from, to });
  };
  return (
    <div>
      <Typography.Title level={4}>{l(flow.label, flow.id)}</Typography.Title>
      {refusal && <Alert type="error" showIcon closable onClose={() => setRefusal(null)} title={refusal} style={{ marginBottom: 12 }} role="alert" data-testid="kanban-refusal" />}
      {columns.isLoading && <Spin />}
      {columns.error ? <ProblemAlert error={columns.error} /> : null}
      <div style={{ display: 'flex', gap: 12, overflowX: 'auto', paddingBottom: 8 }}>
        {flow.states.map((s) => {
          const page = columns.data?.[s.id];
          return (
            <section
              key={s.id}
              aria-label={l(s.label, s.id)}
              data-testid={`kanban-column-${s.id}`}
              onDragOver={(e) => e.preventDefault()}
              onDrop={drop(s.id)}
              style={{ minWidth: 240, width: 260, flex: '0 0 auto', background: dragging ? '#eef4f0' : '#f5f5f5', borderRadius: 8, padding: 8, borderTop: `3px solid ${s.color ?? '#ccc'}` }}
            >
              <Space style={{ marginBottom: 8 }}>
                <Typography.Text strong>{l(s.label, s.id)}</Typography.Text>
                <Badge count={page?.items.length ?? 0} showZero overflowCount={49} color="#999" />
              </Space>
              {page?.items.map((r) => (
                <Card
                  key={r.id}
                  size="small"
                  draggable
                  data-testid="kanban-card"
                  data-record-id={r.id}
                  onDragStart={(e) => {
                    e.dataTransfer.setData('text/plain', `${r.id}|${s.id}`);
                    setDragging(r.id);
                  }}
                  onDragEnd={() => setDragging(null)}
                  style={{ marginBottom: 8, cursor: 'grab' }}
                >
                  <Link to={`/apps/${app}/e/${flow.entity}/${r.id}`}>{recordTitle(entity, r)}</Link>
                  <Select
                    size="small"
                    aria-label={t('kanban.moveTo')}
                    placeholder={t('kanban.moveTo')}
                    style={{ width: '100%', marginTop: 6 }}
                    value={null as unknown as string}
                    options={flow.states.filter((x) => x.id !== s.id).map((x) => ({ value: x.id, label: l(x.label, x.id) }))}
                    onChange={(to) => move.mutate({ id: r.id, from: s.id, to })}
                  />
                </Card>
              ))}
              {page?.next_cursor && <Typography.Text type="secondary">{t('kanban.more')}</Typography.Text>}
            </section>
          );
        })}
      </div>
    </div>
  );
}
