//! The bundled gallery: `templates-gallery/` embedded into the binary at build time, so the gallery
//! and `serve --demo` work from any directory.

use include_dir::{Dir, include_dir};
use trellis_model::RawBundle;

use super::source::{TemplateFile, files_to_bundle};

static GALLERY: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../templates-gallery");

/// Ids of the bundled templates, sorted.
pub fn bundled_ids() -> Vec<String> {
    let mut ids: Vec<String> = GALLERY
        .dirs()
        .filter_map(|d| d.path().file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

/// The files of bundled template `id`, in path order.
pub fn bundled_files(id: &str) -> Option<Vec<TemplateFile>> {
    let dir = GALLERY.get_dir(id)?;
    let mut files = Vec::new();
    add_files(dir, dir.path(), &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Some(files)
}

/// The bundled template `id` as a bundle (a bundled template that does not parse is a build
/// defect, caught by the gallery tests).
pub fn bundled_template(id: &str) -> Option<RawBundle> {
    bundled_files(id).map(|files| files_to_bundle(&files).0)
}

fn add_files(dir: &Dir<'_>, root: &std::path::Path, out: &mut Vec<TemplateFile>) {
    for file in dir.files() {
        let Ok(relative) = file.path().strip_prefix(root) else {
            continue;
        };
        let path = relative.to_string_lossy().replace('\\', "/");
        if path.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        out.push(TemplateFile {
            path,
            bytes: file.contents().to_vec(),
        });
    }
    for sub in dir.dirs() {
        add_files(sub, root, out);
    }
}
