//! Write soar connectors: typed actions, host-mediated HTTP, typed errors.
//!
//! A connector is a [`Plugin`] built from [`Action`]s, exported with
//! [`export_plugin!`]. It never sees secrets (it names them, the host fills
//! them in) and it can be unit-tested natively with [`testing::MockHost`].
#![deny(missing_docs)]

mod context;
mod error;
pub mod http;
mod manifest;
mod transport;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::{Context, Invocation, LogLevel};
pub use error::{Error, ErrorKind, Result, RetryAfter};
pub use manifest::{Action, ActionManifest, Manifest, Plugin, TargetField, TargetKind};

/// Re-exported so connectors derive schemas and (de)serialize with the same versions.
pub use schemars::{self, JsonSchema};
pub use serde::{self, Deserialize, Serialize};
pub use serde_json::{self, json, Value};

/// Generated bindings of `wit/soar-plugin.wit`; private to the SDK's macros.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "soar_plugin_sdk::bindings",
    });
}

/// Exports a connector: `export_plugin!(plugin)` where `fn plugin() -> Plugin`.
///
/// Only expands when building for `wasm32`, so the same crate also builds
/// natively for unit tests.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SoarPluginExport;
            impl $crate::bindings::exports::soar::plugin::connector::Guest for SoarPluginExport {
                fn describe() -> $crate::bindings::soar::plugin::types::Manifest {
                    $crate::__private::describe(&$plugin())
                }
                fn invoke(
                    action: ::std::string::String,
                    input: ::std::string::String,
                    invocation: $crate::bindings::soar::plugin::types::Invocation,
                ) -> ::std::result::Result<
                    ::std::string::String,
                    $crate::bindings::soar::plugin::types::PluginError,
                > {
                    $crate::__private::invoke(&$plugin(), &action, &input, invocation)
                }
            }
    $crate::bindings::export!(SoarPluginExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::transport::wasm::{describe, invoke};
}
