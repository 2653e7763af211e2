//! The committed header `include/mmrt.h` is what cbindgen generates from the
//! sources now: regenerated here and compared, so it can never drift.
//! `MMRT_BLESS_HEADER=1 cargo test -p mmrt-capi --test header` rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_the_sources() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = crate_dir.join("include/mmrt.h");
    if std::env::var_os("MMRT_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/mmrt.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or(committed.lines().count().min(generated.lines().count()), |i| i);
        panic!(
            "{} is stale (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\nrun `MMRT_BLESS_HEADER=1 cargo test -p mmrt-capi --test header` and commit the header",
            path.display(),
            line + 1,
            committed.lines().nth(line).unwrap_or("<end>"),
            generated.lines().nth(line).unwrap_or("<end>"),
        );
    }
}
