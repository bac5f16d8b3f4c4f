//! App bundles: the JSON form of a template directory, and the check that validates one whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::document::{DocumentEnvelope, DocumentKind};
use crate::entity::{check_entity, check_format_version, warn_missing_locales};
use crate::i18n::{TranslationFile, is_language_tag};
use crate::pointer::deserialize_at;
use crate::{EntityDefinition, Identifier, Manifest, Problem, Problems, RoleDefinition};

/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "trellis.json";

/// A bundle as received: relative path → JSON value (JSON files) or string (other text files).
/// Key order and content are kept exactly, so an exported bundle equals the imported one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct RawBundle(pub Map<String, Value>);

/// Sample data shipped with an app, still as text; the form engine parses and validates the rows.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleData {
    Csv(String),
    Ndjson(String),
}

/// A validated app bundle. Only [`check_bundle`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppBundle {
    pub manifest: Manifest,
    pub entities: BTreeMap<Identifier, EntityDefinition>,
    pub documents: BTreeMap<(DocumentKind, Identifier), DocumentEnvelope>,
    /// rhai scripts beside rules: rule id → source.
    pub scripts: BTreeMap<Identifier, String>,
    pub translations: BTreeMap<String, TranslationFile>,
    pub sample_data: BTreeMap<Identifier, SampleData>,
    /// Roles defined by the bundle (built-in roles are added by [`AppBundle::roles`]).
    pub role_files: BTreeMap<Identifier, RoleDefinition>,
    /// Problems that do not block (missing translations, …).
    pub warnings: Vec<Problem>,
    raw: RawBundle,
}

impl AppBundle {
    /// The bundle exactly as it was submitted.
    pub fn raw(&self) -> &RawBundle {
        &self.raw
    }

    pub fn id(&self) -> &Identifier {
        &self.manifest.id
    }

    /// Every role of the app: the built-in ones, replaced by the bundle's files of the same id
    /// (except `app_admin`), then the bundle's own.
    pub fn roles(&self) -> Vec<RoleDefinition> {
        let mut roles: Vec<RoleDefinition> = crate::role::built_in_roles()
            .into_iter()
            .map(|role| match self.role_files.get(&role.id) {
                Some(file) if role.id.as_str() != crate::role::APP_ADMIN => file.clone(),
                _ => role,
            })
            .collect();
        for (id, role) in &self.role_files {
            if !roles.iter().any(|r| &r.id == id) {
                roles.push(role.clone());
            }
        }
        roles
    }
}

/// What a path inside a bundle is.
enum FileRole {
    Manifest,
    Entity(Identifier),
    Document(DocumentKind, Identifier),
    Role(Identifier),
    Script(Identifier),
    Translation(String),
    Data(Identifier, bool),
    /// README, screenshots and other assets: kept, not interpreted.
    Asset,
}

fn classify(path: &str) -> Result<FileRole, String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("path must be relative, use '/' and stay inside the template".into());
    }
    if path == MANIFEST_FILE {
        return Ok(FileRole::Manifest);
    }
    if path == "README.md" || path.starts_with("assets/") || path.starts_with("screenshots/") {
        return Ok(FileRole::Asset);
    }
    let (folder, name) = path.split_once('/').ok_or_else(unknown_file_hint)?;
    if name.contains('/') {
        return Err(unknown_file_hint());
    }
    let stem = |suffix: &str| -> Result<Identifier, String> {
        let stem = name.strip_suffix(suffix).ok_or_else(unknown_file_hint)?;
        Identifier::parse(stem).map_err(|e| format!("file name: {e}"))
    };
    match folder {
        "entities" => stem(".schema.json").map(FileRole::Entity),
        "roles" => stem(".role.json").map(FileRole::Role),
        "rules" if name.ends_with(".rhai") => stem(".rhai").map(FileRole::Script),
        "i18n" => {
            let locale = name.strip_suffix(".json").ok_or_else(unknown_file_hint)?;
            if is_language_tag(locale) {
                Ok(FileRole::Translation(locale.to_owned()))
            } else {
                Err(format!(
                    "'{locale}' is not a language tag such as en or zh-CN"
                ))
            }
        }
        "data" if name.ends_with(".csv") => stem(".csv").map(|id| FileRole::Data(id, true)),
        "data" if name.ends_with(".ndjson") => stem(".ndjson").map(|id| FileRole::Data(id, false)),
        _ => {
            for kind in DocumentKind::all() {
                let (kind_folder, suffix) = kind.layout();
                if folder == kind_folder {
                    return stem(suffix).map(|id| FileRole::Document(kind, id));
                }
            }
            Err(unknown_file_hint())
        }
    }
}

fn unknown_file_hint() -> String {
    "unknown file: a template holds trellis.json, entities/<id>.schema.json, flows/<id>.flow.json, \
     rules/<id>.rule.json, rules/<id>.rhai, reports/<id>.report.json, views/<id>.view.json, \
     roles/<id>.role.json, i18n/<locale>.json, data/<entity>.csv|ndjson, tests/<name>.test.json, README.md, assets/…"
        .into()
}

/// Validate a whole bundle, reporting every problem at once.
pub fn check_bundle(raw: &RawBundle) -> Result<AppBundle, Vec<Problem>> {
    let mut problems = Problems::default();
    let mut manifest = None;
    let mut entities = BTreeMap::new();
    let mut documents = BTreeMap::new();
    let mut scripts = BTreeMap::new();
    let mut translations = BTreeMap::new();
    let mut sample_data = BTreeMap::new();
    let mut role_files = BTreeMap::new();

    for (path, value) in &raw.0 {
        let role = match classify(path) {
            Ok(role) => role,
            Err(message) => {
                problems.error(path, "", "unknown_file", message);
                continue;
            }
        };
        match role {
            FileRole::Manifest => match deserialize_at::<Manifest>(value, "") {
                Ok(m) => {
                    check_format_version(path, "/format_version", m.format_version, &mut problems);
                    warn_missing_locales(path, "/name", &m.name, &mut problems);
                    manifest = Some(m);
                }
                Err(first) => report_all(
                    path,
                    "manifest",
                    value,
                    first,
                    "invalid_manifest",
                    &mut problems,
                ),
            },
            FileRole::Entity(id) => {
                if let (Some(entity), _) = check_entity(path, &id, value, &mut problems) {
                    entities.insert(id, entity);
                }
            }
            FileRole::Document(kind, id) => match deserialize_at::<DocumentEnvelope>(value, "") {
                Ok(document) => {
                    check_format_version(
                        path,
                        "/format_version",
                        document.format_version,
                        &mut problems,
                    );
                    if document.id != id {
                        problems.error(
                            path,
                            "/id",
                            "id_mismatch",
                            format!("id '{}' must equal the file name '{id}'", document.id),
                        );
                    }
                    documents.insert((kind, id), document);
                }
                Err(first) => report_all(
                    path,
                    kind.schema_name(),
                    value,
                    first,
                    "invalid_document",
                    &mut problems,
                ),
            },
            FileRole::Role(id) => match deserialize_at::<RoleDefinition>(value, "") {
                Ok(role) => {
                    check_format_version(
                        path,
                        "/format_version",
                        role.format_version,
                        &mut problems,
                    );
                    warn_missing_locales(path, "/name", &role.name, &mut problems);
                    if role.id != id {
                        problems.error(
                            path,
                            "/id",
                            "id_mismatch",
                            format!("id '{}' must equal the file name '{id}'", role.id),
                        );
                    }
                    if id.as_str() == crate::role::APP_ADMIN {
                        problems.error(
                            path,
                            "/id",
                            "reserved_role",
                            "app_admin is built in and always has every right; choose another id",
                        );
                    }
                    role_files.insert(id, role);
                }
                Err(first) => report_all(path, "role", value, first, "invalid_role", &mut problems),
            },
            FileRole::Script(id) => match value {
                Value::String(source) => {
                    scripts.insert(id, source.clone());
                }
                _ => problems.error(
                    path,
                    "",
                    "not_text",
                    "a .rhai file must be given as a string",
                ),
            },
            FileRole::Translation(locale) => match deserialize_at::<TranslationFile>(value, "") {
                Ok(file) => {
                    check_format_version(
                        path,
                        "/format_version",
                        file.format_version,
                        &mut problems,
                    );
                    translations.insert(locale, file);
                }
                Err(first) => report_all(
                    path,
                    "i18n",
                    value,
                    first,
                    "invalid_translations",
                    &mut problems,
                ),
            },
            FileRole::Data(entity, is_csv) => match value {
                Value::String(text) => {
                    if let Some(data) = check_sample_data(path, text, is_csv, &mut problems) {
                        sample_data.insert(entity, data);
                    }
                }
                _ => problems.error(
                    path,
                    "",
                    "not_text",
                    "sample data must be given as a string (CSV or NDJSON text)",
                ),
            },
            FileRole::Asset => {}
        }
    }

    if !raw.0.contains_key(MANIFEST_FILE) {
        problems.error(
            MANIFEST_FILE,
            "",
            "missing_manifest",
            "the bundle has no trellis.json manifest",
        );
    }
    check_cross_references(
        raw,
        &entities,
        &documents,
        &scripts,
        &sample_data,
        &mut problems,
    );
    crate::role::check_role_references(&role_files, &entities, &mut problems);

    let has_errors = problems.has_errors();
    let all = problems.into_vec();
    match manifest {
        Some(manifest) if !has_errors => Ok(AppBundle {
            manifest,
            entities,
            documents,
            scripts,
            translations,
            sample_data,
            role_files,
            warnings: all,
            raw: raw.clone(),
        }),
        // Errors and warnings together, sorted by file and pointer.
        _ => Err(all),
    }
}

/// serde stops at the first error; the file's generated JSON Schema finds all of them. Report the
/// schema's findings, or serde's when the schema has none (e.g. a bad semver string).
fn report_all(
    path: &str,
    schema_name: &str,
    value: &Value,
    first: (String, String),
    code: &'static str,
    problems: &mut Problems,
) {
    let found = crate::schemas::validate_against(schema_name, value);
    if found.is_empty() {
        problems.error(path, first.0, code, first.1);
    }
    for (pointer, message) in found {
        problems.error(path, pointer, code, message);
    }
}

fn check_sample_data(
    path: &str,
    text: &str,
    is_csv: bool,
    problems: &mut Problems,
) -> Option<SampleData> {
    if is_csv {
        let header = text.lines().next().unwrap_or_default();
        if header.trim().is_empty() {
            problems.error(
                path,
                "",
                "missing_header",
                "a CSV file needs a header row naming the fields",
            );
            return None;
        }
        return Some(SampleData::Csv(text.to_owned()));
    }
    let mut ok = true;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(_)) => {}
            Ok(_) => {
                problems.error(
                    path,
                    format!("/{index}"),
                    "not_an_object",
                    format!("line {} is not a JSON object", index + 1),
                );
                ok = false;
            }
            Err(error) => {
                problems.error(
                    path,
                    format!("/{index}"),
                    "invalid_json",
                    format!("line {}: {error}", index + 1),
                );
                ok = false;
            }
        }
    }
    ok.then(|| SampleData::Ndjson(text.to_owned()))
}

fn check_cross_references(
    raw: &RawBundle,
    entities: &BTreeMap<Identifier, EntityDefinition>,
    documents: &BTreeMap<(DocumentKind, Identifier), DocumentEnvelope>,
    scripts: &BTreeMap<Identifier, String>,
    sample_data: &BTreeMap<Identifier, SampleData>,
    problems: &mut Problems,
) {
    // Entities that failed their own check still exist as files: don't report them as unknown.
    let entity_exists = |id: &Identifier| {
        entities.contains_key(id) || raw.0.contains_key(&format!("entities/{id}.schema.json"))
    };
    let mut entity_uids = BTreeMap::new();
    for entity in entities.values() {
        let file = format!("entities/{}.schema.json", entity.id);
        if let Some(other) = entity_uids.insert(entity.uid.clone(), entity.id.clone()) {
            problems.error(
                &file,
                "/x-trellis/uid",
                "duplicate_entity_uid",
                format!("entity uid '{}' is also used by '{other}'", entity.uid),
            );
        }
        for field in &entity.fields {
            if let Some(relation) = &field.annotations.relation
                && !entity_exists(&relation.entity)
            {
                problems.error(
                    &file,
                    format!("/properties/{}/x-trellis/relation/entity", field.name),
                    "unknown_entity",
                    format!(
                        "relation target '{}' is not an entity of this app",
                        relation.entity
                    ),
                );
            }
        }
    }
    for ((kind, id), document) in documents {
        let (folder, suffix) = kind.layout();
        if let Some(entity) = &document.entity
            && !entity_exists(entity)
        {
            problems.error(
                &format!("{folder}/{id}{suffix}"),
                "/entity",
                "unknown_entity",
                format!("entity '{entity}' is not an entity of this app"),
            );
        }
    }
    for id in scripts.keys() {
        if !documents.contains_key(&(DocumentKind::Rule, id.clone()))
            && !raw.0.contains_key(&format!("rules/{id}.rule.json"))
        {
            problems.error(
                &format!("rules/{id}.rhai"),
                "",
                "orphan_script",
                format!("no rules/{id}.rule.json uses this script"),
            );
        }
    }
    for (entity, data) in sample_data {
        if !entity_exists(entity) {
            let extension = match data {
                SampleData::Csv(_) => "csv",
                SampleData::Ndjson(_) => "ndjson",
            };
            problems.error(
                &format!("data/{entity}.{extension}"),
                "",
                "unknown_entity",
                format!("'{entity}' is not an entity of this app"),
            );
        }
    }
}
