/* Data-parallel training over MPI with the C ABI's gradient pieces: every rank holds a shard
 * of likelihood-weighted samples (task 2D2: prior draws on [-6, 6]^2 weighted by the
 * two-Gaussian likelihood), computes lwf_model_loss_grad_accumulate over its part of each
 * global minibatch, the parts are summed across ranks, and every rank applies the same
 * lwf_model_adam_step to its own copy of the model. No parameters are ever broadcast: the
 * models start identical (same shape and seed) and stay identical because every rank applies
 * the same summed gradient. At the end rank 0 gathers every rank's saved model bytes, checks
 * they are all the same, and writes the file.
 *
 * The data and the minibatches do not depend on the number of ranks. The N samples form C
 * fixed chunks (sample i belongs to chunk i / (N / C)); rank r holds the contiguous chunks
 * [r C / P, (r + 1) C / P). Step t takes B / C samples from every chunk (cycling through a
 * fixed shuffled order of the chunk), so the global minibatch of B samples is the same for
 * any P <= C. How the per-chunk sums are added up is the choice:
 *
 *   --reduce allreduce  (default) each rank accumulates its chunks into one gradient, then
 *                       MPI_Allreduce(MPI_SUM). One vector of P parameters per rank on the
 *                       wire. Identical models on every rank of a run (the test checks it),
 *                       but the floating-point sum is associated differently for different
 *                       numbers of ranks, so runs with different -np differ in the last bits.
 *   --reduce ordered    every chunk's gradient is kept apart, MPI_Allgatherv collects all C
 *                       of them on every rank, and each rank adds them in chunk order 0..C-1.
 *                       C vectors on the wire instead of one, but the sum is the same
 *                       sequence of additions for any number of ranks: bit-identical models
 *                       for -np 1, 2, 4, ... and for --serial.
 *
 * The weights' normaliser (a sum of exp over all samples) always uses the ordered sum.
 *
 *   mpirun -np 4 ./train_mpi [--reduce ordered] [--steps 1000] [--out trained.lwf]
 *   ./train_mpi --serial [...]   no MPI at all: the same chunks and sums in one process
 *
 * --samples N (16384), --chunks C (16), --batch B (1024, a multiple of C), --steps S (1000),
 * --lr (0.005), --seed (1). Rank 0 prints a RESULT line (read by ffi/tests/mpi.rs). */
#define _POSIX_C_SOURCE 200809L
#include "common_mpi.h"

#include <limits.h>
#include <mpi.h>

/* 2D2's posterior entropy: two well-separated isotropic Gaussians of sd 0.6 with equal
 * weights, ln 2 + 1 + ln(2 pi 0.36). The loss on all samples estimates the cross-entropy
 * H(p, q) = H(p) + KL(p || q), so loss - H_POSTERIOR estimates the KL. */
#define H_POSTERIOR 2.5093729994373097

typedef struct {
    int use_mpi, rank, size;
    MPI_Comm comm;
    int chunks;          /* C */
    int first, count;    /* this rank's chunks: [first, first + count) */
    int *counts, *displs; /* Allgatherv layout, in doubles, for vectors of `width` */
    int width;
} Ranks;

static int chunk_owner_first(int rank, int size, int chunks) {
    return (int)((long long)rank * chunks / size);
}

/* counts/displs for chunk vectors of `width` doubles. */
static void layout(Ranks *g, int width) {
    g->width = width;
    for (int i = 0; i < g->size; i++) {
        int lo = chunk_owner_first(i, g->size, g->chunks);
        int hi = chunk_owner_first(i + 1, g->size, g->chunks);
        g->counts[i] = (hi - lo) * width;
        g->displs[i] = lo * width;
    }
}

/* Sums per-chunk vectors in chunk order: `mine` holds this rank's `count` vectors of `width`
 * doubles; `all` (C x width) receives every chunk's; `out` (width) their sum, 0 + v_0 +
 * v_1 + ... + v_{C-1}, the same additions whatever the number of ranks. */
static void ordered_sum(Ranks *g, const double *mine, int width, double *all, double *out) {
    if (g->use_mpi) {
        if (g->width != width) layout(g, width);
        MPI_Allgatherv(mine, g->count * width, MPI_DOUBLE, all, g->counts, g->displs,
                       MPI_DOUBLE, g->comm);
    } else {
        memcpy(all, mine, (size_t)g->chunks * (size_t)width * sizeof(double));
    }
    for (int v = 0; v < width; v++) out[v] = 0.0;
    for (int c = 0; c < g->chunks; c++)
        for (int v = 0; v < width; v++) out[v] += all[(size_t)c * (size_t)width + (size_t)v];
}

static void allreduce_sum(Ranks *g, double *x, int n) {
    if (g->use_mpi) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, g->comm);
}

static void allreduce_max(Ranks *g, double *x, int n) {
    if (g->use_mpi) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, g->comm);
}

/* Sample i of the data set, whoever holds it: uniform on the prior box, from its index. */
static void draw(uint64_t seed, size_t i, double *x) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)i * 0xD1B54A32D192ED03ull;
    for (int k = 0; k < 2; k++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[k] = -BOX + 2.0 * BOX * (((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0));
    }
}

/* A fixed shuffled order of 0..m-1 for chunk c (Fisher-Yates, SplitMix64 from c). */
static void shuffled(uint64_t seed, int c, size_t m, size_t *order) {
    uint64_t s = seed ^ ((uint64_t)(c + 1) * 0xA0761D6478BD642Full);
    for (size_t i = 0; i < m; i++) order[i] = i;
    for (size_t i = m; i > 1; i--) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        size_t j = (size_t)(z % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* Everything one process needs, freed at the end. */
typedef struct {
    double *theta, *log_lik, *weights; /* this rank's samples: count * m rows */
    size_t *order;                     /* count * m */
    double *rows, *row_w;              /* one chunk's minibatch part */
    double *mine, *all, *sum;          /* per-chunk vectors, all chunks, their sum */
    void *mem;
    uint8_t *bytes, *gathered;
} Buffers;

static void free_buffers(Buffers *b) {
    free(b->theta);
    free(b->log_lik);
    free(b->weights);
    free(b->order);
    free(b->rows);
    free(b->row_w);
    free(b->mine);
    free(b->all);
    free(b->sum);
    free(b->mem);
    free(b->bytes);
    free(b->gathered);
}

/* Slots after the P gradient entries of each chunk vector. */
enum { LOSS = 0, NON_FINITE = 1, FAILED = 2, EXTRA = 3 };

int main(int argc, char **argv) {
    if (lwf_version() != LWFLOW_VERSION) {
        fprintf(stderr, "header and library versions differ\n");
        return 1;
    }
    const size_t n_samples = (size_t)arg_integer(argc, argv, "--samples", 16384);
    const int chunks = (int)arg_integer(argc, argv, "--chunks", 16);
    const size_t batch = (size_t)arg_integer(argc, argv, "--batch", 1024);
    const long long steps = arg_integer(argc, argv, "--steps", 1000);
    const double lr = arg_number(argc, argv, "--lr", 0.005);
    const uint64_t seed = (uint64_t)arg_integer(argc, argv, "--seed", 1);
    const char *reduce = arg_value(argc, argv, "--reduce");
    const char *out_path = arg_value(argc, argv, "--out");
    if (!reduce) reduce = "allreduce";
    if (!out_path) out_path = "train_mpi.lwf";
    const int ordered = strcmp(reduce, "ordered") == 0;
    if (!ordered && strcmp(reduce, "allreduce") != 0) {
        fprintf(stderr, "--reduce: allreduce or ordered, not %s\n", reduce);
        return 2;
    }
    if (chunks < 1 || chunks > 4096 || n_samples % (size_t)chunks != 0 ||
        batch % (size_t)chunks != 0 || batch == 0 || n_samples / (size_t)chunks < 2) {
        fprintf(stderr, "need 1 <= chunks <= 4096 dividing --samples and --batch\n");
        return 2;
    }

    Ranks g = {.use_mpi = !arg_flag(argc, argv, "--serial"), .rank = 0, .size = 1,
               .comm = MPI_COMM_WORLD, .chunks = chunks};
    if (g.use_mpi) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(g.comm, &g.rank);
        MPI_Comm_size(g.comm, &g.size);
    }
    double t0 = wall_seconds();
    g.first = chunk_owner_first(g.rank, g.size, chunks);
    g.count = chunk_owner_first(g.rank + 1, g.size, chunks) - g.first;
    const size_t m = n_samples / (size_t)chunks, b = batch / (size_t)chunks;
    const size_t held = (size_t)g.count * m;

    /* The model: the same shape and seed on every rank give the same parameters. */
    LwfShape shape;
    size_t params = 0, mem_len = 0, bytes_len = 0;
    LwfModel *model = NULL;
    Buffers buf = {0};
    LwfStatus s = lwf_shape_default(2, 32, 4, &shape);
    if (s == LWF_OK) s = lwf_shape_param_count(&shape, &params);
    if (s == LWF_OK) s = lwf_shape_model_size(&shape, &mem_len);
    if (s == LWF_OK) s = lwf_shape_serialized_size(&shape, &bytes_len);
    const int width = (int)params + EXTRA;
    if (s == LWF_OK && params > (size_t)INT_MAX / 4096 - EXTRA) s = LWF_LENGTH_MISMATCH;
    g.counts = malloc((size_t)g.size * sizeof(int));
    g.displs = malloc((size_t)g.size * sizeof(int));
    buf.theta = malloc((held ? held : 1) * 2 * sizeof(double));
    buf.log_lik = malloc((held ? held : 1) * sizeof(double));
    buf.weights = malloc((held ? held : 1) * sizeof(double));
    buf.order = malloc((held ? held : 1) * sizeof(size_t));
    buf.rows = malloc(b * 2 * sizeof(double));
    buf.row_w = malloc(b * sizeof(double));
    buf.mine = malloc(((size_t)g.count + 1) * (size_t)width * sizeof(double));
    buf.all = malloc((size_t)chunks * (size_t)width * sizeof(double));
    buf.sum = malloc((size_t)width * sizeof(double));
    buf.mem = malloc(mem_len);
    buf.bytes = malloc(bytes_len);
    buf.gathered = g.rank == 0 ? malloc((size_t)g.size * bytes_len) : NULL;
    if (s == LWF_OK &&
        (!g.counts || !g.displs || !buf.theta || !buf.log_lik || !buf.weights || !buf.order ||
         !buf.rows || !buf.row_w || !buf.mine || !buf.all || !buf.sum || !buf.mem ||
         !buf.bytes || (g.rank == 0 && !buf.gathered)))
        s = LWF_BUFFER_TOO_SMALL;
    if (s == LWF_OK) s = lwf_model_init(buf.mem, mem_len, &shape, seed, &model);
    const double loc[2] = {0.0, 0.0}, scale[2] = {2.5, 2.5};
    if (s == LWF_OK) s = lwf_model_set_gaussian_base(model, loc, 2, scale, 2);
    double fail = s != LWF_OK;
    allreduce_max(&g, &fail, 1);
    if (fail != 0.0) {
        fprintf(stderr, "rank %d: stopping: setting up failed%s%s\n", g.rank,
                s != LWF_OK ? " here: " : " on another rank",
                s != LWF_OK ? lwf_status_message((int)s) : "");
        free_buffers(&buf);
        free(g.counts);
        free(g.displs);
        if (g.use_mpi) MPI_Finalize();
        return 1;
    }
    layout(&g, width);

    /* This rank's samples and log-likelihoods; weights N exp(l - max) / sum exp(l - max). */
    double max_l = -INFINITY;
    for (size_t i = 0; i < held; i++) {
        draw(seed, (size_t)g.first * m + i, buf.theta + 2 * i);
        buf.log_lik[i] = log_likelihood_2d2(buf.theta + 2 * i);
        max_l = buf.log_lik[i] > max_l ? buf.log_lik[i] : max_l;
    }
    allreduce_max(&g, &max_l, 1);
    for (int c = 0; c < g.count; c++) {
        double sum = 0.0;
        for (size_t i = 0; i < m; i++) sum += exp(buf.log_lik[(size_t)c * m + i] - max_l);
        buf.mine[c] = sum;
        shuffled(seed, g.first + c, m, buf.order + (size_t)c * m);
    }
    double norm = 0.0;
    ordered_sum(&g, buf.mine, 1, buf.all, &norm);
    for (size_t i = 0; i < held; i++)
        buf.weights[i] = (double)n_samples * exp(buf.log_lik[i] - max_l) / norm;

    LwfAdam adam;
    lwf_adam_default(&adam);
    adam.lr = lr;
    double first_loss = NAN, last_loss = NAN;
    long long skipped = 0;
    int failed_here = 0;
    /* Steps 0..steps-1 train; step -1 and `steps` evaluate the loss on all samples. */
    for (long long t = -1; t <= steps; t++) {
        const int full = t < 0 || t == steps;
        const size_t rows = full ? m : b;
        const double scale_t = 1.0 / (double)(full ? n_samples : batch);
        if (!ordered) memset(buf.mine, 0, (size_t)width * sizeof(double));
        for (int c = 0; c < g.count; c++) {
            double *v = buf.mine + (ordered ? (size_t)c * (size_t)width : 0);
            if (ordered) memset(v, 0, (size_t)width * sizeof(double));
            const double *rows_theta = buf.theta + (size_t)c * m * 2;
            const double *rows_w = buf.weights + (size_t)c * m;
            if (!full) {
                /* This step's b samples of chunk c, in the chunk's fixed shuffled order. */
                for (size_t j = 0; j < b; j++) {
                    size_t k = buf.order[(size_t)c * m + ((size_t)t * b + j) % m];
                    buf.rows[2 * j] = rows_theta[2 * k];
                    buf.rows[2 * j + 1] = rows_theta[2 * k + 1];
                    buf.row_w[j] = rows_w[k];
                }
                rows_theta = buf.rows;
                rows_w = buf.row_w;
            }
            LwfStatus st = lwf_model_loss_grad_accumulate(model, rows_theta, rows * 2, rows_w,
                                                          rows, scale_t, v, params,
                                                          v + params + LOSS);
            if (st == LWF_NON_FINITE) {
                v[params + NON_FINITE] += 1.0;
            } else if (st != LWF_OK) {
                v[params + FAILED] += 1.0;
                if (!failed_here)
                    fprintf(stderr, "rank %d: lwf_model_loss_grad_accumulate failed: %s\n",
                            g.rank, lwf_status_message((int)st));
                failed_here = 1;
            }
        }
        if (ordered) {
            ordered_sum(&g, buf.mine, width, buf.all, buf.sum);
        } else {
            memcpy(buf.sum, buf.mine, (size_t)width * sizeof(double));
            allreduce_sum(&g, buf.sum, width);
        }
        if (buf.sum[params + FAILED] != 0.0) {
            fprintf(stderr, "rank %d: stopping: a rank's gradient failed at step %lld\n",
                    g.rank, t);
            free_buffers(&buf);
            free(g.counts);
            free(g.displs);
            if (g.use_mpi) MPI_Finalize();
            return 1;
        }
        if (t < 0) first_loss = buf.sum[params + LOSS];
        if (t == steps) last_loss = buf.sum[params + LOSS];
        if (full) continue;
        /* The same summed gradient on every rank: the same step, or the same skip. */
        if (buf.sum[params + NON_FINITE] != 0.0 ||
            lwf_model_adam_step(model, &adam, buf.sum, params) != LWF_OK)
            skipped++;
    }

    /* Every rank's model bytes, gathered on rank 0 and compared. */
    size_t written = 0;
    s = lwf_model_save(model, buf.bytes, bytes_len, &written);
    if (s != LWF_OK || written != bytes_len) memset(buf.bytes, 0, bytes_len);
    int identical = 1, code = 0;
    if (g.use_mpi)
        MPI_Gather(buf.bytes, (int)bytes_len, MPI_BYTE, buf.gathered, (int)bytes_len, MPI_BYTE,
                   0, g.comm);
    else
        memcpy(buf.gathered, buf.bytes, bytes_len);
    if (g.rank == 0) {
        for (int r = 1; r < g.size; r++)
            if (memcmp(buf.gathered, buf.gathered + (size_t)r * bytes_len, bytes_len) != 0) {
                fprintf(stderr, "rank %d's model differs from rank 0's\n", r);
                identical = 0;
            }
        if (s != LWF_OK) {
            fprintf(stderr, "lwf_model_save failed: %s\n", lwf_status_message((int)s));
            code = 1;
        } else if (write_file(out_path, buf.bytes, bytes_len) != 0) {
            fprintf(stderr, "cannot write %s\n", out_path);
            code = 1;
        }
        if (!identical) code = 1;
        printf("RESULT mode=%s reduce=%s ranks=%d chunks=%d steps=%lld skipped=%lld "
               "loss0=%.17g loss=%.17g kl=%.6f identical=%d bytes=%zu fnv=%016llx "
               "seconds=%.3f\n",
               g.use_mpi ? "mpi" : "serial", reduce, g.size, chunks, steps, skipped, first_loss,
               last_loss, last_loss - H_POSTERIOR, identical, bytes_len,
               (unsigned long long)fnv1a64(buf.bytes, bytes_len), wall_seconds() - t0);
    }
    free_buffers(&buf);
    free(g.counts);
    free(g.displs);
    if (g.use_mpi) MPI_Finalize();
    return code;
}
