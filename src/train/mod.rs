//! The method: prior sampling, likelihood weights, the trainer, and the end-to-end fit.

pub mod checkpoint;
mod codec;
pub mod fit;
pub mod refine;
pub mod trainer;
pub mod weights;

pub use checkpoint::{
    resume_fit, CheckpointInfo, FitCheckpoint, FitStage, ResumeBuffers, CHECKPOINT_VERSION,
};
pub use fit::{
    fit, fit_in_box, fit_resumable, fit_with_rng, BaseChoice, FitBuffers, FitConfig, FitData,
    FitMemory, FitReport,
};
pub use refine::{
    refine, RefineBuffers, RefineConfig, RefineMemory, RefineReport, RefineState, RefineStatus,
    Refiner, RoundReport, STATE_BYTES,
};
pub use trainer::{
    held_out_loss, train, train_resumable, train_with_rng, EpochReport, Schedule, StopReason,
    TrainBuffers, TrainConfig, TrainReport, TrainSnapshot, TrainState,
};
pub use weights::{
    effective_sample_size, importance_log_weights, normalise_log_weights, sample_and_weigh,
    sample_box, NonFinitePolicy, WeightStats,
};
