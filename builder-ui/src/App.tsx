// Routes of the builder (analysts) and the app runtime (end users), behind sign-in.
import { lazy, Suspense, useEffect, useState } from 'react';
import { BrowserRouter, Navigate, Route, Routes, useNavigate } from 'react-router-dom';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App as AntApp, ConfigProvider } from 'antd';
import enUS from 'antd/locale/en_US';
import zhCN from 'antd/locale/zh_CN';
import { useTranslation } from 'react-i18next';
import { getToken, setUnauthorizedHandler } from './api/client';
import { LoginPage } from './pages/LoginPage';
import { AppsHome } from './pages/AppsHome';
import { AppShell } from './pages/AppShell';
import { AppHome } from './pages/AppHome';
import { RecordList } from './pages/RecordList';
import { RecordPage } from './pages/RecordPage';
import { RecordFormPage } from './pages/RecordFormPage';
import { KanbanPage } from './pages/KanbanPage';
import { TasksPage } from './pages/TasksPage';
import { DashboardPage } from './pages/DashboardPage';
import { ReportPage } from './pages/ReportPage';
import { Spin } from 'antd';

// The designers load on demand: end users never download the flow canvas or the designers' code.
const EntityDesigner = lazy(() => import('./pages/design/EntityDesigner').then((m) => ({ default: m.EntityDesigner })));
const FlowDesigner = lazy(() => import('./pages/design/FlowDesigner').then((m) => ({ default: m.FlowDesigner })));
const RuleBuilder = lazy(() => import('./pages/design/RuleBuilder').then((m) => ({ default: m.RuleBuilder })));
const ReportDesigner = lazy(() => import('./pages/design/ReportDesigner').then((m) => ({ default: m.ReportDesigner })));
const DesignHome = lazy(() => import('./pages/design/DesignHome').then((m) => ({ default: m.DesignHome })));
const DashboardDesigner = lazy(() => import('./pages/design/DashboardDesigner').then((m) => ({ default: m.DashboardDesigner })));
const MembersPage = lazy(() => import('./pages/design/MembersPage').then((m) => ({ default: m.MembersPage })));

function Loading({ children }: { children: React.ReactNode }) {
  return <Suspense fallback={<Spin />}>{children}</Suspense>;
}

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false, staleTime: 5_000 } },
});

function RequireAuth({ children }: { children: React.ReactNode }) {
  return getToken() ? <>{children}</> : <Navigate to="/login" replace />;
}

function UnauthorizedRedirect() {
  const navigate = useNavigate();
  setUnauthorizedHandler(() => navigate('/login'));
  return null;
}

/** Whether the person asked their system for less motion (`prefers-reduced-motion: reduce`). */
function prefersReducedMotion(): boolean {
  return typeof window !== 'undefined' && Boolean(window.matchMedia?.('(prefers-reduced-motion: reduce)').matches);
}

export function App() {
  const { i18n } = useTranslation();
  const [, force] = useState(0);
  useEffect(() => {
    const rerender = () => force((n) => n + 1);
    i18n.on('languageChanged', rerender);
    return () => i18n.off('languageChanged', rerender);
  }, [i18n]);
  // Dialogs, menus and messages appear without zooming or sliding for people who asked for less
  // motion; everything else about them is the same.
  const motion = !prefersReducedMotion();
  return (
    <ConfigProvider locale={i18n.language === 'zh-CN' ? zhCN : enUS} theme={{ token: { colorPrimary: '#2f6f4e', motion } }}>
      <AntApp>
        <QueryClientProvider client={queryClient}>
          <BrowserRouter>
            <UnauthorizedRedirect />
            <Routes>
              <Route path="/login" element={<LoginPage />} />
              <Route path="/" element={<RequireAuth><AppsHome /></RequireAuth>} />
              <Route path="/apps/:app" element={<RequireAuth><AppShell /></RequireAuth>}>
                <Route index element={<AppHome />} />
                <Route path="e/:entity" element={<RecordList />} />
                <Route path="e/:entity/new" element={<RecordFormPage />} />
                <Route path="e/:entity/:id" element={<RecordPage />} />
                <Route path="e/:entity/:id/edit" element={<RecordFormPage />} />
                <Route path="kanban/:flow" element={<KanbanPage />} />
                <Route path="tasks" element={<TasksPage />} />
                <Route path="d/:dashboard" element={<DashboardPage />} />
                <Route path="r/:report" element={<ReportPage />} />
                <Route path="design" element={<Loading><DesignHome /></Loading>} />
                <Route path="design/entities/:entity" element={<Loading><EntityDesigner /></Loading>} />
                <Route path="design/flows/:flow" element={<Loading><FlowDesigner /></Loading>} />
                <Route path="design/rules/:rule" element={<Loading><RuleBuilder /></Loading>} />
                <Route path="design/reports/:report" element={<Loading><ReportDesigner /></Loading>} />
                <Route path="design/dashboards/:dashboard" element={<Loading><DashboardDesigner /></Loading>} />
                <Route path="members" element={<Loading><MembersPage /></Loading>} />
              </Route>
              <Route path="*" element={<Navigate to="/" replace />} />
            </Routes>
          </BrowserRouter>
        </QueryClientProvider>
      </AntApp>
    </ConfigProvider>
  );
}
