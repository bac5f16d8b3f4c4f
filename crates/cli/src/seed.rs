//! `trellis seed`: a realistic, deterministic history for the CLM template — companies, products,
//! customers of four kinds (loyal, declining, churned, new) with orders shaped by seasonality
//! (Singles' Day in November, year-end, mid-year), points, leads at every stage, service tickets and
//! NPS surveys. The same `--seed` gives the same data. Rows go in through the import path (validated,
//! before-save rules applied); the figures after-save rules would keep (order counts, spend, points,
//! health inputs) are computed here, because imports do not run after-save rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Value, json};
use trellis_runtime::import::ImportFormat;
use trellis_runtime::records::ListRequest;
use trellis_runtime::{Principal, Runtime};

/// `trellis seed` arguments.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// App id (an app installed from the CLM template).
    #[arg(long)]
    pub app: String,
    /// Number of customers.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How often customers buy, relative to the template's mix (about 7.2 orders per customer at
    /// 1.0, 10.6 at 1.5; 1.4 gives the nightly goal's 10 M orders for 1 M customers). From 0.1 to
    /// 10.
    #[arg(long, default_value_t = 1.0)]
    pub purchase_rate: f64,
    #[command(flatten)]
    pub db: crate::template::DbArgs,
}

/// xorshift64*: small, fast and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Roughly log-normal around `median`.
    fn amount(&mut self, median: f64) -> f64 {
        let z: f64 = (0..6).map(|_| self.unit()).sum::<f64>() - 3.0;
        ((median * (0.55 * z).exp()) * 100.0).round() / 100.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loyal,
    Declining,
    Churned,
    New,
}

/// What was generated.
#[derive(Debug, Default)]
pub struct SeedSummary {
    pub counts: BTreeMap<&'static str, usize>,
}

const SURNAMES: [&str; 16] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
];
const GIVEN: [&str; 16] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
];
const FIRST: [&str; 12] = [
    "Anna", "Tom", "Maria", "David", "Sophie", "Lucas", "Emma", "Noah", "Olivia", "James", "Mia",
    "Leo",
];
const LAST: [&str; 10] = [
    "Smith", "Müller", "Garcia", "Rossi", "Martin", "Brown", "Schmidt", "Silva", "Dubois", "Kim",
];
/// Customers that reach their lifecycle stage through the flow's events (the rest are imported in
/// it), so stage-to-stage reports have history without slowing down large seeds.
const WALKED: usize = 500;

const REGIONS: [&str; 5] = ["east", "north", "south", "west", "central"];
const INDUSTRIES: [&str; 6] = [
    "retail",
    "manufacturing",
    "software",
    "finance",
    "education",
    "other",
];

fn day(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// How much more likely a purchase is in this month (Singles' Day, year-end, mid-year sales).
fn season(month: u32) -> f64 {
    match month {
        11 => 1.9,
        12 => 1.4,
        6 => 1.3,
        2 => 0.7,
        _ => 1.0,
    }
}

/// Generate the history and import it into `app`. `progress(stage)` reports each step.
pub async fn seed(
    runtime: &Runtime,
    app: &str,
    (customers, seed, purchase_rate): (usize, u64, f64),
    today: NaiveDate,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> anyhow::Result<SeedSummary> {
    let actor = Principal::system("seed", "seed");
    let bundle = runtime
        .export_bundle(&actor, app)
        .await
        .with_context(|| format!("app '{app}'"))?
        .1;
    for entity in [
        "company",
        "customer",
        "product",
        "order",
        "lead",
        "ticket",
        "survey_response",
        "points_entry",
        "activity",
    ] {
        if !bundle.contains(&format!("\"entities/{entity}.schema.json\"")) {
            bail!(
                "app '{app}' has no '{entity}' entity: `trellis seed` fills apps installed from the CLM template"
            );
        }
    }
    let manager = runtime
        .store()
        .find_user_by_username("admin")
        .await?
        .map(|u| u.id);
    let mut rng = Rng::new(seed);
    let mut summary = SeedSummary::default();

    // Companies and products.
    progress("companies and products");
    let companies = (customers / 20).clamp(3, 5_000);
    let mut lines = String::new();
    for i in 0..companies {
        let name = format!(
            "{}{} {}",
            rng.pick(&[
                "Golden",
                "Blue",
                "Harbor",
                "Northwind",
                "Lotus",
                "Summit",
                "Jade",
                "Pine"
            ]),
            i,
            rng.pick(&["Trading", "Tech", "Foods", "Logistics", "Studio", "Retail"])
        );
        writeln!(
            lines,
            "{}",
            json!({"name": name, "industry": rng.pick(&INDUSTRIES), "employees": 5 + rng.below(2000), "region": rng.pick(&REGIONS)})
        )?;
    }
    import(runtime, &actor, app, "company", &lines, &mut summary).await?;
    let company_ids = ids_by(runtime, &actor, app, "company", "name").await?;
    let company_ids: Vec<String> = company_ids.into_values().collect();
    let products = [
        ("Robot vacuum R2", "RV-R2", "hardware", 1999.0, 1.0),
        ("Air purifier P5", "AP-P5", "hardware", 1299.0, 1.0),
        ("Smart kettle K1", "SK-K1", "hardware", 299.0, 1.0),
        ("Filter pack", "FP-P5", "hardware", 159.0, 1.0),
        ("Home app premium", "APP-PRM", "subscription", 99.0, 2.0),
        ("Extended warranty", "EXT-WAR", "service", 399.0, 1.5),
        ("Cleaning service", "SVC-CLN", "service", 249.0, 1.0),
        ("Smart plug", "SP-1", "hardware", 79.0, 1.0),
    ];
    let mut lines = String::new();
    for (name, sku, category, price, multiplier) in products {
        writeln!(
            lines,
            "{}",
            json!({"name": name, "sku": sku, "category": category, "price": price, "points_multiplier": multiplier})
        )?;
    }
    import(runtime, &actor, app, "product", &lines, &mut summary).await?;

    // Customers and their orders (generated together, imported customers first).
    progress("customers");
    struct Planned {
        email: String,
        orders: Vec<(NaiveDate, f64, bool)>,
        /// Lifecycle events that take the customer from acquisition to its stage (the first
        /// [`WALKED`] customers go through the flow, so stage-to-stage reports have history).
        walk: &'static [&'static str],
    }
    let mut planned = Vec::with_capacity(customers);
    let mut lines = String::new();
    for i in 0..customers {
        let roll = rng.unit();
        let kind = if roll < 0.30 {
            Kind::Loyal
        } else if roll < 0.55 {
            Kind::Declining
        } else if roll < 0.75 {
            Kind::Churned
        } else {
            Kind::New
        };
        let (start_days, stop_days, mean_gap, median) = match kind {
            Kind::Loyal => (360 + rng.below(180), 0, 25.0 + rng.unit() * 30.0, 420.0),
            Kind::Declining => (
                360 + rng.below(180),
                90 + rng.below(120),
                30.0 + rng.unit() * 30.0,
                300.0,
            ),
            Kind::Churned => (
                270 + rng.below(270),
                200 + rng.below(60),
                60.0 + rng.unit() * 60.0,
                200.0,
            ),
            Kind::New => (5 + rng.below(85), 0, 40.0, 260.0),
        };
        let mut orders = Vec::new();
        let mut at = today - Days::new(start_days as u64);
        let stop = today - Days::new(stop_days as u64);
        while at <= stop {
            let total = rng.amount(median);
            orders.push((at, total.max(9.9), rng.chance(0.02)));
            if kind == Kind::Churned && orders.len() > rng.below(4) {
                break;
            }
            let gap =
                (mean_gap / purchase_rate / season(at.month()) * (0.3 + rng.unit() * 1.4)).max(1.0);
            at = at + Days::new(gap as u64);
        }
        let paid: Vec<&(NaiveDate, f64, bool)> = orders.iter().filter(|o| !o.2).collect();
        // `+ 0.0`: an empty f64 sum is -0.0, which the nightly report would "change" to 0.
        let spent: f64 = paid.iter().map(|o| o.1).sum::<f64>() + 0.0;
        let last = paid.iter().map(|o| o.0).max();
        let zh = rng.chance(0.6);
        let name = if zh {
            format!(
                "{}{}{}",
                rng.pick(&SURNAMES),
                rng.pick(&GIVEN),
                if rng.chance(0.5) {
                    *rng.pick(&GIVEN)
                } else {
                    ""
                }
            )
        } else {
            format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST))
        };
        let email = format!("customer{i:07}.{seed}@example.com");
        let recency = last.map_or(999, |l| (today - l).num_days());
        let r = match recency {
            0..=30 => 5,
            31..=60 => 4,
            61..=120 => 3,
            121..=240 => 2,
            _ => 1,
        };
        let f = match paid.len() {
            0..=1 => 1,
            2..=3 => 2,
            4..=6 => 3,
            7..=12 => 4,
            _ => 5,
        };
        let (stage, logins) = match kind {
            Kind::Loyal => (
                if paid.len() > 8 { "maturity" } else { "growth" },
                6 + rng.below(12),
            ),
            Kind::Declining => ("decline", rng.below(4)),
            Kind::Churned => ("churned", 0),
            Kind::New => (
                if paid.len() > 1 {
                    "growth"
                } else {
                    "acquisition"
                },
                2 + rng.below(8),
            ),
        };
        let spent_12m: f64 = paid
            .iter()
            .filter(|o| (today - o.0).num_days() <= 365)
            .map(|o| o.1)
            .sum::<f64>()
            + 0.0;
        let tier = if spent_12m >= 20_000.0 {
            "platinum"
        } else if spent_12m >= 5_000.0 {
            "gold"
        } else if spent_12m >= 1_000.0 {
            "silver"
        } else {
            "member"
        };
        let birthday = NaiveDate::from_ymd_opt(
            1960 + rng.below(45) as i32,
            1 + rng.below(12) as u32,
            1 + rng.below(28) as u32,
        );
        let mut customer = json!({
            "name": name, "email": email, "phone": format!("+86 13{:09}", rng.below(1_000_000_000)),
            "lifecycle_stage": if i < WALKED { "acquisition" } else { stage }, "orders_count": paid.len(), "total_spent": (spent * 100.0).round() / 100.0,
            "spend_12m": (spent_12m * 100.0).round() / 100.0,
            "points_balance": paid
                .iter()
                .filter(|o| (today - o.0).num_days() <= 365 && o.0 + Days::new(14) <= today)
                .map(|o| o.1.floor() as i64)
                .sum::<i64>(),
            "tier": tier,
            "logins_30d": logins, "rfm_r": r, "rfm_f": f,
            "tags": if kind == Kind::Loyal && rng.chance(0.3) { json!(["vip"]) } else { json!([]) },
        });
        if let Some(last) = last {
            customer["last_order_at"] = json!(day(last));
        }
        if let Some(birthday) = birthday {
            customer["birthday"] = json!(day(birthday));
        }
        if !company_ids.is_empty() && rng.chance(0.4) {
            customer["company"] = json!(rng.pick(&company_ids));
        }
        if let Some(manager) = &manager {
            customer["account_manager"] = json!(manager);
        }
        writeln!(lines, "{customer}")?;
        let walk: &'static [&'static str] = match stage {
            "growth" => &["grow"],
            "maturity" => &["grow", "mature"],
            "decline" => &["grow", "decline"],
            "churned" => &["grow", "decline", "churn"],
            _ => &[],
        };
        planned.push(Planned {
            email,
            orders,
            walk: if i < WALKED { walk } else { &[] },
        });
    }
    import(runtime, &actor, app, "customer", &lines, &mut summary).await?;
    let customer_ids = ids_by(runtime, &actor, app, "customer", "email").await?;

    progress("lifecycle moves");
    for plan in &planned {
        let Some(id) = customer_ids.get(&plan.email) else {
            continue;
        };
        for event in plan.walk {
            runtime
                .fire_event(
                    &actor,
                    app,
                    "customer",
                    id,
                    "lifecycle",
                    event,
                    &serde_json::Map::new(),
                    Default::default(),
                )
                .await
                .with_context(|| format!("lifecycle event {event}"))?;
        }
    }
    progress("orders and points");
    let mut orders = String::new();
    let mut points = String::new();
    let mut ticket_lines = String::new();
    let mut survey_lines = String::new();
    let mut activity_lines = String::new();
    for plan in &planned {
        let Some(id) = customer_ids.get(&plan.email) else {
            continue;
        };
        for (at, total, refunded) in &plan.orders {
            let channel = *rng.pick(&["online", "online", "online", "store", "phone"]);
            let status = if *refunded { "refunded" } else { "paid" };
            writeln!(
                orders,
                "{}",
                json!({"customer": id, "ordered_at": day(*at), "total": total, "channel": channel, "status": status})
            )?;
            if !refunded && (today - *at).num_days() <= 365 {
                writeln!(
                    points,
                    "{}",
                    // Entries past their return window are already in the balance computed above.
                    json!({"customer": id, "points": total.floor() as i64, "reason": "purchase",
                    "earned_on": day(*at), "available_on": day(*at + Days::new(14)), "expires_on": day(*at + Days::new(365)),
                    "counted": *at + Days::new(14) <= today})
                )?;
            }
        }
        if rng.chance(0.12) {
            let opened = today - Days::new(rng.below(120) as u64);
            let severity = *rng.pick(&["low", "medium", "medium", "high", "critical"]);
            let status = if rng.chance(0.7) { "resolved" } else { "open" };
            writeln!(
                ticket_lines,
                "{}",
                json!({"customer": id, "subject": format!("Issue reported on {}", day(opened)), "severity": severity, "status": status})
            )?;
        }
        if rng.chance(0.25) {
            let roll = rng.unit();
            let score = if roll < 0.45 {
                9 + rng.below(2)
            } else if roll < 0.75 {
                7 + rng.below(2)
            } else {
                rng.below(7)
            };
            writeln!(
                survey_lines,
                "{}",
                json!({"customer": id, "score": score, "answered_on": day(today - Days::new(rng.below(365) as u64))})
            )?;
        }
        if rng.chance(0.3) {
            writeln!(
                activity_lines,
                "{}",
                json!({"customer": id, "kind": "login",
                "happened_at": format!("{}T09:{:02}:00Z", day(today - Days::new(rng.below(30) as u64)), rng.below(60)), "summary": "App login"})
            )?;
        }
    }
    import(runtime, &actor, app, "order", &orders, &mut summary).await?;
    import(runtime, &actor, app, "points_entry", &points, &mut summary).await?;
    progress("tickets, surveys and activities");
    import(runtime, &actor, app, "ticket", &ticket_lines, &mut summary).await?;
    import(
        runtime,
        &actor,
        app,
        "survey_response",
        &survey_lines,
        &mut summary,
    )
    .await?;
    import(
        runtime,
        &actor,
        app,
        "activity",
        &activity_lines,
        &mut summary,
    )
    .await?;

    progress("leads");
    let mut lines = String::new();
    for i in 0..customers.div_ceil(2) {
        let roll = rng.unit();
        let status = if roll < 0.45 {
            "new"
        } else if roll < 0.60 {
            "mql"
        } else if roll < 0.70 {
            "sql"
        } else if roll < 0.80 {
            "converted"
        } else if roll < 0.93 {
            "cold"
        } else {
            "disqualified"
        };
        let (behaviour, engagement) = match status {
            "mql" | "sql" | "converted" => (15 + rng.below(20), 12.0 + rng.unit() * 13.0),
            "cold" => (rng.below(5), rng.unit() * 3.0),
            _ => (rng.below(15), rng.unit() * 12.0),
        };
        let mut lead = json!({
            "name": format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST)), "email": format!("lead{i:07}.{seed}@example.com"),
            "company_name": format!("Prospect {i}"), "industry": rng.pick(&INDUSTRIES),
            "company_size": rng.pick(&["1_10", "11_50", "51_200", "201_1000", "1000_plus"]),
            "title": rng.pick(&["IT Director", "Head of Operations", "Engineer", "Office manager", "采购经理", "总监"]),
            "region": rng.pick(&REGIONS), "source": rng.pick(&["website", "event", "referral", "ads"]),
            "behaviour_score": behaviour, "engagement_score": (engagement * 10.0).round() / 10.0, "status": status,
            "last_engaged_at": day(today - Days::new(rng.below(120) as u64)),
        });
        if let Some(manager) = &manager {
            lead["owner"] = json!(manager);
        }
        writeln!(lines, "{lead}")?;
    }
    import(runtime, &actor, app, "lead", &lines, &mut summary).await?;
    // Engagement activities of leads over the last 60 days (what the rolling-window scoring counts).
    let lead_ids = ids_by(runtime, &actor, app, "lead", "email").await?;
    let mut lead_activities = String::new();
    for id in lead_ids.values() {
        if !rng.chance(0.6) {
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            let kind = rng.pick(&[
                "email_open",
                "email_open",
                "email_click",
                "form_fill",
                "meeting",
            ]);
            writeln!(
                lead_activities,
                "{}",
                json!({"lead": id, "kind": kind, "summary": kind.replace('_', " "),
                    "happened_at": format!("{}T10:{:02}:00Z", day(today - Days::new(rng.below(60) as u64)), rng.below(60))})
            )?;
        }
    }
    import(
        runtime,
        &actor,
        app,
        "activity",
        &lead_activities,
        &mut summary,
    )
    .await?;
    Ok(summary)
}

async fn import(
    runtime: &Runtime,
    actor: &Principal,
    app: &str,
    entity: &'static str,
    ndjson: &str,
    summary: &mut SeedSummary,
) -> anyhow::Result<()> {
    if ndjson.is_empty() {
        summary.counts.entry(entity).or_insert(0);
        return Ok(());
    }
    let report = runtime
        .import_records(
            actor,
            app,
            entity,
            ImportFormat::Ndjson,
            bytes::Bytes::from(ndjson.to_owned()),
            false,
            Default::default(),
            &|_, _| {},
        )
        .await
        .with_context(|| format!("importing {entity}"))?;
    if let Some(first) = report.rejected.first() {
        bail!(
            "{} {entity} row(s) rejected, e.g. row {}: {}",
            report.rejected.len(),
            first.row,
            first
                .errors
                .iter()
                .map(|e| format!("{} {}", e.pointer, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    *summary.counts.entry(entity).or_insert(0) += report.inserted;
    Ok(())
}

/// Every record of `entity`: the value of `key` → record id.
async fn ids_by(
    runtime: &Runtime,
    actor: &Principal,
    app: &str,
    entity: &str,
    key: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = runtime
            .list_records(
                actor,
                app,
                entity,
                &ListRequest {
                    limit: Some(1000),
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await?;
        for record in &page.items {
            if let Some(Value::String(value)) = record.data.get(key) {
                out.insert(value.clone(), record.id.clone());
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// `trellis seed`.
pub fn run(args: SeedArgs) -> anyhow::Result<std::process::ExitCode> {
    if !(0.1..=10.0).contains(&args.purchase_rate) {
        anyhow::bail!(
            "--purchase-rate {}: give a number from 0.1 to 10 (1.0 is the template's mix)",
            args.purchase_rate
        );
    }
    let url = args.db.url()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let trellis =
            trellis_runtime::Runtime::connect(&url, trellis_runtime::RuntimeSettings::default())
                .await
                .with_context(|| {
                    format!("opening database {}", trellis_runtime::redact_db_url(&url))
                })?;
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let progress_bar = bar.clone();
        let started = std::time::Instant::now();
        let summary = seed(
            &trellis,
            &args.app,
            (args.customers, args.seed, args.purchase_rate),
            chrono::Utc::now().date_naive(),
            &move |stage| progress_bar.set_message(format!("seeding {stage}…")),
        )
        .await?;
        bar.finish_and_clear();
        for (entity, count) in &summary.counts {
            println!("{entity}: {count}");
        }
        eprintln!(
            "seeded app '{}' with {} customers (seed {}) in {:.1} s",
            args.app,
            args.customers,
            args.seed,
            started.elapsed().as_secs_f64()
        );
        Ok(std::process::ExitCode::SUCCESS)
    })
}
