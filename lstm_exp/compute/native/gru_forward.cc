// One GRU layer's time loop as a TensorFlow CPU op, LstmExpNativeGruLayer: Keras 3's
// `keras.layers.GRU` with its defaults (reset_after=True, gate order z, r, h):
//
//   z = σ(x W_z + b_z + h U_z + b'_z),  r = σ(x W_r + b_r + h U_r + b'_r)
//   n = tanh(x W_h + b_h + r ⊙ (h U_h + b'_h)),  h' = z ⊙ h + (1 − z) ⊙ n
//
// The input projection x W + b (no recurrence) arrives precomputed, one batched TensorFlow MatMul
// over all steps (gru_trainable.py); the op runs the recurrence. Per step, a register tile of ROWS
// rows x 3 gates x W units starts from b' and accumulates h U (lstm_simd.h's product), and the
// cell runs in the tile's epilogue, so h U never goes to memory. Threads split the batch rows, as
// the LSTM op's do: a row's results never depend on the thread count. Past a row's length its h is
// carried and its outputs (sequence and gates) are zero (TF1 dynamic_rnn).
//
// With `return_gates`, the op also returns z, r, n and h U_h + b'_h per step: what the backward op
// (gru_backward.cc) needs, so it recomputes nothing.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lstm_simd.h"

namespace {

using namespace lstm_exp_native;  // NOLINT: the kernel's own vocabulary

struct GruLayer {
  int64_t batch, steps, units, padded_units;
  const float* xp;        // (B, T, 3H): x W + b, keras gate order z, r, h
  const float* packed;    // U packed (Hp/W, H, 3, W)
  const float* bias;      // b' packed (Hp/W, 3, W)
  const float* h0;        // (B, H)
  const int32_t* lengths;
  float* seq;             // (B, T, H)
  float* gates[4];        // (B, T, H) each, or null: z, r, n, h U_h + b'_h
};

// Rows [r0, r0 + R) of the thread (local index into its h buffers) x units [j0, j0 + W) at step t.
template <int R>
void gru_tile(const GruLayer& L, const float* hin, float* hout, int64_t first, int64_t r0,
              int64_t jb, int64_t t) {
  const int64_t H = L.units, Hp = L.padded_units, j0 = jb * W;
  const int n = static_cast<int>(std::min<int64_t>(W, H - j0));
  vf acc[R][3];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 3; ++g) acc[r][g] = load(L.bias + (jb * 3 + g) * W);
  accumulate<R>(acc, hin + r0 * Hp, Hp, L.packed + jb * H * 3 * W, H);
  for (int r = 0; r < R; ++r) {
    const int64_t b = first + r0 + r, at = (b * L.steps + t) * H + j0;
    const vf hprev = load(hin + (r0 + r) * Hp + j0);
    if (t >= L.lengths[b]) {  // past the row's length: state carried, outputs zero
      store(hout + (r0 + r) * Hp + j0, hprev);
      store_n(L.seq + at, vf{}, n);
      for (int g = 0; g < 4; ++g)
        if (L.gates[g]) store_n(L.gates[g] + at, vf{}, n);
      continue;
    }
    const float* xp = L.xp + (b * L.steps + t) * 3 * H + j0;
    const vf z = vsigmoid(load_n(xp, n) + acc[r][0]);
    const vf rg = vsigmoid(load_n(xp + H, n) + acc[r][1]);
    const vf hh = vtanh(load_n(xp + 2 * H, n) + rg * acc[r][2]);
    // Padded units: U, b' and xp are zero there, so z = 1/2, n = 0 and h' stays 0.
    const vf hn = z * hprev + (1.0f - z) * hh;
    store(hout + (r0 + r) * Hp + j0, hn);
    store_n(L.seq + at, hn, n);
    const vf values[4] = {z, rg, hh, acc[r][2]};
    for (int g = 0; g < 4; ++g)
      if (L.gates[g]) store_n(L.gates[g] + at, values[g], n);
  }
}

template <int R>
void gru_rows_tile(const GruLayer& L, const float* hin, float* hout, int64_t first, int64_t r0,
                   int64_t jb, int64_t t, int n) {
  if constexpr (R > 1) {
    if (n < R) return gru_rows_tile<R - 1>(L, hin, hout, first, r0, jb, t, n);
  }
  gru_tile<R>(L, hin, hout, first, r0, jb, t);
}

// The whole layer for rows [first, last): independent of every other row. Returns the final h.
void gru_rows(const GruLayer& L, int64_t first, int64_t last, float* h_out) {
  const int64_t H = L.units, Hp = L.padded_units, n = last - first;
  std::vector<float> h(2 * n * Hp, 0.0f);  // double buffer: step t reads h[t % 2], writes the other
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(h.data() + r * Hp, L.h0 + (first + r) * H, sizeof(float) * H);
  for (int64_t t = 0; t < L.steps; ++t) {
    const float* hin = h.data() + (t & 1) * n * Hp;
    float* hout = h.data() + ((t + 1) & 1) * n * Hp;
    for (int64_t jb = 0; jb < Hp / W; ++jb)
      for (int64_t r0 = 0; r0 < n; r0 += ROWS)
        gru_rows_tile<ROWS>(L, hin, hout, first, r0, jb, t,
                            static_cast<int>(std::min<int64_t>(ROWS, n - r0)));
  }
  const float* final_h = h.data() + (L.steps & 1) * n * Hp;
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(h_out + (first + r) * H, final_h + r * Hp, sizeof(float) * H);
}

class NativeGruLayerOp : public OpKernel {
 public:
  explicit NativeGruLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("return_gates", &return_gates_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0);
    const Tensor& packed = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    const Tensor& h0 = ctx->input(3);
    const Tensor& lengths = ctx->input(4);
    OP_REQUIRES(ctx, xp.dims() == 3 && h0.dims() == 2,
                tensorflow::errors::InvalidArgument("expected x projected (B, T, 3H) and h0 (B, H)"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), H = h0.dim_size(1);
    const int64_t Hp = (H + W - 1) / W * W;
    OP_REQUIRES(ctx, h0.dim_size(0) == B && xp.dim_size(2) == 3 * H,
                tensorflow::errors::InvalidArgument("x projected must be (B, T, 3H) for h0 (B, H)"));
    OP_REQUIRES(ctx, packed.shape() == TensorShape({Hp / W, H, 3, W}),
                tensorflow::errors::InvalidArgument("packed U must be (Hp/W, H, 3, W) with W = ",
                                                    W, "; got ", packed.shape().DebugString()));
    OP_REQUIRES(ctx, bias.shape() == TensorShape({Hp / W, 3, W}),
                tensorflow::errors::InvalidArgument("packed recurrent bias must be (Hp/W, 3, W)"));
    OP_REQUIRES(ctx, lengths.shape() == TensorShape({B}),
                tensorflow::errors::InvalidArgument("lengths must be (B,)"));
    Tensor *seq, *h_out, *gates[4];
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, H}), &h_out));
    const TensorShape gate_shape = return_gates_ ? TensorShape({B, T, H}) : TensorShape({0, 0, 0});
    for (int g = 0; g < 4; ++g)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2 + g, gate_shape, &gates[g]));
    GruLayer L{B, T, H, Hp, xp.flat<float>().data(), packed.flat<float>().data(),
               bias.flat<float>().data(), h0.flat<float>().data(), lengths.flat<int32_t>().data(),
               seq->flat<float>().data(), {}};
    for (int g = 0; g < 4; ++g) L.gates[g] = return_gates_ ? gates[g]->flat<float>().data() : nullptr;
    if (B == 0) return;
    float* final_h = h_out->flat<float>().data();
    run_parallel(B, thread_count(ctx, B, max_threads_),
                 ctx->device()->tensorflow_cpu_worker_threads()->workers,
                 [L, final_h](int64_t first, int64_t last) { gru_rows(L, first, last, final_h); });
  }

 private:
  bool return_gates_;
  int max_threads_;
};

}  // namespace

REGISTER_OP("LstmExpNativeGruLayer")
    .Input("x_projected: float")
    .Input("packed_recurrent_kernel: float")
    .Input("packed_recurrent_bias: float")
    .Input("h0: float")
    .Input("lengths: int32")
    .Attr("return_gates: bool = true")
    .Attr("max_threads: int = 0")
    .Output("sequence: float")
    .Output("h: float")
    .Output("gate_z: float")
    .Output("gate_r: float")
    .Output("candidate: float")
    .Output("recurrent_h: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      using tensorflow::shape_inference::DimensionHandle;
      using tensorflow::shape_inference::ShapeHandle;
      ShapeHandle xp, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &xp));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &h0));
      DimensionHandle batch = c->Dim(xp, 0), steps = c->Dim(xp, 1), units = c->Dim(h0, 1);
      TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(h0, 0), &batch));
      ShapeHandle seq = c->MakeShape({batch, steps, units});
      c->set_output(0, seq);
      c->set_output(1, c->MakeShape({batch, units}));
      bool return_gates;
      TF_RETURN_IF_ERROR(c->GetAttr("return_gates", &return_gates));
      for (int g = 0; g < 4; ++g) c->set_output(2 + g, return_gates ? seq : c->MakeShape({0, 0, 0}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("LstmExpNativeGruLayer").Device(tensorflow::DEVICE_CPU),
                        NativeGruLayerOp);
