"""spikejax.data: IDX reading, lookup order, verified atomic downloads (local server only), batching."""

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import data

SHARED = os.environ["SPIKEJAX_DATA"]
MNIST_DIR = os.path.join(SHARED, "mnist")
FASHION_DIR = os.path.join(SHARED, "fashion-mnist")

MNIST_TEST_SHA = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

needs_shared = pytest.mark.skipif(
    not os.path.isfile(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
    reason="shared MNIST files not present",
)


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No SPIKEJAX_DATA, no URL overrides, and an empty private cache under tmp_path."""
    for var in ("SPIKEJAX_DATA", "SPIKEJAX_MNIST_URL", "SPIKEJAX_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    cache_home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    return cache_home / "spikejax"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _LyingHandler(_QuietHandler):
    """Announces the full Content-Length, sends only half of the body, then hangs up."""

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


def _serve(directory, handler=_QuietHandler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def serve_dir(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    servers = []

    def start(handler=_QuietHandler):
        server, url = _serve(d, handler)
        servers.append(server)
        return url

    yield d, start
    for s in servers:
        s.shutdown()
        s.server_close()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _regzip(src, dst, mutate=None):
    raw = gzip.decompress(open(src, "rb").read())
    if mutate is not None:
        raw = mutate(bytearray(raw))
    with open(dst, "wb") as f:
        f.write(gzip.compress(bytes(raw), compresslevel=1))


def _listing(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


# --------------------------------------------------------------------------------------------
# real files
# --------------------------------------------------------------------------------------------


@needs_shared
def test_mnist_real_files():
    x, y = data.load_mnist("test", download=False)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x, y = data.load_mnist("train", download=False)
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@needs_shared
def test_fashion_mnist_real_files():
    x, y = data.load_fashion_mnist("test", download=False, as_float=True)
    assert x.shape == (10000, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert abs(float(x.mean()) - 0.2868) < 5e-4
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y).tolist() == [1000] * 10
    x, y = data.load_fashion_mnist("train", download=False)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(y).tolist() == [6000] * 10


@needs_shared
def test_read_idx_checksums_match_sha256sums():
    for d in (MNIST_DIR, FASHION_DIR):
        sums = dict(line.split()[::-1] for line in open(os.path.join(d, "SHA256SUMS")) if line.strip())
        for fname, sha in sums.items():
            arr = data.read_idx(os.path.join(d, fname + ".gz"), sha)
            assert arr.dtype == np.uint8 and arr.shape[0] in (10000, 60000)


@needs_shared
def test_registry_and_float_convenience():
    x, y = data.load_dataset("mnist", "test", download=False)
    xf, yf = data.load_dataset("mnist", "test", download=False, as_float=True)
    np.testing.assert_array_equal(y, yf)
    np.testing.assert_allclose(xf, x.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(data.images_to_float(x), xf)
    _, yfa = data.load_dataset("Fashion-MNIST", "test", download=False)
    assert yfa[:3].tolist() == [9, 2, 1]
    with pytest.raises(ValueError, match="mnist.*fashion_mnist.*digits"):
        data.load_dataset("cifar10", "train")
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation", download=False)
    assert data.dataset_info("fashion_mnist").class_names[9] == "Ankle boot"


@needs_shared
def test_lookup_accepts_dataset_folder_itself(isolated, monkeypatch):
    monkeypatch.setenv("SPIKEJAX_DATA", MNIST_DIR)
    _, y = data.load_mnist("test", download=False)
    assert y[0] == 7
    # a folder that is clearly MNIST's is not searched for Fashion-MNIST
    with pytest.raises(data.DatasetNotFoundError):
        data.load_fashion_mnist("test", download=False)
    # the data_dir argument comes before SPIKEJAX_DATA, and may be the root or the folder
    _, y = data.load_fashion_mnist("test", data_dir=SHARED, download=False)
    assert y[0] == 9
    _, y = data.load_fashion_mnist("test", data_dir=FASHION_DIR, download=False)
    assert y[0] == 9


@needs_shared
def test_uncompressed_and_corrupt_local_files(isolated, tmp_path):
    root = tmp_path / "local"
    d = root / "mnist"
    d.mkdir(parents=True)
    # uncompressed images + gzip labels are both accepted
    raw = gzip.decompress(open(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz"), "rb").read())
    (d / "t10k-images-idx3-ubyte").write_bytes(raw)
    shutil.copy(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz"), d)
    x, y = data.load_mnist("test", data_dir=root, download=False)
    assert x.shape == (10000, 28, 28) and y[:4].tolist() == [7, 2, 1, 0]

    # one changed label: valid IDX, wrong checksum -> error names the file and expected sha256
    def flip(b):
        b[8] = (b[8] + 1) % 10
        return b

    _regzip(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz"), d / "t10k-labels-idx1-ubyte.gz", flip)
    with pytest.raises(data.DataIntegrityError) as e:
        data.load_mnist("test", data_dir=root, download=False)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and MNIST_TEST_SHA["t10k-labels-idx1-ubyte"] in msg
    _, y = data.load_mnist("test", data_dir=root, download=False, verify=False)
    assert y[0] == 8

    # Fashion-MNIST files put under mnist/: the message says what they are
    shutil.copy(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"), d)
    with pytest.raises(data.DataIntegrityError, match="Fashion-MNIST t10k-labels"):
        data.load_mnist("test", data_dir=root, download=False)


def test_read_idx_rejects_bad_files(tmp_path):
    good = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([1, 2, 3, 4, 5])
    p = tmp_path / "labels-idx1-ubyte"
    p.write_bytes(good)
    assert data.read_idx(p).tolist() == [1, 2, 3, 4, 5]
    assert data.read_idx(p, hashlib.sha256(good).hexdigest(), expected_magic=2049).tolist() == [1, 2, 3, 4, 5]
    pz = tmp_path / "labels-idx1-ubyte.gz"
    pz.write_bytes(gzip.compress(good))
    assert data.read_idx(pz).tolist() == [1, 2, 3, 4, 5]

    with pytest.raises(data.DataIntegrityError, match="magic number 2049, expected 2051"):
        data.read_idx(p, expected_magic=2051)
    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(data.DataIntegrityError, match="bad-magic.*not an IDX file"):
        data.read_idx(bad_magic)
    short = tmp_path / "short"
    short.write_bytes(good[:-2])
    with pytest.raises(data.DataIntegrityError, match="short is truncated"):
        data.read_idx(short)
    long_ = tmp_path / "long"
    long_.write_bytes(good + b"\x00")
    with pytest.raises(data.DataIntegrityError, match="long is longer"):
        data.read_idx(long_)
    trunc_gz = tmp_path / "trunc.gz"
    trunc_gz.write_bytes(gzip.compress(good * 50)[:30])
    with pytest.raises(data.DataIntegrityError, match="trunc.gz is not a valid gzip.*expected sha256.*abc"):
        data.read_idx(trunc_gz, "abc")
    with pytest.raises(data.DataIntegrityError, match=f"{p}.*expected 0000"):
        data.read_idx(p, "0000")


# --------------------------------------------------------------------------------------------
# downloads against a local HTTP server
# --------------------------------------------------------------------------------------------


@needs_shared
def test_download_good(isolated, serve_dir, monkeypatch):
    www, start = serve_dir
    for name in MNIST_TEST_SHA:
        shutil.copy(os.path.join(MNIST_DIR, name + ".gz"), www)
    monkeypatch.setenv("SPIKEJAX_MNIST_URL", start())
    x, y = data.load_mnist("test")
    ref_x, ref_y = data.load_mnist("test", data_dir=SHARED, download=False)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    target = isolated / "mnist"
    assert _listing(target) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for name, sha in MNIST_TEST_SHA.items():
        assert hashlib.sha256(gzip.decompress((target / (name + ".gz")).read_bytes())).hexdigest() == sha
    # now in the cache: works without network and without download
    monkeypatch.setenv("SPIKEJAX_MNIST_URL", _closed_port_url())
    _, y2 = data.load_mnist("test", download=False)
    np.testing.assert_array_equal(y2, ref_y)


@needs_shared
def test_download_fashion_into_data_dir(isolated, serve_dir, tmp_path):
    www, start = serve_dir
    shutil.copy(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"), www)
    shutil.copy(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"), www)
    root = tmp_path / "mydata"
    _, y = data.load_fashion_mnist("test", data_dir=root, url=start().rstrip("/"))
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert _listing(root / "fashion-mnist") == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert not isolated.exists()  # nothing went to the cache


@needs_shared
@pytest.mark.parametrize("broken", ["images", "labels"])
@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_download_rejects_bad_files(isolated, serve_dir, broken, kind):
    www, start = serve_dir
    bad_name = f"t10k-{broken}-idx{3 if broken == 'images' else 1}-ubyte"
    for name in MNIST_TEST_SHA:
        src = os.path.join(MNIST_DIR, name + ".gz")
        dst = www / (name + ".gz")
        if name != bad_name:
            shutil.copy(src, dst)
        elif kind == "corrupt":  # valid gzip and IDX, one byte of content changed

            def flip(b):
                b[-1] = (b[-1] + 1) % 10
                return b

            _regzip(src, dst, flip)
        else:  # the first half of the gz file
            blob = open(src, "rb").read()
            dst.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataIntegrityError) as e:
        data.load_mnist("test", url=start())
    msg = str(e.value)
    assert bad_name in msg and MNIST_TEST_SHA[bad_name] in msg
    target = isolated / "mnist"
    left = _listing(target)
    assert bad_name + ".gz" not in left and bad_name not in left
    assert not [f for f in left if f.endswith(".part") or f.startswith(".")]
    # whatever did get saved is the verified good file
    for f in left:
        name = f[: -len(".gz")]
        assert hashlib.sha256(gzip.decompress((target / f).read_bytes())).hexdigest() == MNIST_TEST_SHA[name]


@needs_shared
def test_interrupted_download_leaves_nothing(isolated, serve_dir):
    www, start = serve_dir
    for name in MNIST_TEST_SHA:
        shutil.copy(os.path.join(MNIST_DIR, name + ".gz"), www)
    with pytest.raises(data.DatasetError, match="t10k-images-idx3-ubyte"):
        data.load_mnist("test", url=start(_LyingHandler), timeout=10.0)
    assert _listing(isolated / "mnist") == []


def test_offline_error_lists_places(isolated, tmp_path, monkeypatch):
    env_dir = tmp_path / "envdata"
    env_dir.mkdir()
    arg_dir = tmp_path / "argdata"
    monkeypatch.setenv("SPIKEJAX_DATA", str(env_dir))
    url = _closed_port_url()
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load_mnist("test", data_dir=arg_dir, url=url, timeout=5.0)
    msg = str(e.value)
    for place in (arg_dir / "mnist", arg_dir, env_dir / "mnist", env_dir, isolated / "mnist"):
        assert f"  {place}{os.sep}  [" in msg
    assert "t10k-images-idx3-ubyte[.gz]" in msg and "t10k-labels-idx1-ubyte[.gz]" in msg
    assert "SPIKEJAX_DATA" in msg and "data_dir" in msg and "download" in msg and url in msg
    assert isinstance(e.value, FileNotFoundError)
    assert _listing(arg_dir / "mnist") == []

    # without data_dir the user cache is listed, and download=False says so
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load_fashion_mnist("train", download=False)
    msg = str(e.value)
    assert str(isolated / "fashion-mnist") in msg and "train-images-idx3-ubyte[.gz]" in msg
    assert "download=False" in msg and "SPIKEJAX_FASHION_MNIST_URL" in msg


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.default_cache_dir() == os.path.join(str(tmp_path), "spikejax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "spikejax")


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_load_digits_split():
    xtr, ytr = data.load_digits("train")
    xte, yte = data.load_digits("test")
    assert xtr.shape[1:] == (8, 8) and xtr.dtype == np.float32 and ytr.dtype == np.uint8
    assert xtr.shape[0] + xte.shape[0] == 1797 and abs(xte.shape[0] - 0.25 * 1797) < 10
    assert 0.0 <= min(xtr.min(), xte.min()) and max(xtr.max(), xte.max()) == 1.0
    assert set(np.unique(yte).tolist()) == set(range(10))
    # deterministic; a different seed gives a different split; splits are disjoint
    np.testing.assert_array_equal(data.load_digits("test")[1], yte)
    _, yte1 = data.load_digits("test", seed=1)
    assert not np.array_equal(yte1, yte)
    # stratified: each class contributes round(count * 0.25) test samples
    from sklearn.datasets import load_digits as sk

    counts = np.bincount(sk().target, minlength=10)
    assert np.bincount(yte, minlength=10).tolist() == [int(round(c * 0.25)) for c in counts]
    assert (np.bincount(ytr, minlength=10) + np.bincount(yte, minlength=10)).tolist() == counts.tolist()
    x, _ = data.load_dataset("digits", "train", test_fraction=0.5)
    assert abs(x.shape[0] - 898) < 10
    with pytest.raises(ValueError, match="test_fraction"):
        data.load_digits("train", test_fraction=1.0)
    with pytest.raises(ValueError, match="as_float"):
        data.load_digits("train", as_float=False)


# --------------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------------


def test_epoch_batches_is_permutation(key):
    idx = data.epoch_batches(key, 12, 4)
    assert idx.shape == (3, 4) and idx.dtype == jnp.int32
    assert sorted(np.asarray(idx).ravel().tolist()) == list(range(12))
    f = jax.jit(data.epoch_batches, static_argnums=(1, 2, 3))
    np.testing.assert_array_equal(f(key, 12, 4, True), idx)
    assert not np.array_equal(np.asarray(f(jax.random.PRNGKey(1), 12, 4, True)), np.asarray(idx))

    idx = np.asarray(data.epoch_batches(key, 10, 3))  # drop_last: 3 batches, 9 distinct samples
    assert idx.shape == (3, 3) and len(set(idx.ravel().tolist())) == 9 and idx.max() < 10
    idx = np.asarray(data.epoch_batches(key, 10, 3, drop_last=False))
    mask = np.asarray(data.batch_mask(10, 3, drop_last=False))
    assert idx.shape == (4, 3) and mask.sum() == 10
    assert sorted(idx[mask].tolist()) == list(range(10))
    assert idx[3, 1:].tolist() == idx.ravel()[:2].tolist()  # wrap-around padding
    with pytest.raises(ValueError, match="batch_size"):
        data.epoch_batches(key, 5, 8)
    with pytest.raises(ValueError, match="n must"):
        data.epoch_batches(key, 0, 1)


def test_iterate_batches_in_scan(key):
    n, bs = 20, 5
    x = jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3)
    y = jnp.arange(n, dtype=jnp.int32)

    def step(total, batch):
        bx, by = batch
        return total + jnp.sum(bx), jnp.sum(by)

    @jax.jit
    def run(k):
        idx = data.epoch_batches(k, n, bs)
        return data.iterate_batches(step, jnp.float32(0.0), (x, y), idx)

    total, per_batch = run(key)
    assert float(total) == float(jnp.sum(x))
    assert per_batch.shape == (4,) and int(jnp.sum(per_batch)) == n * (n - 1) // 2

    total2, _ = jax.jit(lambda k: data.epoch_scan(step, jnp.float32(0.0), (x, y), k, bs))(key)
    assert float(total2) == float(total)
    with pytest.raises(ValueError, match="share the sample axis"):
        data.epoch_scan(step, 0.0, (x, y[:4]), key, bs)
