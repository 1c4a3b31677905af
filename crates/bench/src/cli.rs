//! Command line: one subcommand per scenario, `all` for every one, and the global options that
//! choose the kubelets, the runtime and the sizes.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kubelet-bench",
    about = "Measures kubelets from outside, through CRI and /proc: pod start latency, the \
             runtime's floor, reaction to a killed container, cost at density, churn"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub opts: Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Scenario {
    /// Start latency: one pod K times, then a burst of N pods written at once.
    Start,
    /// The runtime's floor: the same pods created by the bench directly through CRI.
    Floor,
    /// A container's process killed from outside, K times on fresh pods.
    Reaction,
    /// Kubelet CPU and memory with 0, N and N/2 pods running.
    Steady,
    /// N running pods removed and replaced by N new ones.
    Churn,
    /// Every scenario, the floor included, in one kubelet session per kubelet.
    All,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// A kubelet binary to measure; repeat it to compare kubelets, run alternately [default:
    /// target/release/kubelet]
    #[arg(long = "kubelet-binary", global = true)]
    pub kubelet_binaries: Vec<PathBuf>,
    /// An extra argument for every kubelet under test (repeatable), e.g. --kubelet-arg=-v=0
    #[arg(long = "kubelet-arg", global = true, allow_hyphen_values = true)]
    pub kubelet_args: Vec<String>,
    /// A CRI endpoint to use instead of starting a private containerd (unix:///path)
    #[arg(long, global = true)]
    pub runtime_endpoint: Option<String>,
    /// Pods in a burst, at density and in churn
    #[arg(short = 'n', long = "pods", default_value_t = 100, global = true)]
    pub pods: usize,
    /// Repeats of the single-pod start and of the reaction
    #[arg(short = 'k', long = "repeat", default_value_t = 10, global = true)]
    pub repeat: usize,
    /// Rounds: every subject (floor, each kubelet) runs once per round, in turn
    #[arg(long, default_value_t = 1, global = true)]
    pub rounds: usize,
    /// Seconds over which steady-state CPU and memory are sampled, at each pod count
    #[arg(long, default_value_t = 10, global = true)]
    pub window: u64,
    /// Write every sample and summary as JSON to this file
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Draw the start-latency distributions and CPU and memory against pod count (SVG)
    #[arg(long, global = true)]
    pub plot: Option<PathBuf>,
    /// The cgroup the kubelets and the floor put pods under (--cgroup-root); removed at the end
    #[arg(long, default_value = "/kubelet-rs-bench", global = true)]
    pub cgroup_root: String,
    /// The node name (--hostname-override); pods are named NAME-NODE
    #[arg(long, default_value = "kubelet-bench", global = true)]
    pub node_name: String,
    /// Seconds to wait for any one step before giving up
    #[arg(long, default_value_t = 300, global = true)]
    pub timeout: u64,
}
