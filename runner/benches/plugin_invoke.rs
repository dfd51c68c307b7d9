//! Plugin host overhead, next to native floors measured in the same run:
//! - per-invocation cost of a no-op action (fresh sandbox, instantiate, call,
//!   drop) vs. the same action called natively;
//! - the host's checks on it: the same no-op with two secrets granted (every
//!   output is searched for them in every encoding), and a GET through egress
//!   with and without secrets (method check, size caps, response scrubbing),
//!   interleaved in rounds so that the machine's noise hits both alike;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let vendor = runtime.block_on(async {
        let server = wiremock::MockServer::start().await;
        let body = serde_json::json!({"resources": [{"device_id": "0a1b2c3d", "hostname": "FIN-WS-042",
            "status": "normal", "note": "x".repeat(2000)}]});
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        server
    });
    std::fs::write(scratch.path().join("k1"), "bench-secret-value-one-1234").unwrap();
    std::fs::write(scratch.path().join("k2"), "bench-secret-value-two-5678").unwrap();
    let url = vendor.uri();
    std::fs::write(
        &config_path,
        format!(
            r#"plugins:
  hostile:
    path: {wasm}
    allowed_hosts: ["{url}"]
  with_secrets:
    path: {wasm}
    allowed_hosts: ["{url}"]
    secrets:
      api_key: {{ file: k1, hosts: ["{url}"] }}
      other_key: {{ file: k2, hosts: ["{url}"] }}
"#,
            wasm = wasm.display()
        ),
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

    let get = json!({"url": format!("{url}/devices/entities/devices/v2")});
    let (sandboxed_samples, checks) = runtime.block_on(async {
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
        // [no-op, no-op with secrets, GET, GET with secrets], in rounds.
        let cases = [
            ("hostile", "noop", &input),
            ("with_secrets", "noop", &input),
            ("hostile", "http", &get),
            ("with_secrets", "http", &get),
        ];
        let mut checks: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
        for _round in 0..10 {
            for (i, (plugin, action, input)) in cases.iter().enumerate() {
                let n = if *action == "noop" { 300 } else { 100 };
                for _ in 0..n {
                    let started = Instant::now();
                    let out = host.invoke(plugin, action, input, &invocation).await;
                    checks[i].push(started.elapsed());
                    out.result.expect("bench call");
                }
            }
        }
        (samples, checks)
    });
    let checks: Vec<(Duration, Duration)> = checks.into_iter().map(stats).collect();
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
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("host checks, interleaved (10 rounds)");
    println!(
        "  no-op, no secrets             median {:>10}  p99 {:>10}",
        us(checks[0].0),
        us(checks[0].1)
    );
    println!(
        "  no-op, 2 secrets scrubbed     median {:>10}  p99 {:>10}  ({:.3}x)",
        us(checks[1].0),
        us(checks[1].1),
        ratio(checks[1].0, checks[0].0)
    );
    println!(
        "  GET 2 KiB, no secrets         median {:>10}  p99 {:>10}",
        us(checks[2].0),
        us(checks[2].1)
    );
    println!(
        "  GET 2 KiB, 2 secrets scrubbed median {:>10}  p99 {:>10}  ({:.3}x)",
        us(checks[3].0),
        us(checks[3].1),
        ratio(checks[3].0, checks[2].0)
    );
    println!("soar plugins call hostile noop (whole process)");
    println!("  cold compilation cache        median {:>10}", ms(c_med));
    println!(
        "  warm compilation cache        median {:>10}  p99 {:>10}",
        ms(w_med),
        ms(w_p99)
    );
}
