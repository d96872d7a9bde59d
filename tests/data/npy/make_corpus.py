#!/usr/bin/env python3
"""Regenerates the tricky-case corpus read by tests/npy_test.cpp ("corpus" test case).

Run from this folder: python3 make_corpus.py. Valid files come from numpy itself
(np.save / np.lib.format.write_array) or are hand-made and checked to load in numpy;
the broken ones are valid files with one defect each. The expected outcome of every
file is listed in the test, which also fails if a .npy file here is not listed.
"""
import io
import numpy as np
from numpy.lib import format as fmt


def save(name, arr, version=None):
    with open(name, "wb") as fp:
        fmt.write_array(fp, np.asanyarray(arr), version=version)


def numpy_bytes(arr, version=None):
    buf = io.BytesIO()
    fmt.write_array(buf, np.asanyarray(arr), version=version)
    return buf.getvalue()


def hand_made(header, data=b"", version=1, align=64):
    """An .npy file with `header` verbatim, padded like numpy (to `align`) and newline-ended."""
    prefix = 10 if version == 1 else 12
    text = header.encode("latin1")
    text += b" " * (-(prefix + len(text) + 1) % align) + b"\n"
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + data


def write(name, data):
    with open(name, "wb") as fp:
        fp.write(data)


a23 = np.array([[0.25, -1.5, 3.0], [1e-300, -0.0, 6.5e10]])

# Valid.
save("v1_f8_2x3.npy", a23)
save("v2_f4_3.npy", np.array([1.5, -2.25, 1e-3], dtype="<f4"), version=(2, 0))
save("v3_f8_2x2.npy", np.array([[1.0, 2.0], [3.0, 4.0]]), version=(3, 0))
save("scalar_f8.npy", np.float64(-2.5))
save("empty_f4_0x3.npy", np.zeros((0, 3), dtype="<f4"))
write("odd_header.npy", hand_made(
    '  { "shape" :( 2 ,3, ) ,\t"fortran_order":False,\n \'descr\' : "<f8" ,}', a23.tobytes()))
write("native_f4.npy", hand_made("{'descr': '=f4', 'fortran_order': False, 'shape': (2,)}",
                                 np.array([0.5, 4.0], dtype="<f4").tobytes()))
write("py2_long_dims.npy", hand_made("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 1L), }",
                                     np.array([7.0, -8.0]).tobytes()))
write("align16_header.npy", hand_made("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                                      np.array([9.0]).tobytes(), align=16))

# Broken, one defect each.
good = numpy_bytes(a23)
write("truncated_data.npy", good[:-3])
write("trailing_garbage.npy", good + b"\x00")
write("truncated_preamble.npy", good[:7])
write("empty.npy", b"")
write("bad_magic.npy", b"hello, this is not an npy file\n")
write("version_4.npy", good[:6] + b"\x04\x00" + good[8:])
write("header_beyond_file.npy", good[:8] + (len(good)).to_bytes(2, "little") + good[10:])
save("fortran_order.npy", np.asfortranarray(a23))
save("big_endian_f8.npy", a23.astype(">f8"))
save("int64.npy", np.arange(6, dtype="<i8").reshape(2, 3))
save("structured.npy", np.zeros(2, dtype=[("x", "<f8"), ("y", "<f4")]))
write("negative_dim.npy", hand_made("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }"))
write("overflow_shape.npy", hand_made(
    "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }"))
write("missing_shape.npy", hand_made("{'descr': '<f8', 'fortran_order': False}", a23.tobytes()))
write("not_a_dict.npy", hand_made("('<f8', False, (2, 3))", a23.tobytes()))
