//! A whole run: in each round, each runtime in turn, and on it the subjects in turn (the floor,
//! then each kubelet), each in its own session on a clean runtime, so every kubelet meets the
//! same conditions and runtimes are compared within one run on the same (noisy) machine.

use crate::cgroups;
use crate::cli::{Options, Scenario};
use crate::error::Result;
use crate::floor::Floor;
use crate::kubelet_process::{KubeletProcess, KubeletSpec, Placement};
use crate::observe::{Observer, POLL};
use crate::purge::purge;
use crate::report::{KubeletInfo, Report, Settings, summarize};
use crate::results::{FLOOR, SessionResult};
use crate::session::{Phase, Session, Subject};
use kubelet_cri::remote::RemoteRuntime;
use std::time::Duration;
use tracing::info;

/// The phases a kubelet runs for `scenario`.
fn kubelet_phases(scenario: Scenario) -> &'static [Phase] {
    use Phase::*;
    match scenario {
        Scenario::Start => &[Single, Burst],
        Scenario::Floor => &[],
        Scenario::Reaction => &[Reaction],
        Scenario::Steady => &[Steady, Burst, Steady, Halve, Steady],
        Scenario::Churn => &[Burst, Churn],
        // Reaction before the burst: it measures one pod's restart, not a busy node's.
        Scenario::All => &[
            Steady, Single, Reaction, Burst, Steady, Churn, Halve, Steady,
        ],
    }
}

/// The phases the floor runs: those that have a meaning without a kubelet.
fn floor_phases(scenario: Scenario) -> &'static [Phase] {
    use Phase::*;
    match scenario {
        Scenario::Floor | Scenario::All => &[Single, Burst, Churn],
        _ => &[],
    }
}

/// The kubelets to measure, labelled A, B, ... in the order given.
pub fn kubelet_specs(opts: &Options, default_binary: std::path::PathBuf) -> Vec<KubeletSpec> {
    let binaries = if opts.kubelet_binaries.is_empty() {
        vec![default_binary]
    } else {
        opts.kubelet_binaries.clone()
    };
    binaries
        .into_iter()
        .enumerate()
        .map(|(i, binary)| KubeletSpec {
            label: ((b'A' + (i % 26) as u8) as char).to_string(),
            binary,
            extra_args: opts.kubelet_args.clone(),
        })
        .collect()
}

/// A runtime every subject runs on: "containerd" or "builtin", and how to reach it.
pub struct RuntimeUnderTest {
    pub name: &'static str,
    pub cri: RemoteRuntime,
    pub endpoint: String,
    /// What the runtime's processes name on their command lines, to sample their memory.
    pub process_marker: Option<std::path::PathBuf>,
}

pub struct Run<'a> {
    pub scenario: Scenario,
    pub opts: &'a Options,
    pub kubelets: &'a [KubeletSpec],
    pub runtimes: Vec<RuntimeUnderTest>,
}

impl Run<'_> {
    pub async fn execute(&self) -> Result<Report> {
        let opts = self.opts;
        self.clean().await?;
        let mut sessions = Vec::new();
        for round in 0..opts.rounds {
            for runtime in &self.runtimes {
                self.round_on(runtime, round, &mut sessions).await?;
            }
        }
        Ok(Report {
            machine: crate::machine::describe(&self.runtimes).await?,
            command: std::env::args().collect(),
            settings: Settings {
                scenario: format!("{:?}", self.scenario).to_lowercase(),
                runtimes: self.runtimes.iter().map(|r| r.name.to_string()).collect(),
                pods: opts.pods,
                repeat: opts.repeat,
                rounds: opts.rounds,
                window_s: opts.window,
                poll_ms: POLL.as_millis() as u64,
            },
            kubelets: self
                .kubelets
                .iter()
                .map(|k| KubeletInfo {
                    label: k.label.clone(),
                    binary: k.binary.display().to_string(),
                    args: k.extra_args.clone(),
                })
                .collect(),
            summary: summarize(&sessions),
            sessions,
        })
    }

    /// One round's sessions on `runtime`: the floor, then each kubelet.
    async fn round_on(
        &self,
        runtime: &RuntimeUnderTest,
        round: usize,
        sessions: &mut Vec<SessionResult>,
    ) -> Result<()> {
        let opts = self.opts;
        let observer = Observer::new(
            runtime.cri.clone(),
            &opts.node_name,
            Duration::from_secs(opts.timeout),
        );
        let floor = floor_phases(self.scenario);
        if !floor.is_empty() {
            let subject = Subject::Floor(Box::new(Floor::new(
                runtime.cri.clone(),
                &opts.node_name,
                &opts.cgroup_root,
            )?));
            sessions.push(
                self.session(subject, &observer, floor, FLOOR, runtime, round)
                    .await?,
            );
        }
        let phases = kubelet_phases(self.scenario);
        if phases.is_empty() {
            return Ok(());
        }
        let placement = Placement {
            endpoint: runtime.endpoint.clone(),
            cgroup_root: opts.cgroup_root.clone(),
            node: opts.node_name.clone(),
        };
        for spec in self.kubelets {
            cgroups::create_root(&opts.cgroup_root)?;
            let kubelet = KubeletProcess::start(spec, &placement).await?;
            let subject = Subject::Kubelet(kubelet);
            sessions.push(
                self.session(subject, &observer, phases, &spec.label, runtime, round)
                    .await?,
            );
        }
        Ok(())
    }

    async fn session(
        &self,
        subject: Subject,
        observer: &Observer,
        phases: &[Phase],
        name: &str,
        runtime: &RuntimeUnderTest,
        round: usize,
    ) -> Result<SessionResult> {
        info!(
            subject = name,
            runtime = runtime.name,
            round,
            "session starts"
        );
        let mut session = Session {
            subject,
            observer,
            pods: self.opts.pods,
            repeat: self.opts.repeat,
            window: Duration::from_secs(self.opts.window),
            node: &self.opts.node_name,
            cgroup_root: &self.opts.cgroup_root,
            runtime_marker: runtime.process_marker.as_deref(),
            running: Vec::new(),
        };
        let mut result = SessionResult {
            subject: name.to_string(),
            runtime: runtime.name.to_string(),
            round,
            ..Default::default()
        };
        let outcome = session.run(phases, &mut result).await;
        if let Subject::Kubelet(kubelet) = session.subject {
            kubelet.stop().await;
        }
        let cleaned = self.clean_on(runtime).await;
        outcome.and(cleaned).map(|_| result)
    }

    /// Removes what bench pods and cgroups are left on every runtime, so the next session
    /// starts clean (and no runtime is stopped with pods).
    pub async fn clean(&self) -> Result<()> {
        let mut outcome: Result<()> = Ok(());
        for runtime in &self.runtimes {
            if let Err(err) = purge(&runtime.cri, &self.opts.node_name).await {
                tracing::error!(runtime = runtime.name, %err, "removing the bench's pods failed");
                outcome = outcome.and(Err(err));
            }
        }
        outcome.and(cgroups::remove_tree(&self.opts.cgroup_root))
    }

    async fn clean_on(&self, runtime: &RuntimeUnderTest) -> Result<()> {
        purge(&runtime.cri, &self.opts.node_name).await?;
        cgroups::remove_tree(&self.opts.cgroup_root)
    }
}
