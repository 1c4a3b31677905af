//! CDI: name syntax, spec files in temp dirs, edits applied to the spec.

use super::{Case, linux, mount, process};
use crate::SpecError;
use crate::cdi::{self, CdiError};
use k8s_cri::v1::CdiDevice;
use std::path::Path;

const GPU_SPEC: &str = r#"{
  "cdiVersion": "0.6.0",
  "kind": "vendor.example/gpu",
  "containerEdits": {"env": ["GPU_SPEC=1"]},
  "devices": [
    {"name": "gpu0", "containerEdits": {
      "env": ["GPU=0"],
      "deviceNodes": [{"path": "/dev/gpu0", "hostPath": "/dev/null", "permissions": "rw"}],
      "mounts": [{"hostPath": "/usr/lib", "containerPath": "/usr/lib/gpu", "options": ["ro", "rbind"]}],
      "hooks": [{"hookName": "createContainer", "path": "/usr/bin/true", "args": ["true", "gpu0"]}],
      "additionalGIDs": [44]
    }},
    {"name": "gpu1", "containerEdits": {"env": ["GPU=1"]}}
  ]
}"#;

const NET_SPEC_YAML: &str = "cdiVersion: 0.6.0
kind: vendor.example/net
devices:
  - name: nic
    containerEdits:
      env: [NIC=yes]
      deviceNodes:
        - path: /dev/nic0
          type: c
          major: 10
          minor: 200
";

fn spec_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("spec");
    }
    dir
}

#[test]
fn qualified_names() {
    assert_eq!(
        cdi::parse_name("vendor.example/gpu=gpu0").expect("ok"),
        ("vendor.example/gpu", "gpu0")
    );
    for bad in [
        "gpu0",
        "vendor/gpu",
        "=x",
        "vendor.example/=x",
        "vendor.example/gpu=",
        "v/g=a b",
    ] {
        assert!(
            matches!(cdi::parse_name(bad), Err(CdiError::InvalidName(_))),
            "{bad}"
        );
    }
}

#[test]
fn requested_devices_from_cri_and_annotations() {
    let annotations = [
        ("cdi.k8s.io/b".to_string(), "v.x/c=2, v.x/c=1".to_string()),
        ("cdi.k8s.io/a".to_string(), "v.x/c=3".to_string()),
        ("other".to_string(), "v.x/c=9".to_string()),
    ]
    .into();
    let got = cdi::requested(&["v.x/c=1".to_string()], &annotations);
    assert_eq!(got, ["v.x/c=1", "v.x/c=3", "v.x/c=2"]);
}

#[test]
fn device_edits_are_applied() {
    let dir = spec_dir(&[
        ("gpu.json", GPU_SPEC),
        ("net.yaml", NET_SPEC_YAML),
        ("broken.json", "{not json"),
    ]);
    let mut c = Case::new();
    c.cdi_dirs = vec![dir.path().to_path_buf()];
    c.container.cdi_devices = vec![CdiDevice {
        name: "vendor.example/gpu=gpu0".into(),
    }];
    c.container.annotations = [(
        "cdi.k8s.io/net".to_string(),
        "vendor.example/net=nic".to_string(),
    )]
    .into();
    let spec = c.spec();
    let env = process(&spec).env().clone().expect("env");
    for e in ["GPU_SPEC=1", "GPU=0", "NIC=yes"] {
        assert!(env.contains(&e.to_string()), "{e} in {env:?}");
    }
    let l = linux(&spec);
    let devices = l.devices().clone().expect("devices");
    let gpu = devices
        .iter()
        .find(|d| d.path() == Path::new("/dev/gpu0"))
        .expect("gpu0 node");
    assert_eq!(
        (gpu.major(), gpu.minor()),
        (1, 3),
        "numbers read from the host node"
    );
    let nic = devices
        .iter()
        .find(|d| d.path() == Path::new("/dev/nic0"))
        .expect("nic node");
    assert_eq!((nic.major(), nic.minor()), (10, 200));
    let rules = l
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    assert!(rules.iter().any(|r| r.allow()
        && r.major() == Some(1)
        && r.minor() == Some(3)
        && r.access().as_deref() == Some("rw")));
    assert!(
        rules
            .iter()
            .any(|r| r.major() == Some(10) && r.access().as_deref() == Some("rwm"))
    );
    let m = mount(&spec, "/usr/lib/gpu").expect("cdi mount");
    assert_eq!(m.source().as_deref(), Some(Path::new("/usr/lib")));
    let hooks = spec.hooks().clone().expect("hooks");
    let created = hooks
        .create_container()
        .clone()
        .expect("createContainer hooks");
    assert_eq!(created[0].path(), Path::new("/usr/bin/true"));
    let gids = process(&spec)
        .user()
        .additional_gids()
        .clone()
        .expect("gids");
    assert!(gids.contains(&44));
}

#[test]
fn later_dirs_override_earlier_ones() {
    let low = spec_dir(&[("gpu.json", GPU_SPEC)]);
    let high = spec_dir(&[("gpu.json", &GPU_SPEC.replace("GPU=1", "GPU=one"))]);
    let mut c = Case::new();
    c.cdi_dirs = vec![low.path().to_path_buf(), high.path().to_path_buf()];
    c.container.cdi_devices = vec![CdiDevice {
        name: "vendor.example/gpu=gpu1".into(),
    }];
    let env = process(&c.spec()).env().clone().expect("env");
    assert!(env.contains(&"GPU=one".to_string()), "{env:?}");
}

#[test]
fn unresolvable_and_invalid_devices_fail() {
    let dir = spec_dir(&[("gpu.json", GPU_SPEC)]);
    let mut c = Case::new();
    c.cdi_dirs = vec![dir.path().to_path_buf()];
    c.container.cdi_devices = vec![CdiDevice {
        name: "vendor.example/gpu=gpu9".into(),
    }];
    let err = c.build().expect_err("unknown device");
    assert!(
        matches!(&err, SpecError::Cdi(CdiError::Unresolvable { names, .. }) if names == &["vendor.example/gpu=gpu9"]),
        "{err}"
    );
    c.container.cdi_devices = vec![CdiDevice {
        name: "gpu9".into(),
    }];
    assert!(matches!(
        c.build(),
        Err(SpecError::Cdi(CdiError::InvalidName(_)))
    ));
}
