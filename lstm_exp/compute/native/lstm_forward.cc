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

#include "lstm_forward.h"

namespace {

using namespace lstm_exp_native;  // NOLINT: the kernel's own vocabulary

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

// Read by Python (ctypes) to pack W, b and U in the layout this build expects.
extern "C" int lstm_exp_native_block_width() { return W; }

// The build's name, as bytes in the library: build.py reads it from the file it compiled, so it
// names builds for other CPUs too (never loaded here) and a cached library before it is loaded.
extern "C" __attribute__((used, visibility("default"))) const char lstm_exp_native_isa[] =
    "lstm_exp_native_isa=" LSTM_ISA;
