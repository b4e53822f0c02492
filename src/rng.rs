//! Random draws from any [`rand_core::Rng`]: uniforms on (0, 1) and standard normals by the
//! Box–Muller transform, computed in `f64` so `f32` and `f64` models see the same stream.
//!
//! Deterministic: the same generator state gives the same draws on every platform that has
//! IEEE-754 `f64` and the same `libm`.

use rand_core::Rng;

/// A source of uniform and normal draws over a borrowed generator. Normals come in pairs; the
/// spare is kept for the next call, so a `Draws` consumes one `u64` per uniform and two per
/// pair of normals.
pub struct Draws<'r> {
    rng: &'r mut dyn Rng,
    spare: Option<f64>,
}

impl<'r> Draws<'r> {
    /// Wraps a generator.
    pub fn new(rng: &'r mut dyn Rng) -> Self {
        Draws { rng, spare: None }
    }

    /// Drops the spare normal, so the draws of the next sample do not depend on how many
    /// normals the previous one used (this keeps samples independent of batch splits).
    #[inline]
    pub fn begin_sample(&mut self) {
        self.spare = None;
    }

    /// A uniform draw on the open interval (0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let (s, c) = libm::sincos(2.0 * core::f64::consts::PI * u2);
        self.spare = Some(r * s);
        r * c
    }
}

/// Adapter so a generic `R: Rng + ?Sized` can be used as `&mut dyn Rng`.
pub(crate) struct RngRef<'r, R: Rng + ?Sized>(pub(crate) &'r mut R);

impl<R: Rng + ?Sized> rand_core::TryRng for RngRef<'_, R> {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}
