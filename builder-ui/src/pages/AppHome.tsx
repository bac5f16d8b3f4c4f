// An app's start page: its first dashboard, else its first entity's list, else the designer.
import { Navigate, useParams } from 'react-router-dom';
import { useAppMeta } from '../lib/hooks';

export function AppHome() {
  const { app = '' } = useParams();
  const meta = useAppMeta(app).data?.meta;
  if (!meta) return null;
  const dashboard = meta.views.find((v) => v.kind === 'dashboard');
  if (dashboard) return <Navigate to={`/apps/${app}/d/${dashboard.id}`} replace />;
  if (meta.entities[0]) return <Navigate to={`/apps/${app}/e/${meta.entities[0].id}`} replace />;
  return <Navigate to={`/apps/${app}/design`} replace />;
}
