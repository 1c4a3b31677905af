//! A quantity string as apimachinery's `Quantity.String()` (and so its JSON) prints it after
//! parsing: the suffix family of the input kept, the value in its shortest exact form
//! ("0.5" is "500m", "2000" is "2k", "1536Mi" is "1536Mi", "8192" is "8192").

use crate::format::binary_suffixed;
use crate::{Quantity, QuantityError};

/// The notation a quantity was written in; `String()` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

const DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];
const BINARY_STEP: i128 = 1024;

/// Parses `text` and prints it in canonical form.
pub fn canonical_string(text: &str) -> Result<String, QuantityError> {
    let quantity = Quantity::parse(text)?;
    Ok(print(quantity.nanos, format_of(text.trim())))
}

fn format_of(text: &str) -> Format {
    let suffix = text.trim_start_matches(['+', '-']);
    let suffix = suffix.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if suffix.ends_with('i') {
        Format::BinarySi
    } else if suffix.starts_with(['e', 'E']) {
        Format::DecimalExponent
    } else {
        Format::DecimalSi
    }
}

fn print(nanos: i128, format: Format) -> String {
    if nanos == 0 {
        return "0".into();
    }
    const NANOS: i128 = 1_000_000_000;
    // Binary only for whole values of at least 1024 in magnitude; the rest reads as decimal.
    let binary =
        format == Format::BinarySi && nanos % NANOS == 0 && (nanos / NANOS).abs() >= BINARY_STEP;
    if binary {
        return binary_suffixed(nanos / NANOS);
    }
    let (mantissa, exponent) = decimal_canonical(nanos);
    let suffix = match format {
        Format::DecimalExponent if exponent == 0 => String::new(),
        Format::DecimalExponent => format!("e{exponent}"),
        _ => DECIMAL_SUFFIXES
            .iter()
            .find(|(e, _)| *e == exponent)
            .map_or_else(|| format!("e{exponent}"), |(_, s)| (*s).to_string()),
    };
    format!("{mantissa}{suffix}")
}

/// The value as mantissa × 10^exponent with the exponent a multiple of three and the mantissa
/// as short as that allows (apimachinery's `AsCanonicalBytes`).
fn decimal_canonical(nanos: i128) -> (i128, i32) {
    let (mut mantissa, mut exponent): (i128, i32) = (nanos, -9);
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    while exponent.rem_euclid(3) != 0 {
        mantissa *= 10;
        exponent -= 1;
    }
    (mantissa, exponent)
}

#[cfg(test)]
mod tests {
    use super::canonical_string;

    #[test]
    fn prints_like_apimachinery() {
        for (input, canonical) in [
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("33554432", "33554432"),
            ("64Mi", "64Mi"),
            ("1G", "1G"),
            ("500M", "500M"),
            ("1Ki", "1Ki"),
            ("8192", "8192"),
            ("8Ki", "8Ki"),
            ("0.5Gi", "512Mi"),
            ("1536", "1536"),
            ("1.5Ki", "1536"),
            ("512", "512"),
            ("100Ki", "100Ki"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1E6", "1e6"),
            ("0", "0"),
            ("0Gi", "0"),
            ("-1.5", "-1500m"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1m", "1m"),
            ("10m", "10m"),
            ("1Gi", "1Gi"),
        ] {
            assert_eq!(canonical_string(input).unwrap(), canonical, "{input}");
        }
    }
}
