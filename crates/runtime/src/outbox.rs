//! The outbox worker: actions a committed transition enqueued — webhooks (http and https), record
//! creation, events on related records, mailed notifications — run after commit, retried with
//! exponential backoff, and never roll back what was committed. Each attempt is claimed first (its next attempt time is pushed out), so two servers do
//! not deliver the same entry at once.

use chrono::{DateTime, Duration, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use trellis_flow::ActionDefinition;
use trellis_form::Locale;
use trellis_form::records::to_api;
use trellis_store::flows::{OutboxAttempt, OutboxRow};

use crate::{Principal, Runtime, RuntimeError};

mod drain;
mod waves;

use drain::Pass;
use waves::{OwnEntry, Waves};

/// Attempts before an entry is given up (`failed`, with its last error).
pub const MAX_ATTEMPTS: i64 = 8;

/// Why an attempt did not succeed.
pub(crate) enum Failure {
    /// Try again later (network error, 5xx, 408, 429).
    Retry(String),
    /// Trying again cannot help (4xx, invalid record, event refused).
    Permanent(String),
    /// Nothing to do, and rightly so (a person without an e-mail address): done, with the reason.
    Skipped(String),
}

/// The clients the outbox sends with, built on first use (their TLS set-up reads the root store).
#[derive(Default)]
pub(crate) struct Outgoing {
    webhooks: std::sync::OnceLock<Result<crate::tls::WebhookClient, String>>,
    mailer: std::sync::OnceLock<Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").finish_non_exhaustive()
    }
}

/// Most entries one outbox pass takes (at 100k customers the first night's drain took 11.5 s in
/// passes of 500, 8.5 s of 2,000 and 7.5 s of 5,000: bigger waves share more commits).
pub const OUTBOX_PASS: i64 = 5000;

/// Most entries a pass takes while a write-back runs: bigger passes took the writer and the cores
/// from it (at 1 M customers its write-back took 70 s instead of 43 s beside passes of 5,000).
pub const OUTBOX_PASS_BESIDE_WRITE_BACK: i64 = 500;

/// Most entries of a pass that may be delivered alone (webhooks, mail, updates of related
/// records): those after them are taken only while they can go side by side.
pub const DELIVERED_ALONE_PER_PASS: usize = 100;

fn backoff(attempt: i64) -> Duration {
    Duration::seconds((5_i64 << attempt.clamp(0, 10)).min(3600))
}

impl Runtime {
    /// Deliver due outbox entries (a pass, oldest first); returns how many succeeded.
    ///
    /// A pass takes up to [`OUTBOX_PASS`] entries ([`OUTBOX_PASS_BESIDE_WRITE_BACK`] while a
    /// write-back runs), of which at most [`DELIVERED_ALONE_PER_PASS`]
    /// first ones may be of the kinds delivered alone; it claims them in one transaction.
    /// Consecutive entries that each concern only the record that queued them — events fired on
    /// it, records created from it (the lifecycle moves of a nightly run and the records they
    /// create) — are delivered in waves: a wave holds at most one entry per record (the first wave
    /// each record's first entry, the second its second, …), so entries about one record keep
    /// their order while a wave's events of one entity fire together and its records of one
    /// entity are created together (see [`waves`]), and the outcomes are recorded in one
    /// transaction. Every other entry is delivered alone, in order, after the waves before it.
    /// [`Runtime::drain_outbox`] delivers a backlog pass after pass, several at a time.
    pub async fn run_outbox_once(&self, now: DateTime<Utc>) -> Result<usize, RuntimeError> {
        let pass = self.claim_pass(now, None).await?;
        self.deliver_pass(pass, now).await
    }

    /// How many entries a pass takes now: fewer while a write-back runs (the night's own work first).
    fn pass_size(&self) -> i64 {
        let size = self.settings().outbox_pass.max(1) as i64;
        if self
            .write_backs_running
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            size.min(OUTBOX_PASS_BESIDE_WRITE_BACK)
        } else {
            size
        }
    }

    /// Read and claim the next pass. Beside passes still delivering (`busy`: the records their
    /// entries are about), only side-by-side entries are taken — up to the first entry delivered alone — and
    /// none about a busy record, so each record's entries still go in order.
    pub(super) async fn claim_pass(
        &self,
        now: DateTime<Utc>,
        busy: Option<&[std::sync::Arc<std::collections::HashSet<String>>]>,
    ) -> Result<Pass, RuntimeError> {
        let started = std::time::Instant::now();
        let due = self.store().due_outbox(now, self.pass_size()).await?;
        let read_us = started.elapsed().as_micros() as u64;
        let mut entries: Vec<(OutboxRow, Option<OwnEntry>)> = due
            .into_iter()
            .map(|entry| {
                let own = OwnEntry::of(&entry);
                (entry, own)
            })
            .collect();
        // Beyond the first entries, only a run of side-by-side ones: a pass of slow webhooks
        // stays well inside its claim. Beside a running pass, none delivered alone.
        let alone_allowed = if busy.is_some() {
            0
        } else {
            DELIVERED_ALONE_PER_PASS
        };
        if let Some(cut) = (alone_allowed..entries.len()).find(|&i| entries[i].1.is_none()) {
            entries.truncate(cut);
        }
        if let Some(busy) = busy {
            entries.retain(|(_, own)| {
                own.as_ref()
                    .is_some_and(|own| !busy.iter().any(|records| records.contains(own.record())))
            });
        }
        let parsed_us = started.elapsed().as_micros() as u64;
        let pairs: Vec<(i64, i64)> = entries.iter().map(|(e, _)| (e.seq, e.attempts)).collect();
        let claimed = self
            .store()
            .claim_outbox(&pairs, now, now + Duration::minutes(5))
            .await?;
        if !entries.is_empty() {
            tracing::debug!(
                entries = entries.len(),
                beside_another = busy.is_some(),
                read_us,
                parsed_us,
                claimed_us = started.elapsed().as_micros() as u64,
                "outbox pass claimed"
            );
        }
        let entries = entries
            .into_iter()
            .zip(claimed)
            .filter_map(|(entry, claimed)| claimed.then_some(entry))
            .collect();
        Ok(Pass { entries })
    }

    /// Deliver a claimed pass: its side-by-side entries in waves, the others alone, in order.
    pub(super) async fn deliver_pass(
        &self,
        pass: Pass,
        now: DateTime<Utc>,
    ) -> Result<usize, RuntimeError> {
        let mut delivered = 0;
        let mut waves = Waves::default();
        for (entry, own) in pass.entries {
            match own {
                Some(own) => waves.push(entry, own),
                None => {
                    for wave in waves.take() {
                        delivered += self.deliver_wave(wave, now).await?;
                    }
                    let outcome = self.deliver(&entry).await;
                    delivered += self.finish(vec![(entry, outcome)], now).await?;
                }
            }
        }
        for wave in waves.take() {
            delivered += self.deliver_wave(wave, now).await?;
        }
        Ok(delivered)
    }

    /// Record the outcomes of attempts (one transaction); returns how many succeeded.
    pub(super) async fn finish(
        &self,
        outcomes: Vec<(OutboxRow, Result<(), Failure>)>,
        now: DateTime<Utc>,
    ) -> Result<usize, RuntimeError> {
        let mut delivered = 0;
        let attempts: Vec<OutboxAttempt> = outcomes
            .into_iter()
            .map(|(entry, outcome)| {
                let (status, retry_at, error) = match outcome {
                    Ok(()) => ("done", now, None),
                    Err(Failure::Permanent(reason)) => ("failed", now, Some(reason)),
                    Err(Failure::Skipped(reason)) => ("done", now, Some(reason)),
                    Err(Failure::Retry(reason)) if entry.attempts + 1 >= MAX_ATTEMPTS => (
                        "failed",
                        now,
                        Some(format!("gave up after {MAX_ATTEMPTS} attempts: {reason}")),
                    ),
                    Err(Failure::Retry(reason)) => {
                        ("pending", now + backoff(entry.attempts), Some(reason))
                    }
                };
                if status == "done" && error.is_none() {
                    delivered += 1;
                } else if status == "done" {
                    tracing::info!(seq = entry.seq, kind = %entry.kind, reason = ?error, "outbox entry skipped");
                } else {
                    tracing::warn!(seq = entry.seq, kind = %entry.kind, error = ?error, status, "outbox attempt failed");
                }
                OutboxAttempt {
                    seq: entry.seq,
                    attempts: entry.attempts,
                    status,
                    retry_at,
                    error,
                }
            })
            .collect();
        self.store().finish_outbox(&attempts).await?;
        Ok(delivered)
    }

    pub(super) async fn deliver(&self, entry: &OutboxRow) -> Result<(), Failure> {
        let payload: Value =
            serde_json::from_str(&entry.payload).map_err(|e| Failure::Permanent(e.to_string()))?;
        if entry.kind == "email" {
            return self.mail_notification(entry, &payload).await;
        }
        if let Ok(trellis_rules::RuleAction::UpdateRecords(update)) =
            serde_json::from_value::<trellis_rules::RuleAction>(payload["action"].clone())
        {
            return self.update_records(entry, &payload, &update).await;
        }
        let action: ActionDefinition = serde_json::from_value(payload["action"].clone())
            .map_err(|e| Failure::Permanent(format!("unknown action: {e}")))?;
        let text = |key: &str| payload[key].as_str().unwrap_or_default().to_owned();
        let (entity_id, record_id) = (text("entity"), text("record_id"));
        let permanent = |e: RuntimeError| Failure::Permanent(reason_of(&e));
        // An event on the record itself: firing reads the record (and its run) anyway.
        if let ActionDefinition::FireEvent(fire) = &action
            && fire.relation.is_none()
        {
            return self
                .fire_rule_event(&entry.app_id, &entity_id, &record_id, fire)
                .await;
        }
        let loaded = self.loaded_app(&entry.app_id).await.map_err(permanent)?;
        let (entity, _) = loaded.entity(&entity_id).map_err(permanent)?;
        let row = self
            .store()
            .get_record(&loaded.id, &entity.uid, &record_id)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?
            .ok_or_else(|| Failure::Permanent(format!("record '{record_id}' is gone")))?;
        let record = to_api(entity, &row.data.0);
        let system = Principal::system("system", "system");
        match action {
            ActionDefinition::Webhook(hook) => {
                // Built for the user whose action queued it: nothing their roles hide.
                let mut record = record;
                if let Some(actor) = payload["actor"].as_str()
                    && let Some(user) = self
                        .store()
                        .get_user(actor)
                        .await
                        .map_err(|e| Failure::Retry(e.to_string()))?
                    && !user.is_admin
                {
                    let principal = Principal {
                        user_id: user.id,
                        username: user.username,
                        is_admin: false,
                        scopes: None,
                        access_epoch: self
                            .store()
                            .access_epoch()
                            .await
                            .map_err(|e| Failure::Retry(e.to_string()))?,
                        token_hash: None,
                        address: None,
                    };
                    let checked = self
                        .check(&principal, &loaded, entity)
                        .await
                        .map_err(permanent)?;
                    checked.strip(&mut record);
                }
                let body = json!({
                    "app": loaded.id, "entity": entity_id, "record_id": record_id, "flow": payload["flow"],
                    "event": payload["event"], "record": record, "delivery": entry.seq,
                });
                self.post_webhook(&hook.url, &body.to_string(), entry.seq)
                    .await
            }
            ActionDefinition::CreateRecord(create) => {
                let fields = created_fields(entity, &record_id, &record, &create)?;
                self.create_record(
                    &system,
                    &loaded.id,
                    create.entity.as_str(),
                    &Value::Object(fields),
                    Locale::En,
                )
                .await
                .map(|_| ())
                .map_err(permanent)
            }
            ActionDefinition::FireEvent(fire) => {
                let (targets, target_entity): (Vec<String>, String) = match &fire.relation {
                    None => (vec![record_id.clone()], entity.id.to_string()),
                    Some(relation) => {
                        let targets = match record.get(relation.as_str()) {
                            Some(Value::String(id)) => vec![id.clone()],
                            Some(Value::Array(ids)) => ids
                                .iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect(),
                            _ => Vec::new(),
                        };
                        let target_entity = entity
                            .field(relation.as_str())
                            .and_then(|f| f.annotations.relation.as_ref())
                            .map(|r| r.entity.to_string())
                            .ok_or_else(|| {
                                Failure::Permanent(format!("'{relation}' is not a relation"))
                            })?;
                        (targets, target_entity)
                    }
                };
                for target in targets {
                    self.fire_rule_event(&loaded.id, &target_entity, &target, &fire)
                        .await?;
                }
                Ok(())
            }
            ActionDefinition::Set(_)
            | ActionDefinition::CreateTask(_)
            | ActionDefinition::Notify(_) => Ok(()),
        }
    }

    /// Fire an outbox `fire_event` action's event on record `target` as the system.
    async fn fire_rule_event(
        &self,
        app: &str,
        entity: &str,
        target: &str,
        fire: &trellis_flow::definition::FireEventAction,
    ) -> Result<(), Failure> {
        let fired = self
            .fire_as_system(app, entity, target, fire.flow.as_str(), fire.event.as_str())
            .await;
        waves::event_outcome(target, fire.event.as_str(), fired)
    }

    /// A rule's `update_records`: change the records of another entity that match its filter, with
    /// `$record.field` / `$record_id` taken from the record that triggered the rule.
    async fn update_records(
        &self,
        entry: &OutboxRow,
        payload: &Value,
        update: &trellis_rules::UpdateRecordsAction,
    ) -> Result<(), Failure> {
        let permanent = |e: RuntimeError| Failure::Permanent(reason_of(&e));
        let text = |key: &str| payload[key].as_str().unwrap_or_default().to_owned();
        let (entity_id, record_id) = (text("entity"), text("record_id"));
        let loaded = self.loaded_app(&entry.app_id).await.map_err(permanent)?;
        let (entity, _) = loaded.entity(&entity_id).map_err(permanent)?;
        let row = self
            .store()
            .get_record(&loaded.id, &entity.uid, &record_id)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?
            .ok_or_else(|| Failure::Permanent(format!("record '{record_id}' is gone")))?;
        let record = to_api(entity, &row.data.0);
        let lookup = |name: &str| -> Option<Value> {
            if name == "$record_id" {
                return Some(Value::String(record_id.clone()));
            }
            name.strip_prefix("$record.")
                .map(|field| record.get(field).cloned().unwrap_or(Value::Null))
        };
        // The records to change: those a relation points at, or those a filter selects.
        let (target, ids): (&trellis_model::EntityDefinition, Vec<String>) =
            match (&update.relation, &update.entity, &update.filter) {
                (Some(relation), _, _) => {
                    let target_id = entity
                        .field(relation.as_str())
                        .and_then(|f| f.annotations.relation.as_ref())
                        .map(|r| r.entity.to_string())
                        .ok_or_else(|| {
                            Failure::Permanent(format!("'{relation}' is not a relation"))
                        })?;
                    let (target, _) = loaded.entity(&target_id).map_err(permanent)?;
                    let ids = match record.get(relation.as_str()) {
                        Some(Value::String(id)) => vec![id.clone()],
                        Some(Value::Array(ids)) => ids
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect(),
                        _ => Vec::new(),
                    };
                    (target, ids)
                }
                (None, Some(target_id), Some(raw)) => {
                    let (target, _) = loaded.entity(target_id.as_str()).map_err(permanent)?;
                    let filter = trellis_form::check_filter(
                        &loaded.bundle.entities,
                        target,
                        raw,
                        "",
                        &lookup,
                    )
                    .map_err(|issues| {
                        Failure::Permanent(format!(
                            "the update_records filter does not fit {}: {}",
                            target.id,
                            issues
                                .iter()
                                .map(|i| format!("{} {}", i.pointer, i.message))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ))
                    })?;
                    let rows = self
                        .store()
                        .list_records(
                            &loaded.id,
                            &target.uid,
                            &trellis_store::ListQuery {
                                filter: &filter,
                                search: None,
                                sort: &[],
                                cursor: None,
                                limit: trellis_rules::UPDATE_RECORDS_LIMIT as i64 + 1,
                                include_deleted: false,
                            },
                        )
                        .await
                        .map_err(|e| Failure::Retry(e.to_string()))?;
                    (target, rows.into_iter().map(|r| r.id).collect())
                }
                _ => {
                    return Err(Failure::Permanent(
                        "update_records names no records to change".into(),
                    ));
                }
            };
        if ids.len() > trellis_rules::UPDATE_RECORDS_LIMIT {
            return Err(Failure::Permanent(format!(
                "the action would change more than {} records of {}; narrow its filter",
                trellis_rules::UPDATE_RECORDS_LIMIT,
                target.id
            )));
        }
        let patch: Map<String, Value> = update
            .set
            .iter()
            .map(|(name, value)| {
                let value = value
                    .as_str()
                    .and_then(|v| v.starts_with('$').then(|| lookup(v)).flatten())
                    .unwrap_or_else(|| value.clone());
                (name.clone(), value)
            })
            .collect();
        let expressions: Vec<(String, trellis_script::Script)> = patch
            .iter()
            .filter_map(|(name, value)| {
                let source = value.as_str()?.strip_prefix('=')?;
                Some(
                    trellis_script::compile(source)
                        .map(|script| (name.clone(), script))
                        .map_err(|e| Failure::Permanent(format!("{name}: {e}"))),
                )
            })
            .collect::<Result<_, _>>()?;
        let source = Value::Object(with_every_field(entity, &record));
        let system = Principal::system("system", "system");
        for id in ids {
            // Read–compute–write with the target's version; a concurrent change re-reads.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let mut values = patch.clone();
                let mut expected = None;
                if !expressions.is_empty() {
                    let current = self
                        .get_record(&system, &loaded.id, target.id.as_str(), &id)
                        .await
                        .map_err(permanent)?;
                    let fields = with_every_field(target, &current.data);
                    for (name, script) in &expressions {
                        let value = script
                            .eval(&fields, &[("source", &source)])
                            .map_err(|e| Failure::Permanent(format!("{name}: {e}")))?;
                        values.insert(name.clone(), value);
                    }
                    expected = Some(current.version);
                }
                match self
                    .update_record(
                        &system,
                        &loaded.id,
                        target.id.as_str(),
                        &id,
                        &Value::Object(values),
                        expected,
                        Locale::En,
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(RuntimeError::PreconditionFailed(_)) if attempts < 20 => continue,
                    Err(error) => return Err(permanent(error)),
                }
            }
        }
        Ok(())
    }

    /// POST `body` to `url`, signed with the webhook secret.
    async fn post_webhook(&self, url: &str, body: &str, delivery: i64) -> Result<(), Failure> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| Failure::Permanent(format!("bad URL '{url}': {e}")))?;
        let mut request = hyper::Request::post(uri)
            .header("content-type", "application/json")
            .header("user-agent", "trellis-webhooks")
            .header("x-trellis-delivery", delivery.to_string());
        if let Some(secret) = &self.settings.webhook_secret {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|e| Failure::Permanent(e.to_string()))?;
            mac.update(body.as_bytes());
            let signature = hex::encode(mac.finalize().into_bytes());
            request = request.header("x-trellis-signature", format!("sha256={signature}"));
        }
        let request = request
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_owned(),
            )))
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        let client = self
            .outgoing
            .webhooks
            .get_or_init(|| crate::tls::webhook_client(&self.settings.extra_roots))
            .as_ref()
            .map_err(|e| Failure::Permanent(format!("cannot set up TLS: {e}")))?;
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(10), client.request(request))
                .await
                .map_err(|_| Failure::Retry("no answer within 10 s".into()))?
                .map_err(|e| Failure::Retry(format!("cannot reach {url}: {}", with_causes(&e))))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(Failure::Permanent(format!("{url} answered {status}")))
        } else {
            Err(Failure::Retry(format!("{url} answered {status}")))
        }
    }
}

impl Runtime {
    /// Mail one notification (an `email` entry): to the person's address, in their language.
    async fn mail_notification(&self, entry: &OutboxRow, payload: &Value) -> Result<(), Failure> {
        let Some(settings) = &self.settings.mail else {
            return Err(Failure::Retry(
                "SMTP is not configured on this server (TRELLIS_SMTP_URL); another server may send it".into(),
            ));
        };
        let user_id = payload["user"].as_str().unwrap_or_default();
        let user = self
            .store()
            .get_user(user_id)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?
            .ok_or_else(|| Failure::Skipped(format!("not mailed: user '{user_id}' is gone")))?;
        if user.disabled {
            return Err(Failure::Skipped(format!(
                "not mailed: {} is disabled",
                user.username
            )));
        }
        let Some(address) = user.email.as_deref() else {
            return Err(Failure::Skipped(format!(
                "not mailed: {} has no e-mail address",
                user.username
            )));
        };
        let name = user.display_name.clone().unwrap_or(user.username.clone());
        let to = format!("{name} <{address}>")
            .parse::<lettre::message::Mailbox>()
            .or_else(|_| address.parse())
            .map_err(|e| {
                Failure::Permanent(format!("'{address}' is not an e-mail address: {e}"))
            })?;
        let app_name = match self.loaded_app(&entry.app_id).await {
            Ok(loaded) => json!(loaded.bundle.manifest.name),
            Err(_) => json!(entry.app_id),
        };
        let text = |key: &str| payload[key].as_str().unwrap_or_default();
        let link = settings.public_url.as_ref().and_then(|base| {
            (!text("entity").is_empty() && !text("record_id").is_empty()).then(|| {
                format!(
                    "{base}/apps/{}/e/{}/{}",
                    entry.app_id,
                    text("entity"),
                    text("record_id")
                )
            })
        });
        let composed = crate::mail::compose(
            &payload["message"],
            user.locale.as_deref(),
            &app_name,
            link.as_deref(),
        );
        let message =
            crate::mail::message(settings, to, composed, entry.seq).map_err(Failure::Permanent)?;
        let transport = self
            .outgoing
            .mailer
            .get_or_init(|| crate::mail::transport(settings, &self.settings.extra_roots))
            .as_ref()
            .map_err(|e| Failure::Permanent(e.clone()))?;
        crate::mail::send(transport, message)
            .await
            .map_err(|(retry, reason)| {
                if retry {
                    Failure::Retry(reason)
                } else {
                    Failure::Permanent(reason)
                }
            })
    }

    /// The outbox entry that mails `message` to `user` too, when SMTP is configured.
    pub(crate) fn mail_entry(
        &self,
        user: &str,
        message: &Value,
        entity: &str,
        record_id: &str,
    ) -> Option<(String, Value)> {
        self.settings.mail.as_ref().map(|_| {
            (
                "email".to_owned(),
                crate::mail::outbox_payload(user, message, entity, record_id),
            )
        })
    }
}

/// `error` and its causes, outermost first (a client error alone says "Connect"; the cause says
/// which certificate was refused and why).
/// The fields of a record a `create_record` action creates from record `record_id` (`record`,
/// fields by name): `"$record_id"`, `"$record.field"` and `"=expr"` (a rhai expression over the
/// record's fields) taken from it, other values as given.
fn created_fields(
    entity: &trellis_model::EntityDefinition,
    record_id: &str,
    record: &Map<String, Value>,
    create: &trellis_flow::definition::CreateRecordAction,
) -> Result<Map<String, Value>, Failure> {
    let mut fields = Map::new();
    for (name, value) in &create.fields {
        let value = match value.as_str() {
            Some("$record_id") => Value::String(record_id.to_owned()),
            Some(path) if path.starts_with("$record.") => record
                .get(&path["$record.".len()..])
                .cloned()
                .unwrap_or(Value::Null),
            Some(expression) if expression.starts_with('=') => {
                trellis_script::compile(&expression[1..])
                    .and_then(|script| script.eval(&with_every_field(entity, record), &[]))
                    .map_err(|e| Failure::Permanent(format!("{name}: {e}")))?
            }
            _ => value.clone(),
        };
        fields.insert(name.clone(), value);
    }
    Ok(fields)
}

/// Why an action failed, as the outbox records it: a refused record names each problem (field
/// pointer, code and message), so the failed entry says what to fix.
fn reason_of(error: &RuntimeError) -> String {
    match error {
        RuntimeError::InvalidRecord(issues) => format!(
            "{error}: {}",
            issues
                .iter()
                .map(|i| format!("{} {}: {}", i.pointer, i.code, i.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.to_string(),
    }
}

fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A record's fields with every field of its entity present (`()` in rhai for the empty ones), so
/// expressions can test `field == ()` instead of failing on a missing variable.
fn with_every_field(
    entity: &trellis_model::EntityDefinition,
    record: &Map<String, Value>,
) -> Map<String, Value> {
    let mut all = record.clone();
    for field in &entity.fields {
        all.entry(field.name.to_string()).or_insert(Value::Null);
    }
    all
}
