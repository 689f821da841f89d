//! What this CPU can run, asked at run time: the kernels (`embedding`'s products, attention and
//! norms, `index`'s scans) all ask here, so one place decides which code path runs, a test can
//! run every path the machine has and name the ones it lacks, and a benchmark can hold the
//! kernels back to an older path (`WENDA_KERNELS`) to measure what a newer one gains.

use std::sync::OnceLock;

/// An instruction-set level that kernels are written for, from oldest to newest. Every level
/// includes AVX2/FMA, so a kernel family with no code of its own for a level runs its AVX2 code.
/// AVX-512 VNNI does not imply AVX-VNNI (Ice Lake and Zen 4 have the first only), so AVX-512
/// code never falls back to AVX-VNNI code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust that the compiler vectorises for the baseline target.
    Portable,
    /// AVX2 and FMA: 256-bit f32 FMA, int8 products with `vpmaddubsw`.
    Avx2,
    /// AVX-VNNI on top of AVX2: 256-bit `vpdpbusd` (Alder Lake and later client chips, Zen 5).
    AvxVnni,
    /// AVX-512 F/BW/VL with VNNI: 512-bit f32 and `vpdpbusd` (Ice Lake / Sapphire Rapids
    /// servers, Zen 4 and later).
    Avx512Vnni,
}

impl Level {
    /// Every level, oldest first.
    pub const ALL: [Level; 4] = [
        Level::Portable,
        Level::Avx2,
        Level::AvxVnni,
        Level::Avx512Vnni,
    ];

    /// The name `/v1/info`, `wenda model info` and `WENDA_KERNELS` use.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::AvxVnni => "avx-vnni",
            Level::Avx512Vnni => "avx512-vnni",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.name() == name)
    }

    /// Whether this CPU has every feature the level's kernels are compiled for.
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            match self {
                Level::Portable => true,
                Level::Avx2 => avx2,
                Level::AvxVnni => avx2 && has!("avxvnni"),
                Level::Avx512Vnni => {
                    avx2 && has!("avx512f")
                        && has!("avx512bw")
                        && has!("avx512vl")
                        && has!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Level::Portable
        }
    }

    /// The newest level this CPU supports, or the newest it supports up to the one
    /// `WENDA_KERNELS` names. Decided once per process.
    pub fn detected() -> Self {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let best_up_to = |cap: Level| {
                Self::ALL
                    .into_iter()
                    .rev()
                    .find(|level| *level <= cap && level.is_supported())
                    .unwrap_or(Level::Portable)
            };
            let best = best_up_to(Level::Avx512Vnni);
            match std::env::var("WENDA_KERNELS") {
                Ok(name) => match Self::from_name(&name) {
                    Some(cap) => best_up_to(cap),
                    None => {
                        tracing::warn!(
                            requested = %name,
                            known = ?Self::ALL.map(Level::name),
                            "WENDA_KERNELS names no kernel level; using the CPU's best"
                        );
                        best
                    }
                },
                Err(_) => best,
            }
        })
    }
}

/// Whether the kernels run at least the AVX2/FMA path.
#[inline]
pub fn has_avx2_fma() -> bool {
    Level::detected() >= Level::Avx2
}

/// The kernels the native encoder and the index run on this CPU, as `/v1/info` and `wenda model
/// info` report them.
pub fn kernels() -> &'static str {
    Level::detected().name()
}

/// Runs `check` once for each level this CPU supports, and returns the names of the levels it
/// lacks, for a test to print as skipped: a path the machine cannot run is reported, not silently
/// passed.
#[cfg(test)]
pub fn for_each_supported_level(mut check: impl FnMut(Level)) -> Vec<&'static str> {
    let mut skipped = Vec::new();
    for level in Level::ALL {
        if level.is_supported() {
            check(level);
        } else {
            skipped.push(level.name());
        }
    }
    if !skipped.is_empty() {
        eprintln!("skipped kernel levels this CPU lacks: {skipped:?}");
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_named_uniquely() {
        assert!(Level::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        for level in Level::ALL {
            assert_eq!(Level::from_name(level.name()), Some(level));
        }
        assert!(Level::Portable.is_supported());
        // Every level above the portable one includes AVX2.
        for level in &Level::ALL[2..] {
            assert!(!level.is_supported() || Level::Avx2.is_supported());
        }
        assert!(Level::detected().is_supported());
    }
}
