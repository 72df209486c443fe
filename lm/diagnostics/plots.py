"""Figures of the diagnostics: gradient norms against the distance from the loss, and the
recall task's accuracy against the distance, drawn with lm.training.curves' machinery."""
import numpy as np

from lm.training.curves import figure_png, new_figure

STYLES = ["-", "--", ":", "-."]  # layer 1, 2, 3, ...


def layer_names(norms):
    """The recurrent layers of a `gradient_norms` result, bottom first."""
    return sorted((k for k in norms if k.startswith("layer ")), key=lambda k: int(k.split()[1]))


def draw_gradients(ax, curves, title=None):
    """curves: [(label, gradient_norms result[, matplotlib line options])]: one line per
    model and layer (layers told apart by line style), log scale."""
    for i, (label, norms, *options) in enumerate(curves):
        layers = layer_names(norms)
        for j, name in enumerate(layers):
            y = norms[name]
            style = {"color": f"C{i % 10}", "linestyle": STYLES[j % len(STYLES)],
                     **(options[0] if options else {})}
            ax.plot(np.arange(len(y)), y, label=label if len(layers) == 1 else
                    f"{label}, {name}", **style)
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss (steps back)")
    ax.set_ylabel("mean ||d loss / d h_t||")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "gradient reaching each step")


def draw_accuracy(ax, results, chance=None, title=None):
    """results: {label: [(distance, accuracy), ...]}; a dashed line at chance."""
    for i, (label, points) in enumerate(results.items()):
        x, y = zip(*sorted(points))
        ax.plot(x, [100 * v for v in y], "-o", color=f"C{i % 10}", label=label)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("distance between the symbol and the loss (steps)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "recall the first token")


def gradients_png(curves, title=None):
    """The figure of `draw_gradients` as PNG bytes."""
    fig = new_figure((8, 5.5))
    draw_gradients(fig.subplots(), curves, title)
    fig.tight_layout()
    return figure_png(fig)


def recall_png(results, chance, curves, accuracy_title=None, gradient_title=None):
    """Accuracy against distance beside the gradient norms, as PNG bytes."""
    fig = new_figure((14, 5.5))
    left, right = fig.subplots(1, 2)
    draw_accuracy(left, results, chance, accuracy_title)
    draw_gradients(right, curves, gradient_title)
    fig.tight_layout()
    return figure_png(fig)

