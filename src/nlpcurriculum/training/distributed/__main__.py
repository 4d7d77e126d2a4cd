"""``torchrun ... -m nlpcurriculum.training.distributed SETUP.json OUT_DIR``: one rank's run."""

import sys

from nlpcurriculum.training.distributed.worker import worker

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: torchrun ... -m nlpcurriculum.training.distributed SETUP.json OUT_DIR")
    worker(sys.argv[1], sys.argv[2])
