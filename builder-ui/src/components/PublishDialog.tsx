// Publishing a new version of the app: first a dry run whose migration report (what changes, how
// many records move, values that cannot convert, warnings) is shown; nothing changes until the
// analyst confirms. If-Match guards against publishing over a colleague's newer version.
import { useEffect } from 'react';
import { Alert, App as AntApp, List, Modal, Spin, Tag, Typography } from 'antd';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { request, type MigrationReport } from '../api/client';
import type { Bundle } from '../lib/metadata';
import { ProblemAlert } from './ProblemAlert';

interface Change { change?: string; entity?: string; field?: string; [key: string]: unknown }

export function describeChange(c: Change, t: (k: string, o?: Record<string, unknown>) => string): string {
  const what = [c.entity, c.field].filter(Boolean).join('.');
  return t(`publish.change.${c.change ?? 'other'}`, { defaultValue: c.change ?? JSON.stringify(c), what }) + (what ? ` — ${what}` : '');
}

export function PublishDialog({ app, bundle, etag, open, onClose, onPublished }: { app: string; bundle: Bundle; etag: string | null; open: boolean; onClose: () => void; onPublished?: () => void }) {
  const { t } = useTranslation();
  const { message } = AntApp.useApp();
  const queryClient = useQueryClient();
  const path = `/api/apps/${encodeURIComponent(app)}/bundle`;
  const dryRun = useMutation({
    mutationFn: async () => (await request<MigrationReport>('PUT', path, { body: bundle, query: { dry_run: true } })).data,
  });
  const publish = useMutation({
    mutationFn: async () => (await request<MigrationReport>('PUT', path, { body: bundle, ifMatch: etag ?? undefined })).data,
    onSuccess: (report) => {
      message.success(t('publish.done', { version: report.to_version }));
      void queryClient.invalidateQueries({ queryKey: ['bundle', app] });
      void queryClient.invalidateQueries({ queryKey: ['records', app] });
      onClose();
      onPublished?.();
    },
  });
  useEffect(() => {
    if (open) {
      dryRun.reset();
      publish.reset();
      dryRun.mutate();
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);
  const report = dryRun.data;
  return (
    <Modal
      open={open}
      width={720}
      title={t('publish.title')}
      onCancel={onClose}
      okText={t('publish.confirm')}
      onOk={() => publish.mutate()}
      okButtonProps={{ disabled: !report, 'aria-label': t('publish.confirm') }}
      confirmLoading={publish.isPending}
      destroyOnHidden
    >
      {dryRun.isPending && <Spin />}
      {dryRun.error ? <ProblemAlert error={dryRun.error} /> : null}
      {report && (
        <div data-testid="migration-report">
          <Typography.Paragraph>
            {t('publish.summary', { from: report.from_version, to: report.to_version, records: report.records_migrated })}
          </Typography.Paragraph>
          <List
            size="small"
            bordered
            header={<b>{t('publish.changes')}</b>}
            dataSource={report.changes as Change[]}
            locale={{ emptyText: t('publish.noChanges') }}
            renderItem={(c) => <List.Item><Tag color="blue">{c.change}</Tag>{describeChange(c, t)}</List.Item>}
          />
          {(report.unconverted as unknown[]).length > 0 && (
            <Alert style={{ marginTop: 8 }} type="warning" showIcon title={t('publish.unconverted', { count: (report.unconverted as unknown[]).length })} />
          )}
          {(report.warnings as { message?: string }[]).map((w, i) => (
            <Alert key={i} style={{ marginTop: 8 }} type="warning" showIcon title={w.message ?? JSON.stringify(w)} />
          ))}
        </div>
      )}
      {publish.error ? <div style={{ marginTop: 8 }}><ProblemAlert error={publish.error} /></div> : null}
    </Modal>
  );
}
