"""gradserve: softmax cross-entropy forward passes, gradients and gradient verification, served.

numpy in, numpy out (CPU torch tensors accepted); big batches split into chunks with the results
one call would give; mistakes in hand-derived gradients explained.

    import gradserve
    with gradserve.Client("127.0.0.1:50051") as gs:
        r = gs.backward(logits, labels=labels)               # r.grad_logits, r.loss
        v = gs.verify([1.75, 1.75], target_probs=[0, 1], candidate=[6.125, 2.625])
        v.findings[0].code                                   # 'JACOBIAN_AT_LOGITS'

See help(gradserve.Client), help(gradserve.Client.verify); gradserve.aio.Client for asyncio.
"""

from gradserve import aio
from gradserve._results import BackwardResult, Finding, ForwardResult, VerifyResult
from gradserve.client import Client
from gradserve.errors import (DeadlineExceeded, Error, InvalidArgument, ResourceExhausted,
                              Unauthenticated, Unavailable)

__version__ = "0.1.0"

__all__ = [
    "Client", "aio", "BackwardResult", "ForwardResult", "VerifyResult", "Finding", "Error",
    "InvalidArgument", "ResourceExhausted", "Unauthenticated", "Unavailable", "DeadlineExceeded",
]
