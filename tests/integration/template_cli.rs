//! `trellis template …` run as a user would, on a SQLite file: keygen → pack (signed) → validate the
//! package → install with sample data → the analyst edits → upgrade (dry run, then for real) →
//! rollback; and the refusals — a tampered package, a template whose own test fails, a symlink in a
//! template directory, a missing translation.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const GALLERY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates-gallery");

/// Run the binary; (exit code, stdout, stderr).
fn trellis(args: &[&str], data_dir: &Path) -> (i32, String, String) {
    let output = Command::new(TRELLIS)
        .args(args)
        .env("TRELLIS_DATA_DIR", data_dir)
        .env_remove("TRELLIS_DB")
        .env_remove("TRELLIS_REQUIRE_SIGNED_TEMPLATES")
        .env_remove("TRELLIS_TRUSTED_KEYS")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pack_sign_install_upgrade_and_roll_back_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let source = work.path().join("service_desk");
    copy_dir(&Path::new(GALLERY).join("service_desk"), &source);

    let key = work.path().join("publisher.key");
    let (code, public, err) = trellis(&["template", "keygen", "-o", path(&key)], &data);
    assert_eq!(code, 0, "{err}");
    assert_eq!(public.trim().len(), 64, "{public}");
    let (code, _, err) = trellis(&["template", "keygen", "-o", path(&key)], &data);
    assert_ne!(code, 0, "an existing key is never overwritten");
    assert!(err.contains("refusing to overwrite"), "{err}");

    let v1 = work.path().join("desk-1.0.0.zip");
    let (code, _, err) = trellis(
        &[
            "template",
            "pack",
            path(&source),
            "-o",
            path(&v1),
            "--sign",
            path(&key),
        ],
        &data,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("signed"), "{err}");
    let (code, _, err) = trellis(&["template", "validate", path(&v1)], &data);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("signed by {}", public.trim())),
        "{err}"
    );
    assert!(err.contains("2 test(s) passed"), "{err}");

    // A package changed after packing is refused, naming the file.
    let mut bytes = std::fs::read(&v1).unwrap();
    let needle = b"Escalate urgent tickets";
    let at = bytes.windows(needle.len()).position(|w| w == needle);
    let tampered = work.path().join("tampered.zip");
    if let Some(at) = at {
        bytes[at] = b'X';
        std::fs::write(&tampered, &bytes).unwrap();
    } else {
        // Compressed: flip a byte in the middle of the archive instead.
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&tampered, &bytes).unwrap();
    }
    let (code, out, _) = trellis(&["template", "validate", path(&tampered)], &data);
    assert_eq!(code, 1, "{out}");
    let (code, out, err) = trellis(&["template", "install", path(&tampered)], &data);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("nothing installed"), "{err}");

    // Install, then edit the app the way an analyst would (here: through its exported bundle).
    let (code, out, err) = trellis(
        &[
            "template",
            "install",
            path(&v1),
            "--app",
            "desk",
            "--sample-data",
        ],
        &data,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("installed app 'desk'"), "{out}");
    assert!(
        out.contains("sample data ticket: 4 inserted, 0 rejected"),
        "{out}"
    );

    // Version 1.1.0 relabels a field and adds another.
    let v11_dir = work.path().join("service_desk_1_1");
    copy_dir(&source, &v11_dir);
    edit_json(&v11_dir.join("trellis.json"), |m| {
        m["version"] = json!("1.1.0")
    });
    edit_json(&v11_dir.join("entities/ticket.schema.json"), |e| {
        e["properties"]["subject"]["x-trellis"]["label"]["en"] = json!("Summary");
        e["properties"]["category"] =
            json!({"type": "string", "x-trellis": {"label": {"en": "Category", "zh-CN": "类别"}}});
    });
    let v11 = work.path().join("desk-1.1.0.zip");
    let (code, _, err) = trellis(
        &[
            "template",
            "pack",
            path(&v11_dir),
            "-o",
            path(&v11),
            "--sign",
            path(&key),
        ],
        &data,
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = trellis(
        &["template", "upgrade", "desk", path(&v11), "--dry-run"],
        &data,
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dry_run"], true);
    assert!(err.contains("dry run: nothing changed"), "{err}");
    let (code, out, err) = trellis(&["template", "upgrade", "desk", path(&v11)], &data);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["to_template_version"], "1.1.0");
    assert_eq!(report["migration"]["records_migrated"], 0);
    let (code, out, _) = trellis(&["template", "upgrade", "desk", path(&v11)], &data);
    assert_eq!(code, 1, "the same version twice is refused");
    assert!(
        out.starts_with("trellis.json:/version: version 1.1.0 is not newer"),
        "{out}"
    );

    let (code, out, err) = trellis(&["template", "rollback", "desk"], &data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("rolled back app 'desk' to template version 1.0.0"),
        "{err}"
    );
    let (code, _, err) = trellis(&["template", "rollback", "desk"], &data);
    assert_eq!(code, 1, "nothing left to roll back: {err}");
}

#[test]
fn templates_that_break_their_own_promises_are_not_packed() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let source = work.path().join("desk");
    copy_dir(&Path::new(GALLERY).join("service_desk"), &source);

    // A failing test of the template's own.
    edit_json(
        &source.join("tests/urgent_tickets_are_escalated.test.json"),
        |t| {
            t["steps"][2]["expect"]["fields"]["escalated"] = json!(false);
        },
    );
    // A message translated in one language only.
    edit_json(&source.join("i18n/en.json"), |t| {
        t["messages"]["view.tickets"] = json!("Tickets");
    });
    let output = work.path().join("desk.zip");
    let (code, out, err) = trellis(
        &["template", "pack", path(&source), "-o", path(&output)],
        &data,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(!output.exists(), "nothing packed");
    assert!(
        out.lines().any(|l| l.starts_with(
            "tests/urgent_tickets_are_escalated.test.json:/steps/2/expect/fields/escalated: 'leak'.escalated is true, expected false"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("i18n/zh-CN.json:/messages/view.tickets: ")),
        "{out}"
    );
    let (code, out2, _) = trellis(&["template", "validate", path(&source)], &data);
    assert_eq!(code, 1);
    assert_eq!(out, out2, "validate and pack report the same problems");

    // A symlink could smuggle a file from outside the template.
    #[cfg(unix)]
    {
        let clean = work.path().join("clean");
        copy_dir(&Path::new(GALLERY).join("service_desk"), &clean);
        std::os::unix::fs::symlink("/etc/passwd", clean.join("data/secrets.csv")).unwrap();
        let (code, out, _) = trellis(
            &["template", "pack", path(&clean), "-o", path(&output)],
            &data,
        );
        assert_eq!(code, 1, "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("data/secrets.csv:/: symlinks are not allowed")),
            "{out}"
        );
        assert!(!output.exists());
    }
}
