/* Resumable fits and refinements from C: a host killed mid-run (a child process that ends
 * with _exit right after saving a checkpoint) resumes from its last checkpoint file and ends
 * bit-identical to an uninterrupted run, with every likelihood call made exactly once over
 * the killed run and its resumption; truncated and corrupted checkpoint files are typed
 * errors (LWF_BAD_FORMAT) with nothing written.
 *
 *   fit      lwf_model_fit_prior_box_resumable killed at a random epoch (from the seed), at
 *            the samples checkpoint (epoch 0) and at the last epoch, resumed with
 *            lwf_model_fit_resume; a resumed fit killed again and resumed again; the
 *            checkpoints change nothing about the fit; bad checkpoints and bad buffers
 *   samples  lwf_model_fit_samples_resumable with and without a box: the same model as
 *            lwf_model_fit_samples(_in_box), and resumed from a middle checkpoint
 *   refine   a refinement driven by ask/tell, checkpointed after every round with
 *            lwf_refine_checkpoint, killed at a random round, restored with
 *            lwf_refine_restore and finished; bad checkpoints
 *
 * Run by ffi/tests/checkpoint_program.rs:
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/checkpoint_test.c \
 *      target/debug/liblwflow.a -lm -lpthread -ldl -o checkpoint_test
 *   ./checkpoint_test all SEED SCRATCH_DIR [quick]
 *
 * Prints one line per kill and the summary line "checks: N failures: F". The likelihood is a
 * banana, which training keeps improving on (the EM base alone does not fit it). */
#define _POSIX_C_SOURCE 200809L
#include "lwflow.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures = 0, checks = 0;
static int quick = 0;            /* small counts (valgrind) */
static const char *dir = ".";    /* scratch directory for the checkpoint files */
static uint64_t rng_state = 0;   /* the seed's generator: kill points, corruptions */
enum { KILLED = 42, NOT_KILLED = 43 };

static void expect_true(int cond, const char *what, int line) {
    checks++;
    if (!cond) {
        failures++;
        printf("FAIL line %d: %s\n", line, what);
    }
}
static void expect_status(LwfStatus got, LwfStatus want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        printf("FAIL line %d: %s returned %d (%s), expected %d (%s)\n", line, what, (int)got,
               lwf_status_message((int)got), (int)want, lwf_status_message((int)want));
    }
}
#define TRUE(cond) expect_true((cond), #cond, __LINE__)
#define STATUS(want, call) expect_status((call), (want), #call, __LINE__)
#define OK(call) STATUS(LWF_OK, call)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1); /* malloc memory is aligned for double: 8 bytes */
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

/* SplitMix64. */
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- files ------------------------------------------------------------------------------ */

static void path_of(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Writes `len` bytes to `path` through a temporary file and a rename: a reader sees the old
 * file or the new one, never half of one. */
static int write_file(const char *path, const void *bytes, size_t len) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    size_t put = fwrite(bytes, 1, len, f);
    if (fclose(f) != 0 || put != len) return -1;
    return rename(tmp, path);
}

/* The whole file in fresh memory (free it); NULL if unreadable. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = xmalloc(size > 0 ? (size_t)size : 1);
    *len = fread(bytes, 1, size > 0 ? (size_t)size : 0, f);
    fclose(f);
    return bytes;
}

/* ---- the likelihood: a banana on the box [-6, 6]^2 (the EM mixture alone does not fit it:
 * training improves on it for many epochs) ----------------------------------------------- */

static size_t likelihood_points = 0; /* points evaluated by this process */

static double log_likelihood(const double *x) {
    double a = x[0] / 2.0, b = (x[1] - 0.4 * x[0] * x[0] + 2.0) / 0.5;
    return -0.5 * (a * a + b * b);
}
static int likelihood_cb(const double *theta, size_t n, size_t dim, double *out, void *user) {
    (void)user;
    likelihood_points += n;
    for (size_t i = 0; i < n; i++) out[i] = log_likelihood(theta + i * dim);
    return 0;
}

/* ---- checkpoint callbacks ---------------------------------------------------------------- */

/* Saves every checkpoint to `path`; at epoch `kill_at` (-1: never) records the likelihood
 * points evaluated so far in `count_path` and ends the process at once, as a host killed right
 * after saving would. */
typedef struct {
    char path[4096];
    char count_path[4096];
    long kill_at;
    size_t saved;
    size_t last_epoch;
} Saver;

static void saver_init(Saver *s, const char *name, long kill_at) {
    char count[256];
    path_of(s->path, sizeof s->path, name);
    snprintf(count, sizeof count, "%s.count", name);
    path_of(s->count_path, sizeof s->count_path, count);
    s->kill_at = kill_at;
    s->saved = 0;
    s->last_epoch = 0;
}

static int save_checkpoint(const uint8_t *bytes, size_t len, size_t epoch, void *user) {
    Saver *s = user;
    if (write_file(s->path, bytes, len) != 0) return 1;
    s->saved++;
    s->last_epoch = epoch;
    if ((long)epoch == s->kill_at) {
        char text[64];
        int k = snprintf(text, sizeof text, "%zu\n", likelihood_points);
        if (write_file(s->count_path, text, (size_t)k) != 0) _exit(3);
        _exit(KILLED);
    }
    return 0;
}

/* Keeps the checkpoint of epoch `keep_at` in memory. */
typedef struct {
    size_t keep_at;
    uint8_t *bytes;
    size_t len;
} Keeper;
static int keep_checkpoint(const uint8_t *bytes, size_t len, size_t epoch, void *user) {
    Keeper *k = user;
    if (epoch == k->keep_at) {
        k->bytes = xmalloc(len);
        memcpy(k->bytes, bytes, len);
        k->len = len;
    }
    return 0;
}

static size_t read_count(const char *path) {
    size_t len = 0, count = (size_t)-1;
    uint8_t *text = read_file(path, &len);
    if (text) {
        char buf[64] = {0};
        memcpy(buf, text, len < sizeof buf - 1 ? len : sizeof buf - 1);
        count = (size_t)strtoull(buf, NULL, 10);
        free(text);
    }
    return count;
}

/* Waits for a child; 1 when it was killed by its checkpoint callback. */
static int child_was_killed(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == KILLED;
}

/* ---- fits -------------------------------------------------------------------------------- */

typedef struct {
    LwfShape shape;
    LwfFitConfig config;
    double lo[2], hi[2];
    size_t n;
    size_t model_bytes, work_bytes, checkpoint_bytes;
} FitSetup;

static FitSetup fit_setup(void) {
    FitSetup s;
    OK(lwf_shape_default(2, quick ? 8 : 16, 2, &s.shape));
    OK(lwf_fit_config_default(&s.config));
    s.config.components = 2;
    s.config.max_epochs = quick ? 5 : 16;
    s.config.patience = quick ? 0 : 4;
    s.config.batch_size = 128;
    s.config.likelihood_batch = 97;
    s.config.min_ess = 10;
    s.config.em_restarts = 1;
    s.n = quick ? 300 : 1500;
    s.lo[0] = s.lo[1] = -6.0;
    s.hi[0] = s.hi[1] = 6.0;
    OK(lwf_fit_model_size(&s.shape, &s.config, &s.model_bytes));
    OK(lwf_fit_work_size(&s.shape, &s.config, s.n, &s.work_bytes));
    OK(lwf_fit_checkpoint_size(&s.shape, &s.config, s.n, &s.checkpoint_bytes));
    return s;
}

/* A fitted model with its report and parameters. */
typedef struct {
    void *mem;
    LwfModel *model;
    LwfFitReport report;
    double *params;
    size_t n_params;
} Fitted;

static void fitted_read(Fitted *f) {
    LwfShape shape;
    f->params = NULL;
    f->n_params = 0;
    if (!f->model) return;
    OK(lwf_model_shape(f->model, &shape));
    OK(lwf_shape_param_count(&shape, &f->n_params));
    f->params = xmalloc(f->n_params * sizeof(double));
    OK(lwf_model_get_params(f->model, f->params, f->n_params));
}
static void fitted_free(Fitted *f) {
    free(f->mem);
    free(f->params);
}
/* Bit-identical doubles. */
static int same_bits(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}
/* The same report, field by field (its padding bytes are unspecified). */
static int same_report(const LwfFitReport *a, const LwfFitReport *b) {
    return a->n_samples == b->n_samples && a->skipped_samples == b->skipped_samples &&
           same_bits(a->ess, b->ess) && same_bits(a->log_mean_weight, b->log_mean_weight) &&
           a->components == b->components && a->em_iterations == b->em_iterations &&
           same_bits(a->em_mean_log_likelihood, b->em_mean_log_likelihood) &&
           same_bits(a->em_bic, b->em_bic) && a->epochs == b->epochs &&
           a->best_epoch == b->best_epoch && a->steps == b->steps &&
           a->skipped_steps == b->skipped_steps &&
           same_bits(a->initial_val_loss, b->initial_val_loss) &&
           same_bits(a->best_val_loss, b->best_val_loss) && a->stop_reason == b->stop_reason;
}
/* The same report and bit-identical parameters. */
static int same_fit(const Fitted *a, const Fitted *b) {
    return a->model && b->model && same_report(&a->report, &b->report) &&
           a->n_params == b->n_params &&
           memcmp(a->params, b->params, a->n_params * sizeof(double)) == 0;
}

/* The prior-box fit, resumable when `saver` is not NULL. */
static LwfStatus fit_prior_box(const FitSetup *s, Saver *saver, Fitted *out) {
    void *work = xmalloc(s->work_bytes), *ck = xmalloc(s->checkpoint_bytes);
    out->mem = xmalloc(s->model_bytes);
    out->model = NULL;
    LwfStatus st;
    if (saver)
        st = lwf_model_fit_prior_box_resumable(
            out->mem, s->model_bytes, &s->shape, &s->config, s->lo, 2, s->hi, 2, s->n,
            likelihood_cb, NULL, NULL, NULL, save_checkpoint, saver, ck, s->checkpoint_bytes,
            work, s->work_bytes, &out->report, &out->model);
    else
        st = lwf_model_fit_prior_box(out->mem, s->model_bytes, &s->shape, &s->config, s->lo, 2,
                                     s->hi, 2, s->n, likelihood_cb, NULL, NULL, NULL, work,
                                     s->work_bytes, &out->report, &out->model);
    fitted_read(out);
    free(work);
    free(ck);
    return st;
}

/* Resumes from checkpoint bytes in memory sized by lwf_fit_checkpoint_inspect; `saver` (may be
 * NULL) receives the later checkpoints. */
static LwfStatus resume(const uint8_t *bytes, size_t len, Saver *saver, Fitted *out) {
    LwfFitCheckpointInfo info;
    out->mem = NULL;
    out->model = NULL;
    out->params = NULL;
    LwfStatus st = lwf_fit_checkpoint_inspect(bytes, len, &info);
    if (st != LWF_OK) return st;
    void *work = xmalloc(info.work_bytes), *ck = xmalloc(info.checkpoint_bytes);
    out->mem = xmalloc(info.model_bytes);
    st = lwf_model_fit_resume(out->mem, info.model_bytes, bytes, len, NULL, NULL,
                              saver ? save_checkpoint : NULL, saver, ck, info.checkpoint_bytes,
                              work, info.work_bytes, &out->report, &out->model);
    fitted_read(out);
    free(work);
    free(ck);
    return st;
}

/* Runs the resumable fit in a child killed after its checkpoint of epoch `kill_at`; returns
 * the likelihood points the child evaluated ((size_t)-1 if it was not killed). With `from`
 * (not NULL) the child resumes from those bytes instead of fitting from the start. */
static size_t killed_child(const FitSetup *s, const char *name, long kill_at,
                           const uint8_t *from, size_t from_len) {
    Saver saver;
    saver_init(&saver, name, kill_at);
    remove(saver.path);
    remove(saver.count_path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return (size_t)-1;
    if (pid == 0) {
        Fitted f;
        likelihood_points = 0;
        if (from)
            resume(from, from_len, &saver, &f);
        else
            fit_prior_box(s, &saver, &f);
        _exit(NOT_KILLED);
    }
    if (!child_was_killed(pid)) return (size_t)-1;
    return read_count(saver.count_path);
}

static int stop_at_epoch1(const uint8_t *bytes, size_t len, size_t epoch, void *user) {
    (void)bytes;
    (void)len;
    (void)user;
    return epoch == 1;
}

/* Kills a fit at epoch `kill_at`, resumes it from the checkpoint file and compares. */
static void kill_and_resume(const FitSetup *s, const Fitted *ref, long kill_at) {
    size_t child = killed_child(s, "fit.ckpt", kill_at, NULL, 0);
    TRUE(child != (size_t)-1);
    char path[4096];
    path_of(path, sizeof path, "fit.ckpt");
    size_t len = 0;
    uint8_t *bytes = read_file(path, &len);
    TRUE(bytes != NULL);
    if (!bytes) return;
    LwfFitCheckpointInfo info;
    OK(lwf_fit_checkpoint_inspect(bytes, len, &info));
    TRUE(info.epoch == (size_t)kill_at && info.n_samples == s->n && info.dim == 2);
    TRUE(info.model_bytes == s->model_bytes && info.work_bytes >= s->work_bytes);
    TRUE(info.checkpoint_bytes == s->checkpoint_bytes && len <= info.checkpoint_bytes);
    size_t before = likelihood_points;
    Saver later;
    saver_init(&later, "fit-resumed.ckpt", -1);
    Fitted back;
    OK(resume(bytes, len, &later, &back));
    size_t resumed = likelihood_points - before;
    TRUE(resumed == 0);
    TRUE(child + resumed == s->n);
    TRUE(same_fit(&back, ref));
    TRUE(later.saved == ref->report.epochs - (size_t)kill_at);
    printf("fit killed after epoch %ld of %zu (best %zu): %zu likelihood points before the "
           "kill, %zu after; resumed model %s\n",
           kill_at, ref->report.epochs, ref->report.best_epoch, child, resumed,
           same_fit(&back, ref) ? "bit-identical" : "DIFFERENT");
    fitted_free(&back);
    free(bytes);
}

/* A resumed fit killed again, then resumed again. */
static void kill_twice(const FitSetup *s, const Fitted *ref, long first, long second) {
    size_t child = killed_child(s, "fit.ckpt", first, NULL, 0);
    char path[4096];
    path_of(path, sizeof path, "fit.ckpt");
    size_t len = 0;
    uint8_t *bytes = read_file(path, &len);
    if (!bytes) {
        TRUE(bytes != NULL);
        return;
    }
    size_t again = killed_child(s, "fit2.ckpt", second, bytes, len);
    TRUE(child != (size_t)-1 && again == 0);
    path_of(path, sizeof path, "fit2.ckpt");
    size_t len2 = 0;
    uint8_t *bytes2 = read_file(path, &len2);
    Fitted back;
    size_t before = likelihood_points;
    OK(resume(bytes2, len2, NULL, &back));
    TRUE(likelihood_points == before);
    TRUE(same_fit(&back, ref));
    printf("fit killed after epoch %ld, resumed, killed after epoch %ld, resumed: %s\n", first,
           second, same_fit(&back, ref) ? "bit-identical" : "DIFFERENT");
    fitted_free(&back);
    free(bytes);
    free(bytes2);
}

/* Truncated, corrupted and foreign checkpoints: LWF_BAD_FORMAT from inspect and resume, with
 * nothing written; buffers too small or overlapping: typed errors. */
static void bad_checkpoints(const uint8_t *bytes, size_t len) {
    LwfFitCheckpointInfo info;
    OK(lwf_fit_checkpoint_inspect(bytes, len, &info));
    uint8_t *mem = xmalloc(info.model_bytes), *copy = xmalloc(len + 1);
    void *work = xmalloc(info.work_bytes), *ck = xmalloc(info.checkpoint_bytes);
    memset(mem, 0xAB, info.model_bytes);
    memcpy(copy, bytes, len);
    LwfModel *model = NULL;
    LwfFitReport report;
#define RESUME(b, l)                                                                         \
    lwf_model_fit_resume(mem, info.model_bytes, (b), (l), NULL, NULL, NULL, NULL, NULL, 0,   \
                         work, info.work_bytes, &report, &model)
    const size_t cuts[] = {0, 1, 15, 16, 19, 20, 100, len / 2, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        STATUS(LWF_BAD_FORMAT, lwf_fit_checkpoint_inspect(bytes, cuts[i], &info));
        STATUS(LWF_BAD_FORMAT, RESUME(bytes, cuts[i]));
    }
    STATUS(LWF_BAD_FORMAT, RESUME(copy, len + 1)); /* trailing byte */
    int corruptions = quick ? 40 : 400;
    for (int i = 0; i < corruptions; i++) {
        size_t at = (size_t)(next_u64() % len);
        uint8_t flip = (uint8_t)(1 + next_u64() % 255);
        copy[at] ^= flip;
        STATUS(LWF_BAD_FORMAT, lwf_fit_checkpoint_inspect(copy, len, &info));
        STATUS(LWF_BAD_FORMAT, RESUME(copy, len));
        copy[at] ^= flip;
    }
    int untouched = model == NULL;
    for (size_t i = 0; i < info.model_bytes; i++) untouched &= mem[i] == 0xAB;
    TRUE(untouched);
    /* A model file is not a checkpoint. */
    LwfShape shape;
    OK(lwf_shape_default(2, 4, 1, &shape));
    size_t model_len, saved_len;
    OK(lwf_shape_model_size(&shape, &model_len));
    void *model_mem = xmalloc(model_len);
    LwfModel *other = NULL;
    OK(lwf_model_init(model_mem, model_len, &shape, 1, &other));
    OK(lwf_shape_serialized_size(&shape, &saved_len));
    uint8_t *saved = xmalloc(saved_len);
    OK(lwf_model_save(other, saved, saved_len, &saved_len));
    STATUS(LWF_BAD_FORMAT, lwf_fit_checkpoint_inspect(saved, saved_len, &info));
    STATUS(LWF_BAD_FORMAT, RESUME(saved, saved_len));
    /* Buffers. */
    OK(lwf_fit_checkpoint_inspect(bytes, len, &info));
    STATUS(LWF_BUFFER_TOO_SMALL,
           lwf_model_fit_resume(mem, info.model_bytes - 1, bytes, len, NULL, NULL, NULL, NULL,
                                NULL, 0, work, info.work_bytes, &report, &model));
    STATUS(LWF_BUFFER_TOO_SMALL,
           lwf_model_fit_resume(mem, info.model_bytes, bytes, len, NULL, NULL, NULL, NULL, NULL,
                                0, work, info.work_bytes - 1, &report, &model));
    STATUS(LWF_BUFFER_TOO_SMALL,
           lwf_model_fit_resume(mem, info.model_bytes, bytes, len, NULL, NULL, save_checkpoint,
                                NULL, ck, info.checkpoint_bytes - 1, work, info.work_bytes,
                                &report, &model));
    uint8_t *big = xmalloc(info.checkpoint_bytes); /* input and checkpoint buffer at once */
    memcpy(big, bytes, len);
    STATUS(LWF_OVERLAPPING_BUFFERS,
           lwf_model_fit_resume(mem, info.model_bytes, big, len, NULL, NULL, save_checkpoint,
                                NULL, big, info.checkpoint_bytes, work, info.work_bytes, &report,
                                &model));
    free(big);
    STATUS(LWF_NULL_POINTER, lwf_fit_checkpoint_inspect(NULL, len, &info));
    STATUS(LWF_NULL_POINTER, lwf_fit_checkpoint_inspect(bytes, len, NULL));
    TRUE(model == NULL);
#undef RESUME
    free(mem);
    free(copy);
    free(work);
    free(ck);
    free(model_mem);
    free(saved);
}

static void section_fit(void) {
    FitSetup s = fit_setup();
    likelihood_points = 0;
    Fitted ref;
    OK(fit_prior_box(&s, NULL, &ref));
    TRUE(likelihood_points == s.n);
    size_t epochs = ref.report.epochs;
    TRUE(epochs >= 2);
    /* The resumable form, uninterrupted: the same model; one checkpoint per epoch and one of
     * the samples. */
    Saver saver;
    saver_init(&saver, "whole.ckpt", -1);
    Fitted whole;
    likelihood_points = 0;
    OK(fit_prior_box(&s, &saver, &whole));
    TRUE(likelihood_points == s.n);
    TRUE(same_fit(&whole, &ref));
    TRUE(saver.saved == epochs + 1 && saver.last_epoch == epochs);
    fitted_free(&whole);
    /* Killed at a random epoch, at the samples checkpoint and after the last epoch. */
    long random_epoch = 1 + (long)(next_u64() % epochs);
    kill_and_resume(&s, &ref, random_epoch);
    kill_and_resume(&s, &ref, 0);
    kill_and_resume(&s, &ref, (long)epochs);
    long first = (long)(next_u64() % epochs), second = first + 1;
    kill_twice(&s, &ref, first, second);
    /* Bad checkpoints, from the random epoch's file. */
    char path[4096];
    path_of(path, sizeof path, "whole.ckpt");
    size_t len = 0;
    uint8_t *bytes = read_file(path, &len);
    TRUE(bytes != NULL);
    if (bytes) bad_checkpoints(bytes, len);
    free(bytes);
    /* A stop asked by the checkpoint callback after an epoch: LWF_CANCELLED with the model
     * so far written (the samples section stops one at epoch 0: nothing written). */
    void *work = xmalloc(s.work_bytes), *ck = xmalloc(s.checkpoint_bytes);
    Fitted stopped = {xmalloc(s.model_bytes), NULL, {0}, NULL, 0};
    STATUS(LWF_CANCELLED, lwf_model_fit_prior_box_resumable(
                              stopped.mem, s.model_bytes, &s.shape, &s.config, s.lo, 2, s.hi, 2,
                              s.n, likelihood_cb, NULL, NULL, NULL, stop_at_epoch1, NULL, ck,
                              s.checkpoint_bytes, work, s.work_bytes, &stopped.report,
                              &stopped.model));
    TRUE(stopped.model != NULL && stopped.report.epochs == 1 &&
         stopped.report.stop_reason == LWF_STOP_CANCELLED);
    fitted_free(&stopped);
    free(work);
    free(ck);
    fitted_free(&ref);
}

/* ---- samples fits ------------------------------------------------------------------------ */

static int stop_at_epoch0(const uint8_t *bytes, size_t len, size_t epoch, void *user) {
    (void)bytes;
    (void)len;
    (void)user;
    return epoch == 0;
}

static void section_samples(void) {
    FitSetup s = fit_setup();
    s.config.bounded = 1;
    double *theta = xmalloc(s.n * 2 * sizeof(double)), *logw = xmalloc(s.n * sizeof(double));
    for (size_t i = 0; i < s.n; i++) {
        for (int k = 0; k < 2; k++) {
            double u = ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0;
            theta[2 * i + k] = -6.0 + 12.0 * u;
        }
        logw[i] = log_likelihood(theta + 2 * i);
    }
    for (int boxed = 0; boxed < 2; boxed++) {
        Fitted ref, res;
        void *work = xmalloc(s.work_bytes), *ck = xmalloc(s.checkpoint_bytes);
        ref.mem = xmalloc(s.model_bytes);
        res.mem = xmalloc(s.model_bytes);
        ref.model = res.model = NULL;
        if (boxed)
            OK(lwf_model_fit_samples_in_box(ref.mem, s.model_bytes, &s.shape, &s.config, s.lo,
                                            2, s.hi, 2, theta, 2 * s.n, logw, s.n, NULL, NULL,
                                            work, s.work_bytes, &ref.report, &ref.model));
        else
            OK(lwf_model_fit_samples(ref.mem, s.model_bytes, &s.shape, &s.config, theta,
                                     2 * s.n, logw, s.n, NULL, NULL, work, s.work_bytes,
                                     &ref.report, &ref.model));
        fitted_read(&ref);
        Keeper keeper = {ref.report.epochs / 2, NULL, 0};
        const size_t box_len = boxed ? 2 : 0;
        OK(lwf_model_fit_samples_resumable(
            res.mem, s.model_bytes, &s.shape, &s.config, boxed ? s.lo : NULL, box_len,
            boxed ? s.hi : NULL, box_len, theta, 2 * s.n, logw, s.n, NULL, NULL, keep_checkpoint,
            &keeper, ck, s.checkpoint_bytes, work, s.work_bytes, &res.report, &res.model));
        fitted_read(&res);
        TRUE(same_fit(&res, &ref));
        TRUE(keeper.bytes != NULL);
        Fitted back;
        if (keeper.bytes) {
            OK(resume(keeper.bytes, keeper.len, NULL, &back));
            TRUE(same_fit(&back, &ref));
            fitted_free(&back);
        }
        /* Stopped at the samples checkpoint: LWF_CANCELLED, nothing written. */
        LwfModel *none = NULL;
        STATUS(LWF_CANCELLED,
               lwf_model_fit_samples_resumable(
                   res.mem, s.model_bytes, &s.shape, &s.config, boxed ? s.lo : NULL, box_len,
                   boxed ? s.hi : NULL, box_len, theta, 2 * s.n, logw, s.n, NULL, NULL,
                   stop_at_epoch0, NULL, ck, s.checkpoint_bytes, work, s.work_bytes, NULL,
                   &none));
        TRUE(none == NULL);
        printf("samples fit (%s): resumable form and resumption from epoch %zu bit-identical\n",
               boxed ? "on the box" : "unbounded", keeper.keep_at);
        free(keeper.bytes);
        fitted_free(&ref);
        fitted_free(&res);
        free(work);
        free(ck);
    }
    free(theta);
    free(logw);
}

/* ---- refinement -------------------------------------------------------------------------- */

typedef struct {
    LwfShape shape;
    LwfRefineConfig config;
    double lo[2], hi[2];
    size_t work_bytes;
} RefineSetup;

static RefineSetup refine_setup(void) {
    RefineSetup s;
    OK(lwf_shape_default(2, 8, 2, &s.shape));
    OK(lwf_refine_config_default(2, &s.config));
    s.config.initial_samples = quick ? 200 : 400;
    s.config.samples_per_round = quick ? 200 : 500;
    s.config.check_samples = quick ? 100 : 300;
    s.config.max_calls = quick ? 800 : 3000;
    s.config.max_epochs = quick ? 2 : 6;
    s.config.max_components = 2;
    s.config.seed = 5;
    s.lo[0] = s.lo[1] = -6.0;
    s.hi[0] = s.hi[1] = 6.0;
    OK(lwf_refine_work_size(&s.shape, &s.config, &s.work_bytes));
    return s;
}

/* One ask/tell round; 0 once the refinement has ended. Saves a checkpoint after the round
 * when `saver` is not NULL (and may end the process there). */
static int refine_round(LwfRefine *r, Saver *saver) {
    int32_t status = 0;
    OK(lwf_refine_status(r, &status));
    if (status != LWF_REFINE_RUNNING) return 0;
    size_t capacity = 0, n = 0;
    OK(lwf_refine_batch_capacity(r, &capacity));
    double *theta = xmalloc(capacity * 2 * sizeof(double));
    double *ll = xmalloc(capacity * sizeof(double));
    OK(lwf_refine_ask(r, theta, capacity, &n));
    likelihood_cb(theta, n, 2, ll, NULL);
    LwfRefineRound round;
    OK(lwf_refine_tell(r, ll, n, &round));
    free(theta);
    free(ll);
    if (saver) {
        size_t len = 0, written = 0;
        OK(lwf_refine_checkpoint_size(r, &len));
        uint8_t *bytes = xmalloc(len);
        OK(lwf_refine_checkpoint(r, bytes, len, &written));
        TRUE(written == len);
        save_checkpoint(bytes, len, round.round, saver);
        free(bytes);
    }
    return 1;
}

/* The report and the model's parameters of a finished refinement. */
typedef struct {
    LwfRefineReport report;
    double *params;
    size_t n_params;
} Refined;

static Refined refined(const LwfRefine *r) {
    Refined out;
    size_t len;
    LwfModel *m = NULL;
    LwfShape shape;
    OK(lwf_refine_report(r, &out.report));
    OK(lwf_refine_model_size(r, &len));
    void *mem = xmalloc(len);
    OK(lwf_refine_write_model(r, mem, len, &m));
    OK(lwf_model_shape(m, &shape));
    OK(lwf_shape_param_count(&shape, &out.n_params));
    out.params = xmalloc(out.n_params * sizeof(double));
    OK(lwf_model_get_params(m, out.params, out.n_params));
    free(mem);
    return out;
}
static int same_refined(const Refined *a, const Refined *b) {
    return memcmp(&a->report, &b->report, sizeof a->report) == 0 && a->n_params == b->n_params &&
           memcmp(a->params, b->params, a->n_params * sizeof(double)) == 0;
}

static void bad_refine_checkpoints(const uint8_t *bytes, size_t len, size_t work_bytes) {
    uint8_t *copy = xmalloc(len + 1);
    void *work = xmalloc(work_bytes);
    memcpy(copy, bytes, len);
    LwfRefine *r = NULL;
    const size_t cuts[] = {0, 1, 16, 19, 20, 200, len / 2, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        STATUS(LWF_BAD_FORMAT, lwf_refine_restore(work, work_bytes, bytes, cuts[i], 2, &r));
    STATUS(LWF_BAD_FORMAT, lwf_refine_restore(work, work_bytes, copy, len + 1, 2, &r));
    int corruptions = quick ? 10 : 60;
    for (int i = 0; i < corruptions; i++) {
        size_t at = (size_t)(next_u64() % len);
        uint8_t flip = (uint8_t)(1 + next_u64() % 255);
        copy[at] ^= flip;
        STATUS(LWF_BAD_FORMAT, lwf_refine_restore(work, work_bytes, copy, len, 2, &r));
        copy[at] ^= flip;
    }
    STATUS(LWF_BUFFER_TOO_SMALL, lwf_refine_restore(work, work_bytes - 1, bytes, len, 2, &r));
    STATUS(LWF_OVERLAPPING_BUFFERS, lwf_refine_restore(copy, len, copy, len, 2, &r));
    STATUS(LWF_LENGTH_MISMATCH, lwf_refine_restore(work, work_bytes, bytes, len, 3, &r));
    int32_t status = 0;
    STATUS(LWF_INVALID_MODEL, lwf_refine_status((const LwfRefine *)work, &status));
    TRUE(r == NULL);
    free(copy);
    free(work);
}

static void section_refine(void) {
    RefineSetup s = refine_setup();
    void *work = xmalloc(s.work_bytes);
    LwfRefine *r = NULL;
    likelihood_points = 0;
    OK(lwf_refine_init(work, s.work_bytes, &s.shape, s.lo, s.hi, 2, &s.config, &r));
    size_t rounds = 0;
    while (refine_round(r, NULL)) rounds++;
    size_t ref_points = likelihood_points;
    Refined ref = refined(r);
    TRUE(rounds >= 2 && ref.report.calls == ref_points);
    long kill_at = (long)(next_u64() % (rounds - 1));
    Saver saver;
    saver_init(&saver, "refine.ckpt", kill_at);
    remove(saver.path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        void *w = xmalloc(s.work_bytes);
        LwfRefine *c = NULL;
        likelihood_points = 0;
        lwf_refine_init(w, s.work_bytes, &s.shape, s.lo, s.hi, 2, &s.config, &c);
        while (refine_round(c, &saver)) {
        }
        _exit(NOT_KILLED);
    }
    TRUE(pid > 0 && child_was_killed(pid));
    size_t child = read_count(saver.count_path);
    size_t len = 0;
    uint8_t *bytes = read_file(saver.path, &len);
    TRUE(bytes != NULL);
    if (bytes) {
        void *w2 = xmalloc(s.work_bytes);
        LwfRefine *back = NULL;
        OK(lwf_refine_restore(w2, s.work_bytes, bytes, len, 2, &back));
        size_t before = likelihood_points;
        if (back)
            while (refine_round(back, NULL)) {
            }
        size_t after = likelihood_points - before;
        TRUE(child + after == ref_points);
        Refined got = refined(back);
        TRUE(same_refined(&got, &ref));
        printf("refinement killed after round %ld of %zu: %zu likelihood points before the "
               "kill, %zu after (uninterrupted %zu); restored model %s\n",
               kill_at, rounds, child, after, ref_points,
               same_refined(&got, &ref) ? "bit-identical" : "DIFFERENT");
        bad_refine_checkpoints(bytes, len, s.work_bytes);
        free(got.params);
        free(w2);
        free(bytes);
    }
    free(ref.params);
    free(work);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        printf("usage: %s fit|samples|refine|all SEED SCRATCH_DIR [quick]\n", argv[0]);
        return 2;
    }
    const char *section = argv[1];
    rng_state = strtoull(argv[2], NULL, 10);
    dir = argv[3];
    quick = argc > 4 && strcmp(argv[4], "quick") == 0;
    int all = strcmp(section, "all") == 0;
    if (all || strcmp(section, "fit") == 0) section_fit();
    if (all || strcmp(section, "samples") == 0) section_samples();
    if (all || strcmp(section, "refine") == 0) section_refine();
    printf("checks: %d failures: %d\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
