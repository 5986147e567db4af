//! The HTML report of a forecaster run (being written).
