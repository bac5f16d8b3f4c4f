// The zh-CN / en switch shown in every header.
import { Segmented } from 'antd';
import { useTranslation } from 'react-i18next';
import { rememberLanguage, type Language } from '../i18n';

export function LanguageSwitch() {
  const { i18n, t } = useTranslation();
  return (
    <Segmented
      aria-label={t('common.language')}
      size="small"
      value={i18n.language}
      options={[
        { label: '中文', value: 'zh-CN' },
        { label: 'EN', value: 'en' },
      ]}
      onChange={(value) => rememberLanguage(value as Language)}
    />
  );
}
