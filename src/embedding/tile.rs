//! The output tile both matrix kernels compute, shared by [`gemm`](super::gemm) (f32) and
//! [`int8`](super::int8) (integers) so that neither imports from the other: the tile's width,
//! which is also the column count of a packed panel, and the dispatch on its height.

/// Columns of a packed panel (two AVX registers of 8 lanes), in both kernels.
pub(super) const NR: usize = 16;

/// `$kernel::<ROWS>(args)` for a tile of `$rows` rows (1..=6, the tile height of both the f32
/// and the integer kernels): each height gets a kernel of its own, so a short tile (the last
/// rows of a matrix) computes no rows that are thrown away.
macro_rules! for_tile_height {
    ($rows:expr, $kernel:ident($($arg:expr),* $(,)?)) => {
        match $rows {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            _ => $kernel::<6>($($arg),*),
        }
    };
}
pub(super) use for_tile_height;
