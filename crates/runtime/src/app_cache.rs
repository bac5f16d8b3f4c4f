//! Validated app metadata and compiled validators, cached per (app, version). A publish creates a new
//! version number, so a cache entry never goes stale: lookups compare the current version first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use trellis_form::EntityValidator;
use trellis_model::{AppBundle, EntityDefinition, RawBundle, check_bundle};

use crate::RuntimeError;

/// One version of one app, ready to use.
#[derive(Debug)]
pub struct LoadedApp {
    pub id: String,
    pub version: i64,
    pub bundle: AppBundle,
    validators: HashMap<String, EntityValidator>,
    /// The app's flows, checked and with their guards compiled, by id.
    pub flows: std::collections::BTreeMap<String, trellis_flow::CompiledFlow>,
    /// The app's rules, checked and compiled, by id.
    pub rules: std::collections::BTreeMap<String, trellis_rules::CompiledRule>,
    /// The app's reports, checked, by id.
    pub reports: std::collections::BTreeMap<String, trellis_report::CompiledReport>,
    /// The app's dashboard views, checked, by id.
    pub dashboards: std::collections::BTreeMap<String, trellis_report::DashboardDefinition>,
}

impl LoadedApp {
    pub fn load(id: &str, version: i64, bundle_text: &str) -> Result<Self, RuntimeError> {
        let raw: RawBundle = serde_json::from_str(bundle_text).map_err(|e| {
            RuntimeError::Internal(format!("stored bundle of app '{id}' is not JSON: {e}"))
        })?;
        let bundle = check_bundle(&raw).map_err(|p| {
            RuntimeError::Internal(format!(
                "stored bundle of app '{id}' no longer validates ({} problems)",
                p.len()
            ))
        })?;
        let mut validators = HashMap::new();
        for (entity_id, entity) in &bundle.entities {
            let validator = EntityValidator::compile(entity).map_err(RuntimeError::Internal)?;
            validators.insert(entity_id.to_string(), validator);
        }
        let mut flows = trellis_flow::check_flows(&bundle).0;
        for flow in flows.values_mut() {
            flow.app_version = version;
        }
        let mut rules = trellis_rules::check_rules(&bundle).0;
        for rule in rules.values_mut() {
            rule.app_version = version;
        }
        let reports = trellis_report::check_reports(&bundle).0;
        let dashboards = trellis_report::check_dashboards(&bundle, &reports).0;
        Ok(Self {
            id: id.to_owned(),
            version,
            bundle,
            validators,
            flows,
            rules,
            reports,
            dashboards,
        })
    }

    /// The flows bound to an entity.
    pub fn flows_of<'a>(
        &'a self,
        entity: &'a str,
    ) -> impl Iterator<Item = &'a trellis_flow::CompiledFlow> + 'a {
        self.flows
            .values()
            .filter(move |f| f.definition.entity.as_str() == entity)
    }

    /// The entity with this id, or 404.
    pub fn entity(&self, id: &str) -> Result<(&EntityDefinition, &EntityValidator), RuntimeError> {
        match (
            self.bundle.entities.iter().find(|(k, _)| k.as_str() == id),
            self.validators.get(id),
        ) {
            (Some((_, entity)), Some(validator)) => Ok((entity, validator)),
            _ => Err(RuntimeError::NotFound(format!(
                "entity '{id}' in app '{}'",
                self.id
            ))),
        }
    }
}

/// Cache of loaded apps, shared by every request.
#[derive(Debug, Default, Clone)]
pub struct AppCache {
    entries: Arc<RwLock<HashMap<String, Arc<LoadedApp>>>>,
}

impl AppCache {
    pub fn get(&self, id: &str, version: i64) -> Option<Arc<LoadedApp>> {
        let entries = self.entries.read().ok()?;
        entries
            .get(id)
            .filter(|app| app.version == version)
            .cloned()
    }

    pub fn put(&self, app: LoadedApp) -> Arc<LoadedApp> {
        let app = Arc::new(app);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(app.id.clone(), app.clone());
        }
        app
    }
}
