//! Reading PyTorch checkpoints (`torch.save` files: `.pth`, `.pth.tar`, `.pt`) into a
//! [`StateDict`], with burn's PyTorch reader, `pytorch-reader` (the crate `burn-store` re-exports behind
//! its `pytorch` feature; used directly so that burn's own feature set, and build, stay as they
//! are): the zip + pickle format PyTorch writes since 1.6, and the legacy formats before it.
//! No pickle is parsed here.
//!
//! A file may hold the state dict itself (`torch.save(model.state_dict(), f)`) or nest it under a
//! key (`torch.save({"model_state": model.state_dict(), "epoch": 42}, f)`, also `state_dict`,
//! `model`, or `module.` from `DataParallel`). The state dict is the set of tensors whose names
//! start with `core.` after one such prefix: without an explicit key, the prefix is found by
//! looking for `core.` tensors, and a file where several prefixes qualify is refused, naming them.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use pytorch_reader::{DType, PytorchReader};

use crate::model::checkpoint::half_to_f64;
use crate::model::state_dict::{StateDict, StateTensor};

/// A state dict read from a PyTorch checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchStateDict {
    /// The tensors, under the names the model's `state_dict()` gives them.
    pub state: StateDict,
    /// The key the state dict was nested under (`model_state`, …), if any.
    pub nested_key: Option<String>,
}

/// Reads the model state dict of the PyTorch checkpoint `path`. With `key`, the state dict is
/// the dictionary stored under that top-level key (dotted for deeper nesting); without, it is
/// found as the module's documentation says. Every error names the file.
pub fn read_pytorch_state_dict(path: &Path, key: Option<&str>) -> anyhow::Result<TorchStateDict> {
    let p = path.display();
    anyhow::ensure!(path.is_file(), "{p}: no such file");
    let reader = PytorchReader::new(path).map_err(|e| {
        anyhow::anyhow!(
            "{p}: not a readable PyTorch checkpoint (a file written by torch.save: {e}); a \
             truncated or partly copied file reads like this"
        )
    })?;
    let names: BTreeSet<String> = reader.keys().into_iter().collect();
    let prefix = match key {
        Some(k) => {
            let k = k.trim_end_matches('.');
            let prefix = format!("{k}.");
            anyhow::ensure!(
                names.iter().any(|n| n.starts_with(&prefix)),
                "{p}: no tensors under the key `{k}`; {}",
                describe_prefixes(&names)
            );
            Some(k.to_string())
        }
        None => find_prefix(&names).with_context(|| p.to_string())?,
    };
    let strip = prefix.as_ref().map(|k| format!("{k}."));
    let mut state = StateDict::default();
    for (name, tensor) in reader.tensors() {
        let short = match &strip {
            Some(s) => match name.strip_prefix(s.as_str()) {
                Some(rest) => rest,
                None => continue,
            },
            None => name.as_str(),
        };
        let bytes = tensor
            .read()
            .map_err(|e| anyhow::anyhow!("{p}: reading tensor `{name}`: {e}"))?;
        let data = to_f64(&bytes, tensor.dtype())
            .with_context(|| format!("{p}: tensor `{name}` has dtype {:?}", tensor.dtype()))?;
        state.entries.insert(
            short.to_string(),
            StateTensor {
                shape: tensor.shape().to_vec(),
                data,
            },
        );
    }
    Ok(TorchStateDict {
        state,
        nested_key: prefix,
    })
}

/// The prefix (without its trailing dot) under which the `core.` tensors sit: `None` for a plain
/// state dict, `Some("model_state")` for one nested under that key.
fn find_prefix(names: &BTreeSet<String>) -> anyhow::Result<Option<String>> {
    if names.iter().any(|n| n.starts_with("core.")) {
        return Ok(None);
    }
    let candidates: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.find(".core.").map(|i| &n[..i]))
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().map(str::to_string)),
        0 => anyhow::bail!(
            "no `core.` tensors, so this is not the state dict of a neuralpredictors / cortexfit \
             model (core + readout); {}",
            describe_prefixes(names)
        ),
        _ => anyhow::bail!(
            "several state dicts with `core.` tensors, under {}; choose one with --state-key",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A short description of what a checkpoint holds, for error messages.
fn describe_prefixes(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "the file holds no tensors".into();
    }
    let first: BTreeSet<&str> = names
        .iter()
        .map(|n| n.split('.').next().unwrap_or(n))
        .collect();
    format!(
        "its {} tensors start with {}",
        names.len(),
        first
            .iter()
            .take(8)
            .map(|c| format!("`{c}.`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Native-endian tensor bytes → f64 values.
fn to_f64(bytes: &[u8], dtype: DType) -> anyhow::Result<Vec<f64>> {
    fn chunks<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N bytes")))
            .collect()
    }
    Ok(match dtype {
        DType::F64 => chunks(bytes, f64::from_ne_bytes),
        DType::F32 => chunks(bytes, |b| f32::from_ne_bytes(b) as f64),
        DType::F16 => chunks(bytes, |b| half_to_f64(u16::from_ne_bytes(b))),
        DType::BF16 => chunks(bytes, |b| {
            f32::from_bits((u16::from_ne_bytes(b) as u32) << 16) as f64
        }),
        DType::I64 => chunks(bytes, |b| i64::from_ne_bytes(b) as f64),
        DType::I32 => chunks(bytes, |b| i32::from_ne_bytes(b) as f64),
        DType::I16 => chunks(bytes, |b| i16::from_ne_bytes(b) as f64),
        DType::I8 => chunks(bytes, |b: [u8; 1]| b[0] as i8 as f64),
        DType::U8 | DType::Bool => chunks(bytes, |b: [u8; 1]| b[0] as f64),
        DType::U16 | DType::U32 | DType::U64 => {
            anyhow::bail!("expected a float or signed integer type")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_state_dict_is_found_plain_nested_or_refused() {
        assert_eq!(
            find_prefix(&names(&["core.a", "readout.k.bias"])).unwrap(),
            None
        );
        assert_eq!(
            find_prefix(&names(&["model_state.core.a", "optimizer.state.0.x"])).unwrap(),
            Some("model_state".into())
        );
        let err = find_prefix(&names(&["a.core.x", "b.core.x"])).unwrap_err();
        assert!(
            err.to_string().contains("`a`, `b`") && err.to_string().contains("--state-key"),
            "{err}"
        );
        let err = find_prefix(&names(&["fc.weight"])).unwrap_err().to_string();
        assert!(
            err.contains("no `core.` tensors") && err.contains("`fc.`"),
            "{err}"
        );
    }

    #[test]
    fn bytes_convert_per_dtype() {
        let b: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(to_f64(&b, DType::F32).unwrap(), vec![1.5, -2.0]);
        let b: Vec<u8> = 7i64.to_ne_bytes().to_vec();
        assert_eq!(to_f64(&b, DType::I64).unwrap(), vec![7.0]);
        let b: Vec<u8> = 0x3800u16.to_ne_bytes().to_vec(); // 0.5 in IEEE half
        assert_eq!(to_f64(&b, DType::F16).unwrap(), vec![0.5]);
        assert!(to_f64(&[0; 8], DType::U64).is_err());
    }

    #[test]
    fn garbage_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth");
        std::fs::write(&path, b"this is not a checkpoint").unwrap();
        let err = format!("{:#}", read_pytorch_state_dict(&path, None).unwrap_err());
        assert!(
            err.contains("model.pth") && err.contains("not a readable PyTorch checkpoint"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_pytorch_state_dict(&dir.path().join("gone.pth"), None).unwrap_err()
        );
        assert!(err.contains("gone.pth: no such file"), "{err}");
    }
}
