// Create or edit a record with the entity's form; edits are sent as a merge patch of the changed
// fields with If-Match, so a concurrent edit is refused (412) instead of overwritten.
import { useMemo } from 'react';
import { App as AntApp, Typography } from 'antd';
import { useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ApiProblem, recordsPath, request, type RecordView } from '../api/client';
import { RecordForm } from '../components/RecordForm';
import { ProblemAlert } from '../components/ProblemAlert';
import { entityById } from '../lib/metadata';
import { useAppMeta, useLang } from '../lib/hooks';
import { useRecord } from './RecordPage';

export function RecordFormPage() {
  const { app = '', entity: entityId = '', id } = useParams();
  const [params] = useSearchParams();
  const { t } = useTranslation();
  const { l } = useLang();
  const navigate = useNavigate();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const meta = useAppMeta(app).data!.meta;
  const entity = entityById(meta, entityId);
  const existing = useRecord(app, entityId, id ?? '');
  const editing = Boolean(id);
  const initial = useMemo(() => {
    if (editing) return existing.data?.record.data;
    const prefill: Record<string, unknown> = {};
    for (const f of entity?.fields ?? []) {
      const v = params.get(f.id);
      if (v !== null) prefill[f.id] = v;
      else if (f.schema.default !== undefined) prefill[f.id] = f.schema.default;
    }
    return prefill;
  }, [editing, existing.data, params, entity]);
  const save = useMutation({
    mutationFn: async (data: Record<string, unknown>) => {
      if (!editing) return (await request<RecordView>('POST', recordsPath(app, entityId), { body: data })).data;
      const before = existing.data!.record.data;
      const patch: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(data)) if (JSON.stringify(before[k] ?? null) !== JSON.stringify(v ?? null)) patch[k] = v;
      return (await request<RecordView>('PATCH', recordsPath(app, entityId, id), { body: patch, ifMatch: existing.data!.etag ?? undefined })).data;
    },
    onSuccess: (record) => {
      message.success(t('common.saved'));
      void queryClient.invalidateQueries({ queryKey: ['records', app] });
      void queryClient.invalidateQueries({ queryKey: ['record', app, entityId, record.id] });
      void queryClient.invalidateQueries({ queryKey: ['history', app, entityId, record.id] });
      void queryClient.invalidateQueries({ queryKey: ['flows', app, entityId, record.id] });
      navigate(`/apps/${app}/e/${entityId}/${record.id}`);
    },
  });
  if (!entity) return <ProblemAlert error={new Error(t('common.notFound'))} />;
  if (editing && !existing.data) return existing.error ? <ProblemAlert error={existing.error} /> : null;
  const stale = save.error instanceof ApiProblem && save.error.status === 412;
  const view = meta.views.find((v) => v.kind === 'form' && v.entity === entityId);
  return (
    <div style={{ maxWidth: 960 }}>
      <Typography.Title level={4}>{editing ? t('record.editTitle', { entity: l(entity.label) }) : t('record.newTitle', { entity: l(entity.label) })}</Typography.Title>
      {stale && <Typography.Paragraph type="warning" role="alert">{t('record.stale')}</Typography.Paragraph>}
      <RecordForm app={app} meta={meta} entity={entity} view={view} initial={initial} busy={save.isPending} error={save.error}
        onSubmit={(data) => save.mutate(data)} onCancel={() => navigate(-1)} />
    </div>
  );
}
