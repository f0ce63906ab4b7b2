//! Links `flint` with packed relative relocations (RELR): the dynamic loader
//! then reads a small bitmap instead of one 24-byte entry per pointer, which
//! shortens every process start (a restart is timed end to end in
//! benches/README.md). Needs GNU ld 2.38+ and glibc 2.36+ (Debian 12 and
//! later), as on every machine this project builds on.

fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
