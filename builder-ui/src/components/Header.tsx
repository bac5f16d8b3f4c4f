// The top bar: product name, the signed-in user, language switch and sign-out.
import { Button, Space, Typography } from 'antd';
import { LogoutOutlined } from '@ant-design/icons';
import { Link, useNavigate } from 'react-router-dom';
import { useTranslation } from 'react-i18next';
import { useQueryClient } from '@tanstack/react-query';
import { api, setToken } from '../api/client';
import { useMe } from '../lib/hooks';
import { LanguageSwitch } from './LanguageSwitch';

export function Header({ title }: { title?: React.ReactNode }) {
  const { t } = useTranslation();
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const logout = async () => {
    try {
      await api.post('/api/auth/logout');
    } catch {
      // The token may already be gone; signing out locally is what matters.
    }
    setToken(null);
    queryClient.clear();
    navigate('/login');
  };
  return (
    <div style={{ display: 'flex', alignItems: 'center', gap: 12, padding: '0 16px', height: 56, background: '#1f3b2d', color: '#fff', flexWrap: 'nowrap' }}>
      <Link to="/" style={{ color: '#fff', fontWeight: 700, fontSize: 18 }}>Trellis</Link>
      <Typography.Text style={{ color: '#d9e8df', overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap', flex: 1 }}>{title}</Typography.Text>
      <Space size="small">
        <LanguageSwitch />
        <span style={{ color: '#d9e8df' }} data-testid="current-user">{me.data?.username}</span>
        <Button size="small" icon={<LogoutOutlined />} onClick={logout} aria-label={t('common.logout')}>
          <span className="hide-on-phone">{t('common.logout')}</span>
        </Button>
      </Space>
    </div>
  );
}
