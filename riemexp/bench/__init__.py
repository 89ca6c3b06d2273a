"""Benchmarks: each module times riemexp against a reference and prints both and the ratio.

Run as `riemexp bench NAME [--option value ...]`; each module has `main(args) -> int`.
"""

#: benchmark name -> (module, one-line description)
BENCHES: dict[str, tuple[str, str]] = {
    "train": ("riemexp.bench.train", "riemexp's training step against a hand-written PyTorch loop"),
    "sweep": (
        "riemexp.bench.sweep",
        "a sweep on the joblib launcher against the same sweep run job after job",
    ),
    "geometry": (
        "riemexp.bench.geometry",
        "riemexp's geometry extraction against torch.func.vmap(jacrev) and per-point autograd",
    ),
}
