"""Layers with hand-written forward and backward passes.

Conventions, fixed once for the whole package:
- Batch first. Shapes: N batch, T time, D input features, H hidden, V vocabulary,
  M output features. Sequences are (N, T, D); hidden states (N, T, H).
- Every layer has `params` and `grads`: dicts from short names (`Wx`, `Wh`, `b`) to
  arrays of the same shape. `backward` *adds* into `grads` (tied weights get both
  contributions) and returns the gradient to the inputs; `zero_grad()` resets.
  Parameters are updated in place only, never rebound.
- Sequence-level `forward` keeps what `backward` needs on the layer; `step_forward`
  returns its cache explicitly and `step_backward(dnext, cache)` uses it.
- Weights: inputs are multiplied on the right, `x @ Wx`, so `Wx` is (D, G*H) with the
  gate blocks side by side. LSTM gate blocks in order i, f, o, g. GRU blocks r, z, n with
  PyTorch's equations: n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)), h' = (1-z)*n + z*h.
- Masks are (N, T) booleans, True where a step is valid; valid steps are a prefix of each
  row. A padded step leaves the state unchanged, outputs zero and gets zero input
  gradient. With no mask, a step whose features are all NaN counts as padding.
- Recurrent layers: `forward(x, h0=None, mask=None)` (LSTM: `forward(x, h0=None,
  c0=None, mask=None)`) -> h (N, T, H); `backward(dh) -> (dx, dh0)` (LSTM leaves the
  gradient of c0 in `self.dc0`). `h0` may be (N, H), (H,) shared by the batch (its
  gradient is then summed over the batch), or None for zeros. After forward,
  `final_state` is a tuple, `(h,)` or `(h, c)`, each (N, H), taken at each row's last
  valid step, so `layer.forward(x2, *layer.final_state)` continues the sequence.
- Convolution and max pooling over time (`Conv1D`, `MaxPool1D`): `forward(x, mask=None)`,
  `backward(dout) -> dx`; their outputs may be shorter than T, so after forward the mask
  of the outputs is `out_mask` (None when there is no padding). Conv1D's W is (K, D, F),
  PyTorch's (F, D, K) weight transposed.
- float32 by default; pass `dtype=np.float64` for gradient checks. Randomness comes from
  an explicit `np.random.Generator` (`rng=`), never numpy's global state.
"""
from .adaptive_softmax import AdaptiveSoftmax, default_cutoffs
from .base import Layer, as_rng
from .bidirectional import Bidirectional
from .conv import Conv1D, MaxPool1D
from .dropout import Dropout
from .embedding import Embedding
from .gru import GRU
from .linear import TemporalLinear
from .lstm import LSTM
from .pooling import TemporalPooling
from .rnn import VanillaRNN

__all__ = ["Layer", "as_rng", "Embedding", "VanillaRNN", "LSTM", "GRU", "Bidirectional",
           "TemporalLinear", "TemporalPooling", "Dropout", "Conv1D", "MaxPool1D",
           "AdaptiveSoftmax", "default_cutoffs"]
