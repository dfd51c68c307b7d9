//! The shared wasmtime engine: pooling allocator, epoch ticker for CPU
//! deadlines, and an on-disk cache of compiled components keyed by the
//! `.wasm` digest and the engine's compatibility hash.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick; a CPU deadline is a number of ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Concurrent instances the pool holds; more concurrent invocations wait for
/// a slot to be freed rather than allocating without bound.
const POOL_INSTANCES: u32 = 128;

/// Unused pool slots kept warm (memory resident) for the next instance.
const WARM_SLOTS: u32 = 16;

/// Builds the engine. `max_memory` is the largest per-plugin memory cap, so
/// the pool reserves no more address space per slot than some plugin may use.
pub fn new_engine(max_memory: usize) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        // A Rust component holds a few core instances (its module plus shims).
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(max_memory.max(1 << 20))
        // Reused slots are zeroed in place up to these sizes instead of being
        // returned to the kernel, sparing the next instance its page faults.
        // Still cleared between invocations: nothing leaks from one to the next.
        // Every slot ever used keeps this much: under a server's concurrency
        // the pool hands out dozens of slots, and at 2 MiB each a server
        // that had created 10,000 gated runs held 231 MB, at 256 KiB 148 MB
        // (a no-op invocation: 18.9 µs either way; BENCHMARKS.md).
        .linear_memory_keep_resident(256 << 10)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(64 << 10)
        // And only this many unused slots stay warm.
        .max_unused_warm_slots(WARM_SLOTS);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .wasm_component_model(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // A weak handle: the thread must not keep the engine alive.
        let engine = engine.weak();
        std::thread::Builder::new()
            .name("soar-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiled components on disk, one file per (wasm digest, engine build).
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled component for `wasm` (whose digest is `digest`):
    /// loaded from the cache, or compiled and stored.
    pub fn load(&self, engine: &Engine, digest: &str, wasm: &[u8]) -> wasmtime::Result<Component> {
        let path = self.path_for(engine, digest);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name);
            // the cache lives in the operator's data dir, which is as
            // trusted as the runner's own binary.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compiled component");
                }
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(e) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled component");
        }
        // SAFETY: produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
