from setuptools import find_packages, setup

setup(
    name="lm",
    version="0.1.0",
    description="Recurrent language models and sentiment classifiers in numpy, "
    "with every forward and backward pass written out by hand.",
    packages=find_packages(include=["lm", "lm.*"]),
    python_requires=">=3.9",
    install_requires=["numpy>=1.22", "regex", "tqdm", "matplotlib", "fire", "safetensors"],
    extras_require={"test": ["pytest", "hypothesis"], "torch": ["torch==2.13.0"]},
)
