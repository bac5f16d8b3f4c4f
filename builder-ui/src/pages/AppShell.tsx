// The app runtime's frame: navigation built from the app's metadata (dashboards, entities, boards,
// tasks, reports, design) beside the page. The menu collapses on phone-sized screens.
import { useState } from 'react';
import { Button, Drawer, Grid, Layout, Menu, Spin } from 'antd';
import { MenuOutlined, CheckSquareOutlined, DashboardOutlined, DatabaseOutlined, BuildOutlined, ProjectOutlined, BarChartOutlined, TeamOutlined } from '@ant-design/icons';
import { Outlet, useLocation, useNavigate, useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';
import { Header } from '../components/Header';
import { ProblemAlert } from '../components/ProblemAlert';
import { useAppMeta, useLang } from '../lib/hooks';

export function AppShell() {
  const { app = '' } = useParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const location = useLocation();
  const screens = Grid.useBreakpoint();
  const [collapsed, setCollapsed] = useState(true);
  const loaded = useAppMeta(app);
  // Designing and managing members need the app's manager rights; the roles route says whether.
  const manager = useQuery({ queryKey: ['roles', app, 'assignments'], queryFn: () => api.get(`/api/apps/${app}/roles`), retry: false, staleTime: 60_000 });
  const meta = loaded.data?.meta;
  const base = `/apps/${app}`;
  const items = meta
    ? [
        {
          key: 'dashboards', icon: <DashboardOutlined />, label: t('nav.dashboards'),
          children: meta.views.filter((v) => v.kind === 'dashboard').map((v) => ({ key: `${base}/d/${v.id}`, label: l(v.label, v.id) })),
        },
        {
          key: 'entities', icon: <DatabaseOutlined />, label: t('nav.data'),
          children: meta.entities.map((e) => ({ key: `${base}/e/${e.id}`, label: l(e.labelPlural, e.id) })),
        },
        {
          key: 'boards', icon: <ProjectOutlined />, label: t('nav.boards'),
          children: meta.flows.map((f) => ({ key: `${base}/kanban/${f.id}`, label: l(f.label, f.id) })),
        },
        { key: `${base}/tasks`, icon: <CheckSquareOutlined />, label: t('nav.tasks') },
        {
          key: 'reports', icon: <BarChartOutlined />, label: t('nav.reports'),
          children: meta.reports.map((r) => ({ key: `${base}/r/${r.id}`, label: l(r.label, r.id) })),
        },
        ...(manager.isSuccess ? [
          { key: `${base}/design`, icon: <BuildOutlined />, label: t('nav.design') },
          { key: `${base}/members`, icon: <TeamOutlined />, label: t('nav.members') },
        ] : []),
      ].filter((item) => !('children' in item) || (item.children?.length ?? 0) > 0)
    : [];
  const selected = location.pathname.split('/').slice(0, 5).join('/');
  const phone = !screens.md;
  const menu = (
    <nav aria-label={t('nav.label')}>
      <Menu
        mode="inline"
        items={items}
        selectedKeys={[selected]}
        defaultOpenKeys={['dashboards', 'entities']}
        onClick={({ key }) => {
          navigate(key);
          setCollapsed(true);
        }}
      />
    </nav>
  );
  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Header title={meta ? l(meta.manifest.name as Record<string, string>, app) : app} />
      <Layout>
        {phone ? (
          <Drawer placement="left" open={!collapsed} onClose={() => setCollapsed(true)} size={260} styles={{ body: { padding: 0 } }} title={t('nav.label')}>
            {menu}
          </Drawer>
        ) : (
          <Layout.Sider width={232} theme="light" style={{ borderRight: '1px solid #eee' }}>
            {menu}
          </Layout.Sider>
        )}
        <Layout.Content style={{ padding: phone ? 8 : 16, minWidth: 0 }}>
          {phone && <Button icon={<MenuOutlined />} onClick={() => setCollapsed(false)} style={{ marginBottom: 8 }} aria-label={t('nav.open')}>{t('nav.open')}</Button>}
          {loaded.isLoading && <Spin />}
          {loaded.error ? <ProblemAlert error={loaded.error} /> : null}
          {meta && <Outlet />}
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
