//! Deterministic, real-looking identifiers: 64 hex characters like containerd's, but reproducible
//! from run to run so test failures are easy to compare.

/// One step of the splitmix64 generator: a bijection on u64, so distinct inputs never collide.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 lowercase hex characters derived from `seed`; the first 16 are unique per seed.
pub(super) fn hex64(seed: u64) -> String {
    let mut state = seed;
    (0..4)
        .map(|_| format!("{:016x}", splitmix64(&mut state)))
        .collect()
}

/// FNV-1a: a stable hash of a name, so an image always gets the same id and digest.
pub(super) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
