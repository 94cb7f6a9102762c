"""Primitives declared "not supported", grouped by why. Each group's reason is shown to the user.

Every JAX primitive is either lowered (has a rule) or listed here; tests/test_registry.py checks it.
"""
from __future__ import annotations

from .registry import declare_not_supported

declare_not_supported(
    "a window select-and-scatter with a scatter function of its own (no JAX function traces to it; the "
    "gradients of max and min pooling, select_and_scatter_add and select_and_gather_add, are lowered)",
    "select_and_scatter",
)
declare_not_supported(
    "a fused attention kernel of cuDNN (GPU only): jax.nn.dot_product_attention(..., implementation='xla') "
    "traces to matrix products and a softmax, which are lowered",
    "dot_product_attention_fwd", "dot_product_attention_fwd_wrapper", "dot_product_attention_bwd",
    "dot_product_attention_bwd_wrapper", "dot_product_attention_fp8_fwd", "dot_product_attention_fp8_fwd_wrapper",
    "dot_product_attention_fp8_bwd", "dot_product_attention_fp8_bwd_wrapper",
)
declare_not_supported(
    "jax.nn.scaled_matmul has no CPU implementation in JAX (cuDNN only), so there is no reference to check "
    "against; lax.scaled_dot, the same block-scaled product, runs on the CPU and is lowered",
    "scaled_matmul", "scaled_matmul_wrapper",
)
declare_not_supported(
    "a legacy custom-derivative primitive that current JAX tracing does not produce (custom_jvp_call, "
    "custom_vjp_call, custom_vmap_call and linear_call are inlined)",
    "custom_jvp_call_jaxpr",
)
declare_not_supported(
    "kept by JAX for old callers only: it has no abstract evaluation rule, so no traced function contains it",
    "zeros_like",
)
declare_not_supported(
    "a legacy call primitive that current JAX tracing does not produce (jit, custom_jvp_call, custom_vjp_call "
    "and checkpoint are inlined)",
    "call", "closed_call",
)
declare_not_supported(
    "a Pallas kernel primitive (jax._src.state): jnp.broadcast_to traces to broadcast_in_dim, which is lowered",
    "broadcast_to",
)
declare_not_supported(
    "eig's eigenvalues and eigenvectors of a non-symmetric matrix are complex, and complex numbers are not "
    "supported by SOFIE (eigh is lowered for symmetric matrices, and schur gives the real Schur form)",
    "eig",
)
declare_not_supported(
    "complex numbers and FFTs are not supported by SOFIE",
    "complex", "conj", "real", "imag", "fft",
)
declare_not_supported(
    "random number generation has no place in inference code: pass deterministic=True / training=False, "
    "or make the randomness depend only on params so it is folded",
    "random_bits", "random_clone", "random_fold_in", "random_gamma", "random_seed", "random_split", "random_unwrap",
    "random_wrap",
    "threefry2x32", "threefry4x32", "philox2x32", "philox4x32", "iota_2x32_shape", "rng_bit_generator",
    "rng_uniform",
)
declare_not_supported(
    "multi-device collectives have no meaning in single-process C++ inference",
    "all_gather", "all_gather_done", "all_gather_invariant", "all_gather_reduced", "all_gather_reduced_start",
    "all_gather_start", "all_to_all", "all_to_all_done", "all_to_all_start", "axis_index", "pbroadcast",
    "pbroadcast_done", "pbroadcast_start", "pmax", "pmin", "ppermute", "ppermute_done", "ppermute_start", "precv",
    "preduced", "psend", "psum", "psum_done", "psum_invariant", "psum_invariant_start", "psum_start", "pvary",
    "ragged_all_to_all", "reduce_scatter", "reduce_scatter_done", "reduce_scatter_start", "unreduced_psum",
    "unreduced_psum_start", "unreduced_reduce_scatter", "unreduced_reduce_scatter_start", "reduced_vary_cast_p",
    "vary_unreduced_cast_p", "shard_alike", "reshard", "platform_index", "compute_on", "custom_partitioning",
    "cudnn_fusion", "composite", "xla_metadata_value", "inspect_sharding", "layout_constraint",
)
declare_not_supported(
    "side effects, callbacks, mutable state and tokens cannot be compiled into a SOFIE model",
    "debug_callback", "debug_print", "io_callback", "pure_callback", "buffer_callback", "ffi_call", "check",
    "after_all", "create_token", "accum_grad_in_ref", "addupdate", "get", "swap", "new_ref", "empty_ref",
    "free_ref", "freeze", "run_state", "box_get", "box_set", "new_box", "new_log", "log_extend", "log_read",
    "empty", "empty2", "pin", "unpin", "stage", "tie", "dce_sink", "unreachable", "eval_jaxpr",
    "call_hi_primitive", "call_hi_primitive_linearized", "create_linear", "custom_lin", "from_edtype",
    "to_edtype", "name", "remat_opt",
)
