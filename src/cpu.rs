//! What this CPU can run, asked at run time: the kernels (`embedding`'s products, attention and
//! norms, `index`'s dot products) all ask here, so one place decides which code path runs and
//! a test can name the paths the machine lacks.

/// Whether the CPU runs the AVX2/FMA code paths. `is_x86_feature_detected!` detects once and
/// caches, so this is a load and a test after the first call.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
