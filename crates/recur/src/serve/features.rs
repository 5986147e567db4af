//! Per-event features for streaming: the same scaled scalars as
//! [`recur_data::features::sequence_features`], computed for one appended event from the
//! ticket's opening time, the previous event's time and the number of events before it, so
//! a stream never revisits old events. Tested equal to the batch featurizer.

use recur_data::features::{time_channels, ChannelScale, Preprocessor, TIME_CHANNELS};
use recur_data::schema::Event;

/// What the time channels of the next event depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepContext {
    /// The first event's time (epoch ms).
    pub open_ms: i64,
    /// The previous event's time (epoch ms), `None` for the first event.
    pub prev_ms: Option<i64>,
    /// Events before this one.
    pub index: u64,
}

/// The fitted scaler, unpacked for one-event featurization.
#[derive(Clone, Debug)]
pub struct StepFeaturizer {
    channels: Vec<ChannelScale>,
    /// Per numeric column: whether it has a missing indicator channel.
    indicator: Vec<bool>,
    n_scalars: usize,
}

impl StepFeaturizer {
    /// Unpacks `pre`'s scaler (which numeric columns carry a `<column>_missing` indicator is read
    /// from its channel names, in order).
    pub fn new(pre: &Preprocessor) -> Self {
        let channels = pre.scaler.channels().to_vec();
        let names = pre.scaler.channel_names();
        let mut indicators = names[channels.len()..].iter().peekable();
        let indicator = channels[TIME_CHANNELS.len()..]
            .iter()
            .map(|c| indicators.next_if(|n| **n == format!("{}_missing", c.name)).is_some())
            .collect();
        StepFeaturizer {
            n_scalars: pre.n_scalars(),
            channels,
            indicator,
        }
    }

    /// Scalar channels per event.
    pub fn n_scalars(&self) -> usize {
        self.n_scalars
    }

    /// Writes the scaled channels of `e` into `out` (`n_scalars` values).
    ///
    /// # Panics
    /// When `out` or `e.numeric` have the wrong length.
    pub fn step(&self, ctx: StepContext, e: &Event, out: &mut [f32]) {
        assert_eq!(out.len(), self.n_scalars, "scalar output length");
        assert_eq!(e.numeric.len(), self.indicator.len(), "numeric columns");
        let time = time_channels(e.timestamp_ms, ctx.open_ms, ctx.prev_ms, ctx.index as usize);
        let raw = time.iter().chain(&e.numeric);
        for ((o, &x), c) in out.iter_mut().zip(raw).zip(&self.channels) {
            *o = if x.is_finite() {
                ((x - c.mean) / c.std) as f32
            } else {
                0.0
            };
        }
        let flagged = e.numeric.iter().zip(&self.indicator).filter(|(_, &m)| m);
        for (o, (&x, _)) in out[self.channels.len()..].iter_mut().zip(flagged) {
            *o = if x.is_finite() { 0.0 } else { 1.0 };
        }
    }
}
