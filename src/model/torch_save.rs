//! Writing PyTorch checkpoints: a [`StateDict`] as the file `torch.save(model.state_dict(), f)`
//! writes (PyTorch ≥ 1.6's zip format), so that `torch.load` — also with `weights_only=True`,
//! the default since PyTorch 2.6 — and `model.load_state_dict` read it without cortexfit or
//! safetensors installed.
//!
//! The zip (written with the `zip` crate, entries stored uncompressed and aligned to 64 bytes
//! as PyTorch aligns them) holds, under one folder `archive/`:
//! - `data.pkl`: a pickle (protocol 2) of an `OrderedDict` name → tensor, each tensor being
//!   `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` whose
//!   storage is a persistent id `("storage", torch.FloatStorage, "<i>", "cpu", numel)`;
//! - `data/<i>`: tensor *i*'s values, little-endian (float32; int64 for `num_batches_tracked`);
//! - `byteorder` (`little`) and `version` (`3`).
//!
//! No Rust crate writes this format (burn's `pytorch-reader` and candle only read it, `tch`
//! needs libtorch, `serde-pickle` cannot write the global references and persistent ids a
//! tensor needs), so the pickle is emitted here with the handful of opcodes above; the tests
//! read every file back with `pytorch-reader`, and `python/tests/test_pytorch_export.py` with
//! `torch.load` itself.

use std::io::{Cursor, Write};
use std::path::Path;

use anyhow::Context;
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

use crate::model::state_dict::StateDict;

/// The folder inside the zip; PyTorch accepts any single top-level folder.
const ARCHIVE: &str = "archive";

/// Element type of one stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// float32 (`torch.FloatStorage`).
    Float,
    /// int64 (`torch.LongStorage`): batch norm's `num_batches_tracked`.
    Long,
}

impl Storage {
    fn of(name: &str) -> Storage {
        if name.ends_with("num_batches_tracked") {
            Storage::Long
        } else {
            Storage::Float
        }
    }

    fn class(self) -> &'static str {
        match self {
            Storage::Float => "FloatStorage",
            Storage::Long => "LongStorage",
        }
    }
}

/// Writes `sd` to `path` as a PyTorch checkpoint (float32 values), atomically.
pub fn write_pytorch_state_dict(path: &Path, sd: &StateDict) -> anyhow::Result<()> {
    let bytes = pytorch_state_dict_bytes(sd)
        .with_context(|| format!("writing the PyTorch checkpoint {}", path.display()))?;
    crate::io::atomic_write(path, &bytes)
}

/// The bytes of the PyTorch checkpoint of `sd`.
pub fn pytorch_state_dict_bytes(sd: &StateDict) -> anyhow::Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    // Stored, 64-byte aligned, a fixed time stamp: the same state dict gives the same bytes.
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment(64);
    zip.start_file(format!("{ARCHIVE}/data.pkl"), options)?;
    zip.write_all(&state_dict_pickle(sd))?;
    zip.start_file(format!("{ARCHIVE}/byteorder"), options)?;
    zip.write_all(b"little")?;
    for (key, (name, tensor)) in sd.entries.iter().enumerate() {
        zip.start_file(format!("{ARCHIVE}/data/{key}"), options)?;
        let bytes: Vec<u8> = match Storage::of(name) {
            Storage::Float => tensor
                .data
                .iter()
                .flat_map(|&x| (x as f32).to_le_bytes())
                .collect(),
            Storage::Long => tensor
                .data
                .iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect(),
        };
        zip.write_all(&bytes)
            .with_context(|| format!("tensor `{name}`"))?;
    }
    zip.start_file(format!("{ARCHIVE}/version"), options)?;
    zip.write_all(b"3\n")?;
    Ok(zip.finish()?.into_inner())
}

/// `data.pkl`: the pickle of the ordered dict of tensors; tensor *i* (in name order) refers to
/// the storage record `data/<i>`.
fn state_dict_pickle(sd: &StateDict) -> Vec<u8> {
    let mut p = Pickle::default();
    p.proto();
    p.global("collections", "OrderedDict");
    p.empty_tuple();
    p.reduce();
    p.mark();
    for (key, (name, tensor)) in sd.entries.iter().enumerate() {
        p.unicode(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.mark(); // the arguments of _rebuild_tensor_v2
        p.mark(); // the storage's persistent id
        p.unicode("storage");
        p.global("torch", Storage::of(name).class());
        p.unicode(&key.to_string());
        p.unicode("cpu");
        p.int(tensor.data.len() as i64);
        p.tuple();
        p.persistent_id();
        p.int(0); // storage offset
        p.int_tuple(tensor.shape.iter().map(|&d| d as i64));
        p.int_tuple(contiguous_strides(&tensor.shape).into_iter());
        p.bool(false); // requires_grad
        p.global("collections", "OrderedDict"); // backward hooks: none
        p.empty_tuple();
        p.reduce();
        p.tuple();
        p.reduce();
    }
    p.set_items();
    p.stop();
    p.bytes
}

/// Row-major strides, in elements.
fn contiguous_strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1] as i64;
    }
    strides
}

/// A pickle (protocol 2) under construction; the opcodes as Python's `pickletools` names them.
#[derive(Default)]
struct Pickle {
    bytes: Vec<u8>,
}

impl Pickle {
    fn proto(&mut self) {
        self.bytes.extend_from_slice(&[0x80, 2]);
    }
    /// GLOBAL: `module.name` pushed by reference.
    fn global(&mut self, module: &str, name: &str) {
        self.bytes.push(b'c');
        self.bytes.extend_from_slice(module.as_bytes());
        self.bytes.push(b'\n');
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(b'\n');
    }
    fn mark(&mut self) {
        self.bytes.push(b'(');
    }
    /// TUPLE: the items since the last mark.
    fn tuple(&mut self) {
        self.bytes.push(b't');
    }
    fn empty_tuple(&mut self) {
        self.bytes.push(b')');
    }
    /// REDUCE: call the callable below the argument tuple on top.
    fn reduce(&mut self) {
        self.bytes.push(b'R');
    }
    /// BINPERSID: the object on top is a persistent id, resolved by the loader (a storage).
    fn persistent_id(&mut self) {
        self.bytes.push(b'Q');
    }
    /// SETITEMS: key/value pairs since the last mark into the dict below the mark.
    fn set_items(&mut self) {
        self.bytes.push(b'u');
    }
    fn stop(&mut self) {
        self.bytes.push(b'.');
    }
    fn bool(&mut self, v: bool) {
        self.bytes.push(if v { 0x88 } else { 0x89 });
    }
    /// BINUNICODE: a UTF-8 string with a 4-byte length.
    fn unicode(&mut self, s: &str) {
        self.bytes.push(b'X');
        self.bytes
            .extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
    }
    /// The smallest integer opcode that holds `v`: BININT1, BININT2, BININT or LONG1.
    fn int(&mut self, v: i64) {
        if (0..=0xff).contains(&v) {
            self.bytes.extend_from_slice(&[b'K', v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.bytes.push(b'M');
            self.bytes.extend_from_slice(&(v as u16).to_le_bytes());
        } else if i32::try_from(v).is_ok() {
            self.bytes.push(b'J');
            self.bytes.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.bytes.extend_from_slice(&[0x8a, 8]);
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn int_tuple(&mut self, values: impl Iterator<Item = i64>) {
        self.mark();
        for v in values {
            self.int(v);
        }
        self.tuple();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pytorch::read_pytorch_state_dict;

    fn example() -> StateDict {
        let mut sd = StateDict::default();
        // Names in the reference's form; shapes of rank 0 to 4; values beyond 2^16 elements.
        sd.insert(
            "core.features.layer0.conv.weight",
            vec![4, 1, 3, 3],
            (0..36).map(|i| i as f64 * 0.25 - 3.0).collect(),
        );
        sd.insert(
            "core.features.layer0.norm.num_batches_tracked",
            vec![],
            vec![70000.0],
        );
        sd.insert("readout.0.bias", vec![3], vec![0.5, -1.5, 1e-7]);
        sd.insert(
            "readout.0.features",
            vec![1, 1, 70_000],
            (0..70_000).map(|i| (i as f64).sin()).collect(),
        );
        sd
    }

    #[test]
    fn written_checkpoint_reads_back_with_pytorch_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth");
        let sd = example();
        write_pytorch_state_dict(&path, &sd).unwrap();
        let back = read_pytorch_state_dict(&path, None).unwrap();
        assert_eq!(back.nested_key, None);
        assert_eq!(
            back.state.entries.keys().collect::<Vec<_>>(),
            sd.entries.keys().collect::<Vec<_>>()
        );
        for (name, t) in &sd.entries {
            let got = &back.state.entries[name];
            assert_eq!(got.shape, t.shape, "{name}");
            let want: Vec<f64> = t.data.iter().map(|&x| x as f32 as f64).collect();
            assert_eq!(got.data, want, "{name}");
        }
    }

    #[test]
    fn the_same_state_dict_gives_the_same_bytes_and_storages_are_aligned() {
        let a = pytorch_state_dict_bytes(&example()).unwrap();
        let b = pytorch_state_dict_bytes(&example()).unwrap();
        assert_eq!(a, b);
        let mut zip = zip::ZipArchive::new(Cursor::new(&a)).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        for i in 0..4 {
            assert!(names.contains(&format!("archive/data/{i}")), "{names:?}");
        }
        for i in 0..zip.len() {
            let f = zip.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            assert_eq!(f.compression(), CompressionMethod::Stored, "{name}");
            if name.starts_with("archive/data/") {
                assert_eq!(f.data_start().unwrap() % 64, 0, "{name}");
            }
        }
    }

    #[test]
    fn integers_use_the_smallest_opcode_and_strides_are_row_major() {
        let mut p = Pickle::default();
        for v in [7, 300, 70_000, 1 << 40] {
            p.int(v);
        }
        let mut want = vec![b'K', 7, b'M', 44, 1, b'J'];
        want.extend_from_slice(&70_000i32.to_le_bytes());
        want.extend_from_slice(&[0x8a, 8]);
        want.extend_from_slice(&(1i64 << 40).to_le_bytes());
        assert_eq!(p.bytes, want);
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<i64>::new());
    }
}
