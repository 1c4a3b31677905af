//! Unit tests of spec generation; each builds specs from CRI configs through `build_spec`.

mod cdi_edits;
mod linux;
mod process_user;
mod runtime_cli;
mod security;

use crate::{NamespacePaths, SandboxFiles, SpecInput, build_spec};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    PodSandboxConfig, PodSandboxMetadata,
};
use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// What a test varies; everything else is a plain busybox-like container.
pub(crate) struct Case {
    pub container: ContainerConfig,
    pub sandbox: PodSandboxConfig,
    pub image: ImageConfiguration,
    pub rootfs: tempfile::TempDir,
    pub namespaces: NamespacePaths,
    pub files: SandboxFiles,
    pub pids_limit: Option<i64>,
    pub cdi_dirs: Vec<PathBuf>,
    pub recursive_read_only: bool,
}

impl Case {
    pub fn new() -> Case {
        Case {
            container: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "localhost/busybox:1.35".into(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "1".into()],
                linux: Some(LinuxContainerConfig::default()),
                ..Default::default()
            },
            sandbox: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "pod".into(),
                    uid: "uid-1".into(),
                    namespace: "ns".into(),
                    attempt: 0,
                }),
                hostname: "pod-host".into(),
                linux: Some(LinuxPodSandboxConfig::default()),
                ..Default::default()
            },
            image: image(None, None, &[], None, None),
            rootfs: tempfile::tempdir().expect("temp rootfs"),
            namespaces: NamespacePaths::default(),
            files: SandboxFiles::default(),
            pids_limit: None,
            cdi_dirs: Vec::new(),
            recursive_read_only: true,
        }
    }

    /// The container's security context, created on first use.
    pub fn security(&mut self) -> &mut LinuxContainerSecurityContext {
        self.container
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    pub fn sandbox_security(&mut self) -> &mut LinuxSandboxSecurityContext {
        self.sandbox
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    pub fn write_rootfs(&self, path: &str, text: &str) {
        let p = self.rootfs.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write rootfs file");
    }

    pub fn build(&self) -> Result<Spec, crate::SpecError> {
        build_spec(&SpecInput {
            container_id: "c1",
            sandbox_id: "s1",
            container: &self.container,
            sandbox: &self.sandbox,
            image: &self.image,
            rootfs: self.rootfs.path(),
            namespaces: self.namespaces.clone(),
            cgroups_path: "/kubelet-rs-test/c1".into(),
            sandbox_files: self.files.clone(),
            pids_limit: self.pids_limit,
            cdi_spec_dirs: &self.cdi_dirs,
            recursive_read_only: self.recursive_read_only,
        })
    }

    pub fn spec(&self) -> Spec {
        self.build().expect("build_spec")
    }
}

/// An image config with the given parts.
pub(crate) fn image(
    entrypoint: Option<&[&str]>,
    cmd: Option<&[&str]>,
    env: &[&str],
    working_dir: Option<&str>,
    user: Option<&str>,
) -> ImageConfiguration {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut config = ConfigBuilder::default().env(strings(env));
    if let Some(e) = entrypoint {
        config = config.entrypoint(strings(e));
    }
    if let Some(c) = cmd {
        config = config.cmd(strings(c));
    }
    if let Some(w) = working_dir {
        config = config.working_dir(w);
    }
    if let Some(u) = user {
        config = config.user(u);
    }
    ImageConfigurationBuilder::default()
        .config(config.build().expect("image config"))
        .build()
        .expect("image configuration")
}

pub(crate) fn process(spec: &Spec) -> &oci_spec::runtime::Process {
    spec.process().as_ref().expect("process")
}

pub(crate) fn linux(spec: &Spec) -> &oci_spec::runtime::Linux {
    spec.linux().as_ref().expect("linux")
}

pub(crate) fn mount<'a>(spec: &'a Spec, destination: &str) -> Option<&'a oci_spec::runtime::Mount> {
    spec.mounts()
        .as_ref()
        .expect("mounts")
        .iter()
        .find(|m| m.destination() == Path::new(destination))
}

pub(crate) fn options(m: &oci_spec::runtime::Mount) -> Vec<String> {
    m.options().clone().unwrap_or_default()
}
