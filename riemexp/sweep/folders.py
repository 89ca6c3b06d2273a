"""What a job folder says about itself, and whether to believe it.

A run folder names its experiment three times: config.yaml (the resolved config), and the run
identity (`riemexp.identity`) stored in metrics.json and in model.pt. A folder is trusted as a
completed run of identity X only when

    metrics.json  status "completed" and run_identity X
    model.pt      run_identity X (read without torch and without running code from the file)
    config.yaml   identity_of(its values, model.pt's dataset_sha256) == X
    geometry.npz  present, when the config enables the geometry step

Folders whose files name different identities (an orphaned writer, a hand edit, a copy from
elsewhere) are reported and never counted. Saved configs are read as written: interpolations
such as `${oc.env:NAME}` stay literal strings and are never resolved.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from riemexp.identity import IDENTITY_KEY, identity_of
from riemexp.layout import CONFIG_FILE, GEOMETRY_FILE, METRICS_FILE, MODEL_FILE

JOB_FILE = "job.json"  # a sweep job's last action (see riemexp.sweep.jobs)
HYDRA_DIR = ".hydra"
NOT_STARTED = "not started"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; {} when missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class _LiteralLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as OmegaConf.load reads it (floats such as 1e-3, no timestamps, no duplicate keys),
    with libyaml's parser when present and no OmegaConf objects: plain values only."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [k.value for k, _ in node.value if k.tag == yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG]
        if len(keys) != len(set(keys)):
            raise yaml.constructor.ConstructorError(None, None, "found a duplicate key", node.start_mark)
        return super().construct_mapping(node, deep=deep)


class _LiteralDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes YAML that _LiteralLoader (and OmegaConf) read back as written: a string that
    would read as a float there (e.g. "1e5") is quoted."""


_FLOAT = (
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_LiteralLoader.add_implicit_resolver(*_FLOAT)
_LiteralDumper.add_implicit_resolver(*_FLOAT)
_LiteralLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _LiteralLoader.yaml_implicit_resolvers.items()
}


def read_literal_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping as plain values, interpolations left as the strings they are.

    A downloaded folder's `seed: ${oc.env:HOME}` must not read the environment: nothing here
    resolves (and no OmegaConf objects are built, which also makes it fast). Raises OSError
    or ValueError when the file is missing or not YAML.
    """
    text = path.read_text()
    try:
        values = yaml.load(text, Loader=_LiteralLoader)  # a safe loader: plain YAML types only
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{path} is not valid YAML: {detail}") from None
    return values if isinstance(values, dict) else {}


def dump_literal_yaml(values: Any) -> str:
    """Plain values as YAML that `read_literal_yaml` and OmegaConf read back unchanged."""
    return yaml.dump(values, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"network": {"depth": 4}} -> {"network.depth": 4}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class _Placeholder:
    """Stands for any torch object in a model.pt being read for its plain fields only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Placeholder:
        return _Placeholder()

    def __setstate__(self, state: Any) -> None:
        pass


class _FieldsUnpickler(pickle.Unpickler):
    """Unpickles torch.save's data.pkl with every torch class and function replaced by a
    placeholder and every other global refused: no code from the file ever runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch" or module.startswith("torch."):
            return _Placeholder
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:  # tensor storages: not read
        return _Placeholder()


def model_fields(path: Path) -> dict[str, Any]:
    """The plain (non-tensor) entries of a model.pt written by riemexp, without importing torch.

    Returns e.g. {"run_identity": ..., "dataset_sha256": ..., "config": {...}}; falls back to
    torch.load(weights_only=True) for a file in another layout. RunFolderError (from
    `riemexp.runner.read_model_file`) when the file is missing or unreadable.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            with archive.open(name) as f:
                payload = _FieldsUnpickler(f).load()
        if isinstance(payload, dict) and "state_dict" in payload:
            return {k: v for k, v in payload.items() if k != "state_dict"}
    except Exception:  # not the zip layout torch.save writes today: let torch read it
        pass
    from riemexp.runner import read_model_file

    return {k: v for k, v in read_model_file(path.parent).items() if k != "state_dict"}


@dataclass
class JobFolder:
    """One folder of a sweep folder, as its files tell it."""

    path: Path
    config: dict[str, Any]  # config.yaml (else .hydra/config.yaml) as written, nested, unresolved
    metrics: dict[str, Any]  # metrics.json; {} when absent
    record: dict[str, Any]  # job.json; {} when absent
    identity: str | None = None  # the run identity the folder's files agree on, if they do
    problem: str | None = None  # why a completed-looking folder cannot be trusted
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", NOT_STARTED))

    @property
    def claimed(self) -> str | None:
        """The identity metrics.json names (a running or failed run has no model.pt yet)."""
        value = self.metrics.get(IDENTITY_KEY)
        return value if isinstance(value, str) else None

    @property
    def trusted(self) -> bool:
        """A completed run whose files agree on one identity."""
        return self.status == "completed" and self.problem is None and self.identity is not None


def looks_like_job(path: Path) -> bool:
    """A sub-folder a run or a Hydra job wrote: metrics.json, config.yaml or .hydra/ in it."""
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and any((path / n).exists() for n in (METRICS_FILE, CONFIG_FILE, HYDRA_DIR))
    )


def read_job_folder(path: Path) -> JobFolder:
    """Read a job folder's config, metrics and record, and check that they name one run."""
    written: dict[str, Any] | str = f"{CONFIG_FILE} is missing"  # the run's config, or why not
    config: dict[str, Any] = {}
    try:
        written = config = read_literal_yaml(path / CONFIG_FILE)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        written = f"{CONFIG_FILE} cannot be read: {err}"
    if not config:  # not trained yet: what Hydra composed for the job
        try:
            config = read_literal_yaml(path / HYDRA_DIR / "config.yaml")
        except (OSError, ValueError):
            pass
    folder = JobFolder(path, config, read_json(path / METRICS_FILE), read_json(path / JOB_FILE))
    if folder.status == "completed":
        folder.identity, folder.problem = _check_completed(path, folder, written)
    return folder


def _check_completed(
    path: Path, folder: JobFolder, written: dict[str, Any] | str
) -> tuple[str | None, str | None]:
    """(identity, None) for a completed run whose files agree; (None, what disagrees) otherwise."""
    said = folder.claimed
    if said is None:
        return None, f"{METRICS_FILE} names no run identity (written by an older riemexp?)"
    try:
        model = model_fields(path / MODEL_FILE)
    except Exception as err:  # RunFolderError: missing or corrupt
        return None, str(err)
    if model.get(IDENTITY_KEY) != said:
        return None, f"{MODEL_FILE} is of run {model.get(IDENTITY_KEY)}, {METRICS_FILE} of run {said}"
    if isinstance(written, str):
        return None, written
    own = identity_of(written, model.get("dataset_sha256"))
    if own != said:
        return (
            None,
            f"{CONFIG_FILE} is the config of run {own}, {METRICS_FILE} and {MODEL_FILE} of run {said}",
        )
    geometry = written.get("geometry")
    if isinstance(geometry, dict) and geometry.get("enabled") and not (path / GEOMETRY_FILE).is_file():
        return None, f"{GEOMETRY_FILE} is missing"
    return said, None


def scan(sweep_dir: Path) -> list[JobFolder]:
    """Every job folder directly inside sweep_dir (none when it does not exist), by name."""
    if not sweep_dir.is_dir():
        return []
    return [read_job_folder(p) for p in sorted(sweep_dir.iterdir()) if looks_like_job(p)]


__all__ = [
    "JobFolder",
    "dump_literal_yaml",
    "flatten",
    "model_fields",
    "read_job_folder",
    "read_literal_yaml",
    "scan",
]
