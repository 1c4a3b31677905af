//! One session: one subject (a kubelet process, or the floor) on a clean runtime, running a list
//! of phases in order, then removing every pod it made.

use crate::cgroups;
use crate::error::{BenchError, Result};
use crate::floor::Floor;
use crate::kubelet_process::KubeletProcess;
use crate::observe::{Liveness, Observer, POLL};
use crate::pods::{self, BenchPod};
use crate::pods_endpoint;
use crate::proc_sampler;
use crate::results::{Burst, Reaction, SessionResult};
use crate::stats::ms;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};
use tracing::info;

/// Time for a kubelet to finish the work that follows its pods' start (status, logs) before a
/// steady-state window opens.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// One pod started and removed, K times.
    Single,
    /// N pods written at once.
    Burst,
    /// CPU and memory with the pods running now.
    Steady,
    /// A container killed, K times, each on a fresh pod.
    Reaction,
    /// The running pods replaced by as many new ones.
    Churn,
    /// The second half of the running pods removed.
    Halve,
}

/// What creates and removes the pods.
pub enum Subject {
    Kubelet(KubeletProcess),
    /// Boxed: it is much larger than a kubelet handle.
    Floor(Box<Floor>),
}

impl Subject {
    fn create(&self, pods: &[BenchPod]) -> Result<Vec<(BenchPod, Instant)>> {
        match self {
            Subject::Kubelet(k) => k.write_manifests(pods),
            Subject::Floor(f) => f.create(pods),
        }
    }

    fn remove(&self, pods: &[BenchPod]) -> Result<()> {
        match self {
            Subject::Kubelet(k) => k.remove_manifests(pods),
            Subject::Floor(f) => {
                f.remove(pods);
                Ok(())
            }
        }
    }

    fn alive(&self) -> Result<()> {
        match self {
            Subject::Kubelet(k) => k.check_alive(),
            Subject::Floor(f) => f.check(),
        }
    }
}

pub struct Session<'a> {
    pub subject: Subject,
    pub observer: &'a Observer,
    pub pods: usize,
    pub repeat: usize,
    pub window: Duration,
    pub node: &'a str,
    pub cgroup_root: &'a str,
    /// What the runtime's processes name on their command lines (see
    /// [`proc_sampler::RuntimeProcesses`]); `None`: the runtime's memory is not sampled.
    pub runtime_marker: Option<&'a std::path::Path>,
    /// The pods running now.
    pub running: Vec<BenchPod>,
}

impl Session<'_> {
    /// Runs `phases` into `result`, then removes every pod (also after a failure).
    pub async fn run(&mut self, phases: &[Phase], result: &mut SessionResult) -> Result<()> {
        let outcome = self.run_phases(phases, result).await;
        let teardown = self.teardown().await;
        if let (Err(err), Subject::Kubelet(k)) = (&outcome, &self.subject) {
            tracing::error!(kubelet = %k.label(), %err, log = %k.log_tail(), "session failed");
        }
        outcome.and(teardown)
    }

    async fn run_phases(&mut self, phases: &[Phase], result: &mut SessionResult) -> Result<()> {
        for phase in phases {
            info!(subject = %result.subject, ?phase, "phase");
            match phase {
                Phase::Single => {
                    result.single_ms = self.single().await?;
                    if let Subject::Floor(floor) = &self.subject {
                        result.calls_ms = floor.take_calls().await?;
                    }
                }
                Phase::Burst => result.burst = Some(self.burst().await?),
                Phase::Steady => result.steady.push(self.steady().await?),
                Phase::Reaction => result.reaction = self.reaction().await?,
                Phase::Churn => result.churn_ms = Some(self.churn().await?),
                Phase::Halve => self.halve().await?,
            }
        }
        Ok(())
    }

    fn alive(&self) -> impl Fn() -> Result<()> + Sync + '_ {
        || self.subject.alive()
    }

    async fn single(&mut self) -> Result<Vec<f64>> {
        let mut samples = Vec::with_capacity(self.repeat);
        for i in 0..self.repeat {
            let pod = [BenchPod::new("single", i, self.node)];
            let written = self.subject.create(&pod)?;
            let seen = self.observer.wait_running(&pod, &self.alive()).await?;
            samples.push(ms(written[0].1, seen[&pod[0].full_name]));
            self.subject.remove(&pod)?;
            self.observer.wait_gone(&self.alive()).await?;
        }
        Ok(samples)
    }

    async fn burst(&mut self) -> Result<Burst> {
        let pods = pods::group("burst", self.pods, self.node);
        let written = self.subject.create(&pods)?;
        let seen = self.observer.wait_running(&pods, &self.alive()).await?;
        self.running = pods;
        let first = written.iter().map(|(_, at)| *at).min();
        let last = seen.values().copied().max();
        Ok(Burst {
            pods: written.len(),
            latencies_ms: written
                .iter()
                .map(|(pod, at)| ms(*at, seen[&pod.full_name]))
                .collect(),
            last_pod_ms: first.zip(last).map_or(0.0, |(f, l)| ms(f, l)),
        })
    }

    async fn steady(&mut self) -> Result<proc_sampler::SteadyPoint> {
        let Subject::Kubelet(kubelet) = &self.subject else {
            unreachable!("the floor has no process to sample: sessions give it no Steady phase")
        };
        tokio::time::sleep(SETTLE).await;
        kubelet.check_alive()?;
        let runtime = self
            .runtime_marker
            .map(|marker| proc_sampler::RuntimeProcesses {
                marker,
                exclude: vec![kubelet.pid(), std::process::id() as i32],
            });
        proc_sampler::measure(
            kubelet.pid(),
            self.running.len(),
            self.window,
            runtime.as_ref(),
        )
        .await
    }

    async fn churn(&mut self) -> Result<f64> {
        let old = std::mem::take(&mut self.running);
        let new = pods::group("churn", old.len(), self.node);
        let start = Instant::now();
        self.subject.remove(&old)?;
        self.subject.create(&new)?;
        let done = self.observer.wait_exactly(&new, &self.alive()).await?;
        self.running = new;
        Ok(ms(start, done))
    }

    async fn halve(&mut self) -> Result<()> {
        let gone = self.running.split_off(self.running.len() / 2);
        self.subject.remove(&gone)?;
        self.observer
            .wait_exactly(&self.running, &self.alive())
            .await?;
        Ok(())
    }

    async fn reaction(&mut self) -> Result<Vec<Reaction>> {
        let Subject::Kubelet(kubelet) = &self.subject else {
            unreachable!("the floor restarts nothing: sessions give it no Reaction phase")
        };
        let alive = || kubelet.check_alive();
        let mut samples = Vec::with_capacity(self.repeat);
        for i in 0..self.repeat {
            // A fresh pod each time: a second kill of the same container would meet back-off.
            let pod = BenchPod::new("react", i, self.node);
            kubelet.write_manifests(std::slice::from_ref(&pod))?;
            self.observer
                .wait_running(std::slice::from_ref(&pod), &alive)
                .await?;
            let old = self
                .observer
                .running_containers(&pod)
                .await?
                .pop()
                .ok_or_else(|| BenchError::NotRunning {
                    pod: pod.full_name.clone(),
                })?;
            // Only once the kubelet saw it run does a kill measure its reaction, not its start.
            if let Some(port) = kubelet.pods_port() {
                wait_reported_running(port, &pod, &old, &alive).await?;
            } else {
                tokio::time::sleep(SETTLE).await;
            }
            let pids = cgroups::container_pids(self.cgroup_root, &old)?;
            let killed = Instant::now();
            for pid in pids {
                // The process may be gone already (its PID 1 died first): that is fine.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let restart = self.observer.wait_replaced(&pod, &old, &alive);
            let reported = async {
                match kubelet.pods_port() {
                    Some(port) => wait_exit_reported(port, &pod, &old, &alive).await.map(Some),
                    None => Ok(None),
                }
            };
            let (restarted, reported) = tokio::try_join!(restart, reported)?;
            samples.push(Reaction {
                restart_ms: ms(killed, restarted),
                reported_ms: reported.map(|at| ms(killed, at)),
            });
            kubelet.remove_manifests(std::slice::from_ref(&pod))?;
            self.observer.wait_gone(&alive).await?;
        }
        Ok(samples)
    }

    /// Removes every pod and waits until the runtime holds none of them.
    async fn teardown(&mut self) -> Result<()> {
        let running = std::mem::take(&mut self.running);
        let removed = self.subject.remove(&running);
        let gone = self.observer.wait_gone(&self.alive()).await;
        removed.and(gone).map(|_| ())
    }
}

async fn wait_reported_running(
    port: u16,
    pod: &BenchPod,
    container_id: &str,
    alive: Liveness<'_>,
) -> Result<()> {
    poll_pods(
        port,
        alive,
        format!("{} reported running", pod.full_name),
        |pods| {
            pods.iter()
                .filter(|p| p.metadata.name.as_deref() == Some(pod.full_name.as_str()))
                .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
                .flatten()
                .any(|s| {
                    s.container_id
                        .as_ref()
                        .is_some_and(|id| id.ends_with(container_id))
                        && s.state.as_ref().is_some_and(|st| st.running.is_some())
                })
        },
    )
    .await
    .map(|_| ())
}

async fn wait_exit_reported(
    port: u16,
    pod: &BenchPod,
    container_id: &str,
    alive: Liveness<'_>,
) -> Result<Instant> {
    poll_pods(
        port,
        alive,
        format!("{} reported exited", pod.full_name),
        |pods| pods_endpoint::exit_reported(pods, &pod.full_name, container_id),
    )
    .await
}

/// Polls /pods until `done` holds; the instant it first did.
async fn poll_pods(
    port: u16,
    alive: Liveness<'_>,
    what: String,
    done: impl Fn(&[k8s_openapi::api::core::v1::Pod]) -> bool,
) -> Result<Instant> {
    const LIMIT: Duration = Duration::from_secs(120);
    let deadline = Instant::now() + LIMIT;
    loop {
        // A failed poll (a busy kubelet) is retried; only the deadline ends the wait.
        if let Ok(pods) = pods_endpoint::fetch(port).await {
            let now = Instant::now();
            if done(&pods) {
                return Ok(now);
            }
        }
        alive()?;
        if Instant::now() > deadline {
            return Err(BenchError::Timeout { what, after: LIMIT });
        }
        tokio::time::sleep(POLL).await;
    }
}
