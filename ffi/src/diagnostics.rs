//! "Can I trust this q?" from C: the importance-sampling diagnostics of any density against a
//! posterior (the core's `lwflow::diagnostics::importance_summary`).

use crate::guard::{disjoint, guard, input, out_scalar, output, write_scalar, Span};
use crate::status::LwfStatus::{self, *};

/// Diagnostics of a set of importance log-weights ln w_i = ln L(theta_i) + ln pi(theta_i) - ln q(theta_i) for
/// theta_i drawn from q (`lwf_importance_summary`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LwfImportanceSummary {
    /// Number of log-weights (zero weights included).
    pub n: usize,
    /// ln of the mean weight: the evidence estimate ln Z-hat.
    pub log_z: f64,
    /// Standard error of `log_z` (delta method).
    pub log_z_se: f64,
    /// Kish effective sample size, in [1, n].
    pub ess: f64,
    /// With q's own fresh draws: an estimate of KL(p||q). It sees mass q spends where the
    /// posterior has none (bridges between modes), which k-hat does not.
    pub kl: f64,
    /// PSIS k-hat of the weights' upper tail (0 when `has_k_hat` is 0). Below 0.5 the
    /// importance-sampling estimates converge at the usual rate; above 0.7 they are unreliable.
    pub k_hat: f64,
    /// 1 when k-hat was measured, 0 when no tail could be fitted (fewer than 5 tail points:
    /// n < 21, ties such as all-equal weights, or too many zero weights).
    pub has_k_hat: i32,
}

/// Importance-sampling diagnostics of `n` log-weights
/// `log_w[i] = ln L(theta_i) + ln pi(theta_i) - ln q(theta_i)`, theta_i drawn from q: the
/// evidence estimate with its standard error, the Kish ESS, an estimate of KL(p||q) and the
/// PSIS k-hat. Draw theta_i and ln q(theta_i) with `lwf_model_sample`, evaluate the
/// likelihood, add ln pi (minus the sum of ln(hi - lo) for a uniform prior on a box, minus
/// infinity outside it). A constant added to every log-weight changes only `log_z`.
///
/// `scratch` needs `n` doubles (its contents on return are unspecified). Minus infinity is a
/// valid log-weight (a zero likelihood); NaN and +infinity are refused.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_LENGTH_MISMATCH` (an unaddressable
/// length), `LWF_OVERLAPPING_BUFFERS`, `LWF_EMPTY_BATCH` (n = 0), `LWF_BUFFER_TOO_SMALL`
/// (`scratch_len < n`), `LWF_NON_FINITE` (a NaN or +infinity log-weight),
/// `LWF_DEGENERATE_WEIGHTS` (every weight zero). `*out_summary` is written only on `LWF_OK`,
/// and then every field is finite.
///
/// # Safety
/// `log_w` NULL or valid for `n` reads; `scratch` NULL or valid for `scratch_len` reads and
/// writes; `out_summary` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_importance_summary(
    log_w: *const f64,
    n: usize,
    scratch: *mut f64,
    scratch_len: usize,
    out_summary: *mut LwfImportanceSummary,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_summary)?;
        let (w_span, s_span, o_span) = (
            Span::checked(log_w, n)?,
            Span::checked(scratch.cast_const(), scratch_len)?,
            Span::checked(out.cast_const(), 1)?,
        );
        disjoint(s_span, &[w_span, o_span])?;
        disjoint(o_span, &[w_span])?;
        // SAFETY: the caller's contract; the buffers are disjoint (checked above).
        let log_w = unsafe { input(log_w, n) }?;
        // SAFETY: as above.
        let scratch = unsafe { output(scratch, scratch_len) }?;
        let s = lwflow::diagnostics::importance_summary(log_w, scratch)?;
        let summary = LwfImportanceSummary {
            n: s.n,
            log_z: s.log_z,
            log_z_se: s.log_z_se,
            ess: s.ess,
            kl: s.kl,
            k_hat: s.k_hat.unwrap_or(0.0),
            has_k_hat: i32::from(s.k_hat.is_some()),
        };
        let finite = [
            summary.log_z,
            summary.log_z_se,
            summary.ess,
            summary.kl,
            summary.k_hat,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err(LWF_NON_FINITE);
        }
        // SAFETY: checked by out_scalar; disjoint from the inputs.
        unsafe { write_scalar(out, summary) };
        Ok(())
    })
}
