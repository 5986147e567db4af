//! Per-channel standardisation fitted on the training window.

use serde::{Deserialize, Serialize};

use super::{raw_step, visible_extent, FeatureError, TIME_CHANNELS};
use crate::labels::Sample;
use crate::schema::{Event, EventLog};

/// Standardisation of one scalar channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelScale {
    /// Channel name.
    pub name: String,
    /// Training mean of the present values (0 when there were none).
    pub mean: f64,
    /// Training standard deviation of the present values (1 when it was 0 or undefined).
    pub std: f64,
}

/// Per-channel standardisation of the time channels and numeric columns, with a missing
/// indicator for each numeric column that had a missing value in training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaler {
    channels: Vec<ChannelScale>,
    missing_indicator: Vec<bool>,
}

impl Scaler {
    /// Fits on the events visible to `samples` (each event once) of `log`.
    ///
    /// # Panics
    /// When an event's numeric values do not match `log.numeric_columns` (readers never
    /// produce such events).
    pub fn fit(log: &EventLog, samples: &[Sample]) -> Result<Self, FeatureError> {
        let n_numeric = log.numeric_columns.len();
        let n = TIME_CHANNELS.len() + n_numeric;
        let mut stats = vec![Welford::default(); n];
        let mut missing = vec![false; n_numeric];
        let mut raw = vec![0.0; n];
        for (ticket, len) in visible_extent(log, samples)? {
            let events = &log.tickets[ticket].events;
            for i in 0..len {
                raw_step(events, i, &mut raw);
                for (s, &x) in stats.iter_mut().zip(&raw) {
                    s.push(x);
                }
                for (m, &x) in missing.iter_mut().zip(&raw[TIME_CHANNELS.len()..]) {
                    *m |= !x.is_finite();
                }
            }
        }
        let names = TIME_CHANNELS
            .iter()
            .map(|s| s.to_string())
            .chain(log.numeric_columns.iter().cloned());
        let channels = names
            .zip(&stats)
            .map(|(name, s)| ChannelScale {
                name,
                mean: s.mean(),
                std: s.std(),
            })
            .collect();
        Ok(Self {
            channels,
            missing_indicator: missing,
        })
    }

    /// Number of numeric columns this scaler expects per event.
    pub fn n_numeric(&self) -> usize {
        self.missing_indicator.len()
    }

    /// Number of scalar channels per step (scaled channels plus missing indicators).
    pub fn n_scalars(&self) -> usize {
        self.channels.len() + self.missing_indicator.iter().filter(|&&m| m).count()
    }

    /// The scaled channels, in order.
    pub fn channels(&self) -> &[ChannelScale] {
        &self.channels
    }

    /// Names of all `n_scalars` channels, in order.
    pub fn channel_names(&self) -> Vec<String> {
        let numeric = &self.channels[TIME_CHANNELS.len()..];
        let indicators = numeric.iter().zip(&self.missing_indicator).filter(|(_, &m)| m);
        let indicators = indicators.map(|(c, _)| format!("{}_missing", c.name));
        self.channels.iter().map(|c| c.name.clone()).chain(indicators).collect()
    }

    /// Writes the scaled channels of step `i` of `events` into `out` (`n_scalars` values);
    /// `raw` is scratch space.
    #[track_caller]
    pub(super) fn scale_step(&self, events: &[Event], i: usize, raw: &mut Vec<f64>, out: &mut [f32]) {
        assert_eq!(out.len(), self.n_scalars(), "scalar output length");
        raw.resize(self.channels.len(), 0.0);
        raw_step(events, i, raw);
        for ((o, &x), c) in out.iter_mut().zip(raw.iter()).zip(&self.channels) {
            *o = if x.is_finite() {
                ((x - c.mean) / c.std) as f32
            } else {
                0.0
            };
        }
        let numeric = &raw[TIME_CHANNELS.len()..];
        let indicators = numeric.iter().zip(&self.missing_indicator).filter(|(_, &m)| m);
        for (o, (&x, _)) in out[self.channels.len()..].iter_mut().zip(indicators) {
            *o = if x.is_finite() { 0.0 } else { 1.0 };
        }
    }

    pub(super) fn validate(&self) -> Result<(), FeatureError> {
        if self.channels.len() != TIME_CHANNELS.len() + self.missing_indicator.len() {
            return Err(FeatureError::Invalid(
                "scaler channel count disagrees with its numeric columns".into(),
            ));
        }
        match self
            .channels
            .iter()
            .find(|c| !(c.mean.is_finite() && c.std.is_finite() && c.std > 0.0))
        {
            Some(c) => Err(FeatureError::Invalid(format!(
                "channel `{}` has mean {} std {}",
                c.name, c.mean, c.std
            ))),
            None => Ok(()),
        }
    }
}

/// Running mean and variance over finite values.
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

    fn mean(&self) -> f64 {
        self.mean
    }

    fn std(&self) -> f64 {
        let std = if self.n > 0 {
            (self.m2 / self.n as f64).sqrt()
        } else {
            0.0
        };
        if std.is_finite() && std > 1e-12 {
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
    fn welford_constant_channel_gets_unit_std() {
        let mut w = Welford::default();
        for _ in 0..5 {
            w.push(2.5);
        }
        w.push(f64::NAN);
        assert_eq!((w.mean(), w.std()), (2.5, 1.0));
    }
}
