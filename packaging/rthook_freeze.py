"""PyInstaller runtime hook: let the frozen executable serve multiprocessing's helper processes.

multiprocessing starts helpers (the resource tracker, spawned workers) as
``sys.executable -c "from multiprocessing... import main; main(N)"``; in a frozen app sys.executable is
mmad-inspector itself, whose CLI would reject those arguments. ``freeze_support()`` (patched by PyInstaller's own
multiprocessing hook to handle these on Linux too) runs the helper and exits; for a normal start it returns.
"""
import multiprocessing

multiprocessing.freeze_support()
