//! Choosing where tensors live: the pure-Rust `flex` CPU backend (default) or CUDA
//! (cargo feature `cuda`). Model code is the same for both; only the [`burn::tensor::Device`]
//! differs.
