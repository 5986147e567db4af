//! The character vocabulary: id [`UNK`] plus every kept character, and the escape that
//! keeps the model's predictions finite on characters it never saw.
//!
//! A softmax trained on text in which [`UNK`] never occurs gives it almost no probability
//! (about e⁻²⁶ for a Moby Dick model), so every unseen character in scored text would cost
//! some 37 bits. Instead the predictive distribution reserves an escape probability `novel`
//! for "a character outside the vocabulary", fixed from the training text by the
//! Witten–Bell estimate (the rate at which new character types appeared in it:
//! `types / (characters + types)`), and spells the unseen character out: code point `c`
//! outside the vocabulary has probability `256^−len_utf8(c) / Z`, with `Z` the same sum
//! over every Unicode scalar value outside the vocabulary, so an unseen ASCII character is
//! far likelier than an unseen ideograph and the distribution sums to one. See
//! [`CharVocab::novel`] and [`CharVocab::unknown_nats`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The id of the unknown-character bucket. Known characters have ids `1..vocab.len()`.
pub const UNK: usize = 0;

/// The character shown for [`UNK`] by [`CharVocab::decode`].
pub const UNK_CHAR: char = '\u{FFFD}';

/// A character vocabulary: id [`UNK`] plus every kept character, in code-point order.
///
/// Serialized as `{"chars": "<the known characters in id order>", "novel": p}`; a vocabulary
/// saved before `novel` existed loads with `novel` 0 (no escape, the old scoring).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
    novel: f64,
    /// `ln Z`: `Z = Σ 256^−len_utf8(c)` over the Unicode scalar values `c` not in `chars`.
    ln_z: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabRepr {
    chars: String,
    #[serde(default)]
    novel: f64,
}

impl TryFrom<VocabRepr> for CharVocab {
    type Error = String;

    fn try_from(r: VocabRepr) -> std::result::Result<Self, String> {
        CharVocab::from_chars(r.chars.chars())
            .and_then(|v| v.with_novel(r.novel))
            .map_err(|e| e.to_string())
    }
}

impl From<CharVocab> for VocabRepr {
    fn from(v: CharVocab) -> Self {
        VocabRepr {
            chars: v.chars.into_iter().collect(),
            novel: v.novel,
        }
    }
}

/// `256^−n` summed over the Unicode scalar values whose UTF-8 encoding is `n` bytes long, for
/// `n` = 1 to 4: 128 one-byte, 1,920 two-byte, 63,488 three-byte (surrogates excluded) and
/// 1,048,576 four-byte values.
const SPELLING_MASS: [f64; 4] = [
    128.0 / 256.0,
    1920.0 / 65_536.0,
    61_440.0 / 16_777_216.0,
    1_048_576.0 / 4_294_967_296.0,
];

fn spelling_prob(c: char) -> f64 {
    256f64.powi(-(c.len_utf8() as i32))
}

impl CharVocab {
    /// Every character of `text` that occurs at least `min_count` times (`min_count` 0 or 1
    /// keeps all), sorted by code point. Rarer characters map to [`UNK`]. The escape
    /// probability [`CharVocab::novel`] is the Witten–Bell estimate from `text`: distinct
    /// characters over (characters + distinct characters); 0 for an empty text.
    pub fn from_text(text: &str, min_count: usize) -> Self {
        let mut counts: HashMap<char, usize> = HashMap::new();
        let mut n = 0usize;
        for c in text.chars() {
            *counts.entry(c).or_insert(0) += 1;
            n += 1;
        }
        let types = counts.len();
        let novel = if n == 0 { 0.0 } else { types as f64 / (n + types) as f64 };
        let mut chars: Vec<char> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count)
            .map(|(c, _)| c)
            .collect();
        chars.sort_unstable();
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i + 1)).collect();
        let ln_z = Self::ln_z(&chars);
        CharVocab {
            chars,
            index,
            novel,
            ln_z,
        }
    }

    fn ln_z(known: &[char]) -> f64 {
        let known: f64 = known.iter().map(|&c| spelling_prob(c)).sum();
        (SPELLING_MASS.iter().sum::<f64>() - known).ln()
    }

    /// A vocabulary with exactly these characters, in this order (ids `1, 2, …`), and no
    /// escape ([`CharVocab::novel`] 0; set one with [`CharVocab::with_novel`]). Duplicates
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
        let ln_z = Self::ln_z(&chars);
        Ok(CharVocab {
            chars,
            index,
            novel: 0.0,
            ln_z,
        })
    }

    /// This vocabulary with escape probability `novel`, in `[0, 1)`.
    pub fn with_novel(mut self, novel: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&novel) {
            return Err(TrainError::config(
                "vocab.novel",
                format!("must be in [0, 1), got {novel}"),
            ));
        }
        self.novel = novel;
        Ok(self)
    }

    /// The escape probability: the predictive distribution gives "a character outside the
    /// vocabulary" this much probability on top of whatever the softmax gives [`UNK`], and
    /// scales every softmax probability by `1 − novel`. 0 means no escape.
    pub fn novel(&self) -> f64 {
        self.novel
    }

    /// `−ln P(c | the next character is outside the vocabulary)`, in nats: `c` spelled as its
    /// UTF-8 bytes, each of the 256 values equally likely, renormalized over the Unicode
    /// scalar values outside the vocabulary (so 5.8 bits for an unseen ASCII character of a
    /// vocabulary holding 82 ASCII characters). 0 for a known character, which is not
    /// spelled.
    pub fn unknown_nats(&self, c: char) -> f64 {
        if self.index.contains_key(&c) {
            0.0
        } else {
            self.ln_z - spelling_prob(c).ln()
        }
    }

    /// [`CharVocab::unknown_nats`] of every character of `text`, in order (0 for known ones):
    /// the cost of spelling out each unseen character, added to `−ln P(UNK)` when text is
    /// scored.
    pub fn spelling_nats(&self, text: &str) -> Vec<f64> {
        text.chars().map(|c| self.unknown_nats(c)).collect()
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
