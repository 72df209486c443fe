"""Models built from the layers: the shared encoder, the language model, the classifier, seq2seq.

The model contract, honoured by every model so that `lm.training.Trainer` never asks
which model it has:
- `params` / `grads`: dicts with the same flat dotted names (`embed.W`, `rnn0.Wx`,
  `head.b`); optimisers, checkpoints and gradient checks all use those names.
- `loss(batch, state=None) -> (loss, report)`: `batch` is an `lm.data.batch.Batch`; the
  mean loss over `batch.num_targets()` targets, with `grads` zeroed then filled. `report`
  is a dict: "count" (the targets averaged over), and where the model has them "state"
  (recurrent state to carry into the next batch; cut from the gradient there) and
  "correct" (right predictions). Weight decay is the optimiser's, never the model's.
- `train()` / `eval()`: dropout on or off.
- `config()` -> JSON-able dict and `from_config(d, dtype)` that rebuilds the model.
"""
from .encoder import CELLS, Encoder
from .language_model import LanguageModelRNN
from .seq2seq import Seq2Seq

__all__ = ["CELLS", "Encoder", "LanguageModelRNN", "Seq2Seq"]
