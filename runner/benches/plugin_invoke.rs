//! Plugin host overhead, next to native floors measured in the same run:
//! - per-invocation cost of a no-op action (fresh sandbox, instantiate, call,
//!   drop) vs. the same action called natively;
//! - `soar plugins call` wall time with a warm compilation cache vs. a cold one.
//!
//! Run with `scripts/bench.sh` (builds the fixture plugin and soar first).

// The allocator the `soar` binary ships with (runner/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use soar_runner::config::Config;
use soar_runner::plugin_host::{Invocation, PluginHost};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps")
        .to_path_buf()
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (median, p99)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn soar_call(soar: &Path, dir: &Path, data: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(soar)
        .args(["plugins", "call", "hostile", "noop", "--input", "{}"])
        .current_dir(dir)
        .env("SOAR_DATA_DIR", data)
        .env_remove("SOAR_CONFIG")
        .output()
        .expect("run soar");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    let target = target_dir();
    let wasm = target.join("wasm32-wasip2/plugin/hostile.wasm");
    let soar = target.join("debug/soar");
    assert!(
        wasm.exists() && soar.exists(),
        "run scripts/bench.sh (builds {} and {})",
        wasm.display(),
        soar.display()
    );
    let scratch = tempfile::tempdir().expect("temp dir");
    let config_path = scratch.path().join("soar.yaml");
    std::fs::write(
        &config_path,
        format!("plugins:\n  hostile:\n    path: {}\n", wasm.display()),
    )
    .unwrap();
    let config = Config::load(&config_path).expect("config");
    let invocation = Invocation {
        run_id: "bench".into(),
        step_id: "noop".into(),
        attempt: 1,
        idempotency_key: "bench".into(),
        dry_run: false,
    };
    let input = json!({});
    let iterations = 5000;

    // Floor: the same action, dispatched natively through the SDK.
    let native = hostile::plugin();
    let mut native_samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let out = native.invoke(
            "noop",
            std::hint::black_box("{}"),
            soar_plugin_sdk::Invocation::for_test("bench"),
        );
        native_samples.push(started.elapsed());
        std::hint::black_box(out.expect("native noop"));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandboxed_samples = runtime.block_on(async {
        let host = PluginHost::load(&config, &scratch.path().join("cache"))
            .await
            .expect("load");
        for _ in 0..200 {
            host.invoke("hostile", "noop", &input, &invocation)
                .await
                .result
                .expect("warm-up");
        }
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let out = host.invoke("hostile", "noop", &input, &invocation).await;
            samples.push(started.elapsed());
            out.result.expect("noop");
        }
        samples
    });
    let (n_med, n_p99) = stats(native_samples);
    let (s_med, s_p99) = stats(sandboxed_samples);

    // CLI: a cold call compiles the component; warm calls load it from the cache.
    let mut cold = Vec::new();
    for i in 0..5 {
        cold.push(soar_call(
            &soar,
            scratch.path(),
            &scratch.path().join(format!("cold-{i}")),
        ));
    }
    let warm_data = scratch.path().join("warm");
    soar_call(&soar, scratch.path(), &warm_data);
    let warm: Vec<Duration> = (0..20)
        .map(|_| soar_call(&soar, scratch.path(), &warm_data))
        .collect();
    let (c_med, _) = stats(cold);
    let (w_med, w_p99) = stats(warm);

    println!("plugin invocation, no-op action ({iterations} iterations)");
    println!(
        "  native SDK dispatch (floor)   median {:>10}  p99 {:>10}",
        us(n_med),
        us(n_p99)
    );
    println!(
        "  sandboxed invoke              median {:>10}  p99 {:>10}",
        us(s_med),
        us(s_p99)
    );
    println!(
        "  sandbox overhead over floor   median {:>10}",
        us(s_med.saturating_sub(n_med))
    );
    println!("soar plugins call hostile noop (whole process)");
    println!("  cold compilation cache        median {:>10}", ms(c_med));
    println!(
        "  warm compilation cache        median {:>10}  p99 {:>10}",
        ms(w_med),
        ms(w_p99)
    );
}
