use super::*;
use serde::Deserialize;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    name: String,
    n: u32,
}

fn rec(name: &str, n: u32) -> Rec {
    Rec {
        name: name.into(),
        n,
    }
}

#[test]
fn save_replaces_and_load_reads_back_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RecordDir::open(tmp.path().join("records")).unwrap();
    dir.save("b", &rec("b", 1)).unwrap();
    dir.save("a", &rec("a", 1)).unwrap();
    dir.save("b", &rec("b", 2)).unwrap();
    let all: Vec<(String, Rec)> = dir.load_all().unwrap();
    assert_eq!(
        all,
        vec![("a".into(), rec("a", 1)), ("b".into(), rec("b", 2))]
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "no temp files stay behind");
}

#[test]
fn corrupt_record_is_quarantined_and_the_rest_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RecordDir::open(tmp.path()).unwrap();
    dir.save("good", &rec("good", 7)).unwrap();
    fs::write(tmp.path().join("bad.json"), b"{\"name\": ").unwrap();
    let all: Vec<(String, Rec)> = dir.load_all().unwrap();
    assert_eq!(all, vec![("good".into(), rec("good", 7))]);
    assert!(tmp.path().join("quarantine/bad.json").exists());
    assert!(!tmp.path().join("bad.json").exists());
}

#[test]
fn interrupted_write_leaves_the_old_record_and_open_cleans_the_temp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RecordDir::open(tmp.path()).unwrap();
    dir.save("x", &rec("old", 1)).unwrap();
    // A crash between create and rename leaves only a temp file beside the record.
    fs::write(tmp.path().join("x.json.999.0.tmp"), b"{\"name\":\"new\"").unwrap();
    let dir = RecordDir::open(tmp.path()).unwrap();
    assert!(!tmp.path().join("x.json.999.0.tmp").exists());
    let all: Vec<(String, Rec)> = dir.load_all().unwrap();
    assert_eq!(all, vec![("x".into(), rec("old", 1))]);
}

#[test]
fn remove_is_idempotent_and_ids_cannot_leave_the_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RecordDir::open(tmp.path()).unwrap();
    dir.save("x", &rec("x", 1)).unwrap();
    dir.remove("x").unwrap();
    dir.remove("x").unwrap();
    for bad in ["", "..", "../x", "a/b"] {
        assert!(matches!(
            dir.save(bad, &rec("x", 1)),
            Err(StateError::InvalidId { .. })
        ));
    }
}
