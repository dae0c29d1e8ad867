"""An image with one committed layer per shell step (the layer tests of issue 16).

`buildah bud --layers=false` (the Builder's) squashes a build's steps into one
layer, and `--layers` leaves untagged cache images; one commit per step keeps
every step's layer and names every image, so Builder.cleanup removes them.
"""

import uuid

from tests.harness.buildah import buildah


def layered_image(builder, image, steps):
    """`image` + one committed layer per shell step, each step its history's created_by."""
    for cmd in steps:
        ctr = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
        builder.containers.append(ctr)
        buildah("run", "--isolation", "chroot", ctr, "--", "sh", "-c", cmd)
        buildah("config", "--created-by", "/bin/sh -c " + cmd, ctr)
        image = "localhost/pyimgtools-test-%s" % uuid.uuid4().hex[:12]
        builder.images.append(image)
        buildah("commit", "--quiet", ctr, image)
        buildah("rm", ctr)
        builder.containers.remove(ctr)
    return image
