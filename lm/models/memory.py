"""A model's memory, estimated from its config before anything is allocated, and the
memory the machine has available: a size that cannot fit is refused with one line
(`check_memory`) instead of a MemoryError, or a machine swapping, halfway through.

    weights      P values (+ the scaled copy each recurrent layer keeps of its weights)
    gradients    P values                           (training)
    optimiser    2P (Adam's moments) or P (SGD momentum) values   (training)
    activations  N * T * per-token values of one step: the embedding, each recurrent
                 layer's caches (~(2g + 4) * H + 2 * D, g gates), the head's scores,
                 probabilities and their gradient (3 * V for a language model)
    cache        scoring with a continuous cache of M positions (lm.models.cache): its
                 keys N * (M + T) * H and three float64 N * T * (M + T) arrays (scores,
                 weights, matches)

P is exact (`count_params` equals the built model's `num_params()`); the activations
are an estimate of the largest buffers, not a bound on every temporary.
"""
from dataclasses import dataclass

GATES = {"rnn": 1, "gru": 3, "lstm": 4}    # gate blocks per recurrent cell
BIASES = {"rnn": 1, "gru": 2, "lstm": 1}   # bias vectors of g*H (GRU: bx and bh)
ITEMSIZE = {"float32": 4, "float64": 8}


def _dims(model):
    V, E = int(model["vocab_size"]), int(model["embed_size"])
    H, L = int(model.get("hidden_size", E)), int(model.get("num_layers", 1))
    dirs = 2 if model.get("bidirectional") else 1
    return V, E, H, L, model.get("cell", "lstm"), dirs


def count_params(model):
    """(all parameters, recurrent ones) of the model a config.json "model" dict describes
    (a language model, or a classifier when it has `num_classes`): V*E embedding,
    per layer and direction D*gH + H*gH + biases, and the head."""
    V, E, H, L, cell, dirs = _dims(model)
    rec, out, conv = 0, E, 0
    if cell in ("cnn", "cnn-lstm"):      # Conv1D: K*E*F weights and F biases
        F = int(model.get("filters", 200))
        conv = int(model.get("kernel_size", 3)) * E * F + F
        out = F
    if cell in GATES or cell == "cnn-lstm":
        g, d = GATES.get(cell, GATES["lstm"]), out
        for _ in range(L):
            rec += dirs * (d * g * H + H * g * H + BIASES.get(cell, 1) * g * H)
            d = dirs * H
        out = d
    if "num_classes" in model:
        head = out * int(model["num_classes"]) + int(model["num_classes"])
    elif model.get("softmax") == "adaptive" and model.get("cutoffs"):
        head = _adaptive_params(out, V, model["cutoffs"])
    else:
        head = V if model.get("tie_weights") else out * V + V
    return V * E + conv + rec + head, rec


def _adaptive_params(H, V, cutoffs, div_value=4.0):
    """An adaptive softmax's weights: the head H*(c_0 + K), each cluster i a projection
    H*h_i and an output h_i*size_i, h_i = H // div_value**(i+1) (lm.layers.adaptive_softmax)."""
    ends = [int(c) for c in cutoffs] + [V]
    total = H * (ends[0] + len(ends) - 1)
    for i in range(len(ends) - 1):
        width = int(H // div_value ** (i + 1))
        total += H * width + width * (ends[i + 1] - ends[i])
    return total


@dataclass
class MemoryEstimate:
    """Bytes of each part; `total` their sum."""
    weights: int
    training: int      # gradients and optimiser state
    activations: int

    @property
    def total(self):
        return self.weights + self.training + self.activations

    def describe(self):
        parts = [f"weights {format_bytes(self.weights)}"]
        if self.training:
            parts.append(f"gradients and optimiser {format_bytes(self.training)}")
        parts.append(f"activations {format_bytes(self.activations)}")
        return ", ".join(parts)


def estimate_memory(model, dtype="float32", batch=1, steps=1, training=False,
                    optimizer="adam"):
    """MemoryEstimate of the model `model` (a config "model" dict) on (batch, steps)
    inputs: forward and backward with gradients and optimiser state when `training`."""
    b = ITEMSIZE.get(dtype, 4)
    P, rec = count_params(model)
    V, E, H, L, cell, dirs = _dims(model)
    per_token = E
    if cell in GATES:
        d = E
        for _ in range(L):
            per_token += dirs * ((2 * GATES[cell] + 4) * H + 2 * d)
            d = dirs * H
    per_token += dirs * H if "num_classes" in model else 3 * V  # pooled states / scores
    acts = int(batch) * int(steps) * per_token * b
    train = P * b * (1 + (2 if optimizer == "adam" else 1)) if training else 0
    acts = acts if training else acts // 2
    M = int(model.get("cache_size", 0))
    if M:
        acts += int(batch) * (M + int(steps)) * (H * b + int(steps) * 3 * 8)
    return MemoryEstimate((P + rec) * b, train, acts)


def available_memory():
    """Bytes this process may still allocate: MemAvailable of /proc/meminfo, lowered to
    the room left under a cgroup (v2) memory limit; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def format_bytes(n):
    """1.5 GiB, 320.0 MiB, 12.0 KiB, 7 bytes."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} bytes"


class NotEnoughMemory(ValueError):
    """A model that would not fit in the memory available (the CLIs: one line, exit 2)."""


def check_memory(estimate, what, hint="", available=None):
    """Raise NotEnoughMemory when `estimate` (MemoryEstimate) exceeds the memory available
    (`available` bytes, default available_memory(); unknown: no check). `what` names the
    model in the message; `hint` says which flags make it smaller."""
    if available is None:
        available = available_memory()
        if available is None:
            return
    if estimate.total > available:
        raise NotEnoughMemory(
            f"{what} needs about {format_bytes(estimate.total)} of memory "
            f"({estimate.describe()}) but only {format_bytes(available)} is available"
            + (f"; {hint}" if hint else ""))
