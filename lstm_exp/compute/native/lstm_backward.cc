// The backward op, LstmExpNativeLayerGrad: one layer's gradient through time.
//
// The gradient of one layer's whole time loop, given the gates the forward op returned. Per row,
// backwards in time: the cell's derivative gives the pre-activation gradients dz_t (4H), then
// dh_{t-1} = dz_t R^T, one register-tiled product per step like the forward's. Everything that
// does not recur (dx = dz W^T, dW = x^T dz, dR = h_prev^T dz, db = sum dz) is left to batched
// products over all steps after the op (engine.py), where TensorFlow's MatMul runs them at full
// width. The cell states are recomputed from the gates (c_t = f c_{t-1} + i g, elementwise) rather
// than kept by the forward, which keeps the forward op's outputs unchanged.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lstm_simd.h"

namespace {

using namespace lstm_exp_native;  // NOLINT: the kernel's own vocabulary

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
