//! The character vocabulary: id [`UNK`] plus every kept character.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The id of the unknown-character bucket. Known characters have ids `1..vocab.len()`.
pub const UNK: usize = 0;

/// The character shown for [`UNK`] by [`CharVocab::decode`].
pub const UNK_CHAR: char = '\u{FFFD}';

/// A character vocabulary: id [`UNK`] plus every kept character, in code-point order.
///
/// Serialized as `{"chars": "<the known characters in id order>"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabRepr {
    chars: String,
}

impl TryFrom<VocabRepr> for CharVocab {
    type Error = String;

    fn try_from(r: VocabRepr) -> std::result::Result<Self, String> {
        CharVocab::from_chars(r.chars.chars()).map_err(|e| e.to_string())
    }
}

impl From<CharVocab> for VocabRepr {
    fn from(v: CharVocab) -> Self {
        VocabRepr {
            chars: v.chars.into_iter().collect(),
        }
    }
}

impl CharVocab {
    /// Every character of `text` that occurs at least `min_count` times (`min_count` 0 or 1
    /// keeps all), sorted by code point. Rarer characters map to [`UNK`].
    pub fn from_text(text: &str, min_count: usize) -> Self {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for c in text.chars() {
            *counts.entry(c).or_insert(0) += 1;
        }
        let mut chars: Vec<char> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count)
            .map(|(c, _)| c)
            .collect();
        chars.sort_unstable();
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i + 1)).collect();
        CharVocab { chars, index }
    }

    /// A vocabulary with exactly these characters, in this order (ids `1, 2, …`). Duplicates
    /// are an error.
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> Result<Self> {
        let chars: Vec<char> = chars.into_iter().collect();
        let mut index = HashMap::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            if index.insert(c, i + 1).is_some() {
                return Err(TrainError::Invalid(format!(
                    "vocabulary lists the character {c:?} twice"
                )));
            }
        }
        Ok(CharVocab { chars, index })
    }

    /// Number of ids, including [`UNK`].
    pub fn len(&self) -> usize {
        self.chars.len() + 1
    }

    /// Whether no character is known (only [`UNK`]).
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The known characters in id order (id of `chars()[i]` is `i + 1`).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `c` ([`UNK`] if unknown).
    pub fn id(&self, c: char) -> usize {
        self.index.get(&c).copied().unwrap_or(UNK)
    }

    /// The character of `id`: `None` for [`UNK`] and out-of-range ids.
    pub fn char(&self, id: usize) -> Option<char> {
        id.checked_sub(1).and_then(|i| self.chars.get(i)).copied()
    }

    /// Ids of every character of `text`.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        text.chars().map(|c| self.id(c)).collect()
    }

    /// The text of `ids`; [`UNK`] and out-of-range ids become [`UNK_CHAR`].
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter().map(|&i| self.char(i).unwrap_or(UNK_CHAR)).collect()
    }
}
