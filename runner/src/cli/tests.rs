//! `soar test [PLAYBOOK|DIR]...` and `soar test record RUN_ID`: glue over
//! [`crate::playtest`] (discovery, the run of each case, the reports).

use super::{exit, runs, Exit, Globals};
use crate::playtest::{self, canned::Switch};
use crate::plugin_host::PluginHost;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs every case of the test files `paths` name (default `playbooks/`).
pub async fn test(
    globals: &Globals,
    paths: Vec<PathBuf>,
    json: bool,
    junit: Option<PathBuf>,
) -> Exit {
    let started = std::time::Instant::now();
    let paths = if paths.is_empty() {
        vec![PathBuf::from("playbooks")]
    } else {
        paths
    };
    let files = match playtest::discover(&paths) {
        Ok(f) => f,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let config = match globals.config() {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    // The real manifests, digests and input checks; answers from the case.
    let switch = Arc::new(Switch::default());
    let host = match PluginHost::load(&config, &globals.cache_dir()).await {
        Ok(h) => Arc::new(h.with_answers(switch.clone())),
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let results = playtest::run_all(&files, host, switch, &config.policy, !json).await;
    let failed = results
        .iter()
        .flat_map(|f| &f.cases)
        .filter(|c| !c.passed)
        .count();
    if json {
        let total: usize = results.iter().map(|f| f.cases.len()).sum();
        let out = serde_json::json!({
            "passed": total - failed,
            "failed": failed,
            "millis": started.elapsed().as_millis() as u64,
            "files": results,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print!("{}", playtest::summary(&results, started.elapsed()));
    }
    if let Some(path) = junit {
        let xml = match playtest::junit(&results) {
            Ok(x) => x,
            Err(e) => return Exit::failed(format!("error: JUnit report: {e}")),
        };
        if let Err(e) = std::fs::write(&path, xml) {
            return Exit::failed(format!("error: cannot write {}: {e}", path.display()));
        }
    }
    Exit {
        code: if failed == 0 { exit::OK } else { exit::FAILED },
        message: None,
    }
}

/// Writes a case from run `run_id`'s journal to `out` (or stdout).
pub async fn record(
    globals: &Globals,
    run_id: &str,
    name: Option<String>,
    out: Option<PathBuf>,
) -> Exit {
    let journal = match runs::journal(globals) {
        Ok(j) => j,
        Err(e) => return e,
    };
    let records = match crate::operations::read_run(&journal, run_id) {
        Ok(r) => r,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let host = match runs::host(globals).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let playbook = match crate::operations::playbook_of(&records, &host) {
        Ok(pb) => pb,
        Err(e) => return Exit::invalid(format!("error: {e}")),
    };
    let uses = playbook
        .steps
        .iter()
        .filter(|s| !s.uses.is_empty())
        .map(|s| (s.id.clone(), s.uses.clone()))
        .collect();
    let destructive = |uses: &str| {
        let (plugin, action) = uses.split_once('.').unwrap_or_default();
        host.plugin(plugin)
            .and_then(|p| p.manifest.action(action))
            .is_some_and(|a| a.destructive)
    };
    let name = name.unwrap_or_else(|| format!("recorded-{run_id}"));
    let case = match playtest::record::case_of(&name, run_id, &records, &uses, &destructive) {
        Ok(c) => c,
        Err(e) => return Exit::invalid(format!("error: run {run_id}: {e}")),
    };
    match out {
        Some(path) => append_case(&path, &playbook.path, case),
        None => {
            let file = playtest::case::TestFile {
                playbook: None,
                cases: vec![case],
            };
            match crate::yaml::to_string(&file) {
                Ok(text) => {
                    print!("{text}");
                    Exit::ok()
                }
                Err(e) => Exit::failed(format!("error: {e}")),
            }
        }
    }
}

/// Adds `case` to the test file at `path` (created when missing; a case
/// of the same name is replaced).
fn append_case(path: &Path, playbook: &Path, case: playtest::case::Case) -> Exit {
    let mut file = if path.exists() {
        match playtest::case::read(path) {
            Ok(f) => f,
            Err(e) => return Exit::invalid(format!("error: {e}")),
        }
    } else {
        playtest::case::TestFile {
            // Beside its playbook, the default finds it.
            playbook: (!same_file(&playtest::test_file_of(playbook), path))
                .then(|| absolute(playbook)),
            cases: Vec::new(),
        }
    };
    let name = case.name.clone();
    file.cases.retain(|c| c.name != name);
    file.cases.push(case);
    let text = match crate::yaml::to_string(&file) {
        Ok(t) => t,
        Err(e) => return Exit::failed(format!("error: {e}")),
    };
    match std::fs::write(path, text) {
        Ok(()) => {
            println!("recorded case `{name}` in {}", path.display());
            Exit::ok()
        }
        Err(e) => Exit::failed(format!("error: cannot write {}: {e}", path.display())),
    }
}

/// The path made absolute (its directory resolved), for a file that may not
/// exist yet.
fn absolute(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    absolute(a) == absolute(b)
}
