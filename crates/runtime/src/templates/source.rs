//! Reading a template into a bundle: a directory (CONTRACT.md §3), a packed file (zip, see
//! [`super::package`]) or a `.json` bundle file.
//!
//! Files that cannot be read or parsed become problems with their path, like any validation problem,
//! so `trellis template validate` reports everything at once. Symlinks are refused (they could point
//! outside the template), as are files over [`MAX_FILE_BYTES`].

use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_model::{Problem, Problems, RawBundle};

use super::package::{UnpackedPackage, is_package, unpack};

/// Largest single file a template may hold.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One file of a template: its relative path (with `/`) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A template as read from disk.
#[derive(Debug, Clone, Default)]
pub struct ReadTemplate {
    pub bundle: RawBundle,
    /// Problems met while reading (the bundle itself is not validated here).
    pub problems: Vec<Problem>,
    /// Set when the template came packed: its checksum and signature facts.
    pub package: Option<UnpackedPackage>,
}

/// Read a template directory, a packed template or a bundle file.
pub fn read_template(path: &Path) -> Result<ReadTemplate, std::io::Error> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        let (files, mut problems) = read_template_files(path)?;
        let (bundle, more) = files_to_bundle(&files);
        problems.extend(more);
        return Ok(ReadTemplate {
            bundle,
            problems,
            package: None,
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path)?;
    Ok(read_template_bytes(&bytes, &name))
}

/// Read a packed template or a bundle file from bytes; `name` names it in problems.
pub fn read_template_bytes(bytes: &[u8], name: &str) -> ReadTemplate {
    if is_package(bytes) {
        return match unpack(bytes, name) {
            Ok(package) => {
                let (bundle, problems) = files_to_bundle(&package.files);
                ReadTemplate {
                    bundle,
                    problems,
                    package: Some(package),
                }
            }
            Err(problems) => ReadTemplate {
                problems,
                ..Default::default()
            },
        };
    }
    match serde_json::from_slice::<RawBundle>(bytes) {
        Ok(bundle) => ReadTemplate {
            bundle,
            ..Default::default()
        },
        Err(error) => {
            let mut problems = Problems::default();
            problems.error(
                name,
                "",
                "invalid_bundle_file",
                format!("neither a template package (zip from `trellis template pack`) nor a bundle (a JSON object of path → content): {error}"),
            );
            ReadTemplate {
                problems: problems.into_vec(),
                ..Default::default()
            }
        }
    }
}

/// Every file of a template directory with its bytes, in path order. Hidden files (`.git`, editor
/// files) are skipped; symlinks and oversized files are problems.
pub fn read_template_files(
    root: &Path,
) -> Result<(Vec<TemplateFile>, Vec<Problem>), std::io::Error> {
    let mut problems = Problems::default();
    let mut paths = Vec::new();
    collect_files(root, root, &mut paths, &mut problems)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for relative in paths {
        let full = root.join(&relative);
        let name = relative.to_string_lossy().replace('\\', "/");
        let size = std::fs::metadata(&full)?.len();
        if size > MAX_FILE_BYTES {
            problems.error(
                &name,
                "",
                "unreadable_file",
                format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
            );
            continue;
        }
        files.push(TemplateFile {
            path: name,
            bytes: std::fs::read(&full)?,
        });
    }
    Ok((files, problems.into_vec()))
}

/// Parse template files into a bundle: JSON files as JSON values, other files as text.
pub fn files_to_bundle(files: &[TemplateFile]) -> (RawBundle, Vec<Problem>) {
    let mut bundle = RawBundle::default();
    let mut problems = Problems::default();
    for file in files {
        match parse_file(&file.path, &file.bytes) {
            Ok(value) => {
                bundle.0.insert(file.path.clone(), value);
            }
            Err(message) => problems.error(&file.path, "", "unreadable_file", message),
        }
    }
    (bundle, problems.into_vec())
}

/// A bundle back as files (JSON pretty-printed), for packing a bundle that has no directory.
pub fn bundle_to_files(bundle: &RawBundle) -> Vec<TemplateFile> {
    bundle
        .0
        .iter()
        .map(|(path, value)| TemplateFile {
            path: path.clone(),
            bytes: match value {
                Value::String(_) if !path.ends_with(".json") => {
                    file_bytes(path, value).unwrap_or_default()
                }
                other => {
                    let mut text = serde_json::to_string_pretty(other).unwrap_or_default();
                    text.push('\n');
                    text.into_bytes()
                }
            },
        })
        .collect()
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    problems: &mut Problems,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let name = relative.to_string_lossy().replace('\\', "/");
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue; // .git, .DS_Store, editor files
        }
        let file_type = entry.file_type()?;
        if file_type.is_symlink() {
            problems.error(
                &name,
                "",
                "symlink",
                "symlinks are not allowed in a template (they could point outside it): copy the file in",
            );
        } else if file_type.is_dir() {
            collect_files(root, &path, out, problems)?;
        } else {
            out.push(relative);
        }
    }
    Ok(())
}

/// Binary assets (screenshots, images) travel in a bundle as `data:` URLs.
fn is_asset(name: &str) -> bool {
    name.starts_with("assets/") || name.starts_with("screenshots/")
}

/// The media type of an asset, from its extension.
pub fn media_type(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "md" => "text/markdown; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The bytes of a bundle file: text as UTF-8, `data:…;base64,` assets decoded.
pub fn file_bytes(name: &str, value: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    match value {
        Value::String(text) if is_asset(name) && text.starts_with("data:") => {
            let (_, data) = text.split_once(";base64,")?;
            base64::engine::general_purpose::STANDARD.decode(data).ok()
        }
        Value::String(text) => Some(text.clone().into_bytes()),
        other => serde_json::to_vec_pretty(other).ok(),
    }
}

fn parse_file(name: &str, bytes: &[u8]) -> Result<Value, String> {
    use base64::Engine as _;
    if is_asset(name) && std::str::from_utf8(bytes).is_err() {
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Ok(Value::String(format!(
            "data:{};base64,{data}",
            media_type(name)
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "file is not UTF-8 text".to_owned())?;
    if name.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        Ok(Value::String(text.to_owned()))
    }
}
