#!/usr/bin/python3
"""Writes the .npy files the client's input tests read, with numpy itself (Debian's
/usr/bin/python3 and python3-numpy): run from this directory. The files are committed, so the
tests need no Python."""
import numpy as np

np.save("client_logits_2x3_f32.npy", np.array([[2, 1, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32))
np.save("client_labels_i64.npy", np.array([0, 1], dtype=np.int64))
# A transposed array is saved in Fortran order: [[0, 1, 2], [3, 4, 5]] stored column by column.
np.save("client_fortran_f64.npy", np.asfortranarray(np.arange(6.0).reshape(2, 3)))
np.save("client_bigendian_f64.npy", np.array([1.5, -2.0], dtype=">f8"))
# Malformed: the float32 file without its last element.
with open("client_logits_2x3_f32.npy", "rb") as f:
    data = f.read()
with open("client_truncated.npy", "wb") as f:
    f.write(data[:-4])
