//! `serve --demo`: install the bundled CLM template as app `clm` unless it exists (idempotent).
//!
//! The gallery is embedded into the binary at build time (`trellis_runtime::templates::bundled`), so
//! the demo works from any directory.

use trellis_runtime::templates::{InstallOptions, bundled};
use trellis_runtime::{Principal, Runtime};

pub async fn install(runtime: &Runtime) -> anyhow::Result<()> {
    if runtime.store().get_app("clm").await?.is_some() {
        tracing::info!("demo app 'clm' already installed");
        return Ok(());
    }
    let bundle = bundled::bundled_template("clm")
        .ok_or_else(|| anyhow::anyhow!("the binary has no bundled 'clm' template"))?;
    let system = Principal::system("system", "system");
    let options = InstallOptions {
        app: None,
        sample_data: true,
    };
    match runtime.install_bundle(&system, bundle, &options).await {
        Ok(installed) => {
            println!("installed demo app 'clm' version {}", installed.app.semver);
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
