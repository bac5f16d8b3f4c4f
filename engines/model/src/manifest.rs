//! The app manifest, `trellis.json`: who the app is, which version, and which engine it needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Identifier, LocalizedText};

/// `trellis.json` as written by authors (CONTRACT.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis app manifest (trellis.json)")]
pub struct Manifest {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// The app id, used in URLs (`/api/apps/{id}`) and as the template id.
    pub id: Identifier,
    /// Semantic version of this app/template, e.g. `1.2.0`.
    #[schemars(
        with = "String",
        regex(
            pattern = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
        )
    )]
    pub version: semver::Version,
    /// Display name in every required language.
    pub name: LocalizedText,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    #[serde(default)]
    pub publisher: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Range of Trellis engine versions this app works with, e.g. `>=0.1, <1`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub engine: Option<semver::VersionReq>,
    /// Other templates this one builds on: id → version range.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub dependencies: BTreeMap<Identifier, semver::VersionReq>,
    /// Screenshots shown in the gallery (paths inside the template or URLs).
    #[serde(default)]
    pub screenshots: Vec<String>,
    /// Free-form tags shown in the gallery.
    #[serde(default)]
    pub tags: Vec<String>,
}
