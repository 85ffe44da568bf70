"""tis (Think in Safety): evaluate, build data for, and fine-tune multimodal reasoning models for safety."""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_run"]


def __getattr__(name: str):
    # The Python API mirrors `tis eval`; imported lazily so `import tis` stays light.
    if name == "evaluate":
        from tis.pipeline.evaluate import evaluate

        return evaluate
    if name == "load_run":  # a run directory as typed objects: manifest, result rows, summary
        from tis.results.runs import load_run

        return load_run
    raise AttributeError(name)
