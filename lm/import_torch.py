"""Import a PyTorch-layout checkpoint: `python -m lm.import_torch IN.safetensors --out_dir DIR`."""


def main(file=None, out_dir=None):
    """Turn a PyTorch-layout safetensors file into an lm run directory.

    The file comes from lm.export or a PyTorch program (lm.interop.torch_model.save_file,
    scripts/train_torch_ddp.py); the run directory gets config.json, vocab.json and
    best.safetensors, which lm.sample, lm.evaluate, lm.train --init_from and
    lm.sentiment train --init_from (or predict and evaluate, for a classifier;
    lm.seq2seq predict and evaluate, for a seq2seq model) accept.

    The file is read through lm's safetensors reader (no lm checksum needed; bounded
    header, offsets, dtypes and finite values checked) and every key and shape is checked
    against the model its metadata describes before anything is written.

    Args:
      file: the .safetensors file to read
      out_dir: the run directory to create (must not exist, or be empty)
    """
    from lm.cli import check_str

    from lm.interop.files import import_run

    if file is None or out_dir is None:
        raise ValueError("usage: python -m lm.import_torch IN.safetensors --out_dir RUN_DIR")
    file, out_dir = check_str("file", file), check_str("out_dir", out_dir)
    config, model = import_run(file, out_dir)
    print(f"wrote {out_dir}: {config['kind']} {config['model'].get('cell', '')}, "
          f"{model.num_params():,} weights from {file}")


if __name__ == "__main__":
    from lm.cli import run_cli
    run_cli(main)
