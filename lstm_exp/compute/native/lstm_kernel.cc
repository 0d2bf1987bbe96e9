// One LSTM layer's whole time loop as a TensorFlow CPU op (keras gate order i, f, g, o).
//
// Why this shape:
// * Threads split the batch rows, not the units: a row's recurrence reads only its own h, so the
//   threads never meet inside the op. An earlier prototype that split the units needed a barrier
//   per step and timed bimodally on shared cores; this way a preempted thread delays only its own
//   rows.
// * The input projection (x W + b) is computed inside the op, a chunk of steps at a time, by each
//   thread for its own rows, into a buffer sized to stay in the core's L2 cache. Done by one large
//   TensorFlow MatMul before the op instead, the (B, T, 4H) pre-activations went to memory and back
//   (16 MiB per layer at B=32, T=128, H=256), and a separate bias pass read and wrote them again.
// * Register-blocked products: a tile of ROWS rows x 4 gates x W units lives in vector registers
//   for the whole k loop. In the recurrence the tile starts from the projected input and the cell
//   is applied in its epilogue, so the pre-activations z never go to memory.
// * W and U arrive packed as (Hp/W, K, 4, W): the 4 gate slices of one W-unit block are contiguous
//   per k, so a tile streams one panel sequentially.
// * GCC/Clang vector extensions at the native width: the same source compiles to AVX-512,
//   AVX2/FMA or SSE, chosen at build time by the widest flag set that compiles (build.py).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

// LSTM_ISA names the build (the `lstm_exp.engine` tag says `native (avx512)` etc.).
#if defined(__AVX512F__)
#define LSTM_W 16     // floats per vector
#define LSTM_ROWS 4   // 16 accumulators of 32 registers (6 rows, 24 accumulators, measured no faster)
#define LSTM_ISA "avx512"
#elif defined(__AVX__)
#define LSTM_W 8
#define LSTM_ROWS 3   // 12 accumulators of 16 registers; weights read as memory operands
#if defined(__AVX2__)
#define LSTM_ISA "avx2"
#else
#define LSTM_ISA "avx"
#endif
#else
#define LSTM_W 4      // 16-byte vectors: SSE on x86-64, NEON on Arm
#define LSTM_ROWS 3
#define LSTM_ISA "portable"
#endif

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

constexpr int W = LSTM_W;
constexpr int ROWS = LSTM_ROWS;
// The projection buffer of one thread: its rows x a chunk of steps x 4Hp floats, at most half the
// L2 of recent x86 cores (1-2 MiB), so U's panels (streamed every step) keep the rest. At the
// reference size 256 KiB and 1 MiB measured the same as this.
constexpr int64_t CHUNK_BYTES = 512 * 1024;
typedef float vf __attribute__((vector_size(4 * W)));
typedef int vi __attribute__((vector_size(4 * W)));
typedef float vfu __attribute__((vector_size(4 * W), aligned(4)));  // unaligned access

inline vf splat(float s) { return vf{} + s; }
inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

inline void store_n(float* p, vf v, int n) {
  if (n == W) return store(p, v);
  float tmp[W];
  store(tmp, v);
  std::memcpy(p, tmp, sizeof(float) * n);
}

// exp(x) to ~1 ulp (Cephes expf): x = n ln2 + r, |r| <= ln2/2, 2^n built in the exponent bits.
inline vf vexp(vf x) {
  const vf hi = splat(88.0f), lo = splat(-87.0f);
  x = x < hi ? x : hi;
  x = x > lo ? x : lo;
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vf t = x * 1.44269504088896341f + magic;
  vi n = (vi)t - (vi)magic;
  vf nf = t - magic;
  vf r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return p * (vf)((n + 127) << 23);
}

inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }
inline vf vtanh(vf x) { return 1.0f - 2.0f / (1.0f + vexp(x + x)); }

struct Layer {
  int64_t batch, steps, features, units, padded_units, chunk;
  const float* x;       // (B, T, F)
  const float* kernel;  // W packed (Hp/W, F, 4, W)
  const float* bias;    // (Hp/W, 4, W)
  const float* packed;  // U packed (Hp/W, H, 4, W)
  const int32_t* lengths;
  float* seq;           // (B, T, H)
  float* gates[4];      // (B, T, H) each, or null
  float* h[2];          // (B, Hp) double buffer: step t reads h[t % 2], writes the other
  float* c;             // (B, Hp), updated in place
};

// The accumulators of one tile: R rows x 4 gates x W units, sum over k of a[r][k] * panel[k].
// `a` rows are `stride` floats apart. The weights are loaded once per k and kept in registers:
// folded into each FMA as memory operands they would be loaded R times, and the loads, not the
// FMAs, would bound the loop.
template <int R>
inline void accumulate(vf (&acc)[R][4], const float* a, int64_t stride, const float* panel,
                       int64_t depth) {
  for (int64_t k = 0; k < depth; ++k) {
    const float* w = panel + k * 4 * W;
    vf w0 = load(w), w1 = load(w + W), w2 = load(w + 2 * W), w3 = load(w + 3 * W);
#if defined(__AVX512F__) && defined(__GNUC__)
    asm("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
#endif
    for (int r = 0; r < R; ++r) {
      const float ak = a[r * stride + k];
      acc[r][0] += ak * w0;
      acc[r][1] += ak * w1;
      acc[r][2] += ak * w2;
      acc[r][3] += ak * w3;
    }
  }
}

// A thread's rows [first, last) and its projection buffer (chunk, rows, Hp/W, 4, W).
struct Rows {
  int64_t first, last;
  float* xp;
  float* gather;  // ROWS x F: a tile's x rows copied together when they span two steps
};

// xp for steps [t0, t0 + n) of the thread's rows: R consecutive (step, row) pairs per tile.
template <int R>
void project_tile(const Layer& L, const Rows& rows, int64_t t0, int64_t pair, int64_t jb) {
  const int64_t F = L.features, blocks = L.padded_units / W, nrows = rows.last - rows.first;
  const float* bias = L.bias + jb * 4 * W;
  vf acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = load(bias + g * W);
  // Consecutive pairs are consecutive rows of one step (x rows T * F apart) unless the tile
  // crosses into the next step; that tile gathers its rows one by one.
  const int64_t s = pair / nrows, r0 = pair % nrows;
  const float* panel = L.kernel + jb * F * 4 * W;
  if (r0 + R <= nrows) {
    accumulate<R>(acc, L.x + ((rows.first + r0) * L.steps + t0 + s) * F, L.steps * F, panel, F);
  } else {
    for (int r = 0; r < R; ++r) {
      const int64_t p = pair + r, b = rows.first + p % nrows, t = t0 + p / nrows;
      std::memcpy(rows.gather + r * F, L.x + (b * L.steps + t) * F, sizeof(float) * F);
    }
    accumulate<R>(acc, rows.gather, F, panel, F);
  }
  for (int r = 0; r < R; ++r) {
    float* out = rows.xp + ((pair + r) * blocks + jb) * 4 * W;
    for (int g = 0; g < 4; ++g) store(out + g * W, acc[r][g]);
  }
}

template <int R>
void project_rows(const Layer& L, const Rows& rows, int64_t t0, int64_t pair, int64_t jb, int n) {
  if constexpr (R > 1) {
    if (n < R) return project_rows<R - 1>(L, rows, t0, pair, jb, n);
  }
  project_tile<R>(L, rows, t0, pair, jb);
}

// Rows [r0, r0 + R) x units [j0, j0 + W) at step t (step s of the chunk): the recurrent product
// on top of the projected input, then the cell in registers.
template <int R>
void step_tile(const Layer& L, const Rows& rows, int64_t t, int64_t s, int64_t r0, int64_t jb) {
  const int64_t H = L.units, Hp = L.padded_units, j0 = jb * W, blocks = Hp / W;
  const int64_t nrows = rows.last - rows.first;
  const int n = static_cast<int>(std::min<int64_t>(W, H - j0));
  const float* hin = L.h[t & 1] + r0 * Hp;
  float* hout = L.h[(t + 1) & 1];
  vf acc[R][4];
  for (int r = 0; r < R; ++r) {
    const float* xp = rows.xp + ((s * nrows + r0 - rows.first + r) * blocks + jb) * 4 * W;
    for (int g = 0; g < 4; ++g) acc[r][g] = load(xp + g * W);
  }
  // The outputs are one cache line per row (and gate), strided far apart through (B, T, H):
  // requested here, they arrive while the product runs instead of stalling the epilogue.
  for (int r = 0; r < R; ++r) {
    const int64_t at = ((r0 + r) * L.steps + t) * H + j0;
    for (int g = 0; g < 4; ++g)
      if (L.gates[g]) __builtin_prefetch(L.gates[g] + at, 1, 3);
    __builtin_prefetch(L.seq + at, 1, 3);
  }
  accumulate<R>(acc, hin, Hp, L.packed + jb * H * 4 * W, H);
  for (int r = 0; r < R; ++r) {
    const int64_t b = r0 + r, at = (b * L.steps + t) * H + j0;
    float* c = L.c + b * Hp + j0;
    if (t >= L.lengths[b]) {  // past the row's length: state carried, outputs zero
      store(hout + b * Hp + j0, load(hin + r * Hp + j0));
      store_n(L.seq + at, vf{}, n);
      for (int g = 0; g < 4; ++g)
        if (L.gates[g]) store_n(L.gates[g] + at, vf{}, n);
      continue;
    }
    const vf i = vsigmoid(acc[r][0]);
    const vf f = vsigmoid(acc[r][1]);
    const vf g = vtanh(acc[r][2]);
    const vf o = vsigmoid(acc[r][3]);
    const vf cn = f * load(c) + i * g;
    const vf hn = o * vtanh(cn);
    store(c, cn);
    store(hout + b * Hp + j0, hn);
    store_n(L.seq + at, hn, n);
    const vf acts[4] = {i, f, g, o};
    for (int q = 0; q < 4; ++q)
      if (L.gates[q]) store_n(L.gates[q] + at, acts[q], n);
  }
}

template <int R>
void step_rows(const Layer& L, const Rows& rows, int64_t t, int64_t s, int64_t r0, int64_t jb,
               int n) {
  if constexpr (R > 1) {
    if (n < R) return step_rows<R - 1>(L, rows, t, s, r0, jb, n);
  }
  step_tile<R>(L, rows, t, s, r0, jb);
}

// The whole layer for rows [first, last): independent of every other row.
void run_rows(const Layer& L, int64_t first, int64_t last) {
  const int64_t blocks = L.padded_units / W, nrows = last - first;
  const int64_t chunk = std::min<int64_t>(L.steps, L.chunk);
  std::vector<float> buffer(chunk * nrows * blocks * 4 * W + ROWS * L.features);
  const Rows rows{first, last, buffer.data(), buffer.data() + chunk * nrows * blocks * 4 * W};
  for (int64_t t0 = 0; t0 < L.steps; t0 += chunk) {
    const int64_t n = std::min<int64_t>(chunk, L.steps - t0);
    // Unit blocks outside: one W (or U) panel serves every row (and step) before the next.
    for (int64_t jb = 0; jb < blocks; ++jb)
      for (int64_t pair = 0; pair < n * nrows; pair += ROWS)
        project_rows<ROWS>(L, rows, t0, pair, jb,
                           static_cast<int>(std::min<int64_t>(ROWS, n * nrows - pair)));
    for (int64_t s = 0; s < n; ++s)
      for (int64_t jb = 0; jb < blocks; ++jb)
        for (int64_t r0 = first; r0 < last; r0 += ROWS)
          step_rows<ROWS>(L, rows, t0 + s, s, r0, jb,
                          static_cast<int>(std::min<int64_t>(ROWS, last - r0)));
  }
}

// Runs `chunks` even row ranges of `batch` rows on the caller and TensorFlow's intra-op pool,
// `rows(first, last)` for each. Chunks are claimed, not assigned: the caller runs every chunk no
// pool thread has started, so it never waits on a thread that may not come (a busy pool, or a
// caller that is itself the pool's only thread) and only waits for chunks already running. The
// state is shared because a pool task may start after this returns; it then finds nothing left.
// A row's results never depend on which thread ran it, so the outputs are the same for any count.
void run_parallel(int64_t batch, int64_t chunks, tensorflow::thread::ThreadPool* pool,
                  std::function<void(int64_t, int64_t)> rows) {
  struct Shared {
    std::function<void(int64_t, int64_t)> rows;
    int64_t batch, chunks;
    std::atomic<int64_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  shared->rows = std::move(rows);
  shared->batch = batch;
  shared->chunks = chunks;
  auto work = [shared] {
    const int64_t n = shared->chunks;
    for (int64_t i; (i = shared->next.fetch_add(1)) < n;) {
      shared->rows(shared->batch * i / n, shared->batch * (i + 1) / n);
      if (shared->done.fetch_add(1) + 1 == n) {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->finished.notify_all();
      }
    }
  };
  for (int64_t i = 1; i < chunks; ++i) pool->Schedule(work);
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->finished.wait(lock, [&] { return shared->done.load() == chunks; });
}

// ---- The gate-column split --------------------------------------------------------------------
// The other way to share one layer: the threads split the unit blocks (the columns of U) of every
// row, one barrier per step (h_t must be whole before any block computes step t + 1). Thread p owns
// a contiguous range of blocks, so it keeps streaming the same slice of U (1/P of it, which can
// stay in its L2 where the row split streams all of U per thread); and the work of a step comes in
// one piece per block, so it balances finely: a block is claimed, not assigned. Its owner claims
// its blocks in order; a thread done with its own takes the others' unclaimed blocks from the far
// end, so a descheduled thread (or a pool thread not started yet) delays the step by one block at
// most, and the op never waits for a thread that does not come. Which split is faster depends on
// the CPU, its load and the shape; the caller chooses by measuring (split_choice.py).
// The projection of a chunk of steps is part of each block's first step of the chunk, into one
// buffer the blocks share, so whoever claims a block's step has its input ready. Every value comes
// from the same tile code as in the row split: the outputs are bit-identical to it.
struct Columns {
  Layer L;
  int64_t threads, blocks;
  std::vector<float> xp;                         // (chunk, B, Hp/W, 4, W), shared
  std::unique_ptr<std::atomic<int64_t>[]> next;  // per unit block: the next step to claim
  std::atomic<int64_t> done{0};                  // block-steps finished, all steps together
  std::atomic<int64_t> joined{0};                // participants so far: the caller is 0
  std::atomic<int32_t> steps{0};                 // steps finished: the futex sleepers wait on
  std::atomic<int32_t> sleepers{0};
};
static_assert(sizeof(std::atomic<int32_t>) == 4, "a futex word is 32 bits");

// Unit block jb at step t: the chunk's projection first when t opens a chunk, then the recurrence.
void run_block(const Columns& S, float* gather, int64_t jb, int64_t t) {
  const Layer& L = S.L;
  const int64_t t0 = t / L.chunk * L.chunk, s = t - t0, B = L.batch;
  const Rows rows{0, B, const_cast<float*>(S.xp.data()), gather};
  if (s == 0) {
    const int64_t n = std::min<int64_t>(L.chunk, L.steps - t0);
    for (int64_t pair = 0; pair < n * B; pair += ROWS)
      project_rows<ROWS>(L, rows, t0, pair, jb, static_cast<int>(std::min<int64_t>(ROWS, n * B - pair)));
  }
  for (int64_t r0 = 0; r0 < B; r0 += ROWS)
    step_rows<ROWS>(L, rows, t, s, r0, jb, static_cast<int>(std::min<int64_t>(ROWS, B - r0)));
}

// Waits until `done` reaches `target`: a short spin (a step's last block is usually microseconds
// away), then asleep on the futex of `steps`, which the thread that finishes a step bumps. Spinning
// longer burnt a core per waiting thread on a loaded machine (median CPU per pass +25%).
void wait_for(Columns& S, int64_t target) {
  for (int spin = 0; spin < 256; ++spin) {
    if (S.done.load(std::memory_order_acquire) >= target) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  while (true) {
    const int32_t seen = S.steps.load(std::memory_order_acquire);
    if (S.done.load(std::memory_order_acquire) >= target) return;
    S.sleepers.fetch_add(1, std::memory_order_acq_rel);
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&S.steps), FUTEX_WAIT_PRIVATE, seen, nullptr,
            nullptr, 0);
#else
    std::this_thread::yield();
#endif
    S.sleepers.fetch_sub(1, std::memory_order_acq_rel);
  }
}

// After one more block-step: the thread that completes a step wakes the sleepers.
void finish_block(Columns& S) {
  const int64_t done = S.done.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (done % S.blocks != 0) return;
  S.steps.fetch_add(1, std::memory_order_acq_rel);
  if (S.sleepers.load(std::memory_order_acquire) > 0) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&S.steps), FUTEX_WAKE_PRIVATE, INT32_MAX,
            nullptr, nullptr, 0);
#endif
  }
}

// Runs block jb's step t unless another thread has claimed it.
void try_block(Columns& S, float* gather, int64_t jb, int64_t t) {
  int64_t expected = t;
  if (S.next[jb].load(std::memory_order_relaxed) != t ||
      !S.next[jb].compare_exchange_strong(expected, t + 1, std::memory_order_acq_rel))
    return;
  run_block(S, gather, jb, t);
  finish_block(S);
}

void column_worker(Columns& S) {
  const int64_t p = S.joined.fetch_add(1), P = S.threads, J = S.blocks;
  const int64_t own0 = p < P ? J * p / P : 0, own1 = p < P ? J * (p + 1) / P : 0;
  std::vector<float> gather(ROWS * S.L.features);
  for (int64_t t = 0; t < S.L.steps; ++t) {
    wait_for(S, t * J);  // h_t is whole
    for (int64_t jb = own0; jb < own1; ++jb) try_block(S, gather.data(), jb, t);
    for (int64_t jb = J - 1; jb >= 0; --jb) try_block(S, gather.data(), jb, t);  // the others' left
  }
}

// The whole layer split by unit blocks over `threads` threads, on the caller and the pool.
void run_columns(const Layer& layer, int64_t threads, tensorflow::thread::ThreadPool* pool) {
  auto S = std::make_shared<Columns>();
  S->L = layer;
  S->blocks = layer.padded_units / W;
  S->threads = std::max<int64_t>(1, std::min<int64_t>(threads, S->blocks));
  S->xp.resize(std::min(layer.steps, layer.chunk) * layer.batch * layer.padded_units * 4);
  S->next.reset(new std::atomic<int64_t>[S->blocks]);
  for (int64_t jb = 0; jb < S->blocks; ++jb) S->next[jb].store(0);
  // A pool task that starts after the op has returned finds every block claimed and the barrier
  // passed, so it touches only S, which it keeps alive.
  for (int64_t i = 1; i < S->threads; ++i) pool->Schedule([S] { column_worker(*S); });
  column_worker(*S);
  wait_for(*S, layer.steps * S->blocks);
}

// Threads for `batch` rows: TensorFlow's intra-op pool size, capped by the batch and `max_threads`.
int64_t thread_count(OpKernelContext* ctx, int64_t batch, int max_threads) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  int64_t threads = std::min<int64_t>(batch, std::max(1, pool->NumThreads()));
  if (max_threads > 0) threads = std::min<int64_t>(threads, max_threads);
  return std::max<int64_t>(1, threads);
}

class NativeLstmLayerOp : public OpKernel {
 public:
  explicit NativeLstmLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("return_gates", &return_gates_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("chunk_steps", &chunk_steps_));
    std::string split;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("split", &split));
    columns_ = split == "columns";
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& kernel = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    const Tensor& packed = ctx->input(3);
    const Tensor& h0 = ctx->input(4);
    const Tensor& c0 = ctx->input(5);
    const Tensor& lengths = ctx->input(6);
    OP_REQUIRES(ctx, x.dims() == 3 && h0.dims() == 2 && c0.shape() == h0.shape(),
                tensorflow::errors::InvalidArgument("expected x (B, T, F), h0 and c0 (B, H)"));
    const int64_t B = x.dim_size(0), T = x.dim_size(1), F = x.dim_size(2), H = h0.dim_size(1);
    const int64_t Hp = (H + W - 1) / W * W;
    OP_REQUIRES(ctx, h0.dim_size(0) == B,
                tensorflow::errors::InvalidArgument("h0 must be (B, H) for x (B, T, F)"));
    OP_REQUIRES(ctx, kernel.shape() == TensorShape({Hp / W, F, 4, W}),
                tensorflow::errors::InvalidArgument("packed W must be (Hp/W, F, 4, W) with W = ",
                                                    W, "; got ", kernel.shape().DebugString()));
    OP_REQUIRES(ctx, bias.shape() == TensorShape({Hp / W, 4, W}),
                tensorflow::errors::InvalidArgument("packed bias must be (Hp/W, 4, W)"));
    OP_REQUIRES(ctx, packed.shape() == TensorShape({Hp / W, H, 4, W}),
                tensorflow::errors::InvalidArgument("packed U must be (Hp/W, H, 4, W) with W = ",
                                                    W, "; got ", packed.shape().DebugString()));
    OP_REQUIRES(ctx, lengths.shape() == TensorShape({B}),
                tensorflow::errors::InvalidArgument("lengths must be (B,)"));

    Tensor *seq, *h_out, *c_out, *gates[4];
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, H}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, H}), &c_out));
    const TensorShape gate_shape = return_gates_ ? TensorShape({B, T, H}) : TensorShape({0, 0, 0});
    for (int g = 0; g < 4; ++g)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(3 + g, gate_shape, &gates[g]));

    const int64_t threads = T > 0 && B > 0 ? thread_count(ctx, B, max_threads_) : 1;
    // The bytes of projection one thread holds per step: its rows, or every row of its slice.
    const int64_t step_bytes = columns_ ? std::max<int64_t>(1, B * 4 * Hp * 4 / threads)
                                        : (B + threads - 1) / threads * 4 * Hp * 4;
    const int64_t chunk = chunk_steps_ > 0
        ? chunk_steps_ : std::max<int64_t>(1, CHUNK_BYTES / step_bytes);

    // Padded units start (and stay) zero; they are never copied out.
    // Aligned to a cache line: in the column split two threads write the halves of one h row.
    std::vector<float> buffer(3 * B * Hp + 16, 0.0f);
    float* state = buffer.data() + (16 - reinterpret_cast<uintptr_t>(buffer.data()) / 4 % 16) % 16;
    Layer L{B, T, F, H, Hp, chunk,
            x.flat<float>().data(), kernel.flat<float>().data(), bias.flat<float>().data(),
            packed.flat<float>().data(), lengths.flat<int32_t>().data(),
            seq->flat<float>().data(), {},
            {state, state + B * Hp}, state + 2 * B * Hp};
    for (int g = 0; g < 4; ++g) L.gates[g] = return_gates_ ? gates[g]->flat<float>().data() : nullptr;
    const float* h0p = h0.flat<float>().data();
    const float* c0p = c0.flat<float>().data();
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(L.h[0] + b * Hp, h0p + b * H, sizeof(float) * H);
      std::memcpy(L.c + b * Hp, c0p + b * H, sizeof(float) * H);
    }

    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    if (T > 0 && B > 0 && columns_) {
      run_columns(L, threads, pool);
    } else if (T > 0 && B > 0) {
      // One row range per thread: finer ranges (8 or 12 rows) measured 10-15% more CPU per pass,
      // as each re-streams U for fewer rows, and no faster under outside load.
      run_parallel(B, threads, pool, [L](int64_t first, int64_t last) { run_rows(L, first, last); });
    }

    const float* h_final = L.h[T & 1];
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(h_out->flat<float>().data() + b * H, h_final + b * Hp, sizeof(float) * H);
      std::memcpy(c_out->flat<float>().data() + b * H, L.c + b * Hp, sizeof(float) * H);
    }
  }

 private:
  bool return_gates_;
  int max_threads_;
  int chunk_steps_;
  bool columns_;
};

// ---- Backward through time -------------------------------------------------------------------
// The gradient of one layer's whole time loop, given the gates the forward op returned. Per row,
// backwards in time: the cell's derivative gives the pre-activation gradients dz_t (4H), then
// dh_{t-1} = dz_t R^T, one register-tiled product per step like the forward's. Everything that
// does not recur (dx = dz W^T, dW = x^T dz, dR = h_prev^T dz, db = sum dz) is left to batched
// products over all steps after the op (engine.py), where TensorFlow's MatMul runs them at full
// width. The cell states are recomputed from the gates (c_t = f c_{t-1} + i g, elementwise) rather
// than kept by the forward, which keeps the forward op's outputs unchanged.

inline vf load_n(const float* p, int n) {
  if (n == W) return load(p);
  float tmp[W] = {};
  std::memcpy(tmp, p, sizeof(float) * n);
  return load(tmp);
}

struct Grad {
  int64_t batch, steps, units, padded_units, out_units;  // H, Hp (multiple of W), Hq (of 4W)
  const float* gates[4];  // (B, T, H) each: i, f, g, o after their activations
  const float* c0;        // (B, H)
  const float* packed_t;  // R^T packed (Hq/4W, 4Hp, 4W)
  const int32_t* lengths;
  const float* d_seq;     // (B, T, H)
  const float* d_h;       // (B, H): gradient of the final h
  const float* d_c;       // (B, H)
  float* d_z;             // (B, T, 4H): pre-activation gradients, keras gate order
  float* d_h0;            // (B, H)
  float* d_c0;            // (B, H)
};

// dh_{t-1} for rows [r0, r0 + R) of the thread (local index), units [jb 4W, (jb + 1) 4W).
template <int R>
void back_tile(const Grad& G, const float* dz, float* dh, int64_t first, int64_t r0, int64_t jb,
               int64_t t) {
  const int64_t Hp = G.padded_units, Hq = G.out_units, depth = 4 * Hp;
  vf acc[R][4] = {};
  accumulate<R>(acc, dz + r0 * depth, depth, G.packed_t + jb * depth * 4 * W, depth);
  for (int r = 0; r < R; ++r) {
    if (t >= G.lengths[first + r0 + r]) continue;  // past the row's length: dh carried unchanged
    float* out = dh + (r0 + r) * Hq + jb * 4 * W;
    for (int g = 0; g < 4; ++g) store(out + g * W, acc[r][g]);
  }
}

template <int R>
void back_rows(const Grad& G, const float* dz, float* dh, int64_t first, int64_t r0, int64_t jb,
               int64_t t, int n) {
  if constexpr (R > 1) {
    if (n < R) return back_rows<R - 1>(G, dz, dh, first, r0, jb, t, n);
  }
  back_tile<R>(G, dz, dh, first, r0, jb, t);
}

void backward_rows(const Grad& G, int64_t first, int64_t last) {
  const int64_t T = G.steps, H = G.units, Hp = G.padded_units, Hq = G.out_units;
  const int64_t n = last - first;
  std::vector<float> cseq(n * (T + 1) * Hp, 0.0f);  // c_{t-1} at t, c_t at t + 1, per local row
  std::vector<float> dh(n * Hq, 0.0f), dc(n * Hp, 0.0f), dz(n * 4 * Hp, 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t b = first + r;
    float* c = cseq.data() + r * (T + 1) * Hp;
    std::memcpy(c, G.c0 + b * H, sizeof(float) * H);
    for (int64_t t = 0; t < T; ++t) {
      float* next = c + (t + 1) * Hp;
      const float* prev = c + t * Hp;
      if (t >= G.lengths[b]) {
        std::memcpy(next, prev, sizeof(float) * Hp);
        continue;
      }
      const int64_t at = (b * T + t) * H;
      for (int64_t m = 0; m < H; ++m)
        next[m] = G.gates[1][at + m] * prev[m] + G.gates[0][at + m] * G.gates[2][at + m];
    }
    std::memcpy(dh.data() + r * Hq, G.d_h + b * H, sizeof(float) * H);
    std::memcpy(dc.data() + r * Hp, G.d_c + b * H, sizeof(float) * H);
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t b = first + r, at = (b * T + t) * H;
      float* dzr = dz.data() + r * 4 * Hp;
      float* out = G.d_z + (b * T + t) * 4 * H;
      if (t >= G.lengths[b]) {  // outputs were constant zeros: no gradient flows into this step
        std::memset(dzr, 0, sizeof(float) * 4 * Hp);
        std::memset(out, 0, sizeof(float) * 4 * H);
        continue;
      }
      const float* c = cseq.data() + (r * (T + 1) + t) * Hp;
      for (int64_t m = 0; m < H; m += W) {
        const int k = static_cast<int>(std::min<int64_t>(W, H - m));
        const vf i = load_n(G.gates[0] + at + m, k), f = load_n(G.gates[1] + at + m, k);
        const vf g = load_n(G.gates[2] + at + m, k), o = load_n(G.gates[3] + at + m, k);
        const vf tc = vtanh(load(c + Hp + m));
        const vf dht = load(dh.data() + r * Hq + m) + load_n(G.d_seq + at + m, k);
        const vf dct = load(dc.data() + r * Hp + m) + dht * o * (1.0f - tc * tc);
        store(dc.data() + r * Hp + m, dct * f);
        const vf z[4] = {dct * g * i * (1.0f - i), dct * load(c + m) * f * (1.0f - f),
                         dct * i * (1.0f - g * g), dht * tc * o * (1.0f - o)};
        for (int q = 0; q < 4; ++q) {
          store_n(dzr + q * Hp + m, z[q], k);  // padded units stay zero
          store_n(out + q * H + m, z[q], k);
        }
      }
    }
    for (int64_t jb = 0; jb < Hq / (4 * W); ++jb)
      for (int64_t r0 = 0; r0 < n; r0 += ROWS)
        back_rows<ROWS>(G, dz.data(), dh.data(), first, r0, jb, t,
                        static_cast<int>(std::min<int64_t>(ROWS, n - r0)));
  }
  for (int64_t r = 0; r < n; ++r) {
    std::memcpy(G.d_h0 + (first + r) * H, dh.data() + r * Hq, sizeof(float) * H);
    std::memcpy(G.d_c0 + (first + r) * H, dc.data() + r * Hp, sizeof(float) * H);
  }
}

class NativeLstmLayerGradOp : public OpKernel {
 public:
  explicit NativeLstmLayerGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gate_i = ctx->input(0);
    const Tensor& c0 = ctx->input(4);
    const Tensor& packed_t = ctx->input(5);
    const Tensor& lengths = ctx->input(6);
    const Tensor& d_seq = ctx->input(7);
    const Tensor& d_h = ctx->input(8);
    const Tensor& d_c = ctx->input(9);
    OP_REQUIRES(ctx, gate_i.dims() == 3 && c0.dims() == 2,
                tensorflow::errors::InvalidArgument("expected gates (B, T, H) and c0 (B, H)"));
    const int64_t B = gate_i.dim_size(0), T = gate_i.dim_size(1), H = gate_i.dim_size(2);
    const int64_t Hp = (H + W - 1) / W * W, Hq = (H + 4 * W - 1) / (4 * W) * (4 * W);
    for (int q = 1; q < 4; ++q)
      OP_REQUIRES(ctx, ctx->input(q).shape() == gate_i.shape(),
                  tensorflow::errors::InvalidArgument("the four gates must have one shape"));
    OP_REQUIRES(ctx, d_seq.shape() == gate_i.shape() && c0.shape() == TensorShape({B, H}) &&
                     d_h.shape() == c0.shape() && d_c.shape() == c0.shape(),
                tensorflow::errors::InvalidArgument("d_sequence (B, T, H), c0, d_h, d_c (B, H)"));
    OP_REQUIRES(ctx, packed_t.shape() == TensorShape({Hq / (4 * W), 4 * Hp, 4 * W}),
                tensorflow::errors::InvalidArgument("packed R^T must be (Hq/4W, 4Hp, 4W) with W = ",
                                                    W, "; got ", packed_t.shape().DebugString()));
    OP_REQUIRES(ctx, lengths.shape() == TensorShape({B}),
                tensorflow::errors::InvalidArgument("lengths must be (B,)"));
    Tensor *d_z, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, 4 * H}), &d_z));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, H}), &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, H}), &d_c0));
    if (B == 0) return;
    Grad G{B, T, H, Hp, Hq, {}, c0.flat<float>().data(), packed_t.flat<float>().data(),
           lengths.flat<int32_t>().data(), d_seq.flat<float>().data(), d_h.flat<float>().data(),
           d_c.flat<float>().data(), d_z->flat<float>().data(), d_h0->flat<float>().data(),
           d_c0->flat<float>().data()};
    for (int q = 0; q < 4; ++q) G.gates[q] = ctx->input(q).flat<float>().data();
    run_parallel(B, thread_count(ctx, B, max_threads_),
                 ctx->device()->tensorflow_cpu_worker_threads()->workers,
                 [G](int64_t first, int64_t last) { backward_rows(G, first, last); });
  }

 private:
  int max_threads_;
};

}  // namespace

REGISTER_OP("LstmExpNativeLayer")
    .Input("x: float")
    .Input("packed_kernel: float")
    .Input("packed_bias: float")
    .Input("packed_recurrent_kernel: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("lengths: int32")
    .Attr("return_gates: bool = true")
    .Attr("max_threads: int = 0")
    .Attr("chunk_steps: int = 0")  // steps projected at a time; 0: as many as fit CHUNK_BYTES
    .Attr("split: {'rows', 'columns'} = 'rows'")  // how threads share the layer (see run_columns)
    .Output("sequence: float")
    .Output("h: float")
    .Output("c: float")
    .Output("gate_i: float")
    .Output("gate_f: float")
    .Output("gate_g: float")
    .Output("gate_o: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      using tensorflow::shape_inference::DimensionHandle;
      using tensorflow::shape_inference::ShapeHandle;
      ShapeHandle x, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 2, &h0));
      DimensionHandle batch = c->Dim(x, 0), steps = c->Dim(x, 1), units = c->Dim(h0, 1);
      TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(h0, 0), &batch));
      ShapeHandle seq = c->MakeShape({batch, steps, units});
      c->set_output(0, seq);
      c->set_output(1, c->MakeShape({batch, units}));
      c->set_output(2, c->MakeShape({batch, units}));
      bool return_gates;
      TF_RETURN_IF_ERROR(c->GetAttr("return_gates", &return_gates));
      for (int g = 0; g < 4; ++g) c->set_output(3 + g, return_gates ? seq : c->MakeShape({0, 0, 0}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("LstmExpNativeLayer").Device(tensorflow::DEVICE_CPU), NativeLstmLayerOp);

REGISTER_OP("LstmExpNativeLayerGrad")
    .Input("gate_i: float")
    .Input("gate_f: float")
    .Input("gate_g: float")
    .Input("gate_o: float")
    .Input("c0: float")
    .Input("packed_recurrent_kernel_t: float")
    .Input("lengths: int32")
    .Input("d_sequence: float")
    .Input("d_h: float")
    .Input("d_c: float")
    .Attr("max_threads: int = 0")
    .Output("d_z: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle gates, z;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &gates));
      tensorflow::shape_inference::DimensionHandle four_h;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(gates, 2), 4, &four_h));
      TF_RETURN_IF_ERROR(c->ReplaceDim(gates, 2, four_h, &z));
      c->set_output(0, z);
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(4));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("LstmExpNativeLayerGrad").Device(tensorflow::DEVICE_CPU),
                        NativeLstmLayerGradOp);

// Read by Python (ctypes) to pack W, b and U in the layout this build expects.
extern "C" int lstm_exp_native_block_width() { return W; }

// The build's name, as bytes in the library: build.py reads it from the file it compiled, so it
// names builds for other CPUs too (never loaded here) and a cached library before it is loaded.
extern "C" __attribute__((used, visibility("default"))) const char lstm_exp_native_isa[] =
    "lstm_exp_native_isa=" LSTM_ISA;
