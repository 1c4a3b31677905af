//! Object ids: 64 hex digits from the kernel's random source, looked up by any unique prefix
//! (crictl passes short ids).

use std::collections::BTreeMap;
use std::io::Read;

/// A new random id, 32 bytes as 64 lowercase hex digits.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    // getrandom(2) never fails for 32 bytes once the pool is initialised; /dev/urandom is the
    // portable way to reach it without another dependency.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a lookup by id or prefix found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    Found(&'a str),
    Missing,
    Ambiguous(usize),
}

/// An exact id wins; otherwise the one id starting with `prefix`.
pub(crate) fn lookup<'a, V>(map: &'a BTreeMap<String, V>, prefix: &str) -> Lookup<'a> {
    if prefix.is_empty() {
        return Lookup::Missing;
    }
    if let Some((id, _)) = map.get_key_value(prefix) {
        return Lookup::Found(id);
    }
    let mut matches = map
        .range(prefix.to_string()..)
        .take_while(|(id, _)| id.starts_with(prefix))
        .map(|(id, _)| id.as_str());
    match (matches.next(), matches.clone().count()) {
        (None, _) => Lookup::Missing,
        (Some(id), 0) => Lookup::Found(id),
        (Some(_), more) => Lookup::Ambiguous(more + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn prefixes_find_one_id_or_say_why_not() {
        let map: BTreeMap<String, ()> = ["abc1", "abc2", "abd", "b"]
            .into_iter()
            .map(|id| (id.to_string(), ()))
            .collect();
        assert_eq!(lookup(&map, "abd"), Lookup::Found("abd"));
        assert_eq!(lookup(&map, "abc1"), Lookup::Found("abc1"));
        assert_eq!(lookup(&map, "abc"), Lookup::Ambiguous(2));
        assert_eq!(lookup(&map, "ab"), Lookup::Ambiguous(3));
        assert_eq!(lookup(&map, "b"), Lookup::Found("b"));
        assert_eq!(lookup(&map, "c"), Lookup::Missing);
        assert_eq!(lookup(&map, ""), Lookup::Missing);
    }
}
