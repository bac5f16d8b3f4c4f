//! Rebuild when the bundled template gallery changes: `templates/bundled.rs` embeds it with
//! `include_dir!`, which cannot tell cargo about files added later.

fn main() {
    println!("cargo:rerun-if-changed=../../templates-gallery");
}
