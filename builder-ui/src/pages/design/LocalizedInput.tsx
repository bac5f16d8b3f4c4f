// A text in both languages Trellis ships: English and Chinese side by side.
import { Input, Space } from 'antd';

export function LocalizedInput({ label, value, onChange, testId }: { label: string; value: Record<string, string>; onChange: (v: Record<string, string>) => void; testId?: string }) {
  return (
    <div style={{ marginBottom: 8 }}>
      <div style={{ marginBottom: 4 }}>{label}</div>
      <Space.Compact style={{ width: '100%' }}>
        <Input aria-label={`${label} (English)`} data-testid={testId ? `${testId}-en` : undefined} addonBefore="EN" value={value.en ?? ''} onChange={(e) => onChange({ ...value, en: e.target.value })} />
        <Input aria-label={`${label} (中文)`} data-testid={testId ? `${testId}-zh` : undefined} addonBefore="中" value={value['zh-CN'] ?? ''} onChange={(e) => onChange({ ...value, 'zh-CN': e.target.value })} />
      </Space.Compact>
    </div>
  );
}
