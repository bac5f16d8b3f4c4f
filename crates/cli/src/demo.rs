//! `serve --demo`: install the bundled CLM template as app `clm` unless it exists (idempotent).
//!
//! The gallery is embedded into the binary at build time, so the demo works from any directory.

use include_dir::{Dir, include_dir};
use serde_json::Value;
use trellis_model::RawBundle;
use trellis_runtime::{Principal, Runtime};

static GALLERY: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../templates-gallery");

/// The bundled template `id` as a bundle.
pub fn bundled_template(id: &str) -> anyhow::Result<RawBundle> {
    let dir = GALLERY
        .get_dir(id)
        .ok_or_else(|| anyhow::anyhow!("no bundled template '{id}'"))?;
    let mut bundle = RawBundle::default();
    add_files(dir, dir.path(), &mut bundle)?;
    Ok(bundle)
}

fn add_files(dir: &Dir<'_>, root: &std::path::Path, bundle: &mut RawBundle) -> anyhow::Result<()> {
    for file in dir.files() {
        let relative = file
            .path()
            .strip_prefix(root)?
            .to_string_lossy()
            .replace('\\', "/");
        let text = file
            .contents_utf8()
            .ok_or_else(|| anyhow::anyhow!("{relative}: not UTF-8"))?;
        let value = if relative.ends_with(".json") {
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{relative}: {e}"))?
        } else {
            Value::String(text.to_owned())
        };
        bundle.0.insert(relative, value);
    }
    for sub in dir.dirs() {
        add_files(sub, root, bundle)?;
    }
    Ok(())
}

pub async fn install(runtime: &Runtime) -> anyhow::Result<()> {
    if runtime.store().get_app("clm").await?.is_some() {
        tracing::info!("demo app 'clm' already installed");
        return Ok(());
    }
    let bundle = bundled_template("clm")?;
    let system = Principal::system("system", "system");
    match runtime.create_app(&system, &bundle, false).await {
        Ok(created) => {
            println!("installed demo app 'clm' version {}", created.semver);
            Ok(())
        }
        // Another server installed it at the same moment.
        Err(trellis_runtime::RuntimeError::Conflict(_)) => Ok(()),
        Err(trellis_runtime::RuntimeError::InvalidBundle(problems)) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::bail!("the bundled CLM template is invalid:\n{}", lines.join("\n"))
        }
        Err(error) => Err(error.into()),
    }
}
