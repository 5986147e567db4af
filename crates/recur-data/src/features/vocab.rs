//! The vocabulary of event types (id 0 = unknown).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{visible_extent, FeatureError, UNKNOWN_TYPE};
use crate::labels::Sample;
use crate::schema::EventLog;

/// Event types known to the model; id 0 is the unknown bucket, known types follow in
/// descending training frequency, ties by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VocabularyRepr", into = "VocabularyRepr")]
pub struct Vocabulary {
    types: Vec<String>,
    counts: Vec<u64>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyRepr {
    types: Vec<String>,
    counts: Vec<u64>,
}

impl TryFrom<VocabularyRepr> for Vocabulary {
    type Error = FeatureError;

    fn try_from(r: VocabularyRepr) -> Result<Self, FeatureError> {
        if r.types.len() != r.counts.len() {
            return Err(FeatureError::Invalid(format!(
                "{} types but {} counts",
                r.types.len(),
                r.counts.len()
            )));
        }
        let index: HashMap<String, u32> = r
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32 + 1))
            .collect();
        if index.len() != r.types.len() {
            return Err(FeatureError::Invalid("duplicate event type in vocabulary".into()));
        }
        Ok(Self {
            types: r.types,
            counts: r.counts,
            index,
        })
    }
}

impl From<Vocabulary> for VocabularyRepr {
    fn from(v: Vocabulary) -> Self {
        Self {
            types: v.types,
            counts: v.counts,
        }
    }
}

impl Vocabulary {
    /// Builds a vocabulary from `(type, count)` pairs, keeping counts `>= min_count`, sorted by
    /// descending count then name.
    pub fn from_counts(counts: impl IntoIterator<Item = (String, u64)>, min_count: u64) -> Self {
        let mut pairs: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c >= min_count).collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let (types, counts): (Vec<String>, Vec<u64>) = pairs.into_iter().unzip();
        Self::try_from(VocabularyRepr { types, counts }).expect("counted types are distinct")
    }

    /// Fits on the events visible to `samples` (each event once).
    pub fn fit(log: &EventLog, samples: &[Sample], min_count: u64) -> Result<Self, FeatureError> {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for (ticket, len) in visible_extent(log, samples)? {
            for e in &log.tickets[ticket].events[..len] {
                *counts.entry(e.event_type.as_str()).or_default() += 1;
            }
        }
        Ok(Self::from_counts(
            counts.into_iter().map(|(t, c)| (t.to_owned(), c)),
            min_count,
        ))
    }

    /// The id of `event_type`: its position + 1, or 0 when unknown.
    pub fn id(&self, event_type: &str) -> u32 {
        self.index.get(event_type).copied().unwrap_or(0)
    }

    /// Number of ids including the unknown bucket (rows of the embedding table).
    pub fn len(&self) -> usize {
        self.types.len() + 1
    }

    /// Always false: the unknown bucket is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The name of id `id` ([`UNKNOWN_TYPE`] for 0).
    ///
    /// # Panics
    /// When `id >= self.len()`.
    pub fn name(&self, id: u32) -> &str {
        match id {
            0 => UNKNOWN_TYPE,
            i => &self.types[i as usize - 1],
        }
    }

    /// Known types in id order (id = position + 1).
    pub fn types(&self) -> &[String] {
        &self.types
    }

    /// Training counts of the known types, aligned with [`Vocabulary::types`].
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_orders_by_count_then_name() {
        let v = Vocabulary::from_counts([("b".into(), 3), ("a".into(), 3), ("c".into(), 9), ("d".into(), 1)], 2);
        assert_eq!(v.types(), ["c", "a", "b"]);
        assert_eq!(v.id("c"), 1);
        assert_eq!(v.id("d"), 0);
        assert_eq!(v.name(0), UNKNOWN_TYPE);
    }
}
