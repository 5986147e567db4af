//! Run-time kernel selection.
//!
//! The CPU is inspected once ([`kernels`] caches the result); the returned [`Kernels`] value is
//! a small `Copy` handle whose methods route each call to the fastest implementation for the
//! element type and CPU, or to [`crate::reference`] when [`KernelChoice::Reference`] is asked
//! for. Nothing here depends on `target-cpu=native`.

use std::any::TypeId;
use std::sync::OnceLock;

use crate::packed::{self, GemvLayout, PackedGemv};
use crate::quant::{self, Precision, QuantGemv};
use crate::{reference, Accum, Float, MatMut, MatRef};

/// Which implementation family to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// The plain reference kernels (slow; for debugging and A/B timing).
    Reference,
    /// The fastest kernels this CPU supports.
    #[default]
    Best,
}

/// The SIMD level chosen for `f32` kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Portable code only.
    None,
    /// x86-64 with AVX2 and FMA.
    Avx2Fma,
}

/// A handle to one kernel family. Cheap to copy; obtain it with [`kernels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernels {
    choice: KernelChoice,
    simd: Simd,
}

fn detect() -> Simd {
    static SIMD: OnceLock<Simd> = OnceLock::new();
    *SIMD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if crate::x86::has_avx2_fma() {
            return Simd::Avx2Fma;
        }
        Simd::None
    })
}

/// The kernel family for `choice` on this CPU (detection runs once per process).
pub fn kernels(choice: KernelChoice) -> Kernels {
    let simd = match choice {
        KernelChoice::Reference => Simd::None,
        KernelChoice::Best => detect(),
    };
    Kernels { choice, simd }
}

#[inline(always)]
fn is_f32<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32s<T: 'static>(s: &[T]) -> &[f32] {
    debug_assert!(is_f32::<T>());
    // SAFETY: only called after `is_f32::<T>()`, so `T` is `f32`.
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32s_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    debug_assert!(is_f32::<T>());
    // SAFETY: only called after `is_f32::<T>()`, so `T` is `f32`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) }
}

impl Kernels {
    /// The chosen family.
    pub fn choice(&self) -> KernelChoice {
        self.choice
    }

    /// The SIMD level used for `f32`.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// A short human-readable name, e.g. `"avx2+fma"` or `"reference"`.
    pub fn name(&self) -> &'static str {
        match (self.choice, self.simd) {
            (KernelChoice::Reference, _) => "reference",
            (KernelChoice::Best, Simd::Avx2Fma) => "avx2+fma",
            (KernelChoice::Best, Simd::None) => "portable",
        }
    }

    #[inline(always)]
    fn avx2<T: 'static>(&self) -> bool {
        cfg!(target_arch = "x86_64") && self.simd == Simd::Avx2Fma && is_f32::<T>()
    }

    /// `C (=|+=) A · B`; see [`reference::gemm`].
    #[track_caller]
    pub fn gemm<T: Float>(&self, a: MatRef<'_, T>, b: MatRef<'_, T>, c: MatMut<'_, T>, accum: Accum) {
        match self.choice {
            KernelChoice::Reference => reference::gemm(a, b, c, accum),
            KernelChoice::Best => T::gemm_fast(a, b, c, accum),
        }
    }

    /// Elman step; see [`reference::rnn_fwd`].
    #[track_caller]
    pub fn rnn_fwd<T: Float>(&self, n: usize, h: usize, gi: &[T], gh: &[T], relu: bool, h_out: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::rnn_fwd(n, h, f32s(gi), f32s(gh), relu, f32s_mut(h_out));
        }
        reference::rnn_fwd(n, h, gi, gh, relu, h_out)
    }

    /// GRU step; see [`reference::gru_fwd`].
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn gru_fwd<T: Float>(
        &self,
        n: usize,
        h: usize,
        gi: &[T],
        gh: &[T],
        h_prev: &[T],
        h_out: &mut [T],
        cache: &mut [T],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::gru_fwd(n, h, f32s(gi), f32s(gh), f32s(h_prev), f32s_mut(h_out), f32s_mut(cache));
        }
        reference::gru_fwd(n, h, gi, gh, h_prev, h_out, cache)
    }

    /// GRU step backward; see [`reference::gru_bwd`].
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn gru_bwd<T: Float>(
        &self,
        n: usize,
        h: usize,
        cache: &[T],
        h_prev: &[T],
        dh: &[T],
        dgi: &mut [T],
        dgh: &mut [T],
        dh_prev: &mut [T],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::gru_bwd(
                n,
                h,
                f32s(cache),
                f32s(h_prev),
                f32s(dh),
                f32s_mut(dgi),
                f32s_mut(dgh),
                f32s_mut(dh_prev),
            );
        }
        reference::gru_bwd(n, h, cache, h_prev, dh, dgi, dgh, dh_prev)
    }

    /// Fused LSTM step without peepholes or layer norm: [`reference::lstm_cell_fwd`] followed by
    /// [`reference::lstm_hidden_fwd`] on `c_out`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn lstm_fwd<T: Float>(&self, n: usize, h: usize, a: &mut [T], c_prev: &[T], c_out: &mut [T], h_out: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::lstm_fwd(n, h, f32s_mut(a), f32s(c_prev), f32s_mut(c_out), f32s_mut(h_out));
        }
        reference::lstm_cell_fwd(n, h, a, c_prev, None, c_out);
        reference::lstm_hidden_fwd(n, h, a, c_out, h_out);
    }

    /// Packs the row-major `w` (`[rows, cols]`, exactly `rows · cols` elements) for
    /// [`Kernels::gemv`] in the layout this family runs fastest: [`GemvLayout::Panel8`] for
    /// `f32` with AVX2+FMA, [`GemvLayout::RowMajor`] otherwise. Allocates; call it when the
    /// model is built, not per step.
    ///
    /// # Panics
    /// When `w.len() != rows · cols`.
    #[track_caller]
    pub fn pack_gemv<T: Float>(&self, w: &[T], rows: usize, cols: usize) -> PackedGemv<T> {
        let layout = if self.avx2::<T>() {
            GemvLayout::Panel8
        } else {
            GemvLayout::RowMajor
        };
        PackedGemv::new(w, rows, cols, layout)
    }

    /// `y[..rows] (=|+=) W · x[..cols]` for a packed `W` (`[rows, cols]`); with `W = W_hh`
    /// this is the recurrent projection `h · W_hhᵀ` at batch 1. Never allocates.
    ///
    /// Any layout works with any family: the AVX2+FMA kernel runs when this family has it and
    /// `p` is [`GemvLayout::Panel8`]; every other combination runs
    /// [`packed::gemv_portable`] (correct, slow). To add a bias, fill `y` with it and pass
    /// [`Accum::Add`].
    ///
    /// # Panics
    /// When `x.len() < cols` or `y.len() < rows`.
    #[track_caller]
    pub fn gemv<T: Float>(&self, p: &PackedGemv<T>, x: &[T], y: &mut [T], accum: Accum) {
        packed::check_gemv(p, x, y);
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() && p.layout() == GemvLayout::Panel8 {
            return crate::x86::gemv_panel8(p.rows(), p.cols(), f32s(p.as_slice()), f32s(x), f32s_mut(y), accum);
        }
        packed::gemv_portable(p, x, y, accum)
    }

    /// `Y[n, rows] (=|+=) X[n, cols] · Wᵀ` for a packed `W` (`[rows, cols]`): the recurrent
    /// projection of `n` active rows at once (`X`, `Y` row-major, contiguous). Never allocates;
    /// reads `W` once per 4 rows on the AVX2 path.
    ///
    /// # Panics
    /// When `x.len() < n · cols` or `y.len() < n · rows`.
    #[track_caller]
    pub fn gemm_packed<T: Float>(&self, p: &PackedGemv<T>, n: usize, x: &[T], y: &mut [T], accum: Accum) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() && p.layout() == GemvLayout::Panel8 {
            return crate::x86::gemm_panel8(p.rows(), p.cols(), f32s(p.as_slice()), n, f32s(x), f32s_mut(y), accum);
        }
        packed::gemm_portable(p, n, x, y, accum)
    }

    /// Whether [`Kernels::gemm_quant`] runs a SIMD kernel for `f32` weights stored in
    /// `precision` (AVX2, FMA and F16C in the `Best` family); otherwise it runs the portable
    /// [`quant::gemm_portable`].
    pub fn quant_simd(&self, precision: Precision) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.simd == Simd::Avx2Fma {
            return crate::x86::quant_supported(precision);
        }
        let _ = precision;
        false
    }

    /// `Y[n, rows] (=|+=) X[n, cols] · Ŵᵀ` for reduced-precision weights `Ŵ` (see
    /// [`crate::quant`]): the recurrent projection or the hoisted input projection of an
    /// inference pass. `X`, `Y` are row-major and contiguous; accumulation is in `f32` (in `T`
    /// on the portable path). Never allocates.
    ///
    /// # Panics
    /// When `x.len() < n · cols` or `y.len() < n · rows`.
    #[track_caller]
    pub fn gemm_quant<T: Float>(&self, p: &QuantGemv, n: usize, x: &[T], y: &mut [T], accum: Accum) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() && self.quant_simd(p.precision()) {
            return crate::x86::gemm_quant(p, n, f32s(x), f32s_mut(y), accum);
        }
        quant::gemm_portable(p, n, x, y, accum)
    }

    /// `x ← eˣ` elementwise (vectorized to a few ulp for `f32` with AVX2+FMA).
    pub fn exp<T: Float>(&self, x: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::exp_inplace(f32s_mut(x));
        }
        x.iter_mut().for_each(|v| *v = v.exp())
    }

    /// `x ← σ(x) = 1 / (1 + e^{−x})` elementwise, as in the gate kernels.
    pub fn sigmoid<T: Float>(&self, x: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::sigmoid_inplace(f32s_mut(x));
        }
        x.iter_mut().for_each(|v| *v = reference::sigmoid(*v))
    }

    /// `x ← tanh(x)` elementwise, as in the gate kernels.
    pub fn tanh<T: Float>(&self, x: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2::<T>() {
            return crate::x86::tanh_inplace(f32s_mut(x));
        }
        x.iter_mut().for_each(|v| *v = v.tanh())
    }
}
