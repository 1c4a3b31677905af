use super::*;
use crate::cm::cpumanager::assignment::tests::{dual_socket_ht, single_socket_ht};
use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

fn container(name: &str, cpu: &str) -> Container {
    let list = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity("64Mi".into())),
    ]);
    Container {
        name: name.into(),
        resources: Some(ResourceRequirements {
            requests: Some(list.clone()),
            limits: Some(list),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(uid: &str, inits: Vec<Container>, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            init_containers: Some(inits),
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn set(text: &str) -> CpuSet {
    text.parse().unwrap()
}

fn state(default: &str, assigned: &[(&str, &str)]) -> CpuState {
    let mut s = CpuState {
        default: set(default),
        ..Default::default()
    };
    for (name, cpus) in assigned {
        s.set("fakePod", name, set(cpus));
    }
    s
}

/// Cases of upstream's TestStaticPolicyAdd (policy_static_test.go, v1.28), one reserved CPU.
#[test]
fn upstream_static_policy_add_cases() {
    let cases = [
        (
            "GuPodSingleCore, SingleSocketHT",
            single_socket_ht(),
            "0-7",
            vec![],
            "1000m",
            "4",
        ),
        (
            "GuPodMultipleCores, SingleSocketHT, one core",
            single_socket_ht(),
            "0,1,4,5",
            vec![("fakeContainer100", "2,3,6,7")],
            "2000m",
            "1,5",
        ),
        (
            "GuPodMultipleCores, DualSocketHT, one socket",
            dual_socket_ht(),
            "0,1,3-11",
            vec![("fakeContainer100", "2")],
            "6000m",
            "1,3,5,7,9,11",
        ),
        (
            "GuPodMultipleCores, DualSocketHT, three cores",
            dual_socket_ht(),
            "0,2-4,6-11",
            vec![("fakeContainer100", "1,5")],
            "6000m",
            "2-4,8-10",
        ),
    ];
    for (name, topo, default, assigned, cpu, want) in cases {
        let mut policy = StaticPolicy::new(topo, 1, None, StaticPolicyOptions::default()).unwrap();
        assert_eq!(policy.reserved(), &set("0"), "{name}");
        let mut st = state(default, &assigned);
        let c = container("fakeContainer3", cpu);
        let p = pod("fakePod", vec![], vec![c.clone()]);
        assert!(policy.allocate(&mut st, &p, &c).unwrap(), "{name}");
        assert_eq!(
            st.get("fakePod", "fakeContainer3"),
            Some(&set(want)),
            "{name}"
        );
        assert!(st.default.intersection(&set(want)).is_empty(), "{name}");
    }
}

#[test]
fn only_guaranteed_integer_requests_get_cpus() {
    let mut policy =
        StaticPolicy::new(single_socket_ht(), 1, None, StaticPolicyOptions::default()).unwrap();
    let mut st = state("0-7", &[]);
    for cpu in ["500m", "1500m"] {
        let c = container("c", cpu);
        let p = pod("fakePod", vec![], vec![c.clone()]);
        assert!(!policy.allocate(&mut st, &p, &c).unwrap());
    }
    let mut burstable = container("c", "1");
    burstable.resources.as_mut().unwrap().limits = None;
    let p = pod("fakePod", vec![], vec![burstable.clone()]);
    assert!(!policy.allocate(&mut st, &p, &burstable).unwrap());
    assert_eq!(st, state("0-7", &[]));
}

#[test]
fn too_many_cpus_is_an_error() {
    let mut policy =
        StaticPolicy::new(single_socket_ht(), 1, None, StaticPolicyOptions::default()).unwrap();
    let mut st = state("0-7", &[]);
    let c = container("c", "8");
    let p = pod("fakePod", vec![], vec![c.clone()]);
    let err = policy.allocate(&mut st, &p, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not enough cpus available to satisfy request: requested=8, available=7"
    );
}

#[test]
fn init_container_cpus_are_reused_and_released_once() {
    let mut policy =
        StaticPolicy::new(dual_socket_ht(), 1, None, StaticPolicyOptions::default()).unwrap();
    let mut st = state("0-11", &[]);
    let init = container("init", "2");
    let app = container("app", "2");
    let p = pod("fakePod", vec![init.clone()], vec![app.clone()]);
    policy.allocate(&mut st, &p, &init).unwrap();
    policy.allocate(&mut st, &p, &app).unwrap();
    let init_cpus = st.get("fakePod", "init").cloned().unwrap();
    assert_eq!(st.get("fakePod", "app"), Some(&init_cpus));
    // The init container goes first: its CPUs stay with the app container.
    assert!(policy.remove_container(&mut st, "fakePod", "init"));
    assert!(st.default.intersection(&init_cpus).is_empty());
    assert!(policy.remove_container(&mut st, "fakePod", "app"));
    assert_eq!(st, state("0-11", &[]));
}

#[test]
fn full_pcpus_only_refuses_partial_cores() {
    let options = StaticPolicyOptions {
        full_physical_cpus_only: true,
    };
    let mut policy = StaticPolicy::new(single_socket_ht(), 1, None, options).unwrap();
    let mut st = state("0-7", &[]);
    let c = container("c", "1");
    let p = pod("fakePod", vec![], vec![c.clone()]);
    assert_eq!(
        policy.allocate(&mut st, &p, &c).unwrap_err().to_string(),
        "SMT Alignment Error: requested 1 cpus not multiple cpus per core = 2"
    );
    // CPU 0 is reserved, so its sibling 4 is off limits too: 6 physical CPUs remain.
    let c = container("c", "8");
    let p = pod("fakePod", vec![], vec![c.clone()]);
    assert_eq!(
        policy.allocate(&mut st, &p, &c).unwrap_err().to_string(),
        "SMT Alignment Error: not enough free physical CPUs: available physical CPUs = 6, requested CPUs = 8, CPUs per core = 2"
    );
    let c = container("c", "2");
    let p = pod("fakePod", vec![], vec![c.clone()]);
    policy.allocate(&mut st, &p, &c).unwrap();
    assert_eq!(st.get("fakePod", "c"), Some(&set("1,5")));
}

#[test]
fn start_checks_a_restored_state() {
    let policy = StaticPolicy::new(
        single_socket_ht(),
        1,
        Some(set("0")),
        StaticPolicyOptions::default(),
    )
    .unwrap();
    let mut empty = CpuState::default();
    policy.start(&mut empty).unwrap();
    assert_eq!(empty.default, set("0-7"));
    assert!(
        policy
            .start(&mut state("0-6", &[]))
            .unwrap_err()
            .to_string()
            .contains("doesn't match")
    );
    assert!(
        policy
            .start(&mut state("1-7", &[("c", "0")]))
            .unwrap_err()
            .to_string()
            .contains("not all reserved cpus")
    );
    assert!(
        policy
            .start(&mut state("0-7", &[("c", "7")]))
            .unwrap_err()
            .to_string()
            .contains("overlaps")
    );
    policy.start(&mut state("0-6", &[("c", "7")])).unwrap();
}

#[test]
fn reserved_cpus_must_match_their_count() {
    let err = StaticPolicy::new(
        single_socket_ht(),
        2,
        Some(set("0")),
        StaticPolicyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "[cpumanager] unable to reserve the required amount of CPUs (size of 0 did not equal 2)"
    );
    // Without --reserved-cpus, whole cores first: two CPUs are core 0's threads.
    let policy =
        StaticPolicy::new(single_socket_ht(), 2, None, StaticPolicyOptions::default()).unwrap();
    assert_eq!(policy.reserved(), &set("0,4"));
}
