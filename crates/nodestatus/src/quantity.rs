//! Resource quantities in the canonical form the API server would print them in.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A byte count with the largest binary suffix that divides it exactly, as
/// `resource.NewQuantity(n, BinarySI)` prints: 2147483648 is "2Gi", 1000 stays "1000".
pub fn binary(bytes: u64) -> Quantity {
    Quantity(binary_string(bytes))
}

pub(crate) fn binary_string(bytes: u64) -> String {
    let mut value = bytes;
    let mut suffix = 0;
    while value != 0 && value.is_multiple_of(1024) && suffix + 1 < BINARY_SUFFIXES.len() {
        value /= 1024;
        suffix += 1;
    }
    format!("{value}{}", BINARY_SUFFIXES[suffix])
}

/// A plain count, as `resource.NewQuantity(n, DecimalSI)` prints small counts.
pub fn count(n: u64) -> Quantity {
    Quantity(n.to_string())
}

/// CPU in millicores: whole cores print as a count ("2"), the rest in millicores ("1500m").
pub fn cpu_millis(millis: u64) -> Quantity {
    if millis.is_multiple_of(1000) {
        count(millis / 1000)
    } else {
        Quantity(format!("{millis}m"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_picks_the_largest_exact_suffix() {
        assert_eq!(binary(0).0, "0");
        assert_eq!(binary(1000).0, "1000");
        assert_eq!(binary(1024).0, "1Ki");
        assert_eq!(binary(16_770_060_288).0, "16377012Ki");
        assert_eq!(binary(2 * 1024 * 1024).0, "2Mi");
        assert_eq!(binary(1 << 30).0, "1Gi");
    }

    #[test]
    fn cpu_prints_cores_or_millicores() {
        assert_eq!(cpu_millis(2000).0, "2");
        assert_eq!(cpu_millis(1500).0, "1500m");
        assert_eq!(cpu_millis(0).0, "0");
    }
}
