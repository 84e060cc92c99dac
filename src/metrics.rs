//! Evaluation metrics, per neuron, across trials (REFERENCE.md §1.6): correlation, correlation
//! to the repeat average, jackknife and conservative oracle, fraction oracle, FEV / FEVE,
//! Poisson loss.
