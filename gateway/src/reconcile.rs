//! The reconciler of `flint serve --manifest`: applies the manifest at
//! start, again whenever the file changes (`--watch`), and every
//! `heal_every` puts back what was changed outside it (a function deleted
//! or reconfigured through the API). Each correction is logged and counted
//! in `flint_drift_corrections_total`.

use crate::core::{Control, PlanChange};
use anyhow::Context;
use flint_spec::Digest;
use flint_spec::desired::DesiredState;
use flint_spec::manifest::{LoadedComponents, Manifest, load_components};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the manifest file is checked for changes under `--watch`.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// What the reconciler applies, and how.
#[derive(Debug, Clone)]
pub struct Reconciler {
    /// The manifest.
    pub manifest: PathBuf,
    /// Its environment overlay.
    pub env: Option<String>,
    /// Delete functions the manifest does not name.
    pub prune: bool,
    /// Re-apply when the file changes.
    pub watch: bool,
    /// How often drift is healed.
    pub heal_every: Duration,
}

/// The desired state last read, and the files holding its components.
struct Loaded {
    desired: DesiredState,
    components: LoadedComponents,
    stamp: Option<(SystemTime, u64)>,
}

/// Who the history names for the reconciler's changes.
const ACTOR: &str = "reconciler";

impl Reconciler {
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(&self.manifest).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Reads the manifest and builds or reads its components (blocking).
    async fn load(&self) -> anyhow::Result<Loaded> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Loaded> {
            let stamp = this.stamp();
            let manifest = Manifest::load(&this.manifest)?;
            let resolved = manifest.resolve(this.env.as_deref())?;
            let components = load_components(&resolved, &mut |line| tracing::info!("{line}"))?;
            Ok(Loaded {
                desired: resolved.desired(&components),
                components,
                stamp,
            })
        })
        .await?
    }

    /// Puts every component the server lacks into its store (a function
    /// deleted through the API took its bytes with it).
    async fn store_components(control: &Control, loaded: &Loaded) -> anyhow::Result<()> {
        for (digest, file) in &loaded.components.files {
            let parsed = Digest::parse(digest).context("manifest digests are valid")?;
            if control.has_component(&parsed).await {
                continue;
            }
            let bytes = tokio::fs::read(file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            control
                .upload_component(bytes.into(), None)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        }
        Ok(())
    }

    async fn apply(&self, control: &Control, loaded: &Loaded) -> anyhow::Result<Vec<PlanChange>> {
        Self::store_components(control, loaded).await?;
        let plan = control.apply(&loaded.desired, self.prune, ACTOR).await?;
        for note in &plan.notes {
            tracing::info!(manifest = %self.manifest.display(), "{note}");
        }
        Ok(plan.changes)
    }

    /// Applies the manifest once; the server refuses to start when this
    /// fails.
    pub async fn start(self, control: &Control) -> anyhow::Result<ReconcileLoop> {
        let loaded = self
            .load()
            .await
            .with_context(|| format!("applying {}", self.manifest.display()))?;
        let changes = self
            .apply(control, &loaded)
            .await
            .with_context(|| format!("applying {}", self.manifest.display()))?;
        tracing::info!(manifest = %self.manifest.display(), env = ?self.env, changes = changes.len(), "manifest applied");
        Ok(ReconcileLoop {
            reconciler: self,
            loaded,
        })
    }
}

/// The running reconciler, after its first apply.
pub struct ReconcileLoop {
    reconciler: Reconciler,
    loaded: Loaded,
}

impl ReconcileLoop {
    /// Watches and heals until the task is dropped.
    pub async fn run(mut self, control: Arc<Control>) {
        let r = self.reconciler.clone();
        let mut watch = tokio::time::interval(WATCH_EVERY);
        let mut heal = tokio::time::interval(r.heal_every);
        heal.tick().await;
        loop {
            tokio::select! {
                _ = watch.tick(), if r.watch => {
                    if r.stamp() == self.loaded.stamp {
                        continue;
                    }
                    match r.load().await {
                        Ok(loaded) => {
                            self.loaded = loaded;
                            match r.apply(&control, &self.loaded).await {
                                Ok(changes) => tracing::info!(manifest = %r.manifest.display(), changes = changes.len(), "manifest changed; applied"),
                                Err(e) => tracing::error!(manifest = %r.manifest.display(), error = %format!("{e:#}"), "manifest changed but could not be applied; the server keeps its state"),
                            }
                        }
                        Err(e) => {
                            // Remember the stamp so a broken file is reported once.
                            self.loaded.stamp = r.stamp();
                            tracing::error!(manifest = %r.manifest.display(), error = %format!("{e:#}"), "manifest changed but is invalid; the server keeps its state");
                        }
                    }
                }
                _ = heal.tick() => {
                    match r.apply(&control, &self.loaded).await {
                        Ok(changes) => {
                            for change in changes {
                                control.metrics().drift_corrected(&change.function, change.op.action());
                                tracing::warn!(function = %change.function, action = change.op.action(), detail = %change.detail, "drift healed: the function differed from the manifest");
                            }
                        }
                        Err(e) => tracing::error!(manifest = %r.manifest.display(), error = %format!("{e:#}"), "could not heal drift"),
                    }
                }
            }
        }
    }
}
