//! A resource quantity ("64Mi", "1.5G", "1e6") as a whole number of bytes, rounded up like
//! apimachinery's `Quantity.Value()`. Only what an emptyDir sizeLimit needs.

/// `None` for anything that is not a valid non-negative quantity or does not fit in u64.
pub(crate) fn bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !format!("{int_part}{frac_part}")
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mantissa: u128 = format!("{int_part}{frac_part}").parse().ok()?;
    let mut exp10 = -i32::try_from(frac_part.len()).ok()?;
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            exp10 += exponent.parse::<i32>().ok()?;
        }
    }
    let scaled = mantissa.checked_mul(1u128.checked_shl(exp2)?)?;
    let value = if exp10 >= 0 {
        scaled.checked_mul(10u128.checked_pow(exp10.unsigned_abs())?)?
    } else {
        let divisor = 10u128.checked_pow(exp10.unsigned_abs())?;
        scaled.div_ceil(divisor)
    };
    u64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn suffixes_and_rounding() {
        assert_eq!(bytes("128974848"), Some(128_974_848));
        assert_eq!(bytes("64Mi"), Some(64 << 20));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("129M"), Some(129_000_000));
        assert_eq!(bytes("129e6"), Some(129_000_000));
        assert_eq!(bytes("1500m"), Some(2));
        assert_eq!(bytes("0.1"), Some(1));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Mi", "1.2.3", "12Q", "-5", "1e", "99999999999Ei"] {
            assert_eq!(bytes(bad), None, "{bad:?}");
        }
    }
}
