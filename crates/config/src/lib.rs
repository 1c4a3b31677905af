//! The kubelet's configuration: upstream flags and the KubeletConfiguration file
//! (kubelet.config.k8s.io/v1beta1), merged with upstream precedence and defaults into one
//! resolved [`KubeletConfig`].
//!
//! Every upstream v1.32 flag and config field is recognised. Those kubelet-rs does not
//! implement yet are refused (flags) or ignored with a warning (file fields) when they are
//! given a value other than their upstream default, never dropped silently.

mod build;
mod builtin;
mod cli;
mod config_file;
mod cpu_manager;
mod error;
mod feature_gates;
mod file_table;
mod flag_table;
mod help;
mod host;
mod kubelet_config;
mod paths;
mod resolve;
mod runtime_cli;
mod settings;
mod units;
mod value;
mod version;

#[cfg(test)]
mod tests;

pub use builtin::BuiltinRuntimeConfig;
pub use cpu_manager::{CpuManagerConfig, CpuManagerPolicy};
pub use error::ConfigError;
pub use feature_gates::FeatureGates;
pub use kubelet_config::{
    AuthorizationMode, CgroupDriver, ContainerRuntime, ImageGcPolicy, KubeletConfig, LogFormat,
    TaintSpec,
};
pub use runtime_cli::{RuntimeCommand, RuntimeImport, RuntimeLogging, RuntimeServe};
pub use version::KUBERNETES_VERSION;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the kubelet with this configuration.
    Run(Box<KubeletConfig>),
    /// `kubelet runtime ...`: the built-in runtime alone.
    Runtime(RuntimeCommand),
    /// Print this help text and exit successfully.
    Help(String),
    /// Print this version text and exit successfully.
    Version(String),
}

/// Parses the command line (without argv[0]). `kubelet runtime ...` is the built-in runtime's
/// subcommand; otherwise it reads the --config file if given and resolves the kubelet's
/// configuration with upstream precedence: flags over the file over defaults.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ConfigError> {
    let mut args = args.into_iter().peekable();
    if args.next_if(|arg| arg == "runtime").is_some() {
        return runtime_cli::parse(args, &host::RealHost);
    }
    resolve::run(args, &host::RealHost)
}
