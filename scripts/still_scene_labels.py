#!/usr/bin/env python3
"""Rewrite the labels of the still scenes (`camstream.cameras.still_scenes`) after a change
to them; tests/test_motion.py checks that the committed file matches the scenes.

Usage: python scripts/still_scene_labels.py [--out FILE]
(default: the checkout's src/camstream/cameras/data/still_scenes_labels.json)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camstream.cameras.still_scenes import LABELS_FILE, all_labels

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/camstream/cameras/data" / LABELS_FILE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the labels file to write")
    args = parser.parse_args()
    args.out.write_text(json.dumps(all_labels(), indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
