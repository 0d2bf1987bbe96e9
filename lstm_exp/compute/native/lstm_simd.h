// Shared by the native op's sources (lstm_*.cc, gru_*.cc): the
// build's vector width, vector math, the register-tiled product and how the threads are run.
//
// GCC/Clang vector extensions at the native width: the same source compiles to AVX-512, AVX2/FMA
// or SSE, chosen at build time by the widest flag set that compiles (build.py). Everything here is
// inline or a template, so each source compiles it alike.
#pragma once

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
// 8 accumulators and the 4 weight vectors in 16 registers. 3 rows (12 accumulators, the weights
// read as memory operands) made 15 loads per 12 FMAs, more than two load ports carry: 97 ms of CPU
// against 84 ms per forward pass at the reference size (AMD EPYC, Zen 4, x86-64-v3 build); 3 rows
// with the weights kept in registers spilled (147 ms).
#define LSTM_ROWS 2
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

namespace lstm_exp_native {

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

// The accumulators of one tile: R rows x G gates x W units (G = 4 for the LSTM, 3 for the GRU's z,
// r, h), sum over k of a[r][k] * panel[k]; the panel is (depth, G, W). `a` rows are `stride` floats
// apart. The weights are loaded once per k and kept in registers: folded into each FMA as memory
// operands they would be loaded R times, and the loads, not the FMAs, would bound the loop.
template <int R, int G>
inline void accumulate(vf (&acc)[R][G], const float* a, int64_t stride, const float* panel,
                       int64_t depth) {
  for (int64_t k = 0; k < depth; ++k) {
    const float* w = panel + k * G * W;
    vf wk[G];
    for (int g = 0; g < G; ++g) {
      wk[g] = load(w + g * W);
#if defined(__AVX512F__) && defined(__GNUC__)
      asm("" : "+v"(wk[g]));  // of the 32 zmm registers
#elif defined(__AVX__) && defined(__GNUC__)
      asm("" : "+x"(wk[g]));  // of the 16 ymm registers
#endif
    }
    for (int r = 0; r < R; ++r) {
      const float ak = a[r * stride + k];
      for (int g = 0; g < G; ++g) acc[r][g] += ak * wk[g];
    }
  }
}


inline vf load_n(const float* p, int n) {
  if (n == W) return load(p);
  float tmp[W] = {};
  std::memcpy(tmp, p, sizeof(float) * n);
  return load(tmp);
}

// Runs `chunks` even row ranges of `batch` rows on the caller and TensorFlow's intra-op pool,
// `rows(first, last)` for each. Chunks are claimed, not assigned: the caller runs every chunk no
// pool thread has started, so it never waits on a thread that may not come (a busy pool, or a
// caller that is itself the pool's only thread) and only waits for chunks already running. The
// state is shared because a pool task may start after this returns; it then finds nothing left.
// A row's results never depend on which thread ran it, so the outputs are the same for any count.
inline void run_parallel(int64_t batch, int64_t chunks, tensorflow::thread::ThreadPool* pool,
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

// Threads for `batch` rows: TensorFlow's intra-op pool size, capped by the batch and `max_threads`.
inline int64_t thread_count(OpKernelContext* ctx, int64_t batch, int max_threads) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  int64_t threads = std::min<int64_t>(batch, std::max(1, pool->NumThreads()));
  if (max_threads > 0) threads = std::min<int64_t>(threads, max_threads);
  return std::max<int64_t>(1, threads);
}

}  // namespace lstm_exp_native
