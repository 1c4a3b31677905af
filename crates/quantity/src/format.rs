//! Quantities printed in the canonical form the API server stores them in.

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A byte count with the largest binary suffix that divides it exactly, as
/// `resource.NewQuantity(n, BinarySI)` prints: 2147483648 is "2Gi", 1000 stays "1000".
pub fn binary_string(bytes: u64) -> String {
    binary_suffixed(i128::from(bytes))
}

/// `value` with the largest binary suffix that divides it exactly (one home for the suffix
/// table: the canonical printer uses it too).
pub(crate) fn binary_suffixed(value: i128) -> String {
    let mut value = value;
    let mut suffix = 0;
    while value != 0 && value % 1024 == 0 && suffix + 1 < BINARY_SUFFIXES.len() {
        value /= 1024;
        suffix += 1;
    }
    format!("{value}{}", BINARY_SUFFIXES[suffix])
}

/// CPU in millicores as `NewMilliQuantity(n, DecimalSI)` prints it: whole cores as a count
/// ("2"), the rest in millicores ("1500m").
pub fn cpu_millis_string(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}
