//! Flint's benchmarks live in `benches/` (criterion); see `benches/README.md`.
