//! Random draws built only on ChaCha8's raw `u64` output, so the generated log depends on the
//! seed and this crate's code alone, never on how a `rand` version implements a distribution.

use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator's RNG for ticket `index`: the seed expanded to a ChaCha8 key with SplitMix64,
/// and one ChaCha stream per ticket, so a ticket's draws do not depend on the other tickets.
pub(super) fn ticket_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut state = seed;
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) with 53 random bits.
pub(super) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `true` with probability `p`.
pub(super) fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    unit(rng) < p
}

/// Uniform integer in `lo..=hi`.
pub(super) fn int_in(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    lo + (unit(rng) * (hi - lo + 1) as f64) as i64
}

/// Standard normal (Box–Muller, one value per pair of uniforms).
pub(super) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let r = (-2.0 * (1.0 - unit(rng)).ln()).sqrt();
    r * (std::f64::consts::TAU * unit(rng)).cos()
}

/// Log-normal with the given median and log-scale standard deviation.
pub(super) fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// An index drawn with probability proportional to `weights` (not all zero).
pub(super) fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}
