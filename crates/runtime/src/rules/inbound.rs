//! Inbound webhooks: a signed POST whose body becomes a record when the rule's condition holds.

use std::time::Instant;

use serde_json::Value;
use trellis_form::{FieldIssue, Locale};
use trellis_rules::{Trigger, evaluate};

use super::{locale_tag, outcome_text};
use crate::{Principal, Runtime, RuntimeError};

impl Runtime {
    /// An inbound webhook for rule `rule_id` (trigger `webhook`): check the signature, evaluate the
    /// condition over the body's fields and, when it holds, apply the rule's `set`s and create the
    /// record as the system user. `None` when the condition does not hold.
    pub async fn inbound_webhook(
        &self,
        app: &str,
        rule_id: &str,
        body: &[u8],
        signature: Option<&str>,
        locale: Locale,
    ) -> Result<Option<crate::records::RecordView>, RuntimeError> {
        use hmac::{KeyInit, Mac};
        let loaded = self.loaded_app(app).await?;
        let rule = Self::rule(&loaded, rule_id)?;
        if !matches!(rule.definition.trigger, Trigger::Webhook {}) {
            return Err(RuntimeError::NotFound(format!("webhook '{rule_id}'")));
        }
        let Some(secret) = &self.settings.webhook_secret else {
            return Err(RuntimeError::Forbidden(
                "inbound webhooks are off: set TRELLIS_WEBHOOK_SECRET on the server and sign requests with it".into(),
            ));
        };
        let given = signature
            .and_then(|s| s.strip_prefix("sha256="))
            .and_then(|hex_text| hex::decode(hex_text.trim()).ok())
            .ok_or_else(|| {
                RuntimeError::Forbidden(
                    "missing signature: send x-trellis-signature: sha256=<hex HMAC-SHA256 of the body>".into(),
                )
            })?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| RuntimeError::Forbidden("the signature does not match the body".into()))?;
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(RuntimeError::InvalidInput(
                "the body must be a JSON object of the record's fields".into(),
            ));
        };
        let started = Instant::now();
        let evaluation = evaluate(rule, &fields, None).map_err(|failure| {
            RuntimeError::InvalidRecord(vec![FieldIssue {
                pointer: String::new(),
                code: "rule_failed",
                message: failure.to_string(),
            }])
        })?;
        let elapsed = started.elapsed().as_micros() as i64;
        if let Some(message) = &evaluation.reject {
            let text = message
                .get(locale_tag(locale))
                .unwrap_or("the change was refused");
            self.log_runs(&loaded, "webhook", None, &[(elapsed, evaluation.clone())])
                .await?;
            return Err(RuntimeError::InvalidRecord(vec![FieldIssue {
                pointer: String::new(),
                code: "rule_rejected",
                message: format!("{text} (rule '{rule_id}')"),
            }]));
        }
        if !evaluation.matched {
            self.log_runs(&loaded, "webhook", None, &[(elapsed, evaluation)])
                .await?;
            return Ok(None);
        }
        for (name, value) in &evaluation.writes {
            fields.insert(name.clone(), value.clone());
        }
        let system = Principal::system("system", "webhook");
        let created = match self
            .create_record(
                &system,
                &loaded.id,
                rule.definition.entity.as_str(),
                &Value::Object(fields),
                locale,
            )
            .await
        {
            Ok(created) => created,
            Err(error) => {
                let reason = match &error {
                    RuntimeError::InvalidRecord(issues) => issues
                        .iter()
                        .map(|i| format!("{}: {}", i.pointer, i.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                let run = trellis_store::NewRuleRun {
                    rule: rule_id.to_owned(),
                    trigger: "webhook".into(),
                    record_id: None,
                    matched: true,
                    outcome: outcome_text(&evaluation),
                    error: Some(format!("the record was not created: {reason}")),
                    duration_us: elapsed,
                };
                self.store()
                    .log_rule_runs(&loaded.id, loaded.version, &[run])
                    .await?;
                return Err(error);
            }
        };
        self.log_runs(
            &loaded,
            "webhook",
            Some(&created.id),
            &[(elapsed, evaluation)],
        )
        .await?;
        Ok(Some(created))
    }
}
