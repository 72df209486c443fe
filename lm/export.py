"""Export a run for PyTorch: `python -m lm.export --checkpoint DIR OUT.safetensors
--format pytorch`."""


def main(out=None, checkpoint=None, format="pytorch", which="best", overwrite=False):
    """Write a run's weights as a PyTorch state dict in a safetensors file.

    Keys as nn.Embedding/nn.LSTM/nn.GRU/nn.RNN/nn.Linear name them (README: "Beyond one
    machine"); the metadata holds config.json's sections and the vocabulary. Load it in
    PyTorch with `lm.interop.torch_model.from_file(OUT)`; bring it back with
    `python -m lm.import_torch OUT --out_dir DIR`. Weights only, no optimiser state.

    Args:
      out: the .safetensors file to write (an existing file is refused unless --overwrite)
      checkpoint: run directory (from lm.train, lm.sentiment train or lm.seq2seq train)
      format: pytorch (the one layout so far)
      which: "best" or "last" weights
      overwrite: replace OUT if it exists (the write is atomic either way)
    """
    from lm.cli import check_str
    from lm.config.checks import check_bool, check_choice
    from lm.interop.files import export_run
    from lm.storage.run_dir import check_run_dir

    if out is None or checkpoint is None:
        raise ValueError("usage: python -m lm.export --checkpoint RUN_DIR OUT.safetensors "
                         "--format pytorch")
    out = check_str("out", out)
    if not out.endswith(".safetensors"):
        raise ValueError(f"{out}: the output file name must end in .safetensors")
    check_choice("format", format, ("pytorch",))
    which = check_choice("which", which, ("best", "last"))
    run_dir = check_run_dir(check_str("checkpoint", checkpoint))
    config, state = export_run(run_dir, out, which, overwrite=check_bool("overwrite", overwrite))
    n = sum(a.size for a in state.values())
    print(f"wrote {out}: {config['kind']} {config['model'].get('cell', '')}, {len(state)} "
          f"tensors, {n:,} weights in PyTorch layout")


if __name__ == "__main__":
    from lm.cli import run_cli
    run_cli(main)
