//! `serve --demo`: install the bundled CLM template as app `clm` unless it exists (idempotent), and
//! fill it with a deterministic history (`trellis seed`, 200 customers) and run the nightly refresh
//! once (RFM segments, P(alive) and CLV, tiers), so every dashboard has something to show.
//!
//! The gallery is embedded into the binary at build time (`trellis_runtime::templates::bundled`), so
//! the demo works from any directory.

use trellis_runtime::templates::{InstallOptions, bundled};
use trellis_runtime::{Principal, Runtime};

/// Customers the demo is seeded with: enough for every report, quick to start.
pub const DEMO_CUSTOMERS: usize = 200;

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
        sample_data: false,
    };
    match runtime.install_bundle(&system, bundle, &options).await {
        Ok(installed) => {
            let summary = crate::seed::seed(
                runtime,
                "clm",
                (DEMO_CUSTOMERS, 42, 1.0),
                chrono::Utc::now().date_naive(),
                &|_| {},
            )
            .await?;
            // The nightly refresh once, so segments, P(alive), CLV and tiers are filled at start
            // (together, as the scheduler runs them: one update per customer).
            let nightly = [
                "nightly_rfm",
                "nightly_tier_window",
                "nightly_customer_value",
            ];
            runtime
                .run_rules_together(&system, "clm", &nightly.map(String::from))
                .await?;
            // …and what it set in motion (lifecycle events), so the demo starts settled.
            for _ in 0..50 {
                if runtime.run_outbox_once(chrono::Utc::now()).await? == 0 {
                    break;
                }
            }
            println!(
                "installed demo app 'clm' version {} with {} customers and {} orders",
                installed.app.semver,
                summary.counts.get("customer").copied().unwrap_or(0),
                summary.counts.get("order").copied().unwrap_or(0)
            );
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
