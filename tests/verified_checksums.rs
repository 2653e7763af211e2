//! Checksums verified once and remembered (`mmrt::verified`): a second open
//! hashes nothing, a file changed in place, even with its modification time
//! put back, is hashed again and its mismatch reported; a copy of the bundle
//! elsewhere is verified again; `--verify` hashes everything.

mod common;

use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

/// `mmrt inspect --json [--verify]` with its own record directory: `(hashed, remembered)`, or the error line.
fn inspect(bundle: &Path, cache: &Path, verify: bool) -> Result<(u64, u64), String> {
    let bundle = bundle.to_str().unwrap();
    let mut args = vec!["inspect", "--bundle", bundle, "--json"];
    if verify {
        args.push("--verify");
    }
    let mut cmd = common::cli::command(&args);
    cmd.env("MMRT_CACHE_DIR", cache);
    let out = common::cli::output(cmd);
    if !out.ok {
        return Err(out.stderr);
    }
    let json: Value = serde_json::from_str(&out.stdout).expect("inspect --json");
    let v = &json["checksums_verified"];
    Ok((v["hashed"].as_u64().unwrap(), v["remembered"].as_u64().unwrap()))
}

/// Flip one byte of `path` in place and give it back its modification time.
fn flip_byte_keeping_mtime(path: &Path) {
    let mtime: SystemTime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime)).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime, "mtime restored");
}

#[test]
fn a_second_open_hashes_nothing_and_a_changed_file_is_still_caught() {
    let tmp = common::TempDir::new("verified");
    let bundle = tmp.tiny_copy("tiny");
    let cache = tmp.path().join("cache");
    let files = {
        let manifest: Value = serde_json::from_slice(&std::fs::read(bundle.join("bundle.json")).unwrap()).unwrap();
        manifest["checksums"].as_object().unwrap().len() as u64
    };
    assert!(files > 3);
    assert_eq!(inspect(&bundle, &cache, false), Ok((files, 0)), "the first open hashes every file");
    assert_eq!(inspect(&bundle, &cache, false), Ok((0, files)), "the second remembers them all");
    assert_eq!(inspect(&bundle, &cache, true), Ok((files, 0)), "--verify hashes them all again");

    // Changed in place, same size, modification time put back: the status-change time still differs.
    flip_byte_keeping_mtime(&bundle.join("decoder.onnx"));
    let err = inspect(&bundle, &cache, false).expect_err("the changed file is caught");
    assert!(err.contains("decoder.onnx") && err.contains("checksum"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // And stays caught (the failed check is not remembered as good).
    assert!(inspect(&bundle, &cache, false).is_err());
}

#[test]
fn a_copy_elsewhere_is_verified_again() {
    let tmp = common::TempDir::new("verified-copy");
    let first = tmp.tiny_copy("first");
    let cache = tmp.path().join("cache");
    let (hashed, _) = inspect(&first, &cache, false).unwrap();
    assert_eq!(inspect(&first, &cache, false), Ok((0, hashed)));
    let second = tmp.tiny_copy("second");
    assert_eq!(inspect(&second, &cache, false), Ok((hashed, 0)), "another directory has its own record");
}

#[test]
fn a_corrupt_record_only_costs_a_rehash() {
    let tmp = common::TempDir::new("verified-corrupt");
    let bundle = tmp.tiny_copy("tiny");
    let cache = tmp.path().join("cache");
    let (hashed, _) = inspect(&bundle, &cache, false).unwrap();
    for entry in std::fs::read_dir(cache.join("verified")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{not json").unwrap();
    }
    assert_eq!(inspect(&bundle, &cache, false), Ok((hashed, 0)));
    assert_eq!(inspect(&bundle, &cache, false), Ok((0, hashed)));
}
