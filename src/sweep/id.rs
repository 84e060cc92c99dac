//! Content-addressed fit ids: the same fit, asked for by anyone, gets the same id.
//!
//! A fit's id is the SHA-256 (first 16 hex digits, 64 bits) of a canonical JSON document:
//!
//! ```text
//! {"config": <the fully resolved RunConfig, defaults filled in, keys sorted,
//!             data.paths and transfer paths removed>,
//!  "datasets": [<fingerprint of each dataset, in readout order>],
//!  "core": <fingerprint of the transferred core's file, kind = "transfer" only>,
//!  "kind": "train" | "transfer"}
//! ```
//!
//! Paths are left out because they differ between users and machines while the data they name
//! does not; the datasets enter through their fingerprints instead. The cortexfit version is not
//! hashed (it is recorded beside each fit, and a fit made by another version is flagged).
//!
//! **Dataset fingerprint** (cheap and stable, without reading every array): SHA-256 over
//! - a FileTree folder: every file's path relative to the folder and its size, in sorted order,
//!   plus the full content of every file outside `data/` of at most 1 MiB (the `meta/` arrays:
//!   trial tiers, neuron ids, statistics), so re-splitting tiers or changing neurons changes it;
//! - a `.zip`: every entry's name, uncompressed size and CRC-32 (the zip's own checksum of the
//!   content), in sorted order, so the whole content is covered without decompressing it.
//!
//! Renaming or moving a dataset keeps its fingerprint; editing a response array in place without
//! changing its size would not change it (the arrays' bytes are not read).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Files outside `data/` up to this size are hashed with their content.
const SMALL_FILE: u64 = 1 << 20;

/// `value` as JSON text with every object's keys in sorted order and no whitespace.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let ordered: BTreeMap<&String, serde_json::Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in ordered {
                    out.insert(k.clone(), v);
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    // serde_json's map keeps insertion order with `preserve_order` and sorts without it; the
    // keys were inserted sorted, so the text is the same either way.
    serde_json::to_string(&sorted(value)).expect("JSON values always serialize")
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The fit id of a canonical document: the first 16 hex digits of its SHA-256.
pub fn fit_id(canonical: &str) -> String {
    sha256_hex(canonical.as_bytes())[..16].to_string()
}

/// The fingerprint of a dataset (folder or `.zip`), as described in the module docs.
pub fn dataset_fingerprint(path: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    if path.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let full = path.join(&rel);
            let size = std::fs::metadata(&full)
                .with_context(|| format!("reading {}", full.display()))?
                .len();
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            hasher.update(format!("{rel_text}\t{size}\n").as_bytes());
            if size <= SMALL_FILE && !rel_text.starts_with("data/") {
                let bytes =
                    std::fs::read(&full).with_context(|| format!("reading {}", full.display()))?;
                hasher.update(&bytes);
            }
        }
    } else if path.is_file() {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening the dataset {}", path.display()))?;
        let mut archive = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a zip archive", path.display()))?;
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .with_context(|| format!("{}: entry {i}", path.display()))?;
            let name = entry
                .name()
                .with_context(|| format!("{}: entry {i} has no readable name", path.display()))?
                .to_string();
            entries.push(format!("{name}\t{}\t{:08x}\n", entry.size(), entry.crc32()));
        }
        entries.sort();
        for e in entries {
            hasher.update(e.as_bytes());
        }
    } else {
        anyhow::bail!("dataset {} does not exist", path.display());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 of a whole file (the transferred core's weights).
pub fn file_fingerprint(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(
                path.strip_prefix(root)
                    .expect("listed under root")
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[{"d":1,"c":2}],"x":0.1}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":0.1,"y":[{"c":2,"d":1}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":0.1,"y":[{"c":2,"d":1}]},"b":1}"#
        );
        assert_eq!(fit_id(&canonical_json(&a)).len(), 16);
        assert_ne!(fit_id("x"), fit_id("y"));
    }

    #[test]
    fn folder_fingerprint_follows_content_not_location() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, tiers: &[u8]| {
            let root = dir.path().join(name);
            std::fs::create_dir_all(root.join("data/images")).unwrap();
            std::fs::create_dir_all(root.join("meta/trials")).unwrap();
            std::fs::write(root.join("data/images/0.npy"), [1u8; 64]).unwrap();
            std::fs::write(root.join("meta/trials/tiers.npy"), tiers).unwrap();
            root
        };
        let a = dataset_fingerprint(&make("a", b"train")).unwrap();
        let b = dataset_fingerprint(&make("b", b"train")).unwrap();
        let c = dataset_fingerprint(&make("c", b"tests")).unwrap();
        assert_eq!(a, b, "same content in another folder");
        assert_ne!(a, c, "meta content changed");
        let e = format!(
            "{:#}",
            dataset_fingerprint(&dir.path().join("nope")).unwrap_err()
        );
        assert!(e.contains("does not exist"), "{e}");
    }
}
