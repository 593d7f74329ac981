"""Blue Gene/L (LLNL, LogHub) system logs: parsing, template matching, per-node/window features,
next-window alert labels and a chronological split, for node-failure prediction (papers.md 5.3).

Data (``$SPIKEJAX_DATA/bgl/``, see its PROVENANCE.md): LogHub's ``BGL_2k.log`` and nine larger
independent samples ``BGL_{4..20}k.log.gz`` of the full LLNL BGL log (110,000 lines in all,
108,908 distinct), each line
``<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>``.
``Label`` is ``-`` for a non-alert line, otherwise the alert category (KERNDTLB, APPSEV, ...).
The samples are sparse (about 2.3 % of the 4.7 M lines of the full log), so a node is seen only
in a few of its windows.  The seed (papers.md 5.3) used RPI's own Blue Gene/L logs, which are
not public; this is the public LLNL log.

Template matching (:class:`TemplateMatcher`)
--------------------------------------------
A LogHub template (``EventTemplate``) becomes an anchored regular expression: its literal text is
escaped, whitespace runs match ``\\s+``, every ``<*>`` matches any (possibly empty) text.  A
content line is assigned the matching template with the most literal characters (ties: the
earlier template); lines no template matches get ``-1``.  A template is only tried when all its
literal pieces occur in the line (a substring pre-filter), and results are cached per distinct
content.  The tests check this against LogHub's own ``EventId`` column of
``BGL_2k.log_structured.csv``.

Examples, features and labels (:func:`node_window_dataset`)
------------------------------------------------------------
* node: the location field (e.g. ``R30-M0-N9-C:J16-U01``), optionally truncated to a coarser
  unit (``node_level``: ``"node"`` full location, ``"nodecard"`` ``R30-M0-N9``, ``"midplane"``
  ``R30-M0``, ``"rack"`` ``R30``).  Lines whose location is not a rack location (``NULL``,
  ``UNKNOWN_LOCATION``, ...) are dropped.
* window: ``w = floor((t - t0) / window_s)`` with ``t0`` the first timestamp.
* one example per (node, window) with at least one line; features: the count of each template
  (``n_templates`` columns, and one for unmatched lines) and of each severity level
  (``LEVELS`` and "other"), and the total count.  The alert label of a line is *not* a feature.
* label: 1 iff the node has at least one alert line in window ``w + 1``.

Chronological split (:func:`chronological_split`)
-------------------------------------------------
Windows are cut at two window indices ``W1 < W2`` so that about ``fractions`` of the examples fall
in train / validation / test in time order.  An example's label looks one window ahead, so the
last window before a cut is dropped from the earlier part: every train example's label window is
before the first validation window, and every validation label window before the first test
window (no information from a later part reaches an earlier one).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "LEVELS",
    "NODE_LEVELS",
    "BGLLog",
    "parse_line",
    "read_bgl",
    "default_bgl_files",
    "read_templates",
    "template_regex",
    "TemplateMatcher",
    "node_key",
    "NodeWindowData",
    "node_window_dataset",
    "chronological_split",
]

LEVELS = ("INFO", "WARNING", "SEVERE", "ERROR", "FATAL", "FAILURE")
NODE_LEVELS = ("node", "nodecard", "midplane", "rack")
_LOCATION = re.compile(r"^R\d\d")


class BGLLog(NamedTuple):
    """Parsed lines (numpy arrays, one entry per line): ``alert`` bool, ``category`` (``"-"``
    for non-alerts), ``timestamp`` int64 (unix seconds), ``node``, ``component``, ``level``,
    ``content`` (object arrays of str)."""

    alert: np.ndarray
    category: np.ndarray
    timestamp: np.ndarray
    node: np.ndarray
    component: np.ndarray
    level: np.ndarray
    content: np.ndarray

    def __len__(self):
        return len(self.timestamp)

    def take(self, idx) -> "BGLLog":
        return BGLLog(*(a[idx] for a in self))


def parse_line(line: str):
    """``(category, timestamp, node, component, level, content)`` of one raw BGL line, or None
    for a line that does not have the 9 leading fields (the content may be empty)."""
    parts = line.rstrip("\r\n").split(None, 9)
    if len(parts) < 9:
        return None
    try:
        ts = int(parts[1])
    except ValueError:
        return None
    content = parts[9].strip() if len(parts) > 9 else ""
    return parts[0], ts, parts[3], parts[7], parts[8], content


def default_bgl_files(data_dir=None) -> list[Path]:
    """The raw log files of ``$SPIKEJAX_DATA/bgl`` (``BGL_2k.log`` and ``BGL_*k.log.gz``)."""
    root = Path(data_dir or os.environ.get("SPIKEJAX_DATA", "")) / "bgl"
    files = sorted(root.glob("BGL_*k.log.gz"), key=lambda p: int(p.name.split("_")[1].split("k")[0]))
    plain = root / "BGL_2k.log"
    if plain.exists():
        files = [plain] + files
    if not files:
        raise FileNotFoundError(f"no BGL logs under {root} (set SPIKEJAX_DATA; see PROVENANCE.md there)")
    return files


def _open(path: Path):
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_bgl(paths: Sequence | None = None, *, dedupe: bool = True) -> tuple[BGLLog, dict]:
    """Read raw BGL lines from ``paths`` (default :func:`default_bgl_files`), drop exact
    duplicate lines across files (``dedupe``), sort by timestamp (stable).  Returns the log and
    counts ``{"lines", "malformed", "duplicates", "kept"}``."""
    paths = default_bgl_files() if paths is None else [Path(p) for p in paths]
    seen = set()
    rows = []
    n = malformed = dup = 0
    for p in paths:
        with _open(p) as f:
            for line in f:
                if not line.strip():
                    continue
                n += 1
                line = line.rstrip("\r\n")
                if dedupe:
                    if line in seen:
                        dup += 1
                        continue
                    seen.add(line)
                r = parse_line(line)
                if r is None:
                    malformed += 1
                    continue
                rows.append(r)
    rows.sort(key=lambda r: r[1])
    cat = np.array([r[0] for r in rows], dtype=object)
    log = BGLLog(
        alert=np.array([c != "-" for c in cat], bool),
        category=cat,
        timestamp=np.array([r[1] for r in rows], np.int64),
        node=np.array([r[2] for r in rows], dtype=object),
        component=np.array([r[3] for r in rows], dtype=object),
        level=np.array([r[4] for r in rows], dtype=object),
        content=np.array([r[5] for r in rows], dtype=object),
    )
    return log, {"lines": n, "malformed": malformed, "duplicates": dup, "kept": len(rows)}


# ---------------------------------------------------------------------------------------------
# templates


def read_templates(path) -> tuple[list[str], list[str]]:
    """``(event_ids, templates)`` from a LogHub ``*_templates.csv`` (EventId,EventTemplate)."""
    ids, temps = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            ids.append(row["EventId"])
            temps.append(row["EventTemplate"])
    if not temps:
        raise ValueError(f"{path}: no templates")
    return ids, temps


def _pieces(template: str) -> list[str]:
    return [p.strip() for p in template.split("<*>")]


def template_regex(template: str) -> re.Pattern:
    """Anchored regex of a LogHub template: literals escaped, whitespace runs as ``\\s+``, each
    ``<*>`` as ``.*?`` (any text, possibly empty)."""
    out = []
    for i, piece in enumerate(template.split("<*>")):
        if i:
            out.append("(.*?)")
        words = piece.split()
        lit = r"\s+".join(re.escape(w) for w in words)
        if piece[:1].isspace() and words:
            lit = r"\s*" + lit
        if piece[-1:].isspace() and words:
            lit = lit + r"\s*"
        if not words and piece:
            lit = r"\s*"
        out.append(lit)
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


class TemplateMatcher:
    """Assign log contents to templates (module docstring).  ``match(content) -> index`` into
    ``templates`` or -1; :meth:`match_many` for a sequence."""

    def __init__(self, templates: Sequence[str]):
        if len(templates) == 0:
            raise ValueError("no templates given")
        self.templates = list(templates)
        self._rx = [template_regex(t) for t in self.templates]
        self._lits = [[w for p in _pieces(t) for w in p.split()] for t in self.templates]
        nlit = [sum(len(w) for w in lits) for lits in self._lits]
        # most specific first; ties keep the file order
        self._order = sorted(range(len(self.templates)), key=lambda i: (-nlit[i], i))
        self._cache: dict[str, int] = {}

    def match(self, content: str) -> int:
        c = self._cache.get(content)
        if c is not None:
            return c
        s = content.strip()
        best = -1
        for i in self._order:
            if all(w in s for w in self._lits[i]) and self._rx[i].match(s):
                best = i
                break
        self._cache[content] = best
        return best

    def match_many(self, contents) -> np.ndarray:
        return np.array([self.match(c) for c in contents], np.int64)


# ---------------------------------------------------------------------------------------------
# examples


def node_key(node: str, level: str = "node") -> str | None:
    """The node unit of a location at ``level`` (``NODE_LEVELS``); None for a non-rack location."""
    if level not in NODE_LEVELS:
        raise ValueError(f"node_level must be one of {NODE_LEVELS}, got {level!r}")
    if not _LOCATION.match(node):
        return None
    if level == "node":
        return node
    parts = node.split("-")
    keep = {"rack": 1, "midplane": 2, "nodecard": 3}[level]
    return "-".join(parts[:keep])


class NodeWindowData(NamedTuple):
    """Examples: ``x`` float64 ``[n, n_features]`` counts, ``y`` int (next-window alert), ``window``
    int64 window index, ``node`` (object array), ``feature_names``, ``window_s``, ``t0``."""

    x: np.ndarray
    y: np.ndarray
    window: np.ndarray
    node: np.ndarray
    feature_names: list
    window_s: int
    t0: int


def node_window_dataset(
    log: BGLLog,
    template_index: np.ndarray,
    n_templates: int,
    *,
    window_s: int = 3600,
    node_level: str = "node",
    template_names: Sequence[str] | None = None,
) -> NodeWindowData:
    """Per (node, window) template/level count features and next-window alert labels (module
    docstring).  ``template_index``: per line, the template index in ``[0, n_templates)`` or -1.
    Examples are sorted by (window, node)."""
    if not isinstance(window_s, (int, np.integer)) or window_s < 1:
        raise ValueError(f"window_s must be a positive integer number of seconds, got {window_s!r}")
    if len(template_index) != len(log):
        raise ValueError(f"template_index has {len(template_index)} entries for {len(log)} lines")
    if len(log) == 0:
        raise ValueError("the log is empty")
    keys = np.array([node_key(n, node_level) for n in log.node], dtype=object)
    ok = np.array([k is not None for k in keys], bool)
    t0 = int(log.timestamp.min())
    win = (log.timestamp - t0) // int(window_s)
    lev = {l: j for j, l in enumerate(LEVELS)}
    n_f = n_templates + 1 + len(LEVELS) + 1 + 1
    ex: dict[tuple, np.ndarray] = {}
    alerts: set = set()
    for i in np.flatnonzero(ok):
        k = (int(win[i]), keys[i])
        row = ex.get(k)
        if row is None:
            row = ex[k] = np.zeros(n_f)
        t = int(template_index[i])
        row[t if 0 <= t < n_templates else n_templates] += 1
        row[n_templates + 1 + lev.get(log.level[i], len(LEVELS))] += 1
        row[-1] += 1
        if log.alert[i]:
            alerts.add(k)
    order = sorted(ex)
    x = np.stack([ex[k] for k in order]) if order else np.zeros((0, n_f))
    y = np.array([int((w + 1, n) in alerts) for w, n in order], np.int64)
    names = list(template_names) if template_names is not None else [f"T{j}" for j in range(n_templates)]
    names = names + ["unmatched"] + [f"level_{l}" for l in LEVELS] + ["level_other", "total"]
    return NodeWindowData(
        x=x,
        y=y,
        window=np.array([w for w, _ in order], np.int64),
        node=np.array([n for _, n in order], dtype=object),
        feature_names=names,
        window_s=int(window_s),
        t0=t0,
    )


def chronological_split(window: np.ndarray, fractions=(0.7, 0.15, 0.15)) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Indices of train / validation / test examples in time order (module docstring).

    ``window``: the window index of every example.  The cuts ``W1 < W2`` are the window indices at
    which the cumulative example count first reaches ``fractions[0]`` and
    ``fractions[0] + fractions[1]`` of the total; examples in window ``W1 - 1`` (``W2 - 1``) are
    dropped because their label lies in the next part.  Returns ``(train, val, test, info)``.
    """
    window = np.asarray(window, np.int64)
    f = np.asarray(fractions, np.float64)
    if f.shape != (3,) or np.any(f <= 0) or abs(f.sum() - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}")
    if window.size < 3:
        raise ValueError("need at least 3 examples to split")
    ws = np.sort(window)
    n = len(ws)
    W1 = int(ws[min(n - 1, int(np.ceil(f[0] * n)))])
    W2 = int(ws[min(n - 1, int(np.ceil((f[0] + f[1]) * n)))])
    if W2 <= W1:
        raise ValueError("too few distinct windows for a three-way chronological split")
    train = np.flatnonzero(window < W1 - 1)
    val = np.flatnonzero((window >= W1) & (window < W2 - 1))
    test = np.flatnonzero(window >= W2)
    if min(len(train), len(val), len(test)) == 0:
        raise ValueError("a part of the chronological split is empty; use a shorter window or other fractions")
    info = {
        "cut_windows": [W1, W2],
        "dropped_boundary_examples": int(n - len(train) - len(val) - len(test)),
        "n": [int(len(train)), int(len(val)), int(len(test))],
    }
    return train, val, test, info
