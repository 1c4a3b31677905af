//! A small parser for the Prometheus and OpenMetrics text formats, enough to check names,
//! labels, values and timestamps of what the crate exposes.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name to its `# TYPE`.
    pub types: HashMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Self {
        let mut exposition = Exposition::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                exposition.types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') {
                exposition.samples.push(parse_sample(line));
            }
        }
        exposition
    }

    /// The samples named `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single sample named `name` with `labels`.
    pub fn one(&self, name: &str, labels: &[(&str, &str)]) -> &Sample {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "one {name} {labels:?} in {:#?}",
            self.samples
        );
        found[0]
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("no value in {line:?}"),
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = body.len();
        let mut key = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => panic!("dangling escape in {line:?}"),
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
        &body[end..]
    } else {
        rest
    };
    let mut fields = rest.split_whitespace();
    let value = match fields.next().expect("value") {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let timestamp = fields.next().map(|t| {
        t.parse()
            .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"))
    });
    Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp,
    }
}
