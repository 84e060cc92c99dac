//! How a readout's feature penalty aggregates |weights| (`reduction = "sum" | "mean"`).

use serde::{Deserialize, Serialize};

/// How a regulariser aggregates |weights|.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Σ|w| (the reference default; the penalty grows with the number of neurons).
    #[default]
    Sum,
    /// mean |w|.
    Mean,
}
