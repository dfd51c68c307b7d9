//! `soar test`: playbook tests. A `NAME.test.yaml` beside a playbook holds
//! cases ([`case`]); each runs through the real engine with canned answers
//! in place of the connectors ([`canned`], [`run`]) and is checked against
//! its expectations ([`check`]); [`record`] writes a case from a real run.

pub mod canned;
pub mod case;
pub mod check;
pub mod record;
pub mod run;

use crate::config::Policy;
use crate::plugin_host::PluginHost;
use run::{Bench, CaseResult};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The test file of a playbook: `x.yaml` → `x.test.yaml`.
pub fn test_file_of(playbook: &Path) -> PathBuf {
    let stem = playbook
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    playbook.with_file_name(format!("{stem}.test.yaml"))
}

/// The playbook a test file tests by default: `x.test.yaml` → `x.yaml`.
fn playbook_of(test_file: &Path) -> PathBuf {
    let name = test_file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".test.yaml").unwrap_or(&name);
    test_file.with_file_name(format!("{stem}.yaml"))
}

fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".test.yaml"))
}

/// The test files `paths` name: a directory's `*.test.yaml` (sorted), a
/// test file itself, or a playbook's test file (which must exist).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_test_file(p))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{}: no *.test.yaml files", path.display()));
            }
            files.extend(found);
        } else if is_test_file(path) {
            files.push(path.clone());
        } else {
            let file = test_file_of(path);
            if !file.exists() {
                return Err(format!(
                    "{}: no test file (expected {})",
                    path.display(),
                    file.display()
                ));
            }
            files.push(file);
        }
    }
    Ok(files)
}

/// One test file's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileResult {
    /// The test file.
    pub file: PathBuf,
    /// The playbook it tests.
    pub playbook: PathBuf,
    /// Its cases, in order.
    pub cases: Vec<CaseResult>,
}

/// Runs every case of every file, one at a time, printing a line per case
/// as it ends when `progress` is set (`cargo test` style).
pub async fn run_all(
    files: &[PathBuf],
    host: Arc<PluginHost>,
    switch: Arc<canned::Switch>,
    policy: &Policy,
    progress: bool,
) -> Vec<FileResult> {
    let mut out = Vec::new();
    for file in files {
        let result = run_file(file, &host, &switch, policy, progress).await;
        out.push(result);
    }
    out
}

async fn run_file(
    file: &Path,
    host: &Arc<PluginHost>,
    switch: &Arc<canned::Switch>,
    policy: &Policy,
    progress: bool,
) -> FileResult {
    let failed = |name: String, problem: String| CaseResult {
        name,
        passed: false,
        mismatches: Vec::new(),
        problems: vec![problem],
        status: None,
        run_id: None,
        millis: 0,
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let (tests, playbook) = match case::read(file) {
        Ok(t) => {
            let pb = t
                .playbook
                .as_ref()
                .map_or_else(|| playbook_of(file), |p| base.join(p));
            (t, pb)
        }
        Err(e) => {
            let r = failed(file.display().to_string(), e);
            return finish(file, playbook_of(file), vec![r], progress);
        }
    };
    let pb = match crate::operations::checked_playbook(&playbook, host) {
        Ok(pb) => Arc::new(pb),
        Err(problems) => {
            let r = failed(
                format!("{}::(playbook)", playbook.display()),
                format!("the playbook is invalid:\n{}", problems.join("\n")),
            );
            return finish(file, playbook, vec![r], progress);
        }
    };
    if progress {
        println!(
            "\nrunning {} test(s) from {}",
            tests.cases.len(),
            file.display()
        );
    }
    let bench = Bench {
        host: host.clone(),
        switch: switch.clone(),
        policy,
        playbook: pb.clone(),
    };
    let mut results = Vec::new();
    for case in &tests.cases {
        let result = match run::alert_of(case, base) {
            Ok(alert) => run::run_case(&bench, case, alert).await,
            Err(e) => failed(format!("{}::{}", pb.name, case.name), e),
        };
        if progress {
            print_line(&result);
        }
        results.push(result);
    }
    FileResult {
        file: file.to_path_buf(),
        playbook,
        cases: results,
    }
}

fn finish(file: &Path, playbook: PathBuf, cases: Vec<CaseResult>, progress: bool) -> FileResult {
    if progress {
        cases.iter().for_each(print_line);
    }
    FileResult {
        file: file.to_path_buf(),
        playbook,
        cases,
    }
}

fn print_line(r: &CaseResult) {
    let verdict = if r.passed { "ok" } else { "FAILED" };
    println!("test {} ... {verdict}", crate::inert::line(&r.name));
}

/// The failures section and the summary line, as `cargo test` prints them.
pub fn summary(results: &[FileResult], elapsed: std::time::Duration) -> String {
    let cases: Vec<&CaseResult> = results.iter().flat_map(|f| &f.cases).collect();
    let failed: Vec<&&CaseResult> = cases.iter().filter(|c| !c.passed).collect();
    let mut out = String::new();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n");
        for c in &failed {
            out.push_str(&format!("\n---- {} ----\n", crate::inert::line(&c.name)));
            out.push_str(&failure_text(c));
        }
        out.push_str("\nfailures:\n");
        for c in &failed {
            out.push_str(&format!("    {}\n", crate::inert::line(&c.name)));
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    out.push_str(&format!(
        "\ntest result: {verdict}. {} passed, {} failed; finished in {:.2}s\n",
        cases.len() - failed.len(),
        failed.len(),
        elapsed.as_secs_f64()
    ));
    out
}

/// What went wrong in one case: problems, then each mismatch as a diff
/// of the expected (`-`) and actual (`+`) values.
pub fn failure_text(c: &CaseResult) -> String {
    let mut out = String::new();
    if let (Some(status), Some(run)) = (&c.status, &c.run_id) {
        out.push_str(&format!("run {run} ended {status}\n"));
    }
    for p in &c.problems {
        out.push_str(&format!("problem: {}\n", crate::inert::block(p)));
    }
    for m in &c.mismatches {
        out.push_str(&format!("{}:\n", m.what));
        let expected = pretty(&m.expected);
        let actual = pretty(&m.actual);
        let diff = similar::TextDiff::from_lines(&expected, &actual);
        for change in diff.iter_all_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => "- ",
                similar::ChangeTag::Insert => "+ ",
                similar::ChangeTag::Equal => "  ",
            };
            let line = change.to_string_lossy();
            let line = line.trim_end_matches('\n');
            out.push_str(&format!("  {sign}{}\n", crate::inert::line(line)));
        }
    }
    out
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A JUnit XML report: a suite per test file, a test case per case.
pub fn junit(results: &[FileResult]) -> Result<String, String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("soar test");
    for file in results {
        let mut suite = TestSuite::new(file.file.display().to_string());
        for c in &file.cases {
            let status = if c.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let first = c
                    .problems
                    .first()
                    .cloned()
                    .or_else(|| c.mismatches.first().map(|m| format!("{} differs", m.what)))
                    .unwrap_or_default();
                s.set_message(first);
                s.set_description(failure_text(c));
                s
            };
            let mut case = TestCase::new(c.name.clone(), status);
            case.set_classname(file.playbook.display().to_string());
            case.set_time(std::time::Duration::from_millis(c.millis));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| e.to_string())
}
