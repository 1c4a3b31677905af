//! The `--help` text: every flag, one line each, with its type, default and status.

use std::fmt::Write;

use crate::flag_table::{Deprecation, FLAGS, FlagSpec, Role};
use crate::value::{Kind, Value};

pub(crate) fn render() -> String {
    let mut text = String::from(
        "kubelet-rs: the Kubernetes node agent, a drop-in for the upstream kubelet v1.32.\n\
         Flags override the KubeletConfiguration file given by --config.\n\n\
         Usage:\n\
         \x20 kubelet [flags]\n\
         \x20 kubelet runtime [flags]                   serve the built-in container runtime alone\n\
         \x20 kubelet runtime import [flags] ARCHIVE...  import OCI image archives into it\n\
         (see kubelet runtime --help and kubelet runtime import --help)\n\n\
         Without --container-runtime-endpoint (or containerRuntimeEndpoint in the --config file) the\n\
         kubelet runs the built-in runtime in process, configured by --runtime-root, --runtime-state,\n\
         --cni-conf-dir, --cni-bin-dir, --registry-config and --cgroup-driver, and serves it on\n\
         ROOT_DIR/runtime/cri.sock; upstream's default is containerd's socket.\n\nFlags:\n",
    );
    let columns: Vec<(String, &FlagSpec)> =
        FLAGS.iter().map(|flag| (signature(flag), flag)).collect();
    let width = columns
        .iter()
        .map(|(signature, _)| signature.len())
        .max()
        .unwrap_or(0);
    for (signature, flag) in columns {
        let _ = writeln!(text, "{signature:width$}   {}", describe(flag));
    }
    text
}

/// `  -v, --v int` or `      --max-pods int`, as pflag lays it out.
fn signature(flag: &FlagSpec) -> String {
    let short = match flag.shorthand {
        Some(shorthand) => format!("-{shorthand}, "),
        None => "    ".to_string(),
    };
    let type_name = match flag.role {
        Role::Version => "version[=true]",
        _ => flag.kind.type_name(),
    };
    format!("  {short}--{} {type_name}", flag.name)
        .trim_end()
        .to_string()
}

fn describe(flag: &FlagSpec) -> String {
    let mut line = flag.usage.to_string();
    match (shown_default(flag.kind, flag.default), flag.config_default) {
        (_, Some(config_default)) => {
            let _ = write!(
                line,
                " (default {}; {} with --config)",
                quoted(flag.kind, flag.default),
                quoted(flag.kind, config_default)
            );
        }
        (Some(default), None) => {
            let _ = write!(line, " (default {default})");
        }
        (None, None) => {}
    }
    match flag.deprecation {
        Deprecation::No => {}
        Deprecation::UseConfigFile => line.push_str(" [deprecated: set it in the --config file]"),
        Deprecation::Other(reason) => {
            let _ = write!(line, " [deprecated: {reason}]");
        }
    }
    match flag.role {
        Role::NotYet => line.push_str(" [not supported yet]"),
        Role::NoEffect(reason) => {
            let _ = write!(line, " [no effect: {reason}]");
        }
        _ => {}
    }
    line
}

/// pflag omits zero defaults.
fn shown_default(kind: Kind, default: &str) -> Option<String> {
    let zero =
        default.is_empty() || Value::from_text(kind, default).is_ok_and(|value| value.is_zero());
    (!zero).then(|| quoted(kind, default))
}

/// pflag quotes string defaults.
fn quoted(kind: Kind, text: &str) -> String {
    match kind {
        Kind::Str => format!("{text:?}"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_flag_with_defaults_and_status() {
        let help = render();
        for flag in FLAGS {
            let listed = help.lines().any(|line| {
                line.split_whitespace()
                    .any(|word| word == format!("--{}", flag.name))
            });
            assert!(listed, "--{} missing", flag.name);
        }
        let line = |name: &str| {
            help.lines()
                .find(|line| line.starts_with("  ") && line.contains(&format!("--{name} ")))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("max-pods").contains("(default 110)"));
        assert!(line("sync-frequency").contains("(default 1m0s)"));
        assert!(line("container-runtime-endpoint").contains("built-in runtime"));
        assert!(!line("container-runtime-endpoint").contains("(default"));
        assert!(line("cni-bin-dir").contains("(default /opt/cni/bin,/usr/lib/cni)"));
        assert!(line("runtime-root").contains("(default \"/var/lib/kubelet-rs\")"));
        assert!(help.contains("kubelet runtime import [flags] ARCHIVE..."));
        assert!(line("read-only-port").contains("(default 10255; 0 with --config)"));
        assert!(
            line("authentication-token-webhook").contains("(default false; true with --config)")
        );
        assert!(
            line("authorization-mode")
                .contains("(default \"AlwaysAllow\"; \"Webhook\" with --config)")
        );
        assert!(!line("version").contains("default"));
        assert!(line("cloud-provider").contains("[not supported yet]"));
        assert!(!line("authentication-token-webhook").contains("[not supported yet]"));
        assert!(!line("anonymous-auth").contains("[not supported yet]"));
        assert!(!line("read-only-port").contains("[not supported yet]"));
        assert!(!line("max-pods").contains("[not supported yet]"));
        assert!(line("container-log-symlink-dir").contains("kubelet-rs extension"));
        assert!(help.contains("  -v, --v int"));
        assert!(help.contains("  -h, --help"));
    }
}
