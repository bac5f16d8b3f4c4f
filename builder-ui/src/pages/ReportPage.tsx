// One report, run full size with its table beneath the chart; export to CSV/XLSX.
import { Button, Card, Space, Spin, Typography } from 'antd';
import { useParams } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useQuery } from '@tanstack/react-query';
import { api, getToken } from '../api/client';
import { ProblemAlert } from '../components/ProblemAlert';
import { ReportResult, type ReportRun } from '../components/ReportResult';
import { useAppMeta, useLang } from '../lib/hooks';

export function ReportPage() {
  const { app = '', report = '' } = useParams();
  const { t } = useTranslation();
  const { l, lang } = useLang();
  const meta = useAppMeta(app).data!.meta;
  const info = meta.reports.find((r) => r.id === report);
  const run = useQuery({ queryKey: ['report', app, report, lang], queryFn: () => api.post<ReportRun>(`/api/apps/${app}/reports/${report}/run`, {}, { lang }) });
  const download = async (format: string) => {
    const response = await fetch(`/api/apps/${app}/reports/${report}/export?format=${format}`, {
      method: 'POST', headers: { authorization: `Bearer ${getToken()}`, 'content-type': 'application/json', 'accept-language': lang }, body: '{}',
    });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(await response.blob());
    a.download = `${report}.${format}`;
    a.click();
  };
  return (
    <div>
      <Space wrap style={{ width: '100%', justifyContent: 'space-between' }}>
        <Typography.Title level={4}>{l(info?.label, report)}</Typography.Title>
        <Space>
          <Button onClick={() => void download('csv')}>CSV</Button>
          <Button onClick={() => void download('xlsx')}>XLSX</Button>
        </Space>
      </Space>
      {run.isLoading && <Spin />}
      {run.error ? <ProblemAlert error={run.error} /> : null}
      {run.data && (
        <Space orientation="vertical" style={{ width: '100%' }}>
          {run.data.chart?.kind !== 'table' && <Card><ReportResult app={app} entity={info?.entity ?? null} run={run.data} height={360} title={l(info?.label)} /></Card>}
          <Card title={t('report.data')}><ReportResult app={app} entity={info?.entity ?? null} run={{ ...run.data, chart: { kind: 'table' } }} /></Card>
        </Space>
      )}
    </div>
  );
}
