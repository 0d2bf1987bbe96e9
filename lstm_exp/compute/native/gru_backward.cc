// The GRU layer's backward op, LstmExpNativeGruLayerGrad: the gradient through time of
// LstmExpNativeGruLayer (gru_forward.cc), given the gates that op returned.
//
// Per row, backwards in time, with a = x W + b (input part) and q = h U + b' (recurrent part):
//   dn = dh' (1 − z),  dz = dh' (h − n),  dh = dh' z                      (h' = z h + (1 − z) n)
//   da_h = dn (1 − n²),  da_r = da_h q_h r (1 − r),  da_z = dz z (1 − z)   (n = tanh(a_h + r q_h))
//   dq = (da_z, da_r, da_h r),  dh_{t-1} = dh + dq U^T
// The product dq U^T recurs and runs here, register-tiled like the LSTM backward's (the tile starts
// from dh z instead of zero). What does not recur is left to batched products over all steps after
// the op (gru_trainable.py): dx = da W^T, dW = x^T da, dU = h_prev^T dq, and the two bias sums.
// The op returns da and dq for every step; both are zero past a row's length.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lstm_simd.h"

namespace {

using namespace lstm_exp_native;  // NOLINT: the kernel's own vocabulary

struct GruGrad {
  int64_t batch, steps, units, padded_units, out_units;  // H, Hp (multiple of W), Hq (of 4W)
  const float* gates[4];  // (B, T, H) each: z, r, n, q_h
  const float* h0;        // (B, H)
  const float* seq;       // (B, T, H): h_t, so h_{t-1} at valid steps t > 0
  const float* packed_t;  // U^T packed (Hq/4W, 3Hp, 4W)
  const int32_t* lengths;
  const float* d_seq;     // (B, T, H)
  const float* d_h;       // (B, H): gradient of the final h
  float* d_input;         // (B, T, 3H): da, keras gate order
  float* d_recurrent;     // (B, T, 3H): dq
  float* d_h0;            // (B, H)
};

// dh_{t-1} = dh + dq U^T for rows [r0, r0 + R) of the thread (local index), outputs
// [jb 4W, (jb + 1) 4W). Rows past their length keep dh unchanged (their dq is zero anyway).
template <int R>
void gru_back_tile(const GruGrad& G, const float* dq, float* dh, int64_t first, int64_t r0,
                   int64_t jb, int64_t t) {
  const int64_t Hq = G.out_units, depth = 3 * G.padded_units;
  vf acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = load(dh + (r0 + r) * Hq + jb * 4 * W + g * W);
  accumulate<R>(acc, dq + r0 * depth, depth, G.packed_t + jb * depth * 4 * W, depth);
  for (int r = 0; r < R; ++r) {
    if (t >= G.lengths[first + r0 + r]) continue;
    for (int g = 0; g < 4; ++g) store(dh + (r0 + r) * Hq + jb * 4 * W + g * W, acc[r][g]);
  }
}

template <int R>
void gru_back_rows(const GruGrad& G, const float* dq, float* dh, int64_t first, int64_t r0,
                   int64_t jb, int64_t t, int n) {
  if constexpr (R > 1) {
    if (n < R) return gru_back_rows<R - 1>(G, dq, dh, first, r0, jb, t, n);
  }
  gru_back_tile<R>(G, dq, dh, first, r0, jb, t);
}

void gru_backward_rows(const GruGrad& G, int64_t first, int64_t last) {
  const int64_t T = G.steps, H = G.units, Hp = G.padded_units, Hq = G.out_units;
  const int64_t n = last - first;
  std::vector<float> dh(n * Hq, 0.0f), dq(n * 3 * Hp, 0.0f);
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(dh.data() + r * Hq, G.d_h + (first + r) * H, sizeof(float) * H);
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t b = first + r, at = (b * T + t) * H;
      float* dqr = dq.data() + r * 3 * Hp;
      float* d_in = G.d_input + (b * T + t) * 3 * H;
      float* d_rec = G.d_recurrent + (b * T + t) * 3 * H;
      if (t >= G.lengths[b]) {  // outputs were constant zeros: no gradient flows into this step
        std::memset(dqr, 0, sizeof(float) * 3 * Hp);
        std::memset(d_in, 0, sizeof(float) * 3 * H);
        std::memset(d_rec, 0, sizeof(float) * 3 * H);
        continue;
      }
      const float* hprev = t > 0 ? G.seq + at - H : G.h0 + b * H;
      for (int64_t m = 0; m < H; m += W) {
        const int k = static_cast<int>(std::min<int64_t>(W, H - m));
        const vf z = load_n(G.gates[0] + at + m, k), rg = load_n(G.gates[1] + at + m, k);
        const vf hh = load_n(G.gates[2] + at + m, k), qh = load_n(G.gates[3] + at + m, k);
        const vf dht = load(dh.data() + r * Hq + m) + load_n(G.d_seq + at + m, k);
        const vf da_h = dht * (1.0f - z) * (1.0f - hh * hh);
        const vf da_r = da_h * qh * rg * (1.0f - rg);
        const vf da_z = dht * (load_n(hprev + m, k) - hh) * z * (1.0f - z);
        store(dh.data() + r * Hq + m, dht * z);  // padded units: z loads as 0, so they stay 0
        const vf da[3] = {da_z, da_r, da_h};
        const vf dqs[3] = {da_z, da_r, da_h * rg};
        for (int q = 0; q < 3; ++q) {
          store_n(dqr + q * Hp + m, dqs[q], k);  // padded units stay zero
          store_n(d_in + q * H + m, da[q], k);
          store_n(d_rec + q * H + m, dqs[q], k);
        }
      }
    }
    for (int64_t jb = 0; jb < Hq / (4 * W); ++jb)
      for (int64_t r0 = 0; r0 < n; r0 += ROWS)
        gru_back_rows<ROWS>(G, dq.data(), dh.data(), first, r0, jb, t,
                            static_cast<int>(std::min<int64_t>(ROWS, n - r0)));
  }
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(G.d_h0 + (first + r) * H, dh.data() + r * Hq, sizeof(float) * H);
}

class NativeGruLayerGradOp : public OpKernel {
 public:
  explicit NativeGruLayerGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_threads", &max_threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gate_z = ctx->input(0);
    const Tensor& h0 = ctx->input(4);
    const Tensor& seq = ctx->input(5);
    const Tensor& packed_t = ctx->input(6);
    const Tensor& lengths = ctx->input(7);
    const Tensor& d_seq = ctx->input(8);
    const Tensor& d_h = ctx->input(9);
    OP_REQUIRES(ctx, gate_z.dims() == 3 && h0.dims() == 2,
                tensorflow::errors::InvalidArgument("expected gates (B, T, H) and h0 (B, H)"));
    const int64_t B = gate_z.dim_size(0), T = gate_z.dim_size(1), H = gate_z.dim_size(2);
    const int64_t Hp = (H + W - 1) / W * W, Hq = (H + 4 * W - 1) / (4 * W) * (4 * W);
    for (int q = 1; q < 4; ++q)
      OP_REQUIRES(ctx, ctx->input(q).shape() == gate_z.shape(),
                  tensorflow::errors::InvalidArgument("the four gate arrays must have one shape"));
    OP_REQUIRES(ctx, seq.shape() == gate_z.shape() && d_seq.shape() == gate_z.shape() &&
                     h0.shape() == TensorShape({B, H}) && d_h.shape() == h0.shape(),
                tensorflow::errors::InvalidArgument("sequence, d_sequence (B, T, H), h0, d_h (B, H)"));
    OP_REQUIRES(ctx, packed_t.shape() == TensorShape({Hq / (4 * W), 3 * Hp, 4 * W}),
                tensorflow::errors::InvalidArgument("packed U^T must be (Hq/4W, 3Hp, 4W) with W = ",
                                                    W, "; got ", packed_t.shape().DebugString()));
    OP_REQUIRES(ctx, lengths.shape() == TensorShape({B}),
                tensorflow::errors::InvalidArgument("lengths must be (B,)"));
    Tensor *d_input, *d_recurrent, *d_h0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, 3 * H}), &d_input));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, 3 * H}), &d_recurrent));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, H}), &d_h0));
    if (B == 0) return;
    GruGrad G{B, T, H, Hp, Hq, {}, h0.flat<float>().data(), seq.flat<float>().data(),
              packed_t.flat<float>().data(), lengths.flat<int32_t>().data(),
              d_seq.flat<float>().data(), d_h.flat<float>().data(),
              d_input->flat<float>().data(), d_recurrent->flat<float>().data(),
              d_h0->flat<float>().data()};
    for (int q = 0; q < 4; ++q) G.gates[q] = ctx->input(q).flat<float>().data();
    run_parallel(B, thread_count(ctx, B, max_threads_),
                 ctx->device()->tensorflow_cpu_worker_threads()->workers,
                 [G](int64_t first, int64_t last) { gru_backward_rows(G, first, last); });
  }

 private:
  int max_threads_;
};

}  // namespace

REGISTER_OP("LstmExpNativeGruLayerGrad")
    .Input("gate_z: float")
    .Input("gate_r: float")
    .Input("candidate: float")
    .Input("recurrent_h: float")
    .Input("h0: float")
    .Input("sequence: float")
    .Input("packed_recurrent_kernel_t: float")
    .Input("lengths: int32")
    .Input("d_sequence: float")
    .Input("d_h: float")
    .Attr("max_threads: int = 0")
    .Output("d_input: float")
    .Output("d_recurrent: float")
    .Output("d_h0: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle gates, three;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &gates));
      tensorflow::shape_inference::DimensionHandle three_h;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(gates, 2), 3, &three_h));
      TF_RETURN_IF_ERROR(c->ReplaceDim(gates, 2, three_h, &three));
      c->set_output(0, three);
      c->set_output(1, three);
      c->set_output(2, c->input(4));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("LstmExpNativeGruLayerGrad").Device(tensorflow::DEVICE_CPU),
                        NativeGruLayerGradOp);
