// Shows a server problem (RFC 9457) with its field errors, in the user's language where known.
import { Alert } from 'antd';
import { useTranslation } from 'react-i18next';
import { ApiProblem } from '../api/client';

export function problemText(error: unknown): string {
  if (error instanceof ApiProblem) return error.detail || error.title;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function ProblemAlert({ error }: { error: unknown }) {
  const { t } = useTranslation();
  if (!error) return null;
  const problem = error instanceof ApiProblem ? error : null;
  return (
    <Alert
      type="error"
      showIcon
      role="alert"
      title={problem ? `${problem.title} (${problem.status})` : t('common.error')}
      description={
        <div>
          <div>{problemText(error)}</div>
          {problem && problem.errors.length > 0 && (
            <ul style={{ margin: '4px 0 0', paddingLeft: 18 }}>
              {problem.errors.map((e, i) => (
                <li key={i}>
                  <code>{e.file ? `${e.file}:` : ''}{e.pointer}</code> {e.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      }
    />
  );
}
