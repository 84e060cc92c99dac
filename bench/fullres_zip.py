"""Makes a Sensorium-sized 144x256 zip from the real Lurz scan, for measuring load memory.

Each 36x64 image is upsampled 4x (nearest neighbour) to 1x144x256 float32; every other file is
copied as is. The licensed data stays outside the repository: write the zip to a temp folder.

    python3 bench/fullres_zip.py ../shared/data/lurz2020_static20457-5-9 /tmp/static20457-5-9-big.zip
    /usr/bin/time -v target/release/cortexfit info /tmp/static20457-5-9-big.zip
    /usr/bin/time -v target/release/cortexfit info --image-scale 0.25 /tmp/static20457-5-9-big.zip
"""
import io
import os
import sys
import zipfile

import numpy as np

src, out = sys.argv[1], sys.argv[2]
top = os.path.basename(out).removesuffix(".zip")
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    for root, _, files in os.walk(src):
        for name in files:
            path = os.path.join(root, name)
            rel = f"{top}/{os.path.relpath(path, src)}"
            if f"{os.sep}data{os.sep}images{os.sep}" in path:
                a = np.load(path)
                a = np.repeat(np.repeat(a, 4, axis=-2), 4, axis=-1).astype(np.float32)
                buf = io.BytesIO()
                np.save(buf, a)
                z.writestr(rel, buf.getvalue())
            else:
                z.write(path, rel)
print(out, os.path.getsize(out), "bytes")
