//! The UEA/UCR `.ts` format, as written by sktime and the time series classification archive.
//!
//! ```text
//! # comment lines start with '#'
//! @problemName GunPoint
//! @timeStamps false
//! @missing false
//! @univariate true
//! @equalLength true
//! @seriesLength 150
//! @classLabel true 1 2
//! @data
//! -0.64,-0.64,-0.63,...:2
//! ```
//!
//! Header tags are case-insensitive; each may appear once. After `@data`, each non-blank line
//! is one case: channels separated by `:`, values within a channel by `,`, then the label
//! (when `@classLabel true` or `@targetLabel true`) as the last `:` field.
//!
//! * `@timeStamps true` (values written as `(timestamp,value)`) is not supported: an error.
//! * `?` is a missing value, read as `NaN`, and allowed only with `@missing true`.
//! * The channel count comes from `@dimensions`, or 1 with `@univariate true`, or else the
//!   first case; every case must have it.
//! * Cases may differ in length. With `@equalLength true` they may not (and must have
//!   `@seriesLength` steps when that is given), nor may the channels of one case. Without it,
//!   the channels of one case may differ in length: the series is as long as its longest
//!   channel, and shorter channels are padded at the end with `NaN` (missing).
//! * Class labels are strings, mapped to indices in the order `@classLabel` declares them.
//!   Regression targets (`@targetLabel true`) are `f64`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Label, Series, SeriesError};

/// A `.ts` file: its problem name, channel count, class names and cases.
#[derive(Clone, Debug, PartialEq)]
pub struct TsDataset {
    /// `@problemName` (empty when the header has none).
    pub problem: String,
    /// Channels per series (`@dimensions`, 1 for univariate problems).
    pub channels: usize,
    /// Class names in `@classLabel` order; empty unless the problem is classification.
    pub class_names: Vec<String>,
    /// The cases, in file order.
    pub series: Vec<Series>,
}

impl TsDataset {
    /// Number of cases.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there are no cases (never true for a dataset returned by [`read_ts`]).
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The shortest and longest series length (`(0, 0)` when empty).
    pub fn length_range(&self) -> (usize, usize) {
        let min = self.series.iter().map(|s| s.len).min().unwrap_or(0);
        let max = self.series.iter().map(|s| s.len).max().unwrap_or(0);
        (min, max)
    }

    /// The class index of every case, or `None` when some case has no class label.
    pub fn class_indices(&self) -> Option<Vec<usize>> {
        self.series
            .iter()
            .map(|s| match s.label {
                Label::Class(k) => Some(k),
                _ => None,
            })
            .collect()
    }
}

/// Reads a `.ts` file.
pub fn read_ts_file(path: impl AsRef<Path>) -> Result<TsDataset, SeriesError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let f = File::open(path).map_err(|error| SeriesError::Io {
        file: file.clone(),
        error,
    })?;
    read_ts(BufReader::new(f), &file)
}

/// Reads `.ts` text from `input`; `file` names it in errors.
pub fn read_ts(mut input: impl BufRead, file: &str) -> Result<TsDataset, SeriesError> {
    let mut header = Header::default();
    let mut cases: Option<Cases> = None;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).map_err(|error| SeriesError::Io {
            file: format!("{file}:{}", line_no + 1),
            error,
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let err = |field: Option<String>, reason: String| SeriesError::parse(file, line_no, field, reason);
        let text = std::str::from_utf8(&buf).map_err(|_| err(None, "not valid UTF-8".into()))?;
        let text = if line_no == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match &mut cases {
            Some(cases) => cases.push(text).map_err(|(field, reason)| err(field, reason))?,
            None if text.starts_with('@') => {
                if header.tag(text).map_err(|(field, reason)| err(field, reason))? {
                    cases = Some(Cases::new(&header).map_err(|(field, reason)| err(field, reason))?);
                }
            }
            None => {
                return Err(err(
                    None,
                    "a case before @data (header lines start with '@', comments with '#')".into(),
                ))
            }
        }
    }
    let Some(cases) = cases else {
        return Err(SeriesError::parse(
            file,
            line_no,
            None,
            "end of file before the @data line",
        ));
    };
    if cases.series.is_empty() {
        return Err(SeriesError::parse(file, line_no, None, "no cases after @data"));
    }
    Ok(TsDataset {
        problem: header.problem.unwrap_or_default(),
        channels: cases.channels.unwrap_or(1),
        class_names: cases.class_names,
        series: cases.series,
    })
}

/// A parse problem within one line: the field at fault and the reason.
type LineError = (Option<String>, String);

#[derive(Default)]
struct Header {
    seen: Vec<String>,
    problem: Option<String>,
    missing: Option<bool>,
    univariate: Option<bool>,
    dimensions: Option<usize>,
    equal_length: Option<bool>,
    series_length: Option<usize>,
    /// `Some(names)` for `@classLabel true names…`, `Some(empty)` for `@classLabel false`.
    class_label: Option<Vec<String>>,
    target_label: Option<bool>,
}

fn flag(tag: &str, args: &[&str]) -> Result<bool, LineError> {
    match args {
        [v] if v.eq_ignore_ascii_case("true") => Ok(true),
        [v] if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err((
            Some(tag.into()),
            format!("expected `true` or `false`, found {:?}", args.join(" ")),
        )),
    }
}

fn count(tag: &str, args: &[&str]) -> Result<usize, LineError> {
    match args {
        [v] => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err((Some(tag.into()), format!("expected a positive integer, found {v:?}"))),
        },
        _ => Err((
            Some(tag.into()),
            format!("expected one positive integer, found {:?}", args.join(" ")),
        )),
    }
}

impl Header {
    /// Applies one header line; returns true for `@data`.
    fn tag(&mut self, text: &str) -> Result<bool, LineError> {
        let mut words = text.split_whitespace();
        let raw_tag = words.next().unwrap_or("@");
        let args: Vec<&str> = words.collect();
        let tag = raw_tag.to_ascii_lowercase();
        if self.seen.contains(&tag) {
            return Err((Some(raw_tag.into()), "appears twice".into()));
        }
        self.seen.push(tag.clone());
        match tag.as_str() {
            "@problemname" => {
                if args.is_empty() {
                    return Err((Some(raw_tag.into()), "no name".into()));
                }
                self.problem = Some(args.join(" "));
            }
            "@timestamps" => {
                if flag(raw_tag, &args)? {
                    return Err((
                        Some(raw_tag.into()),
                        "time-stamped values (`@timeStamps true`) are not supported".into(),
                    ));
                }
            }
            "@missing" => self.missing = Some(flag(raw_tag, &args)?),
            "@univariate" => self.univariate = Some(flag(raw_tag, &args)?),
            "@dimensions" => self.dimensions = Some(count(raw_tag, &args)?),
            "@equallength" => self.equal_length = Some(flag(raw_tag, &args)?),
            "@serieslength" => self.series_length = Some(count(raw_tag, &args)?),
            "@classlabel" => {
                let Some((&first, names)) = args.split_first() else {
                    return Err((
                        Some(raw_tag.into()),
                        "expected `true` followed by the class names, or `false`".into(),
                    ));
                };
                let names: Vec<String> = match flag(raw_tag, &[first])? {
                    true if names.is_empty() => {
                        return Err((Some(raw_tag.into()), "`true` but no class names".into()));
                    }
                    true => names.iter().map(|s| s.to_string()).collect(),
                    false if !names.is_empty() => {
                        return Err((Some(raw_tag.into()), "`false` followed by class names".into()));
                    }
                    false => Vec::new(),
                };
                if let Some(dup) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
                    return Err((Some(raw_tag.into()), format!("class {:?} is declared twice", dup.1)));
                }
                self.class_label = Some(names);
            }
            "@targetlabel" => self.target_label = Some(flag(raw_tag, &args)?),
            "@data" => {
                if !args.is_empty() {
                    return Err((Some(raw_tag.into()), "expected nothing after @data".into()));
                }
                return Ok(true);
            }
            _ => return Err((Some(raw_tag.into()), "unknown header tag".into())),
        }
        Ok(false)
    }
}

/// The cases after `@data`, with what the header fixed about them.
struct Cases {
    channels: Option<usize>,
    class_names: Vec<String>,
    regression: bool,
    missing: bool,
    /// `Some(None)`: equal length, the first case decides; `Some(Some(n))`: exactly `n`.
    equal_length: Option<Option<usize>>,
    series: Vec<Series>,
}

impl Cases {
    fn new(h: &Header) -> Result<Self, LineError> {
        let class_names = h.class_label.clone().unwrap_or_default();
        let regression = h.target_label == Some(true);
        if regression && !class_names.is_empty() {
            return Err((
                Some("@data".into()),
                "both @classLabel true and @targetLabel true; a case has one label".into(),
            ));
        }
        let channels = match (h.univariate, h.dimensions) {
            (Some(true), Some(d)) if d != 1 => {
                return Err((Some("@data".into()), format!("@univariate true but @dimensions {d}")));
            }
            (Some(true), _) => Some(1),
            (_, d) => d,
        };
        Ok(Cases {
            channels,
            class_names,
            regression,
            missing: h.missing == Some(true),
            equal_length: (h.equal_length == Some(true)).then_some(h.series_length),
            series: Vec::new(),
        })
    }

    fn push(&mut self, text: &str) -> Result<(), LineError> {
        let has_label = self.regression || !self.class_names.is_empty();
        let fields: Vec<&str> = text.split(':').collect();
        let (data, label_field) = if has_label {
            let (label, data) = fields.split_last().expect("split yields at least one field");
            (data, Some(label.trim()))
        } else {
            (&fields[..], None)
        };
        let channels = *self.channels.get_or_insert(data.len().max(1));
        if data.len() != channels {
            let label = if has_label { " and a label" } else { "" };
            return Err((
                None,
                format!(
                    "expected {channels} channel(s){label} separated by ':', found {} field(s)",
                    fields.len()
                ),
            ));
        }
        let label = match label_field {
            None => Label::None,
            Some(l) if self.regression => match l.parse::<f64>() {
                Ok(v) if v.is_finite() => Label::Target(v),
                _ => {
                    return Err((
                        Some("label".into()),
                        format!("cannot parse {l:?} as a finite target value"),
                    ))
                }
            },
            Some(l) => match self.class_names.iter().position(|c| c == l) {
                Some(k) => Label::Class(k),
                None => {
                    return Err((
                        Some("label".into()),
                        format!(
                            "unknown class {l:?} (@classLabel declares {})",
                            self.class_names.join(" ")
                        ),
                    ))
                }
            },
        };
        let mut per_channel: Vec<Vec<f32>> = Vec::with_capacity(channels);
        for (c, chunk) in data.iter().enumerate() {
            let mut values = Vec::new();
            for (j, raw) in chunk.split(',').enumerate() {
                let at = || Some(format!("channel {}, value {}", c + 1, j + 1));
                let raw = raw.trim();
                let v = match raw {
                    "" => return Err((at(), "empty value".into())),
                    "?" if self.missing => f32::NAN,
                    "?" => return Err((at(), "missing value `?` but the header lacks `@missing true`".into())),
                    _ => match raw.parse::<f32>() {
                        Ok(v) if v.is_finite() => v,
                        Ok(_) => return Err((at(), format!("{raw:?} is not a finite number (use `?` if missing)"))),
                        Err(_) => return Err((at(), format!("cannot parse {raw:?} as a number"))),
                    },
                };
                values.push(v);
            }
            per_channel.push(values);
        }
        let len = per_channel.iter().map(Vec::len).max().unwrap_or(0);
        if let Some(fixed) = self.equal_length {
            if let Some(c) = per_channel.iter().position(|v| v.len() != len) {
                let longest = per_channel.iter().position(|v| v.len() == len).map_or(0, |i| i + 1);
                return Err((
                    Some(format!("channel {}", c + 1)),
                    format!(
                        "{} values but channel {longest} has {len}; @equalLength true needs equal lengths",
                        per_channel[c].len()
                    ),
                ));
            }
            let expected = fixed.or_else(|| self.series.first().map(|s| s.len));
            if let Some(expected) = expected.filter(|&e| e != len) {
                let source = if fixed.is_some() {
                    "@seriesLength"
                } else {
                    "the first case's length"
                };
                return Err((
                    None,
                    format!("series of length {len}, but {source} is {expected} and @equalLength is true"),
                ));
            }
        }
        let mut values = vec![f32::NAN; len * channels];
        for (c, ch) in per_channel.iter().enumerate() {
            for (t, &v) in ch.iter().enumerate() {
                values[t * channels + c] = v;
            }
        }
        self.series.push(Series {
            values,
            len,
            channels,
            label,
        });
        Ok(())
    }
}
