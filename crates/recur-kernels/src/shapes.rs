//! Shape contracts shared by the kernel families: the reference kernel and its fast twin check
//! the same slice lengths with the same messages, so each contract is written once here.

use crate::gates::{GRU_CACHE, GRU_GATES};

/// [`crate::reference::gru_fwd`]: `gi`, `gh` `[n, 3h]`; `h_prev`, `h_out` `[n, h]`; `cache`
/// `[n, 4h]`.
#[track_caller]
pub(crate) fn gru_fwd(n: usize, h: usize, gi: usize, gh: usize, h_prev: usize, h_out: usize, cache: usize) {
    let (g, cw) = (GRU_GATES * h, GRU_CACHE * h);
    assert!(gi >= n * g && gh >= n * g, "gru_fwd: gate shapes");
    assert!(
        h_prev >= n * h && h_out >= n * h && cache >= n * cw,
        "gru_fwd: state shapes"
    );
}

/// [`crate::reference::gru_bwd`]: `cache` `[n, 4h]`; `dgi`, `dgh` `[n, 3h]`; `h_prev`, `dh`,
/// `dh_prev` `[n, h]`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub(crate) fn gru_bwd(
    n: usize,
    h: usize,
    cache: usize,
    h_prev: usize,
    dh: usize,
    dgi: usize,
    dgh: usize,
    dh_prev: usize,
) {
    let (g, cw) = (GRU_GATES * h, GRU_CACHE * h);
    assert!(cache >= n * cw && dgi >= n * g && dgh >= n * g, "gru_bwd: gate shapes");
    assert!(
        h_prev >= n * h && dh >= n * h && dh_prev >= n * h,
        "gru_bwd: state shapes"
    );
}
