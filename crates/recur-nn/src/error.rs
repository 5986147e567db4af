use thiserror::Error;

/// Errors of the recurrent engine. Each variant names the offending field, tensor or shape.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum NnError {
    /// A configuration field is invalid.
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor has the wrong number of elements or shape.
    #[error("`{name}` has shape {got:?}, expected {expected:?}")]
    Shape {
        /// Which tensor.
        name: String,
        /// The shape that was given.
        got: Vec<usize>,
        /// The shape that is required.
        expected: Vec<usize>,
    },
    /// A sequence length is out of range.
    #[error("lengths[{index}] = {length} is outside 1..={max}")]
    Length {
        /// Batch index.
        index: usize,
        /// The offending length.
        length: usize,
        /// The largest allowed length (the time dimension).
        max: usize,
    },
    /// A parameter name is unknown to this model.
    #[error("unknown parameter `{0}`")]
    UnknownParam(String),
    /// An input is not usable for this call (e.g. `c0` for a GRU).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;

/// `Ok` when a flat tensor of `got` elements has the shape `expected`, else a
/// [`NnError::Shape`] naming it.
pub(crate) fn check_len(name: &str, got: usize, expected: Vec<usize>) -> Result<()> {
    if got == expected.iter().product::<usize>() {
        Ok(())
    } else {
        Err(NnError::Shape {
            name: name.into(),
            got: vec![got],
            expected,
        })
    }
}
