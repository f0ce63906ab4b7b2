//! What a version runs: a `wasi:http` component (WASI 0.2 or 0.3) or a
//! WAGI command module.

use flint_spec::FunctionKind;
use wasmtime::Module;
use wasmtime::component::Component;

/// A compiled function, ready to pre-link: cheap to clone (the compiled code
/// is shared).
#[derive(Clone)]
pub enum Program {
    /// A component exporting `wasi:http/incoming-handler` (WASI 0.2).
    Http(Component),
    /// A component exporting `wasi:http/handler` (WASI 0.3), compiled for
    /// the engine with concurrency support.
    HttpP3(Component),
    /// A WASI 0.1 command module run as CGI.
    Wagi(Module),
}

impl Program {
    /// Which kind of function this is.
    pub fn kind(&self) -> FunctionKind {
        match self {
            Self::Http(_) => FunctionKind::Http,
            Self::HttpP3(_) => FunctionKind::HttpP3,
            Self::Wagi(_) => FunctionKind::Wagi,
        }
    }

    /// The compiled artifact as the cache stores it.
    pub(crate) fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Self::Http(component) | Self::HttpP3(component) => component.serialize(),
            Self::Wagi(module) => module.serialize(),
        }
    }
}
