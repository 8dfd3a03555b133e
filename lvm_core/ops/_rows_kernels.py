"""numba kernel behind :func:`lvm_core.ops.take_rows`: a row gather that prefetches.

A minibatch is B rows of the data taken at random: each row starts with a
cache miss, and a plain row-by-row copy (``np.take``) waits for memory at every
row.  This kernel asks for the rows a few places ahead with the CPU's prefetch
instruction (LLVM's ``llvm.prefetch`` intrinsic: a hint, never a fault, never a
change of any value) while it copies the current one, so the misses overlap.
On 128 rows of 784 float32 values taken from 60,000: 33 us instead of 60-76 us.

The rows are copied as bytes (``src`` and ``dst`` are uint8 views of the
arrays, one row per line), so one compiled kernel serves every dtype.
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
    all cache levels).  No effect on any value; out-of-range addresses do not fault."""
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
def _prefetch_row(src, row):
    width = src.shape[1]
    base = row * width
    for off in range(0, width, LINE):
        prefetch(src, base + off)


@njit(nogil=True)
def take_rows_bytes(src, idx, dst, ahead):
    """dst[r] = src[idx[r]] for every r, prefetching row idx[r + ahead] meanwhile.

    ``src`` (N, W) and ``dst`` (n, W) uint8, C-contiguous; ``idx`` (n,) integers.
    Returns False, having copied nothing, when an index lies outside [0, N).
    """
    n, N = idx.shape[0], src.shape[0]
    for r in range(n):
        if idx[r] < 0 or idx[r] >= N:
            return False
    for r in range(min(ahead, n)):
        _prefetch_row(src, idx[r])
    width = src.shape[1]
    for r in range(n):
        if r + ahead < n:
            _prefetch_row(src, idx[r + ahead])
        row = idx[r]
        for j in range(width):  # a plain loop: LLVM vectorises it (a slice copy does not)
            dst[r, j] = src[row, j]
    return True
