//! Helpers shared by the unit tests.

/// A deterministic pseudorandom source (xorshift64) from `seed` (not zero): each call gives a
/// number below its argument.
pub fn below(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}
