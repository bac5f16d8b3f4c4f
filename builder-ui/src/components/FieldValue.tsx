// Read-only display of a field value by kind: option tags with colours, related record titles,
// user names, dates, amounts, ticks and tags.
import { Rate, Tag, Typography } from 'antd';
import { CheckOutlined, MinusOutlined } from '@ant-design/icons';
import { Link } from 'react-router-dom';
import type { FieldMeta } from '../lib/metadata';
import { useLang } from '../lib/hooks';

export interface Lookups {
  titles?: Record<string, string>;
  users?: Record<string, string>;
}

export function FieldValue({ field, value, app, lookups }: { field: FieldMeta; value: unknown; app: string; lookups?: Lookups }) {
  const { l, lang } = useLang();
  if (value === undefined || value === null || value === '') return <Typography.Text type="secondary">—</Typography.Text>;
  const option = (v: unknown) => {
    const o = field.options.find((x) => x.value === v);
    return (
      <Tag key={String(v)} color={o?.color}>
        {o ? l(o.label, String(v)) : String(v)}
      </Tag>
    );
  };
  switch (field.kind) {
    case 'boolean':
      return value ? <CheckOutlined aria-label="yes" /> : <MinusOutlined aria-label="no" />;
    case 'single_select':
      return option(value);
    case 'multi_select':
    case 'tags':
      return <>{(value as unknown[]).map((v) => (field.options.length ? option(v) : <Tag key={String(v)}>{String(v)}</Tag>))}</>;
    case 'relation_one':
      return field.relation ? (
        <Link to={`/apps/${app}/e/${field.relation.entity}/${value}`}>{lookups?.titles?.[String(value)] ?? String(value).slice(0, 8)}</Link>
      ) : <>{String(value)}</>;
    case 'relation_many':
      return <>{(value as string[]).map((v) => <Tag key={v}>{lookups?.titles?.[v] ?? v.slice(0, 8)}</Tag>)}</>;
    case 'user':
    case 'created_by':
    case 'updated_by':
      return <>{lookups?.users?.[String(value)] ?? String(value)}</>;
    case 'rating':
      return <Rate disabled value={Number(value)} />;
    case 'percent':
      return <>{(Number(value) * 100).toLocaleString(lang, { maximumFractionDigits: 1 })}%</>;
    case 'money': {
      const m = value as { amount?: string; currency?: string };
      return <>{typeof value === 'object' ? `${m.currency ?? ''} ${m.amount ?? ''}` : String(value)}</>;
    }
    case 'decimal':
    case 'integer':
      return <>{Number(value).toLocaleString(lang, { maximumFractionDigits: 4 })}</>;
    case 'datetime':
    case 'created_at':
    case 'updated_at':
      return <>{new Date(String(value)).toLocaleString(lang)}</>;
    case 'url':
      return <a href={String(value)} target="_blank" rel="noreferrer">{String(value)}</a>;
    case 'email':
      return <a href={`mailto:${value}`}>{String(value)}</a>;
    case 'json':
      return <code>{JSON.stringify(value)}</code>;
    default:
      if (field.options.length) return option(value);
      return <>{String(value)}</>;
  }
}
