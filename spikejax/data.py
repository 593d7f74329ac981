"""Datasets (MNIST, Fashion-MNIST, scikit-learn digits) and on-device mini-batching.

Loading
-------
``load_mnist`` / ``load_fashion_mnist`` return ``(images, labels)`` as numpy arrays: images
``uint8 [N, 28, 28]`` (or ``float32`` in [0, 1] with ``as_float=True``), labels ``uint8 [N]``.
Files are the four standard IDX files (``*-idx3-ubyte`` / ``*-idx1-ubyte``, gzip-compressed or
not). They are looked for, per file, in this order:

1. the ``data_dir`` argument: ``data_dir/<dataset>/`` then ``data_dir`` itself;
2. the environment variable ``SPIKEJAX_DATA``: ``$SPIKEJAX_DATA/<dataset>/`` then
   ``$SPIKEJAX_DATA`` itself (so it may point at a folder holding ``mnist/`` and
   ``fashion-mnist/``, or at one dataset's folder);
3. the user cache: ``cache_dir`` argument, else ``$XDG_CACHE_HOME/spikejax/<dataset>/``, else
   ``~/.cache/spikejax/<dataset>/``.

``<dataset>`` is ``mnist`` or ``fashion-mnist`` (``fashion_mnist`` is accepted too). A file that
is missing everywhere is downloaded (``download=True``) into ``data_dir/<dataset>/`` when
``data_dir`` was given, else into the cache. The base URL is the ``url`` argument, else the
environment variable ``SPIKEJAX_MNIST_URL`` / ``SPIKEJAX_FASHION_MNIST_URL``, else the official
location. A download goes to a temporary file in the target folder, is decompressed, parsed and
checked against the embedded sha256 of its *decompressed* content, and only then renamed into
place with ``os.replace``: an interrupted, truncated or corrupt download never leaves a file that
looks good.

Local files are verified too (``verify=True``, the default): the sha256 of the decompressed
bytes must equal the embedded checksum. A successful verification is remembered for the rest
of the process (keyed by path, size and modification time), so repeated loads do not hash again.

Batching
--------
``epoch_batches(key, n, batch_size)`` returns an ``int32 [n_batches, batch_size]`` index array from
one PRNG permutation; ``iterate_batches`` runs a step function over those rows with ``lax.scan``,
gathering each batch on device (no per-sample Python work); ``epoch_scan`` does both.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "DataIntegrityError",
    "DatasetInfo",
    "DATASET_NAMES",
    "dataset_info",
    "read_idx",
    "load_mnist",
    "load_fashion_mnist",
    "load_digits",
    "load_dataset",
    "images_to_float",
    "default_cache_dir",
    "epoch_batches",
    "batch_mask",
    "take_batch",
    "iterate_batches",
    "epoch_scan",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class DatasetError(ValueError):
    """Base class of the dataset errors (a ``ValueError``)."""


class DataIntegrityError(DatasetError):
    """A data file has the wrong format, is truncated, or fails its checksum."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset files are in none of the places looked, and could not be downloaded."""


# --------------------------------------------------------------------------------------------
# Dataset specifications (checksums = sha256 of the decompressed IDX bytes, copied from
# /work/shared/data/{mnist,fashion-mnist}/SHA256SUMS)
# --------------------------------------------------------------------------------------------

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SPLIT_SIZES = {"train": 60000, "test": 10000}


@dataclass(frozen=True)
class _IdxSpec:
    name: str  # API name, e.g. "fashion_mnist"
    title: str  # human name for messages
    folders: tuple[str, ...]  # accepted sub-folder names, first is the canonical one (download)
    url: str  # official base URL (ends with '/')
    url_env: str
    sha256: dict  # uncompressed file name -> sha256 of its decompressed content


_MNIST = _IdxSpec(
    name="mnist",
    title="MNIST",
    folders=("mnist",),
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    url_env="SPIKEJAX_MNIST_URL",
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
)

_FASHION_MNIST = _IdxSpec(
    name="fashion_mnist",
    title="Fashion-MNIST",
    folders=("fashion-mnist", "fashion_mnist"),
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    url_env="SPIKEJAX_FASHION_MNIST_URL",
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
)

_IDX_SPECS = {s.name: s for s in (_MNIST, _FASHION_MNIST)}
# sha256 -> "MNIST t10k-images-idx3-ubyte", to say what a misplaced file actually is
_KNOWN_SHA = {sha: f"{s.title} {fname}" for s in _IDX_SPECS.values() for fname, sha in s.sha256.items()}


class DatasetInfo(NamedTuple):
    name: str
    image_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]


_INFO = {
    "mnist": DatasetInfo("mnist", (28, 28), 10, tuple(str(i) for i in range(10))),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        (28, 28),
        10,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "digits": DatasetInfo("digits", (8, 8), 10, tuple(str(i) for i in range(10))),
}
DATASET_NAMES = tuple(_INFO)


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name must be a dataset name string, one of {list(DATASET_NAMES)}; got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in _INFO:
        raise ValueError(f"unknown dataset name {name!r}; valid names: {list(DATASET_NAMES)}")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """Image shape, number of classes and class names of a registered dataset."""
    return _INFO[_canonical_name(name)]


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_VERIFIED: set = set()  # (realpath, size, mtime_ns, sha256) already checked in this process


def _expected_note(expected: str | None) -> str:
    return f" (expected sha256 of the decompressed content: {expected})" if expected else ""


def _read_bytes(path: str, expected_sha256: str | None = None) -> bytes:
    """File content, decompressed when it is gzip (detected by its magic bytes, not its name)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataIntegrityError(f"cannot read data file {path}: {e}") from e
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataIntegrityError(
                f"data file {path} is not a valid gzip stream (truncated or corrupt: {e})"
                f"{_expected_note(expected_sha256)}; delete it and download it again"
            ) from e
    return raw


def _parse_idx(data: bytes, path: str, expected_sha256: str | None = None) -> np.ndarray:
    note = _expected_note(expected_sha256)
    if len(data) < 4:
        raise DataIntegrityError(f"data file {path} is not an IDX file: only {len(data)} bytes{note}")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataIntegrityError(
            f"data file {path} is not an IDX file: bad magic number 0x{magic:08x} (expected 0x0000TTDD with "
            f"type code TT in {sorted(hex(c) for c in _IDX_DTYPES)} and DD >= 1 dimensions, e.g. 2051 for "
            f"images, 2049 for labels){note}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataIntegrityError(f"data file {path} is truncated inside its IDX header{note}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected_len = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_len:
        what = "truncated" if len(data) < expected_len else "longer than its header says"
        raise DataIntegrityError(
            f"data file {path} is {what}: the IDX header gives shape {dims} ({expected_len} bytes) but the "
            f"content has {len(data)} bytes{note}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _verify(path: str, data: bytes, expected_sha256: str) -> None:
    st = os.stat(path)
    token = (os.path.realpath(path), st.st_size, st.st_mtime_ns, expected_sha256)
    if token in _VERIFIED:
        return
    got = hashlib.sha256(data).hexdigest()
    if got != expected_sha256:
        what = _KNOWN_SHA.get(got)
        hint = f"; its content is the {what} file" if what else ""
        raise DataIntegrityError(
            f"checksum mismatch for data file {path}: sha256 of the decompressed content is {got}, expected "
            f"{expected_sha256}{hint}; delete the file (it will be downloaded again) or pass verify=False"
        )
    _VERIFIED.add(token)


def read_idx(path, expected_sha256: str | None = None, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a numpy array in native byte order.

    Args:
      path: file path.
      expected_sha256: if given, the sha256 of the *decompressed* bytes must equal it.
      expected_magic: if given, the IDX magic number must equal it (2051 for image files,
        2049 for label files).

    Raises:
      DataIntegrityError (a ``ValueError``) naming the file when it is not IDX, is truncated,
      is not valid gzip, or fails the checksum (the message gives the expected sha256).
    """
    path = os.fspath(path)
    data = _read_bytes(path, expected_sha256)
    arr = _parse_idx(data, path, expected_sha256)
    if expected_magic is not None:
        magic = int.from_bytes(data[:4], "big")
        if magic != expected_magic:
            raise DataIntegrityError(
                f"data file {path} has IDX magic number {magic}, expected {expected_magic}"
                f"{_expected_note(expected_sha256)}"
            )
    if expected_sha256 is not None:
        _verify(path, data, expected_sha256)
    return arr


# --------------------------------------------------------------------------------------------
# Locating and downloading files
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/spikejax`` when XDG_CACHE_HOME is set, else ``~/.cache/spikejax``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "spikejax")


def _candidate_dirs(spec: _IdxSpec, data_dir, cache_dir) -> list[tuple[str, str]]:
    """(directory, where-it-came-from) in lookup order."""
    other_folders = {f for s in _IDX_SPECS.values() if s is not spec for f in s.folders}
    out: list[tuple[str, str]] = []

    def add_root(root: str, origin: str, allow_self: bool):
        for folder in spec.folders:
            out.append((os.path.join(root, folder), origin))
        # the root may be the dataset folder itself, unless it is clearly another dataset's folder
        if allow_self and os.path.basename(os.path.normpath(root)) not in other_folders:
            out.append((root, origin))

    if data_dir is not None:
        add_root(os.path.expanduser(os.fspath(data_dir)), "data_dir argument", True)
    env = os.environ.get("SPIKEJAX_DATA", "")
    if env:
        add_root(os.path.expanduser(env), "SPIKEJAX_DATA", True)
    cache = os.path.expanduser(os.fspath(cache_dir)) if cache_dir is not None else default_cache_dir()
    add_root(cache, "cache_dir argument" if cache_dir is not None else "user cache", False)
    return out


def _find_file(fname: str, candidates) -> str | None:
    for d, _origin in candidates:
        for name in (fname + ".gz", fname):
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
    return None


def _download(url: str, dest_dir: str, fname: str, expected_sha256: str, timeout: float) -> str:
    """Download ``url`` to ``dest_dir/fname.gz`` atomically, after checking content and checksum."""
    os.makedirs(dest_dir, exist_ok=True)
    final = os.path.join(dest_dir, fname + ".gz")
    fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                n = 0
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    n += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if length is not None and int(length) != n:
            raise DataIntegrityError(
                f"download of {fname} from {url} is truncated: got {n} of {length} bytes"
                f"{_expected_note(expected_sha256)}"
            )
        data = _read_bytes(tmp, expected_sha256)
        label = f"{fname} (downloaded from {url})"
        _parse_idx(data, label, expected_sha256)
        got = hashlib.sha256(data).hexdigest()
        if got != expected_sha256:
            raise DataIntegrityError(
                f"checksum mismatch for downloaded file {fname} from {url}: sha256 of the decompressed content "
                f"is {got}, expected {expected_sha256}; nothing was saved"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache file is ordinary data
        os.replace(tmp, final)
        tmp = None
    except DataIntegrityError as e:
        msg = str(e).replace(tmp, f"{fname} (downloaded from {url})") if tmp else str(e)
        raise DataIntegrityError(msg) from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    st = os.stat(final)
    _VERIFIED.add((os.path.realpath(final), st.st_size, st.st_mtime_ns, expected_sha256))
    return final


def _resolve_files(spec: _IdxSpec, split: str, data_dir, download: bool, url, cache_dir, timeout) -> list[str]:
    candidates = _candidate_dirs(spec, data_dir, cache_dir)
    paths, missing = [], []
    for fname in _SPLIT_FILES[split]:
        p = _find_file(fname, candidates)
        paths.append(p)
        if p is None:
            missing.append(fname)
    if not missing:
        return paths

    if data_dir is not None:
        target = os.path.join(os.path.expanduser(os.fspath(data_dir)), spec.folders[0])
    else:
        root = os.path.expanduser(os.fspath(cache_dir)) if cache_dir is not None else default_cache_dir()
        target = os.path.join(root, spec.folders[0])
    base = url or os.environ.get(spec.url_env, "") or spec.url
    if not base.endswith("/"):
        base += "/"

    failure = None
    if download:
        try:
            for fname in missing:
                i = _SPLIT_FILES[split].index(fname)
                paths[i] = _download(base + fname + ".gz", target, fname, spec.sha256[fname], timeout)
            return paths
        except DataIntegrityError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            failure = f"download from {base} into {target} failed: {e}"

    lines = [
        f"{spec.title} {split} files not found: {', '.join(m + '[.gz]' for m in missing)}.",
        "Looked in (in this order):",
    ]
    lines += [f"  {d}{os.sep}  [{origin}]" for d, origin in candidates]
    if failure:
        lines.append(failure)
    else:
        lines.append("download=False, so nothing was downloaded.")
    lines.append(
        "To provide the files: set SPIKEJAX_DATA to a folder holding "
        f"'{spec.folders[0]}/' with the four standard IDX files (gzip or not), or pass data_dir=..., "
        f"or allow download=True with network access (base URL: url=... or ${spec.url_env}, default {spec.url})."
    )
    raise DatasetNotFoundError("\n".join(lines))


def _check_split(split) -> str:
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def images_to_float(images) -> np.ndarray:
    """uint8 images -> float32 in [0, 1] (divided by 255)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255) to convert, got dtype {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)


def _load_idx_dataset(spec, split, data_dir, download, *, as_float, verify, url, cache_dir, timeout):
    split = _check_split(split)
    img_path, lbl_path = _resolve_files(spec, split, data_dir, download, url, cache_dir, timeout)
    img_name, lbl_name = _SPLIT_FILES[split]
    images = read_idx(img_path, spec.sha256[img_name] if verify else None, expected_magic=2051)
    labels = read_idx(lbl_path, spec.sha256[lbl_name] if verify else None, expected_magic=2049)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataIntegrityError(f"data file {img_path}: expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataIntegrityError(f"data file {lbl_path}: expected uint8 labels [N], got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataIntegrityError(
            f"{spec.title} {split}: {img_path} holds {images.shape[0]} images but {lbl_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataIntegrityError(f"data file {lbl_path}: labels must lie in 0..9, found {int(labels.max())}")
    if as_float:
        images = images_to_float(images)
    return images, labels


def load_mnist(
    split: str = "train",
    data_dir=None,
    download: bool = True,
    *,
    as_float: bool = False,
    verify: bool = True,
    url: str | None = None,
    cache_dir=None,
    timeout: float = 60.0,
):
    """MNIST: ``(images uint8 [N, 28, 28], labels uint8 [N])``, N = 60000 (train) / 10000 (test).

    See the module docstring for where files are looked for and how they are downloaded.
    ``as_float=True`` returns float32 images in [0, 1]. ``verify`` checks the sha256 of each
    file's decompressed content. ``url`` overrides the download base URL (also
    ``$SPIKEJAX_MNIST_URL``); ``cache_dir`` overrides the user cache folder.
    """
    return _load_idx_dataset(
        _MNIST, split, data_dir, download, as_float=as_float, verify=verify, url=url, cache_dir=cache_dir, timeout=timeout
    )


def load_fashion_mnist(
    split: str = "train",
    data_dir=None,
    download: bool = True,
    *,
    as_float: bool = False,
    verify: bool = True,
    url: str | None = None,
    cache_dir=None,
    timeout: float = 60.0,
):
    """Fashion-MNIST, same API as :func:`load_mnist` (download URL override ``$SPIKEJAX_FASHION_MNIST_URL``)."""
    return _load_idx_dataset(
        _FASHION_MNIST,
        split,
        data_dir,
        download,
        as_float=as_float,
        verify=verify,
        url=url,
        cache_dir=cache_dir,
        timeout=timeout,
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0)
    labels = np.asarray(bunch.target).astype(np.uint8)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(
    split: str = "train",
    data_dir=None,
    download: bool = True,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    as_float: bool = True,
    verify: bool = True,
):
    """scikit-learn's embedded 8x8 digits (1797 images) behind the MNIST API; works offline.

    Returns ``(images float32 [N, 8, 8] in [0, 1], labels uint8 [N])`` (pixel values 0..16
    divided by 16). The split is stratified and deterministic: for each class, a
    ``numpy.random.default_rng(seed)`` permutation puts ``round(count * test_fraction)`` of
    its samples in the test split; both splits keep the original sample order.
    ``data_dir``, ``download`` and ``verify`` are accepted for API symmetry and ignored (the
    data ship inside scikit-learn); ``as_float=False`` is refused, the 0..16 scale has no uint8
    meaning.
    """
    split = _check_split(split)
    if not as_float:
        raise ValueError("as_float=False is not available for 'digits': its pixels are 0..16, returned as float32 in [0, 1]")
    if not isinstance(test_fraction, (int, float)) or not (0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    all_images, all_labels = _digits_arrays()
    rng = np.random.default_rng(seed)
    is_test = np.zeros(all_labels.shape[0], dtype=bool)
    for c in np.unique(all_labels):
        idx = np.flatnonzero(all_labels == c)
        n_test = int(round(idx.size * float(test_fraction)))
        is_test[rng.permutation(idx)[:n_test]] = True
    sel = is_test if split == "test" else ~is_test
    return all_images[sel], all_labels[sel]  # boolean indexing copies: the cache stays intact


_LOADERS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist, "digits": load_digits}


def load_dataset(name: str, split: str = "train", data_dir=None, **kwargs):
    """Registry front end: ``load_dataset('mnist' | 'fashion_mnist' | 'digits', split, data_dir, **kwargs)``.

    ``'fashion-mnist'`` is accepted as well. Extra keyword arguments go to the loader
    (e.g. ``as_float=True``, ``download=False``, ``test_fraction=`` for digits).
    """
    return _LOADERS[_canonical_name(name)](split, data_dir, **kwargs)


# --------------------------------------------------------------------------------------------
# On-device batching
# --------------------------------------------------------------------------------------------


def _check_batch_args(n, batch_size, drop_last):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive Python int (static), got {n!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive Python int (static), got {batch_size!r}")
    if drop_last and batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) > n ({n}) with drop_last=True would give zero batches")
    return int(n), int(batch_size)


def epoch_batches(key: jax.Array, n: int, batch_size: int, drop_last: bool = True) -> jax.Array:
    """Shuffled sample indices for one epoch, ``int32 [n_batches, batch_size]``.

    One ``jax.random.permutation(key, n)`` reshaped into rows. With ``drop_last=True``
    ``n_batches = n // batch_size`` and the ``n % batch_size`` leftover samples are skipped this
    epoch. With ``drop_last=False`` ``n_batches = ceil(n / batch_size)`` and the last row is
    padded by wrapping around to the start of the permutation (those samples appear twice);
    :func:`batch_mask` marks the padding so an exact epoch mean can be taken.

    ``n``, ``batch_size`` and ``drop_last`` are static: jit with ``static_argnums=(1, 2, 3)``.
    """
    n, batch_size = _check_batch_args(n, batch_size, drop_last)
    return _epoch_batches_impl(key, n, batch_size, bool(drop_last))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _epoch_batches_impl(key, n, batch_size, drop_last):
    perm = jax.random.permutation(key, n).astype(jnp.int32)
    if drop_last:
        nb = n // batch_size
        return perm[: nb * batch_size].reshape(nb, batch_size)
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    if pad:
        perm = jnp.concatenate([perm, jnp.take(perm, jnp.arange(pad, dtype=jnp.int32) % n)])
    return perm.reshape(nb, batch_size)


def batch_mask(n: int, batch_size: int, drop_last: bool = True) -> jax.Array:
    """``bool [n_batches, batch_size]``: True for real samples, False for :func:`epoch_batches` padding."""
    n, batch_size = _check_batch_args(n, batch_size, drop_last)
    nb = n // batch_size if drop_last else -(-n // batch_size)
    return (jnp.arange(nb * batch_size, dtype=jnp.int32) < n).reshape(nb, batch_size)


def take_batch(data, idx: jax.Array):
    """Gather rows ``idx`` (any shape) along axis 0 of every leaf of the pytree ``data``."""
    return jax.tree_util.tree_map(lambda a: jnp.take(jnp.asarray(a), idx, axis=0), data)


def iterate_batches(step: Callable[[Any, Any], tuple[Any, Any]], carry, data, batch_idx: jax.Array, *, unroll: int = 1):
    """Run ``step(carry, batch) -> (carry, out)`` over the rows of ``batch_idx`` with ``lax.scan``.

    ``data`` is a pytree of device arrays sharing axis 0 (e.g. ``(images, labels)``);
    ``batch_idx`` is ``[n_batches, batch_size]`` from :func:`epoch_batches`. Each batch is
    gathered on device inside the scan, so the whole epoch is one compiled loop.

    Returns ``(final_carry, outs)`` with ``outs`` stacked along a leading ``n_batches`` axis.
    """
    batch_idx = jnp.asarray(batch_idx)
    if batch_idx.ndim != 2:
        raise ValueError(f"batch_idx must be [n_batches, batch_size], got shape {batch_idx.shape}")
    data = jax.tree_util.tree_map(jnp.asarray, data)

    def body(c, idx):
        return step(c, take_batch(data, idx))

    return lax.scan(body, carry, batch_idx, unroll=unroll)


def epoch_scan(step, carry, data, key: jax.Array, batch_size: int, *, drop_last: bool = True, unroll: int = 1):
    """One shuffled epoch: :func:`epoch_batches` then :func:`iterate_batches` (``batch_size`` static)."""
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data must be a non-empty pytree of arrays sharing axis 0")
    sizes = {int(np.shape(a)[0]) for a in leaves}
    if len(sizes) != 1:
        raise ValueError(f"data leaves must share the sample axis 0, got sizes {sorted(sizes)}")
    idx = epoch_batches(key, sizes.pop(), batch_size, drop_last)
    return iterate_batches(step, carry, data, idx, unroll=unroll)
