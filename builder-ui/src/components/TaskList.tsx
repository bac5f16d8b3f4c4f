// Tasks: the inbox (mine or everyone's, open or done) or one record's open tasks, each completed
// with one of its outcomes (approvals: approve / reject).
import { App as AntApp, Button, Empty, List, Space, Tag, Typography } from 'antd';
import { Link } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import { loc } from '../lib/metadata';
import { problemText } from './ProblemAlert';

export interface Task {
  id: string;
  flow: string | null;
  entity: string;
  record_id: string;
  state: string | null;
  kind: string;
  title: string;
  assignee: string | null;
  status: string;
  outcome: string | null;
  outcomes: string;
  due_at: string | null;
  created_at: string;
}

export function taskOutcomes(task: Task): string[] {
  if (task.kind === 'approval') return ['approve', 'reject'];
  try {
    const map = JSON.parse(task.outcomes || '{}') as Record<string, string>;
    const keys = Object.keys(map);
    return keys.length ? keys : ['done'];
  } catch {
    return ['done'];
  }
}

export function TaskList({ app, recordId, assignee, status = 'open' }: { app: string; recordId?: string; assignee?: string; status?: string }) {
  const { t, i18n } = useTranslation();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const tasks = useQuery({
    queryKey: ['tasks', app, assignee, status],
    queryFn: async () => (await api.get<{ items: Task[] }>(`/api/apps/${app}/tasks`, { query: { assignee, status } })).items,
  });
  const complete = useMutation({
    mutationFn: ({ id, outcome }: { id: string; outcome: string }) => api.post(`/api/apps/${app}/tasks/${id}/complete`, { outcome }),
    onSuccess: () => {
      message.success(t('tasks.completed'));
      void queryClient.invalidateQueries({ queryKey: ['tasks', app] });
      void queryClient.invalidateQueries({ queryKey: ['flows', app] });
      void queryClient.invalidateQueries({ queryKey: ['record', app] });
    },
    onError: (e) => message.error(problemText(e)),
  });
  const items = (tasks.data ?? []).filter((task) => !recordId || task.record_id === recordId);
  if (!tasks.isLoading && items.length === 0) return <Empty description={t('tasks.none')} image={Empty.PRESENTED_IMAGE_SIMPLE} />;
  const now = Date.now();
  return (
    <List
      loading={tasks.isLoading}
      dataSource={items}
      data-testid="task-list"
      renderItem={(task) => {
        const overdue = task.status === 'open' && task.due_at && Date.parse(task.due_at) < now;
        return (
          <List.Item
            actions={task.status === 'open' ? taskOutcomes(task).map((o) => (
              <Button key={o} size="small" onClick={() => complete.mutate({ id: task.id, outcome: o })} loading={complete.isPending && complete.variables?.id === task.id && complete.variables.outcome === o}>
                {t(`tasks.outcome.${o}`, { defaultValue: o })}
              </Button>
            )) : [<Tag key="o">{task.outcome}</Tag>]}
          >
            <List.Item.Meta
              title={<Link to={`/apps/${app}/e/${task.entity}/${task.record_id}`}>{loc(task.title, i18n.language)}</Link>}
              description={
                <Space wrap size={4}>
                  {task.kind === 'approval' && <Tag color="purple">{t('tasks.approval')}</Tag>}
                  {task.due_at && <Tag color={overdue ? 'red' : 'default'}>{t('tasks.due')}: {new Date(task.due_at).toLocaleDateString(i18n.language)}</Tag>}
                  <Typography.Text type="secondary">{task.entity}</Typography.Text>
                </Space>
              }
            />
          </List.Item>
        );
      }}
    />
  );
}
