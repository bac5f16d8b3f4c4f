//! Publishing an app to the gallery as a template: the app's current bundle, at a version the
//! publisher chooses, packed (unsigned) and put through the same checks as an uploaded package.

use serde_json::Value;
use trellis_model::RawBundle;

use super::{TemplateSummary, package, source};
use crate::{Principal, Runtime, RuntimeError};

impl Runtime {
    /// Publish the app's current metadata as version `version` (default: its manifest version) of
    /// the template with the app's id. Platform admins only; the template must pass validation,
    /// translation completeness and its own tests, like any published package.
    pub async fn publish_app_as_template(
        &self,
        actor: &Principal,
        app: &str,
        version: Option<&str>,
    ) -> Result<TemplateSummary, RuntimeError> {
        let (_, text) = self.export_bundle(actor, app).await?;
        let mut bundle: RawBundle = serde_json::from_str(&text)
            .map_err(|e| RuntimeError::Internal(format!("stored bundle: {e}")))?;
        let manifest = bundle
            .0
            .get_mut("trellis.json")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| RuntimeError::Internal("the app has no manifest".into()))?;
        if let Some(version) = version {
            manifest.insert("version".into(), Value::String(version.to_owned()));
        }
        let id = manifest
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(app)
            .to_owned();
        let version = manifest
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("0.1.0")
            .to_owned();
        let files = source::bundle_to_files(&bundle);
        let bytes = package::pack(&files, &id, &version, None)
            .map_err(|e| RuntimeError::Internal(format!("packing: {e}")))?;
        self.publish_template(actor, &bytes, true).await
    }
}
