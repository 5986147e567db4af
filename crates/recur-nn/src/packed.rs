//! Variable-length batches in PyTorch's packed layout (`pack_padded_sequence` with
//! `enforce_sorted=False`): sequences sorted by decreasing length (stable), data time-major, so
//! the rows active at step `t` are the contiguous prefix `offsets[t] .. offsets[t] + batch_sizes[t]`.

use recur_kernels::Float;

use crate::error::{NnError, Result};
use crate::rnn::{Layout, SeqBatch};

/// The packing plan of one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packing {
    /// Sequences in the batch.
    pub batch: usize,
    /// Padded time dimension of the user's tensors.
    pub time: usize,
    /// Lengths in the user's (original) order.
    pub lengths: Vec<usize>,
    /// `sorted[j]` = original index of the `j`-th longest sequence (ties keep their order).
    pub sorted: Vec<usize>,
    /// `batch_sizes[t]` = number of sequences longer than `t`, for `t < max(lengths)`.
    pub batch_sizes: Vec<usize>,
    /// `offsets[t]` = first packed row of step `t`; `offsets[t_max]` = total rows.
    pub offsets: Vec<usize>,
}

impl Packing {
    /// Plans a batch; `lengths = None` means every sequence has length `time`.
    pub fn new(batch: usize, time: usize, lengths: Option<&[usize]>) -> Result<Self> {
        let lengths: Vec<usize> = match lengths {
            None => vec![time; batch],
            Some(l) => {
                if l.len() != batch {
                    return Err(NnError::Shape {
                        name: "lengths".into(),
                        got: vec![l.len()],
                        expected: vec![batch],
                    });
                }
                if let Some((index, &length)) = l.iter().enumerate().find(|(_, &v)| v == 0 || v > time) {
                    return Err(NnError::Length {
                        index,
                        length,
                        max: time,
                    });
                }
                l.to_vec()
            }
        };
        let mut sorted: Vec<usize> = (0..batch).collect();
        sorted.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        let t_max = lengths.iter().copied().max().unwrap_or(0);
        let batch_sizes: Vec<usize> = (0..t_max).map(|t| lengths.iter().filter(|&&l| l > t).count()).collect();
        let mut offsets = Vec::with_capacity(t_max + 1);
        let mut acc = 0;
        offsets.push(0);
        for &bs in &batch_sizes {
            acc += bs;
            offsets.push(acc);
        }
        Ok(Packing {
            batch,
            time,
            lengths,
            sorted,
            batch_sizes,
            offsets,
        })
    }

    /// The longest length.
    pub fn t_max(&self) -> usize {
        self.batch_sizes.len()
    }

    /// Total packed rows (sum of lengths).
    pub fn total(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    fn padded_index(&self, layout: Layout, b: usize, t: usize) -> usize {
        match layout {
            Layout::BatchFirst => b * self.time + t,
            Layout::TimeFirst => t * self.batch + b,
        }
    }

    /// Packs a padded `[batch, time, w]` (or time-first) tensor into `[total, w]` rows.
    pub fn pack<T: Float>(&self, x: &SeqBatch<'_, T>) -> Vec<T> {
        self.pack_padded(x.data, x.layout, x.features)
    }

    /// [`Packing::pack`] into `out` (`[total, features]`; every element is written).
    pub fn pack_into<T: Float>(&self, x: &SeqBatch<'_, T>, out: &mut [T]) {
        self.pack_padded_into(x.data, x.layout, x.features, out)
    }

    /// Packs padded data of width `w` in `layout`.
    pub fn pack_padded<T: Float>(&self, data: &[T], layout: Layout, w: usize) -> Vec<T> {
        let mut out = vec![T::zero(); self.total() * w];
        self.pack_padded_into(data, layout, w, &mut out);
        out
    }

    /// [`Packing::pack_padded`] into `out` (`[total, w]`; every element is written).
    pub fn pack_padded_into<T: Float>(&self, data: &[T], layout: Layout, w: usize, out: &mut [T]) {
        assert_eq!(out.len(), self.total() * w, "pack_padded_into: output size");
        for (t, &bs) in self.batch_sizes.iter().enumerate() {
            for j in 0..bs {
                let src = self.padded_index(layout, self.sorted[j], t) * w;
                let dst = (self.offsets[t] + j) * w;
                out[dst..dst + w].copy_from_slice(&data[src..src + w]);
            }
        }
    }

    /// Unpacks `[total, w]` rows into a zero-padded `[batch, time, w]` (or time-first) tensor.
    pub fn unpack<T: Float>(&self, packed: &[T], layout: Layout, w: usize) -> Vec<T> {
        let mut out = vec![T::zero(); self.batch * self.time * w];
        for (t, &bs) in self.batch_sizes.iter().enumerate() {
            for j in 0..bs {
                let dst = self.padded_index(layout, self.sorted[j], t) * w;
                let src = (self.offsets[t] + j) * w;
                out[dst..dst + w].copy_from_slice(&packed[src..src + w]);
            }
        }
        out
    }

    /// Reorders a state slab `[batch, w]` from original to sorted order.
    pub(crate) fn sort_rows<T: Float>(&self, src: &[T], w: usize, dst: &mut [T]) {
        for (j, &b) in self.sorted.iter().enumerate() {
            dst[j * w..(j + 1) * w].copy_from_slice(&src[b * w..(b + 1) * w]);
        }
    }

    /// Reorders a state slab `[batch, w]` from sorted back to original order.
    pub(crate) fn unsort_rows<T: Float>(&self, src: &[T], w: usize, dst: &mut [T]) {
        for (j, &b) in self.sorted.iter().enumerate() {
            dst[b * w..(b + 1) * w].copy_from_slice(&src[j * w..(j + 1) * w]);
        }
    }

    /// Expands a per-sequence mask `[batch, w]` (original order) to packed rows `[total, w]`.
    pub(crate) fn per_row<T: Float>(&self, mask: &[T], w: usize) -> Vec<T> {
        let mut out = vec![T::zero(); self.total() * w];
        for (t, &bs) in self.batch_sizes.iter().enumerate() {
            for j in 0..bs {
                let b = self.sorted[j];
                let dst = (self.offsets[t] + j) * w;
                out[dst..dst + w].copy_from_slice(&mask[b * w..(b + 1) * w]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_like_pytorch_docs() {
        // pack_sequence([1,2,3],[4,5],[6]) → data [1,4,6,2,5,3], batch_sizes [3,2,1]
        let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 0.0, 6.0, 0.0, 0.0];
        let p = Packing::new(3, 3, Some(&[3, 2, 1])).unwrap();
        let b = SeqBatch::batch_first(&x, 3, 3, 1).with_lengths(&[3, 2, 1]);
        assert_eq!(p.pack(&b), vec![1.0, 4.0, 6.0, 2.0, 5.0, 3.0]);
        assert_eq!(p.batch_sizes, vec![3, 2, 1]);
        assert_eq!(p.unpack(&p.pack(&b), Layout::BatchFirst, 1), x.to_vec());
    }

    #[test]
    fn unsorted_lengths_sort_stably() {
        let p = Packing::new(4, 7, Some(&[5, 7, 1, 5])).unwrap();
        assert_eq!(p.sorted, vec![1, 0, 3, 2]);
        assert_eq!(p.batch_sizes, vec![4, 3, 3, 3, 3, 1, 1]);
        assert_eq!(p.total(), 18);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            Packing::new(2, 5, Some(&[0, 3])),
            Err(NnError::Length {
                index: 0,
                length: 0,
                max: 5
            })
        );
        assert_eq!(
            Packing::new(2, 5, Some(&[3, 6])),
            Err(NnError::Length {
                index: 1,
                length: 6,
                max: 5
            })
        );
        assert!(matches!(Packing::new(2, 5, Some(&[3])), Err(NnError::Shape { .. })));
    }
}
