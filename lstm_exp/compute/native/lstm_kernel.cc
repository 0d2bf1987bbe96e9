// One LSTM layer's whole time loop as a TensorFlow CPU op (keras gate order i, f, g, o).
//
// The input projection of every step (xp = x W + b) is one large MatMul done by TensorFlow
// before this op; only the recurrent product h_{t-1} U and the cell remain inside the loop.
//
// Why this shape:
// * Register-blocked product: a tile of ROWS batch rows x 4 gates x W units lives in vector
//   registers for the whole k loop, and the cell is applied in the tile's epilogue, so the
//   pre-activations z never go to memory.
// * U arrives packed as (Hp/W, H, 4, W): the 4 gate slices of one W-unit block are contiguous
//   per k, so the tile streams one panel sequentially.
// * Threads split the batch rows, not the units: a row's recurrence reads only its own h, so the
//   threads never meet inside the time loop. An earlier prototype that split the units needed a
//   barrier per step and timed bimodally on shared cores; this way a preempted thread delays
//   only its own rows.
// * GCC/Clang vector extensions at the native width: the same source compiles to AVX-512,
//   AVX2/FMA or SSE, chosen by -march=native at build time.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/util/work_sharder.h"

#ifndef LSTM_KCHUNK
#define LSTM_KCHUNK 96  // 96 x 4 gates x W floats: 24 KiB of U per chunk at W = 16, half of L1
#endif

#if defined(__AVX512F__)
#define LSTM_W 16     // floats per vector
#define LSTM_ROWS 6   // 24 accumulators + 4 weight vectors + 1 broadcast of 32 registers
#elif defined(__AVX__)
#define LSTM_W 8
#define LSTM_ROWS 3   // 12 accumulators of 16 registers; weights read as memory operands
#else
#define LSTM_W 4
#define LSTM_ROWS 3
#endif

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

constexpr int W = LSTM_W;
constexpr int ROWS = LSTM_ROWS;
constexpr int64_t KCHUNK = LSTM_KCHUNK;
typedef float vf __attribute__((vector_size(4 * W)));
typedef int vi __attribute__((vector_size(4 * W)));
typedef float vfu __attribute__((vector_size(4 * W), aligned(4)));  // unaligned access

inline vf splat(float s) { return vf{} + s; }
inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

inline vf load_n(const float* p, int n) {
  if (n == W) return load(p);
  float tmp[W] = {};
  std::memcpy(tmp, p, sizeof(float) * n);
  return load(tmp);
}

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
  int64_t batch, steps, units, padded_units;
  const float* xp;      // (B, T, 4H)
  const float* packed;  // (Hp/W, H, 4, W)
  const int32_t* lengths;
  float* seq;           // (B, T, H)
  float* gates[4];      // (B, T, H) each, or null
  float* h[2];          // (B, Hp) double buffer: step t reads h[t % 2], writes the other
  float* c;             // (B, Hp), updated in place
};

// Rows [r0, r0 + R) x units [j0, j0 + W) at step t, inputs k in [k0, k1): the product, kept in
// registers; partial sums wait in `partial` (L1-resident) between k chunks, and after the last
// chunk the cell is applied in registers.
template <int R>
void tile(const Layer& L, int64_t t, int64_t r0, int64_t jb, int64_t k0, int64_t k1, vf* partial) {
  const int64_t H = L.units, Hp = L.padded_units, j0 = jb * W;
  const int n = static_cast<int>(std::min<int64_t>(W, H - j0));
  const float* hin = L.h[t & 1] + r0 * Hp;
  float* hout = L.h[(t + 1) & 1];
  vf acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = k0 == 0 ? vf{} : partial[r * 4 + g];
  const float* panel = L.packed + jb * H * 4 * W;
  for (int64_t k = k0; k < k1; ++k) {
    const float* w = panel + k * 4 * W;
    vf w0 = load(w), w1 = load(w + W), w2 = load(w + 2 * W), w3 = load(w + 3 * W);
#if defined(__AVX512F__) && defined(__GNUC__)
    // Keeps the weights in registers: folded into each FMA as memory operands they would be
    // loaded R times, and the loads, not the FMAs, would bound the loop.
    asm("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
#endif
    for (int r = 0; r < R; ++r) {
      const float hk = hin[r * Hp + k];
      acc[r][0] += hk * w0;
      acc[r][1] += hk * w1;
      acc[r][2] += hk * w2;
      acc[r][3] += hk * w3;
    }
  }
  if (k1 < H) {
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < 4; ++g) partial[r * 4 + g] = acc[r][g];
    return;
  }
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
    const float* x = L.xp + (b * L.steps + t) * 4 * H + j0;
    const vf i = vsigmoid(acc[r][0] + load_n(x, n));
    const vf f = vsigmoid(acc[r][1] + load_n(x + H, n));
    const vf g = vtanh(acc[r][2] + load_n(x + 2 * H, n));
    const vf o = vsigmoid(acc[r][3] + load_n(x + 3 * H, n));
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
void tile_rows(const Layer& L, int64_t t, int64_t r0, int64_t jb, int64_t k0, int64_t k1, vf* partial,
               int rows) {
  if constexpr (R > 1) {
    if (rows < R) return tile_rows<R - 1>(L, t, r0, jb, k0, k1, partial, rows);
  }
  tile<R>(L, t, r0, jb, k0, k1, partial);
}

// The whole time loop for rows [first, last): independent of every other row.
void run_rows(const Layer& L, int64_t first, int64_t last) {
  const int64_t blocks = L.padded_units / W;
  std::vector<vf> partial((last - first + ROWS) * 4);
  for (int64_t t = 0; t < L.steps; ++t) {
    for (int64_t jb = 0; jb < blocks; ++jb) {  // unit blocks outside: one U panel serves every row
      // k chunks of the panel small enough for L1, so every row tile after the first reads it there.
      for (int64_t k0 = 0; k0 < L.units; k0 += KCHUNK) {
        const int64_t k1 = std::min<int64_t>(L.units, k0 + KCHUNK);
        for (int64_t r0 = first; r0 < last; r0 += ROWS)
          tile_rows<ROWS>(L, t, r0, jb, k0, k1, partial.data() + (r0 - first) * 4,
                          static_cast<int>(std::min<int64_t>(ROWS, last - r0)));
      }
    }
  }
}

class NativeLstmLayerOp : public OpKernel {
 public:
  explicit NativeLstmLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("return_gates", &return_gates_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0);
    const Tensor& packed = ctx->input(1);
    const Tensor& h0 = ctx->input(2);
    const Tensor& c0 = ctx->input(3);
    const Tensor& lengths = ctx->input(4);
    OP_REQUIRES(ctx, xp.dims() == 3 && h0.dims() == 2 && c0.shape() == h0.shape(),
                tensorflow::errors::InvalidArgument("expected xp (B, T, 4H), h0 and c0 (B, H)"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), H = h0.dim_size(1);
    const int64_t Hp = (H + W - 1) / W * W;
    OP_REQUIRES(ctx, h0.dim_size(0) == B && xp.dim_size(2) == 4 * H,
                tensorflow::errors::InvalidArgument("xp must be (B, T, 4H) for h0 (B, H)"));
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

    // Padded units start (and stay) zero; they are never copied out.
    std::vector<float> state(3 * B * Hp, 0.0f);
    Layer L{B, T, H, Hp, xp.flat<float>().data(), packed.flat<float>().data(),
            lengths.flat<int32_t>().data(), seq->flat<float>().data(), {},
            {state.data(), state.data() + B * Hp}, state.data() + 2 * B * Hp};
    for (int g = 0; g < 4; ++g) L.gates[g] = return_gates_ ? gates[g]->flat<float>().data() : nullptr;
    const float* h0p = h0.flat<float>().data();
    const float* c0p = c0.flat<float>().data();
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(L.h[0] + b * Hp, h0p + b * H, sizeof(float) * H);
      std::memcpy(L.c + b * Hp, c0p + b * H, sizeof(float) * H);
    }

    if (T > 0 && B > 0) {
      auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
      int64_t threads = std::min<int64_t>(B, std::max(1, pool->NumThreads()));
      if (max_threads_ > 0) threads = std::min<int64_t>(threads, max_threads_);
      // The caller runs the first chunk itself; the others go to TensorFlow's intra-op pool.
      // Even row counts rather than whole tiles: a short tile costs less than a full one.
      tensorflow::BlockingCounter done(static_cast<int>(threads - 1));
      auto chunk = [&L, B, threads](int64_t i) { run_rows(L, B * i / threads, B * (i + 1) / threads); };
      for (int64_t i = 1; i < threads; ++i)
        pool->Schedule([&chunk, &done, i] { chunk(i); done.DecrementCount(); });
      chunk(0);
      done.Wait();
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
};

}  // namespace

REGISTER_OP("LstmExpNativeLayer")
    .Input("xp: float")
    .Input("packed_recurrent_kernel: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("lengths: int32")
    .Attr("return_gates: bool = true")
    .Attr("max_threads: int = 0")
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
      ShapeHandle xp, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &xp));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &h0));
      DimensionHandle batch = c->Dim(xp, 0), steps = c->Dim(xp, 1), units = c->Dim(h0, 1);
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

// Read by Python (ctypes) to pack U in the layout this build expects.
extern "C" int lstm_exp_native_block_width() { return W; }
