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

/// The kernels the native encoder and the index run on this CPU, as `/v1/info` and `wenda
/// model info` report them: `avx2-fma`, or `portable` (plain Rust that the compiler
/// vectorises for the baseline target).
pub fn kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return "avx2-fma";
    }
    "portable"
}
