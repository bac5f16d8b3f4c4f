//! Reading a template from disk into a bundle: a directory (CONTRACT.md §3) or a `.json` bundle file.
//!
//! Files that cannot be read or parsed become problems with their path, like any validation problem,
//! so `trellis template validate` reports everything at once. Symlinks are refused (they could point
//! outside the template), as are files over [`MAX_FILE_BYTES`].

use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_model::{Problem, Problems, RawBundle};

/// Largest single file a template may hold.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Read a template directory or a bundle file. Returns the bundle built from the readable files and
/// the problems met while reading (the bundle itself is not validated here).
pub fn read_template(path: &Path) -> Result<(RawBundle, Vec<Problem>), std::io::Error> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_file() {
        return read_bundle_file(path);
    }
    let mut bundle = RawBundle::default();
    let mut problems = Problems::default();
    let mut files = Vec::new();
    collect_files(path, path, &mut files, &mut problems)?;
    files.sort();
    for relative in files {
        let full = path.join(&relative);
        let name = relative.to_string_lossy().replace('\\', "/");
        match read_file(&full, &name) {
            Ok(value) => {
                bundle.0.insert(name, value);
            }
            Err((pointer, message)) => problems.error(&name, pointer, "unreadable_file", message),
        }
    }
    Ok((bundle, problems.into_vec()))
}

fn read_bundle_file(path: &Path) -> Result<(RawBundle, Vec<Problem>), std::io::Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path)?;
    match serde_json::from_str::<RawBundle>(&text) {
        Ok(bundle) => Ok((bundle, Vec::new())),
        Err(error) => {
            let mut problems = Problems::default();
            problems.error(
                &name,
                "",
                "invalid_bundle_file",
                format!("not a bundle (a JSON object of path → content): {error}; packed templates (.zip, .tar.zst) come with `trellis template pack`"),
            );
            Ok((RawBundle::default(), problems.into_vec()))
        }
    }
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
                "symlinks are not allowed in a template: copy the file in",
            );
        } else if file_type.is_dir() {
            collect_files(root, &path, out, problems)?;
        } else {
            out.push(relative);
        }
    }
    Ok(())
}

fn read_file(path: &Path, name: &str) -> Result<Value, (String, String)> {
    let size = std::fs::metadata(path)
        .map_err(|e| (String::new(), e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err((
            String::new(),
            format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| (String::new(), e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| (String::new(), "file is not UTF-8 text".to_owned()))?;
    if name.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| (String::new(), format!("invalid JSON: {e}")))
    } else {
        Ok(Value::String(text))
    }
}
