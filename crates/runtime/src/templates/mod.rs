//! Templates: the gallery (bundled templates and published packages), installing a template as an
//! app (optionally with its sample data), and upgrading an installed app to a newer template version
//! by a three-way merge ([`upgrade`]).
//!
//! An installed app remembers the template version it stands on (its *base*, in `app_templates`), so
//! the next upgrade can tell the analyst's edits from the template's changes.

pub mod bundled;
mod from_app;
pub mod package;
pub mod source;
pub mod testing;
pub mod upgrade;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use trellis_model::{Problem, RawBundle};
use trellis_store::{AppTemplateRecord, TemplateRecord};

use crate::apps::{CreatedApp, check_app_bundle};
use crate::import::ImportFormat;
use crate::{Principal, Runtime, RuntimeError};

pub use package::SignaturePolicy;

/// A template as the gallery lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateSummary {
    pub id: String,
    /// The newest version.
    pub version: String,
    pub name: Value,
    pub description: Value,
    pub publisher: Option<String>,
    pub license: Option<String>,
    pub tags: Vec<String>,
    pub screenshots: Vec<String>,
    /// `bundled` (shipped in the binary) or `published` (uploaded with `POST /api/templates`).
    pub source: &'static str,
    /// Every available version, newest first.
    pub versions: Vec<String>,
    /// Public key (hex) that signed the newest published version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
}

/// How to install a template.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The app id (default: the template id).
    pub app: Option<String>,
    /// Also import the template's `data/` files.
    pub sample_data: bool,
}

/// Sample rows imported for one entity.
#[derive(Debug, Clone, Serialize)]
pub struct SampleImport {
    pub inserted: usize,
    pub rejected: usize,
    /// Why rows were rejected (the first few), as `row N: /field: message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The result of an install.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledApp {
    #[serde(flatten)]
    pub app: CreatedApp,
    pub template: String,
    pub template_version: String,
    /// Per entity, when sample data was asked for.
    pub sample_data: BTreeMap<String, SampleImport>,
}

/// The engine version templates' `engine` ranges are matched against.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A template whose `engine` range excludes this engine cannot be installed or published.
pub fn check_engine(bundle: &trellis_model::AppBundle) -> Vec<Problem> {
    let engine = parse_version(ENGINE_VERSION);
    match &bundle.manifest.engine {
        Some(range) if !range.matches(&engine) => vec![Problem {
            file: trellis_model::bundle::MANIFEST_FILE.into(),
            pointer: "/engine".into(),
            code: "engine_mismatch",
            message: format!(
                "the template needs a Trellis engine {range}, and this is {ENGINE_VERSION}: upgrade Trellis or use a template version made for it"
            ),
            severity: trellis_model::Severity::Error,
        }],
        _ => Vec::new(),
    }
}

fn invalid(problems: Vec<Problem>) -> RuntimeError {
    RuntimeError::InvalidBundle(problems)
}

fn manifest_of(bundle: &RawBundle) -> &Value {
    static NULL: Value = Value::Null;
    bundle
        .0
        .get(trellis_model::bundle::MANIFEST_FILE)
        .unwrap_or(&NULL)
}

fn text_field(manifest: &Value, key: &str) -> Option<String> {
    manifest.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn strings(manifest: &Value, key: &str) -> Vec<String> {
    manifest
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or(semver::Version::new(0, 0, 0))
}

/// The bundle with its manifest id set to `app` (installing under another id).
pub(crate) fn with_app_id(mut bundle: RawBundle, app: &str) -> RawBundle {
    if let Some(Value::Object(manifest)) = bundle.0.get_mut(trellis_model::bundle::MANIFEST_FILE) {
        manifest.insert("id".into(), Value::String(app.to_owned()));
    }
    bundle
}

fn summary(bundle: &RawBundle, source: &'static str, versions: Vec<String>) -> TemplateSummary {
    let manifest = manifest_of(bundle);
    TemplateSummary {
        id: text_field(manifest, "id").unwrap_or_default(),
        version: text_field(manifest, "version").unwrap_or_default(),
        name: manifest.get("name").cloned().unwrap_or_default(),
        description: manifest.get("description").cloned().unwrap_or_default(),
        publisher: text_field(manifest, "publisher"),
        license: text_field(manifest, "license"),
        tags: strings(manifest, "tags"),
        screenshots: strings(manifest, "screenshots"),
        source,
        versions,
        signed_by: None,
        published_at: None,
    }
}

impl Runtime {
    /// The gallery: bundled templates and every published template (its newest version), by id.
    pub async fn list_templates(&self) -> Result<Vec<TemplateSummary>, RuntimeError> {
        let mut by_id: BTreeMap<String, TemplateSummary> = BTreeMap::new();
        for id in bundled::bundled_ids() {
            if let Some(bundle) = bundled::bundled_template(&id) {
                let item = summary(&bundle, "bundled", Vec::new());
                by_id.insert(item.id.clone(), item);
            }
        }
        let mut published: BTreeMap<String, Vec<TemplateRecord>> = BTreeMap::new();
        for record in self.store().list_templates().await? {
            published.entry(record.id.clone()).or_default().push(record);
        }
        for (id, mut records) in published {
            records.sort_by_key(|r| std::cmp::Reverse(parse_version(&r.version)));
            let mut versions: Vec<String> = records.iter().map(|r| r.version.clone()).collect();
            let newest = &records[0];
            let bundle: RawBundle = serde_json::from_str(&newest.bundle)
                .map_err(|e| RuntimeError::Internal(format!("stored template '{id}': {e}")))?;
            let bundled = by_id.remove(&id);
            if let Some(bundled) = &bundled
                && !versions.contains(&bundled.version)
            {
                versions.push(bundled.version.clone());
                versions.sort_by_key(|v| std::cmp::Reverse(parse_version(v)));
            }
            let mut item = summary(&bundle, "published", versions);
            if let Some(bundled) = bundled
                && parse_version(&bundled.version) > parse_version(&item.version)
            {
                item = TemplateSummary {
                    versions: item.versions,
                    ..bundled
                };
            } else {
                item.signed_by = newest.signed_by.clone();
                item.published_at = Some(newest.published_at);
            }
            by_id.insert(id, item);
        }
        for item in by_id.values_mut() {
            if item.versions.is_empty() {
                item.versions.push(item.version.clone());
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// A template's bundle: the given version, or the newest one (published or bundled).
    pub async fn template_bundle(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<RawBundle, RuntimeError> {
        let mut candidates: Vec<(semver::Version, RawBundle)> = Vec::new();
        if let Some(bundle) = bundled::bundled_template(id) {
            let v = text_field(manifest_of(&bundle), "version").unwrap_or_default();
            candidates.push((parse_version(&v), bundle));
        }
        for record in self.store().template_versions(id).await? {
            let bundle: RawBundle = serde_json::from_str(&record.bundle)
                .map_err(|e| RuntimeError::Internal(format!("stored template '{id}': {e}")))?;
            candidates.push((parse_version(&record.version), bundle));
        }
        let wanted = version.map(parse_version);
        candidates
            .into_iter()
            .filter(|(v, _)| wanted.as_ref().is_none_or(|w| w == v))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, bundle)| bundle)
            .ok_or_else(|| match version {
                Some(v) => RuntimeError::NotFound(format!("template '{id}' version {v}")),
                None => RuntimeError::NotFound(format!("template '{id}'")),
            })
    }

    /// A screenshot or other asset of a gallery template (newest version): its media type and bytes.
    pub async fn template_asset(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(&'static str, Vec<u8>), RuntimeError> {
        let not_found = || RuntimeError::NotFound(format!("file '{path}' of template '{id}'"));
        if !(path.starts_with("screenshots/") || path.starts_with("assets/")) {
            return Err(not_found());
        }
        let bundle = self.template_bundle(id, None).await?;
        let value = bundle.0.get(path).ok_or_else(not_found)?;
        let bytes = source::file_bytes(path, value).ok_or_else(not_found)?;
        Ok((source::media_type(path), bytes))
    }

    /// Publish a packed template to the gallery: unpacked safely, checked against its checksums,
    /// its signature and this server's signature policy, validated whole. Platform admins only.
    pub async fn publish_template(
        &self,
        actor: &Principal,
        bytes: &[u8],
        allow_unsigned: bool,
    ) -> Result<TemplateSummary, RuntimeError> {
        if !actor.is_admin {
            return Err(RuntimeError::Forbidden(
                "only platform admins can publish templates".into(),
            ));
        }
        if !package::is_package(bytes) {
            return Err(RuntimeError::InvalidInput(
                "the body must be a template package (application/zip, written by `trellis template pack`)"
                    .into(),
            ));
        }
        let package = package::unpack(bytes, "package.zip").map_err(invalid)?;
        self.settings
            .template_signatures
            .check(&package, allow_unsigned)
            .map_err(|p| invalid(vec![p]))?;
        let (raw, problems) = source::files_to_bundle(&package.files);
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let checked = check_app_bundle(&raw).map_err(invalid)?;
        let mut incomplete = trellis_model::i18n::check_template_translations(&checked);
        incomplete.extend(check_engine(&checked));
        if !incomplete.is_empty() {
            return Err(invalid(incomplete));
        }
        let (_, failures) = testing::run_template_tests(&raw).await?;
        if !failures.is_empty() {
            return Err(invalid(failures));
        }
        let id = checked.id().to_string();
        let version = checked.manifest.version.to_string();
        if package.manifest.template != id || package.manifest.version != version {
            return Err(invalid(vec![Problem {
                file: package::PACKAGE_MANIFEST.into(),
                pointer: "/template".into(),
                code: "tampered",
                message: format!(
                    "the checksum manifest names {} {} but trellis.json says {id} {version}",
                    package.manifest.template, package.manifest.version
                ),
                severity: trellis_model::Severity::Error,
            }]));
        }
        let bundle_text =
            serde_json::to_string(&raw).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        let manifest_text = serde_json::to_string(manifest_of(&raw)).unwrap_or_default();
        self.store()
            .insert_template(&TemplateRecord {
                id: id.clone(),
                version: version.clone(),
                manifest: manifest_text,
                bundle: bundle_text,
                sha256: package.checksum.clone(),
                signed_by: package.signed_by.clone(),
                published_at: Utc::now(),
                published_by: Some(actor.user_id.clone()),
            })
            .await?;
        self.audit(
            Some(actor),
            "template.publish",
            None,
            Some(&id),
            "success",
            serde_json::json!({"version": version, "sha256": package.checksum, "signed_by": package.signed_by}),
        )
        .await?;
        tracing::info!(template = %id, %version, signed = package.signed_by.is_some(), "template published");
        let mut item = summary(&raw, "published", vec![version]);
        item.signed_by = package.signed_by;
        item.published_at = Some(Utc::now());
        Ok(item)
    }

    /// Install a gallery template (bundled or published) as an app.
    pub async fn install_template(
        &self,
        actor: &Principal,
        id: &str,
        version: Option<&str>,
        options: &InstallOptions,
    ) -> Result<InstalledApp, RuntimeError> {
        if !actor.is_admin {
            return Err(RuntimeError::Forbidden(
                "only platform admins can install templates".into(),
            ));
        }
        let bundle = self.template_bundle(id, version).await?;
        self.install_bundle(actor, bundle, options).await
    }

    /// Install a template bundle as an app: create it, remember its template base, import its
    /// sample data when asked. Everything is validated before anything is written.
    pub async fn install_bundle(
        &self,
        actor: &Principal,
        template: RawBundle,
        options: &InstallOptions,
    ) -> Result<InstalledApp, RuntimeError> {
        let checked = check_app_bundle(&template).map_err(invalid)?;
        let mut refused = check_engine(&checked);
        for (dependency, range) in &checked.manifest.dependencies {
            let available = self
                .list_templates()
                .await?
                .into_iter()
                .find(|t| t.id == dependency.as_str())
                .is_some_and(|t| t.versions.iter().any(|v| range.matches(&parse_version(v))));
            if !available {
                refused.push(Problem {
                    file: trellis_model::bundle::MANIFEST_FILE.into(),
                    pointer: format!("/dependencies/{dependency}"),
                    code: "missing_dependency",
                    message: format!(
                        "the template builds on template '{dependency}' {range}, which is not in the gallery: publish it first"
                    ),
                    severity: trellis_model::Severity::Error,
                });
            }
        }
        if !refused.is_empty() {
            return Err(invalid(refused));
        }
        let template_id = checked.id().to_string();
        let template_version = checked.manifest.version.to_string();
        let app_id = options.app.clone().unwrap_or_else(|| template_id.clone());
        let bundle = with_app_id(template, &app_id);
        let created = self.create_app(actor, &bundle, false).await?;
        self.store()
            .set_app_template(&AppTemplateRecord {
                app_id: app_id.clone(),
                template_id: template_id.clone(),
                template_version: template_version.clone(),
                base_bundle: serde_json::to_string(&bundle)
                    .map_err(|e| RuntimeError::Internal(e.to_string()))?,
                installed_at: Utc::now(),
            })
            .await?;
        let mut sample_data = BTreeMap::new();
        if options.sample_data {
            for (entity, format, text) in sample_files(&checked) {
                let report = self
                    .import_records(
                        actor,
                        &app_id,
                        &entity,
                        format,
                        bytes::Bytes::from(text),
                        false,
                        Default::default(),
                        &|_, _| {},
                    )
                    .await?;
                if !report.rejected.is_empty() {
                    tracing::warn!(app = %app_id, %entity, rejected = report.rejected.len(), "sample rows rejected");
                }
                let reasons = report
                    .rejected
                    .iter()
                    .take(5)
                    .flat_map(|row| {
                        let entity = &entity;
                        row.errors.iter().map(move |e| {
                            format!(
                                "data/{entity}: row {}: {}: {}",
                                row.row, e.pointer, e.message
                            )
                        })
                    })
                    .collect();
                sample_data.insert(
                    entity,
                    SampleImport {
                        inserted: report.inserted,
                        rejected: report.rejected.len(),
                        reasons,
                    },
                );
            }
        }
        self.audit(
            Some(actor),
            "template.install",
            Some(&app_id),
            Some(&template_id),
            "success",
            serde_json::json!({"version": template_version, "sample_data": options.sample_data}),
        )
        .await?;
        Ok(InstalledApp {
            app: created,
            template: template_id,
            template_version,
            sample_data,
        })
    }
}

/// Sample data files in an order where relation targets come before the entities pointing at them.
fn sample_files(bundle: &trellis_model::AppBundle) -> Vec<(String, ImportFormat, String)> {
    let mut pending: Vec<&trellis_model::Identifier> = bundle.sample_data.keys().collect();
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|id| {
            bundle.entities.get(*id).is_none_or(|entity| {
                entity.fields.iter().all(|field| {
                    field.annotations.relation.as_ref().is_none_or(|relation| {
                        relation.entity == **id || !pending.iter().any(|p| **p == relation.entity)
                    })
                })
            })
        });
        // A cycle of relations: take them in name order.
        let id = pending.remove(ready.unwrap_or(0));
        ordered.push(id);
    }
    ordered
        .into_iter()
        .filter_map(|id| {
            let (format, text) = match bundle.sample_data.get(id)? {
                trellis_model::bundle::SampleData::Csv(text) => (ImportFormat::Csv, text.clone()),
                trellis_model::bundle::SampleData::Ndjson(text) => {
                    (ImportFormat::Ndjson, text.clone())
                }
            };
            Some((id.to_string(), format, text))
        })
        .collect()
}
