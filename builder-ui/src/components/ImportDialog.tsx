// Import records from CSV, NDJSON or Excel: upload progress, then what was inserted and every
// rejected row with its reasons. "All or nothing" inserts nothing unless every row is valid.
import { useState } from 'react';
import { Alert, Checkbox, Modal, Progress, Space, Table, Typography, Upload } from 'antd';
import { InboxOutlined } from '@ant-design/icons';
import { useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { ApiProblem, getToken } from '../api/client';
import { ProblemAlert } from './ProblemAlert';

interface ImportResult { inserted: number; rejected: { row: number; errors: { pointer?: string; message: string }[] }[] }

export function contentTypeOf(name: string): string | null {
  const lower = name.toLowerCase();
  if (lower.endsWith('.csv')) return 'text/csv';
  if (lower.endsWith('.ndjson') || lower.endsWith('.jsonl')) return 'application/x-ndjson';
  if (lower.endsWith('.xlsx')) return 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
  return null;
}

export function ImportDialog({ app, entity, open, onClose }: { app: string; entity: string; open: boolean; onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [atomic, setAtomic] = useState(false);
  const [progress, setProgress] = useState<number | null>(null);
  const [processing, setProcessing] = useState(false);
  const [result, setResult] = useState<ImportResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  const upload = (file: File) => {
    const type = contentTypeOf(file.name);
    setResult(null);
    setError(null);
    if (!type) {
      setError(new Error(t('import.badType')));
      return false;
    }
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/apps/${app}/entities/${entity}/import${atomic ? '?atomic=true' : ''}`);
    xhr.setRequestHeader('authorization', `Bearer ${getToken()}`);
    xhr.setRequestHeader('content-type', type);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress(Math.round((e.loaded / e.total) * 100));
      if (e.loaded === e.total) setProcessing(true);
    };
    xhr.onload = () => {
      setProgress(null);
      setProcessing(false);
      let body: unknown = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        setResult(body as ImportResult);
        void queryClient.invalidateQueries({ queryKey: ['records', app, entity] });
      } else {
        setError(new ApiProblem(xhr.status, body as Record<string, unknown>));
      }
    };
    xhr.onerror = () => {
      setProgress(null);
      setProcessing(false);
      setError(new Error(t('import.network')));
    };
    setProgress(0);
    xhr.send(file);
    return false;
  };
  return (
    <Modal open={open} title={t('import.title')} onCancel={onClose} footer={null} width={680} destroyOnHidden>
      <Space orientation="vertical" style={{ width: '100%' }}>
        <Typography.Text type="secondary">{t('import.help')}</Typography.Text>
        <Checkbox checked={atomic} onChange={(e) => setAtomic(e.target.checked)}>{t('import.atomic')}</Checkbox>
        <Upload.Dragger accept=".csv,.ndjson,.jsonl,.xlsx" showUploadList={false} beforeUpload={upload} disabled={progress !== null} data-testid="import-upload">
          <p className="ant-upload-drag-icon"><InboxOutlined /></p>
          <p>{t('import.drop')}</p>
        </Upload.Dragger>
        {progress !== null && <Progress percent={progress} status="active" format={(p) => (processing ? t('import.processing') : `${p}%`)} />}
        {error ? <ProblemAlert error={error} /> : null}
        {result && (
          <>
            <Alert type={result.rejected.length ? 'warning' : 'success'} showIcon data-testid="import-result"
              title={t('import.result', { inserted: result.inserted, rejected: result.rejected.length })} />
            {result.rejected.length > 0 && (
              <Table size="small" rowKey="row" pagination={{ pageSize: 8 }} dataSource={result.rejected}
                columns={[
                  { title: t('import.row'), dataIndex: 'row', width: 80 },
                  { title: t('import.reasons'), render: (_, r) => r.errors.map((e, i) => <div key={i}><code>{e.pointer}</code> {e.message}</div>) },
                ]} />
            )}
          </>
        )}
      </Space>
    </Modal>
  );
}
