//! Packed templates: one zip file holding the template's files, a checksum manifest
//! (`.trellis/package.json`: the sha256 of every file) and optionally the publisher's ed25519
//! signature over that manifest (`.trellis/signature.json`).
//!
//! Unpacking trusts nothing: entry names that escape the template (zip-slip: `..`, absolute paths,
//! backslashes), symlinks, more than [`MAX_ENTRIES`] entries, a file over [`MAX_FILE_BYTES`] or more
//! than [`MAX_TOTAL_BYTES`] in all (counted while inflating, not from the headers) are refused; so
//! is any file that is missing from the checksum manifest, listed but absent, or whose bytes do not
//! match. Every problem names the entry and says what to do.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trellis_model::{Problem, Problems};

use super::source::{MAX_FILE_BYTES, TemplateFile};

/// The checksum manifest inside a package.
pub const PACKAGE_MANIFEST: &str = ".trellis/package.json";
/// The publisher's signature over [`PACKAGE_MANIFEST`].
pub const PACKAGE_SIGNATURE: &str = ".trellis/signature.json";
/// Most entries a package may hold.
pub const MAX_ENTRIES: usize = 5_000;
/// Most bytes all files of a package may inflate to.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// `.trellis/package.json`: what the package holds, each file with its sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    pub format_version: u32,
    pub template: String,
    pub version: String,
    /// Relative path → lowercase hex sha256 of the file's bytes.
    pub files: BTreeMap<String, String>,
}

/// `.trellis/signature.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The publisher's public key, 32 bytes as hex.
    pub public_key: String,
    /// Signature over the exact bytes of `.trellis/package.json`, 64 bytes as hex.
    pub signature: String,
}

/// A package as unpacked and checked against its own checksum manifest and signature.
#[derive(Debug, Clone)]
pub struct UnpackedPackage {
    pub files: Vec<TemplateFile>,
    pub manifest: PackageManifest,
    /// sha256 of the checksum manifest: identifies the package's whole content.
    pub checksum: String,
    /// The public key (hex) whose valid signature the package carries.
    pub signed_by: Option<String>,
}

/// Which packages may be installed or published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Refuse unsigned packages.
    pub require_signature: bool,
    /// When not empty, only packages signed by one of these public keys (hex) are accepted.
    pub trusted_keys: Vec<String>,
}

impl SignaturePolicy {
    /// `TRELLIS_REQUIRE_SIGNED_TEMPLATES=true` and `TRELLIS_TRUSTED_KEYS=hex,hex`.
    pub fn from_env() -> Self {
        let require_signature = std::env::var("TRELLIS_REQUIRE_SIGNED_TEMPLATES")
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        let trusted_keys = std::env::var("TRELLIS_TRUSTED_KEYS")
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        Self {
            require_signature,
            trusted_keys,
        }
    }

    /// Refuse a package this policy does not accept. `allow_unsigned` is the caller's explicit
    /// permission to install an unsigned package although signatures are required.
    pub fn check(&self, package: &UnpackedPackage, allow_unsigned: bool) -> Result<(), Problem> {
        match &package.signed_by {
            None if self.require_signature && !allow_unsigned => Err(problem(
                PACKAGE_SIGNATURE,
                "unsigned_package",
                "the package is not signed and this server requires signed templates: ask the publisher for a signed package (trellis template pack --sign KEY), or allow unsigned packages explicitly",
            )),
            Some(key) if !self.trusted_keys.is_empty() && !self.trusted_keys.contains(key) => {
                Err(problem(
                    PACKAGE_SIGNATURE,
                    "untrusted_publisher",
                    format!(
                        "the package is signed by key {key}, which is not among the trusted publisher keys (TRELLIS_TRUSTED_KEYS)"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

fn problem(file: &str, code: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_owned(),
        pointer: String::new(),
        code,
        message: message.into(),
        severity: trellis_model::Severity::Error,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A new random signing key (its 32-byte secret as hex) and its public key (hex).
pub fn generate_key() -> (String, String) {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let key = SigningKey::from_bytes(&secret);
    (
        hex::encode(secret),
        hex::encode(key.verifying_key().to_bytes()),
    )
}

/// Parse a signing key written by [`generate_key`] (hex, surrounding whitespace ignored).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|_| "the key is not hex".to_owned())?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an ed25519 secret key is 32 bytes (64 hex digits)".to_owned())?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Pack template files (as read from the template directory) into zip bytes, signed when a key
/// is given.
pub fn pack(
    files: &[TemplateFile],
    template: &str,
    version: &str,
    signing_key: Option<&SigningKey>,
) -> Result<Vec<u8>, std::io::Error> {
    let manifest = PackageManifest {
        format_version: 1,
        template: template.to_owned(),
        version: version.to_owned(),
        files: files
            .iter()
            .map(|f| (f.path.clone(), sha256_hex(&f.bytes)))
            .collect(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), std::io::Error> {
        writer
            .start_file(name, options)
            .map_err(std::io::Error::other)?;
        writer.write_all(bytes)
    };
    add(PACKAGE_MANIFEST, &manifest_bytes)?;
    if let Some(key) = signing_key {
        let signature = PackageSignature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&manifest_bytes).to_bytes()),
        };
        add(
            PACKAGE_SIGNATURE,
            &serde_json::to_vec_pretty(&signature).map_err(std::io::Error::other)?,
        )?;
    }
    for file in files {
        add(&file.path, &file.bytes)?;
    }
    let cursor = writer.finish().map_err(std::io::Error::other)?;
    Ok(cursor.into_inner())
}

/// Whether bytes look like a zip archive.
pub fn is_package(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// A safe entry name: relative, `/`-separated, no `.`/`..` parts, no drive letters or control
/// characters.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains(':')
        && !name.chars().any(char::is_control)
        && name
            .trim_end_matches('/')
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Unpack and check a package. `archive` names the package in problems.
pub fn unpack(bytes: &[u8], archive: &str) -> Result<UnpackedPackage, Vec<Problem>> {
    let mut problems = Problems::default();
    let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(zip) => zip,
        Err(error) => {
            return Err(vec![problem(
                archive,
                "not_a_package",
                format!(
                    "not a template package (a zip written by `trellis template pack`): {error}"
                ),
            )]);
        }
    };
    if zip.len() > MAX_ENTRIES {
        return Err(vec![problem(
            archive,
            "too_many_entries",
            format!(
                "the package has {} entries; the limit is {MAX_ENTRIES}",
                zip.len()
            ),
        )]);
    }
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let mut entry = match zip.by_index(index) {
            Ok(entry) => entry,
            Err(error) => {
                problems.error(
                    archive,
                    "",
                    "unreadable_entry",
                    format!("entry {index}: {error}"),
                );
                continue;
            }
        };
        let name = entry.name().to_owned();
        if !safe_name(&name) {
            problems.error(
                &name,
                "",
                "unsafe_path",
                "entry path escapes the template (absolute, '..', '\\' or a drive): the package is refused",
            );
            continue;
        }
        if entry.is_symlink() {
            problems.error(
                &name,
                "",
                "symlink",
                "symlinks are not allowed in a package",
            );
            continue;
        }
        if entry.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        let read = (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut content);
        if let Err(error) = read {
            problems.error(
                &name,
                "",
                "unreadable_entry",
                format!("cannot inflate: {error}"),
            );
            continue;
        }
        if content.len() as u64 > MAX_FILE_BYTES {
            problems.error(
                &name,
                "",
                "too_large",
                format!("the file inflates to more than {MAX_FILE_BYTES} bytes"),
            );
            continue;
        }
        total += content.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(vec![problem(
                archive,
                "too_large",
                format!("the package inflates to more than {MAX_TOTAL_BYTES} bytes"),
            )]);
        }
        if entries.insert(name.clone(), content).is_some() {
            problems.error(
                &name,
                "",
                "duplicate_entry",
                "the package holds this path twice",
            );
        }
    }
    if problems.has_errors() {
        return Err(problems.into_vec());
    }
    let Some(manifest_bytes) = entries.remove(PACKAGE_MANIFEST) else {
        return Err(vec![problem(
            archive,
            "missing_checksums",
            format!(
                "the package has no {PACKAGE_MANIFEST}: pack templates with `trellis template pack`"
            ),
        )]);
    };
    let manifest: PackageManifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(manifest) => manifest,
        Err(error) => {
            return Err(vec![problem(
                PACKAGE_MANIFEST,
                "invalid_checksums",
                error.to_string(),
            )]);
        }
    };
    let signed_by = match entries.remove(PACKAGE_SIGNATURE) {
        None => None,
        Some(bytes) => match verify_signature(&bytes, &manifest_bytes) {
            Ok(key) => Some(key),
            Err(message) => return Err(vec![problem(PACKAGE_SIGNATURE, "bad_signature", message)]),
        },
    };
    for (name, content) in &entries {
        match manifest.files.get(name) {
            None => problems.error(
                name,
                "",
                "tampered",
                "this file is not in the package's checksum manifest: the package was changed after packing",
            ),
            Some(expected) if *expected != sha256_hex(content) => problems.error(
                name,
                "",
                "tampered",
                "the file's sha256 does not match the checksum manifest: the package was changed after packing",
            ),
            Some(_) => {}
        }
    }
    for name in manifest.files.keys() {
        if !entries.contains_key(name) {
            problems.error(
                name,
                "",
                "tampered",
                "the checksum manifest lists this file but the package does not hold it",
            );
        }
    }
    if problems.has_errors() {
        return Err(problems.into_vec());
    }
    Ok(UnpackedPackage {
        files: entries
            .into_iter()
            .map(|(path, bytes)| TemplateFile { path, bytes })
            .collect(),
        checksum: sha256_hex(&manifest_bytes),
        manifest,
        signed_by,
    })
}

fn verify_signature(signature_file: &[u8], signed: &[u8]) -> Result<String, String> {
    let file: PackageSignature = serde_json::from_slice(signature_file)
        .map_err(|e| format!("unreadable signature file: {e}"))?;
    if file.algorithm != "ed25519" {
        return Err(format!(
            "unknown signature algorithm '{}': use ed25519",
            file.algorithm
        ));
    }
    let key_bytes: [u8; 32] = hex::decode(&file.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the public key is not 32 bytes of hex")?;
    let signature_bytes: [u8; 64] = hex::decode(&file.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    let key =
        VerifyingKey::from_bytes(&key_bytes).map_err(|e| format!("invalid public key: {e}"))?;
    key.verify(signed, &Signature::from_bytes(&signature_bytes))
        .map_err(|_| "the signature does not match the package's checksum manifest: the package was changed after signing".to_owned())?;
    Ok(file.public_key.to_ascii_lowercase())
}
