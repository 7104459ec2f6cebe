"""Safe model persistence: skops.io only, sha256-checked, loaded with Keel's own allow-list.

A pickle is code: no model file is ever unpickled. The allow-list below is code, reviewed
on every addition; it is never read from a model file (that was the root of a published
skops advisory). Types a user accepted when importing an outside model are stored per
version in the registry and added for that version only.
"""

from pathlib import Path
from typing import Any

from app.core.domain.errors import IntegrityError, ValidationError
from app.core.fileio import atomic_path, sha256_file

Estimator = Any  # a fitted scikit-learn estimator (scikit-learn ships no type hints)

# Types beyond skops' defaults that Keel's own presets need. Review any addition.
KEEL_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def dump_model(model: Estimator, path: Path) -> str:
    """Write the model atomically to path; return its sha256."""
    import skops.io as sio

    with atomic_path(Path(path)) as tmp:
        sio.dump(model, tmp)
    return sha256_file(path)


def untrusted_types(path: Path, extra_trusted: tuple | list = ()) -> list[str]:
    """Types in the file that neither skops' defaults nor Keel's allow-list trust."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=str(path))
    except Exception as exc:  # a damaged or foreign file: zipfile / json / skops errors
        raise ValidationError(f"{Path(path).name}: not a readable skops model file ({exc})") from None
    allowed = set(trusted_types(extra_trusted))
    return sorted(t for t in found if t not in allowed)


def trusted_types(extra: tuple | list = ()) -> list[str]:
    """Keel's allow-list plus the types accepted for one version (skops trusts its defaults besides)."""
    return [*KEEL_TRUSTED_TYPES, *extra]


def load_model(path: Path, expected_sha256: str, extra_trusted: tuple | list = ()) -> Estimator:
    """Load a registered model after checking its hash and its types."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"model file {path} is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise IntegrityError(
            f"model file {path.name} failed its integrity check: sha256 {actual[:12]}… does not match "
            f"the registry's {expected_sha256[:12]}…; refusing to load it"
        )
    # skops audits every type against `trusted` while it loads and refuses the file before building
    # anything from an untrusted one, so a separate get_untrusted_types pass would read it twice.
    try:
        return sio.load(str(path), trusted=trusted_types(extra_trusted))
    except UntrustedTypesFoundException as exc:
        refused = untrusted_types(path, extra_trusted)
        raise IntegrityError(f"model file {path.name} holds untrusted type(s) {', '.join(refused)}; refusing to load it"
                             ) from exc


def load_untrusted_for_import(path: Path, accepted_types: list[str]) -> Estimator:
    """Load an outside skops file, trusting only Keel's list plus the types the user accepted."""
    import skops.io as sio

    refused = untrusted_types(path, accepted_types)
    if refused:
        raise ValidationError(
            f"{Path(path).name}: holds type(s) outside Keel's trusted list: {', '.join(refused)}; "
            f"review them and accept each with --trust TYPE to import"
        )
    try:
        return sio.load(str(path), trusted=trusted_types(accepted_types))
    except Exception as exc:
        raise ValidationError(f"{Path(path).name}: could not be loaded as a skops model ({exc})") from None
