//! A set of logical CPU ids in the Linux list format ("0-3,7"), as k8s.io/utils/cpuset.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet(BTreeSet<u32>);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid CPU set {text:?}: {reason}")]
pub struct ParseCpuSetError {
    pub text: String,
    pub reason: String,
}

impl CpuSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn insert(&mut self, cpu: u32) {
        self.0.insert(cpu);
    }

    /// Ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&other.0).copied().collect())
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.intersection(&other.0).copied().collect())
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&other.0).copied().collect())
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[u32; N]> for CpuSet {
    fn from(cpus: [u32; N]) -> Self {
        cpus.into_iter().collect()
    }
}

/// Ranges of consecutive ids joined by commas; the empty set is "".
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for cpu in self.iter() {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == cpu => *end = cpu,
                _ => ranges.push((cpu, cpu)),
            }
        }
        let text: Vec<String> = ranges
            .into_iter()
            .map(|(start, end)| {
                if start == end {
                    start.to_string()
                } else {
                    format!("{start}-{end}")
                }
            })
            .collect();
        f.write_str(&text.join(","))
    }
}

impl FromStr for CpuSet {
    type Err = ParseCpuSetError;

    /// `cpuset.Parse`: "" is the empty set; elements are ids or inclusive ranges.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| ParseCpuSetError {
            text: text.to_string(),
            reason,
        };
        let mut set = CpuSet::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(set);
        }
        for part in trimmed.split(',') {
            let id = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{s:?} is not a CPU id")))
            };
            match part.split_once('-') {
                Some((start, end)) => {
                    let (start, end) = (id(start)?, id(end)?);
                    if start > end {
                        return Err(bad(format!("invalid range {part:?} ({start} > {end})")));
                    }
                    set.0.extend(start..=end);
                }
                None => set.insert(id(part)?),
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_format_round_trips() {
        for (text, cpus) in [
            ("", vec![]),
            ("0", vec![0]),
            ("0-3", vec![0, 1, 2, 3]),
            ("0,2,4", vec![0, 2, 4]),
            ("1-3,7,9-10", vec![1, 2, 3, 7, 9, 10]),
        ] {
            let set: CpuSet = text.parse().unwrap();
            assert_eq!(set.iter().collect::<Vec<_>>(), cpus, "{text}");
            assert_eq!(set.to_string(), text);
        }
        assert_eq!("3, 1-2".parse::<CpuSet>().unwrap().to_string(), "1-3");
    }

    #[test]
    fn bad_lists_are_refused() {
        for text in ["a", "1-", "3-1", "1,,2", "-1"] {
            assert!(text.parse::<CpuSet>().is_err(), "{text}");
        }
    }

    #[test]
    fn set_algebra() {
        let a = CpuSet::from([0, 1, 2]);
        let b = CpuSet::from([2, 3]);
        assert_eq!(a.union(&b), CpuSet::from([0, 1, 2, 3]));
        assert_eq!(a.intersection(&b), CpuSet::from([2]));
        assert_eq!(a.difference(&b), CpuSet::from([0, 1]));
        assert!(CpuSet::from([1]).is_subset(&a));
    }
}
