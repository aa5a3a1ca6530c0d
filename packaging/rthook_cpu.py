"""PyInstaller runtime hook of the CPU build: hide the GPUs unless the user chose otherwise.

The CPU build leaves out the CUDA libraries that torch loads only on first GPU use (cuDNN's engines,
cuSOLVER, ...). With CUDA_VISIBLE_DEVICES empty, ``torch.cuda.is_available()`` is False and the app
takes its CPU path instead of failing inside a missing library. Setting the variable yourself overrides this.
"""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
