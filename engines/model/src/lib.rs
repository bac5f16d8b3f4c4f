//! Trellis metadata model: the types that describe an app.
//!
//! An app travels as a **bundle** — the JSON form of a template directory (CONTRACT.md §3), keyed by
//! each file's relative path. [`RawBundle`] is what arrives over the wire or from disk; [`check_bundle`]
//! turns it into a validated [`AppBundle`] or returns **every** problem at once, each with its file and
//! JSON pointer ([`Problem`]). Engines only ever accept the checked types.
//!
//! Architecture invariant: this crate is the bottom of the house. It does no IO (no files, no network,
//! no database, no async runtime) and depends on nothing else from Trellis.

pub mod bundle;
pub mod document;
pub mod entity;
pub mod field_kind;
pub mod filter;
pub mod i18n;
pub mod ids;
pub mod localized;
pub mod manifest;
pub mod merge;
pub mod pointer;
pub mod problem;
pub mod role;
pub mod schemas;
pub mod search;
pub mod template_test;

pub use bundle::{AppBundle, RawBundle, check_bundle};
pub use entity::{EntityDefinition, FieldDefinition, OnDelete, RelationSpec, SelectOption};
pub use field_kind::FieldKind;
pub use filter::{CheckedFilter, FieldPath, Filter, FilterLeaf, FilterOp};
pub use ids::{Identifier, IdentifierError};
pub use localized::LocalizedText;
pub use manifest::Manifest;
pub use problem::{Problem, Problems, Severity};
pub use role::{Action, EntityRights, FieldAccess, RoleDefinition};

/// The metadata format version this build writes and reads natively.
pub const FORMAT_VERSION: u32 = 1;
