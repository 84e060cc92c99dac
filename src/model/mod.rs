//! The model family of Lurz et al. 2020: core → readout (+ shifter, × modulator) → ELU+1.

pub mod state_dict;
