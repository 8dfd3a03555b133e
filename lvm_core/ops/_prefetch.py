"""The CPU's prefetch instruction for numba kernels (LLVM's ``llvm.prefetch``).

A pass that must wait on every cache miss in turn (rows of a data set taken in
random order) runs faster when it asks for the lines it will need a few rows
ahead: the misses then overlap.  :func:`lvm_core.ops.take_rows` does this.  A
prefetch is a hint: it changes no value and never faults.  (Tried and left
out: prefetching in the elementwise kernels that follow a threaded matmul;
a ReLU backward alone gains, 13 -> 7 us on 128 x 400, but a training epoch
got 2% slower.)
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import njit

#: bytes of one cache line (every x86-64 and ARMv8 core in use has 64)
LINE = 64


@intrinsic
def prefetch(typingctx, arr, offset):
    """Prefetch hint for the byte at ``offset`` of a contiguous array (read, keep in
    all cache levels)."""
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        data = builder.bitcast(ary.data, ir.IntType(8).as_pointer())
        ptr = builder.gep(data, [args[1]])
        # opaque pointers (LLVM >= 15 in llvmlite) name the intrinsic .p0, typed ones .p0i8
        suffix = "p0" if str(ptr.type) == "ptr" else "p0i8"
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch." + suffix)
        # (address, rw = read, locality = 3: keep in every level, cache type = data)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True)
def prefetch_row(a, n):
    """Prefetch every line of row ``n`` of a C-contiguous 2-D array (nothing when
    ``n`` is past the end)."""
    if n < a.shape[0]:
        width = a.shape[1] * a.itemsize
        base = n * width
        for off in range(0, width, LINE):
            prefetch(a, base + off)
