//! Host bindings generated from the one WIT contract in `plugin-sdk/wit/`.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "plugin",
    imports: {
        "soar:plugin/host.send": async,
        default: trappable,
    },
    exports: { default: async },
});
