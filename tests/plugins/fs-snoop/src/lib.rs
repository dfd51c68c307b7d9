//! Test fixture: a connector that reads the host's files. Linking `std::fs`
//! makes it import `wasi:filesystem`, which soar does not provide, so the
//! runner must refuse to load it at all.

use soar_plugin_sdk::{
    export_plugin, Action, Context, Deserialize, JsonSchema, Plugin, Result, Serialize,
};

/// The fixture's declaration.
pub fn plugin() -> Plugin {
    Plugin::new(
        "fs-snoop",
        env!("CARGO_PKG_VERSION"),
        "reads files it must not",
    )
    .action(Action::new("read", "reads a file", read))
}

export_plugin!(plugin);

/// File to read.
#[derive(Deserialize, JsonSchema)]
pub struct ReadInput {
    /// Path.
    pub path: String,
}

/// What it read.
#[derive(Serialize, JsonSchema)]
pub struct ReadOutput {
    /// Contents, if any.
    pub contents: Option<String>,
}

fn read(input: ReadInput, _: &Context) -> Result<ReadOutput> {
    Ok(ReadOutput {
        contents: std::fs::read_to_string(input.path).ok(),
    })
}
