//! The run configuration: one typed TOML file (sections `data`, `model`, `trainer`, plus `seed`)
//! that rejects unknown keys and contradictory settings.
