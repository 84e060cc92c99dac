//! The model family of Lurz et al. 2020: core → readout (+ shifter, × modulator) → ELU+1.

pub mod modulator;
pub mod readout;
pub mod shifter;
pub mod state_dict;
