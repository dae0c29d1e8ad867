"""Bench-only driver (not a pyimgtools command): index an image with read_image.

    python3 scripts/bench_cases/_read_image.py IMAGE

Prints the final tree's entries and bytes; what `audit IMAGE` reads before its checks.
"""

import sys

from pyimgtools.image import read_image


def main(source):
    img = read_image(source)
    print("%s: %d layers, %d entries in the final tree, %d file bytes in all layers, "
          "%d wasted" % (source, len(img.layers), len(img.tree), img.total_bytes, img.wasted_bytes))


if __name__ == "__main__":
    main(sys.argv[1])
