// The task inbox: my open tasks by default; everyone's and finished ones on request.
import { useState } from 'react';
import { Segmented, Space, Typography } from 'antd';
import { useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { TaskList } from '../components/TaskList';

export function TasksPage() {
  const { app = '' } = useParams();
  const { t } = useTranslation();
  const [who, setWho] = useState<'me' | 'all'>('me');
  const [status, setStatus] = useState<'open' | 'done'>('open');
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between', marginBottom: 12 }}>
        <Typography.Title level={4} style={{ margin: 0 }}>{t('tasks.title')}</Typography.Title>
        <Space wrap>
          <Segmented aria-label={t('tasks.whose')} value={who} onChange={(v) => setWho(v as 'me' | 'all')} options={[{ value: 'me', label: t('tasks.mine') }, { value: 'all', label: t('tasks.everyone') }]} />
          <Segmented aria-label={t('tasks.status')} value={status} onChange={(v) => setStatus(v as 'open' | 'done')} options={[{ value: 'open', label: t('tasks.open') }, { value: 'done', label: t('tasks.done') }]} />
        </Space>
      </Space>
      <TaskList app={app} assignee={who === 'me' ? 'me' : undefined} status={status} />
    </div>
  );
}
