"""The bundle's offline web demo: <bundle>/web/ (page + JS runtime) and <bundle>/web/vendor/ (JS libs, wasm).

    add_web_page(bundle_dir)            # node_modules found automatically (see find_node_modules)

The page (web/index.html) loads ../config.json, ../tokenizer.json, ../tokenizer_config.json and
../<zuoxiao.onnx_file> relative to itself, so serving the bundle folder over HTTP is all it needs
(`zuoxiao serve-page BUNDLE`); nothing is fetched from a CDN. The vendored files come from
``npm ci --ignore-scripts`` in the repository's js/ folder (package-lock.json pins the versions checked
below). Without node_modules the page is still written, without web/vendor/, and the model card says how
to add the three files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

WEB_SRC = Path(__file__).resolve().with_name("web")  # shipped as package data of zuoxiao.ship

#: Page sources copied from WEB_SRC into <bundle>/web/.
PAGE_FILES = ["index.html", "app.js", "style.css", "zuoxiao-runtime.mjs"]

#: (package, file inside the package, name in web/vendor/): everything the page imports at run time.
VENDOR_FILES = [
    # ONNX Runtime Web, WebAssembly EP only, with the Emscripten glue bundled in (73 KB) ...
    ("onnxruntime-web", "dist/ort.wasm.bundle.min.mjs", "ort.wasm.bundle.min.mjs"),
    # ... and its one binary (SIMD; threads unused without cross-origin isolation): ~14 MB, ~3.5 MB gzip
    ("onnxruntime-web", "dist/ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.wasm"),
    # tokenizer.json reader (WordPiece, BERT normaliser and pre-tokeniser, TemplateProcessing): 37 KB
    ("@huggingface/tokenizers", "dist/tokenizers.min.mjs", "tokenizers.min.mjs"),
    ("@huggingface/tokenizers", "LICENSE", "LICENSE.huggingface-tokenizers.txt"),
]

#: Versions the page was tested with (js/package.json pins the same).
EXPECTED_VERSIONS = {"onnxruntime-web": "1.30.0", "@huggingface/tokenizers": "0.2.0"}

#: How to add the vendored files by hand (model card and log line when node_modules is absent).
VENDOR_HINT = ("in a zuoxiao checkout run `(cd js && npm ci --ignore-scripts)` and rebuild the bundle, or copy "
               + ", ".join(f"`node_modules/{p}/{f}`" for p, f, _ in VENDOR_FILES[:3])
               + " into the bundle's `web/vendor/`")


def find_node_modules() -> Path | None:
    """$ZUOXIAO_NODE_MODULES, else <repo>/js/node_modules (editable installs); None when not installed."""
    env = os.environ.get("ZUOXIAO_NODE_MODULES")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[1] / "js" / "node_modules"]
    for nm in candidates:
        if all((nm / pkg / "package.json").is_file() for pkg in EXPECTED_VERSIONS):
            return nm
    return None


def _package_version(node_modules: Path, package: str) -> str:
    manifest = node_modules / package / "package.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: run `npm ci --ignore-scripts` in js/ first")
    return json.loads(manifest.read_text())["version"]


def add_web_page(bundle_dir: str | Path, node_modules: str | Path | None = None, web_src: Path = WEB_SRC,
                 check_versions: bool = True) -> dict:
    """Copy the page into ``bundle_dir/web`` and, when node_modules is found, the vendored libraries.

    Returns {"vendored": bool, "versions": {package: version}, "files": {relative path: bytes}}. Raises
    FileNotFoundError when a vendored file is missing and ValueError when an installed package is not the
    tested version (``check_versions=False`` allows it).
    """
    bundle_dir = Path(bundle_dir)
    nm = Path(node_modules) if node_modules is not None else find_node_modules()
    versions: dict[str, str] = {}
    if nm is not None:
        versions = {pkg: _package_version(nm, pkg) for pkg in EXPECTED_VERSIONS}
        wrong = {p: v for p, v in versions.items() if v != EXPECTED_VERSIONS[p]}
        if check_versions and wrong:
            raise ValueError(f"{nm}: untested JS package versions {wrong}; expected {EXPECTED_VERSIONS} "
                             "(run `npm ci --ignore-scripts` in js/ to install the locked ones)")
    web = bundle_dir / "web"
    if web.exists():
        shutil.rmtree(web)
    web.mkdir(parents=True)
    files: dict[str, int] = {}
    for name in PAGE_FILES:
        shutil.copyfile(web_src / name, web / name)
        files[f"web/{name}"] = (web / name).stat().st_size
    if nm is not None:
        vendor = web / "vendor"
        vendor.mkdir()
        for package, rel, name in VENDOR_FILES:
            src = nm / package / rel
            if not src.is_file():
                raise FileNotFoundError(f"{src} is missing (package {package} {versions.get(package)}); "
                                        "reinstall with `npm ci --ignore-scripts` in js/")
            shutil.copyfile(src, vendor / name)
            files[f"web/vendor/{name}"] = (vendor / name).stat().st_size
        (vendor / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")
        files["web/vendor/VERSIONS.json"] = (vendor / "VERSIONS.json").stat().st_size
    return {"vendored": nm is not None, "versions": versions, "files": files}
