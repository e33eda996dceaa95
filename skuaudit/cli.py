"""``skuaudit`` command line: one dispatcher, each subcommand owned by the module that does the work.

Every subcommand module exposes ``cli_main(argv: list[str]) -> int`` with its own argparse parser,
so ``skuaudit X --help`` is answered by the module that implements X. Modules are imported only when
their command runs: ``skuaudit --help`` does not load TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "seed-demo": (
        "skuaudit.demo",
        "create the schema if needed and fill an empty database with demo data",
    ),
    "db": ("skuaudit.storage.cli", "database: upgrade (migrations), check, remove-demo"),
    "catalogue": (
        "skuaudit.catalogue_cli",
        "stores, brands, planogram targets: CSV import/export, add, delete",
    ),
    "synth": (
        "skuaudit.datasets.synth.cli",
        "render synthetic shelves with exact boxes (YOLO, COCO, SKU-110K CSV)",
    ),
    "detect": ("skuaudit.detector.cli", "detect products and gaps in photos, print JSON"),
    "audit": ("skuaudit.audit", "audit shelf photos for a store and save the result"),
    "train": ("skuaudit.training.cli", "train a detector on a dataset"),
    "evaluate": (
        "skuaudit.training.evaluate",
        "COCO AP / AR300 and counting error of a model on a dataset",
    ),
    "evaluate-recognition": (
        "skuaudit.recognition_eval",
        "few-shot product recognition top-1 on folders of photos per product",
    ),
    "export": ("skuaudit.export.cli", "export a model to TensorFlow.js, TFLite or SavedModel"),
    "user": ("skuaudit.auth", "manage analyst accounts"),
    "serve": ("skuaudit.serve", "start the Streamlit app"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: skuaudit COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'skuaudit COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"skuaudit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("skuaudit"):
            print(
                f"skuaudit {name}: not available in this build ({exc.name} missing)",
                file=sys.stderr,
            )
            return 2
        raise
    return int(module.cli_main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
