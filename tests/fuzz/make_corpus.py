#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/corpus/ (committed; rerun only to change it).

request_fuzzer: one byte choosing the RPC (0 Forward, 1 Backward, 2 VerifyGradient), then the
request in protobuf's binary form, encoded from the text protos below by `protoc --encode`.
math_fuzzer: hand-built inputs in math_case.cc's byte layout (the motivating case among them),
plus seeded random ones.
Usage: tests/fuzz/make_corpus.py   (needs protoc; run from anywhere)
"""
import os
import random
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def f32(*xs):
    return "".join("\\x%02x" % b for b in struct.pack("<%df" % len(xs), *xs))


def f64(*xs):
    return "".join("\\x%02x" % b for b in struct.pack("<%dd" % len(xs), *xs))


def f16(*xs):
    return "".join("\\x%02x" % b for b in struct.pack("<%de" % len(xs), *xs))


def bf16(*xs):
    """The upper 16 bits of each float32 (the values below are exact in bfloat16)."""
    words = struct.unpack("<%dI" % len(xs), struct.pack("<%df" % len(xs), *xs))
    return "".join("\\x%02x" % b for b in struct.pack("<%dH" % len(xs), *(w >> 16 for w in words)))


MOTIVATING_LOGITS = 'logits { shape: 2 values: 1.75 values: 1.75 }'
PROBS_01 = 'targets { probabilities { shape: 2 values: 0 values: 1 } }'

REQUESTS = {
    # Forward
    "forward_probabilities_only": (0, MOTIVATING_LOGITS),
    "forward_class_indices_log_probs": (0, 'logits { shape: [2, 3] values: [2, 1, 0.1, 0.5, 2.5, 0.3] } '
                                           'targets { class_indices { values: [0, 1] } } return_log_probabilities: true'),
    "forward_raw_float32": (0, 'logits { shape: [1, 2] dtype: DATA_TYPE_FLOAT32 raw: "%s" } '
                               'targets { class_indices { values: 1 } }' % f32(1.75, 1.75)),
    "forward_probability_targets": (0, 'logits { shape: [1, 3] values: [1, 2, 3] } '
                                       'targets { probabilities { shape: [1, 3] values: [0.2, 0.3, 0.5] } }'),
    "forward_all_options": (0, 'logits { shape: [3, 3] values: [1, 2, 3, 4, 5, 6, 7, 8, 9] } '
                               'targets { class_indices { values: [0, -100, 2] } } '
                               'options { reduction: REDUCTION_NONE label_smoothing: 0.1 '
                               'class_weights: [1, 2, 0.5] ignore_index: -100 }'),
    "forward_empty_batch": (0, 'logits { shape: [0, 3] } targets { class_indices { } }'),
    "forward_nan_logits": (0, 'logits { shape: 2 values: [nan, 1] }'),
    "forward_raw_length_mismatch": (0, 'logits { shape: [2, 3] dtype: DATA_TYPE_FLOAT32 raw: "%s" }' % f32(1, 2)),
    "forward_too_many_elements": (0, 'logits { shape: [1000000, 1000000] }'),
    # Backward
    "backward_motivating_chain_rule": (1, MOTIVATING_LOGITS + ' ' + PROBS_01 +
                                       ' method: METHOD_CHAIN_RULE return_jacobian: true return_probabilities: true'),
    "backward_class_index_fused": (1, MOTIVATING_LOGITS + ' targets { class_indices { values: 1 } } method: METHOD_FUSED'),
    "backward_grad_probabilities": (1, MOTIVATING_LOGITS + ' grad_probabilities { shape: 2 values: [0, -2] }'),
    "backward_float32_underflow_chain_rule": (1, 'logits { shape: [1, 2] dtype: DATA_TYPE_FLOAT32 raw: "%s" } '
                                              'targets { probabilities { shape: [1, 2] dtype: DATA_TYPE_FLOAT32 raw: "%s" } } '
                                              'method: METHOD_CHAIN_RULE' % (f32(0, 120), f32(1, 0))),
    "backward_sum_grad_loss": (1, 'logits { shape: [2, 2] values: [1, 2, 3, 4] } targets { class_indices { values: [0, 1] } } '
                                  'options { reduction: REDUCTION_SUM } grad_loss { values: 2.5 }'),
    "backward_none_grad_loss": (1, 'logits { shape: [2, 2] values: [1, 2, 3, 4] } targets { class_indices { values: [0, 1] } } '
                                   'options { reduction: REDUCTION_NONE } grad_loss { shape: 2 values: [1, -1] }'),
    "backward_mean_all_ignored": (1, 'logits { shape: [2, 2] values: [1, 2, 3, 4] } targets { class_indices { values: [-100, -100] } } '
                                     'options { ignore_index: -100 }'),
    "backward_mean_zero_weights": (1, 'logits { shape: [2, 2] values: [1, 2, 3, 4] } targets { class_indices { values: [0, 0] } } '
                                      'options { class_weights: [0, 1] }'),
    "backward_targets_and_grad_probabilities": (1, MOTIVATING_LOGITS + ' ' + PROBS_01 + ' grad_probabilities { shape: 2 values: [0, -2] }'),
    "backward_jacobian_over_limit": (1, 'logits { shape: [64, 128] dtype: DATA_TYPE_FLOAT32 } '
                                        'grad_probabilities { shape: [64, 128] dtype: DATA_TYPE_FLOAT32 } return_jacobian: true'),
    "backward_raw_float64_smoothing": (1, 'logits { shape: [1, 3] dtype: DATA_TYPE_FLOAT64 raw: "%s" } '
                                          'targets { class_indices { values: 2 } } options { label_smoothing: 0.2 } '
                                          'method: METHOD_CHAIN_RULE' % f64(-1e4, 0, 1e4)),
    # Half precision (API revision 4)
    "forward_raw_float16_log_probs": (0, 'logits { shape: [2, 3] dtype: DATA_TYPE_FLOAT16 raw: "%s" } '
                                         'targets { class_indices { values: [0, -1] } } options { ignore_index: -1 label_smoothing: 0.1 } '
                                         'return_log_probabilities: true' % f16(2, 1, 0.125, 0.5, 2.5, 65504)),
    "forward_float16_values_overflow": (0, 'logits { shape: 2 dtype: DATA_TYPE_FLOAT16 values: [70000, 1] }'),
    "backward_raw_bfloat16_probability_targets": (1, 'logits { shape: [1, 3] dtype: DATA_TYPE_BFLOAT16 raw: "%s" } '
                                                     'targets { probabilities { shape: [1, 3] dtype: DATA_TYPE_BFLOAT16 raw: "%s" } } '
                                                     'method: METHOD_CHAIN_RULE return_jacobian: true grad_loss { dtype: DATA_TYPE_BFLOAT16 raw: "%s" }'
                                                     % (bf16(1.75, 1.75, -3), bf16(0.25, 0.25, 0.5), bf16(2))),
    "backward_float16_grad_probabilities_values": (1, 'logits { shape: 2 dtype: DATA_TYPE_FLOAT16 values: [1.75, 1.75] } '
                                                      'grad_probabilities { shape: 2 dtype: DATA_TYPE_FLOAT16 values: [0, -2] } return_probabilities: true'),
    "verify_raw_float16": (2, 'logits { shape: [1, 2] dtype: DATA_TYPE_FLOAT16 raw: "%s" } '
                              'targets { class_indices { values: 1 } } candidate_grad { shape: [1, 2] dtype: DATA_TYPE_FLOAT16 raw: "%s" }'
                              % (f16(1.75, 1.75), f16(0.5, -0.5))),
    # VerifyGradient
    "verify_motivating_sum": (2, MOTIVATING_LOGITS + ' ' + PROBS_01 + ' options { reduction: REDUCTION_SUM } '
                                 'candidate_grad { shape: 2 values: [6.125, 2.625] }'),
    "verify_motivating_mean": (2, MOTIVATING_LOGITS + ' ' + PROBS_01 + ' candidate_grad { shape: 2 values: [6.125, 2.625] }'),
    "verify_candidate_jacobian": (2, MOTIVATING_LOGITS + ' ' + PROBS_01 +
                                     ' candidate_jacobian { shape: [2, 2] values: [0.25, -0.25, -0.25, 0.25] }'),
    "verify_central_difference": (2, 'logits { shape: [2, 3] values: [2, 1, 0.1, 0.5, 2.5, 0.3] } '
                                     'targets { class_indices { values: [0, 1] } } numeric_method: NUMERIC_METHOD_CENTRAL_DIFFERENCE epsilon: 1e-4'),
    "verify_options_candidate": (2, 'logits { shape: [2, 3] values: [2, 1, 0.1, 0.5, 2.5, 0.3] } '
                                    'targets { class_indices { values: [0, 1] } } '
                                    'options { label_smoothing: 0.1 class_weights: [1, 2, 3] } '
                                    'candidate_grad { shape: [2, 3] values: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1] } rtol: 1e-3 atol: 1e-6'),
    "verify_no_targets": (2, MOTIVATING_LOGITS),
    "verify_work_over_limit": (2, 'logits { shape: [16, 512] dtype: DATA_TYPE_FLOAT32 } targets { class_indices { } }'),
    "verify_raw_float64_sign_flipped": (2, 'logits { shape: [1, 2] dtype: DATA_TYPE_FLOAT64 raw: "%s" } '
                                           'targets { class_indices { values: 1 } } candidate_grad { shape: [1, 2] values: [-0.5, 0.5] } '
                                           'options { reduction: REDUCTION_SUM }' % f64(1.75, 1.75)),
}

MESSAGES = {0: "ForwardRequest", 1: "BackwardRequest", 2: "VerifyGradientRequest"}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def request_corpus():
    out = os.path.join(HERE, "corpus", "request_fuzzer")
    for name, (rpc, text) in sorted(REQUESTS.items()):
        binary = subprocess.run(
            ["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
             "--encode=gradserve.v1." + MESSAGES[rpc], "gradserve/v1/gradserve.proto"],
            input=text.encode(), stdout=subprocess.PIPE, check=True).stdout
        write(os.path.join(out, name), bytes([rpc]) + binary)


def mode3(x):
    """Bytes that math_case.cc's logit mode 3 decodes to x (x = m·2^(e-32), m in [-1, 1))."""
    e = 0
    m = x
    while abs(m) >= 1:
        m /= 2
        e += 1
    unit = (m + 1) / 2
    return struct.pack(">Q", int(round(unit * 2**53)) << 11) + bytes([e + 32])


def math_corpus():
    out = os.path.join(HERE, "corpus", "math_fuzzer")
    # The motivating case in float64: logits (1.75, 1.75), one-hot target class 1, SUM.
    motivating = (bytes([1, 1, 1, 3]) + mode3(1.75) + mode3(1.75) +
                  bytes([1, 0, 0, 1, 0, 0, 1, 0, 1]))
    write(os.path.join(out, "motivating_float64"), motivating)
    write(os.path.join(out, "motivating_float32"), bytes([0]) + motivating[1:])
    # float32 logits (0, 120) with target class 0: the chain rule's underflow case.
    underflow = (bytes([0, 1, 1, 0]) + bytes([8, 8]) +  # mode 0: integers; 8 -> 0
                 bytes([1, 0, 0, 0, 0, 0, 1]))
    write(os.path.join(out, "small_integers_float32"), underflow)
    rng = random.Random(6)
    for k in range(30):
        size = rng.choice([16, 32, 64, 128, 256, 512, 1024])
        data = bytearray(rng.getrandbits(8) for _ in range(size))
        data[1] = data[1] % 5          # small batches
        data[2] = data[2] % 20         # a few classes
        write(os.path.join(out, "random_%02d" % k), bytes(data))


if __name__ == "__main__":
    request_corpus()
    math_corpus()
