//! PyTorch-style state dicts: a flat map from dotted parameter names (e.g. `core.features.layer0.conv.weight`)
//! to tensors, in the names and shapes of the reference library (neuralpredictors). Used to export models a
//! PyTorch user can load, and to import cores trained in PyTorch.

use std::collections::BTreeMap;

/// One tensor of a state dict: its shape and values, row-major. Values are kept as f64 so both f32 and f64
/// models round-trip exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Name → tensor, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    pub entries: BTreeMap<String, StateTensor>,
}

/// Why a state dict could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    #[error("state dict has no entry `{0}`")]
    Missing(String),
    #[error("state dict entry `{name}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        name: String,
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
}

impl StateDict {
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f64>) {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.entries
            .insert(name.into(), StateTensor { shape, data });
    }

    /// The entry `name`, checked to have `expected` shape.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<&StateTensor, StateDictError> {
        let t = self
            .entries
            .get(name)
            .ok_or_else(|| StateDictError::Missing(name.to_string()))?;
        if t.shape != expected {
            return Err(StateDictError::Shape {
                name: name.to_string(),
                actual: t.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        Ok(t)
    }

    /// Entries whose names start with `prefix`, with the prefix removed (e.g. only the `core.` part).
    pub fn with_prefix(&self, prefix: &str) -> StateDict {
        StateDict {
            entries: self
                .entries
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect(),
        }
    }
}
