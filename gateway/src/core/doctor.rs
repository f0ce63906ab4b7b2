//! `flint doctor`: checks the server's stored state and repairs what it can.
//!
//! Checked: every function's registry rows (config, versions, trigger,
//! release state: the rows the store could not parse), every version's blob
//! (present, and its sha256 equals the version's digest) and every
//! compiled artifact (it maps with this engine). Repaired: a missing or
//! unloadable artifact is recompiled from a good blob. Everything else is
//! reported by function and version: a broken row needs a new config, a
//! redeploy or a delete; a component whose blob is gone needs a redeploy.
//! After repairs memory is rebuilt from the store, so a function that was
//! disabled and is whole again serves.

use super::{Control, CoreError, CoreResult};
use crate::store::BrokenKind;
use bytes::Bytes;
use flint_spec::Digest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What `flint doctor` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DoctorReport {
    /// How many functions were checked.
    pub checked: usize,
    /// What was repaired.
    pub repaired: Vec<DoctorRepair>,
    /// What is still wrong (an empty list: all is well).
    pub problems: Vec<DoctorProblem>,
}

/// One repair.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorRepair {
    /// The function.
    pub function: String,
    /// The version, when the repair was of one.
    pub version: Option<u32>,
    /// What was done.
    pub what: String,
}

/// One problem left.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorProblem {
    /// The function.
    pub function: String,
    /// The version, when the problem is one version's.
    pub version: Option<u32>,
    /// What is wrong and what to do.
    pub problem: String,
}

/// A blob as found.
enum Blob {
    Good(Bytes),
    Bad(String),
}

/// A compiled artifact as found.
#[derive(Clone, Copy)]
enum Artifact {
    Loads,
    Missing,
    Unloadable,
}

impl Artifact {
    fn as_str(self) -> &'static str {
        match self {
            Self::Loads => "loads",
            Self::Missing => "is missing",
            Self::Unloadable => "does not load",
        }
    }
}

/// What checking one component came to.
#[derive(Clone)]
enum Checked {
    Fine,
    Repaired(String),
    /// A problem; `gone` when no call can load the component.
    Problem {
        problem: String,
        gone: bool,
    },
}

impl Control {
    /// Checks every function's stored rows, blobs and compiled artifacts;
    /// with `repair`, recompiles missing or unloadable artifacts from good
    /// blobs and then rebuilds memory from the store. Reports what it
    /// repaired and what is left, by function.
    pub async fn doctor(&self, repair: bool) -> CoreResult<DoctorReport> {
        let snapshot = self.s.store.load().await?;
        let mut report = DoctorReport {
            checked: snapshot.functions.len(),
            ..DoctorReport::default()
        };
        let schedules = self.s.store.broken_schedules().await?;
        for row in snapshot.broken.into_iter().chain(schedules) {
            let fix = match row.kind {
                BrokenKind::Config => format!(
                    "set a new config (`flint config {} --memory-mb N ...` writes a whole new row) or delete the function",
                    row.function
                ),
                BrokenKind::Version => {
                    "delete the function (`flint rm`) and deploy it again".to_string()
                }
                BrokenKind::Trigger => format!(
                    "set the trigger again (`flint trigger add {0} ...`) or remove it (`flint trigger rm {0}`)",
                    row.function
                ),
                BrokenKind::Release => format!(
                    "set the alias again (`flint alias set {} ...`) or delete the function",
                    row.function
                ),
                BrokenKind::Schedule => format!(
                    "remove it (`flint schedule rm {} ID`) and add it again; the function itself serves",
                    row.function
                ),
            };
            report.problems.push(DoctorProblem {
                function: row.function,
                version: row.version,
                problem: format!("{}; {fix}", row.reason),
            });
        }
        // Versions share blobs and artifacts: each digest is checked once.
        let mut checked: BTreeMap<Digest, Checked> = BTreeMap::new();
        for (record, versions) in &snapshot.functions {
            for v in versions {
                let first = !checked.contains_key(&v.digest);
                if first {
                    let outcome = self.check_component(&v.digest, repair).await;
                    checked.insert(v.digest.clone(), outcome);
                }
                let outcome = &checked[&v.digest];
                let in_memory = self
                    .s
                    .table
                    .get(&record.name)
                    .and_then(|e| e.version(v.version));
                match outcome {
                    Checked::Fine => {}
                    Checked::Repaired(what) if first => report.repaired.push(DoctorRepair {
                        function: record.name.clone(),
                        version: Some(v.version),
                        what: what.clone(),
                    }),
                    Checked::Repaired(_) => {}
                    Checked::Problem { problem, gone } => {
                        if *gone && let Some(version) = &in_memory {
                            version.set_broken(Some(format!("version {}: {problem}", v.version)));
                        }
                        report.problems.push(DoctorProblem {
                            function: record.name.clone(),
                            version: Some(v.version),
                            problem: problem.clone(),
                        });
                    }
                }
                if !matches!(outcome, Checked::Problem { gone: true, .. })
                    && let Some(version) = in_memory
                {
                    version.set_broken(None);
                }
            }
        }
        if repair {
            let _writing = self.s.writes.lock().await;
            self.sync_from_registry()
                .await
                .map_err(|e| CoreError::internal(format!("{e:#}")))?;
        }
        // A function memory disabled for a reason the rows do not show (a
        // config that cannot be applied) is a problem too.
        let named: BTreeSet<String> = report.problems.iter().map(|p| p.function.clone()).collect();
        for entry in self.s.table.list() {
            if let Some(reason) = entry.disabled()
                && !named.contains(&entry.name)
            {
                report.problems.push(DoctorProblem {
                    function: entry.name.clone(),
                    version: None,
                    problem: reason,
                });
            }
        }
        report
            .problems
            .sort_by(|a, b| (&a.function, a.version).cmp(&(&b.function, b.version)));
        tracing::info!(
            checked = report.checked,
            repaired = report.repaired.len(),
            problems = report.problems.len(),
            "doctor"
        );
        Ok(report)
    }

    /// Checks one component's blob and artifact; recompiles the artifact
    /// from a good blob when `repair`.
    async fn check_component(&self, digest: &Digest, repair: bool) -> Checked {
        let blob = match self.s.blobs.get(digest.clone()).await {
            Ok(bytes) => {
                let actual = Digest::of(&bytes);
                if actual == *digest {
                    Blob::Good(bytes.into())
                } else {
                    Blob::Bad(format!(
                        "its blob does not match its digest (it holds {actual})"
                    ))
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Blob::Bad("its blob is missing".into())
            }
            Err(e) => Blob::Bad(format!("its blob cannot be read: {e}")),
        };
        let runtime = self.s.runtime.clone();
        let d = digest.clone();
        let artifact = tokio::task::spawn_blocking(move || {
            if !runtime.cache().contains(&d) {
                Artifact::Missing
            } else if runtime.load_cached(&d).is_some() {
                Artifact::Loads
            } else {
                Artifact::Unloadable
            }
        })
        .await
        .unwrap_or(Artifact::Unloadable);
        match (artifact, blob) {
            (Artifact::Loads, Blob::Good(_)) => Checked::Fine,
            (Artifact::Loads, Blob::Bad(blob)) => Checked::Problem {
                problem: format!(
                    "component {digest}: {blob}; its compiled artifact still serves, but it cannot be recompiled (after an engine upgrade): redeploy the component"
                ),
                gone: false,
            },
            (artifact, Blob::Good(_)) if !repair => Checked::Problem {
                problem: format!(
                    "component {digest}: its compiled artifact {}; run `flint doctor` without --no-repair to recompile it from the blob",
                    artifact.as_str()
                ),
                gone: false,
            },
            (artifact, Blob::Good(bytes)) => match self.s.runtime.compile_limited(bytes).await {
                Ok(_) => Checked::Repaired(format!(
                    "its compiled artifact {}; recompiled it from the blob",
                    artifact.as_str()
                )),
                Err(e) => Checked::Problem {
                    problem: format!(
                        "component {digest}: its compiled artifact {} and recompiling the blob failed: {e}",
                        artifact.as_str()
                    ),
                    gone: false,
                },
            },
            (artifact, Blob::Bad(blob)) => Checked::Problem {
                problem: format!(
                    "component {digest} is gone: its compiled artifact {} and {blob}; redeploy the component (`flint deploy NAME FILE.wasm`) or delete the function",
                    artifact.as_str()
                ),
                gone: true,
            },
        }
    }
}
