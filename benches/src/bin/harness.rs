//! The end-to-end load harness; see `flint_benches::harness` and
//! `benches/README.md`.

fn main() -> anyhow::Result<()> {
    flint_benches::harness::main()
}
