//! Per-channel standardisation for series, fitted on the training split only.

use serde::{Deserialize, Serialize};

use super::{Series, SeriesError};

/// Per-channel `(x − mean) / std`, with the statistics of the training split.
///
/// Statistics are computed in `f64` over the finite values of each channel (missing values,
/// `NaN`, are skipped) with the population standard deviation (`ddof = 0`, like
/// scikit-learn's `StandardScaler`), then stored as `f32`. A channel that is constant up to
/// float32 rounding (std ≤ 1e-6 · max(1, |mean|)) or has no finite value gets std 1, so it
/// maps to 0 instead of blowing up; a channel with no finite value gets mean 0.
///
/// Serialises as `{"mean": [...], "std": [...]}`; `f32` values survive the JSON text round
/// trip bit for bit, so a scaler saved in a checkpoint transforms identically after loading.
/// Deserialisation checks the two lists have equal, non-zero length and finite values with
/// `std > 0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScaler")]
pub struct ChannelScaler {
    mean: Vec<f32>,
    std: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaler {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl TryFrom<RawScaler> for ChannelScaler {
    type Error = SeriesError;

    fn try_from(raw: RawScaler) -> Result<Self, SeriesError> {
        ChannelScaler::new(raw.mean, raw.std)
    }
}

impl ChannelScaler {
    /// A scaler with the given statistics. Errors unless the lists have the same non-zero
    /// length, every mean is finite and every std is finite and positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, SeriesError> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(SeriesError::Invalid(format!(
                "channel scaler: {} means and {} stds (need the same non-zero number)",
                mean.len(),
                std.len()
            )));
        }
        for (c, (&m, &s)) in mean.iter().zip(&std).enumerate() {
            if !(m.is_finite() && s.is_finite() && s > 0.0) {
                return Err(SeriesError::Invalid(format!(
                    "channel scaler: channel {c} has mean {m} and std {s} (need finite values, std > 0)"
                )));
            }
        }
        Ok(Self { mean, std })
    }

    /// Fits on the training series; they must all have the same channel count.
    pub fn fit(series: &[&Series]) -> Result<Self, SeriesError> {
        let Some(first) = series.first() else {
            return Err(SeriesError::Invalid("channel scaler: no series to fit on".into()));
        };
        let channels = first.channels;
        let mut stats = vec![Welford::default(); channels];
        for (i, s) in series.iter().enumerate() {
            check_shape(&format!("series {i}"), s, channels)?;
            accumulate(&mut stats, &s.values);
        }
        Ok(Self::from_stats(&stats))
    }

    /// Fits on time-major `values` (`[len, channels]`), e.g. [`super::CsvSeries::values`].
    pub fn fit_values(values: &[f32], channels: usize) -> Result<Self, SeriesError> {
        check_values("fit_values", values.len(), channels)?;
        let mut stats = vec![Welford::default(); channels];
        accumulate(&mut stats, values);
        Ok(Self::from_stats(&stats))
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The per-channel means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-channel standard deviations (after the floor).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Standardises `series` in place; missing values stay `NaN`.
    pub fn transform(&self, series: &mut Series) -> Result<(), SeriesError> {
        check_shape("transform", series, self.channels())?;
        self.transform_values(&mut series.values)
    }

    /// Standardises time-major `values` (`[len, channels]`) in place.
    pub fn transform_values(&self, values: &mut [f32]) -> Result<(), SeriesError> {
        check_values("transform_values", values.len(), self.channels())?;
        for row in values.chunks_exact_mut(self.channels()) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = ((f64::from(*x) - f64::from(m)) / f64::from(s)) as f32;
            }
        }
        Ok(())
    }

    /// Undoes [`ChannelScaler::transform_values`] (e.g. for forecasts), in place.
    pub fn inverse_transform_values(&self, values: &mut [f32]) -> Result<(), SeriesError> {
        check_values("inverse_transform_values", values.len(), self.channels())?;
        for row in values.chunks_exact_mut(self.channels()) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (f64::from(*x) * f64::from(s) + f64::from(m)) as f32;
            }
        }
        Ok(())
    }

    fn from_stats(stats: &[Welford]) -> Self {
        let mean = stats.iter().map(|w| w.mean as f32).collect();
        let std = stats.iter().map(|w| w.std() as f32).collect();
        Self { mean, std }
    }
}

fn check_shape(what: &str, s: &Series, channels: usize) -> Result<(), SeriesError> {
    if s.channels != channels || s.values.len() != s.len * s.channels {
        return Err(SeriesError::Invalid(format!(
            "channel scaler: {what} has {} channels and {} values for length {} (scaler: {channels} channels)",
            s.channels,
            s.values.len(),
            s.len
        )));
    }
    Ok(())
}

fn check_values(what: &str, len: usize, channels: usize) -> Result<(), SeriesError> {
    if channels == 0 || !len.is_multiple_of(channels) {
        return Err(SeriesError::Invalid(format!(
            "channel scaler {what}: {len} values do not split into rows of {channels} channels"
        )));
    }
    Ok(())
}

fn accumulate(stats: &mut [Welford], values: &[f32]) {
    for row in values.chunks_exact(stats.len()) {
        for (w, &x) in stats.iter_mut().zip(row) {
            w.push(f64::from(x));
        }
    }
}

/// Running mean and variance over the finite values pushed.
#[derive(Clone, Copy, Debug, Default)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn std(&self) -> f64 {
        if self.n == 0 {
            return 1.0;
        }
        let std = (self.m2 / self.n as f64).sqrt();
        if std > 1e-6 * self.mean.abs().max(1.0) {
            std
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_empty_channels_get_unit_std() {
        let mut w = Welford::default();
        assert_eq!((w.mean, w.std()), (0.0, 1.0));
        for _ in 0..4 {
            w.push(1000.0);
        }
        w.push(f64::NAN);
        assert_eq!((w.mean, w.std()), (1000.0, 1.0));
        let mut w = Welford::default();
        for x in [1.0, 3.0] {
            w.push(x);
        }
        assert_eq!((w.mean, w.std()), (2.0, 1.0));
        w.push(5.0);
        assert!((w.std() - (8.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }
}
